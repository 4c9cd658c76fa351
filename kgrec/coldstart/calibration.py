"""Probability calibration for the CTR head, and the two scores that check it.

Why: the head is trained on sampled negatives (``neg_ratio`` per positive, half of them popular
items), so its raw sigmoid says "chance this pair is a positive among a few sampled items", not
"chance the user clicks this item among all candidates". :class:`PlattCalibrator` maps logits to
the second meaning with two parameters ``p = sigmoid(a * logit + b)``, fitted by weighted
maximum likelihood on validation pairs whose negative weights restore the real base rate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.special import expit
from sklearn.metrics import log_loss as sklearn_log_loss
from torch import Tensor

from kgrec.coldstart.pairs import SHORT_HISTORY_MAX, PairInputs
from kgrec.coldstart.sampling import first_clicks, hide_latest

logger = logging.getLogger(__name__)


def _check(y_true: np.ndarray, y_prob: np.ndarray,
           sample_weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_prob, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_prob differ in length: {y.shape[0]} vs {p.shape[0]}")
    if len(y) == 0:
        raise ValueError("no pairs to score: y_true is empty")
    if ((p < 0) | (p > 1)).any() or np.isnan(p).any():
        raise ValueError("y_prob must hold probabilities in [0, 1]")
    w = np.ones_like(y) if sample_weight is None else \
        np.asarray(sample_weight, dtype=np.float64).ravel()
    if w.shape != y.shape or (w < 0).any() or w.sum() <= 0:
        raise ValueError("sample_weight must be non-negative, one per pair, not all zero")
    return y, p, w


def log_loss(y_true: np.ndarray, y_prob: np.ndarray,
             sample_weight: np.ndarray | None = None) -> float:
    """Weighted mean binary cross-entropy (natural log): scikit-learn's ``log_loss`` after the
    checks below (both labels declared, so a slice with one class still scores).

    Args:
        y_true: 0/1 labels, shape ``(n,)``.
        y_prob: Predicted probabilities of label 1, shape ``(n,)``.
        sample_weight: Optional non-negative weight per pair (default: all 1).

    Raises:
        ValueError: shapes differ, input is empty, or probabilities lie outside [0, 1].
    """
    y, p, w = _check(y_true, y_prob, sample_weight)
    return float(sklearn_log_loss(y, p, sample_weight=w, labels=[0, 1]))


def calibration_bins(y_true: np.ndarray, y_prob: np.ndarray, edges: np.ndarray,
                     sample_weight: np.ndarray | None = None) -> np.ndarray:
    """``(3, bins)``: weight, weighted label sum and weighted probability sum per bin.

    ``edges`` are increasing bin edges from 0 to 1 (a probability equal to an inner edge goes to
    the upper bin; 1 goes to the last). The one binning behind ECE and the reliability diagram;
    bins of several blocks add up, so streaming metrics sum these arrays.
    """
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_prob, dtype=np.float64).ravel()
    w = np.ones_like(y) if sample_weight is None else \
        np.asarray(sample_weight, dtype=np.float64).ravel()
    n = len(edges) - 1
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n - 1)
    return np.stack([np.bincount(b, weights=w, minlength=n),
                     np.bincount(b, weights=w * y, minlength=n),
                     np.bincount(b, weights=w * p, minlength=n)])


def ece_from_bins(bins: np.ndarray) -> float:
    """ECE of :func:`calibration_bins` output: ``sum |label sum - prob sum| / total weight``."""
    total = bins[0].sum()
    return float(np.abs(bins[1] - bins[2]).sum() / total) if total > 0 else float("nan")


def equal_width_edges(n_bins: int) -> np.ndarray:
    """``n_bins`` equal-width bins on [0, 1] (ECE's usual binning)."""
    return np.linspace(0.0, 1.0, n_bins + 1)


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 15,
                               sample_weight: np.ndarray | None = None) -> float:
    """ECE: weighted mean over equal-width probability bins of ``|mean label - mean prob|``.

    Each bin counts with its share of the total weight, so the number reads as "average gap
    between predicted and observed click rate". With rare positives almost all weight sits in the
    lowest bin, so compare ECE with the base rate, not with 0.

    Args:
        y_true: 0/1 labels, shape ``(n,)``.
        y_prob: Predicted probabilities, shape ``(n,)``.
        n_bins: Equal-width bins on [0, 1], default 15.
        sample_weight: Optional non-negative weight per pair.

    Raises:
        ValueError: bad shapes or probabilities, or ``n_bins`` < 1.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y, p, w = _check(y_true, y_prob, sample_weight)
    return ece_from_bins(calibration_bins(y, p, equal_width_edges(n_bins), w))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """scipy's ``expit``: overflow-free and exact in relative terms far into the tail, where a
    calibrated click chance of 1e-20 still has to rank above one of 1e-21 (``0.5 * (1 +
    tanh(z / 2))`` rounded every chance below about 1e-16 to 0, and ties broke the order)."""
    out: np.ndarray = expit(np.asarray(z, dtype=np.float64))
    return out


MIN_SLOPE = 0.05  # a fitted Platt slope below this keeps slope 1 (see PlattCalibrator.fit)


class PlattCalibrator:
    """``p = sigmoid(a * logit + b)`` fitted by weighted Newton steps (two parameters).

    The slope is kept positive: a fitted slope below ``MIN_SLOPE`` (logits that rank pairs
    within a user but not across users) gives slope 1 and a fitted intercept, so a calibration
    never ties or reverses the rankings it is applied to.

    Args:
        max_iter: Newton iterations, default 100.
        l2: Tiny ridge on ``a`` and ``b`` so separable data still converge, default 1e-6.

    Attributes:
        a_, b_: The fitted slope and intercept (``a_ = 1, b_ = 0`` is the identity).
    """

    def __init__(self, max_iter: int = 100, l2: float = 1e-6) -> None:
        self.max_iter = max_iter
        self.l2 = l2

    def __repr__(self) -> str:
        fitted = f", a_={self.a_:.4g}, b_={self.b_:.4g}" if hasattr(self, "a_") else ""
        return f"PlattCalibrator(max_iter={self.max_iter}{fitted})"

    def fit(self, logits: np.ndarray, y_true: np.ndarray,
            sample_weight: np.ndarray | None = None, *,
            slope: float | None = None) -> PlattCalibrator:
        """Fit ``a_``, ``b_`` on raw ``logits`` and 0/1 labels; returns ``self``. ``slope``:
        keep this slope and fit the intercept only (a small slice sharing a larger one's).

        Raises:
            ValueError: bad shapes or weights, or only one class present.
        """
        z = np.asarray(logits, dtype=np.float64).ravel()
        y, _, w = _check(y_true, np.full_like(z, 0.5), sample_weight)
        if y.min() == y.max():
            raise ValueError("calibration needs both positive and negative pairs")
        w = w / w.mean()
        if slope is None:
            theta = self._newton(np.stack([z, np.ones_like(z)], axis=1), np.zeros_like(z), y,
                                 w, np.array([1.0, 0.0]))
            if theta[0] < MIN_SLOPE:
                # a flat or reversed slope would tie or flip every ranking it is applied to
                # (the logits rank within a user, but their level across users runs the other
                # way); keep the raw logits' order and fit the level only
                logger.warning("Platt slope %.3g below %g: keeping slope 1 (the logits' "
                               "ranking) and fitting the intercept only", theta[0], MIN_SLOPE)
                slope = 1.0
        if slope is not None:
            theta = np.array([slope, self._newton(np.ones((len(z), 1)), slope * z, y, w,
                                                  np.zeros(1))[0]])
        self.a_, self.b_ = float(theta[0]), float(theta[1])
        logger.debug("Platt calibration: a=%.4g b=%.4g", self.a_, self.b_)
        return self

    def _newton(self, x: np.ndarray, offset: np.ndarray, y: np.ndarray, w: np.ndarray,
                theta: np.ndarray) -> np.ndarray:
        """Damped Newton steps on the weighted log-loss of ``sigmoid(x @ theta + offset)``."""
        eye = np.eye(x.shape[1])

        def objective(t: np.ndarray) -> float:
            s = x @ t + offset  # weighted negative log-likelihood, overflow-free, plus ridge
            nll = np.logaddexp(0.0, s) - y * s
            return float(np.sum(w * nll) + 0.5 * self.l2 * t @ t)

        current = objective(theta)
        for _ in range(self.max_iter):
            p = _sigmoid(x @ theta + offset)
            grad = x.T @ (w * (p - y)) + self.l2 * theta
            hess = (x * (w * p * (1 - p))[:, None]).T @ x + self.l2 * eye
            step = np.linalg.solve(hess, grad)
            scale = 1.0  # damped Newton: halve the step until the loss goes down
            while scale > 1e-8:
                trial = theta - scale * step
                value = objective(trial)
                if value <= current:
                    break
                scale *= 0.5
            else:
                break
            theta, moved = trial, current - value
            current = value
            if np.abs(scale * step).max() < 1e-10 or moved < 1e-12 * max(1.0, abs(current)):
                break
        return theta

    def transform_logits(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated logits ``a_ * logits + b_`` (monotone, so rankings are unchanged)."""
        return self.a_ * np.asarray(logits, dtype=np.float64) + self.b_

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw ``logits`` (any shape)."""
        return _sigmoid(self.transform_logits(logits))


# (users, items) of pairs -> raw head logits on the training graph, ``(n,)``
LogitFn = Callable[[Tensor, Tensor], np.ndarray]


def calibrate_on_validation(logit_fn: LogitFn, val: Tensor, n_items: int, known: Tensor,
                            m: int, gen: torch.Generator, *, candidates: Tensor | None = None,
                            n_pos: Tensor | None = None) -> tuple[PlattCalibrator,
                                                                  dict[str, Any]]:
    """Platt-scale on validation pairs weighted to the real base rate; returns the calibrator
    and its report (slope, intercept, held-out ECE and log-loss).

    Each validation positive ``val`` ``(2, n)`` gets ``m`` negatives drawn uniformly from the
    candidates (all ``n_items``, or the item indices ``candidates``). A user with ``n_pos[user]``
    positives in ``val`` (default 1) has them among ``N - known[user]`` other candidates, so each
    sampled negative stands for ``(N - known) / (m * n_pos)`` real ones. Half of the positives
    fit, the other half report (both halves when fewer than 20).
    """
    if val.shape[1] == 0:
        logger.warning("No validation pairs: probabilities are uncalibrated")
        calibrator = PlattCalibrator()
        calibrator.a_, calibrator.b_ = 1.0, 0.0
        return calibrator, {"a": 1.0, "b": 0.0, "n_pos": 0, "held_out": False}
    return _platt(*_scored(logit_fn, val, n_items, known, m, gen, candidates, n_pos), m, gen)


Scored = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # logits, labels, weights, rows


def _scored(logit_fn: LogitFn, val: Tensor, n_items: int, known: Tensor, m: int,
            gen: torch.Generator, candidates: Tensor | None, n_pos: Tensor | None) -> Scored:
    """The weighted pairs of :func:`calibrate_on_validation`: ``row`` is the index of the
    validation positive each pair belongs to (its own or one of its ``m`` negatives)."""
    n_val = val.shape[1]
    if candidates is None:
        negs, n_cand = torch.randint(n_items, (n_val, m), generator=gen), n_items
    else:
        negs = candidates[torch.randint(len(candidates), (n_val, m), generator=gen)]
        n_cand = len(candidates)
    users = torch.cat([val[0], val[0].repeat_interleave(m)])
    items = torch.cat([val[1], negs.reshape(-1)])
    logits = logit_fn(users, items)
    weight = (n_cand - known[val[0]]).clamp(min=1).double() / m
    if n_pos is not None:
        weight = weight / n_pos[val[0]].clamp(min=1).double()
    row = np.concatenate([np.arange(n_val), np.repeat(np.arange(n_val), m)])
    y = np.concatenate([np.ones(n_val), np.zeros(n_val * m)])
    w = np.concatenate([np.ones(n_val), np.repeat(weight.numpy(), m)])
    return logits, y, w, row


def _platt(logits: np.ndarray, y: np.ndarray, w: np.ndarray, row: np.ndarray, m: int,
           gen: torch.Generator, slope: float | None = None
           ) -> tuple[PlattCalibrator, dict[str, Any]]:
    """Fit on half of the validation positives (``row``: 0..n-1) and report on the other
    (``slope``: see :meth:`PlattCalibrator.fit`)."""
    n_val = int(row.max()) + 1
    calibrator = PlattCalibrator()
    perm = torch.randperm(n_val, generator=gen).numpy()
    held_out = n_val >= 20
    fit_rows = perm[: n_val // 2] if held_out else perm
    rep_rows = perm[n_val // 2:] if held_out else perm
    fit_mask, rep_mask = np.isin(row, fit_rows), np.isin(row, rep_rows)
    calibrator.fit(logits[fit_mask], y[fit_mask], w[fit_mask], slope=slope)
    p = calibrator.predict_proba(logits[rep_mask])
    report = {
        "a": calibrator.a_, "b": calibrator.b_, "n_pos": int(len(rep_rows)),
        "held_out": held_out, "negatives_per_pos": m,
        "base_rate": float(np.sum(w[rep_mask] * y[rep_mask]) / np.sum(w[rep_mask])),
        "ece": expected_calibration_error(y[rep_mask], p, sample_weight=w[rep_mask]),
        "log_loss": log_loss(y[rep_mask], p, sample_weight=w[rep_mask]),
    }
    logger.info("Calibration: %s", report)
    return calibrator, report


NEW_ITEM, NEW_USER = "new_item", "new_user"  # calibration regimes beside the warm one
FEW_CLICKS = "few_clicks"  # users with 1..FEW_CLICKS_MAX history items
FEW_CLICKS_MAX = SHORT_HISTORY_MAX
MIN_REGIME_POSITIVES = 20
MAX_REGIME_POSITIVES = 5000  # positives scored for a regime's calibration (with m negatives)
WARM_WINDOW = 0.2  # the warm target: a user's next fifth of their history (at least one item)


def _at_most(pos: Tensor, n: int, gen: torch.Generator) -> Tensor:
    """At most ``n`` of the pairs ``pos`` ``(2, P)``, drawn uniformly (order kept)."""
    if pos.shape[1] <= n:
        return pos
    return pos[:, torch.sort(torch.randperm(pos.shape[1], generator=gen)[:n]).values]


def calibrate_warm(logit_fn_on: Callable[[Tensor, Tensor], LogitFn], pos: Tensor,
                   pos_time: Tensor, train_idx: Tensor, val_idx: Tensor, cold_idx: Tensor,
                   n_users: int, n_items: int, m: int, gen: torch.Generator
                   ) -> tuple[PlattCalibrator, dict[str, Any]]:
    """The warm calibration: the chance a user with a history takes the item among their next
    interactions, as many as ``WARM_WINDOW`` of their history (at least one).

    Why: one next item per user says "the chance this is the very next item", which on
    MovieLens under-predicted the evaluation's warm truth (the latest fifth of each history)
    about 15x: a long history goes on to many items. Fitted on the validation users with their
    latest fifth (the validation positive among it) hidden from the graph, each hidden item
    ranked among every item but the held-out new SKUs and the user's own. (Scoring only the
    validation positive, the one pair training never saw, standing for the whole fifth was
    tried: MovieLens validation calibration-in-the-large 0.37-0.41 against 0.62.) Users left
    with 1 to ``FEW_CLICKS_MAX`` items are served by the few-clicks calibrations, so they are
    left out here when ``MIN_REGIME_POSITIVES`` positives of longer histories remain.
    """
    hidden = hide_latest(pos[:, train_idx], pos_time[train_idx], pos[:, val_idx],
                         pos_time[val_idx], torch.unique(pos[0, val_idx]), n_users, WARM_WINDOW)
    truth = hidden.pos[:, hidden.held]
    shown = torch.bincount(hidden.pos[0, ~hidden.held], minlength=n_users)
    longer = truth[:, shown[truth[0]] > FEW_CLICKS_MAX]
    if longer.shape[1] >= MIN_REGIME_POSITIVES:
        truth = longer
    n_pos = torch.bincount(truth[0], minlength=n_users)
    candidate = torch.ones(n_items, dtype=torch.bool)
    candidate[pos[1, cold_idx]] = False  # the held-out new SKUs have a calibration of their own
    return calibrate_on_validation(
        logit_fn_on(hidden.msg, hidden.msg_time),
        _at_most(truth, MAX_REGIME_POSITIVES, gen), n_items, shown + n_pos, m, gen,
        candidates=torch.nonzero(candidate).squeeze(1), n_pos=n_pos)


class ScopedCalibrator(PlattCalibrator):
    """The new-SKU calibration, whose level follows the number of new SKUs in the list.

    Why: on sparse data a user who takes a new SKU takes about one, however many are listed,
    so the chance per SKU falls as ``1 / n``; on dense data a user takes a share of the list,
    and it does not fall. Fitted on lists of ``items`` held-out items, the calibrated logit of
    a list of ``n`` gets ``exponent * log(items / n)`` (:func:`scope_exponent`). Amazon
    validation: calibration-in-the-large 2.6 on lists 2.5x longer than the calibration's.
    """

    def __init__(self, items: int, exponent: float, max_iter: int = 100,
                 l2: float = 1e-6) -> None:
        super().__init__(max_iter, l2)
        self.items = items
        self.exponent = exponent

    @classmethod
    def of(cls, cal: PlattCalibrator, items: int, exponent: float) -> ScopedCalibrator:
        out = cls(items, exponent, cal.max_iter, cal.l2)
        out.a_, out.b_ = cal.a_, cal.b_
        return out

    def for_scope(self, n: int) -> PlattCalibrator:
        """The plain calibration of a list of ``n`` items."""
        out = PlattCalibrator(self.max_iter, self.l2)
        out.a_ = self.a_
        out.b_ = self.b_ + self.exponent * float(np.log(self.items / max(n, 1)))
        return out


SCOPE_SHARE, SCOPE_DRAWS = 0.75, 16  # random subsets of the held-out items that measure it


def scope_exponent(cold: Tensor, gen: torch.Generator) -> float:
    """How a user's chance per listed new SKU falls with the list's length ``n``: ``n **
    -exponent``, in [0, 1]. Measured on the held-out items' positives ``cold`` ``(2, P)``:
    the rate per (user with a positive, item) over all of them, against the same over random
    subsets of ``SCOPE_SHARE`` of the items (mean over ``SCOPE_DRAWS``). On dense data the
    exponent falls as lists grow (nearly every user has a positive): a share close to 1 reads
    it at the calibration's own length (a half read 0.39 on MovieLens validation, where 0.1
    fits lists 2.8x longer)."""
    items = torch.unique(cold[1])
    n_sub = int(len(items) * SCOPE_SHARE)
    if n_sub < 1 or n_sub == len(items):
        return 0.0
    rate = cold.shape[1] / (len(torch.unique(cold[0])) * len(items))
    logs = []
    for _ in range(SCOPE_DRAWS):
        sub = cold[:, torch.isin(cold[1], items[torch.randperm(len(items), generator=gen)[:n_sub]])]
        if sub.shape[1]:
            logs.append(np.log(sub.shape[1] / (len(torch.unique(sub[0])) * n_sub) / rate))
    ratio = float(np.mean(logs)) / np.log(len(items) / n_sub) if logs else 0.0
    return float(np.clip(ratio, 0.0, 1.0))


def calibrate_regimes(logit_fn_on: Callable[[Tensor, Tensor], LogitFn], pos: Tensor,
                      pos_time: Tensor, train_idx: Tensor, val_idx: Tensor, cold_idx: Tensor,
                      n_users: int, n_items: int, m: int, gen: torch.Generator
                      ) -> tuple[dict[str, PlattCalibrator], dict[str, dict[str, Any]]]:
    """Platt calibrations of new SKUs and of new users, fitted on held-out ones of their own.

    ``new_item``: the positives ``pos[:, cold_idx]`` of the items held out of training
    entirely, each ranked among those items: applied to calls whose candidates are all new
    SKUs (see :func:`calibrated_by_regime`). ``new_user``: the validation users (``val_idx``)
    with all their interactions hidden from the graph, every one of their positives ranked among
    all items: applied to every user without history. ``few_clicks``: the same users with only
    their first 1, 2 or 3 training interactions (in time order, by turns) left in the graph,
    every later positive ranked among all items: applied to users with 1 to
    ``FEW_CLICKS_MAX`` history items (a short history makes far fewer confident matches than a
    long one, so the warm calibration under-predicts them). A regime with fewer than
    ``MIN_REGIME_POSITIVES`` positives is left out (the warm calibration then serves it).
    ``logit_fn_on(msg, times)``: raw logits on the graph whose interactions are ``msg``.

    Returns:
        The calibrators and their reports, by regime name.
    """
    calibrators: dict[str, PlattCalibrator] = {}
    reports: dict[str, dict[str, Any]] = {}
    train_pos, train_time = pos[:, train_idx], pos_time[train_idx]
    cold = pos[:, cold_idx]
    if cold.shape[1] >= MIN_REGIME_POSITIVES:
        counts = torch.bincount(cold[0], minlength=n_users)
        cands = torch.unique(cold[1])
        cal, reports[NEW_ITEM] = calibrate_on_validation(
            logit_fn_on(train_pos, train_time), _at_most(cold, MAX_REGIME_POSITIVES, gen),
            n_items, counts, m, gen, candidates=cands, n_pos=counts)
        scoped = ScopedCalibrator.of(cal, len(cands), scope_exponent(cold, gen))
        calibrators[NEW_ITEM] = scoped
        reports[NEW_ITEM].update(scope_items=scoped.items, scope_exponent=scoped.exponent)
    val_users = torch.unique(pos[0, val_idx])
    hidden = pos[:, torch.isin(pos[0], val_users)]
    if hidden.shape[1] >= MIN_REGIME_POSITIVES:
        keep = ~torch.isin(train_pos[0], val_users)
        counts = torch.bincount(hidden[0], minlength=n_users)
        calibrators[NEW_USER], reports[NEW_USER] = calibrate_on_validation(
            logit_fn_on(train_pos[:, keep], train_time[keep]),
            _at_most(hidden, MAX_REGIME_POSITIVES, gen), n_items, counts, m, gen, n_pos=counts)
        _few_clicks(calibrators, reports, logit_fn_on, hidden, pos_time[torch.isin(
            pos[0], val_users)], train_pos[:, keep], train_time[keep], n_users, n_items, m, gen)
    return calibrators, reports


def _few_clicks(calibrators: dict[str, PlattCalibrator], reports: dict[str, dict[str, Any]],
                logit_fn_on: Callable[[Tensor, Tensor], LogitFn], hidden: Tensor,
                hidden_time: Tensor, others: Tensor, others_time: Tensor, n_users: int,
                n_items: int, m: int, gen: torch.Generator) -> None:
    """The ``few_clicks`` calibration (:func:`calibrate_regimes`), added in place, and one per
    history length ``few_clicks_1`` .. ``few_clicks_3`` where that length has
    ``MIN_REGIME_POSITIVES``: its own intercept beside the shared slope, from the same scored
    pairs. One click makes fewer confident matches than three, so one calibration for all
    three under-predicted one click and over-predicted three (Amazon validation:
    calibration-in-the-large 0.31 at k = 1, 2.35 at k = 3)."""
    shown = first_clicks(hidden[0], hidden_time, n_users, FEW_CLICKS_MAX)
    truth = hidden[:, ~shown]
    if truth.shape[1] < MIN_REGIME_POSITIVES:
        return
    n_pos = torch.bincount(truth[0], minlength=n_users)
    n_shown = torch.bincount(hidden[0, shown], minlength=n_users)
    msg = torch.cat([others, hidden[:, shown]], dim=1)
    truth = _at_most(truth, MAX_REGIME_POSITIVES, gen)
    logits, y, w, row = _scored(logit_fn_on(msg, torch.cat([others_time, hidden_time[shown]])),
                                truth, n_items, n_shown + n_pos, m, gen, None, n_pos)
    calibrators[FEW_CLICKS], reports[FEW_CLICKS] = _platt(logits, y, w, row, m, gen)
    length = n_shown[truth[0]].numpy()[row]
    for k in range(1, FEW_CLICKS_MAX + 1):
        mine = length == k
        if (mine & (y == 1)).sum() >= MIN_REGIME_POSITIVES:
            rows = np.unique(row[mine], return_inverse=True)[1]
            calibrators[f"{FEW_CLICKS}_{k}"], reports[f"{FEW_CLICKS}_{k}"] = _platt(
                logits[mine], y[mine], w[mine], rows, m, gen, calibrators[FEW_CLICKS].a_)


def calibrated_by_regime(warm: PlattCalibrator, regimes: dict[str, PlattCalibrator],
                         logits: np.ndarray, pairs: PairInputs | None, users: Tensor,
                         items: Tensor, scope: Tensor | None = None) -> np.ndarray:
    """Probabilities of ``logits`` ``(len(users), len(items))`` (or ``(n,)`` for the pairs
    ``(users[k], items[k])``). When a ranked candidate set is given (``scope``: every column
    of a score matrix) and all of it is new SKUs (no interaction in ``pairs``' graph), all by
    the ``new_item`` calibration: "chance the user takes this one among the new SKUs", fitted
    on held-out items ranked among themselves, its level set for the list's length
    (:class:`ScopedCalibrator`). Pairs scored on their own (``scope`` None) never
    take it, so a pair's probability does not depend on the other pairs of the call.
    Otherwise a user with no history by the ``new_user`` calibration, one with 1 to
    ``FEW_CLICKS_MAX`` history items by ``few_clicks`` (``few_clicks_<length>`` where fitted),
    everyone else (and every user of a model without pair inputs) by ``warm``.

    The regime is chosen per ranked set or per *user*, never per item: a user's candidates are
    ranked by these probabilities, and two calibrations inside one list would reorder it
    (tried: the new-SKU calibration for the new items of a mixed list put every such item first
    in MovieLens warm lists, Recall@20 0.003 against 0.12).
    """
    if scope is not None and pairs is not None and NEW_ITEM in regimes and len(scope) \
            and bool((pairs.item_degree[scope] == 0).all()):
        new_item = regimes[NEW_ITEM]
        if isinstance(new_item, ScopedCalibrator):
            new_item = new_item.for_scope(len(scope))
        return new_item.predict_proba(logits)
    if pairs is None:
        return warm.predict_proba(logits)
    length = (pairs.hist_ptr[users + 1] - pairs.hist_ptr[users]).numpy()
    chosen = [(np.ones(len(length), dtype=bool), warm)]  # later entries win
    if FEW_CLICKS in regimes:
        chosen.append(((length >= 1) & (length <= FEW_CLICKS_MAX), regimes[FEW_CLICKS]))
        chosen += [(length == k, regimes[f"{FEW_CLICKS}_{k}"])  # by length where fitted
                   for k in range(1, FEW_CLICKS_MAX + 1) if f"{FEW_CLICKS}_{k}" in regimes]
    if NEW_USER in regimes:
        chosen.append((length == 0, regimes[NEW_USER]))
    a, b = np.empty(len(length)), np.empty(len(length))
    for mask, cal in chosen:  # one sigmoid per call, with each row's (user's) slope and level
        a[mask], b[mask] = cal.a_, cal.b_
    if logits.ndim == 2:
        a, b = a[:, None], b[:, None]
    return _sigmoid(a * np.asarray(logits, dtype=np.float64) + b)
