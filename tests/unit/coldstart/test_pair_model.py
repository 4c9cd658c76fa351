"""The gated wide part end to end: fold-in of new users, errors, old configs, held-out items."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from kgrec.coldstart import ColdStartModel, NodeEmbeddings
from kgrec.graph.build import build_graph
from kgrec.graph.export import ExportedGraph, to_hetero_data
from kgrec.graph.synthetic import generate_catalog
from tests.shops import shop_graph, small_model


def rows(ids: np.ndarray, wanted: list[str]) -> np.ndarray:
    return np.array([list(ids).index(w) for w in wanted])


def test_new_users_folded_in_score_as_on_the_recomputed_graph(fitted: ColdStartModel,
                                                              graph: ExportedGraph) -> None:
    g2 = shop_graph(extra_users={"newbie": "runner"}, extra_interactions=[("newbie", "shoe-1")])
    base = fitted.transform(graph)
    new = fitted.transform(g2, user_ids=["newbie"])
    combined = base.with_users(new)
    full = fitted.transform(g2)
    # every item but the clicked one, whose own GNN state saw the new click only in g2
    items = np.flatnonzero(full.item_ids != "shoe-1")
    assert list(combined.item_ids) == list(full.item_ids)
    got = fitted.score_matrix(combined, [len(combined.user_ids) - 1], items)
    want = fitted.score_matrix(full, rows(full.user_ids, ["newbie"]), items)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_embeddings_without_pair_inputs_raise_with_the_fix(fitted: ColdStartModel,
                                                           graph: ExportedGraph) -> None:
    emb = fitted.transform(graph)
    bare = NodeEmbeddings(user=emb.user, item=emb.item, user_ids=emb.user_ids,
                          item_ids=emb.item_ids)
    with pytest.raises(ValueError, match="model.transform"):
        fitted.predict_proba(bare, [0], [0])
    with pytest.raises(ValueError, match="model.transform"):
        fitted.score_matrix(bare)


def test_config_saved_before_pair_features_loads_as_deep_only(graph: ExportedGraph,
                                                              tmp_path: Path) -> None:
    model = small_model(pair_features=False, epochs=3).fit(graph)
    path = model.save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    # the layout kgrec wrote before ModelConfig: settings and runtime arguments in "params"
    params = config.pop("config")
    del params["pair_features"], params["max_history"], params["cold_val_share"]
    config["params"] = {**params, "num_threads": 1, "device": "cpu", "softmax_weight": 0.0,
                        "attr_match_buckets": 0}
    (path / "config.json").write_text(json.dumps(config))
    (path / "manifest.json").unlink()  # such old models had no checksum manifest either
    loaded = ColdStartModel.load(path, num_threads=1)
    assert loaded.config_.pair_features is False and loaded.head_.wide is None
    np.testing.assert_array_equal(loaded.score_matrix(loaded.transform(graph)),
                                  model.score_matrix(model.transform(graph)))


@pytest.mark.parametrize("value", [0, -1])
def test_invalid_max_history_raises(graph: ExportedGraph, value: int) -> None:
    with pytest.raises(ValueError, match="max_history"):
        small_model(max_history=value).fit(graph)


def test_invalid_cold_val_share_raises(graph: ExportedGraph) -> None:
    with pytest.raises(ValueError, match="cold_val_share"):
        small_model(cold_val_share=1.0).fit(graph)


def test_held_out_items_drive_early_stopping_without_a_warm_slice() -> None:
    cat = generate_catalog(n_users=300, n_items=400, n_interactions=4000, seed=0)
    g = to_hetero_data(build_graph(cat.tables))
    model = small_model(epochs=4, patience=100, val_user_share=0.0, cold_val_share=0.2).fit(g)
    hist = model.history_
    assert all(math.isnan(h["val_auc"]) for h in hist)
    assert all(0.0 <= h["val_auc_cold"] <= 1.0 for h in hist)
    assert [h["val_score"] for h in hist] == [h["val_auc_cold"] for h in hist]
