"""The ``TextEncoder`` protocol every text encoder (BERT, hashing, cached) implements.

Why a protocol: the cold-start model only needs "texts in, unit vectors out" plus a stable
``identity()`` so that cached vectors and trained models can tell which encoder made them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from kgrec.errors import EncoderError


@runtime_checkable
class TextEncoder(Protocol):
    """Turns strings into L2-normalised ``float32`` vectors of a fixed size.

    Implementations: :class:`~kgrec.encoders.BertTextEncoder` (the real model),
    :class:`~kgrec.encoders.HashingEncoder` (fast, deterministic, for tests and demos),
    :class:`~kgrec.encoders.CachedTextEncoder` (wraps either with an on-disk cache).
    """

    @property
    def dim(self) -> int:
        """Length of every output vector."""
        ...

    @property
    def name(self) -> str:
        """Short human-readable name (e.g. the model directory's name)."""
        ...

    def identity(self) -> dict[str, Any]:
        """JSON-able description that changes whenever the vectors would change.

        Used as the cache key and stored with trained models to check compatibility. Holds at
        least ``name``, ``files_hash``, ``pooling``, ``max_length`` and ``dim``.
        """
        ...

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """Encode ``texts`` to a ``float32`` array of shape ``(len(texts), dim)``.

        Raises:
            EncoderError: a text is not a ``str``, or ``batch_size`` < 1.
        """
        ...


def check_texts(texts: Sequence[str], batch_size: int = 1) -> list[str]:
    """Return ``texts`` as a list after checking every item is a ``str``.

    Raises:
        EncoderError: ``texts`` is a single string, an item is not a ``str`` (the message names
            its position and points to :func:`~kgrec.encoders.compose_item_texts`, which cleans
            raw values), or ``batch_size`` < 1.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise EncoderError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(texts, str):
        raise EncoderError("texts must be a sequence of strings, not one string; wrap it: [text]")
    out = list(texts)
    bad = [i for i, t in enumerate(out) if not isinstance(t, str)]
    if bad:
        raise EncoderError(
            f"{len(bad)} text(s) are not str, first at position {bad[0]} "
            f"({type(out[bad[0]]).__name__}: {out[bad[0]]!r:.60}). Clean raw values first, "
            "e.g. with kgrec.encoders.compose_item_texts()."
        )
    return out


def dedupe(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Unique texts in first-seen order and, for each input, the index of its unique text.

    ``unique[inverse]`` rebuilds the input, so ``vectors[inverse]`` maps unique vectors back.
    """
    first: dict[str, int] = {}
    inverse = np.fromiter((first.setdefault(t, len(first)) for t in texts), dtype=np.int64,
                          count=len(texts))
    return list(first), inverse


def identity_key(identity: dict[str, Any]) -> str:
    """Stable 16-hex-digit key of an encoder identity (sha256 of its canonical JSON)."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in place; all-zero rows stay zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x
