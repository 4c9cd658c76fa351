"""Open a store from a spec string (``embedded:DIR`` or ``neo4j``), as the CLI and notebooks do.

Why: one place decides where the pseudonym key lives for each store kind: beside an embedded
store (``DIR/pseudonym.key``), or in ``$KGREC_HOME`` (default ``~/.kgrec``) for Neo4j, unless
``KGREC_PSEUDONYM_KEY`` is set (recommended when both stores must hold the same users).
"""

from __future__ import annotations

import os
from pathlib import Path

from kgrec.errors import ConfigError
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.neo4j_store import Neo4jGraphStore, driver_from_env
from kgrec.graph.pseudonym import Pseudonymizer
from kgrec.graph.store import GraphStore

HOME_ENV = "KGREC_HOME"


def kgrec_home() -> Path:
    return Path(os.environ.get(HOME_ENV, Path.home() / ".kgrec"))


def open_store(spec: str, *, batch_size: int | None = None,
               show_progress: bool = False) -> tuple[GraphStore, Pseudonymizer]:
    """The store named by ``spec`` and the pseudonymizer that goes with it.

    ``embedded:DIR`` (or a bare path) opens an :class:`EmbeddedGraphStore`; ``neo4j`` connects
    with ``NEO4J_URI``/``NEO4J_USER``/``NEO4J_PASSWORD`` to database ``NEO4J_DATABASE``
    (default ``neo4j``).

    Raises:
        ConfigError: an unknown spec, or missing Neo4j settings.
    """
    if spec == "neo4j" or spec.startswith("neo4j:"):
        database = spec.partition(":")[2] or os.environ.get("NEO4J_DATABASE", "neo4j")
        store = Neo4jGraphStore(driver_from_env(), database=database,
                                show_progress=show_progress,
                                **({"batch_size": batch_size} if batch_size else {}))
        return store, Pseudonymizer.from_environment(kgrec_home())
    if spec.startswith("embedded:"):
        directory = Path(spec.partition(":")[2])
    elif ":" in spec:
        raise ConfigError(f"unknown store {spec!r}; use embedded:DIR or neo4j")
    else:
        directory = Path(spec)
    if not str(directory):
        raise ConfigError("embedded store needs a folder: embedded:DIR")
    return EmbeddedGraphStore(directory), Pseudonymizer.from_environment(directory)
