"""Faults against the real server: Neo4j stopped mid-ingest, restarted, ingest re-run."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import neo4j
import pandas as pd
import pytest

from kgrec.errors import StoreError
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.ingest import ingest_tables
from kgrec.graph.neo4j_server import Neo4jServer
from kgrec.graph.neo4j_store import Neo4jGraphStore
from kgrec.graph.store import read_graph
from kgrec.graph.synthetic import generate_catalog
from tests.contract import pseudonymizer
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def test_ingest_killed_midway_then_rerun_gives_identical_graph(tmp_path: Path,
                                                               neo4j_server: object) -> None:
    tables = generate_catalog(3_000, 2_000, 30_000, n_new_items=0, n_new_users=0, seed=3).tables
    reference = EmbeddedGraphStore(tmp_path / "embedded")
    ingest_tables(tables, reference, pseudonymizer())

    server = Neo4jServer(home=tmp_path / "neo4j", port=free_port(), heap_mb=512,
                         page_cache_mb=128)
    server.start()
    driver = neo4j.GraphDatabase.driver(server.uri, auth=("neo4j", server.password()),
                                        notifications_min_severity="OFF",
                                        max_transaction_retry_time=3.0)
    try:
        store = Neo4jGraphStore(driver, batch_size=500)
        killer = threading.Timer(2.0, lambda: server.stop(kill=True))
        killer.start()
        t0 = time.monotonic()
        with pytest.raises(StoreError):
            ingest_tables(tables, store, pseudonymizer())
        killer.join()
        assert time.monotonic() - t0 < 120

        server.start()  # same data folder: the engine recovers what was committed
        driver.close()
        driver = neo4j.GraphDatabase.driver(server.uri, auth=("neo4j", server.password()),
                                            notifications_min_severity="OFF")
        store = Neo4jGraphStore(driver, batch_size=5_000)
        partial = read_graph(store).counts()
        assert sum(partial.values()) < sum(read_graph(reference).counts().values())

        ingest_tables(tables, store, pseudonymizer())
        got, want = read_graph(store), read_graph(reference)
        for label, frame in want.nodes.items():
            pd.testing.assert_frame_equal(got.nodes[label], frame)
        for rel, frame in want.edges.items():
            pd.testing.assert_frame_equal(got.edges[rel], frame)
    finally:
        driver.close()
        server.stop()
