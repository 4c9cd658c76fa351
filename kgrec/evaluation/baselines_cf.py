"""Collaborative baselines that need no side information: EASE and item-kNN CF.

Both score a user from their history alone (training items, or the ``k`` revealed items of a
cold user), so they cover the **user-cold and warm** regimes. For item cold they have nothing
to say -- a cold item has no column in the training matrix, every score would be 0 -- so they
skip that regime rather than repeat the popularity row. A user whose history gives no signal
(``k = 0``, or only items without training interactions) falls back to popularity.

* :class:`EASE` -- Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019:
  ``P = (X^T X + lambda I)^-1``, ``B = I - P diag(1/diag(P))`` (so ``diag(B) = 0``), score =
  history . ``B``. ``lambda`` is picked by Recall@20 on a validation slice carved from the
  training pairs only (:func:`validation_slice`), then ``B`` is refitted on all training pairs.
  Dense item x item float32: refused above ``max_items`` (default 20,000; 1.6 GB per matrix).
* :class:`ItemKNN` -- cosine between the item columns of the binary training matrix
  (``C_ij / sqrt(C_ii C_jj)``, ``C = X^T X``), each item keeping its ``neighbours`` (default
  100) most similar items; score = sum of the similarities from the history's items.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from kgrec.errors import ConfigError
from kgrec.evaluation.baselines import (
    Popularity,
    TrainData,
    _check,
    history_matrix,
    popularity_fallback,
)

CF_REGIMES: frozenset[str] = frozenset({"user_cold", "warm"})
EASE_LAMBDAS: tuple[float, ...] = (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)


def validation_slice(train: TrainData, share: float = 0.1,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hold out one training pair of ``share`` of the users with at least two.

    The held-out pair is the user's latest (``train.ts``; a seeded random one when ``ts`` is
    None or tied). Only ``train`` is read: no test split exists here.

    Returns:
        ``(fit_pairs (2, P - V), val_users (V,), val_items (V,))``.
    """
    pairs = train.pairs
    rng = np.random.default_rng(seed)
    counts = np.bincount(pairs[0], minlength=train.n_users)
    eligible = np.flatnonzero(counts >= 2)
    n_val = int(round(share * len(eligible)))
    if n_val == 0:
        return pairs, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    users = np.sort(rng.choice(eligible, n_val, replace=False))
    ts = train.ts if train.ts is not None else np.zeros(pairs.shape[1])
    tiebreak = np.asarray(rng.random(pairs.shape[1]))
    order = np.lexsort((tiebreak, ts, pairs[0]))          # by user, then time
    last = order[np.cumsum(counts)[users] - 1]            # each chosen user's latest pair
    keep = np.ones(pairs.shape[1], dtype=bool)
    keep[last] = False
    return pairs[:, keep], pairs[0][last], pairs[1][last]


def ease_weights(x: sp.csr_matrix, l2: float) -> np.ndarray:
    """Steck's closed form ``B = I - P diag(1/diag(P))``, ``P = (X^T X + l2 I)^-1``, diag 0.

    float32, two dense ``n_items x n_items`` matrices at the peak.
    """
    gram = np.asarray((x.T @ x).toarray(), dtype=np.float32)
    gram[np.diag_indices_from(gram)] += np.float32(l2)
    p = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
    p /= -np.diag(p)[None, :]
    np.fill_diagonal(p, 0.0)
    out: np.ndarray = p
    return out


def slice_recall(x: sp.csr_matrix, weights: np.ndarray, users: np.ndarray, items: np.ndarray,
                 k: int = 20, chunk: int = 1024) -> float:
    """Recall@``k`` of one held-out item per user: scores ``x[users] @ weights``, the user's
    other items in ``x`` excluded, ties counted at their expected rank."""
    hits = 0.0
    for s in range(0, len(users), chunk):
        u, target = users[s:s + chunk], items[s:s + chunk]
        rows = x[u]
        scores = np.asarray(rows @ weights, dtype=np.float64)
        coo = rows.tocoo()
        scores[coo.row, coo.col] = -np.inf
        t = scores[np.arange(len(u)), target][:, None]
        rank = (scores > t).sum(axis=1) + 0.5 * ((scores == t).sum(axis=1) - 1)
        hits += float((rank < k).sum())
    return hits / max(len(users), 1)


class EASE:
    """EASE item-item regression (module docstring); user-cold and warm regimes.

    Args:
        l2_grid: Candidate L2 weights, default ``(10, 50, 100, 200, 500, 1000, 2000)``; the
            first of the best by validation Recall@``val_k`` wins (a single value is used as is).
        val_share: Share of training users (with >= 2 pairs) whose latest pair is held out for
            the choice, default 0.1.
        val_k: Cut-off of the validation recall, default 20.
        max_items: Largest catalogue accepted, default 20,000 (dense float32 item x item).
        num_threads: BLAS threads of the inversions, default 1 (on a loaded 2-core machine
            one thread inverts 3-5x faster than two that wait on each other).
        seed: Seed of the validation users.

    Raises:
        ConfigError: more items than ``max_items`` (raised by ``fit``).
    """

    regimes = CF_REGIMES

    def __init__(self, l2_grid: Sequence[float] = EASE_LAMBDAS, val_share: float = 0.1,
                 val_k: int = 20, max_items: int = 20_000, num_threads: int = 1,
                 seed: int = 0) -> None:
        self.l2_grid = l2_grid
        self.val_share = val_share
        self.val_k = val_k
        self.max_items = max_items
        self.num_threads = num_threads
        self.seed = seed
        self.name = "ease"

    def fit(self, train: TrainData, item_vectors: np.ndarray) -> EASE:
        from threadpoolctl import threadpool_limits

        if train.n_items > self.max_items:
            raise ConfigError(f"EASE needs a dense item x item matrix: {train.n_items} items > "
                              f"max_items={self.max_items}; leave 'ease' out of --baselines")
        with threadpool_limits(self.num_threads, "blas"):
            self._fit(train)
        self.histories_ = train.histories()
        self.popularity_ = Popularity().fit(train, item_vectors)
        return self

    def _fit(self, train: TrainData) -> None:
        grid = sorted(float(v) for v in self.l2_grid)
        self.val_recall_: dict[float, float] = {}
        fit_pairs, users, items = validation_slice(train, self.val_share, self.seed)
        if len(grid) > 1 and len(users):
            x_fit = TrainData(train.items, train.users, fit_pairs).interaction_matrix()
            for l2 in grid:
                self.val_recall_[l2] = slice_recall(x_fit, ease_weights(x_fit, l2), users,
                                                    items, self.val_k)
            best = max(self.val_recall_.values())
            self.l2_ = next(v for v in grid if self.val_recall_[v] == best)
        else:
            self.l2_ = grid[0]
        self.weights_ = ease_weights(train.interaction_matrix(), self.l2_)

    def score(self, user_rows: np.ndarray, item_rows: np.ndarray,
              histories: Sequence[np.ndarray] | None = None) -> np.ndarray:
        _check(self, "weights_")
        hist = histories if histories is not None else [self.histories_[u] for u in user_rows]
        h = history_matrix(hist, len(self.weights_))
        out = np.asarray(h @ self.weights_, dtype=np.float64)[:, item_rows]
        return popularity_fallback(out, np.asarray(~out.any(axis=1)), self.popularity_, item_rows)


def top_k_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """``m`` keeping the ``k`` largest entries of each row (ties: lower column first)."""
    m = sp.csr_matrix(m)
    m.sort_indices()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((-m.data, rows))            # by row, then value descending (stable)
    rank = np.arange(len(order)) - m.indptr[rows[order]]
    keep = order[rank < k]
    return sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)


def cosine_item_similarity(x: sp.csr_matrix, neighbours: int | None) -> sp.csr_matrix:
    """Cosine between the item columns of binary ``x``, zero diagonal, top-``neighbours`` rows."""
    co = sp.coo_matrix(x.T @ x)
    norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())          # binary: C_ii = column count
    off = co.row != co.col
    data = co.data[off] / (norms[co.row[off]] * norms[co.col[off]])
    sim = sp.csr_matrix((data.astype(np.float32), (co.row[off], co.col[off])), shape=co.shape)
    return sim if neighbours is None else top_k_per_row(sim, neighbours)


class ItemKNN:
    """Item-based CF with cosine co-occurrence (module docstring); user-cold and warm regimes.

    Args:
        neighbours: Similar items each item keeps, default 100 (None keeps all).
    """

    regimes = CF_REGIMES

    def __init__(self, neighbours: int | None = 100) -> None:
        self.neighbours = neighbours
        self.name = "item_knn"

    def fit(self, train: TrainData, item_vectors: np.ndarray) -> ItemKNN:
        self.similarity_ = cosine_item_similarity(train.interaction_matrix(), self.neighbours)
        self.histories_ = train.histories()
        self.popularity_ = Popularity().fit(train, item_vectors)
        return self

    def score(self, user_rows: np.ndarray, item_rows: np.ndarray,
              histories: Sequence[np.ndarray] | None = None) -> np.ndarray:
        _check(self, "similarity_")
        hist = histories if histories is not None else [self.histories_[u] for u in user_rows]
        h = history_matrix(hist, self.similarity_.shape[0])
        out = np.asarray((h @ self.similarity_).toarray()[:, item_rows], dtype=np.float64)
        return popularity_fallback(out, np.asarray(~out.any(axis=1)), self.popularity_, item_rows)
