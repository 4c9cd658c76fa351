"""Done-when for "never touch data kgrec does not own": a server holding other data keeps it.

A second private server plays a user's database: foreign ``:User``/``:Item``/``:Brand`` nodes
without kgrec's namespace (same ids as kgrec's), a foreign label and relationship, and another
kgrec graph built with another pseudonym key. kgrec then clears, ingests, writes candidates,
reads, exports and resets its own graph there, and the test suite itself is run with
``NEO4J_URI`` pointing at that server. Every foreign node, relationship and property is still
there, unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import neo4j
import pandas as pd
import pytest

from kgrec.errors import ConfigError, KeyMismatchError
from kgrec.graph.export import to_hetero_data
from kgrec.graph.ingest import ingest_tables
from kgrec.graph.neo4j_server import Neo4jServer
from kgrec.graph.neo4j_store import Neo4jGraphStore
from kgrec.graph.pseudonym import Pseudonymizer
from kgrec.graph.schema import NodeLabel, RelType
from kgrec.graph.store import graph_stats
from kgrec.ranking.candidates import write_to_store
from tests.contract import pseudonymizer, tiny_catalog
from tests.integration.conftest import WRITABLE_URI_ENV, driver_to, external_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FOREIGN = (
    "CREATE (u:User {id: 'alice', email: 'alice@example.com'}), "
    "(i:Item {id: 'sku-1', title: 'not kgrec'}), (b:Brand {id: 'Acme'}), "
    "(c:Customer {id: 'c1'})-[:BOUGHT {qty: 2}]->(:Product {sku: 'p1'}), "
    "(u)-[:INTERACTED {event: 'view', ts: 1}]->(i), (c)-[:SAME_AS]->(u)"
)
# Everything that is not graph 'mine' (its nodes and its metadata node), and the relationships
# between such nodes.
SNAPSHOT_NODES = ("MATCH (n) WHERE (n.kgrec_graph IS NULL OR n.kgrec_graph <> 'mine') "
                  "AND NOT (n:KgrecGraph AND n.name = 'mine') "
                  "RETURN elementId(n) AS id, labels(n) AS labels, properties(n) AS props")
SNAPSHOT_RELS = ("MATCH (a)-[r]->(b) WHERE coalesce(a.kgrec_graph, '') <> 'mine' "
                 "AND coalesce(b.kgrec_graph, '') <> 'mine' "
                 "RETURN elementId(r) AS id, type(r) AS type, properties(r) AS props")


def snapshot(driver: neo4j.Driver) -> tuple[list[str], list[str]]:
    nodes = [repr(r.data()) for r in driver.execute_query(SNAPSHOT_NODES, database_="neo4j")[0]]
    rels = [repr(r.data()) for r in driver.execute_query(SNAPSHOT_RELS, database_="neo4j")[0]]
    return sorted(nodes), sorted(rels)


def test_kgrec_operations_leave_foreign_data_untouched(
        spare_neo4j: Neo4jServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kgrec.cli.demo_run import DemoConfig, run_demo

    driver = driver_to(spare_neo4j)
    try:
        driver.execute_query("MATCH (n) DETACH DELETE n", database_="neo4j")  # the spare's own
        driver.execute_query(FOREIGN, database_="neo4j")
        theirs = Neo4jGraphStore(driver, graph="theirs")
        ingest_tables(tiny_catalog(), theirs, Pseudonymizer(b"their-own-key-0123456789"))
        before = snapshot(driver)
        assert len(before[0]) == 5 + theirs.node_count() + 1  # + its (:KgrecGraph) node

        mine = Neo4jGraphStore(driver, graph="mine", batch_size=2)
        mine.clear()                                          # nothing of 'mine' yet
        assert mine.node_count() == 0 and mine.key_fingerprint() is None
        ingest_tables(tiny_catalog(), mine, pseudonymizer())  # same ids as the foreign nodes
        counts = graph_stats(mine)["counts"]
        assert counts["User"] == 3 and counts["Item"] == 3 and counts["Brand"] == 2
        exp = to_hetero_data(mine)                            # a training read sees only 'mine'
        assert list(exp.node_ids["Item"]) == ["sku-1", "sku-2", "sku-3"]
        assert exp.data[("User", "INTERACTED", "Item")].edge_index.shape == (2, 5)
        alice, bob = pseudonymizer().pseudonymize(["alice", "bob"])
        cands = pd.DataFrame({"user_id": [alice, alice, bob], "item_id": ["sku-1", "sku-2",
                                                                          "sku-3"],
                              "rank": [1, 2, 1], "score": [0.9, 0.8, 0.7]})
        assert write_to_store(mine, cands, [alice, bob], "m1", "2026-01-01T00:00:00+00:00") == 3
        assert len(mine.edges(RelType.CANDIDATE)) == 3
        with pytest.raises(KeyMismatchError):                 # 'theirs' keeps its own key
            ingest_tables(tiny_catalog(), theirs, pseudonymizer())
        assert snapshot(driver) == before

        # the demo refuses a graph holding only users (no items) without --reset-store
        mine.clear()
        mine.upsert_nodes(NodeLabel.USER, pd.DataFrame({"id": [alice]}))
        monkeypatch.setenv("NEO4J_URI", spare_neo4j.uri)
        monkeypatch.setenv("NEO4J_PASSWORD", spare_neo4j.password())
        monkeypatch.setenv("KGREC_PSEUDONYM_KEY", "demo-test-key-0123456789")
        monkeypatch.setenv("KGREC_HOME", str(tmp_path))
        with pytest.raises(ConfigError, match="--reset-store"):
            run_demo(DemoConfig(out=tmp_path / "demo", store="neo4j/mine", encoder="hashing",
                                n_users=50, n_items=40, n_interactions=400, n_new_items=5,
                                n_new_users=3, epochs=1, threads=1))
        assert mine.node_count() == 1
        mine.clear()                                          # what --reset-store runs
        assert mine.node_count() == 0
        assert snapshot(driver) == before
    finally:
        driver.close()


def test_fixtures_ignore_neo4j_uri() -> None:
    assert external_server({"NEO4J_URI": "bolt://users-server:7687"}) is None
    assert external_server({WRITABLE_URI_ENV: "bolt://scratch:7687"}) == "bolt://scratch:7687"


def test_test_suite_with_neo4j_uri_set_leaves_that_server_untouched(
        spare_neo4j: Neo4jServer) -> None:
    """Runs store tests in a fresh pytest with NEO4J_URI/NEO4J_PASSWORD naming the spare server
    (holding foreign data): they start their own server and write nothing to the spare."""
    driver = driver_to(spare_neo4j)
    try:
        driver.execute_query("MATCH (n) DETACH DELETE n", database_="neo4j")
        driver.execute_query(FOREIGN, database_="neo4j")
        ingest_tables(tiny_catalog(), Neo4jGraphStore(driver, graph="default"), pseudonymizer())
        everything = ("MATCH (n) OPTIONAL MATCH (n)-[r]->() "
                      "RETURN elementId(n) AS n, properties(n) AS p, collect(elementId(r)) AS r")
        before = sorted(repr(r.data()) for r in driver.execute_query(everything,
                                                                     database_="neo4j")[0])
        env = {k: v for k, v in os.environ.items() if k != WRITABLE_URI_ENV}
        env.update({"NEO4J_URI": spare_neo4j.uri, "NEO4J_PASSWORD": spare_neo4j.password()})
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/integration/test_neo4j_store.py", "-k",
             "node_count_and_clear or failing_multi_row or pseudonym_key"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "3 passed" in proc.stdout  # they ran (and cleared "their" graph 'default')
        after = sorted(repr(r.data()) for r in driver.execute_query(everything,
                                                                    database_="neo4j")[0])
        assert after == before
    finally:
        driver.close()
