"""Notebook plots: learning curves, evaluation figures and explanation subgraphs."""

from __future__ import annotations

import math
from collections.abc import Iterator

import matplotlib
import numpy as np
import pandas as pd
import pytest

from kgrec.evaluation import plots
from kgrec.evaluation.runner import EvalConfig, EvalResults
from kgrec.ranking.explain import Explanation, GraphPath, PathNode

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

U, A, B, T = (PathNode("User", "u_1"), PathNode("Item", "sku-a"), PathNode("Brand", "Acme"),
              PathNode("Item", "sku-new"))
CAT = PathNode("Category", "Sports > Shoes")
ATTR, V = PathNode("Attribute", "region=north"), PathNode("User", "u_2")


def explanation(paths: bool = True) -> Explanation:
    brand = GraphPath("brand", (U, A, B, T), ("INTERACTED", "HAS_BRAND", "HAS_BRAND"),
                      (True, True, False), 0.4)
    cat = GraphPath("category", (U, A, CAT, T), ("INTERACTED", "IN_CATEGORY", "IN_CATEGORY"),
                    (True, True, False), 0.2)
    prof = GraphPath("profile", (U, ATTR, V, T), ("HAS_ATTRIBUTE", "HAS_ATTRIBUTE",
                                                  "INTERACTED"), (True, False, True), 0.1)
    return Explanation("u_1", "sku-new", 0.0123, (brand, cat, prof) if paths else ())


HISTORY = [{"epoch": 0.0, "loss": 1.0, "val_auc": 0.6, "val_loss": 0.5, "seconds": 0.1},
           {"epoch": 1.0, "loss": 0.8, "val_auc": 0.7, "val_loss": 0.4, "seconds": 0.1},
           {"epoch": 2.0, "loss": 0.7, "val_auc": 0.65, "val_loss": 0.45, "seconds": 0.1}]


def results() -> EvalResults:
    res = EvalResults(dataset="toy", config=EvalConfig(seeds=(0, 1), encoder="hashing"))
    for seed in (0, 1):
        for regime, base in (("item_cold", 0.4), ("user_cold_k0", 0.1), ("user_cold_k3", 0.2),
                             ("warm", 0.3)):
            res.records.append({"seed": seed, "regime": regime, "model": "kgrec",
                                "recall@20": base + 0.1 * seed, "gauc": 0.7, "ece": 0.01})
            res.records.append({"seed": seed, "regime": regime, "model": "random",
                                "recall@20": 0.05, "gauc": 0.5, "ece": math.nan})
    bins = {"count": [10.0, 0.0, 5.0], "sum_label": [1.0, 0.0, 4.0],
            "sum_proba": [0.5, 0.0, 3.5]}
    res.reliability = {"kgrec/item_cold": [bins, bins], "random/item_cold": [bins]}
    return res


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def test_history_frame_marks_the_kept_epoch() -> None:
    h = plots.history_frame(HISTORY)
    assert list(h.columns) == ["epoch", "loss", "val_auc", "val_loss", "seconds", "best"]
    assert h["best"].tolist() == [False, True, False]
    assert h["epoch"].tolist() == [0, 1, 2]


def test_history_frame_without_validation() -> None:
    h = plots.history_frame([{"loss": 1.0}, {"loss": 0.5}])
    assert h["epoch"].tolist() == [0, 1] and not h["best"].any()
    assert h["val_auc"].isna().all()


def test_learning_curves_are_labelled() -> None:
    ax_loss, ax_auc = plots.plot_learning_curves(HISTORY, title="toy")
    assert ax_loss.get_xlabel() == "epoch" and ax_loss.get_ylabel() == "loss"
    assert len(ax_loss.get_lines()) == 2  # training and validation loss
    assert "AUC" in ax_auc.get_ylabel() and ax_auc.get_title() == "toy: validation AUC"
    np.testing.assert_allclose(ax_auc.get_lines()[0].get_ydata(), [0.6, 0.7, 0.65])


def test_metrics_table_reads_the_summary() -> None:
    table = plots.metrics_table(results(), ("recall@20", "gauc", "ece"))
    assert table.index.names == ["regime", "model"]
    assert table.loc[("item_cold", "kgrec"), "recall@20"] == pytest.approx(0.45)
    assert math.isnan(table.loc[("warm", "random"), "ece"])


def test_regime_metric_mean_and_std() -> None:
    mean, std = plots.regime_metric(results(), "recall@20")
    assert list(mean.index) == ["item_cold", "user_cold_k0", "user_cold_k3", "warm"]
    assert list(mean.columns) == ["kgrec", "random"]
    assert mean.loc["warm", "kgrec"] == pytest.approx(0.35)
    assert std.loc["warm", "kgrec"] == pytest.approx(np.std([0.3, 0.4], ddof=1))
    with pytest.raises(KeyError, match="ndcg@5"):
        plots.regime_metric(results(), "ndcg@5")


def test_regime_bars_one_per_model_and_regime() -> None:
    ax = plots.plot_regime_metric(results(), "recall@20")
    assert len(ax.patches) == 8
    assert ax.get_ylabel().startswith("recall@20") and ax.get_xlabel() == "evaluation regime"
    assert ax.get_title()


def test_user_cold_curve_orders_k() -> None:
    ax = plots.plot_user_cold_curve(results().summary(), "recall@20")
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [0, 3]
    np.testing.assert_allclose(line.get_ydata(), [0.15, 0.25])
    assert "k" in ax.get_xlabel()


def test_reliability_sums_seeds_and_skips_empty_bins() -> None:
    rel = plots.reliability_frame(results(), "kgrec")
    assert rel["count"].tolist() == [20.0, 10.0]
    np.testing.assert_allclose(rel["mean_proba"], [0.05, 0.7])
    np.testing.assert_allclose(rel["positive_rate"], [0.1, 0.8])
    ax = plots.plot_reliability(results())
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "observed positive rate"
    assert plots.reliability_frame(results(), "nobody").empty


def test_reliability_marks_bins_without_positives() -> None:
    res = results()
    empty = {"count": [10.0], "sum_label": [0.0], "sum_proba": [0.01]}
    res.reliability = {"kgrec/warm": [empty]}
    ax = plots.plot_reliability(res, floor=1e-6)
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert len(lines["warm"].get_xdata()) == 0  # no point of a zero rate on the log line
    marks = [ln for ln in ax.get_lines() if ln.get_marker() == "v" and len(ln.get_xdata())]
    assert marks and list(marks[0].get_ydata()) == [1e-6]


def test_explanation_graph_nodes_edges_and_direction() -> None:
    g = plots.explanation_graph(explanation())
    assert set(g.nodes) == {("User", "u_1"), ("Item", "sku-a"), ("Brand", "Acme"),
                            ("Item", "sku-new"), ("Category", "Sports > Shoes"),
                            ("Attribute", "region=north"), ("User", "u_2")}
    assert g.number_of_edges() == 9
    # stored direction: both items point at the brand; the user points at the item it clicked
    assert g.has_edge(("Item", "sku-new"), ("Brand", "Acme"))
    assert g.has_edge(("User", "u_1"), ("Item", "sku-a"))
    assert g.has_edge(("User", "u_2"), ("Attribute", "region=north"))
    assert g.nodes[("User", "u_1")]["step"] == 0.0
    assert g.nodes[("Item", "sku-new")]["step"] == 1.0
    kinds = {d["kind"] for _, _, d in g.edges(data=True)}
    assert kinds == {"brand", "category", "profile"}


def test_explanation_layout_user_left_item_right() -> None:
    g = plots.explanation_graph(explanation())
    pos = plots.explanation_layout(g)
    assert pos[("User", "u_1")][0] == 0.0 and pos[("Item", "sku-new")][0] == 1.0
    assert 0.0 < pos[("Brand", "Acme")][0] < 1.0
    assert len({tuple(p) for p in pos.values()}) == len(pos)  # no two nodes on one spot


def test_draw_explanation_draws_every_node_and_a_title() -> None:
    fig, ax = plt.subplots()
    out = plots.draw_explanation(explanation(), ax, node_names={"sku-new": "Acme trail shoe"})
    assert out is ax
    texts = [t.get_text() for t in ax.texts]
    assert any("Acme trail shoe" in t and "sku-new" in t for t in texts)
    assert any(t == "HAS_BRAND" for t in texts)
    assert "sku-new" in ax.get_title() and "0.0123" in ax.get_title()
    fig.canvas.draw()  # renders without error


def test_draw_explanation_without_paths() -> None:
    ax = plots.draw_explanation(explanation(paths=False))
    assert any(t.get_text() == "no supporting path" for t in ax.texts)


def test_paths_frame() -> None:
    frame = plots.paths_frame(explanation())
    assert frame["rank"].tolist() == [1, 2, 3]
    assert frame["kind"].tolist() == ["brand", "category", "profile"]
    assert frame["path"][0].startswith("User u_1 -INTERACTED-> Item sku-a")
    assert isinstance(frame, pd.DataFrame)
