"""Faults against a real server: Neo4j SIGKILLed during ingest, candidate write-back and a
training read (export); after a restart on the same data folder nothing committed is lost, the
store is readable and re-running the same call completes. Figures: benchmarks/RELIABILITY.md.
"""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from kgrec.errors import StoreError, StoreUnavailableError
from kgrec.graph.build import build_graph
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.export import to_hetero_data
from kgrec.graph.ingest import ingest_tables
from kgrec.graph.neo4j_server import JVM_ENV, Neo4jServer
from kgrec.graph.neo4j_store import Neo4jGraphStore
from kgrec.graph.schema import RelType
from kgrec.graph.store import read_graph, write_graph
from kgrec.graph.synthetic import generate_catalog
from tests.contract import pseudonymizer
from tests.integration.conftest import driver_to
from tests.shops import HOMERS, RUNNERS, make_recommender, shop_tables

pytestmark = pytest.mark.integration


def assert_same_graph(got: Neo4jGraphStore, want: EmbeddedGraphStore) -> None:
    a, b = read_graph(got), read_graph(want)
    for label, frame in b.nodes.items():
        pd.testing.assert_frame_equal(a.nodes[label], frame)
    for rel, frame in b.edges.items():
        pd.testing.assert_frame_equal(a.edges[rel], frame)


def test_ingest_killed_midway_then_rerun_gives_identical_graph(
        tmp_path: Path, spare_neo4j: Neo4jServer) -> None:
    tables = generate_catalog(3_000, 2_000, 30_000, n_new_items=0, n_new_users=0, seed=3).tables
    reference = EmbeddedGraphStore(tmp_path / "embedded")
    ingest_tables(tables, reference, pseudonymizer())

    server = spare_neo4j.start()
    driver = driver_to(server)
    try:
        store = Neo4jGraphStore(driver, graph="fault_ingest", batch_size=500)
        store.clear()
        killer = threading.Timer(2.0, lambda: server.stop(kill=True))
        killer.start()
        t0 = time.monotonic()
        with pytest.raises(StoreError):
            ingest_tables(tables, store, pseudonymizer())
        killer.join()
        assert time.monotonic() - t0 < 120

        server.start()  # same data folder: the engine recovers what was committed
        driver.close()
        driver = driver_to(server)
        store = Neo4jGraphStore(driver, graph="fault_ingest", batch_size=5_000)
        partial = read_graph(store).counts()
        assert sum(partial.values()) < sum(read_graph(reference).counts().values())

        ingest_tables(tables, store, pseudonymizer())
        assert_same_graph(store, reference)
        store.clear()
    finally:
        driver.close()


class KilledDuringReplace(Neo4jGraphStore):
    """SIGKILLs the server as the ``kill_on``-th ``replace_edges_from`` transaction starts."""

    def __init__(self, server: Neo4jServer, kill_on: int, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.server, self.kill_on, self.calls = server, kill_on, 0

    def replace_edges_from(self, *args, **kwargs) -> int:  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == self.kill_on:
            threading.Thread(target=self.server.stop, kwargs={"kill": True}).start()
        return super().replace_edges_from(*args, **kwargs)


def test_candidate_write_back_killed_midway_keeps_whole_sets_and_reruns(
        tmp_path: Path, spare_neo4j: Neo4jServer) -> None:
    server = spare_neo4j.start()
    driver = driver_to(server)
    users = RUNNERS + HOMERS
    parquet = tmp_path / "cands.parquet"
    try:
        store = Neo4jGraphStore(driver, graph="fault_candidates")
        store.clear()
        write_graph(store, build_graph(shop_tables(with_new_items=False)))
        rec = make_recommender(user_chunk=5).fit(store)
        rec.write_candidates(k=3, store=store, parquet=parquet)       # the previous run
        previous = pd.read_parquet(parquet)
        killing = KilledDuringReplace(server, 2, driver, graph="fault_candidates", batch_size=1)
        with pytest.raises(StoreUnavailableError):
            rec.write_candidates(k=2, store=killing, parquet=parquet)  # the new run, killed
        gc.collect()
        pd.testing.assert_frame_equal(pd.read_parquet(parquet), previous)
        assert [p.name for p in tmp_path.iterdir()] == ["cands.parquet"]

        server.start()
        driver.close()
        driver = driver_to(server)
        store = Neo4jGraphStore(driver, graph="fault_candidates")
        cands = store.edges(RelType.CANDIDATE)
        per_user = cands.groupby("src")["rank"].agg(lambda r: tuple(sorted(r)))
        assert sorted(per_user.index) == sorted(users)            # nobody lost a set
        assert set(per_user) <= {(1, 2), (1, 2, 3)}               # each one whole
        n_new = int((per_user == (1, 2)).sum())                  # whole chunks of 5 users
        assert n_new % 5 == 0 and n_new < len(users)
        assert (cands.groupby("src")["createdAt"].nunique() == 1).all()

        rec.write_candidates(k=2, store=store, parquet=parquet)   # re-run completes
        cands = store.edges(RelType.CANDIDATE)
        assert len(cands) == 2 * len(users) and cands["createdAt"].nunique() == 1
        assert len(pd.read_parquet(parquet)) == 2 * len(users)
        store.clear()
    finally:
        driver.close()


class KilledDuringRead(Neo4jGraphStore):
    """SIGKILLs the server when the export reaches the interactions."""

    def __init__(self, server: Neo4jServer, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.server = server

    def edges(self, rel_type: RelType) -> pd.DataFrame:
        if rel_type is RelType.INTERACTED:
            self.server.stop(kill=True)
        return super().edges(rel_type)


def test_export_killed_midway_is_a_typed_error_and_store_stays_readable(
        tmp_path: Path, spare_neo4j: Neo4jServer, monkeypatch: pytest.MonkeyPatch) -> None:
    tables = generate_catalog(600, 400, 6_000, n_new_items=0, n_new_users=0, seed=5).tables
    reference = EmbeddedGraphStore(tmp_path / "embedded")
    ingest_tables(tables, reference, pseudonymizer())
    server = spare_neo4j.start()
    driver = driver_to(server)
    try:
        store = Neo4jGraphStore(driver, graph="fault_export")
        store.clear()
        ingest_tables(tables, store, pseudonymizer())
        with pytest.raises(StoreUnavailableError, match="re-run"):
            to_hetero_data(KilledDuringRead(server, driver, graph="fault_export"))

        # restart with secrets in this process's environment: the JVM must not inherit them
        monkeypatch.setenv("KGREC_PSEUDONYM_KEY", "never-give-this-to-the-jvm-0123")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nor-this")
        server.start()
        pid = server.pid()
        assert pid is not None
        names = {e.split(b"=", 1)[0].decode() for e in
                 Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if e}
        assert names <= {*JVM_ENV, "KGREC_NEO4J_PASSWORD"}

        driver.close()
        driver = driver_to(server)
        store = Neo4jGraphStore(driver, graph="fault_export")
        assert_same_graph(store, reference)                       # nothing committed lost
        got, want = to_hetero_data(store), to_hetero_data(reference)   # the re-run completes
        et = ("User", "INTERACTED", "Item")
        assert torch.equal(got.data[et].edge_index, want.data[et].edge_index)
        store.clear()
    finally:
        driver.close()
