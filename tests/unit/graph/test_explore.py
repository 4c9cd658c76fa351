from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

from kgrec.errors import UnknownIdError
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.explore import (
    category_tree,
    degree_distribution,
    draw_graph,
    interaction_degrees,
    neighbourhood,
    popularity,
)
from kgrec.graph.ingest import ingest_tables
from tests.contract import pseudonymizer, tiny_catalog

matplotlib.use("Agg")


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedGraphStore:
    s = EmbeddedGraphStore(tmp_path)
    ingest_tables(tiny_catalog(), s, pseudonymizer())
    return s


def test_degrees_and_distribution(store: EmbeddedGraphStore) -> None:
    deg = interaction_degrees(store)
    items = deg[deg["label"] == "Item"].set_index("id")["degree"].to_dict()
    assert items == {"sku-1": 3, "sku-2": 1, "sku-3": 1}
    dist = degree_distribution(deg[deg["label"] == "Item"]["degree"])
    assert dist.to_dict("list") == {"degree": [1, 3], "count": [2, 1]}


def test_category_tree_counts(store: EmbeddedGraphStore) -> None:
    tree = category_tree(store)
    assert set(tree.successors("Sports")) == {"Sports > Shoes"}
    assert tree.nodes["Sports"]["items_total"] == 2
    assert tree.nodes["Sports > Shoes > Running"]["items"] == 2


def test_popularity_counts_positive_events_only(store: EmbeddedGraphStore) -> None:
    brands = popularity(store, "brand").set_index("brand")
    # Acme: alice purchase sku-2, bob click sku-1, alice purchase sku-1 (the view is not counted)
    assert brands.loc["Acme", "interactions"] == 3 and brands.loc["Acme", "users"] == 2
    assert brands.loc["Zeta", "interactions"] == 1
    with pytest.raises(ValueError, match="brand' or 'category"):
        popularity(store, "colour")


def test_neighbourhood_and_drawing(store: EmbeddedGraphStore) -> None:
    g = neighbourhood(store, "Item", "sku-2", hops=2)
    assert ("Brand", "Acme") in g and ("Item", "sku-1") in g  # via the shared brand
    assert g.nodes[("Item", "sku-2")]["hop"] == 0
    small = neighbourhood(store, "Item", "sku-2", hops=2, max_nodes=3)
    assert small.number_of_nodes() == 3
    ax = draw_graph(g, title="sku-2", highlight=("Item", "sku-2"))
    assert ax.get_title() == "sku-2"
    drawn = sorted(t.get_text() for t in ax.texts)  # one label per node, long ids shortened
    assert drawn == sorted(i if len(i) <= 18 else i[:16] + "…" for _, i in g.nodes)
    with pytest.raises(UnknownIdError, match="sku-404"):
        neighbourhood(store, "Item", "sku-404")
