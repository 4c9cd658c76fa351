"""Shared benchmark helpers: timing, peak memory, the shared-data path, a local Neo4j."""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def shared_data() -> Path:
    env = os.environ.get("KGREC_SHARED_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed() -> Iterator[list[float]]:
    out: list[float] = []
    start = time.perf_counter()
    yield out
    out.append(time.perf_counter() - start)


WRITABLE_URI_ENV = "KGREC_BENCH_NEO4J_WRITABLE_URI"


@contextmanager
def neo4j_driver() -> Iterator[tuple[object, str]]:
    """``(driver, graph)``: a throwaway local server started for the benchmark, graph "default".

    NEO4J_URI is never used: benchmarks write and clear. Only the explicit opt-in
    ``KGREC_BENCH_NEO4J_WRITABLE_URI`` (with ``KGREC_BENCH_NEO4J_PASSWORD``, optionally
    ``KGREC_BENCH_NEO4J_USER``) points them at an external server, where they work in a graph of
    their own (``kgrec_bench_<random>``) and clear only that graph.
    """
    import secrets

    import neo4j

    from kgrec.graph.neo4j_server import Neo4jServer

    if os.environ.get(WRITABLE_URI_ENV):
        driver = neo4j.GraphDatabase.driver(
            os.environ[WRITABLE_URI_ENV],
            auth=(os.environ.get("KGREC_BENCH_NEO4J_USER", "neo4j"),
                  os.environ.get("KGREC_BENCH_NEO4J_PASSWORD", "")),
            notifications_min_severity="OFF")
        try:
            yield driver, f"kgrec_bench_{secrets.token_hex(4)}"
        finally:
            driver.close()
        return
    with tempfile.TemporaryDirectory() as home:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = Neo4jServer(home=Path(home), port=port, heap_mb=1024, page_cache_mb=512,
                             password_env=None)
        server.start()
        driver = neo4j.GraphDatabase.driver(server.uri, auth=("neo4j", server.password()),
                                            notifications_min_severity="OFF")
        try:
            yield driver, "default"
        finally:
            driver.close()
            server.stop()


@contextmanager
def private_neo4j(heap_mb: int = 1024, page_cache_mb: int = 512) -> Iterator[object]:
    """A throwaway private Neo4j server (a ``Neo4jServer``, running) in a temporary folder: the
    only kind the offline importer may load, as it replaces a whole database."""
    import socket

    from kgrec.graph.neo4j_server import Neo4jServer

    with tempfile.TemporaryDirectory() as home:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = Neo4jServer(home=Path(home), port=port, heap_mb=heap_mb,
                             page_cache_mb=page_cache_mb, password_env=None)
        server.start()
        try:
            yield server
        finally:
            server.stop()
