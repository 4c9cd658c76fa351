"""Lexical item vectors: scikit-learn's TF-IDF over the same item texts the BERT encoder reads.

Why beside BERT: on new SKUs a plain TF-IDF kNN matches or beats a MiniLM kNN (Amazon item cold
0.260 against 0.223, benchmarks/EVALUATION.md): exact shared words (a part number, a brand
line, "M8 hex bolt") carry what a small sentence encoder blurs. The model uses these vectors
only through cosines between a candidate and the user's history items (pair features), so the
vectors stay sparse and no dense projection loses the exact-word signal.

One configuration (:func:`tfidf_vectorizer`) serves the TF-IDF kNN baseline and the model, so
the two compare the same lexical signal. The model fits the vocabulary and IDF on its training
catalogue (every item's text, cold ones included: text is what a new SKU has) and saves them,
so a loaded model maps a new SKU's words exactly as in training (unknown words are dropped).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from kgrec.encoders.compose import compose_item_texts

TFIDF_SETTINGS: dict[str, object] = {
    "min_df": 2, "sublinear_tf": True, "stop_words": "english", "ngram_range": (1, 1)}


def tfidf_vectorizer(**overrides: object) -> TfidfVectorizer:
    """scikit-learn's ``TfidfVectorizer`` with kgrec's untuned settings (:data:`TFIDF_SETTINGS`:
    unigrams, English stop words, sublinear tf, terms of at least two items); rows L2-normed."""
    return TfidfVectorizer(dtype=np.float32, **{**TFIDF_SETTINGS, **overrides})  # type: ignore[arg-type]


class LexicalEncoder:
    """Item text -> L2-normalised sparse TF-IDF row, with a vocabulary fixed at ``fit``.

    Args:
        min_df: Keep terms of at least this many items, default 2.

    Attributes:
        terms_: The vocabulary, ``(V,)`` strings in column order.
        idf_: Their inverse document frequencies, ``(V,)``.
    """

    def __init__(self, min_df: int = 2) -> None:
        self.min_df = min_df

    def __repr__(self) -> str:
        size = f", terms={len(self.terms_)}" if hasattr(self, "terms_") else ""
        return f"LexicalEncoder(min_df={self.min_df}{size})"

    def fit(self, texts: Sequence[str]) -> LexicalEncoder:
        """Learn the vocabulary and IDF of ``texts``; returns ``self``. A catalogue with no
        term in two items gets an empty vocabulary (every row is then zero)."""
        vec = tfidf_vectorizer(min_df=self.min_df)
        try:
            vec.fit(list(texts))
            order = np.argsort(list(vec.vocabulary_.values()))
            self.terms_ = np.asarray(list(vec.vocabulary_.keys()), dtype=object)[order]
            self.idf_ = np.asarray(vec.idf_, dtype=np.float32)
        except ValueError:  # empty vocabulary (no text, or no word in two items)
            self.terms_, self.idf_ = np.zeros(0, dtype=object), np.zeros(0, np.float32)
        self._build()
        return self

    @classmethod
    def from_state(cls, terms: Sequence[str], idf: np.ndarray, min_df: int = 2
                   ) -> LexicalEncoder:
        """A fitted encoder from saved :attr:`terms_` and :attr:`idf_`."""
        enc = cls(min_df=min_df)
        enc.terms_ = np.asarray(list(terms), dtype=object)
        enc.idf_ = np.asarray(idf, dtype=np.float32)
        enc._build()
        return enc

    def _build(self) -> None:
        self._vec = None
        self._memo: dict[str, int] = {}
        self._rows: list[sp.csr_matrix] = []
        if len(self.terms_):
            vec = tfidf_vectorizer(min_df=1, vocabulary={t: i for i, t in
                                                         enumerate(self.terms_.tolist())})
            vec.idf_ = self.idf_
            self._vec = vec

    def item_rows(self, items: pd.DataFrame) -> sp.csr_matrix:
        """TF-IDF rows of catalogue ``items`` (their :func:`compose_item_texts` texts)."""
        return self.transform(compose_item_texts(items)[0] if len(items) else [])

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """``(len(texts), V)`` float32 CSR, unit rows (zero rows for texts without a known
        term). Each distinct text is vectorised once per encoder (memo), so refolding a grown
        catalogue only reads the new texts."""
        if not hasattr(self, "terms_"):
            raise ValueError("LexicalEncoder is not fitted: call fit(texts) or from_state")
        n_terms = max(len(self.terms_), 1)
        if self._vec is None or not len(texts):
            return sp.csr_matrix((len(texts), n_terms), dtype=np.float32)
        new = sorted({t for t in texts if t not in self._memo})
        if new:
            start = sum(r.shape[0] for r in self._rows)
            self._rows.append(sp.csr_matrix(self._vec.transform(new), dtype=np.float32))
            self._memo.update({t: start + k for k, t in enumerate(new)})
            self._all = sp.vstack(self._rows, format="csr")
            self._rows = [self._all]
        rows = np.fromiter((self._memo[t] for t in texts), dtype=np.int64, count=len(texts))
        return sp.csr_matrix(self._all[rows])


def row_dots(a: sp.csr_matrix, rows_a: np.ndarray, b: sp.csr_matrix,
             rows_b: np.ndarray) -> np.ndarray:
    """``<a[rows_a[k]], b[rows_b[k]]>`` for every ``k`` (cosines of unit rows), ``(n,)``."""
    if len(rows_a) == 0 or a.shape[1] == 0:
        return np.zeros(len(rows_a), dtype=np.float32)
    out = np.asarray(a[rows_a].multiply(b[rows_b]).sum(axis=1), dtype=np.float32).ravel()
    return out
