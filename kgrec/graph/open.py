"""Open a store from a spec string (``embedded:DIR`` or ``neo4j``), as the CLI and notebooks do.

Why: one place decides where the pseudonym key lives for each store kind: beside an embedded
store (``DIR/pseudonym.key``), or in ``$KGREC_HOME`` (default ``~/.kgrec``) for Neo4j, unless
``KGREC_PSEUDONYM_KEY`` is set (recommended when both stores must hold the same users). An opened
store is checked against the key it was built with (:func:`~kgrec.graph.pseudonym.check_key`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kgrec.errors import ConfigError
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.neo4j_store import (
    DEFAULT_GRAPH,
    GRAPH_ENV,
    Neo4jGraphStore,
    check_graph_name,
    driver_from_env,
)
from kgrec.graph.pseudonym import Pseudonymizer, check_key
from kgrec.graph.store import GraphStore

HOME_ENV = "KGREC_HOME"


def kgrec_home() -> Path:
    return Path(os.environ.get(HOME_ENV, Path.home() / ".kgrec"))


NEO4J_ENV: tuple[str, ...] = ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD", "NEO4J_DATABASE",
                               GRAPH_ENV)


def open_graph_store(spec: str, *, env: Mapping[str, str] | None = None,
                     batch_size: int | None = None, show_progress: bool = False) -> GraphStore:
    """The store named by ``spec`` (see :func:`open_store`), without a pseudonymizer.

    ``env``: where the Neo4j settings (``NEO4J_ENV``) are read, default ``os.environ``. Why
    apart: a worker of a distributed job opens the store its driver named, with the driver's
    settings, and must neither create nor need a pseudonym key (it is given graph ids).

    Raises:
        ConfigError: an unknown spec, an invalid graph name, or missing Neo4j settings.
    """
    env = os.environ if env is None else env
    if spec == "neo4j" or spec.startswith(("neo4j:", "neo4j/")):
        database, _, graph = spec[len("neo4j"):].lstrip(":").partition("/")
        graph = check_graph_name(graph or env.get(GRAPH_ENV, DEFAULT_GRAPH))
        return Neo4jGraphStore(driver_from_env(env),
                               database=database or env.get("NEO4J_DATABASE", "neo4j"),
                               graph=graph, show_progress=show_progress,
                               **({"batch_size": batch_size} if batch_size else {}))
    return EmbeddedGraphStore(_embedded_dir(spec))


def _embedded_dir(spec: str) -> Path:
    if spec.startswith("embedded:"):
        directory = Path(spec.partition(":")[2])
    elif ":" in spec:
        raise ConfigError(f"unknown store {spec!r}; use embedded:DIR or neo4j")
    else:
        directory = Path(spec)
    if not str(directory):
        raise ConfigError("embedded store needs a folder: embedded:DIR")
    return directory


def open_store(spec: str, *, batch_size: int | None = None, show_progress: bool = False,
               verify_key: bool = True) -> tuple[GraphStore, Pseudonymizer]:
    """The store named by ``spec`` and the pseudonymizer that goes with it.

    ``embedded:DIR`` (or a bare path) opens an :class:`EmbeddedGraphStore`; ``neo4j[:DATABASE]
    [/GRAPH]`` connects with ``NEO4J_URI``/``NEO4J_USER``/``NEO4J_PASSWORD`` to database
    ``DATABASE`` (else ``NEO4J_DATABASE``, default ``neo4j``) and kgrec graph ``GRAPH`` (else
    ``KGREC_NEO4J_GRAPH``, default ``default``). ``verify_key=False`` skips the key check (for
    a caller about to clear the store anyway).

    Raises:
        ConfigError: an unknown spec, an invalid graph name, or missing Neo4j settings.
        KeyMismatchError: the store was built with another pseudonym key.
    """
    store = open_graph_store(spec, batch_size=batch_size, show_progress=show_progress)
    if isinstance(store, Neo4jGraphStore):
        pseudonymizer = Pseudonymizer.from_environment(kgrec_home())
        try:
            if verify_key:
                check_key(store, pseudonymizer)
        except BaseException:
            store.driver.close()
            raise
        return store, pseudonymizer
    pseudonymizer = Pseudonymizer.from_environment(_embedded_dir(spec))
    if verify_key:
        check_key(store, pseudonymizer)
    return store, pseudonymizer
