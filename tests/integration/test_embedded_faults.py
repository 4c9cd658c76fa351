"""Faults against the embedded store with real processes: concurrent writers, a writer killed.

Why here and not in unit tests: they start real Python processes (the ``kgrec`` CLI) and write
tens of thousands of rows, which takes seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import kgrec
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.pseudonym import KEY_ENV, Pseudonymizer
from kgrec.graph.schema import NodeLabel, RelType

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(kgrec.__file__).resolve().parent.parent
N_ITEMS = 20_000
N_SHARED_USERS = 500


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}  # exercise first-key creation
    env["PYTHONPATH"] = str(ROOT)
    return env


def _write_shop(folder: Path, prefix: str) -> None:
    """20,000 items named ``{prefix}-k``, one purchase each by one of 500 shared users."""
    folder.mkdir(parents=True)
    k = pd.RangeIndex(N_ITEMS)
    pd.DataFrame({"item_id": [f"{prefix}-{i}" for i in k], "title": "thing",
                  "brand": [f"brand-{i % 50}" for i in k]}).to_csv(folder / "items.csv",
                                                                   index=False)
    pd.DataFrame({"user_id": [f"shopper-{i % N_SHARED_USERS}" for i in k],
                  "item_id": [f"{prefix}-{i}" for i in k], "event": "purchase",
                  "ts": 1_700_000_000 + k}).to_csv(folder / "interactions.csv", index=False)


def test_two_concurrent_cli_ingests_keep_every_row(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    for prefix in ("a", "b"):
        _write_shop(tmp_path / prefix, prefix)
    procs = [subprocess.Popen(
        [sys.executable, "-c", "import sys; from kgrec.cli import main; sys.exit(main())",
         "ingest", "--items", str(tmp_path / p / "items.csv"),
         "--interactions", str(tmp_path / p / "interactions.csv"),
         "--store", f"embedded:{store_dir}", "--rejects", str(tmp_path / f"{p}-rejects.csv")],
        env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for p in ("a", "b")]
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        assert f"items {N_ITEMS:,}" in out  # the summary line of a complete run
    store = EmbeddedGraphStore(store_dir)
    items = set(store.nodes(NodeLabel.ITEM)["id"])
    assert len(items) == 2 * N_ITEMS
    assert {f"a-{i}" for i in range(N_ITEMS)} <= items
    assert {f"b-{i}" for i in range(N_ITEMS)} <= items
    inter = store.edges(RelType.INTERACTED)
    assert len(inter) == 2 * N_ITEMS
    assert set(inter["dst"]) == items
    # Both processes used the one key that was created first: the shared users are the same
    # 500 pseudonyms, not 1,000.
    users = store.nodes(NodeLabel.USER)["id"]
    assert len(users) == N_SHARED_USERS
    expected = Pseudonymizer(bytes.fromhex((store_dir / "pseudonym.key").read_text().strip()))
    assert set(users) == set(expected.pseudonymize(
        [f"shopper-{i}" for i in range(N_SHARED_USERS)]))
    assert len(store.edges(RelType.HAS_BRAND)) == 2 * N_ITEMS
    assert not list(store_dir.rglob("*.kgrec-tmp"))


_WRITER = """
import sys
import pandas as pd
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.schema import NodeLabel
store = EmbeddedGraphStore(sys.argv[1])
n = int(sys.argv[2])
for batch in range(1, 1000):
    ids = [f"item-{batch}-{i}" for i in range(n)]
    store.upsert_nodes(NodeLabel.ITEM, pd.DataFrame({"id": ids, "title": "x" * 40}))
    print(batch, flush=True)
"""


@pytest.mark.parametrize("round_", range(3))
def test_writer_killed_mid_write_leaves_a_complete_store(tmp_path: Path, round_: int) -> None:
    store_dir = tmp_path / "store"
    batch = 200_000
    with subprocess.Popen([sys.executable, "-c", _WRITER, str(store_dir), str(batch)],
                          env=_env(), stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for _ in range(round_ + 1):  # let 1..3 batches complete first
            assert proc.stdout.readline().strip()
        # Kill it while a temp file exists, i.e. in the middle of writing the next version.
        deadline = time.monotonic() + 120
        while not list(store_dir.rglob("*.kgrec-tmp")):
            assert time.monotonic() < deadline, "the writer never started another write"
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        committed = proc.stdout.read().split()
    assert proc.returncode == -signal.SIGKILL
    done = round_ + 1 + len(committed)
    # Readable, and exactly the previous complete content (or the next one, had the rename
    # happened before the kill): whole batches, never a torn file.
    items = EmbeddedGraphStore(store_dir).nodes(NodeLabel.ITEM)
    assert len(items) in (done * batch, (done + 1) * batch)
    n_batches = len(items) // batch
    assert set(items["id"]) == {f"item-{b}-{i}" for b in range(1, n_batches + 1)
                                for i in range(batch)}
    # The next writer removes the dead writer's temp file and writes normally.
    after = EmbeddedGraphStore(store_dir)
    after.upsert_nodes(NodeLabel.ITEM, pd.DataFrame({"id": ["late"], "title": ["y"]}))
    assert not list(store_dir.rglob("*.kgrec-tmp"))
    assert len(EmbeddedGraphStore(store_dir).nodes(NodeLabel.ITEM)) == len(items) + 1
