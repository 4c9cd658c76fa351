"""Benchmark: cold-start model training speed and memory on a generated shop.

A generated graph with ``--interactions`` (default 1,000,000) interactions, hashed-text item
features (``HashingEncoder``), brands, categories and user profiles; trains the default model
(``ModelConfig()``) for ``--epochs`` epochs without early stopping and prints seconds per epoch
and peak RSS against the targets (15 s/epoch, 3 GB; mini-batch: 8 GB), each with its ratio to
the target.

``--steps-per-epoch`` defaults to 4, the work per epoch the targets were set for; the default
model takes 8 steps per epoch, so its epoch costs about twice that (the figure per step is
printed too). Quality is measured by ``kgrec evaluate`` (test splits) and
``kgrec evaluate --validation`` (validation splits carved from training data), not here.

Usage::

    .venv/bin/python benchmarks/train.py [--interactions 1000000] [--epochs 3]
        [--batch-mode auto|full|mini] [--batch-size 4096] [--fanout 20] [--device cuda]
        [--log-steps]

With ``--batch-mode mini`` (or ``auto`` past 2M interactions) an epoch is every supervision
positive in batches of ``--batch-size`` (``ModelConfig.batch_mode``), so s/epoch is not
comparable to full batch's 4 steps; ``fit_seconds`` (training, validation and calibration)
is printed beside it.

``--device cuda`` runs the GNN and the head on the GPU (sampling, pair features and
calibration stay on the CPU) and adds ``peak_gpu_gb`` (``torch.cuda.max_memory_allocated``
during the fit). ``--log-steps`` logs progress every 50 training steps (long epochs).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time

import numpy as np
import pandas as pd
import torch

from kgrec.coldstart import ColdStartModel, ModelConfig
from kgrec.coldstart.config import BATCH_MODES
from kgrec.coldstart.minibatch import epoch_steps
from kgrec.encoders import HashingEncoder
from kgrec.graph.build import build_graph
from kgrec.graph.export import to_hetero_data
from kgrec.graph.tables import CatalogTables

TARGET_S_PER_EPOCH, TARGET_RSS_GB = 15.0, 3.0
TARGET_MINI_RSS_GB = 8.0  # issue 16: mini-batch training at 10M interactions on a 24 GB machine


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


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


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_synthetic(args: argparse.Namespace) -> dict[str, object]:
    t0 = time.perf_counter()
    graph = to_hetero_data(build_graph(synthetic_tables(args.interactions, args.seed)))
    build_s, build_rss = time.perf_counter() - t0, peak_rss_gb()
    n_edges = int(graph.data[("User", "INTERACTED", "Item")].edge_index.shape[1])
    config = ModelConfig(epochs=args.epochs, patience=args.epochs, seed=args.seed,
                         steps_per_epoch=args.steps_per_epoch, batch_mode=args.batch_mode,
                         batch_size=args.batch_size, fanout=args.fanout)
    model = ColdStartModel(config, text_encoder=HashingEncoder(dim=64), device=args.device,
                           num_threads=args.threads, show_progress=args.progress)
    cuda = torch.device(args.device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    cpu0 = cpu_seconds()
    model.fit(graph)
    fit_s, fit_cpu = time.perf_counter() - t0 - build_s, cpu_seconds() - cpu0
    secs = [h["seconds"] for h in model.history_]
    s_epoch = float(np.median(secs))
    rss = peak_rss_gb()
    mini = config.mini_batch(n_edges)
    # an epoch's steps: full batch takes steps_per_epoch; mini-batch covers every supervision
    # positive (about supervision_share of the interactions: held-out pairs are a few %)
    steps = epoch_steps(round(n_edges * config.supervision_share), config) if mini \
        else config.steps_per_epoch
    target_rss = TARGET_MINI_RSS_GB if mini else TARGET_RSS_GB
    out: dict[str, object] = {
        "interactions": n_edges, "users": len(graph.node_ids["User"]),
        "items": len(graph.node_ids["Item"]), "build_seconds": build_s,
        "peak_rss_after_build_gb": build_rss, "mini_batch": mini, "fit_seconds": fit_s,
        "fit_cpu_seconds": fit_cpu, "epoch_seconds": secs, "s_per_epoch": s_epoch,
        "steps_per_epoch_about": steps, "s_per_step": s_epoch / steps,
        "s_per_epoch_per_1m_interactions": s_epoch / (n_edges / 1e6),
        "ratio_to_target_time": s_epoch / TARGET_S_PER_EPOCH, "peak_rss_gb": rss,
        "target_rss_gb": target_rss, "ratio_to_target_rss": rss / target_rss,
        "device": args.device, "config": config.to_dict()}
    if cuda:
        out["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 1024**3
        out["gpu"] = torch.cuda.get_device_name()
    if args.reference:  # cost per interaction against an earlier run: <= 1 is linear or better
        with open(args.reference, encoding="utf-8") as f:
            ref = json.load(f)
        out["reference"] = {"interactions": ref["interactions"], "s_per_epoch": ref["s_per_epoch"]}
        out["ratio_per_interaction_to_reference"] = (
            (s_epoch / n_edges) / (ref["s_per_epoch"] / ref["interactions"]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--interactions", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps-per-epoch", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-mode", choices=BATCH_MODES, default="auto",
                    help="ModelConfig.batch_mode (auto: mini above 2M interactions)")
    ap.add_argument("--batch-size", type=int, default=ModelConfig().batch_size)
    ap.add_argument("--fanout", type=int, default=ModelConfig().fanout)
    ap.add_argument("--reference", default=None,
                    help="JSON output of an earlier run: print the ratio of seconds per epoch "
                    "per interaction to it (linear scaling: <= 1)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu",
                    help="torch device of the GNN and head (ColdStartModel's device), e.g. cuda")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--log-steps", action="store_true",
                    help="log progress every 50 training steps (kgrec.coldstart.train debug)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.log_steps:
        logging.getLogger("kgrec.coldstart.train").setLevel(logging.DEBUG)
    print(json.dumps(run_synthetic(args), indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
