"""Ingest benchmark: Amazon Industrial & Scientific into both stores, >=1M generated
interactions into the embedded store and (first load, offline importer) into a private Neo4j,
and Neo4j's batched UNWIND path vs a per-row MERGE loop.

Run: .venv/bin/python benchmarks/ingest.py [--data DIR] [--interactions 1050000] [--sample 2000]
     [--skip-neo4j] [--skip-bulk]
Prints rows/s, peak RSS, the generated shop's Neo4j first load against its target (>= 20,000
rows/s) and the batched/per-row ratio (reference: >= 50x). benchmarks/neo4j_bulk.py compares the
first-load paths (offline importer, concurrent CREATE, sequential MERGE) at several sizes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import neo4j_driver, peak_rss_mb, private_neo4j, shared_data, timed

from kgrec.graph import cypher
from kgrec.graph.adapters import load_amazon
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.ingest import ingest, ingest_tables
from kgrec.graph.neo4j_import import ingest_tables_offline
from kgrec.graph.neo4j_store import Neo4jGraphStore
from kgrec.graph.pseudonym import Pseudonymizer
from kgrec.graph.schema import NodeLabel, RelType
from kgrec.graph.synthetic import generate_catalog

KEY = Pseudonymizer(b"benchmark-key-0123456789")


def rows_of(report_accepted: dict[str, int]) -> int:
    return sum(report_accepted.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path,
                        default=shared_data() / "amazon-industrial-scientific")
    parser.add_argument("--interactions", type=int, default=1_050_000)
    parser.add_argument("--sample", type=int, default=2_000, help="rows for the per-row loop")
    parser.add_argument("--skip-neo4j", action="store_true")
    parser.add_argument("--skip-bulk", action="store_true",
                        help="skip the generated shop's Neo4j first load (offline importer)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        raw = load_amazon(args.data)
        with timed() as t:
            rep = ingest(raw, EmbeddedGraphStore(Path(tmp) / "amazon"), KEY,
                         rejects_path=Path(tmp) / "rejects.csv")
        n = rows_of(rep.accepted)
        print(f"embedded  amazon: {n:,} rows in {t[0]:.2f}s = {n / t[0]:,.0f} rows/s")

        cat = generate_catalog(n_users=60_000, n_items=20_000, n_interactions=args.interactions,
                               n_new_items=0, n_new_users=0, seed=0)
        tables = cat.tables
        n_big = len(tables.items) + len(tables.users) + len(tables.interactions)
        with timed() as t:
            ingest_tables(tables, EmbeddedGraphStore(Path(tmp) / "big"), KEY)
        print(f"embedded  generated: {len(tables.interactions):,} interactions, {n_big:,} rows "
              f"in {t[0]:.2f}s = {n_big / t[0]:,.0f} rows/s")
        print(f"peak RSS so far: {peak_rss_mb():,.0f} MB")

    if args.skip_neo4j:
        return
    if not args.skip_bulk:  # always a private server: the importer replaces a whole database
        with private_neo4j() as server, timed() as t:
            ingest_tables_offline(tables, server, KEY)  # type: ignore[arg-type]
        print(f"neo4j     generated, first load (offline importer, incl. stop/swap/start): "
              f"{n_big:,} rows in {t[0]:.2f}s = {n_big / t[0]:,.0f} rows/s "
              f"({n_big / t[0] / 20_000:.2f}x the 20,000 rows/s target); "
              f"load {os.getloadavg()[0]:.1f}")
    with neo4j_driver() as (driver, graph):
        store = Neo4jGraphStore(driver, graph=graph)  # type: ignore[arg-type]
        store.clear()  # only this benchmark's graph
        with timed() as t:
            rep = ingest(load_amazon(args.data), store, KEY,
                         rejects_path=Path(tempfile.gettempdir()) / "kgrec-bench-rejects.csv")
        n = rows_of(rep.accepted)
        print(f"neo4j     amazon: {n:,} rows in {t[0]:.2f}s = {n / t[0]:,.0f} rows/s")
        with timed() as t:
            ingest(load_amazon(args.data), store, KEY)
        print(f"neo4j     amazon re-run (idempotent upserts): {t[0]:.2f}s")

        # batched vs per-row on the same sample of INTERACTED edges (fresh edges each time)
        edges = store.edges(RelType.INTERACTED).head(args.sample).copy()
        query = cypher.upsert_edges(RelType.INTERACTED, NodeLabel.USER, NodeLabel.ITEM)
        rows = [{"src": r.src, "dst": r.dst, "event": "view", "ts": int(r.ts) + 10**9 + i,
                 "value": None} for i, r in enumerate(edges.itertuples())]
        with timed() as t_batch, driver.session(database="neo4j") as session:  # type: ignore[attr-defined]
            session.execute_write(lambda tx: tx.run(query, rows=rows, graph=graph).consume())
        per_row = [{**r, "ts": r["ts"] + 10**8} for r in rows]
        with timed() as t_row, driver.session(database="neo4j") as session:  # type: ignore[attr-defined]
            for r in per_row:
                session.execute_write(
                    lambda tx, r=r: tx.run(query, rows=[r], graph=graph).consume())
        ratio = t_row[0] / t_batch[0]
        print(f"neo4j     {len(rows):,} edges: batched {t_batch[0]:.3f}s "
              f"({len(rows) / t_batch[0]:,.0f} rows/s), per-row MERGE loop {t_row[0]:.2f}s "
              f"({len(rows) / t_row[0]:,.0f} rows/s); ratio {ratio:.0f}x (reference >= 50x)")
        store.clear()
    print(f"peak RSS: {peak_rss_mb():,.0f} MB (this process; the Neo4j JVM is separate)")
    time.sleep(0)


if __name__ == "__main__":
    main()
