"""The real shared datasets into both stores: known counts, identical graphs, idempotent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kgrec.graph.adapters import load_amazon, load_movielens
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.ingest import ingest
from kgrec.graph.neo4j_store import Neo4jGraphStore
from kgrec.graph.schema import NodeLabel, RelType
from kgrec.graph.store import graph_stats, read_graph
from tests.contract import pseudonymizer

pytestmark = pytest.mark.integration

AMAZON = {"User": 8_317, "Item": 4_344, "INTERACTED": 58_492, "Brand": 1_546}


def test_amazon_into_both_stores(neo4j_driver: object, neo4j_graph: str, shared_data: Path,
                                 tmp_path: Path) -> None:
    folder = shared_data / "amazon-industrial-scientific"
    embedded = EmbeddedGraphStore(tmp_path / "store")
    neo = Neo4jGraphStore(neo4j_driver, graph=neo4j_graph,  # type: ignore[arg-type]
                          batch_size=10_000)
    neo.clear()
    for store in (embedded, neo):
        report = ingest(load_amazon(folder), store, pseudonymizer(),
                        rejects_path=tmp_path / "rejects.csv")
        assert sum(report.rejected.values()) == 0
        counts = graph_stats(store)["counts"]
        assert {k: counts[k] for k in AMAZON} == AMAZON  # type: ignore[index]
    a, b = read_graph(embedded), read_graph(neo)
    for label in NodeLabel:
        pd.testing.assert_frame_equal(a.nodes[label], b.nodes[label])
    for rel in a.edges:
        pd.testing.assert_frame_equal(a.edges[rel], b.edges[rel])

    ingest(load_amazon(folder), neo, pseudonymizer())  # a second run changes nothing
    again = read_graph(neo)
    for rel in a.edges:
        pd.testing.assert_frame_equal(a.edges[rel], again.edges[rel])
    assert again.counts() == a.counts()
    neo.clear()


def test_movielens_users_profiles_and_kg(shared_data: Path, tmp_path: Path) -> None:
    store = EmbeddedGraphStore(tmp_path)
    ingest(load_movielens(shared_data / "movielens-100k"), store, pseudonymizer())
    counts = graph_stats(store)["counts"]
    assert counts["User"] == 943 and counts["Item"] == 1_682  # type: ignore[index]
    assert counts["INTERACTED"] == 100_000 and counts["RELATED"] == 91_631  # type: ignore[index]
    attrs = store.nodes(NodeLabel.ATTRIBUTE)
    assert {"age_band", "gender", "occupation", "region", "genre", "entity"} <= set(attrs["key"])
    has = store.edges(RelType.HAS_ATTRIBUTE)
    user_attr_keys = has[has["src_label"] == "User"]["dst"].str.split("=").str[0]
    assert user_attr_keys.value_counts().to_dict() == {
        "age_band": 943, "gender": 943, "occupation": 943, "region": 943}
    inter = store.edges(RelType.INTERACTED)
    assert set(inter["event"]) == {"rating"} and inter["value"].between(1, 5).all()
    assert inter["ts"].min() > 870_000_000  # real unix timestamps (1997-1998)
