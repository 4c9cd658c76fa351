"""Test doubles shared by unit and integration tests (never a stand-in for a real service)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kgrec.encoders import HashingEncoder


class CountingEncoder:
    """A HashingEncoder that records every text it was asked to encode."""

    def __init__(self, dim: int = 16) -> None:
        self.inner = HashingEncoder(dim=dim)
        self.calls: list[list[str]] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def name(self) -> str:
        return "counting"

    def identity(self) -> dict[str, Any]:
        return {**self.inner.identity(), "name": "counting"}

    def encode(self, texts: Sequence[str], *, batch_size: int = 64,
               show_progress: bool = False) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.encode(texts, batch_size=batch_size)

    @property
    def encoded(self) -> list[str]:
        return [t for call in self.calls for t in call]
