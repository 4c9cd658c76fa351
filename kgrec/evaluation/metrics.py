"""Ranking, score and beyond-accuracy metrics over full candidate sets, in user chunks.

Pure numpy. A block of users is a score matrix ``scores (b, C)`` over the regime's candidate
columns, a boolean ``valid (b, C)`` (False: not a candidate for that user, e.g. an item seen in
training) and a boolean ``truth (b, C)`` (held-out positives). Every candidate is ranked (no
sampled negatives); ties are broken by a seeded random key, so a constant scorer gets the
expected value of a random order rather than the order of the item index.

Definitions (per user ``u`` with ``P_u`` positives among ``V_u`` valid candidates, 0-based
positive ranks ``r``):

* ``Recall@K = |{r < K}| / P_u`` (``P_u`` may be given larger than the positives present, for
  a ranked file that omits some positives), ``HitRate@K = 1[any r < K]``,
  ``NDCG@K = sum_{r<K} 1/log2(r+2) / sum_{j<min(P_u,K)} 1/log2(j+2)``, ``MRR = 1/(min r + 1)``;
* ``GAUC`` = the unweighted mean over users of the per-user AUC (share of (positive, negative)
  pairs ordered correctly), users without a negative skipped;
* ``log_loss`` (scikit-learn's) and ``ECE`` (15 equal-width bins of
  :func:`kgrec.coldstart.calibration.calibration_bins`, the one binning) of probabilities
  over every valid (user, candidate) pair, label =
  held-out positive; ``citl`` (calibration-in-the-large) = mean predicted probability /
  observed positive rate over the same pairs (1 is right; 0.01 means 100x too low); only for
  scorers that output probabilities;
* ``cold_coverage@K``: share of the regime's cold items that appear in at least one top-K list;
  ``catalog_coverage@K``: share of the candidate items that do; ``popularity@K``: mean training
  interaction count of the recommended items (over all top-K slots).

All metrics are averages over users that have at least one positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import log_loss as sklearn_log_loss

from kgrec.coldstart.calibration import calibration_bins, ece_from_bins, equal_width_edges
from kgrec.evaluation._names import DEFAULT_KS

ECE_BINS = 15
ECE_EDGES = equal_width_edges(ECE_BINS)
RELIABILITY_EDGES = np.concatenate([[0.0], np.logspace(-6, 0, 25)[1:]])


def positive_ranks(scores: np.ndarray, valid: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """0-based rank of every cell in its row (best score first), ``(b, C)`` int64.

    Invalid cells rank after every valid one; equal scores are ordered by ``tiebreak`` (any
    array of the same shape with distinct values per row).
    """
    s = np.where(valid, scores.astype(np.float64), -np.inf)
    s = np.nan_to_num(s, nan=-np.inf, posinf=np.finfo(np.float64).max)
    order = np.argsort(-s, axis=-1)
    # only rows with equal valid scores need the (slower) two-key sort; same result
    top = np.take_along_axis(s, order, axis=1)
    ties = ((np.diff(top, axis=1) == 0) & np.isfinite(top[:, 1:])).any(axis=1)
    if ties.any():
        order[ties] = np.lexsort((tiebreak[ties], -s[ties]), axis=-1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(s.shape[1])[None, :].repeat(len(s), 0), axis=1)
    return ranks


def _dcg_weights(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(n) + 2.0)


@dataclass
class MetricAccumulator:
    """Streams blocks of users into the metrics of one (regime, model).

    Args:
        ks: Cut-offs, default ``(10, 20, 50)``.
        n_items: Width of ``item_index`` space (for coverage).
        cold_items: Item indices that count as cold (for ``cold_coverage``).
        candidate_items: Item indices that are candidates of the regime (coverage denominator).
        popularity: Training interaction count per item index, ``(n_items,)``.
        seed: Seed of the tie-breaking key.
    """

    ks: Sequence[int] = DEFAULT_KS
    n_items: int = 0
    cold_items: np.ndarray | None = None
    candidate_items: np.ndarray | None = None
    popularity: np.ndarray | None = None
    seed: int = 0
    _per_user: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)
    _seen: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _pop_sum: dict[int, float] = field(default_factory=dict, repr=False)
    _slots: dict[int, int] = field(default_factory=dict, repr=False)
    _bins: np.ndarray = field(default_factory=lambda: np.zeros((3, ECE_BINS)), repr=False)
    _rel: np.ndarray = field(default_factory=lambda: np.zeros((3, len(RELIABILITY_EDGES) - 1)),
                             repr=False)
    _ll: list[float] = field(default_factory=lambda: [0.0, 0.0], repr=False)
    _has_proba: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        for k in self.ks:
            self._seen[k] = np.zeros(max(self.n_items, 0), dtype=bool)
            self._pop_sum[k], self._slots[k] = 0.0, 0

    def add(self, scores: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None, *,
            columns: np.ndarray | None = None, n_positives: np.ndarray | None = None,
            proba: bool = False) -> None:
        """Add a block of users.

        Args:
            scores: ``(b, C)``, higher is better.
            truth: ``(b, C)`` bool, held-out positives.
            valid: ``(b, C)`` bool candidates; default all.
            columns: Item index of each column ``(C,)``, or of each cell ``(b, C)`` when
                users have different candidates (coverage/popularity); default ``arange(C)``.
            n_positives: Per-user positive count ``(b,)`` when larger than ``truth.sum(1)``.
            proba: ``scores`` are probabilities: also accumulate log-loss and ECE.

        Raises:
            ValueError: shapes disagree, or a positive is not a valid candidate.
        """
        scores = np.asarray(scores)
        truth = np.asarray(truth, dtype=bool)
        valid = np.ones_like(truth) if valid is None else np.asarray(valid, dtype=bool)
        if scores.shape != truth.shape or valid.shape != truth.shape:
            raise ValueError(f"scores {scores.shape}, truth {truth.shape} and valid "
                             f"{valid.shape} must have the same shape")
        if (truth & ~valid).any():
            raise ValueError("a held-out positive is not a valid candidate")
        npos = truth.sum(1) if n_positives is None else np.asarray(n_positives)
        keep = npos > 0
        scores, truth, valid, npos = scores[keep], truth[keep], valid[keep], npos[keep]
        if not len(scores):
            return
        cols = np.arange(scores.shape[1]) if columns is None else np.asarray(columns)
        tiebreak = self._rng.random(scores.shape)
        ranks = positive_ranks(scores, valid, tiebreak)
        big = max(scores.shape[1], *self.ks) + 1  # never below a cut-off
        pr = np.where(truth, ranks, big)                    # positive ranks, others "never"
        out: dict[str, np.ndarray] = {}
        w = _dcg_weights(scores.shape[1])
        for k in self.ks:
            hit = pr < k
            out[f"recall@{k}"] = hit.sum(1) / npos
            out[f"hit_rate@{k}"] = np.asarray(hit.any(1), dtype=np.float64)
            gains = np.asarray(np.where(hit, w[np.minimum(pr, len(w) - 1)], 0.0).sum(1))
            ideal = np.cumsum(w)[np.minimum(np.minimum(npos, k), len(w)) - 1]
            out[f"ndcg@{k}"] = gains / ideal
            self._coverage(ranks, valid, cols, k)
        best = pr.min(1)
        out["mrr"] = np.where(best < big, 1.0 / (best + 1.0), 0.0)
        n_valid = valid.sum(1)
        p_in = truth.sum(1)
        n_neg = n_valid - p_in
        sum_after = np.where(truth, n_valid[:, None] - 1 - ranks, 0).sum(1)
        correct = sum_after - p_in * (p_in - 1) / 2.0       # negatives ranked below positives
        auc = np.where(n_neg > 0, correct / np.maximum(p_in * n_neg, 1), np.nan)
        # positives missing from the candidates (a ranked file that omits them) rank last
        out["gauc"] = np.where(p_in > 0, auc * p_in / npos, np.where(n_neg > 0, 0.0, np.nan))
        for name, v in out.items():
            self._per_user.setdefault(name, []).append(v.astype(np.float64))
        if proba:
            self._has_proba = True
            p = np.clip(scores[valid].astype(np.float64), 0.0, 1.0)
            y = truth[valid].astype(np.float64)
            self._ll[0] += float(sklearn_log_loss(y, p, normalize=False, labels=[0, 1]))
            self._ll[1] += float(len(p))
            self._bins += calibration_bins(y, p, ECE_EDGES)
            self._rel += calibration_bins(y, p, RELIABILITY_EDGES)

    def _coverage(self, ranks: np.ndarray, valid: np.ndarray, cols: np.ndarray, k: int) -> None:
        top = (ranks < k) & valid
        if not self.n_items:
            return
        items = cols[top] if cols.ndim == 2 else cols[np.nonzero(top)[1]]
        self._seen[k][items] = True
        if self.popularity is not None:
            self._pop_sum[k] += float(self.popularity[items].sum())
            self._slots[k] += len(items)

    @property
    def n_users(self) -> int:
        return sum(len(v) for v in self._per_user.get("mrr", []))

    def result(self) -> dict[str, float]:
        """Metric name -> value (NaN where undefined), plus ``users``."""
        res: dict[str, float] = {"users": float(self.n_users)}
        for name, parts in self._per_user.items():
            v = np.concatenate(parts)
            res[name] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
        if self._has_proba and self._ll[1] > 0:
            res["log_loss"] = self._ll[0] / self._ll[1]
            res["ece"] = ece_from_bins(self._bins)
            observed = self._bins[1].sum()
            res["citl"] = float(self._bins[2].sum() / observed) if observed > 0 \
                else float("nan")
        else:
            res["log_loss"] = res["ece"] = res["citl"] = float("nan")
        for k in self.ks:
            if not self.n_items:
                continue
            seen = self._seen[k]
            cand = self.candidate_items
            res[f"catalog_coverage@{k}"] = float(seen[cand].mean()) if cand is not None and \
                len(cand) else float(seen.mean())
            cold = self.cold_items
            res[f"cold_coverage@{k}"] = float(seen[cold].mean()) if cold is not None and \
                len(cold) else float("nan")
            res[f"popularity@{k}"] = (self._pop_sum[k] / self._slots[k]) if self._slots[k] \
                else float("nan")
        return res

    def reliability(self) -> dict[str, list[float]]:
        """Per-bin ``count``, ``sum_label``, ``sum_proba`` on log-spaced probability bins
        (``RELIABILITY_EDGES``, 1e-6 .. 1): the data of the reliability diagram. Equal-width
        bins (used for ECE) would put almost every pair in the first bin when positives are
        rare."""
        n, y, p = self._rel
        return {"count": n.tolist(), "sum_label": y.tolist(), "sum_proba": p.tolist()}


def evaluate_matrix(scores: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None, *,
                    ks: Sequence[int] = DEFAULT_KS, proba: bool = False,
                    popularity: np.ndarray | None = None, cold_items: np.ndarray | None = None,
                    seed: int = 0) -> dict[str, float]:
    """All metrics of one small score matrix whose columns are the item indices ``0..C-1``."""
    n = scores.shape[1]
    acc = MetricAccumulator(ks=ks, n_items=n, cold_items=cold_items,
                            candidate_items=np.arange(n), popularity=popularity, seed=seed)
    acc.add(scores, truth, valid, proba=proba)
    return acc.result()
