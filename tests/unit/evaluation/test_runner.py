"""Runner pieces: config checks, regimes built from a split, the attribute-free graph."""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.coldstart.features import interaction_pairs
from kgrec.evaluation.runner import (
    EvalConfig,
    ZeroTextEncoder,
    build_regimes,
    export,
    without_attributes,
)
from kgrec.evaluation.splits import make_split
from kgrec.graph.tables import CatalogTables


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"seeds": ()}, "at least one seed"),
    ({"encoder": "word2vec"}, "encoder must be"),
    ({"ablations": ("no_gnn",)}, "unknown ablation"),
    ({"chunk_users": 0}, "chunk_users"),
])
def test_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EvalConfig(**kwargs)  # type: ignore[arg-type]


def test_regimes_follow_the_split(tables: CatalogTables) -> None:
    split = make_split(tables, seed=0)
    graph = export(split.train)
    pos = interaction_pairs(graph)[0]
    regimes = {r.name: r for r in build_regimes(split, graph, pos)}
    assert list(regimes) == ["item_cold", "user_cold_k0", "user_cold_k1", "user_cold_k3", "warm"]
    cold = graph.index_of("Item", split.cold_items)
    assert np.array_equal(regimes["item_cold"].candidates, cold)
    warm = regimes["warm"]
    assert not np.isin(warm.candidates, cold).any()
    truth, valid = warm.block(0, len(warm.users))
    assert truth.sum() == len(split.warm_truth)
    assert not (truth & ~valid).any()
    # training items of warm users are not candidates
    assert (~valid).sum() == np.isin(pos[0], warm.users).sum() - \
        np.isin(pos[1], cold)[np.isin(pos[0], warm.users)].sum()
    k3 = regimes["user_cold_k3"]
    assert all(len(h) == 3 for h in k3.histories or [])
    t3, v3 = k3.block(0, len(k3.users))
    assert (~v3).sum() == 3 * len(k3.users) and t3.sum() == len(split.user_cold_truth(3))
    assert k3.graph is not None
    assert k3.graph.data[("User", "INTERACTED", "Item")].edge_index.shape[1] == \
        graph.data[("User", "INTERACTED", "Item")].edge_index.shape[1] + 3 * len(k3.users)


def test_without_attributes_keeps_text_and_interactions(tables: CatalogTables) -> None:
    graph = export(make_split(tables, seed=0).train)
    bare = without_attributes(graph)
    assert [et[1] for et in bare.data.edge_types] == ["INTERACTED"]
    assert bare.items["brand"].notna().all()
    assert ("Item", "HAS_BRAND", "Brand") in graph.data.edge_types   # original untouched


def test_zero_text_encoder() -> None:
    enc = ZeroTextEncoder(8)
    assert enc.encode(["a", "b"]).shape == (2, 8) and not enc.encode(["a"]).any()
    assert enc.identity()["dim"] == 8


@pytest.mark.parametrize("pair_features", [False, True])
def test_kgrec_scorer_matches_the_models_own_scores(tables: CatalogTables,
                                                    pair_features: bool) -> None:
    from kgrec.coldstart import ColdStartModel, ModelConfig
    from kgrec.encoders import HashingEncoder
    from kgrec.evaluation.runner import Regime, _KgrecScorer

    split = make_split(tables, seed=0)
    graph = export(split.train)
    config = ModelConfig(hidden_dim=16, epochs=2, steps_per_epoch=1,
                         pair_features=pair_features, seed=0)
    model = ColdStartModel(config, text_encoder=HashingEncoder(dim=32), num_threads=1).fit(graph)
    users, items = np.arange(5), np.arange(len(graph.node_ids["Item"]))
    empty = np.zeros((2, 0), dtype=np.int64)
    regime = Regime("warm", users=users, candidates=items, truth=empty, exclude=empty)
    scorer = _KgrecScorer(model, graph, lambda g: g)
    got = scorer(regime, np.arange(len(users)), items)
    # float32 fast path only for a deep-only head; the wide part needs score_matrix
    assert scorer._fast is (not pair_features)
    want = model.score_matrix(model.transform(graph), users, items)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
