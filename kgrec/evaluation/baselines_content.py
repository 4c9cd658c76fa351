"""Lexical content baselines: TF-IDF kNN and its blend with the BERT content kNN.

A sceptical engineer's first cold-start try is word overlap, not a neural encoder; these two
rows say how much of kgrec's (and the BERT kNN's) cold-start accuracy plain TF-IDF gets.

* :class:`TfidfKNN` -- scikit-learn ``TfidfVectorizer`` over the same item texts kgrec encodes
  (:func:`~kgrec.encoders.compose_item_texts`); a user is the **mean of the L2-normalised
  TF-IDF rows** of their history (the same form as :class:`~kgrec.evaluation.baselines.
  ContentKNN`), scored by cosine. Users without history fall back to popularity.
* :class:`TfidfBertBlend` -- per-user z-scored TF-IDF kNN scores plus per-user z-scored BERT
  kNN scores, **equal weights, untuned**.

The vectoriser's IDF is fitted on the texts of every catalogue item, cold items included: a
new SKU's text is what it has on the day it is listed (no interactions are read).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from kgrec.evaluation.baselines import (
    ALL_REGIMES,
    ContentKNN,
    Popularity,
    TrainData,
    _check,
    history_matrix,
    popularity_fallback,
)


class TfidfKNN:
    """Cosine between the mean of a user's history TF-IDF rows and each item's TF-IDF row.

    Args:
        min_df: Ignore terms in fewer items, default 2 (a term of one item links nothing).
        sublinear_tf: ``1 + log(tf)``, default True.
        stop_words: Default ``"english"`` (scikit-learn's list).
        ngram_range: Default ``(1, 1)`` (unigrams).

    Untuned: scikit-learn's usual settings, fixed before any test split was seen.
    """

    regimes = ALL_REGIMES

    def __init__(self, min_df: int = 2, sublinear_tf: bool = True,
                 stop_words: str | None = "english",
                 ngram_range: tuple[int, int] = (1, 1)) -> None:
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.stop_words = stop_words
        self.ngram_range = ngram_range
        self.name = "tfidf_knn"

    def fit(self, train: TrainData, item_vectors: np.ndarray) -> TfidfKNN:
        from kgrec.encoders import compose_item_texts
        from kgrec.encoders.lexical import tfidf_vectorizer

        texts = compose_item_texts(train.items)[0] if train.n_items else []
        vec = tfidf_vectorizer(min_df=self.min_df, sublinear_tf=self.sublinear_tf,
                               stop_words=self.stop_words, ngram_range=self.ngram_range)
        try:
            self.tfidf_ = sp.csr_matrix(vec.fit_transform(texts))   # rows are L2-normalised
            self.vocabulary_size_ = len(vec.vocabulary_)
        except ValueError:  # empty vocabulary: no usable text at all, every user -> popularity
            self.tfidf_ = sp.csr_matrix((train.n_items, 1), dtype=np.float32)
            self.vocabulary_size_ = 0
        self.histories_ = train.histories()
        self.popularity_ = Popularity().fit(train, item_vectors)
        return self

    def score(self, user_rows: np.ndarray, item_rows: np.ndarray,
              histories: Sequence[np.ndarray] | None = None) -> np.ndarray:
        _check(self, "tfidf_")
        hist = histories if histories is not None else [self.histories_[u] for u in user_rows]
        users = sp.csr_matrix(history_matrix(hist, self.tfidf_.shape[0], mean=True) @ self.tfidf_)
        norms = np.sqrt(np.asarray(users.multiply(users).sum(axis=1)).ravel())
        users = sp.csr_matrix(sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms),
                                                 where=norms > 0)) @ users)
        out = np.asarray((users @ self.tfidf_[item_rows].T).toarray(), dtype=np.float64)
        # no history, or a history without a single known term: popularity
        return popularity_fallback(out, norms == 0, self.popularity_, item_rows)


def zscore_rows(scores: np.ndarray) -> np.ndarray:
    """Each row minus its mean, divided by its standard deviation (a constant row -> 0)."""
    centred = scores - scores.mean(axis=1, keepdims=True)
    std = centred.std(axis=1, keepdims=True)
    out: np.ndarray = np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)
    return out


class TfidfBertBlend:
    """``zscore(TF-IDF kNN) + zscore(BERT content kNN)`` per user, equal weights (untuned)."""

    regimes = ALL_REGIMES

    def __init__(self) -> None:
        self.name = "tfidf_bert_blend"

    def fit(self, train: TrainData, item_vectors: np.ndarray) -> TfidfBertBlend:
        self.tfidf_ = TfidfKNN().fit(train, item_vectors)
        self.bert_ = ContentKNN().fit(train, item_vectors)
        return self

    def score(self, user_rows: np.ndarray, item_rows: np.ndarray,
              histories: Sequence[np.ndarray] | None = None) -> np.ndarray:
        _check(self, "bert_")
        return (zscore_rows(self.tfidf_.score(user_rows, item_rows, histories))
                + zscore_rows(self.bert_.score(user_rows, item_rows, histories)))
