"""One contract test suite for every GraphStore, plus a tiny catalogue with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kgrec.graph.export import to_hetero_data
from kgrec.graph.ingest import ingest_tables
from kgrec.graph.pseudonym import Pseudonymizer
from kgrec.graph.schema import NodeLabel, RelType
from kgrec.graph.store import GraphStore, graph_stats, read_graph
from kgrec.graph.tables import CatalogTables

KEY = b"0123456789abcdef-test-key"


def tiny_catalog() -> CatalogTables:
    """3 items (2 brands, a 3-level category tree), 3 users with a profile, KG triples."""
    items = pd.DataFrame({
        "item_id": ["sku-1", "sku-2", "sku-3"],
        "title": ["Red running shoe", "Blue running shoe", "Coffee mug"],
        "description": ["Light shoe for road running", pd.NA, "Ceramic mug, 300 ml"],
        "brand": ["Acme", "Acme", "Zeta"],
        "category": ["Sports > Shoes > Running", "Sports > Shoes > Running", "Home > Kitchen"],
        "price": [59.5, 61.0, np.nan],
        "material": ["mesh|rubber", "mesh", pd.NA],
    }).astype({c: "string" for c in
               ["item_id", "title", "description", "brand", "category", "material"]})
    users = pd.DataFrame({"user_id": ["alice", "bob", "carol"],
                          "age_band": ["25-34", "35-44", pd.NA],
                          "region": ["north", "north", "south"]}).astype("string")
    inter = pd.DataFrame({
        "user_id": ["alice", "alice", "bob", "carol", "alice"],
        "item_id": ["sku-1", "sku-2", "sku-1", "sku-3", "sku-1"],
        "event": ["view", "purchase", "click", "purchase", "purchase"],
        "ts": [100, 200, 150, 300, 400],
        "value": [np.nan, 1.0, np.nan, 2.0, 1.0],
    }).astype({"user_id": "string", "item_id": "string", "event": "string"})
    triples = pd.DataFrame({"head": ["e1", "e1", "e9"], "relation": ["made_by", "similar", "x"],
                            "tail": ["e7", "e3", "e7"]}).astype("string")
    links = pd.DataFrame({"item_id": ["sku-1", "sku-3"], "entity": ["e1", "e3"]}).astype("string")
    return CatalogTables(items=items, users=users, interactions=inter, triples=triples,
                         item_entities=links)


def pseudonymizer() -> Pseudonymizer:
    return Pseudonymizer(KEY)


class StoreContract:
    """Mixin: subclasses provide a ``store`` fixture returning an empty GraphStore."""

    @pytest.fixture
    def store(self) -> GraphStore:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_ingest_counts_match_known_answer(self, store: GraphStore) -> None:
        ingest_tables(tiny_catalog(), store, pseudonymizer())
        counts = graph_stats(store)["counts"]
        assert counts == {
            "User": 3, "Item": 3, "Brand": 2, "Category": 5,
            "Attribute": 8,  # material x2, age_band x2, region x2, entity e7, e9
            "INTERACTED": 5, "HAS_BRAND": 3, "IN_CATEGORY": 3, "SUBCATEGORY_OF": 3,
            "HAS_ATTRIBUTE": 3 + 5, "RELATED": 3,
        }

    def test_reingest_is_idempotent(self, store: GraphStore) -> None:
        ingest_tables(tiny_catalog(), store, pseudonymizer())
        first = read_graph(store)
        ingest_tables(tiny_catalog(), store, pseudonymizer())
        second = read_graph(store)
        for label in NodeLabel:
            pd.testing.assert_frame_equal(first.nodes[label], second.nodes[label])
        for rel in first.edges:
            pd.testing.assert_frame_equal(first.edges[rel], second.edges[rel])

    def test_user_ids_are_pseudonymised(self, store: GraphStore) -> None:
        ingest_tables(tiny_catalog(), store, pseudonymizer())
        ids = set(store.nodes(NodeLabel.USER)["id"])
        assert not ids & {"alice", "bob", "carol"}
        assert ids == set(pseudonymizer().pseudonymize(["alice", "bob", "carol"]))

    def test_category_tree_and_kg_mapping(self, store: GraphStore) -> None:
        ingest_tables(tiny_catalog(), store, pseudonymizer())
        sub = store.edges(RelType.SUBCATEGORY_OF)
        assert set(zip(sub["src"], sub["dst"], strict=True)) == {
            ("Sports > Shoes", "Sports"), ("Sports > Shoes > Running", "Sports > Shoes"),
            ("Home > Kitchen", "Home")}
        rel = store.edges(RelType.RELATED)
        got = set(zip(rel["src_label"], rel["src"], rel["relation"], rel["dst_label"], rel["dst"],
                      strict=True))
        assert got == {("Item", "sku-1", "made_by", "Attribute", "entity=e7"),
                       ("Item", "sku-1", "similar", "Item", "sku-3"),
                       ("Attribute", "entity=e9", "x", "Attribute", "entity=e7")}

    def test_upsert_updates_properties(self, store: GraphStore) -> None:
        ingest_tables(tiny_catalog(), store, pseudonymizer())
        store.upsert_nodes(NodeLabel.ITEM, pd.DataFrame(
            {"id": ["sku-3"], "title": ["Big mug"], "description": [pd.NA], "price": [9.0]}))
        items = store.nodes(NodeLabel.ITEM).set_index("id")
        assert items.loc["sku-3", "title"] == "Big mug"
        assert items.loc["sku-3", "price"] == 9.0
        assert len(items) == 3

    def test_interaction_value_and_nulls_round_trip(self, store: GraphStore) -> None:
        ingest_tables(tiny_catalog(), store, pseudonymizer())
        inter = store.edges(RelType.INTERACTED)
        assert inter["ts"].dtype == np.int64
        assert inter["value"].isna().sum() == 2
        items = store.nodes(NodeLabel.ITEM).set_index("id")
        assert pd.isna(items.loc["sku-2", "description"])
        assert np.isnan(items.loc["sku-3", "price"])

    def test_replace_edges_from_replaces_only_given_sources(self, store: GraphStore) -> None:
        ingest_tables(tiny_catalog(), store, pseudonymizer())
        alice, bob = pseudonymizer().pseudonymize(["alice", "bob"])

        def cands(user: str, items: list[str]) -> pd.DataFrame:
            return pd.DataFrame({"src_label": "User", "src": user, "dst_label": "Item",
                                 "dst": items, "rank": range(1, len(items) + 1),
                                 "score": [0.9] * len(items), "model": "m1",
                                 "createdAt": "2026-01-01T00:00:00Z"})
        store.replace_edges_from(RelType.CANDIDATE, NodeLabel.USER, [alice, bob],
                                 pd.concat([cands(alice, ["sku-1", "sku-2"]),
                                            cands(bob, ["sku-3"])]))
        store.replace_edges_from(RelType.CANDIDATE, NodeLabel.USER, [alice],
                                 cands(alice, ["sku-3"]))
        got = store.edges(RelType.CANDIDATE)
        assert sorted(zip(got["src"], got["dst"], strict=True)) == sorted(
            [(alice, "sku-3"), (bob, "sku-3")])

    def test_edges_to_missing_nodes_are_refused(self, store: GraphStore) -> None:
        from kgrec.errors import StoreError
        ingest_tables(tiny_catalog(), store, pseudonymizer())
        bad = pd.DataFrame({"src_label": ["Item"], "src": ["sku-404"], "dst_label": ["Brand"],
                            "dst": ["Acme"]})
        before = len(store.edges(RelType.HAS_BRAND))
        with pytest.raises(StoreError, match="write the nodes first"):
            store.upsert_edges(RelType.HAS_BRAND, bad)
        assert len(store.edges(RelType.HAS_BRAND)) == before

    def test_export_shapes_and_attributes(self, store: GraphStore) -> None:
        ingest_tables(tiny_catalog(), store, pseudonymizer())
        exp = to_hetero_data(store)
        data = exp.data
        assert data["Item"].num_nodes == 3 and data["User"].num_nodes == 3
        inter = data[("User", "INTERACTED", "Item")]
        assert inter.edge_index.shape == (2, 5)
        assert sorted(inter.edge_time.tolist()) == [100, 150, 200, 300, 400]
        assert list(exp.node_ids["Item"]) == ["sku-1", "sku-2", "sku-3"]
        assert exp.items.set_index("item_id").loc["sku-3", "brand"] == "Zeta"
        assert exp.items.set_index("item_id").loc["sku-1", "category"] == \
            "Sports > Shoes > Running"
        assert exp.index_of("Item", ["sku-3", "sku-1"]).tolist() == [2, 0]

    def test_failing_multi_row_batch_is_rolled_back_whole(self, store: GraphStore) -> None:
        """Two rows in one batch (the Neo4j fixture's batch size is 2): a valid new edge and one
        naming a missing node. Neither is stored: the valid row is rolled back with the bad one."""
        from kgrec.errors import StoreError
        ingest_tables(tiny_catalog(), store, pseudonymizer())
        bad = pd.DataFrame({"src_label": ["Item", "Item"], "src": ["sku-3", "sku-404"],
                            "dst_label": ["Brand", "Brand"], "dst": ["Acme", "Acme"]})
        with pytest.raises(StoreError, match="write the nodes first"):
            store.upsert_edges(RelType.HAS_BRAND, bad)
        got = store.edges(RelType.HAS_BRAND)
        assert sorted(zip(got["src"], got["dst"], strict=True)) == [
            ("sku-1", "Acme"), ("sku-2", "Acme"), ("sku-3", "Zeta")]

    def test_failed_replace_keeps_the_previous_set(self, store: GraphStore) -> None:
        """A replace whose new set names a missing item leaves the user's old set whole."""
        from kgrec.errors import StoreError
        ingest_tables(tiny_catalog(), store, pseudonymizer())
        (alice,) = pseudonymizer().pseudonymize(["alice"])
        old = pd.DataFrame({"src_label": "User", "src": alice, "dst_label": "Item",
                            "dst": ["sku-1", "sku-2"], "rank": [1, 2], "score": [0.9, 0.8],
                            "model": "m1", "createdAt": "2026-01-01T00:00:00Z"})
        store.replace_edges_from(RelType.CANDIDATE, NodeLabel.USER, [alice], old)
        new = old.assign(dst=["sku-3", "sku-404"], model="m2")
        with pytest.raises(StoreError, match="write the nodes first"):
            store.replace_edges_from(RelType.CANDIDATE, NodeLabel.USER, [alice], new)
        got = store.edges(RelType.CANDIDATE)
        assert sorted(zip(got["dst"], got["model"], strict=True)) == [("sku-1", "m1"),
                                                                      ("sku-2", "m1")]

    def test_another_pseudonym_key_is_refused(self, store: GraphStore) -> None:
        from kgrec.errors import KeyMismatchError
        from kgrec.graph.pseudonym import check_key
        assert store.key_fingerprint() is None
        ingest_tables(tiny_catalog(), store, pseudonymizer())
        assert store.key_fingerprint() == pseudonymizer().fingerprint()
        other = Pseudonymizer(b"another-key-0123456789")
        with pytest.raises(KeyMismatchError, match="KGREC_PSEUDONYM_KEY to the original key"):
            ingest_tables(tiny_catalog(), store, other)
        with pytest.raises(KeyMismatchError, match="use a new store"):
            check_key(store, other)
        assert len(store.nodes(NodeLabel.USER)) == 3  # nothing was written with the other key
        check_key(store, pseudonymizer())            # the original key passes
        store.clear()                                 # a cleared store takes any key
        ingest_tables(tiny_catalog(), store, other)
        assert store.key_fingerprint() == other.fingerprint()

    def test_node_count_and_clear(self, store: GraphStore) -> None:
        assert store.node_count() == 0
        ingest_tables(tiny_catalog(), store, pseudonymizer())
        assert store.node_count() == 3 + 3 + 2 + 5 + 8
        store.clear()
        assert store.node_count() == 0
        assert graph_stats(store)["counts"] == {
            **{label.value: 0 for label in NodeLabel},
            **{rel.value: 0 for rel in RelType if rel is not RelType.CANDIDATE}}
