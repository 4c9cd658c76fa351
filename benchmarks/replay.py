"""Benchmark: keeping a model fresh, replayed in time order (issue "production path").

MovieLens-100K (or any dataset with timestamps): the model is trained on the first
``--train-share`` of the interactions in time; the rest is cut into ``--steps`` windows of equal
size and replayed. Before each window, four ways of keeping up are scored on that window's
positives (Recall@20 over every item of the graph the user has not taken yet, the users with a
positive in the window; a user or item the model cannot see counts as a miss):

* ``frozen``: the first model on the first graph, never touched;
* ``fold-in``: the first model's weights, the graph grown with everything before the window
  (``Recommender.partial_fit``, no training);
* ``warm-start``: fine-tuned from the previous step's model on the grown graph with
  ``ModelConfig.fine_tune``'s recipe (``fit(init_from=...)``; ``--finetune-epochs``,
  ``--finetune-refit-steps`` and ``--finetune-calibration-negatives`` override it);
* ``retrain``: a full fit from scratch on the grown graph (the default ``ModelConfig``).

Prints one row per (step, way) with Recall@20, the wall and CPU seconds of the update and the
model's held-out calibration errors (warm ECE, the largest ECE over the other regimes), and
the totals: warm-start's Recall@20 as a share of retrain's and its compute (the process's CPU
time, so the figure holds on a shared machine) as a share of retrain's (the target: >= 98% of
the quality at <= 25% of the compute).

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/replay.py --data movielens --steps 4
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from kgrec.coldstart import ModelConfig
from kgrec.encoders import make_text_encoder
from kgrec.evaluation.metrics import MetricAccumulator
from kgrec.graph.adapters import load_tables
from kgrec.graph.build import build_graph
from kgrec.graph.export import to_hetero_data
from kgrec.graph.tables import POSITIVE_EVENTS, CatalogTables
from kgrec.ranking.recommender import Recommender

FINETUNE_FLAGS = ("epochs", "refit_steps", "calibration_negatives")  # --finetune-* overrides


def windows(tables: CatalogTables, train_share: float, steps: int) -> list[CatalogTables]:
    """Tables of the graph at the start and after each window (cumulative, time order)."""
    inter = tables.interactions.sort_values("ts", kind="stable").reset_index(drop=True)
    cuts = np.linspace(int(train_share * len(inter)), len(inter), steps + 1).astype(int)
    return [replace(tables, interactions=inter.iloc[:c].reset_index(drop=True)) for c in cuts]


def recall_at_20(rec: Recommender, before: CatalogTables, window: pd.DataFrame,
                 seed: int) -> float:
    """Recall@20 of ``window``'s positives for ``rec`` (misses for users/items it lacks)."""
    pos = window[window["event"].isin(POSITIVE_EVENTS)][["user_id", "item_id"]].astype(str)
    seen = before.interactions[["user_id", "item_id"]].astype(str)
    pos = pos.merge(seen.drop_duplicates(), how="left", indicator=True)
    pos = pos[pos["_merge"] == "left_only"].drop(columns="_merge").drop_duplicates()
    items = np.asarray(rec.emb_.item_ids, dtype=object)
    col = pd.Index(items)
    users = np.sort(pos["user_id"].unique())
    acc = MetricAccumulator(ks=(20,), seed=seed)
    for start in range(0, len(users), 256):
        block = users[start:start + 256]
        rows = rec._user_pos.get_indexer(block)
        scores = np.full((len(block), len(items)), -np.inf)
        known = rows >= 0
        if known.any():
            scores[known] = rec.model_.score_matrix(rec.emb_, rows[known])
        truth = np.zeros(scores.shape, dtype=bool)
        part = pos[pos["user_id"].isin(set(block))]
        r = pd.Index(block).get_indexer(part["user_id"])
        c = col.get_indexer(part["item_id"])
        n_pos = np.bincount(r, minlength=len(block))  # new SKUs count as misses
        truth[r[c >= 0], c[c >= 0]] = True
        valid = np.ones(scores.shape, dtype=bool)
        s = seen[seen["user_id"].isin(set(block))]
        sr, sc = pd.Index(block).get_indexer(s["user_id"]), col.get_indexer(s["item_id"])
        valid[sr[sc >= 0], sc[sc >= 0]] = False
        valid |= truth
        acc.add(scores, truth, valid, n_positives=n_pos)
    return acc.result().get("recall@20", float("nan"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="movielens")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--train-share", type=float, default=0.8)
    for name in FINETUNE_FLAGS:
        ap.add_argument("--finetune-" + name.replace("_", "-"), type=int, default=None,
                        help=f"{name} of a warm start (default: ModelConfig.fine_tune's)")
    ap.add_argument("--encoder", default="bert", choices=["bert", "hashing"])
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    tables = load_tables(args.data)
    states = windows(tables, args.train_share, args.steps)
    encoder = make_text_encoder(args.encoder, cache_dir=args.cache_dir, num_threads=args.threads)
    config = ModelConfig(seed=args.seed)

    def fit(t: CatalogTables, init: Recommender | None = None) -> Recommender:
        given = {k: getattr(args, "finetune_" + k) for k in FINETUNE_FLAGS}
        cfg = config if init is None else config.fine_tune().replace(
            **{k: v for k, v in given.items() if v is not None})
        rec = Recommender(cfg, text_encoder=encoder, num_threads=args.threads)
        return rec.fit(to_hetero_data(build_graph(t)), init_from=init)

    t0, c0 = time.perf_counter(), time.process_time()
    first = fit(states[0])
    first_s, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    models = {"frozen": first, "fold-in": first, "warm-start": first, "retrain": first}
    rows = []
    for step in range(1, args.steps + 1):
        before, after = states[step - 1], states[step]
        window = after.interactions.iloc[len(before.interactions):]
        for way in models:
            t0, c0 = time.perf_counter(), time.process_time()
            if step > 1 and way == "fold-in":  # a copy: the frozen one keeps its graph
                models[way] = copy.copy(models[way]).partial_fit(
                    to_hetero_data(build_graph(before)))
            elif step > 1 and way == "warm-start":
                models[way] = fit(before, init=models[way])
            elif step > 1 and way == "retrain":
                models[way] = fit(before)
            update_s, update_cpu = time.perf_counter() - t0, time.process_time() - c0
            rec = models[way]
            r20 = recall_at_20(rec, before, window, args.seed)
            cal = rec.model_.calibration_
            rows.append({"step": step, "way": way, "recall@20": r20,
                         "update_seconds": update_s, "update_cpu_seconds": update_cpu,
                         "window": len(window), "warm_ece": cal.get("ece"),
                         "max_regime_ece": max((r.get("ece", 0.0) for r in
                                                cal.get("regimes", {}).values()), default=None)})
            print(json.dumps(rows[-1]), flush=True)
    frame = pd.DataFrame(rows)
    summary = frame.groupby("way").agg(recall=("recall@20", "mean"),
                                       seconds=("update_seconds", "sum"),
                                       cpu_seconds=("update_cpu_seconds", "sum"))
    print(summary.to_string())
    ws, rt = summary.loc["warm-start"], summary.loc["retrain"]
    # compute = the process's CPU time (all threads): what a step costs, whatever else runs on
    # the machine; the wall-clock share is printed beside it
    print(json.dumps({"first_fit_seconds": first_s, "first_fit_cpu_seconds": first_cpu,
                      "warm_start_recall_share_of_retrain": ws["recall"] / rt["recall"],
                      "warm_start_compute_share_of_retrain": ws["cpu_seconds"] / rt["cpu_seconds"],
                      "warm_start_wall_share_of_retrain": ws["seconds"] / rt["seconds"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
