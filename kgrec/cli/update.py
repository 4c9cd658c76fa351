"""``kgrec update``: fold the day's interactions, users and SKUs into a trained model.

Ingests the files given (as ``kgrec ingest`` does, rejects reported), folds the grown graph in
without retraining (``Recommender.partial_fit``), prints the drift report
(:mod:`kgrec.evaluation.drift`) with its "retrain recommended" verdict, writes it as JSON and
saves the model folder again (its text vectors now include the new SKUs, so the next load
encodes nothing). Retraining stays an explicit ``kgrec train`` (``--init-from`` to warm-start).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kgrec.cli._common import Commands, store_arg


def _update_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", required=True, help="folder written by `kgrec train`")
    store_arg(p)
    p.add_argument("--items", help="new or changed items (.csv/.tsv/.jsonl/.parquet)")
    p.add_argument("--users", help="new or changed users")
    p.add_argument("--interactions", help="new interactions")
    p.add_argument("--rejects", default="kgrec-rejects.csv",
                   help="where rejected rows and their reasons go (default %(default)s)")
    p.add_argument("--report", help="drift report JSON (default MODEL_DIR/drift-<time>.json)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(handler=_update)


def _update(args: argparse.Namespace) -> int:
    from kgrec.evaluation.drift import drift_report
    from kgrec.graph.ingest import ingest
    from kgrec.graph.open import open_store
    from kgrec.graph.readers import read_catalog
    from kgrec.ranking.recommender import Recommender

    store, pseudonymizer = open_store(args.store, show_progress=True)
    rec = Recommender.load(args.model_dir, store, pseudonymizer=pseudonymizer,
                           num_threads=args.threads)
    before_emb, before_graph = rec.emb_, rec.graph_
    if args.items or args.users or args.interactions:
        raw = read_catalog(items=args.items, users=args.users, interactions=args.interactions)
        print(ingest(raw, store, pseudonymizer, rejects_path=args.rejects).summary())
    rec.partial_fit(store)
    report = drift_report(rec, before_emb, before_graph)
    print(report.summary())
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = Path(args.report or Path(args.model_dir) / f"drift-{stamp}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"created_at": stamp, "model_version": rec.model_version_,
                                **report.to_dict()}, indent=2, default=float))
    rec.save(args.model_dir)
    print(f"drift report: {path}; model {rec.model_version_} saved to {args.model_dir}")
    return 0


COMMANDS: Commands = {
    "update": (_update_args, "fold new interactions/users/SKUs into a trained model, no "
                             "retraining, with a drift report"),
}
