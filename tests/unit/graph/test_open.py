"""Store specs: which database and which kgrec graph a `--store neo4j...` names (no server)."""

from __future__ import annotations

import pytest

from kgrec.errors import ConfigError
from kgrec.graph.neo4j_store import Neo4jGraphStore
from kgrec.graph.open import open_store


@pytest.fixture(autouse=True)
def neo4j_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("NEO4J_URI", "bolt://127.0.0.1:1")  # never contacted: verify_key=False
    monkeypatch.setenv("NEO4J_PASSWORD", "not-a-real-password")
    monkeypatch.setenv("KGREC_PSEUDONYM_KEY", "a-test-key-0123456789")
    monkeypatch.delenv("NEO4J_DATABASE", raising=False)
    monkeypatch.delenv("KGREC_NEO4J_GRAPH", raising=False)


@pytest.mark.parametrize(("spec", "env_graph", "database", "graph"), [
    ("neo4j", None, "neo4j", "default"),
    ("neo4j", "shop_eu", "neo4j", "shop_eu"),
    ("neo4j/shop_eu", "ignored", "neo4j", "shop_eu"),
    ("neo4j:shopdb", None, "shopdb", "default"),
    ("neo4j:shopdb/shop.eu-2", None, "shopdb", "shop.eu-2"),
])
def test_spec_names_database_and_graph(monkeypatch: pytest.MonkeyPatch, spec: str,
                                       env_graph: str | None, database: str, graph: str) -> None:
    if env_graph is not None:
        monkeypatch.setenv("KGREC_NEO4J_GRAPH", env_graph)
    store, _ = open_store(spec, verify_key=False)
    assert isinstance(store, Neo4jGraphStore)
    assert (store.database, store.graph) == (database, graph)
    store.driver.close()


@pytest.mark.parametrize("spec", ["neo4j/bad name", "neo4j/x;MATCH (n) DETACH DELETE n",
                                  "neo4j/" + "g" * 65])
def test_invalid_graph_name_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="invalid kgrec graph name"):
        open_store(spec, verify_key=False)
