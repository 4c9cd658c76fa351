"""Probability calibration for the CTR head, and the two scores that check it.

Why: the head is trained on sampled negatives (``neg_ratio`` per positive, half of them popular
items), so its raw sigmoid says "chance this pair is a positive among a few sampled items", not
"chance the user clicks this item among all candidates". :class:`PlattCalibrator` maps logits to
the second meaning with two parameters ``p = sigmoid(a * logit + b)``, fitted by weighted
maximum likelihood on validation pairs whose negative weights restore the real base rate.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

_EPS = 1e-7


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
    """Weighted mean binary cross-entropy (natural log); probabilities are clipped to 1e-7.

    Args:
        y_true: 0/1 labels, shape ``(n,)``.
        y_prob: Predicted probabilities of label 1, shape ``(n,)``.
        sample_weight: Optional non-negative weight per pair (default: all 1).

    Raises:
        ValueError: shapes differ, input is empty, or probabilities lie outside [0, 1].
    """
    y, p, w = _check(y_true, y_prob, sample_weight)
    p = np.clip(p, _EPS, 1 - _EPS)
    losses = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return float(np.sum(w * losses) / np.sum(w))


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
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    wsum = np.bincount(bins, weights=w, minlength=n_bins)
    ysum = np.bincount(bins, weights=w * y, minlength=n_bins)
    psum = np.bincount(bins, weights=w * p, minlength=n_bins)
    filled = wsum > 0
    gaps = np.abs(ysum[filled] - psum[filled])  # = weight * |mean y - mean p| per bin
    return float(gaps.sum() / wsum.sum())


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free
    return out


class PlattCalibrator:
    """``p = sigmoid(a * logit + b)`` fitted by weighted Newton steps (two parameters).

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
            sample_weight: np.ndarray | None = None) -> PlattCalibrator:
        """Fit ``a_``, ``b_`` on raw ``logits`` and 0/1 labels; returns ``self``.

        Raises:
            ValueError: bad shapes or weights, or only one class present.
        """
        z = np.asarray(logits, dtype=np.float64).ravel()
        y, _, w = _check(y_true, np.full_like(z, 0.5), sample_weight)
        if y.min() == y.max():
            raise ValueError("calibration needs both positive and negative pairs")
        w = w / w.mean()
        theta = np.array([1.0, 0.0])
        x = np.stack([z, np.ones_like(z)], axis=1)

        def objective(t: np.ndarray) -> float:
            s = x @ t  # weighted negative log-likelihood, overflow-free, plus the ridge
            nll = np.logaddexp(0.0, s) - y * s
            return float(np.sum(w * nll) + 0.5 * self.l2 * t @ t)

        current = objective(theta)
        for _ in range(self.max_iter):
            p = _sigmoid(x @ theta)
            grad = x.T @ (w * (p - y)) + self.l2 * theta
            hess = (x * (w * p * (1 - p))[:, None]).T @ x + self.l2 * np.eye(2)
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
        self.a_, self.b_ = float(theta[0]), float(theta[1])
        logger.debug("Platt calibration: a=%.4g b=%.4g", self.a_, self.b_)
        return self

    def transform_logits(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated logits ``a_ * logits + b_`` (monotone, so rankings are unchanged)."""
        return self.a_ * np.asarray(logits, dtype=np.float64) + self.b_

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw ``logits`` (any shape)."""
        return _sigmoid(self.transform_logits(logits))
