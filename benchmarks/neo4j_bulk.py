"""Neo4j first loads of the generated shop: the offline importer vs concurrent batched
transactions vs one batch after another (the pre-bulk path), all into a private server.

Run: .venv/bin/python benchmarks/neo4j_bulk.py [--interactions 1050000 ...] [--workers 2]
     [--skip-online]
Prints rows/s (rows = items + users + interactions, as in benchmarks/ingest.py) and the ratio to
the target (>= 20,000 rows/s for the 1M-interaction shop), and checks each load's counts.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import neo4j
from _common import peak_rss_mb, private_neo4j, timed

from kgrec.graph.ingest import ingest_tables
from kgrec.graph.neo4j_import import ingest_tables_offline
from kgrec.graph.neo4j_store import Neo4jGraphStore
from kgrec.graph.pseudonym import Pseudonymizer
from kgrec.graph.store import graph_stats
from kgrec.graph.synthetic import generate_catalog

KEY = Pseudonymizer(b"benchmark-key-0123456789")
TARGET = 20_000


def load_line(name: str, rows: int, seconds: float) -> str:
    rate = rows / seconds
    return (f"{name}: {rows:,} rows in {seconds:.1f}s = {rate:,.0f} rows/s "
            f"({rate / TARGET:.2f}x the {TARGET:,} target); load {os.getloadavg()[0]:.1f}")


def main() -> None:
    logging.basicConfig(format="  %(message)s")
    logging.getLogger("kgrec.graph.neo4j_import").setLevel(logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interactions", type=int, nargs="+", default=[1_050_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--skip-online", action="store_true")
    parser.add_argument("--sequential", action="store_true",
                        help="also the one-batch-at-a-time MERGE path (workers=1, no CREATE)")
    parser.add_argument("--sequential-first", action="store_true",
                        help="run the sequential path before the concurrent one (a later load "
                             "finds the server's JIT warmer)")
    args = parser.parse_args()
    for n in args.interactions:
        users = max(60_000, round(60_000 * n / 1_050_000))  # 60k x 20k at 1.05M, as
        items = max(20_000, round(20_000 * n / 1_050_000))  # in benchmarks/ingest.py
        tables = generate_catalog(n_users=users, n_items=items, n_interactions=n,
                                  n_new_items=0, n_new_users=0, seed=0).tables
        rows = len(tables.items) + len(tables.users) + len(tables.interactions)
        print(f"generated shop: {len(tables.interactions):,} interactions, {users:,} users, "
              f"{items:,} items -> {rows:,} rows; load {os.getloadavg()[0]:.1f}", flush=True)
        with private_neo4j() as server:
            with timed() as t:
                ingest_tables_offline(tables, server, KEY)  # type: ignore[arg-type]
            print(load_line("  offline importer (stop, import, swap, start, constraints)",
                            rows, t[0]), flush=True)
            driver = neo4j.GraphDatabase.driver(
                server.uri, auth=("neo4j", server.password()),  # type: ignore[attr-defined]
                notifications_min_severity="OFF")
            with driver:
                store = Neo4jGraphStore(driver, batch_size=args.batch_size, workers=args.workers)
                counts = graph_stats(store)["counts"]
                offline_counts = dict(counts)  # type: ignore[call-overload]
                print(f"  counts: {offline_counts}", flush=True)
                modes = [] if args.skip_online else [("online, CREATE, "
                                                      f"{args.workers} concurrent batches",
                                                      store)]
                if args.sequential and not args.skip_online:
                    modes.append(("online, MERGE, one batch at a time (before)",
                                  _sequential(driver, args.batch_size)))
                if args.sequential_first:
                    modes.reverse()
                for name, target in modes:
                    with timed() as t:
                        store.clear()
                    print(f"  cleared in {t[0]:.1f}s", flush=True)
                    with timed() as t:
                        ingest_tables(tables, target, KEY)
                    print(load_line(f"  {name}", rows, t[0]), flush=True)
                    assert graph_stats(target)["counts"] == offline_counts, "not the same graph"
    print(f"peak RSS: {peak_rss_mb():,.0f} MB (this process; the Neo4j JVM is separate)")
    time.sleep(0)


class _Sequential(Neo4jGraphStore):
    """The store as it was before bulk loads: MERGE always, one batch after another."""

    def write_graph(self, frames):  # type: ignore[no-untyped-def, override]
        from kgrec.graph.store import upsert_frames
        return upsert_frames(self, frames)


def _sequential(driver: neo4j.Driver, batch_size: int) -> Neo4jGraphStore:
    return _Sequential(driver, batch_size=batch_size, workers=1)


if __name__ == "__main__":
    main()
