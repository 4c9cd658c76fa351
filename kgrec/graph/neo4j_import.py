"""Offline first load: Neo4j's own importer writes a new database for kgrec's private server.

Why: a first load through Bolt is bound by the server running Cypher row by row (6-12k rows/s on
2 cores, ``benchmarks/README.md``); ``neo4j-admin database import full`` writes the store files
directly. Its code ships with the engine's Maven artifacts (``org.neo4j:neo4j-import-tool`` is on
the launcher's classpath), so it runs as ``org.neo4j.cli.AdminTool database import full``.

It can only write a *whole new* database, so :func:`import_offline` refuses unless:

- the server is a :class:`~kgrec.graph.neo4j_server.Neo4jServer` kgrec manages (its own process
  and folder), running, never a server reached by URI;
- that database holds no node at all (no kgrec graph, no foreign data), checked before anything
  is stopped.

The import goes into a staging folder while the server still runs; only a finished import is
swapped in (server stopped, folders renamed, server started), so a failed import leaves the
server as it was. The files are one CSV per label and per (type, source label, target label),
written by pyarrow, which quotes every string: an empty string stays ``""`` and a null is an
unquoted empty field, which the importer does not store (as ``SET n.p = null`` does not).
Every node gets ``kgrec_graph``; constraints and the key fingerprint are written after the start,
so the result is the graph ``kgrec ingest`` writes (``tests/integration/test_neo4j_import.py``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import neo4j
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from kgrec.errors import Neo4jServerError, StoreError
from kgrec.graph.build import build_graph
from kgrec.graph.cypher import GRAPH_PROPERTY
from kgrec.graph.frames import GraphFrames, normalize_edges, normalize_nodes
from kgrec.graph.ingest import IngestReport, finish_report, pseudonymize_tables
from kgrec.graph.neo4j_server import CLASSPATH_FILE, JAR, JVM_FLAGS, PROJECT_DIR, Neo4jServer
from kgrec.graph.neo4j_store import DEFAULT_GRAPH, Neo4jGraphStore, check_graph_name
from kgrec.graph.pseudonym import Pseudonymizer
from kgrec.graph.readers import RawCatalog
from kgrec.graph.schema import NODE_SPECS, REL_SPECS, NodeLabel, RelType
from kgrec.graph.tables import CatalogTables
from kgrec.graph.validate import validate_catalog

logger = logging.getLogger(__name__)

ADMIN_MAIN = "org.neo4j.cli.AdminTool"
_TYPES = {"string": "", "int64": ":long", "float64": ":double"}
COUNT_ALL_NODES = "MATCH (n) RETURN count(n) AS n"


def _write_csv(frame: pd.DataFrame, header: list[str], folder: Path, name: str
               ) -> tuple[str, bool]:
    """``header.csv,data.csv`` for the importer, and whether a string holds a line break."""
    head, data = folder / f"{name}.header.csv", folder / f"{name}.csv"
    head.write_text(",".join(header) + "\n", encoding="utf-8")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pa_csv.write_csv(table, data, pa_csv.WriteOptions(include_header=False,
                                                      quoting_style="needed"))
    strings = [c for c in frame.columns if frame[c].dtype == "string"]
    multiline = any(frame[c].str.contains("[\r\n]", regex=True).any() for c in strings)
    return f"{head},{data}", bool(multiline)


def write_import_files(frames: GraphFrames, graph: str, folder: Path
                       ) -> tuple[list[str], dict[str, int]]:
    """The importer's ``--nodes``/``--relationships``/``--multiline-fields`` arguments for
    ``frames``, written under ``folder``, and the rows per label/type. Duplicates keep the last
    row, as upserts do."""
    args: list[str] = []
    written: dict[str, int] = {}
    multiline = False
    for label in NodeLabel:
        frame = frames.nodes.get(label)
        if frame is None or not len(frame):
            continue
        frame = normalize_nodes(label, frame).drop_duplicates("id", keep="last")
        written[label.value] = len(frame)
        frame.insert(1, GRAPH_PROPERTY, pd.Series(graph, index=frame.index, dtype="string"))
        header = [f"id:ID({label.value})", GRAPH_PROPERTY,
                  *(f"{p}{_TYPES[t]}" for p, t in NODE_SPECS[label].properties)]
        files, multi = _write_csv(frame, header, folder, label.value)
        args.append(f"--nodes={label.value}={files}")
        multiline |= multi
    for rel in RelType:
        frame = frames.edges.get(rel)
        if frame is None or not len(frame):
            continue
        spec = REL_SPECS[rel]
        frame = normalize_edges(rel, frame).drop_duplicates(spec.identity_columns, keep="last")
        written[rel.value] = len(frame)
        props = [*spec.key, *spec.properties]
        for (src, dst), part in frame.groupby(["src_label", "dst_label"], sort=True):
            header = [f":START_ID({src})", f":END_ID({dst})",
                      *(f"{p}{_TYPES[t]}" for p, t in props)]
            files, multi = _write_csv(part.drop(columns=["src_label", "dst_label"]), header,
                                      folder, f"{rel.value}.{src}.{dst}")
            args.append(f"--relationships={rel.value}={files}")
            multiline |= multi
    if multiline:  # slower (single-threaded) parsing, so only when a value needs it
        args.append("--multiline-fields=true")
    return args, written


def _driver(server: Neo4jServer) -> neo4j.Driver:
    return neo4j.GraphDatabase.driver(server.uri, auth=("neo4j", server.password()),
                                      notifications_min_severity="OFF")


def _check_empty(server: Neo4jServer, database: str) -> None:
    with _driver(server) as driver:
        try:
            records, _, _ = driver.execute_query(COUNT_ALL_NODES, database_=database)
        except neo4j.exceptions.Neo4jError as e:
            raise StoreError(f"could not check that database {database!r} is empty: "
                             f"{e.code}: {e.message}") from e
    n = int(records[0]["n"])
    if n:
        raise StoreError(
            f"database {database!r} of the Neo4j server in {server.home} holds {n:,} node(s); "
            f"the offline importer replaces a whole database, so it only loads an empty one. "
            f"Load into it online (`kgrec ingest --store neo4j`), or use a new server home")


def _run_importer(home: Path, database: str, args: list[str], workdir: Path,
                  heap_mb: int) -> None:
    """Run ``neo4j-admin database import full`` into ``home`` (a Neo4j home, no server)."""
    classpath = (PROJECT_DIR / JAR).as_posix() + os.pathsep + \
        (PROJECT_DIR / CLASSPATH_FILE).read_text().strip()
    (home / "conf").mkdir(parents=True, exist_ok=True)
    env = {**{k: os.environ[k] for k in ("PATH", "JAVA_HOME", "LANG", "TMPDIR")
              if k in os.environ},
           "NEO4J_HOME": str(home), "NEO4J_CONF": str(home / "conf")}
    cmd = [shutil.which("java") or "java", f"-Xmx{heap_mb}m", *JVM_FLAGS, "-cp", classpath,
           ADMIN_MAIN, "database", "import", "full", database,  # before the file lists,
           "--bad-tolerance=0", f"--report-file={workdir / 'import.report'}", *args]  # which
    # take any number of values
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StoreError(f"the Neo4j importer failed (exit {proc.returncode}); nothing was "
                         f"changed on the server. Output tail:\n"
                         f"{(proc.stdout + proc.stderr)[-3000:]}")


def _swap(server: Neo4jServer, staged: Path, database: str, aside: Path) -> None:
    """Move the server's ``database`` folders aside and the staged ones in (renames only)."""
    for kind in ("databases", "transactions"):
        live = server.home / "data" / "data" / kind / database
        if live.exists():
            (aside / kind).mkdir(parents=True, exist_ok=True)
            live.rename(aside / kind / database)
        (staged / "data" / kind / database).rename(live)


def import_offline(server: Neo4jServer, frames: GraphFrames, *, graph: str = DEFAULT_GRAPH,
                   database: str = "neo4j", key_fingerprint: str | None = None
                   ) -> dict[str, int]:
    """Load ``frames`` into the empty ``database`` of kgrec's own running ``server`` with Neo4j's
    offline importer; the server is stopped for the swap and runs again on return.

    Returns the rows written per label and relationship type (as ``write_graph`` does).

    Raises:
        StoreError: the database is not empty, or the importer refused the files (nothing was
            changed then).
        Neo4jServerError: ``server`` is not running, or did not start again.
    """
    check_graph_name(graph)
    if server.pid() is None:
        raise Neo4jServerError(f"the Neo4j server in {server.home} is not running; start it "
                               f"(`kgrec neo4j start`) so the import can check it is empty")
    _check_empty(server, database)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="import-", dir=server.home) as tmp:
        work = Path(tmp)
        (work / "csv").mkdir()
        args, written = write_import_files(frames, graph, work / "csv")
        phases = {"csv": time.perf_counter() - start}
        _run_importer(work / "stage", database, args, work, server.heap_mb)
        phases["import"] = time.perf_counter() - start - sum(phases.values())
        server.stop()
        try:
            _swap(server, work / "stage", database, work / "aside")
        finally:
            server.start()
        phases["restart"] = time.perf_counter() - start - sum(phases.values())
    store = Neo4jGraphStore(_driver(server), database=database, graph=graph)
    try:
        store.ensure_constraints()
        if key_fingerprint is not None:
            store.claim_key_fingerprint(key_fingerprint)
    finally:
        store.driver.close()
    phases["constraints"] = time.perf_counter() - start - sum(phases.values())
    logger.info("offline import into %s: %s", database,
                ", ".join(f"{k} {v:.1f}s" for k, v in phases.items()))
    return written


def ingest_offline(raw: RawCatalog, server: Neo4jServer, pseudonymizer: Pseudonymizer, *,
                   graph: str = DEFAULT_GRAPH, database: str = "neo4j",
                   rejects_path: str | Path | None = None, default_event: str | None = None,
                   allow_profile_columns: Iterable[str] = ()) -> IngestReport:
    """:func:`kgrec.graph.ingest.ingest` for a first load through :func:`import_offline`: the
    same validation, rejects file, pseudonyms and graph; the key fingerprint is recorded.

    Raises:
        StoreError: the database is not empty, or the importer refused the files.
        Neo4jServerError: ``server`` is not running, or did not start again.
    """
    start = time.perf_counter()
    result = validate_catalog(raw, known_item_ids=pd.Series([], dtype="string"),
                              default_event=default_event,
                              allow_profile_columns=allow_profile_columns)
    report = ingest_tables_offline(result.tables, server, pseudonymizer, graph=graph,
                                   database=database)
    return finish_report(report, result, pseudonymizer, rejects_path, start)


def ingest_tables_offline(tables: CatalogTables, server: Neo4jServer,
                          pseudonymizer: Pseudonymizer, *, graph: str = DEFAULT_GRAPH,
                          database: str = "neo4j") -> IngestReport:
    """:func:`kgrec.graph.ingest.ingest_tables` through :func:`import_offline` (validated
    tables: pseudonymise, build the graph, import it, record the key fingerprint).

    Raises:
        StoreError: the database is not empty, or the importer refused the files.
        Neo4jServerError: ``server`` is not running, or did not start again.
    """
    start = time.perf_counter()
    frames = build_graph(pseudonymize_tables(tables, pseudonymizer))
    written = import_offline(server, frames, graph=graph, database=database,
                             key_fingerprint=pseudonymizer.fingerprint())
    return IngestReport(
        accepted={"items": len(tables.items), "users": len(tables.users),
                  "interactions": len(tables.interactions), "triples": len(tables.triples)},
        written=written, seconds=time.perf_counter() - start)
