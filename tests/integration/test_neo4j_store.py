"""The store contract against a real Neo4j server, plus cross-store identity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kgrec.errors import StoreUnavailableError
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.export import to_hetero_data
from kgrec.graph.ingest import ingest_tables
from kgrec.graph.neo4j_store import Neo4jGraphStore
from kgrec.graph.schema import NodeLabel
from tests.contract import StoreContract, pseudonymizer, tiny_catalog
from tests.integration.conftest import Neo4jTarget

pytestmark = pytest.mark.integration


class TestNeo4jStoreContract(StoreContract):
    @pytest.fixture
    def store(self, neo4j_store: Neo4jGraphStore) -> Neo4jGraphStore:
        return neo4j_store


def test_server_is_real_neo4j_526(neo4j_store: Neo4jGraphStore) -> None:
    version = neo4j_store.verify()
    assert version.startswith("5.26") and "community" in version


def test_both_stores_export_identical_tensors(neo4j_store: Neo4jGraphStore,
                                              tmp_path: Path) -> None:
    embedded = EmbeddedGraphStore(tmp_path)
    for store in (embedded, neo4j_store):
        ingest_tables(tiny_catalog(), store, pseudonymizer())
    a, b = to_hetero_data(embedded), to_hetero_data(neo4j_store)
    assert a.data.node_types == b.data.node_types
    assert sorted(a.data.edge_types) == sorted(b.data.edge_types)
    for label in a.node_ids:
        assert list(a.node_ids[label]) == list(b.node_ids[label])
    for et in a.data.edge_types:
        for key, value in a.data[et].items():
            assert torch.equal(value.nan_to_num(-1.0), b.data[et][key].nan_to_num(-1.0)), (et, key)
            assert torch.equal(value.isnan() if value.is_floating_point() else value,
                               b.data[et][key].isnan() if value.is_floating_point()
                               else b.data[et][key]), (et, key)
    assert a.items.equals(b.items)


def test_constraints_exist(neo4j_store: Neo4jGraphStore) -> None:
    neo4j_store.ensure_constraints()
    records, _, _ = neo4j_store.driver.execute_query(
        "SHOW CONSTRAINTS YIELD labelsOrTypes, properties RETURN labelsOrTypes, properties",
        database_="neo4j")
    got = {(r["labelsOrTypes"][0], tuple(r["properties"])) for r in records}
    assert {(label.value, ("kgrec_graph", "id")) for label in NodeLabel} <= got
    assert not {(label.value, ("id",)) for label in NodeLabel} & got  # no database-wide id


def test_unreachable_server_is_a_typed_error() -> None:
    import neo4j
    driver = neo4j.GraphDatabase.driver("bolt://127.0.0.1:1", auth=("neo4j", "x" * 10))
    with pytest.raises(StoreUnavailableError, match="kgrec neo4j start"):
        Neo4jGraphStore(driver).verify()
    driver.close()


def test_default_credentials_are_refused(neo4j_target: Neo4jTarget) -> None:
    """The launcher sets the password before Bolt is enabled: neo4j/neo4j never gets a session
    (not even the "change your password" one an unconfigured server grants)."""
    import neo4j
    if neo4j_target.server is None:
        pytest.skip("checks the private launcher, not an external server")
    driver = neo4j.GraphDatabase.driver(neo4j_target.uri, auth=("neo4j", "neo4j"))
    try:
        with pytest.raises(neo4j.exceptions.AuthError):
            driver.verify_connectivity()
    finally:
        driver.close()
