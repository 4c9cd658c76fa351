"""``Neo4jGraphStore``: the graph in a Neo4j database through the official driver.

Why: Neo4j is the production system of record. The caller owns the ``neo4j.Driver`` and passes
it in (no network I/O in the constructor; :meth:`verify` checks the connection). Writes are
``UNWIND $rows`` batches in managed write transactions, which the driver retries on transient
errors (deadlocks included); ``workers`` batches run at once, each in its own session, and edge
batches are cut between source nodes so two concurrent transactions never write edges of the same
source. A first load into an empty graph (:meth:`Neo4jGraphStore.write_graph`) ``CREATE``s rows
known to be new instead of ``MERGE``-ing them; every other write merges, so re-runs stay
idempotent. Every call names its database. Constraints are created ``IF NOT EXISTS``. Driver errors
are re-raised as :class:`~kgrec.errors.StoreError` / :class:`~kgrec.errors.StoreUnavailableError`.

A store is one *graph* (``graph``, default ``"default"``) inside a database: every node kgrec
writes carries ``kgrec_graph = graph`` and every read, replace and :meth:`clear` matches on it, so
a shared database's other data (and other kgrec graphs) is never read or deleted.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

import neo4j
import neo4j.exceptions as nex
import numpy as np
import pandas as pd

from kgrec.errors import ConfigError, StoreError, StoreUnavailableError
from kgrec.graph import cypher
from kgrec.graph.frames import GraphFrames, normalize_edges, normalize_nodes
from kgrec.graph.schema import REL_SPECS, NodeLabel, RelType

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5_000
DEFAULT_WORKERS = 2
DEFAULT_GRAPH = "default"
GRAPH_ENV = "KGREC_NEO4J_GRAPH"
_GRAPH_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def check_graph_name(graph: str) -> str:
    """``graph`` when it is a valid graph name (letters, digits, ``_.-``; 1-64 characters).

    Raises:
        ConfigError: any other name.
    """
    if not isinstance(graph, str) or not _GRAPH_NAME.fullmatch(graph):
        raise ConfigError(f"invalid kgrec graph name {graph!r}: use 1-64 letters, digits, '_', "
                          f"'.' or '-' (e.g. {GRAPH_ENV}=shop_eu)")
    return graph


def driver_from_env(env: Mapping[str, str] | None = None) -> neo4j.Driver:
    """A driver from ``NEO4J_URI``, ``NEO4J_USER`` (default ``neo4j``) and ``NEO4J_PASSWORD``.

    ``env``: where to read them (default ``os.environ``; a Ray worker gets the driver's).

    Raises:
        ConfigError: ``NEO4J_URI`` or ``NEO4J_PASSWORD`` is not set.
    """
    env = os.environ if env is None else env
    uri = env.get("NEO4J_URI")
    password = env.get("NEO4J_PASSWORD")
    if not uri or not password:
        raise ConfigError(
            "set NEO4J_URI (e.g. bolt://127.0.0.1:7687) and NEO4J_PASSWORD (and NEO4J_USER if "
            "not 'neo4j'); `kgrec neo4j start` runs a local server")
    return neo4j.GraphDatabase.driver(uri, auth=(env.get("NEO4J_USER", "neo4j"), password),
                                      notifications_min_severity="OFF")


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except (nex.ServiceUnavailable, nex.SessionExpired, OSError) as e:
        raise StoreUnavailableError(
            f"Neo4j is not reachable while {action}: {e}. Start it (`kgrec neo4j start`) or "
            f"check NEO4J_URI; writes are idempotent, so re-run the same command") from e
    except nex.AuthError as e:
        raise StoreUnavailableError(
            f"Neo4j refused the credentials while {action}; check NEO4J_USER/NEO4J_PASSWORD"
        ) from e
    except nex.Neo4jError as e:
        raise StoreError(f"Neo4j failed while {action}: {e.code}: {e.message}") from e
    except nex.DriverError as e:
        raise StoreError(f"the Neo4j driver failed while {action}: {e}") from e


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain Python values for the driver; NaN/NA become None (Neo4j stores no null
    properties). Columns are converted whole (``tolist`` yields Python scalars)."""
    columns = {}
    for name in frame.columns:
        col = frame[name]
        columns[name] = col.astype(object).where(col.notna(), None).tolist()
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(),
                                                                    strict=True)]


def batch_bounds(n: int, size: int, keys: np.ndarray | None = None) -> list[tuple[int, int]]:
    """``[start, stop)`` slices of about ``size`` rows. With sorted ``keys`` a cut is moved to
    the next change of key, so no key (an edge's source node) is split across two batches that
    may run at once and contend for its lock."""
    if n == 0:
        return []
    cuts = np.arange(size, n, size)
    if keys is not None and len(cuts):
        change = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        at = np.searchsorted(change, cuts)
        cuts = np.where(at < len(change), change[np.minimum(at, len(change) - 1)], n)
        cuts = np.unique(cuts[cuts < n])
    ends = [0, *cuts.tolist(), n]
    return list(zip(ends[:-1], ends[1:], strict=True))


def _run_checked(tx: neo4j.ManagedTransaction, query: str, batch: list[dict[str, Any]],
                 graph: str) -> None:
    """Run an edge upsert; raising inside the transaction rolls the whole batch back when an
    endpoint is missing (MATCH would otherwise drop those rows silently)."""
    record = tx.run(query, rows=batch, graph=graph).single()
    written = record["written"] if record is not None else 0
    if written != len(batch):
        missing = [(r["src"], r["dst"]) for r in batch][:5]
        raise StoreError(f"{len(batch) - written} edge endpoint(s) in this batch are not nodes "
                         f"of graph {graph!r} (batch starts {missing}); write the nodes first")


class Neo4jGraphStore:
    """The graph in Neo4j.

    Args:
        driver: an open ``neo4j.Driver`` owned by the caller.
        database: the database every call runs against (default ``neo4j``).
        graph: kgrec's namespace in that database (default ``"default"``); only nodes with
            ``kgrec_graph = graph`` are read, written or cleared.
        batch_size: rows per ``UNWIND`` transaction.
        show_progress: tqdm bar over batches.
        workers: write transactions run at once (sessions on the caller's driver); 1 writes
            one batch after another.

    Raises:
        ConfigError: an invalid graph name.
    """

    def __init__(self, driver: neo4j.Driver, database: str = "neo4j", graph: str = DEFAULT_GRAPH,
                 batch_size: int = DEFAULT_BATCH_SIZE, show_progress: bool = False,
                 workers: int = DEFAULT_WORKERS) -> None:
        self.driver = driver
        self.database = database
        self.graph = check_graph_name(graph)
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.workers = workers
        self._constraints_done = False

    def __repr__(self) -> str:
        return f"Neo4jGraphStore(database={self.database!r}, graph={self.graph!r})"

    def verify(self) -> str:
        """Check connectivity and return the server version and edition."""
        with _translated("connecting"):
            self.driver.verify_connectivity()
            records, _, _ = self.driver.execute_query(cypher.SERVER_VERSION,
                                                      database_=self.database)
        return f"{records[0]['v']} {records[0]['edition']}"

    def ensure_constraints(self) -> None:
        """Unique ``(kgrec_graph, id)`` per label (``IF NOT EXISTS``, so safe to repeat)."""
        if self._constraints_done:
            return
        with _translated("creating constraints"):
            for label in NodeLabel:
                self.driver.execute_query(cypher.drop_legacy_constraint(label),
                                          database_=self.database)
                self.driver.execute_query(cypher.create_constraint(label), database_=self.database)
            self.driver.execute_query(cypher.CREATE_META_CONSTRAINT, database_=self.database)
        self._constraints_done = True

    # -- metadata -----------------------------------------------------------------------------
    def key_fingerprint(self) -> str | None:
        """The pseudonym-key fingerprint recorded for this graph, or None."""
        with _translated("reading the graph's metadata"):
            records, _, _ = self.driver.execute_query(
                cypher.READ_KEY_FINGERPRINT, graph=self.graph, database_=self.database)
        return records[0]["fingerprint"] if records else None

    def claim_key_fingerprint(self, fingerprint: str) -> str:
        """Record ``fingerprint`` unless one is recorded already; return the recorded one."""
        from datetime import UTC, datetime

        self.ensure_constraints()
        with _translated("writing the graph's metadata"):
            records, _, _ = self.driver.execute_query(
                cypher.CLAIM_KEY_FINGERPRINT, graph=self.graph, fingerprint=fingerprint,
                now=datetime.now(UTC).isoformat(timespec="seconds"), database_=self.database)
        return str(records[0]["fingerprint"])

    def node_count(self) -> int:
        """Nodes of this graph (any kgrec label)."""
        with _translated("counting nodes"):
            records, _, _ = self.driver.execute_query(
                cypher.COUNT_GRAPH_NODES, graph=self.graph, database_=self.database)
        return int(records[0]["n"])

    # -- writes -------------------------------------------------------------------------------
    def upsert_nodes(self, label: NodeLabel, frame: pd.DataFrame) -> int:
        self.ensure_constraints()
        return self._write_nodes(label, frame, create=False)

    def upsert_edges(self, rel_type: RelType, frame: pd.DataFrame) -> int:
        self.ensure_constraints()
        return self._write_edges(rel_type, frame, create=False)

    def write_graph(self, frames: GraphFrames) -> dict[str, int]:
        """All nodes, then all edges (what :func:`kgrec.graph.store.write_graph` does), with
        ``CREATE`` when this graph holds no node yet (a first load: every row is new, so the
        per-row ``MERGE`` lookup is wasted work). A first load cut short leaves a non-empty graph,
        so its re-run merges and completes it idempotently."""
        self.ensure_constraints()
        create = self.node_count() == 0
        written: dict[str, int] = {}
        for label in NodeLabel:
            if label in frames.nodes and len(frames.nodes[label]):
                written[label.value] = self._write_nodes(label, frames.nodes[label], create)
        for rel in RelType:
            if rel in frames.edges and len(frames.edges[rel]):
                written[rel.value] = self._write_edges(rel, frames.edges[rel], create)
        return written

    def _write_nodes(self, label: NodeLabel, frame: pd.DataFrame, create: bool) -> int:
        frame = normalize_nodes(label, frame)
        if create:  # CREATE twice would be two nodes (refused); the last row wins, as upserts do
            frame = frame.drop_duplicates("id", keep="last").reset_index(drop=True)
        query = cypher.create_nodes(label) if create else cypher.upsert_nodes(label)
        self._write_batches(query, frame, f"writing {label.value} nodes")
        return len(frame)

    def _write_edges(self, rel_type: RelType, frame: pd.DataFrame, create: bool) -> int:
        frame = normalize_edges(rel_type, frame)
        if create:
            frame = frame.drop_duplicates(REL_SPECS[rel_type].identity_columns, keep="last")
        total = 0
        for (src, dst), part in frame.groupby(["src_label", "dst_label"], sort=True):
            query = (cypher.create_edges if create else cypher.upsert_edges)(
                rel_type, NodeLabel(src), NodeLabel(dst))
            self._write_batches(query, part.drop(columns=["src_label", "dst_label"]),
                                f"writing {rel_type.value} edges", check_written=True,
                                keys=part["src"].to_numpy())
            total += len(part)
        return total

    def replace_edges_from(self, rel_type: RelType, src_label: NodeLabel, src_ids: list[str],
                           frame: pd.DataFrame) -> int:
        """Delete and rewrite in ONE transaction, so no reader sees a half-written state."""
        self.ensure_constraints()
        frame = normalize_edges(rel_type, frame)
        parts = [(cypher.upsert_edges(rel_type, NodeLabel(s), NodeLabel(d)),
                  _records(p.drop(columns=["src_label", "dst_label"])))
                 for (s, d), p in frame.groupby(["src_label", "dst_label"], sort=True)]

        def work(tx: neo4j.ManagedTransaction) -> None:
            tx.run(cypher.delete_edges_from(rel_type, src_label), ids=list(src_ids),
                   graph=self.graph).consume()
            for query, rows in parts:
                for start in range(0, len(rows), self.batch_size):
                    _run_checked(tx, query, rows[start:start + self.batch_size], self.graph)

        with _translated(f"replacing {rel_type.value} edges"), \
                self.driver.session(database=self.database) as session:
            session.execute_write(work)
        return len(frame)

    def clear(self) -> None:
        """Delete this graph's nodes (with their relationships) and metadata; nothing else."""
        with _translated("clearing the graph"), \
                self.driver.session(database=self.database) as session:
            session.run(cypher.DELETE_GRAPH_BATCHED, graph=self.graph).consume()
            session.run(cypher.DELETE_META, graph=self.graph).consume()

    def _write_batches(self, query: str, frame: pd.DataFrame, action: str, *,
                       check_written: bool = False, keys: np.ndarray | None = None) -> None:
        """Write ``frame`` in batches, ``workers`` at a time. Rows become driver values per batch,
        inside the worker, so that Python work overlaps the server's."""
        bounds = batch_bounds(len(frame), self.batch_size, keys)

        def work(tx: neo4j.ManagedTransaction, batch: list[dict[str, Any]]) -> None:
            if check_written:
                _run_checked(tx, query, batch, self.graph)
            else:
                tx.run(query, rows=batch, graph=self.graph).consume()

        def write(bound: tuple[int, int]) -> None:
            batch = _records(frame.iloc[bound[0]:bound[1]])
            with self.driver.session(database=self.database) as session:
                session.execute_write(work, batch)

        progress = None
        if self.show_progress and len(bounds) > 1:
            from tqdm.auto import tqdm
            progress = tqdm(total=len(bounds), desc=action, unit="batch")
        with _translated(action):
            try:
                if self.workers <= 1 or len(bounds) <= 1:
                    for bound in bounds:
                        write(bound)
                        if progress is not None:
                            progress.update()
                    return
                with ThreadPoolExecutor(max_workers=self.workers) as pool:
                    futures = [pool.submit(write, bound) for bound in bounds]
                    try:
                        for future in as_completed(futures):
                            future.result()
                            if progress is not None:
                                progress.update()
                    finally:  # the first failure stops batches not yet started
                        for future in futures:
                            future.cancel()
            finally:
                if progress is not None:
                    progress.close()

    # -- reads --------------------------------------------------------------------------------
    def nodes(self, label: NodeLabel) -> pd.DataFrame:
        with _translated(f"reading {label.value} nodes"):
            frame = self.driver.execute_query(
                cypher.read_nodes(label), graph=self.graph, database_=self.database,
                result_transformer_=neo4j.Result.to_df)
        return normalize_nodes(label, frame)

    def edges(self, rel_type: RelType) -> pd.DataFrame:
        parts = []
        for src, dst in REL_SPECS[rel_type].endpoints:
            with _translated(f"reading {rel_type.value} edges"):
                part = self.driver.execute_query(
                    cypher.read_edges(rel_type, src, dst), graph=self.graph,
                    database_=self.database,
                    result_transformer_=neo4j.Result.to_df)
            part.insert(0, "src_label", src.value)
            part.insert(2, "dst_label", dst.value)
            parts.append(part)
        return normalize_edges(rel_type, pd.concat(parts, ignore_index=True))
