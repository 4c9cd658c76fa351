"""Connecting to a Ray cluster, and naming a store so that a Ray worker can open it itself.

Why a spec and not a store: a Neo4j driver (sockets, threads) cannot travel to another process,
and an embedded store's folder must be an absolute path (a Ray worker's working directory is not
the driver's). So the driver hands each task a :class:`StoreSpec` (the ``--store`` string with
the Neo4j settings the driver itself uses) and every worker opens its own connection.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from kgrec.errors import ConfigError

if TYPE_CHECKING:
    from kgrec.graph.store import GraphStore

logger = logging.getLogger(__name__)

INSTALL_HINT = "install the Ray extra: pip install 'kgrec[ray]'"


def require_ray() -> ModuleType:
    """The ``ray`` module.

    Raises:
        ConfigError: Ray is not installed (the message says how to install it).
    """
    try:
        import ray
    except ImportError as e:
        raise ConfigError(f"Ray is not installed ({e}); {INSTALL_HINT}") from e
    return ray


def check_workers(workers: int) -> int:
    """``workers`` when it is at least 1.

    Raises:
        ConfigError: fewer than one worker.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}; "
                          "give --workers N with N >= 1")
    return workers


@contextmanager
def ray_session(address: str | None) -> Iterator[ModuleType]:
    """Ray connected to ``address`` for the block; disconnected after if this call connected.

    ``address``: ``HOST:PORT`` of a running cluster's head (``ray start --head``), ``auto``
    (the cluster this machine belongs to), ``ray://HOST:10001`` (Ray Client), or None: the
    cluster in ``RAY_ADDRESS`` if set, else a local Ray started for this block and stopped
    after it.

    Raises:
        ConfigError: Ray is not installed, or no cluster answers at ``address``.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConfigError(f"cannot connect to a Ray cluster at {address!r}: {e}. Start one "
                          "(`ray start --head`) and give its HOST:PORT, or leave the address "
                          "out to run on a local Ray") from e
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class StoreSpec:
    """A store named so that any process can open it: the ``--store`` string plus settings.

    ``env`` holds the Neo4j settings (:data:`kgrec.graph.open.NEO4J_ENV`) of the driver
    process; it is left out of ``repr`` (it holds the password).
    """

    spec: str
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_environment(cls, spec: str) -> StoreSpec:
        """``spec`` with this process's Neo4j settings; an embedded folder made absolute."""
        from kgrec.graph.open import NEO4J_ENV

        if spec == "neo4j" or spec.startswith(("neo4j:", "neo4j/")):
            return cls(spec, {k: os.environ[k] for k in NEO4J_ENV if k in os.environ})
        folder = spec.partition(":")[2] if spec.startswith("embedded:") else spec
        if ":" in spec and not spec.startswith("embedded:"):
            raise ConfigError(f"unknown store {spec!r}; use embedded:DIR or neo4j")
        return cls(f"embedded:{Path(folder).resolve()}")

    def open(self) -> GraphStore:
        """A new connection to the store (its own driver for Neo4j).

        Raises:
            ConfigError: as :func:`kgrec.graph.open.open_graph_store`.
        """
        from kgrec.graph.open import open_graph_store

        return open_graph_store(self.spec, env=self.env)

    def close(self, store: GraphStore) -> None:
        """Close what :meth:`open` opened (a Neo4j driver; nothing for an embedded store)."""
        driver = getattr(store, "driver", None)
        if driver is not None:
            driver.close()
