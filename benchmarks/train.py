"""Benchmark: cold-start model training speed, memory and cold-item quality.

Parts (run each in its own process, so peak RSS belongs to that part only):

* ``amazon``  -- Amazon Industrial & Scientific, item-cold split (20% of items, seed) plus a
  warm hold-out (last 20% of each remaining user's interactions). Trains kgrec with the real
  ``BertTextEncoder`` for each ``--item-dropout`` value and reports cold-item Recall@20 (all cold
  items ranked for every user with a cold interaction) for kgrec, content kNN on the same text
  vectors and brand/category popularity; warm Recall@20 (all items not seen in training) for
  kgrec and content kNN; held-out ECE / log-loss; seconds per epoch; peak RSS.
* ``validation`` -- the same item-cold protocol on a split carved from the *training* part
  only (``--val-seed``), for choosing settings without touching the test split.
* ``synthetic`` -- a generated graph with ``--interactions`` (default 1,000,000) interactions,
  hashed-text item features (``HashingEncoder``), brands, categories and user profiles; reports
  seconds per epoch and peak RSS against the targets (15 s/epoch, 3 GB).

Usage::

    .venv/bin/python benchmarks/train.py amazon [--seed 0] [--item-dropout 0.3 0.0]
    .venv/bin/python benchmarks/train.py validation [--val-seed 1] [--attr-buckets 4096]
    .venv/bin/python benchmarks/train.py synthetic [--interactions 1000000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.coldstart import ColdStartModel
from kgrec.coldstart.evaluation import (
    attribute_popularity_scores,
    content_knn_scores,
    item_cold_split,
    recall_at_k,
)
from kgrec.encoders import BertTextEncoder, HashingEncoder
from kgrec.graph.adapters import load_dataset
from kgrec.graph.build import build_graph
from kgrec.graph.export import ExportedGraph, to_hetero_data
from kgrec.graph.tables import CatalogTables
from kgrec.graph.validate import validate_catalog

TARGET_S_PER_EPOCH, TARGET_RSS_GB = 15.0, 3.0
DATA_ROOT = os.environ.get("KGREC_SHARED_DATA",
                           str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def model_params(args: argparse.Namespace) -> dict[str, object]:
    return dict(hidden_dim=args.hidden, num_layers=2, conv=args.conv, epochs=args.epochs,
                steps_per_epoch=args.steps, lr=args.lr, neg_ratio=4, pop_neg_share=0.5,
                patience=args.patience, seed=args.seed, num_threads=args.threads,
                text_match=not args.no_text_match, attr_match_buckets=args.attr_buckets,
                softmax_weight=args.softmax_weight,
                cold_softmax_weight=args.cold_softmax_weight,
                center_embeddings=args.center, pair_features=not args.no_pair_features)


def _index(graph: ExportedGraph, label: str, ids: pd.Series) -> np.ndarray:
    return graph.index_of(label, ids.astype(str).to_numpy())


def evaluate(model: ColdStartModel, graph: ExportedGraph, split, vectors: np.ndarray,
             train_pos: np.ndarray, max_warm_users: int, seed: int) -> dict[str, float]:
    """Cold and warm Recall@20 for kgrec and the baselines (see the module docstring)."""
    emb = model.transform(graph)
    n_items = len(graph.node_ids["Item"])
    cold = _index(graph, "Item", pd.Series(split.cold_items))
    col_of = np.full(n_items, -1)
    col_of[cold] = np.arange(len(cold))
    ct = split.cold_test.assign(u=_index(graph, "User", split.cold_test["user_id"]),
                                i=_index(graph, "Item", split.cold_test["item_id"]))
    users = np.unique(ct["u"].to_numpy())
    truth = [col_of[g["i"].to_numpy()] for _, g in ct.groupby("u", sort=True)]
    history = pd.Series(train_pos[1]).groupby(train_pos[0]).apply(np.asarray)
    hist = [history.get(u, np.zeros(0, dtype=np.int64)) for u in users]
    counts = np.bincount(train_pos[1], minlength=n_items)
    out: dict[str, float] = {"cold_users": float(len(users)), "cold_items": float(len(cold))}
    t = time.perf_counter()
    out["cold_recall20_kgrec"] = recall_at_k(model.score_matrix(emb, users, cold), truth)
    out["cold_score_seconds"] = time.perf_counter() - t
    out["cold_recall20_retrieval_tower"] = recall_at_k(model.retrieval_scores(emb, users, cold),
                                                       truth)
    out["cold_recall20_knn"] = recall_at_k(content_knn_scores(vectors, hist, cold), truth)
    pop = attribute_popularity_scores(graph.items, counts, cold)
    out["cold_recall20_popularity"] = recall_at_k(np.tile(pop, (len(users), 1)), truth)
    # warm: users' held-out tails among all items they did not interact with in training
    wt = split.warm_test.assign(u=_index(graph, "User", split.warm_test["user_id"]),
                                i=_index(graph, "Item", split.warm_test["item_id"]))
    w_users = np.unique(wt["u"].to_numpy())
    rng = np.random.default_rng(seed)
    if len(w_users) > max_warm_users:
        w_users = np.sort(rng.choice(w_users, max_warm_users, replace=False))
    wt = wt[wt["u"].isin(set(w_users))]
    w_truth = [g["i"].to_numpy() for _, g in wt.groupby("u", sort=True)]
    seen_mask = np.zeros((len(w_users), n_items), dtype=bool)
    row_of = {u: r for r, u in enumerate(w_users)}
    sel = np.isin(train_pos[0], w_users)
    seen_mask[[row_of[u] for u in train_pos[0][sel]], train_pos[1][sel]] = True
    all_items = np.arange(n_items)
    s = model.score_matrix(emb, w_users, all_items).astype(np.float64)
    s[seen_mask] = -np.inf
    out["warm_users"] = float(len(w_users))
    out["warm_recall20_kgrec"] = recall_at_k(s, w_truth)
    w_hist = [history.get(u, np.zeros(0, dtype=np.int64)) for u in w_users]
    k = content_knn_scores(vectors, w_hist, all_items)
    k[seen_mask] = -np.inf
    out["warm_recall20_knn"] = recall_at_k(k, w_truth)
    p = np.tile(counts.astype(np.float64), (len(w_users), 1))
    p[seen_mask] = -np.inf
    out["warm_recall20_popularity"] = recall_at_k(p, w_truth)
    return out


def run_amazon(args: argparse.Namespace) -> dict[str, object]:
    tables = validate_catalog(load_dataset("amazon", data_root=DATA_ROOT)).tables
    split = item_cold_split(tables, cold_share=0.2, warm_holdout=0.2, seed=args.seed)
    graph = to_hetero_data(build_graph(split.train))
    encoder = BertTextEncoder(num_threads=args.threads)
    results: dict[str, object] = {"seed": args.seed, "params": model_params(args), "runs": []}
    vectors = None
    for dropout in args.item_dropout:
        t0 = time.perf_counter()
        model = ColdStartModel(text_encoder=encoder, item_edge_dropout=dropout,
                               user_edge_dropout=args.user_dropout, cache_dir=args.cache_dir,
                               show_progress=args.progress, **model_params(args))  # type: ignore[arg-type]
        model.fit(graph)
        fit_s = time.perf_counter() - t0
        if vectors is None:
            vectors = model.text_.item_vectors(graph.items)
        pos = model_pairs(graph)
        metrics = evaluate(model, graph, split, vectors, pos, args.max_warm_users, args.seed)
        secs = [h["seconds"] for h in model.history_]
        run = {"item_edge_dropout": dropout, "fit_seconds": fit_s, "epochs_run": len(secs),
               "s_per_epoch": float(np.median(secs)),
               "best_val_auc": max(h["val_auc"] for h in model.history_),
               "calibration": model.calibration_, **metrics}
        print(json.dumps(run, indent=1, default=float), flush=True)
        results["runs"].append(run)  # type: ignore[union-attr]
    results["peak_rss_gb"] = peak_rss_gb()
    return results


def run_validation(args: argparse.Namespace) -> dict[str, object]:
    """Model selection without the test split: item-cold split *inside* the training part.

    20% of the items that still have training interactions after the seed-``--seed`` test split
    (drawn with seed ``1000 + --val-seed``) lose all their interactions; every user with an
    interaction on them ranks all of them. Reports Recall@20 of kgrec (full head and tower)
    and of content kNN on the same reduced training data.
    """
    tables = validate_catalog(load_dataset("amazon", data_root=DATA_ROOT)).tables
    train = item_cold_split(tables, cold_share=0.2, warm_holdout=0.2, seed=args.seed).train
    inter = train.interactions.copy()
    inter["user_id"] = inter["user_id"].astype(str)
    inter["item_id"] = inter["item_id"].astype(str)
    warm = np.sort(inter["item_id"].unique())
    rng = np.random.default_rng(1000 + args.val_seed)
    vcold = np.sort(rng.choice(warm, size=int(0.2 * len(warm)), replace=False))
    held = inter["item_id"].isin(set(vcold)).to_numpy()
    truth_pairs = inter.loc[held, ["user_id", "item_id"]].drop_duplicates()
    graph = to_hetero_data(build_graph(CatalogTables(
        items=train.items, users=train.users,
        interactions=inter.loc[~held].reset_index(drop=True), triples=train.triples,
        item_entities=train.item_entities)))
    model = ColdStartModel(text_encoder=BertTextEncoder(num_threads=args.threads),
                           item_edge_dropout=args.item_dropout[0],
                           user_edge_dropout=args.user_dropout, cache_dir=args.cache_dir,
                           show_progress=args.progress, **model_params(args))  # type: ignore[arg-type]
    t0 = time.perf_counter()
    model.fit(graph)
    fit_s = time.perf_counter() - t0
    emb = model.transform(graph)
    cold = graph.index_of("Item", vcold)
    col = np.full(len(graph.node_ids["Item"]), -1)
    col[cold] = np.arange(len(cold))
    vt = truth_pairs.assign(u=_index(graph, "User", truth_pairs["user_id"]),
                            i=_index(graph, "Item", truth_pairs["item_id"]))
    users = np.unique(vt["u"].to_numpy())
    truth = [col[g["i"].to_numpy()] for _, g in vt.groupby("u", sort=True)]
    pos = model_pairs(graph)
    history = pd.Series(pos[1]).groupby(pos[0]).apply(np.asarray)
    hist = [history.get(u, np.zeros(0, dtype=np.int64)) for u in users]
    vectors = model.text_.item_vectors(graph.items)
    secs = [h["seconds"] for h in model.history_]
    return {"seed": args.seed, "val_seed": args.val_seed, "params": model_params(args),
            "val_users": len(users), "val_cold_items": len(cold),
            "val_cold_recall20_kgrec": recall_at_k(model.score_matrix(emb, users, cold), truth),
            "val_cold_recall20_tower": recall_at_k(model.retrieval_scores(emb, users, cold),
                                                   truth),
            "val_cold_recall20_knn": recall_at_k(content_knn_scores(vectors, hist, cold), truth),
            "epochs_run": len(secs), "s_per_epoch": float(np.median(secs)), "fit_seconds": fit_s,
            "peak_rss_gb": peak_rss_gb()}


def model_pairs(graph: ExportedGraph) -> np.ndarray:
    from kgrec.coldstart.features import interaction_pairs
    return interaction_pairs(graph)[0]


def synthetic_tables(n_inter: int, seed: int) -> CatalogTables:
    """A shop with ``n_inter`` purchases, vectorised: users prefer 3 of 40 segments' brands."""
    rng = np.random.default_rng(seed)
    n_users, n_items = max(n_inter // 10, 10), max(n_inter // 20, 10)
    n_brands, n_cats, n_seg = max(n_items // 25, 2), max(n_items // 100, 2), 40
    words = np.array([f"w{k}" for k in range(2000)])
    item_brand = rng.integers(n_brands, size=n_items)
    item_cat = rng.integers(n_cats, size=n_items)
    title = pd.Series(words[rng.integers(2000, size=n_items)]) + " " + \
        pd.Series(words[item_brand % 2000]) + " " + pd.Series(words[(item_cat * 7) % 2000])
    items = pd.DataFrame({
        "item_id": pd.Series(np.arange(n_items).astype(str)).radd("i"),
        "title": title, "description": "",
        "brand": pd.Series(item_brand.astype(str)).radd("b"),
        "category": pd.Series((item_cat // 10).astype(str)).radd("c") + " > " +
        pd.Series(item_cat.astype(str)).radd("c"),
        "price": rng.lognormal(3, 1, n_items),
    }).astype({c: "string" for c in ("item_id", "title", "description", "brand", "category")})
    seg = rng.integers(n_seg, size=n_users)
    users = pd.DataFrame({"user_id": pd.Series(np.arange(n_users).astype(str)).radd("u"),
                          "segment": pd.Series(seg.astype(str)).radd("s")}).astype("string")
    u = rng.integers(n_users, size=n_inter)
    # items of a segment: those whose brand % n_seg == segment (70%), else random
    pick = rng.integers(n_items, size=n_inter)
    by_seg = np.argsort(item_brand % n_seg, kind="stable")
    starts = np.searchsorted((item_brand % n_seg)[by_seg], np.arange(n_seg + 1))
    s = seg[u]
    width = np.maximum(starts[s + 1] - starts[s], 1)
    in_seg = by_seg[np.minimum(starts[s] + rng.integers(1 << 30, size=n_inter) % width,
                               n_items - 1)]
    item = np.where(rng.random(n_inter) < 0.7, in_seg, pick)
    inter = pd.DataFrame({"user_id": users["user_id"].to_numpy()[u],
                          "item_id": items["item_id"].to_numpy()[item],
                          "event": "purchase", "ts": rng.integers(1 << 30, size=n_inter),
                          "value": np.nan}).astype({"user_id": "string", "item_id": "string",
                                                    "event": "string"})
    return CatalogTables(items=items, users=users, interactions=inter)


def run_synthetic(args: argparse.Namespace) -> dict[str, object]:
    t0 = time.perf_counter()
    graph = to_hetero_data(build_graph(synthetic_tables(args.interactions, args.seed)))
    build_s = time.perf_counter() - t0
    n_edges = int(graph.data[("User", "INTERACTED", "Item")].edge_index.shape[1])
    params = model_params(args)
    params.update(epochs=args.epochs, patience=args.epochs)
    model = ColdStartModel(text_encoder=HashingEncoder(dim=64), show_progress=args.progress,
                           **params)  # type: ignore[arg-type]
    model.fit(graph)
    secs = [h["seconds"] for h in model.history_]
    s_epoch = float(np.median(secs))
    rss = peak_rss_gb()
    return {"interactions": n_edges, "users": len(graph.node_ids["User"]),
            "items": len(graph.node_ids["Item"]), "build_seconds": build_s,
            "epoch_seconds": secs, "s_per_epoch": s_epoch,
            "ratio_to_target_time": s_epoch / TARGET_S_PER_EPOCH, "peak_rss_gb": rss,
            "ratio_to_target_rss": rss / TARGET_RSS_GB, "params": params}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("part", choices=["amazon", "validation", "synthetic"])
    ap.add_argument("--val-seed", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--conv", default="sage")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--patience", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--item-dropout", type=float, nargs="+", default=[0.3, 0.0])
    ap.add_argument("--user-dropout", type=float, default=0.3)
    ap.add_argument("--interactions", type=int, default=1_000_000)
    ap.add_argument("--max-warm-users", type=int, default=3000)
    ap.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "kgrec" / "text"))
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--no-text-match", action="store_true")
    ap.add_argument("--attr-buckets", type=int, default=0,
                    help="attribute-match buckets (0: off)")
    ap.add_argument("--softmax-weight", type=float, default=0.0)
    ap.add_argument("--cold-softmax-weight", type=float, default=0.0)
    ap.add_argument("--center", action="store_true")
    ap.add_argument("--no-pair-features", action="store_true",
                    help="turn off the head's wide part (graph-path pair features)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run = {"amazon": run_amazon, "validation": run_validation, "synthetic": run_synthetic}
    result = run[args.part](args)
    print(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
