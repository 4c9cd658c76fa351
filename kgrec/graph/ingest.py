"""Ingest: validated canonical tables -> pseudonymised graph -> a store.

Why: one path for every source (files, adapters, the demo generator), so what reaches Neo4j and
the embedded store is the same graph, and a re-run is idempotent (all writes are upserts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from kgrec.graph.build import build_graph
from kgrec.graph.pseudonym import Pseudonymizer, check_key
from kgrec.graph.readers import RawCatalog
from kgrec.graph.schema import NodeLabel
from kgrec.graph.store import GraphStore, write_graph
from kgrec.graph.tables import CatalogTables
from kgrec.graph.validate import ValidationResult, validate_catalog

logger = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """What an ingest accepted, rejected and wrote."""

    accepted: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    rejects_path: Path | None = None
    seconds: float = 0.0
    dropped_columns: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        acc = ", ".join(f"{k} {v:,}" for k, v in self.accepted.items())
        rej = sum(self.rejected.values())
        line = f"accepted: {acc}; rejected rows: {rej:,}"
        if self.rejects_path is not None and rej:
            line += f" (reasons in {self.rejects_path})"
        line += f"; {self.seconds:.1f}s"
        for col, reason in self.dropped_columns.items():
            line += f"\nprofile column {col!r} not stored: {reason}"
        return line


def pseudonymize_tables(tables: CatalogTables, pseudonymizer: Pseudonymizer) -> CatalogTables:
    """Replace raw user ids in ``users`` and ``interactions`` by keyed pseudonyms."""
    users = tables.users.copy()
    users["user_id"] = pseudonymizer.pseudonymize(users["user_id"])
    inter = tables.interactions.copy()
    inter["user_id"] = pseudonymizer.pseudonymize(inter["user_id"])
    return replace(tables, users=users.astype({"user_id": "string"}),
                   interactions=inter.astype({"user_id": "string"}))


def ingest_tables(tables: CatalogTables, store: GraphStore, pseudonymizer: Pseudonymizer,
                  ) -> IngestReport:
    """Pseudonymise, build the graph and upsert it into ``store`` (idempotent).

    Raises:
        KeyMismatchError: ``store`` was built with another pseudonym key.
    """
    start = time.perf_counter()
    check_key(store, pseudonymizer, record=True)
    frames = build_graph(pseudonymize_tables(tables, pseudonymizer))
    written = write_graph(store, frames)
    report = IngestReport(
        accepted={"items": len(tables.items), "users": len(tables.users),
                  "interactions": len(tables.interactions), "triples": len(tables.triples)},
        written=written, seconds=time.perf_counter() - start)
    logger.info("ingest wrote %s", written)
    return report


def ingest(raw: RawCatalog, store: GraphStore, pseudonymizer: Pseudonymizer, *,
           rejects_path: str | Path | None = None, default_event: str | None = None,
           allow_profile_columns: Iterable[str] = (),
           ) -> IngestReport:
    """Validate ``raw``, store the accepted rows and report the rejected ones.

    Nothing is lost: accepted rows are written (idempotent upserts), rejected rows go to
    ``rejects_path`` (CSV with source, row, field, reason, raw; owner-only, user ids
    pseudonymised) and are counted in the report. Interactions may name items already in the
    store (incremental loads). Profile columns that look like direct identifiers are not
    stored (``report.dropped_columns`` says why) unless named in ``allow_profile_columns``.

    Raises:
        KeyMismatchError: ``store`` was built with another pseudonym key.
    """
    start = time.perf_counter()
    check_key(store, pseudonymizer, record=True)
    known_items = store.nodes(NodeLabel.ITEM)["id"]
    result = validate_catalog(raw, known_item_ids=known_items, default_event=default_event,
                              allow_profile_columns=allow_profile_columns)
    report = ingest_tables(result.tables, store, pseudonymizer)
    return finish_report(report, result, pseudonymizer, rejects_path, start)


def finish_report(report: IngestReport, result: ValidationResult, pseudonymizer: Pseudonymizer,
                  rejects_path: str | Path | None, start: float) -> IngestReport:
    """Fill ``report`` from the validation ``result`` and write its rejects file (every ingest
    path reports rejects the same way)."""
    report.accepted = {name: s.accepted + s.created for name, s in result.summary.items()}
    report.rejected = {name: s.rejected + s.duplicates_superseded
                       for name, s in result.summary.items()}
    if len(result.rejects):
        path = Path(rejects_path) if rejects_path is not None else Path("kgrec-rejects.csv")
        report.rejects_path = result.write_rejects(path, pseudonymizer)
        logger.warning("%d row(s) rejected; reasons in %s", len(result.rejects),
                       report.rejects_path)
    report.dropped_columns = dict(result.dropped_columns)
    report.seconds = time.perf_counter() - start
    return report
