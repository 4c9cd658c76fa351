"""Split properties: deterministic, disjoint, no cold interaction in training, time order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kgrec.errors import DataError
from kgrec.evaluation.runner import export, interaction_frame
from kgrec.evaluation.splits import leakage, make_split
from kgrec.graph.tables import CatalogTables


def _keys(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["user_id"].astype(str), frame["item_id"].astype(str), strict=True))


def test_deterministic_per_seed(tables: CatalogTables) -> None:
    a, b = make_split(tables, seed=4), make_split(tables, seed=4)
    assert np.array_equal(a.cold_items, b.cold_items)
    assert np.array_equal(a.cold_users, b.cold_users)
    pd.testing.assert_frame_equal(a.train.interactions, b.train.interactions)
    pd.testing.assert_frame_equal(a.warm_truth, b.warm_truth)
    c = make_split(tables, seed=5)
    assert not (np.array_equal(a.cold_items, c.cold_items)
                and np.array_equal(a.cold_users, c.cold_users))


def test_shares_and_disjointness(tables: CatalogTables) -> None:
    s = make_split(tables, seed=0)
    assert len(s.cold_items) == 2                       # 20% of 10 items
    assert len(s.cold_users) == 4                       # 20% of 20 users (all have 6 > 3)
    train = _keys(s.train.interactions)
    assert not train & _keys(s.item_cold_truth)
    assert not train & _keys(s.warm_truth)
    assert not train & _keys(s.user_cold_truth(0))
    assert not _keys(s.warm_truth) & _keys(s.item_cold_truth)
    assert set(s.item_cold_truth["item_id"]) <= set(s.cold_items)
    assert not set(s.item_cold_truth["user_id"]) & set(s.cold_users)
    # every interaction ends up in exactly one place
    total = len(train) + len(s.item_cold_truth) + len(s.warm_truth) + len(s.user_cold_stream)
    assert total == len(_keys(tables.interactions))


def test_no_cold_item_or_user_in_the_exported_training_graph(tables: CatalogTables) -> None:
    s = make_split(tables, seed=1)
    graph = export(s.train)
    edges = interaction_frame(graph)
    assert not edges["item_id"].isin(set(s.cold_items)).any()
    assert not edges["user_id"].isin(set(s.cold_users)).any()
    assert leakage(s, edges) == []
    # cold items are still nodes with their brand/category edges (what a new SKU has)
    assert set(s.cold_items) <= set(graph.node_ids["Item"])
    brand = graph.data[("Item", "HAS_BRAND", "Brand")].edge_index[0].numpy()
    assert set(graph.index_of("Item", s.cold_items)) <= set(brand)
    # cold users are nodes too (profile only)
    assert set(s.cold_users) <= set(graph.node_ids["User"])


def test_leakage_is_detected(tables: CatalogTables) -> None:
    s = make_split(tables, seed=1)
    leak = pd.concat([interaction_frame(export(s.train)),
                      s.item_cold_truth.iloc[:1], s.warm_truth.iloc[:1]])
    problems = leakage(s, leak)
    assert any("cold items" in p for p in problems)
    assert any("warm test pairs" in p for p in problems)


def test_revealed_are_the_first_k_by_time(tables: CatalogTables) -> None:
    s = make_split(tables, seed=2)
    inter = tables.interactions.astype({"user_id": str, "item_id": str})
    for user in s.cold_users:
        history = inter[inter["user_id"] == user].sort_values("ts")["item_id"].tolist()
        for k in (0, 1, 3):
            assert s.revealed(k).query("user_id == @user")["item_id"].tolist() == history[:k]
            assert set(s.user_cold_truth(k).query("user_id == @user")["item_id"]) == \
                set(history[k:])
    tt = s.test_tables(3).interactions
    assert len(tt) == len(s.train.interactions) + 3 * len(s.cold_users)


def test_warm_holdout_is_the_last_20_percent_at_least_one() -> None:
    from tests.unit.evaluation.conftest import make_tables

    t = make_tables(n_users=20, n_items=12, per_user=11, seed=3)
    s = make_split(t, seed=0, item_share=0.1)
    inter = t.interactions.astype({"user_id": str, "item_id": str})
    cold = set(s.cold_items)
    for user, truth in s.warm_truth.groupby("user_id"):
        hist = inter[(inter["user_id"] == user) & ~inter["item_id"].isin(cold)] \
            .sort_values("ts")["item_id"].tolist()
        n_held = max(1, int(np.floor(0.2 * len(hist))))
        assert truth["item_id"].tolist() == hist[len(hist) - n_held:]


def test_argument_errors(tables: CatalogTables) -> None:
    with pytest.raises(ValueError, match="item_share must be in"):
        make_split(tables, item_share=1.0)
    with pytest.raises(ValueError, match="reveal must be non-negative"):
        make_split(tables, reveal=(-1,))
    empty = CatalogTables(items=tables.items, users=tables.users,
                          interactions=tables.interactions.iloc[:0])
    with pytest.raises(DataError, match="no interactions"):
        make_split(empty)
