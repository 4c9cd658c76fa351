"""release_free_memory: collects garbage cycles, never raises, leaves live objects alone."""

from __future__ import annotations

import gc
import sys
import weakref

import pandas as pd
import pytest

from kgrec.coldstart.memory import release_free_memory


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_collects_unreachable_cycles_and_keeps_live_objects() -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a reference cycle: only the cycle collector frees it
    dead = weakref.ref(a)
    live = pd.DataFrame({"id": pd.Series([f"u{k}" for k in range(1_000)], dtype="string")})
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        del a, b
        assert dead() is not None  # still there: nothing has collected the cycle yet
        release_free_memory()
        assert dead() is None
    finally:
        if was_enabled:
            gc.enable()
    assert live["id"].iloc[-1] == "u999" and len(live) == 1_000


class _BrokenPool:
    def release_unused(self) -> None:
        raise RuntimeError("old pyarrow build")


class _FakeArrow:
    def default_memory_pool(self) -> _BrokenPool:
        return _BrokenPool()


def test_a_failing_pyarrow_pool_release_is_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", _FakeArrow())
    release_free_memory()  # best effort: logs at debug level, does not raise
