from __future__ import annotations

import pandas as pd

from kgrec.graph.synthetic import generate_catalog
from kgrec.graph.tables import EVENTS


def test_deterministic_and_well_formed() -> None:
    a = generate_catalog(300, 200, 3_000, n_new_items=20, n_new_users=10, seed=5)
    b = generate_catalog(300, 200, 3_000, n_new_items=20, n_new_users=10, seed=5)
    pd.testing.assert_frame_equal(a.tables.interactions, b.tables.interactions)
    t = a.tables
    assert len(t.items) == 200 and len(t.users) == 300 and len(a.new_items) == 20
    assert t.interactions["item_id"].isin(t.items["item_id"]).all()
    assert not t.interactions.duplicated(["user_id", "item_id"]).any()
    assert set(t.interactions["event"]) <= set(EVENTS)
    assert not set(a.new_items["item_id"]) & set(t.items["item_id"])
    assert not set(a.new_users["user_id"]) & set(t.users["user_id"])
    assert a.new_user_clicks.groupby("user_id").size().max() <= 2
    assert len(a.affinity) == 300 * 20


def test_users_follow_their_segment_taste() -> None:
    cat = generate_catalog(600, 300, 12_000, n_new_items=0, n_new_users=0, seed=1)
    inter = cat.tables.interactions.merge(cat.tables.items[["item_id", "category"]])
    inter["dept"] = inter["category"].str.split(" > ").str[0]
    inter["segment"] = inter["user_id"].map(cat.segments)
    top_share = inter.groupby("segment")["dept"].agg(lambda s: s.value_counts(normalize=True)
                                                     .iloc[0])
    assert top_share.mean() > 0.4  # six departments: uniform taste would give ~0.17
