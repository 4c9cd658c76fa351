"""Integration fixtures: a real Neo4j server (never a mock) and the real text encoder.

Neo4j: the tests always start their own private Neo4j 5.26 (``kgrec.graph.neo4j_server``) for the
session, whatever ``NEO4J_URI`` says, so running them can never touch a user's database. Only the
explicit opt-in ``KGREC_TEST_NEO4J_WRITABLE_URI`` (with ``KGREC_TEST_NEO4J_PASSWORD``, optionally
``KGREC_TEST_NEO4J_USER``) points them at an external server; they then work in a graph of their
own, ``kgrec_test_<random>``, and clear only that graph. When Neo4j cannot start, the tests FAIL
under CI (``CI=true``) and are skipped, with the reason, on a developer machine.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import neo4j
import pytest

from kgrec.errors import KgrecError
from kgrec.graph.neo4j_server import Neo4jServer
from kgrec.graph.neo4j_store import DEFAULT_GRAPH, Neo4jGraphStore

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
WRITABLE_URI_ENV = "KGREC_TEST_NEO4J_WRITABLE_URI"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def external_server(env: Mapping[str, str]) -> str | None:
    """The external server the tests may write to: only the explicit opt-in, never NEO4J_URI."""
    return env.get(WRITABLE_URI_ENV) or None


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"Neo4j is required in CI but unavailable: {reason}")
    pytest.skip(f"Neo4j unavailable: {reason}")


@dataclass
class Neo4jTarget:
    """Where the tests' Neo4j is and which kgrec graph they use there."""

    uri: str
    user: str
    password: str
    graph: str
    server: Neo4jServer | None

    def env(self) -> dict[str, str]:
        """The variables `--store neo4j` (CLI, demo, notebooks) reads, pointing here."""
        return {"NEO4J_URI": self.uri, "NEO4J_USER": self.user, "NEO4J_PASSWORD": self.password,
                "KGREC_NEO4J_GRAPH": self.graph}


@pytest.fixture(scope="session")
def neo4j_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jTarget]:
    uri = external_server(os.environ)
    if uri:
        yield Neo4jTarget(uri, os.environ.get("KGREC_TEST_NEO4J_USER", "neo4j"),
                          os.environ.get("KGREC_TEST_NEO4J_PASSWORD", ""),
                          f"kgrec_test_{secrets.token_hex(4)}", None)
        return
    server = Neo4jServer(home=tmp_path_factory.mktemp("neo4j"), port=free_port(),
                         heap_mb=768, page_cache_mb=256, password_env=None)
    try:
        server.start()
    except KgrecError as e:
        _unavailable(str(e))
    yield Neo4jTarget(server.uri, "neo4j", server.password(), DEFAULT_GRAPH, server)
    server.stop()


@pytest.fixture(scope="session")
def neo4j_server(neo4j_target: Neo4jTarget) -> Neo4jServer | None:
    """The private server of this session, or None with the external opt-in."""
    return neo4j_target.server


@pytest.fixture(scope="session")
def neo4j_driver(neo4j_target: Neo4jTarget) -> Iterator[neo4j.Driver]:
    driver = neo4j.GraphDatabase.driver(neo4j_target.uri,
                                        auth=(neo4j_target.user, neo4j_target.password),
                                        notifications_min_severity="OFF")
    try:
        driver.verify_connectivity()
    except Exception as e:  # noqa: BLE001 - any failure means "unavailable"
        driver.close()
        _unavailable(f"{type(e).__name__}: {e}")
    yield driver
    if neo4j_target.server is None:  # an external server: remove only what the tests wrote
        Neo4jGraphStore(driver, graph=neo4j_target.graph).clear()
    driver.close()


@pytest.fixture
def neo4j_graph(neo4j_target: Neo4jTarget) -> str:
    return neo4j_target.graph


@pytest.fixture
def neo4j_store(neo4j_driver: neo4j.Driver, neo4j_graph: str) -> Neo4jGraphStore:
    """An empty Neo4j store: the tests' graph is cleared before each test (only that graph)."""
    store = Neo4jGraphStore(neo4j_driver, database="neo4j", graph=neo4j_graph, batch_size=2)
    store.clear()
    return store


@pytest.fixture(scope="session")
def spare_neo4j(tmp_path_factory: pytest.TempPathFactory, neo4j_target: Neo4jTarget,
                ) -> Iterator[Neo4jServer]:
    """A second private server: "a user's server" holding foreign data, or one to SIGKILL.

    Tests that kill it start it again before they end; it is started here if it is down.
    """
    server = Neo4jServer(home=tmp_path_factory.mktemp("spare-neo4j"), port=free_port(),
                         heap_mb=512, page_cache_mb=128, password_env=None)
    try:
        server.start()
    except KgrecError as e:
        _unavailable(str(e))
    yield server
    server.stop()


def driver_to(server: Neo4jServer, retry_s: float = 3.0) -> neo4j.Driver:
    """A driver to ``server`` that gives up retrying after ``retry_s`` (fault tests)."""
    return neo4j.GraphDatabase.driver(server.uri, auth=("neo4j", server.password()),
                                      notifications_min_severity="OFF",
                                      max_transaction_retry_time=retry_s)


@pytest.fixture
def shared_data() -> Path:
    env = os.environ.get("KGREC_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not path.exists():
        pytest.fail(f"the shared datasets are missing at {path}; set KGREC_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a private two-node Ray cluster (``tests/ray_cluster.py``) for the session.

    Without the ``ray`` extra, or when the nodes do not come up, the tests FAIL under CI
    (``CI=true``) and are skipped, with the reason, on a developer machine.
    """
    from tests.ray_cluster import RayCluster, join

    with pytest.MonkeyPatch.context() as mp:
        join(mp)  # the cluster's token, for this process's Ray
        try:
            import ray  # noqa: F401
        except ImportError as e:
            if IN_CI:
                pytest.fail(f"Ray is required in CI (the `ray` extra) but missing: {e}")
            pytest.skip(f"Ray is not installed (pip install 'kgrec[ray]'): {e}")
        try:
            cluster = RayCluster.start(tmp_path_factory.mktemp("ray-logs"))
        except RuntimeError as e:
            if IN_CI:
                pytest.fail(f"the two-node Ray cluster did not start: {e}")
            pytest.skip(f"the two-node Ray cluster did not start: {e}")
        yield cluster.address
        cluster.stop()
