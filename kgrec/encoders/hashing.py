"""``HashingEncoder``: a fast, deterministic, model-free text encoder.

Why: unit tests, CI and quick demos need a :class:`~kgrec.encoders.TextEncoder` that loads
nothing, runs in microseconds and still puts texts that share words close together. It hashes
lower-cased word n-grams (scikit-learn's ``HashingVectorizer``, MurmurHash3 with a fixed seed, so
vectors are identical across processes and machines) into ``dim`` signed buckets and
L2-normalises the result. It is no substitute for a language model: paraphrases without shared
words are not close.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer

from kgrec.encoders.text import check_texts, l2_normalize


class HashingEncoder:
    """Hashed word n-grams -> L2-normalised ``float32`` vectors.

    Args:
        dim: Output size (number of hash buckets), default 64.
        ngram_max: Longest word n-gram hashed, default 2 (words and word pairs).

    Shapes:
        ``encode(texts)``: ``(len(texts), dim)``. A text without any word (``""``, only
        punctuation) maps to the all-zero vector.

    Raises:
        ValueError: ``dim`` < 2 or ``ngram_max`` < 1 (raised by the constructor, as they are
            plain argument checks with no I/O).
    """

    pooling = "hashed-ngrams"

    def __init__(self, dim: int = 64, ngram_max: int = 2) -> None:
        if dim < 2:
            raise ValueError(f"dim must be >= 2, got {dim}")
        if ngram_max < 1:
            raise ValueError(f"ngram_max must be >= 1, got {ngram_max}")
        self._dim = int(dim)
        self.ngram_max = int(ngram_max)
        self._vectorizer = HashingVectorizer(
            n_features=self._dim,
            ngram_range=(1, self.ngram_max),
            lowercase=True,
            alternate_sign=True,
            norm=None,
            token_pattern=r"(?u)\b\w+\b",
            dtype=np.float32,
        )

    def __repr__(self) -> str:
        return f"HashingEncoder(dim={self._dim}, ngram_max={self.ngram_max})"

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def name(self) -> str:
        return f"hashing-{self._dim}"

    def identity(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "files_hash": "none",
            "pooling": self.pooling,
            "max_length": None,
            "dim": self._dim,
            "ngram_max": self.ngram_max,
        }

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """Encode ``texts`` (``batch_size`` and ``show_progress`` are accepted and unused).

        Raises:
            EncoderError: a text is not a ``str`` or ``batch_size`` < 1.
        """
        items = check_texts(texts, batch_size)
        if not items:
            return np.zeros((0, self._dim), dtype=np.float32)
        dense = np.asarray(self._vectorizer.transform(items).toarray(), dtype=np.float32)
        return l2_normalize(dense)
