"""Append-only fold-in of new SKUs equals embedding the whole folded graph."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kgrec.coldstart.append import BaseCache, BaseTensors, embed_new_items
from kgrec.graph.build import build_graph
from kgrec.graph.export import to_hetero_data
from kgrec.graph.tables import CatalogTables
from kgrec.ranking.foldin import canonical_items
from tests.shops import HOMERS, RUNNERS, new_items, shop_tables, small_model


def _new_skus() -> pd.DataFrame:
    """The shop's two new SKUs, one with a brand and a category path the graph does not have,
    and one whose attribute is a value of the users' profile (``segment=runner``): its
    Attribute node links it to the runners in two hops."""
    extra = pd.DataFrame({"item_id": ["nova-1", "tagged-1"],
                          "title": ["Nova trail shoe", "Acme sock"],
                          "description": ["Grippy", "Wool running sock"],
                          "brand": ["Nova", "Acme"],
                          "category": ["Sports > Shoes > Trail", "Sports > Socks"],
                          "price": [80.0, 5.0], "segment": [pd.NA, "runner"]})
    return canonical_items(pd.concat([new_items(), extra], ignore_index=True))


@pytest.mark.parametrize(("layers", "lexical"), [(2, False), (3, False), (2, True)])
def test_append_equals_transform_of_the_folded_graph(layers: int, lexical: bool) -> None:
    tables = shop_tables(with_new_items=False)
    tagged = tables.items["item_id"] == "shoe-0"  # so the model knows Item -> Attribute
    tables.items["segment"] = pd.Series(pd.NA, dtype="string").where(~tagged, "runner")
    base_graph = to_hetero_data(build_graph(tables))
    model = small_model(num_layers=layers, epochs=2, lexical_features=lexical).fit(base_graph)
    new = _new_skus()
    folded = to_hetero_data(build_graph(CatalogTables(
        items=pd.concat([tables.items, new], ignore_index=True), users=tables.users,
        interactions=tables.interactions)))
    users = RUNNERS[:3] + HOMERS[:2]
    ids = new["item_id"].tolist()
    want = model.transform(folded, user_ids=users, item_ids=ids)

    base_emb = model.transform(base_graph)
    rows = base_graph.index_of("User", users)
    got = embed_new_items(model, BaseTensors.build(model, base_graph), base_emb,
                          to_hetero_data(build_graph(CatalogTables(items=new))), ids, rows)

    assert got.item_ids.tolist() == ids and got.user_ids.tolist() == users
    torch.testing.assert_close(got.item, want.item, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.user, want.user, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score_matrix(got), model.score_matrix(want), rtol=1e-5,
                               atol=1e-9)
    # the tagged SKU reaches the runners (SKU -> segment=runner -> runner) in 2 hops, so their
    # vectors changed and were recomputed; the home users are 3 hops from the new mug
    # (SKU -> Zeta -> mug -> user): unchanged with 2 layers, recomputed with 3
    moved = (got.user - base_emb.user[torch.from_numpy(rows)]).abs().amax(1) > 1e-6
    assert moved.tolist() == [True] * 3 + [layers > 2] * 2


def test_base_cache_builds_once_per_model_and_graph() -> None:
    tables = shop_tables(with_new_items=False)
    g1 = to_hetero_data(build_graph(tables))
    g2 = to_hetero_data(build_graph(tables))
    model = small_model(epochs=1).fit(g1)
    cache = BaseCache()
    first = cache.get(model, g1)
    assert cache.get(model, g1) is first
    assert cache.get(model, g2) is not first and cache.get(model, g2).graph is g2
