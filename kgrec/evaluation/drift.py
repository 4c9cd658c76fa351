"""Is the model going stale? A report on one update of the graph under a fitted model.

Why: ``Recommender.partial_fit`` folds new interactions, users and SKUs in without retraining;
an operator needs to know when that is no longer enough. :func:`drift_report` compares the
recommender before and after an update and says "retrain recommended" with its reason when

* the score distribution has shifted (PSI of calibrated probabilities on a fixed sample of
  (user, item) pairs known before, ``> PSI_LIMIT``; 0.1-0.25 is the usual "some shift" band);
* the probabilities no longer match the newest interactions (calibration-in-the-large, mean
  predicted / observed over every unseen candidate of the users with new interactions, outside
  ``CITL_RANGE``);
* much of the new traffic is on SKUs the model never trained on (``> NEW_SKU_LIMIT``).

Recall@20 of the newest interactions is reported beside, as the quality the update delivers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kgrec.evaluation.metrics import MetricAccumulator
from kgrec.evaluation.runner import interaction_frame

if TYPE_CHECKING:
    from kgrec.coldstart import NodeEmbeddings
    from kgrec.graph.export import ExportedGraph
    from kgrec.ranking.recommender import Recommender

PSI_LIMIT = 0.25
CITL_RANGE = (0.5, 2.0)
NEW_SKU_LIMIT = 0.2
PSI_PAIRS = 20_000
MAX_EVAL_USERS = 2_000


@dataclass
class DriftReport:
    """The figures of one update and the verdict (see the module docstring)."""

    users_before: int
    items_before: int
    new_users: int
    new_items: int
    new_interactions: int
    new_sku_share: float
    psi: float
    citl: float
    ece: float
    recall_at_20: float
    retrain_recommended: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        verdict = ("RETRAIN RECOMMENDED: " + "; ".join(self.reasons)
                   if self.retrain_recommended else "fold-in is enough (no limit crossed)")
        return (f"update: +{self.new_users:,} users, +{self.new_items:,} items, "
                f"+{self.new_interactions:,} interactions ({self.new_sku_share:.1%} on new "
                f"SKUs); score PSI {self.psi:.3f}; newest interactions: Recall@20 "
                f"{self.recall_at_20:.3f}, calibration-in-the-large {self.citl:.2f}, ECE "
                f"{self.ece:.4f}. {verdict}")


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` (quantile bins of
    ``expected``; empty bins floored at 1e-4)."""
    if len(expected) == 0 or len(actual) == 0:
        return float("nan")
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0
    e = np.histogram(np.clip(expected, edges[0], edges[-1]), edges)[0] / len(expected)
    a = np.histogram(np.clip(actual, edges[0], edges[-1]), edges)[0] / len(actual)
    e, a = np.maximum(e, 1e-4), np.maximum(a, 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def _new_pairs(graph: ExportedGraph, before: ExportedGraph) -> pd.DataFrame:
    """Distinct ``user_id, item_id`` interaction pairs of ``graph`` that ``before`` lacks."""
    now = interaction_frame(graph).drop_duplicates()
    old = interaction_frame(before).drop_duplicates()
    merged = now.merge(old, how="left", indicator=True)
    return merged.loc[merged["_merge"] == "left_only", ["user_id", "item_id"]]


def drift_report(rec: Recommender, before_emb: NodeEmbeddings, before_graph: ExportedGraph,
                 *, seed: int = 0) -> DriftReport:
    """Compare ``rec`` (after ``partial_fit``) with its embeddings and graph before the update.

    Args:
        rec: The recommender after the update.
        before_emb, before_graph: ``rec.emb_`` and ``rec.graph_`` taken before the update.
        seed: Seed of the PSI pair sample and of metric tie-breaking.
    """
    model, emb, graph = rec.model_, rec.emb_, rec.graph_
    rng = np.random.default_rng(seed)
    old_users, old_items = before_emb.user_ids, before_emb.item_ids
    new_pairs = _new_pairs(graph, before_graph)
    on_new_sku = int((~new_pairs["item_id"].isin(pd.Index(old_items))).sum())

    # PSI: the same (user, item) pairs known before, scored before and after the update
    n = min(PSI_PAIRS, len(old_users) * len(old_items))
    u = rng.integers(len(old_users), size=n)
    i = rng.integers(len(old_items), size=n)
    p_before = model.predict_proba(before_emb, u, i)
    u_after = rec._user_pos.get_indexer(np.asarray(old_users, dtype=object)[u])
    i_after = rec._item_pos.get_indexer(np.asarray(old_items, dtype=object)[i])
    ok = (u_after >= 0) & (i_after >= 0)
    p_after = model.predict_proba(emb, u_after[ok], i_after[ok])
    score_psi = psi(p_before[ok], p_after)

    # the newest interactions: every unseen item of their users is a candidate
    acc = MetricAccumulator(ks=(20,), seed=seed)
    if len(new_pairs):
        users = np.unique(new_pairs["user_id"].to_numpy(object))
        if len(users) > MAX_EVAL_USERS:
            users = np.sort(rng.choice(users, MAX_EVAL_USERS, replace=False))
        rows = rec._user_pos.get_indexer(users)
        probs = model.score_matrix(emb, rows)
        truth = np.zeros(probs.shape, dtype=bool)
        r = pd.Index(users).get_indexer(new_pairs["user_id"])
        c = rec._item_pos.get_indexer(new_pairs["item_id"])
        truth[r[r >= 0], c[r >= 0]] = True
        valid = np.ones(probs.shape, dtype=bool)
        pos, seen = rec.seen_.gather(rows)
        valid[pos, seen] = False
        valid |= truth  # the new interactions are in the graph now; they stay candidates
        acc.add(probs, truth, valid, proba=True)
    res = acc.result()
    report = DriftReport(
        users_before=len(old_users), items_before=len(old_items),
        new_users=len(emb.user_ids) - int(np.isin(emb.user_ids, old_users).sum()),
        new_items=len(emb.item_ids) - int(np.isin(emb.item_ids, old_items).sum()),
        new_interactions=len(new_pairs),
        new_sku_share=on_new_sku / len(new_pairs) if len(new_pairs) else 0.0,
        psi=score_psi, citl=res.get("citl", float("nan")), ece=res.get("ece", float("nan")),
        recall_at_20=res.get("recall@20", float("nan")), retrain_recommended=False)
    if report.psi > PSI_LIMIT:
        report.reasons.append(f"score distribution shifted (PSI {report.psi:.3f} > {PSI_LIMIT})")
    if np.isfinite(report.citl) and not CITL_RANGE[0] <= report.citl <= CITL_RANGE[1]:
        report.reasons.append(f"probabilities off on the newest interactions (mean predicted / "
                              f"observed {report.citl:.2f}, outside {CITL_RANGE})")
    if report.new_sku_share > NEW_SKU_LIMIT:
        report.reasons.append(f"{report.new_sku_share:.0%} of the new interactions are on SKUs "
                              f"the model never trained on (> {NEW_SKU_LIMIT:.0%})")
    report.retrain_recommended = bool(report.reasons)
    return report
