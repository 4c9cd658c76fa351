"""Plots and small tables for the notebooks: learning curves, evaluation results, explanations.

Why: notebooks only import kgrec; the logic they show lives here, tested. Every ``plot_*`` /
``draw_*`` function draws onto a matplotlib axes it is given (or a new one), labels its axes,
sets a title and returns the axes, so a notebook lays out figures as it likes. Metrics are never
computed here: evaluation figures read an :class:`~kgrec.evaluation.EvalResults` (or
its ``summary()``), learning curves read ``ColdStartModel.history_``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import pandas as pd

from kgrec.graph.explore import NODE_COLOURS
from kgrec.graph.schema import NodeLabel

USER, ITEM = NodeLabel.USER.value, NodeLabel.ITEM.value

if TYPE_CHECKING:
    from kgrec.evaluation.runner import EvalResults
    from kgrec.ranking.explain import Explanation

DEFAULT_METRICS: tuple[str, ...] = ("recall@20", "ndcg@20", "hit_rate@20", "mrr", "gauc",
                                    "ece", "cold_coverage@20")


def _axes(ax: Any, figsize: tuple[float, float] = (7.0, 4.5)) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def _summary(results: EvalResults | pd.DataFrame) -> pd.DataFrame:
    return results if isinstance(results, pd.DataFrame) else results.summary()


# -- learning curves ------------------------------------------------------------------------
def history_frame(history: Sequence[Mapping[str, float]]) -> pd.DataFrame:
    """``ColdStartModel.history_`` as a frame: ``epoch, loss, val_auc, val_loss, seconds`` and
    ``best`` (True on the epoch with the highest ``val_auc``: the weights the model keeps)."""
    frame = pd.DataFrame(list(history))
    for col in ("epoch", "loss", "val_auc", "val_loss", "seconds"):
        if col not in frame:
            frame[col] = np.nan
    if frame["epoch"].isna().all():
        frame["epoch"] = np.arange(len(frame), dtype=float)
    frame["epoch"] = frame["epoch"].astype(int)
    auc = frame["val_auc"].astype(float)
    frame["best"] = False
    if auc.notna().any():
        frame.loc[auc.idxmax(), "best"] = True
    return frame[["epoch", "loss", "val_auc", "val_loss", "seconds", "best"]]


def plot_learning_curves(history: Sequence[Mapping[str, float]], axes: Sequence[Any] | None = None,
                         *, title: str = "") -> Sequence[Any]:
    """Training loss and validation loss (left) and validation AUC (right) per epoch.

    The epoch whose weights the model keeps (highest ``val_auc``; early stopping) is marked.
    Returns the two axes.
    """
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax_loss, ax_auc = axes[0], axes[1]
    h = history_frame(history)
    ax_loss.plot(h["epoch"], h["loss"], marker="o", ms=3, label="training loss")
    if h["val_loss"].notna().any():
        ax_loss.plot(h["epoch"], h["val_loss"], marker="s", ms=3,
                     label="validation log-loss (1:100 negatives)")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title(f"{title}: loss" if title else "Loss per epoch")
    ax_loss.legend(fontsize=8)
    ax_auc.plot(h["epoch"], h["val_auc"], marker="o", ms=3, color="#55a868",
                label="validation AUC")
    best = h[h["best"]]
    if len(best):
        ax_auc.scatter(best["epoch"], best["val_auc"], s=120, facecolors="none",
                       edgecolors="#c44e52", linewidths=2, zorder=3,
                       label=f"kept (epoch {int(best['epoch'].iloc[0])})")
    ax_auc.set_xlabel("epoch")
    ax_auc.set_ylabel("AUC (held-out latest positive per user)")
    ax_auc.set_title(f"{title}: validation AUC" if title else "Validation AUC per epoch")
    ax_auc.legend(fontsize=8)
    return axes


# -- evaluation results ---------------------------------------------------------------------
def metrics_table(results: EvalResults | pd.DataFrame,
                  metrics: Sequence[str] = DEFAULT_METRICS, *, digits: int = 4) -> pd.DataFrame:
    """Mean over seeds of ``metrics`` per (regime, model), as a frame indexed by both.

    A metric a model does not produce (e.g. ECE for a model without probabilities) is NaN.
    Reads ``EvalResults.summary()``; computes nothing.
    """
    s = _summary(results)
    cols = {f"{m}_mean": m for m in metrics}
    out = s.set_index(["regime", "model"]).reindex(columns=list(cols)).rename(columns=cols)
    return out.astype(float).round(digits)


def regime_metric(results: EvalResults | pd.DataFrame, metric: str = "recall@20"
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(mean, std)`` of one metric as regime x model frames (in the order of the results).

    Raises:
        KeyError: the metric is not in the results.
    """
    s = _summary(results)
    if f"{metric}_mean" not in s:
        known = sorted(c.removesuffix("_mean") for c in s.columns if c.endswith("_mean"))
        raise KeyError(f"metric {metric!r} not in the results; known: {known}")
    regimes = list(dict.fromkeys(s["regime"]))
    models = list(dict.fromkeys(s["model"]))
    mean = s.pivot(index="regime", columns="model", values=f"{metric}_mean")
    std_col = f"{metric}_std"
    std = (s.pivot(index="regime", columns="model", values=std_col) if std_col in s
           else mean * np.nan)
    return (mean.reindex(index=regimes, columns=models),
            std.reindex(index=regimes, columns=models))


def plot_regime_metric(results: EvalResults | pd.DataFrame, metric: str = "recall@20",
                       ax: Any = None, *, title: str = "") -> Any:
    """Grouped bars: one group per regime, one bar per model (error bars: std over seeds)."""
    ax = _axes(ax, (11, 4.5))
    mean, std = regime_metric(results, metric)
    n = max(len(mean.columns), 1)
    width = 0.8 / n
    x = np.arange(len(mean.index))
    for j, model in enumerate(mean.columns):
        ax.bar(x + (j - (n - 1) / 2) * width, mean[model].fillna(0.0), width,
               yerr=std[model].fillna(0.0), capsize=2, label=str(model))
    ax.set_xticks(x, list(mean.index))
    ax.set_xlabel("evaluation regime")
    ax.set_ylabel(f"{metric} (mean over seeds)")
    ax.set_title(title or f"{metric} per cold-start regime")
    ax.legend(fontsize=8, ncol=2)
    return ax


def plot_user_cold_curve(results: EvalResults | pd.DataFrame, metric: str = "recall@20",
                         ax: Any = None, *, title: str = "") -> Any:
    """``metric`` of cold users against the number of revealed interactions ``k``, per model."""
    ax = _axes(ax, (7, 4.5))
    mean, std = regime_metric(results, metric)
    rows = [r for r in mean.index if str(r).startswith("user_cold_k")]
    ks = [int(str(r).removeprefix("user_cold_k")) for r in rows]
    order = np.argsort(ks)
    for model in mean.columns:
        y = mean.loc[rows, model].to_numpy(float)[order]
        e = std.loc[rows, model].fillna(0.0).to_numpy(float)[order]
        ax.errorbar(np.asarray(ks)[order], y, yerr=e, marker="o", capsize=3, label=str(model))
    if ks:
        ax.set_xticks(sorted(ks))
    ax.set_xlabel("interactions revealed per cold user (k)")
    ax.set_ylabel(metric)
    ax.set_title(title or f"User cold start: {metric} vs k")
    ax.legend(fontsize=8)
    return ax


def reliability_frame(results: EvalResults, model: str = "kgrec") -> pd.DataFrame:
    """Reliability-diagram points of ``model``: ``regime, mean_proba, positive_rate, count``
    (bins summed over seeds; empty bins left out)."""
    by_regime = {}
    for key, bins in results.reliability.items():
        name, regime = key.split("/", 1)
        if name == model and bins:
            by_regime[regime] = bins
    return bins_frame(by_regime)


def bins_frame(bins_by_group: Mapping[str, Sequence[Mapping[str, Sequence[float]]]]
               ) -> pd.DataFrame:
    """Reliability points from :func:`kgrec.coldstart.calibration.calibration_bins` output
    (``count``, ``sum_label``, ``sum_proba`` lists; several per group are summed):
    ``regime, mean_proba, positive_rate, count``, empty bins left out."""
    rows = []
    for regime, bins in bins_by_group.items():
        n = np.sum([b["count"] for b in bins], axis=0)
        y = np.sum([b["sum_label"] for b in bins], axis=0)
        p = np.sum([b["sum_proba"] for b in bins], axis=0)
        ok = n > 0
        rows.append(pd.DataFrame({"regime": regime, "mean_proba": p[ok] / n[ok],
                                  "positive_rate": y[ok] / n[ok], "count": n[ok]}))
    if not rows:
        return pd.DataFrame({"regime": [], "mean_proba": [], "positive_rate": [], "count": []})
    return pd.concat(rows, ignore_index=True)


def plot_reliability(results: EvalResults | pd.DataFrame, model: str = "kgrec", ax: Any = None,
                     *, title: str = "", floor: float = 1e-6) -> Any:
    """Reliability diagram (log-log) of ``model``'s calibrated probabilities per regime.

    ``results`` is an evaluation's results or a :func:`bins_frame`. Bins without any positive
    cannot be drawn on a log axis: they are marked with a triangle at ``floor`` and left out
    of the line.
    """
    ax = _axes(ax, (6.4, 5.2))
    rel = results if isinstance(results, pd.DataFrame) else reliability_frame(results, model)
    for regime, part in rel.groupby("regime", sort=False):
        hit = part[part["positive_rate"] > 0]
        line = ax.plot(hit["mean_proba"], hit["positive_rate"], marker="o", ms=3,
                       label=str(regime))[0]
        miss = part[part["positive_rate"] <= 0]
        ax.plot(miss["mean_proba"], np.full(len(miss), floor), ls="", marker="v", ms=5,
                color=line.get_color())
    ax.plot([floor, 1.0], [floor, 1.0], "k--", lw=1, label="perfect calibration")
    ax.plot([], [], ls="", marker="v", color="#555555", label="bin without positives")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(floor, 1.0)
    ax.set_xlabel("mean predicted click probability (bin)")
    ax.set_ylabel("observed positive rate")
    ax.set_title(title or f"{model}: reliability per regime")
    ax.legend(fontsize=8)
    return ax


# -- explanations ---------------------------------------------------------------------------
def explanation_graph(explanation: Explanation) -> nx.MultiDiGraph:
    """The paths of an explanation as one graph.

    Nodes are ``(label, id)`` with attributes ``label``, ``id`` and ``step`` (position on the
    first path that reaches them: the user is 0, the recommended item is the last step).
    Edges follow the stored relationship direction, with ``rel``, ``kind`` (path kind),
    ``path`` (1-based path rank) and ``weight`` (the path's weight).
    """
    graph = nx.MultiDiGraph(user_id=explanation.user_id, item_id=explanation.item_id,
                            score=explanation.score)
    user, item = (USER, explanation.user_id), (ITEM, explanation.item_id)
    graph.add_node(user, label=USER, id=explanation.user_id, step=0.0)
    graph.add_node(item, label=ITEM, id=explanation.item_id, step=1.0)
    for rank, path in enumerate(explanation.paths, start=1):
        keys = [(n.label, n.id) for n in path.nodes]
        last = max(len(keys) - 1, 1)
        for pos, (key, node) in enumerate(zip(keys, path.nodes, strict=True)):
            if key not in graph:
                graph.add_node(key, label=node.label, id=node.id, step=pos / last)
        for k, (rel, fwd) in enumerate(zip(path.rels, path.forward, strict=True)):
            a, b = (keys[k], keys[k + 1]) if fwd else (keys[k + 1], keys[k])
            graph.add_edge(a, b, rel=rel, kind=path.kind, path=rank, weight=path.weight)
    return graph


def explanation_layout(graph: nx.MultiDiGraph) -> dict[tuple[str, str], np.ndarray]:
    """Left-to-right positions: x = step along the path (user left, item right); nodes at the
    same step are spread vertically in the order they first appear."""
    columns: dict[float, list[tuple[str, str]]] = {}
    for node, data in graph.nodes(data=True):
        columns.setdefault(round(float(data["step"]), 6), []).append(node)
    pos = {}
    for x, nodes in columns.items():
        ys = np.linspace(1.0, -1.0, len(nodes)) if len(nodes) > 1 else np.zeros(1)
        for node, y in zip(nodes, ys, strict=True):
            pos[node] = np.array([x, y])
    return pos


def _short(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def draw_explanation(explanation: Explanation, ax: Any = None, *, title: str = "",
                     node_names: Mapping[str, str] | None = None) -> Any:
    """Draw an explanation's paths as a subgraph: user on the left, item on the right, the
    brands/categories/attributes/items/users in between; edges labelled with their relationship
    type, edge width proportional to the path weight. Returns the axes.

    Args:
        explanation: From ``Recommender.explain`` or ``NewItemRanking.explain``.
        ax: Axes to draw on; default a new figure.
        title: Default ``"Why <item> for <user> (score …)"``.
        node_names: Optional display names by node id (e.g. item titles).
    """
    from matplotlib.lines import Line2D

    ax = _axes(ax, (10, 5.5))
    graph = explanation_graph(explanation)
    pos = explanation_layout(graph)
    names = dict(node_names or {})
    weights = [d["weight"] for _, _, d in graph.edges(data=True)]
    top = max([w for w in weights if np.isfinite(w)] + [1e-12])
    widths = [1.0 + 4.0 * max(w, 0.0) / top if np.isfinite(w) else 1.0 for w in weights]
    nx.draw_networkx_edges(graph, pos, ax=ax, width=widths, edge_color="#777777", alpha=0.7,
                           arrows=True, arrowsize=12, node_size=900,
                           connectionstyle="arc3,rad=0.05")
    edge_labels: dict[tuple[Any, Any], str] = {}
    for a, b, d in graph.edges(data=True):
        edge_labels.setdefault((a, b), d["rel"])
    nx.draw_networkx_edge_labels(graph, pos, edge_labels=edge_labels, ax=ax, font_size=7,
                                 rotate=False, label_pos=0.5)
    ends = {(USER, explanation.user_id), (ITEM, explanation.item_id)}
    nx.draw_networkx_nodes(graph, pos, ax=ax,
                           node_color=[NODE_COLOURS.get(n[0], "#999999") for n in graph.nodes],
                           node_size=[900 if n in ends else 450 for n in graph.nodes])
    labels = {n: f"{n[0]} {_short(n[1], 18)}" + (f"\n{_short(names[n[1]], 30)}"
                                                  if n[1] in names else "") for n in graph.nodes}
    above = {n: p + np.array([0.0, 0.11]) for n, p in pos.items()}
    nx.draw_networkx_labels(graph, above, labels=labels, ax=ax, font_size=7,
                            verticalalignment="bottom")
    if not explanation.paths:
        ax.text(0.5, 0.0, "no supporting path", ha="center", va="center", fontsize=9,
                color="#555555")
    ax.legend(handles=[Line2D([], [], marker="o", ls="", color=c, label=lab)
                       for lab, c in NODE_COLOURS.items()], loc="lower left", fontsize=7)
    ax.set_title(title or f"Why {_short(explanation.item_id, 30)} for "
                 f"{_short(explanation.user_id, 30)} (score {explanation.score:.4f})")
    ax.set_xlim(-0.15, 1.15)
    ax.set_ylim(-1.35, 1.35)
    ax.set_axis_off()
    return ax


def paths_frame(explanation: Explanation) -> pd.DataFrame:
    """One row per path of an explanation: ``rank, kind, weight, path`` (readable form)."""
    return pd.DataFrame({"rank": np.arange(1, len(explanation.paths) + 1, dtype=np.int64),
                         "kind": [p.kind for p in explanation.paths],
                         "weight": [p.weight for p in explanation.paths],
                         "path": [p.short() for p in explanation.paths]})
