"""Bulk loads into Neo4j give the graph `kgrec ingest` gives: Neo4j's offline importer on a
private server of this module, and concurrent batched first loads (CREATE) and re-runs (MERGE)
online; rejects are reported, accepted rows stored, re-runs idempotent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import neo4j
import pandas as pd
import pytest

from kgrec.errors import KgrecError, Neo4jServerError, StoreError
from kgrec.graph.adapters import load_amazon
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.frames import GraphFrames
from kgrec.graph.ingest import ingest, ingest_tables
from kgrec.graph.neo4j_import import import_offline, ingest_offline
from kgrec.graph.neo4j_server import Neo4jServer
from kgrec.graph.neo4j_store import Neo4jGraphStore
from kgrec.graph.readers import RawCatalog, read_catalog
from kgrec.graph.schema import NodeLabel, RelType
from kgrec.graph.store import GraphStore, read_graph
from kgrec.graph.synthetic import generate_catalog
from tests.contract import pseudonymizer
from tests.integration.conftest import _unavailable, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jServer]:
    """A private server that only this module loads (the importer replaces its database)."""
    srv = Neo4jServer(home=tmp_path_factory.mktemp("import-neo4j"), port=free_port(),
                      heap_mb=512, page_cache_mb=128, password_env=None)
    try:
        srv.start()
    except KgrecError as e:
        _unavailable(str(e))
    yield srv
    srv.stop()


@pytest.fixture
def driver(server: Neo4jServer) -> Iterator[neo4j.Driver]:
    drv = neo4j.GraphDatabase.driver(server.uri, auth=("neo4j", server.password()),
                                     notifications_min_severity="OFF")
    yield drv
    with drv.session(database="neo4j") as session:  # this module's own server: leave it empty
        session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
                    ).consume()
    drv.close()


def assert_same_graph(a: GraphStore, b: GraphStore) -> None:
    fa, fb = read_graph(a), read_graph(b)
    for label in NodeLabel:
        pd.testing.assert_frame_equal(fa.nodes[label], fb.nodes[label])
    for rel in fa.edges:
        pd.testing.assert_frame_equal(fa.edges[rel], fb.edges[rel])


def raw_with_bad_rows(folder: Path) -> RawCatalog:
    """Items with a quote, a comma, a line break, an empty title and no price; interactions
    with an unknown item, an unknown event, a bad ts and a line that is not JSON."""
    folder.mkdir()
    pd.DataFrame({"item_id": ["sku-1", "sku-2", "sku-3"],
                  "title": ['Shoe "Fast", red', "Mug", "Lamp"],
                  "description": ["line one\nline two", "", "plain"],
                  "brand": ["Acme", "Acme", "Lumo"],
                  "category": ["Sport > Shoes", "Home > Kitchen", "Home > Lamps"],
                  "price": ["10.5", "", "7"]}).to_csv(folder / "items.csv", index=False)
    lines = [json.dumps({"user_id": f"user{k % 4}", "item_id": f"sku-{1 + k % 3}",
                         "event": "purchase", "ts": 1_700_000_000 + k}) for k in range(12)]
    lines += [json.dumps({"user_id": "user0", "item_id": "sku-404", "event": "purchase"}),
              json.dumps({"user_id": "user1", "item_id": "sku-1", "event": "liked"}),
              json.dumps({"user_id": "user2", "item_id": "sku-1", "event": "click",
                          "ts": "yesterday"}),
              '{"user_id": "user3", "item_id": "sku-2", "event": ']
    (folder / "interactions.jsonl").write_text("\n".join(lines) + "\n")
    return read_catalog(items=folder / "items.csv", interactions=folder / "interactions.jsonl")


def test_offline_import_of_amazon_is_the_ingested_graph(server: Neo4jServer, driver: neo4j.Driver,
                                                        shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "amazon-industrial-scientific"
    embedded = EmbeddedGraphStore(tmp_path / "store")
    want = ingest(load_amazon(folder), embedded, pseudonymizer())
    got = ingest_offline(load_amazon(folder), server, pseudonymizer())
    assert got.accepted == want.accepted and got.written == want.written
    assert server.pid() is not None  # running again
    neo = Neo4jGraphStore(driver)
    assert neo.key_fingerprint() == pseudonymizer().fingerprint()
    assert_same_graph(embedded, neo)
    records, _, _ = driver.execute_query("SHOW CONSTRAINTS YIELD labelsOrTypes, properties "
                                         "RETURN labelsOrTypes, properties")
    assert {(label.value, ("kgrec_graph", "id")) for label in NodeLabel} <= {
        (r["labelsOrTypes"][0], tuple(r["properties"])) for r in records}


def test_offline_import_reports_rejects_and_reruns_idempotently(
        server: Neo4jServer, driver: neo4j.Driver, tmp_path: Path) -> None:
    embedded = EmbeddedGraphStore(tmp_path / "store")
    want = ingest(raw_with_bad_rows(tmp_path / "a"), embedded, pseudonymizer(),
                  rejects_path=tmp_path / "want.csv")
    got = ingest_offline(raw_with_bad_rows(tmp_path / "b"), server, pseudonymizer(),
                         rejects_path=tmp_path / "got.csv")
    assert sum(got.rejected.values()) == 4 and got.rejected == want.rejected
    assert got.accepted == want.accepted
    assert pd.read_csv(tmp_path / "got.csv").drop(columns="source").equals(
        pd.read_csv(tmp_path / "want.csv").drop(columns="source"))  # the same reasons
    neo = Neo4jGraphStore(driver)
    assert_same_graph(embedded, neo)
    items = neo.nodes(NodeLabel.ITEM).set_index("id")
    assert items.loc["sku-1", "title"] == 'Shoe "Fast", red'
    assert items.loc["sku-1", "description"] == "line one\nline two"
    again = ingest(raw_with_bad_rows(tmp_path / "c"), neo, pseudonymizer(),
                   rejects_path=tmp_path / "again.csv")
    assert again.rejected == want.rejected
    assert_same_graph(embedded, neo)


def test_offline_import_refuses_a_database_with_any_node(server: Neo4jServer,
                                                         driver: neo4j.Driver) -> None:
    driver.execute_query("CREATE (:Foreign {note: 'not kgrec data'})")
    frames = GraphFrames(nodes={NodeLabel.USER: pd.DataFrame({"id": ["u1"]})})
    with pytest.raises(StoreError, match="holds 1 node.*only loads an empty one"):
        import_offline(server, frames)
    records, _, _ = driver.execute_query("MATCH (n) RETURN labels(n) AS l, n.note AS note")
    assert [(r["l"], r["note"]) for r in records] == [(["Foreign"], "not kgrec data")]


def test_failed_import_leaves_the_server_as_it_was(server: Neo4jServer,
                                                   driver: neo4j.Driver) -> None:
    pid = server.pid()
    frames = GraphFrames(
        nodes={NodeLabel.ITEM: pd.DataFrame({"id": ["sku-1"]})},
        edges={RelType.HAS_BRAND: pd.DataFrame({"src_label": ["Item"], "src": ["sku-1"],
                                                "dst_label": ["Brand"], "dst": ["NoSuch"]})})
    with pytest.raises(StoreError, match="importer failed.*nothing was changed"):
        import_offline(server, frames)
    assert server.pid() == pid  # never stopped
    assert Neo4jGraphStore(driver).node_count() == 0


def test_offline_import_needs_a_running_kgrec_server(tmp_path: Path) -> None:
    idle = Neo4jServer(home=tmp_path / "idle", port=free_port(), password_env=None)
    with pytest.raises(Neo4jServerError, match="not running; start it"):
        import_offline(idle, GraphFrames())


@pytest.mark.parametrize("workers", [1, 4])
def test_concurrent_first_load_and_rerun_equal_the_embedded_store(
        driver: neo4j.Driver, tmp_path: Path, workers: int) -> None:
    """A first load CREATEs (the graph is empty), a re-run MERGEs; both in concurrent batches
    small enough that users span batches and many transactions touch the same items."""
    tables = generate_catalog(n_users=300, n_items=120, n_interactions=4_000, n_new_items=0,
                              n_new_users=0, seed=3).tables
    embedded = EmbeddedGraphStore(tmp_path / "store")
    ingest_tables(tables, embedded, pseudonymizer())
    neo = Neo4jGraphStore(driver, batch_size=97, workers=workers)
    ingest_tables(tables, neo, pseudonymizer())
    assert_same_graph(embedded, neo)
    ingest_tables(tables, neo, pseudonymizer())
    assert_same_graph(embedded, neo)


def test_online_bulk_path_reports_rejects_and_reruns_idempotently(
        driver: neo4j.Driver, tmp_path: Path) -> None:
    embedded = EmbeddedGraphStore(tmp_path / "store")
    want = ingest(raw_with_bad_rows(tmp_path / "a"), embedded, pseudonymizer())
    neo = Neo4jGraphStore(driver, batch_size=3, workers=4)
    for run in ("b", "c"):
        got = ingest(raw_with_bad_rows(tmp_path / run), neo, pseudonymizer(),
                     rejects_path=tmp_path / f"{run}.csv")
        assert got.rejected == want.rejected and got.accepted == want.accepted
        assert_same_graph(embedded, neo)
