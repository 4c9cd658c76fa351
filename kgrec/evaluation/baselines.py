"""Baselines scored on exactly the same splits, candidates and text vectors as kgrec.

Every baseline follows one small protocol (:class:`Baseline`)::

    model = Popularity().fit(train, item_vectors)          # returns self
    scores = model.score(user_rows, item_rows)             # (len(user_rows), len(item_rows))
    scores = model.score(user_rows, item_rows, histories=revealed)   # user cold, fold-in

``train`` is a :class:`TrainData` (index-aligned views of the union training graph: items, users,
training positives); ``item_vectors`` are the text vectors kgrec's model uses. ``histories``
(one array of item rows per user row) replaces the users' training history at scoring time:
the ``k`` revealed interactions of a cold user. Baselines that cannot score a regime say so in
:attr:`Baseline.regimes`.

* :class:`RandomScores` -- uniform random scores (seeded).
* :class:`Popularity` -- training interaction count; an item without any (a cold item) scores
  ``log1p(brand total) + log1p(category total)`` of its brand's and category's training
  interactions, scaled below every item that has a count.
* :class:`ContentKNN` -- cosine between the user's mean history text vector and the item's;
  a user without history (user cold, ``k = 0``) falls back to :class:`Popularity`.
* :class:`LightFMBaseline` -- LightFM (optional extra ``lightfm``), WARP loss, item features =
  brand, category, title/description tokens (+ identity for items with training
  interactions), user features = identity + profile attributes, rows L1-normalised. A cold user
  is its profile features plus the mean latent vector of its revealed items (fold-in).
* :class:`ALSBaseline` -- implicit's ALS (optional extra ``implicit``), warm regime only.
* :mod:`~kgrec.evaluation.baselines_content` -- TF-IDF content kNN and the TF-IDF + BERT blend;
  :mod:`~kgrec.evaluation.baselines_cf` -- EASE and item-kNN CF (user cold and warm).

The optional libraries are imported lazily; :func:`available_baselines` skips (and logs) the
ones not installed. Hyper-parameters are fixed defaults, never tuned on test data.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from kgrec.errors import ConfigError, NotFittedError
from kgrec.evaluation._names import BASELINES

logger = logging.getLogger(__name__)

ALL_REGIMES: frozenset[str] = frozenset({"item_cold", "user_cold", "warm"})


def group_by_row(pairs: np.ndarray, n_rows: int) -> list[np.ndarray]:
    """Columns of ``(2, n)`` (row, column) ``pairs`` per row ``0..n_rows-1``, in input order;
    rows outside that range are dropped."""
    order = np.argsort(pairs[0], kind="stable")
    rows, cols = pairs[0][order], pairs[1][order]
    bounds = np.searchsorted(rows, np.arange(n_rows + 1))
    return [cols[bounds[r]:bounds[r + 1]] for r in range(n_rows)]


@dataclass
class TrainData:
    """Index-aligned training data of one split (rows = graph indices).

    Attributes:
        items: Item table aligned with the Item index (``title``, ``description``, ``brand``,
            ``category`` ...).
        users: User profile table aligned with the User index (``user_id`` + profile columns).
        pairs: Training positives ``(2, P)``: user rows, item rows.
        ts: Latest timestamp of each pair ``(P,)``, or None (order unknown); baselines that
            carve a validation slice hold out each chosen user's latest pair.
    """

    items: pd.DataFrame
    users: pd.DataFrame
    pairs: np.ndarray
    ts: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.pairs[1], minlength=self.n_items).astype(np.float64)

    def histories(self) -> list[np.ndarray]:
        """Training item rows of every user row."""
        return group_by_row(self.pairs, self.n_users)

    def interaction_matrix(self) -> sp.csr_matrix:
        """Binary users x items CSR matrix (float32) of the training positives."""
        m = sp.csr_matrix((np.ones(self.pairs.shape[1], dtype=np.float32),
                           (self.pairs[0], self.pairs[1])), shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m


def history_matrix(histories: Sequence[np.ndarray], n_items: int, *,
                   mean: bool = False) -> sp.csr_matrix:
    """Users x items CSR matrix of ``histories``: 1 per history item, or ``1/len`` (``mean``).

    One sparse product with it replaces a Python loop over users (profile = mean of the
    history's rows, or the sum of their similarity rows).
    """
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    cols = (np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
            if lengths.sum() else np.zeros(0, dtype=np.int64))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    data = (1.0 / np.repeat(np.maximum(lengths, 1), lengths) if mean
            else np.ones(len(cols))).astype(np.float32)
    m = sp.csr_matrix((data, cols, indptr), shape=(len(histories), n_items))
    m.sum_duplicates()
    if not mean:
        m.data[:] = 1.0
    return m


def popularity_fallback(scores: np.ndarray, rows: np.ndarray, popularity: Popularity,
                        item_rows: np.ndarray) -> np.ndarray:
    """``scores`` with the boolean ``rows`` (users the model has nothing for) replaced by
    popularity, scaled into ``(-1, 1)`` so it never outranks a real score's scale."""
    if rows.any():
        pop = popularity.item_scores_[item_rows]
        scores[rows] = pop / (np.abs(pop).max() + 1.0)
    return scores


class Baseline(Protocol):
    """What the runner needs from a baseline."""

    name: str
    regimes: frozenset[str]

    def fit(self, train: TrainData, item_vectors: np.ndarray) -> Baseline: ...

    def score(self, user_rows: np.ndarray, item_rows: np.ndarray,
              histories: Sequence[np.ndarray] | None = None) -> np.ndarray: ...


def _check(model: object, attr: str) -> None:
    if not hasattr(model, attr):
        raise NotFittedError(f"{type(model).__name__} is not fitted: call fit(train, "
                             "item_vectors) first")


class RandomScores:
    """Uniform random scores; the floor every model must clear."""

    regimes = ALL_REGIMES

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.name = "random"

    def fit(self, train: TrainData, item_vectors: np.ndarray) -> RandomScores:
        self.rng_ = np.random.default_rng(self.seed)
        return self

    def score(self, user_rows: np.ndarray, item_rows: np.ndarray,
              histories: Sequence[np.ndarray] | None = None) -> np.ndarray:
        _check(self, "rng_")
        out: np.ndarray = self.rng_.random((len(user_rows), len(item_rows)))
        return out


def attribute_popularity(items: pd.DataFrame, counts: np.ndarray) -> np.ndarray:
    """``log1p(brand total) + log1p(category total)`` of training interactions, per item row.

    A missing brand or category adds 0.
    """
    score = np.zeros(len(items))
    for col in ("brand", "category"):
        if col not in items:
            continue
        key = items[col].astype(object)
        missing = key.isna().to_numpy()
        totals = pd.Series(counts).groupby(key.fillna("\x00").to_numpy()).sum()
        per_item = totals.reindex(key.fillna("\x00").to_numpy()).to_numpy(np.float64)
        score += np.where(missing, 0.0, np.log1p(per_item))
    return score


class Popularity:
    """Global popularity; items without training interactions by brand/category popularity."""

    regimes = ALL_REGIMES

    def __init__(self) -> None:
        self.name = "popularity"

    def fit(self, train: TrainData, item_vectors: np.ndarray) -> Popularity:
        counts = train.item_counts()
        attr = attribute_popularity(train.items, counts)
        # cold items below every item with a count, ordered among themselves by attributes
        self.item_scores_ = np.where(counts > 0, counts, attr / (attr.max() + 1.0))
        return self

    def score(self, user_rows: np.ndarray, item_rows: np.ndarray,
              histories: Sequence[np.ndarray] | None = None) -> np.ndarray:
        _check(self, "item_scores_")
        return np.tile(self.item_scores_[item_rows], (len(user_rows), 1))


class ContentKNN:
    """Cosine between a user's mean history text vector and each item's text vector."""

    regimes = ALL_REGIMES

    def __init__(self) -> None:
        self.name = "content_knn"

    def fit(self, train: TrainData, item_vectors: np.ndarray) -> ContentKNN:
        v = np.asarray(item_vectors, dtype=np.float64)
        self.vectors_ = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        self.histories_ = train.histories()
        self.popularity_ = Popularity().fit(train, item_vectors)
        return self

    def score(self, user_rows: np.ndarray, item_rows: np.ndarray,
              histories: Sequence[np.ndarray] | None = None) -> np.ndarray:
        _check(self, "vectors_")
        hist = histories if histories is not None else [self.histories_[u] for u in user_rows]
        mean = history_matrix(hist, len(self.vectors_), mean=True)
        users = np.asarray(mean @ self.vectors_)
        users /= np.maximum(np.linalg.norm(users, axis=1, keepdims=True), 1e-12)
        out: np.ndarray = users @ self.vectors_[item_rows].T
        # no history at all: popularity
        return popularity_fallback(out, np.diff(mean.indptr) == 0, self.popularity_, item_rows)


_TOKEN = re.compile(r"[a-z0-9]+")


def _one_hot(values: pd.Series, prefix: str) -> tuple[sp.csr_matrix, list[str]]:
    """Indicator matrix of multi-valued (``|``-joined) categorical values."""
    key = values.astype(object).where(values.notna(), None)
    rows: list[int] = []
    cols: list[int] = []
    index: dict[str, int] = {}
    for r, v in enumerate(key):
        if v is None:
            continue
        for part in str(v).split("|"):
            part = part.strip()
            if not part:
                continue
            c = index.setdefault(f"{prefix}={part}", len(index))
            rows.append(r)
            cols.append(c)
    names = list(index)
    m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(values), len(names)))
    m.data[:] = 1.0
    return m, names


def _row_normalize(m: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(m.sum(axis=1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sp.csr_matrix(sp.diags(inv) @ m, dtype=np.float32)


def lightfm_item_features(items: pd.DataFrame, warm: np.ndarray, *, min_df: int = 2,
                          max_tokens: int = 20_000) -> sp.csr_matrix:
    """Brand, category, text tokens, and identity for ``warm`` item rows; L1-row-normalised."""
    from sklearn.feature_extraction.text import CountVectorizer

    parts = []
    for col in items.columns:
        if col in ("item_id", "title", "description", "price"):
            continue
        parts.append(_one_hot(items[col], col)[0])
    text = (items.get("title", pd.Series("", index=items.index)).fillna("").astype(str) + " "
            + items.get("description", pd.Series("", index=items.index)).fillna("").astype(str))
    vec = CountVectorizer(token_pattern=r"[A-Za-z0-9]+", lowercase=True, min_df=min_df,
                          max_features=max_tokens, binary=True, dtype=np.float32)
    with contextlib.suppress(ValueError):  # ValueError: empty vocabulary (no text at all)
        parts.append(sp.csr_matrix(vec.fit_transform(text.tolist())))
    n = len(items)
    ident = sp.csr_matrix((np.ones(int(warm.sum())), (np.nonzero(warm)[0],
                                                      np.arange(int(warm.sum())))),
                          shape=(n, int(warm.sum())))
    parts.append(ident)
    return _row_normalize(sp.csr_matrix(sp.hstack(parts)))


def lightfm_user_features(users: pd.DataFrame, identity: np.ndarray) -> sp.csr_matrix:
    """Profile attributes, and identity for ``identity`` user rows; L1-row-normalised."""
    parts = [_one_hot(users[c], c)[0] for c in users.columns if c != "user_id"]
    n, k = len(users), int(identity.sum())
    parts.append(sp.csr_matrix((np.ones(k), (np.nonzero(identity)[0], np.arange(k))),
                               shape=(n, k)))
    return _row_normalize(sp.csr_matrix(sp.hstack(parts)))


def _require(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"the {module!r} package is not installed; install the optional "
                          f"extra: pip install 'kgrec[{extra}]' (see README, Evaluation)")


class LightFMBaseline:
    """LightFM hybrid matrix factorisation with side features (WARP loss).

    Args:
        no_components: Latent size, default 64.
        epochs: Training epochs, default 30.
        learning_rate: Default 0.05.
        item_alpha, user_alpha: L2 penalties on feature embeddings, default 1e-6.
        num_threads: Default 1.
        seed: Random state.

    Raises:
        ConfigError: ``lightfm`` is not installed (raised by ``fit``).
    """

    regimes = ALL_REGIMES

    def __init__(self, no_components: int = 64, epochs: int = 30, learning_rate: float = 0.05,
                 item_alpha: float = 1e-6, user_alpha: float = 1e-6, num_threads: int = 1,
                 seed: int = 0) -> None:
        self.no_components = no_components
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.item_alpha = item_alpha
        self.user_alpha = user_alpha
        self.num_threads = num_threads
        self.seed = seed
        self.name = "lightfm"

    def fit(self, train: TrainData, item_vectors: np.ndarray) -> LightFMBaseline:
        _require("lightfm", "eval")
        from lightfm import LightFM

        counts = train.item_counts()
        user_counts = np.bincount(train.pairs[0], minlength=train.n_users)
        self.item_features_ = lightfm_item_features(train.items, counts > 0)
        self.user_features_ = lightfm_user_features(train.users, user_counts > 0)
        # cold users: profile only (their identity column is absent, never trained)
        self.profile_features_ = lightfm_user_features(train.users,
                                                       np.zeros(train.n_users, dtype=bool))
        inter = sp.coo_matrix((np.ones(train.pairs.shape[1], dtype=np.float32),
                               (train.pairs[0], train.pairs[1])),
                              shape=(train.n_users, train.n_items))
        self.model_ = LightFM(no_components=self.no_components, loss="warp",
                              learning_rate=self.learning_rate, item_alpha=self.item_alpha,
                              user_alpha=self.user_alpha, random_state=self.seed)
        self.model_.fit(inter, user_features=self.user_features_,
                        item_features=self.item_features_, epochs=self.epochs,
                        num_threads=self.num_threads)
        self.item_bias_, self.item_emb_ = self.model_.get_item_representations(
            self.item_features_)
        _, self.user_emb_ = self.model_.get_user_representations(self.user_features_)
        n_prof = self.profile_features_.shape[1]
        # profile-only representation: the same feature columns minus identities
        full = self.user_features_.shape[1]
        prof = sp.hstack([self.profile_features_,
                          sp.csr_matrix((train.n_users, full - n_prof))]).tocsr()
        _, self.profile_emb_ = self.model_.get_user_representations(prof)
        return self

    def score(self, user_rows: np.ndarray, item_rows: np.ndarray,
              histories: Sequence[np.ndarray] | None = None) -> np.ndarray:
        _check(self, "model_")
        if histories is None:
            users = self.user_emb_[user_rows]
        else:
            users = self.profile_emb_[user_rows].copy()
            for r, h in enumerate(histories):
                if len(h):
                    users[r] += self.item_emb_[h].mean(axis=0)
        out: np.ndarray = users @ self.item_emb_[item_rows].T + self.item_bias_[item_rows]
        return out


class ALSBaseline:
    """implicit's alternating least squares on the training interactions (warm regime only).

    Args:
        factors: Latent size, default 64.
        iterations: ALS sweeps, default 15.
        regularization: Default 0.05.
        alpha: Confidence weight of an interaction, default 1.0.
        seed: Random state.

    Raises:
        ConfigError: ``implicit`` is not installed (raised by ``fit``).
    """

    regimes = frozenset({"warm"})

    def __init__(self, factors: int = 64, iterations: int = 15, regularization: float = 0.05,
                 alpha: float = 1.0, seed: int = 0) -> None:
        self.factors = factors
        self.iterations = iterations
        self.regularization = regularization
        self.alpha = alpha
        self.seed = seed
        self.name = "als"

    def fit(self, train: TrainData, item_vectors: np.ndarray) -> ALSBaseline:
        _require("implicit", "eval")
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        m = sp.csr_matrix((np.ones(train.pairs.shape[1], dtype=np.float32),
                           (train.pairs[0], train.pairs[1])),
                          shape=(train.n_users, train.n_items))
        m.data[:] = 1.0
        with threadpool_limits(1, "blas"):
            self.model_ = AlternatingLeastSquares(factors=self.factors,
                                                  iterations=self.iterations,
                                                  regularization=self.regularization,
                                                  alpha=self.alpha, random_state=self.seed)
            self.model_.fit(m, show_progress=False)
        return self

    def score(self, user_rows: np.ndarray, item_rows: np.ndarray,
              histories: Sequence[np.ndarray] | None = None) -> np.ndarray:
        _check(self, "model_")
        if histories is not None:
            raise ValueError("ALS scores warm users only (no fold-in of revealed interactions)")
        u = np.asarray(self.model_.user_factors)[user_rows]
        out: np.ndarray = u @ np.asarray(self.model_.item_factors)[item_rows].T
        return out


def available_baselines(names: Sequence[str], seed: int = 0) -> list[Baseline]:
    """Baselines by name (``_names.BASELINES``: ``random``, ``popularity``, ``content_knn``,
    ``tfidf_knn``, ``tfidf_bert_blend``, ``lightfm``, ``als``, ``ease``, ``item_knn``);
    optional ones whose package is missing are skipped with a logged note.

    Raises:
        ConfigError: an unknown name.
    """
    from kgrec.evaluation.baselines_cf import EASE, ItemKNN
    from kgrec.evaluation.baselines_content import TfidfBertBlend, TfidfKNN

    plain: dict[str, Callable[[], Baseline]] = {
        "random": lambda: RandomScores(seed), "popularity": Popularity,
        "content_knn": ContentKNN, "tfidf_knn": TfidfKNN, "tfidf_bert_blend": TfidfBertBlend,
        "ease": lambda: EASE(seed=seed), "item_knn": ItemKNN,
    }
    out: list[Baseline] = []
    for name in names:
        if name in plain:
            out.append(plain[name]())
        elif name in ("lightfm", "als"):
            module = "lightfm" if name == "lightfm" else "implicit"
            if importlib.util.find_spec(module) is None:
                logger.warning("Skipping the %s baseline: %r is not installed (pip install "
                               "'kgrec[eval]')", name, module)
                continue
            out.append(LightFMBaseline(seed=seed) if name == "lightfm" else ALSBaseline(seed=seed))
        else:
            raise ConfigError(f"unknown baseline {name!r}; choose from "
                              f"{', '.join(BASELINES)}")
    return out
