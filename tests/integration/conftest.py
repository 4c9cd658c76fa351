"""Integration fixtures: a real Neo4j server (never a mock) and the real text encoder.

Neo4j: ``NEO4J_URI``/``NEO4J_PASSWORD`` when set; otherwise a local Neo4j 5.26 is started from the
Maven Central build (``kgrec.graph.neo4j_server``) for the session. When it cannot start, the tests
FAIL under CI (``CI=true``) and are skipped, with the reason, on a developer machine.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import neo4j
import pytest

from kgrec.errors import KgrecError
from kgrec.graph.neo4j_server import Neo4jServer
from kgrec.graph.neo4j_store import Neo4jGraphStore

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"Neo4j is required in CI but unavailable: {reason}")
    pytest.skip(f"Neo4j unavailable: {reason}")


@pytest.fixture(scope="session")
def neo4j_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jServer | None]:
    """A local server started for this session, or None when NEO4J_URI points elsewhere."""
    if os.environ.get("NEO4J_URI"):
        yield None
        return
    server = Neo4jServer(home=tmp_path_factory.mktemp("neo4j"), port=free_port(),
                         heap_mb=768, page_cache_mb=256)
    try:
        server.start()
    except KgrecError as e:
        _unavailable(str(e))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def neo4j_driver(neo4j_server: Neo4jServer | None) -> Iterator[neo4j.Driver]:
    if neo4j_server is None:
        uri, password = os.environ["NEO4J_URI"], os.environ.get("NEO4J_PASSWORD", "")
    else:
        uri, password = neo4j_server.uri, neo4j_server.password()
    driver = neo4j.GraphDatabase.driver(uri, auth=(os.environ.get("NEO4J_USER", "neo4j"),
                                                    password),
                                          notifications_min_severity="OFF")
    try:
        driver.verify_connectivity()
    except Exception as e:  # noqa: BLE001 - any failure means "unavailable"
        driver.close()
        _unavailable(f"{type(e).__name__}: {e}")
    yield driver
    driver.close()


@pytest.fixture
def neo4j_store(neo4j_driver: neo4j.Driver) -> Neo4jGraphStore:
    """An empty Neo4j store (the database is cleared before each test)."""
    store = Neo4jGraphStore(neo4j_driver, database="neo4j", batch_size=2)
    store.clear()
    return store


@pytest.fixture
def shared_data() -> Path:
    env = os.environ.get("KGREC_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not path.exists():
        pytest.fail(f"the shared datasets are missing at {path}; set KGREC_SHARED_DATA")
    return path
