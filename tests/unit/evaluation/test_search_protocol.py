"""The product-search protocol: queries from category paths, the per-user temporal split,
and scoring with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kgrec.coldstart import ModelConfig
from kgrec.errors import DataError
from kgrec.evaluation.search_protocol import (
    SearchEvalConfig,
    category_query,
    make_search_split,
    run_search_evaluation,
    search_table,
)
from kgrec.graph.tables import CatalogTables
from tests.shops import shop_tables


def test_category_query_lowercases_and_drops_stop_words_and_repeats() -> None:
    q = category_query("Industrial & Scientific > Lab & Scientific Products > Lab Supplies")
    assert q == "industrial scientific lab products supplies"
    assert category_query(pd.NA) == "" and category_query("The > Of") == ""


def _tables(counts: dict[str, int]) -> CatalogTables:
    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(12)],
                          "title": [f"thing {k}" for k in range(12)],
                          "category": [f"Dept > Kind{k}" for k in range(12)]}).astype("string")
    rows = [(u, f"i{(j + n) % 12}", "purchase", j) for n, (u, c) in enumerate(counts.items())
            for j in range(c)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "event", "ts"])
    inter = inter.astype({"user_id": "string", "item_id": "string", "event": "string"})
    users = pd.DataFrame({"user_id": list(counts)}).astype("string")
    return CatalogTables(items=items, users=users, interactions=inter)


def test_split_holds_out_the_last_fifth_per_user() -> None:
    split = make_search_split(_tables({"a": 10, "b": 5, "c": 1}))
    test = split.test
    # a: last 2 of 10 (i8, i9); b: last 1 of 5 (i5 = (4 + 1) % 12); c: nothing (one purchase)
    assert sorted(zip(test["user_id"], test["item_id"], strict=True)) == [
        ("a", "i8"), ("a", "i9"), ("b", "i5")]
    assert set(test["query"]) == {"dept kind8", "dept kind9", "dept kind5"}
    train = split.train.interactions
    key = set(zip(train["user_id"], train["item_id"], strict=True))
    assert not key & set(zip(test["user_id"], test["item_id"], strict=True))
    assert len(train) == 16 - 3
    # i8/i9 are bought by nobody in training: new SKUs; i5 is bought by a in training
    assert test.set_index("item_id")["new_sku"].to_dict() == {"i8": True, "i9": True,
                                                              "i5": False}


def test_split_without_categories_is_a_data_error() -> None:
    t = _tables({"a": 5})
    t = CatalogTables(items=t.items.assign(category=pd.NA), users=t.users,
                      interactions=t.interactions)
    with pytest.raises(DataError, match="category path"):
        make_search_split(t)


def test_bm25_is_perfect_when_each_item_has_its_own_category() -> None:
    base = shop_tables(with_new_items=False)
    items = base.items.assign(category="Catalogue > " + base.items["item_id"].str.replace(
        "-", " "))
    tables = CatalogTables(items=items, users=base.users, interactions=base.interactions)
    config = SearchEvalConfig(seeds=(0,), encoder="hashing",
                              model=ModelConfig(epochs=2, hidden_dim=16, val_user_share=0.0,
                                                cold_val_share=0.0), threads=1)
    res = run_search_evaluation(tables, config)
    assert set(res["model"]) == {"bm25", "dense", "hybrid", "hybrid+pop", "kgrec-search"}
    bm25 = res[(res["model"] == "bm25") & (res["subset"] == "all")].iloc[0]
    assert bm25["mrr"] == 1.0 and bm25["ndcg@10"] == 1.0 and bm25["hit_rate@10"] == 1.0
    assert bm25["users"] == make_search_split(tables).stats["test_queries"]
    table = search_table(res)
    row = table[(table["subset"] == "all") & (table["model"] == "bm25")].iloc[0]
    assert row["ndcg@10 / bm25"] == "1.00x"
    assert np.isfinite(res.loc[res["subset"] == "all", "mrr"]).all()
