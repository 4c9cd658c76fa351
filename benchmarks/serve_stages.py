"""Where the time of one ``/rank-new-items`` and one ``/recommend`` goes, in-process on Amazon.

The serving calls without HTTP, timed by stage (median of ``--repeat`` runs, one torch thread):

- ``rank_new_items`` of 10 new SKUs for one user, by stage, against its reference: the full
  fold-in it replaced (the SKUs merged into the whole graph's frames, exported, and the model's
  ``transform`` run on it, the path before :mod:`kgrec.coldstart.append`);
- ``recommend`` (k = 20) for one user per call and for 8 users per call (what micro-batching in
  ``kgrec serve`` does with 8 concurrent requests), per user;
- ``recommend_for_new_user`` with one click.

    PYTHONPATH=. .venv/bin/python benchmarks/serve_stages.py --model-dir M --store embedded:S

Without ``--model-dir``/``--store`` it ingests and trains as ``benchmarks/serve.py`` does.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import shared_data  # noqa: E402


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir")
    p.add_argument("--store")
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()

    import torch
    from serve import _train

    from kgrec.coldstart.append import embed_new_items
    from kgrec.graph.adapters import load_dataset
    from kgrec.graph.build import build_graph
    from kgrec.graph.export import to_hetero_data
    from kgrec.graph.open import open_store
    from kgrec.graph.tables import CatalogTables
    from kgrec.ranking.candidates import iter_ranked
    from kgrec.ranking.foldin import (
        canonical_items,
        fold_in,
        top_users_per_item,
        unknown_new_items,
        warm_new_items,
    )
    from kgrec.ranking.recommender import Recommender

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    store, model = ((args.store, args.model_dir) if args.store and args.model_dir
                    else _train(Path(tempfile.mkdtemp(prefix="kgrec-stages-"))))
    graph, pseudonymizer = open_store(store)
    rec = Recommender.load(model, graph, pseudonymizer=pseudonymizer)
    warm_new_items(rec)
    tables = load_dataset(shared_data() / "amazon-industrial-scientific")
    assert tables.interactions is not None and tables.items is not None
    cols = [c for c in ("title", "description", "brand", "category", "price")
            if c in tables.items.frame.columns]
    items = tables.items.frame[cols].head(10).copy()
    items["item_id"] = [f"bench-new-{n}" for n in range(10)]
    items["description"] = items["description"].fillna("").astype(str).str[:1000]
    raw = tables.interactions.frame["user_id"].astype(str).unique()[:64].tolist()
    user, r = raw[0], args.repeat
    print(f"load average {os.getloadavg()[0]:.1f}; {r} runs each, median\n")

    canon = canonical_items(items)
    rows = rec._user_rows([user])
    extra = build_graph(CatalogTables(items=canon))
    new_graph = to_hetero_data(extra)
    base = rec._new_item_base.get(rec.model_, rec.graph_)
    ids = canon["item_id"].tolist()
    emb = embed_new_items(rec.model_, base, rec.emb_, new_graph, ids, rows)
    stages = {
        "checks (canonical rows, cold SKUs, user ids)": lambda: (
            canonical_items(items), unknown_new_items(canon, rec.frames_),
            rec._user_rows([user])),
        "build_graph of the 10 SKUs": lambda: build_graph(CatalogTables(items=canon)),
        "to_hetero_data of the 10 SKUs": lambda: to_hetero_data(extra),
        "embed_new_items (append + k-hop GNN)": lambda: embed_new_items(
            rec.model_, base, rec.emb_, new_graph, ids, rows),
        "by user + by item ranking": lambda: (list(iter_ranked(
            rec.model_, emb, np.arange(1), np.arange(len(ids)), k=10, rerank_n=rec.rerank_n)),
            top_users_per_item(rec.model_, emb, np.asarray([user], object), 10,
                               rec.user_chunk)),
    }
    print("| `rank_new_items`, 10 SKUs, 1 user | ms |\n|---|---|")
    for name, fn in stages.items():
        print(f"| {name} | {median_ms(fn, r):.1f} |")
    total = median_ms(lambda: rec.rank_new_items(items, user_ids=[user], k=10), r)
    gu = list(rec.emb_.user_ids[rows])

    def full_fold_in() -> None:
        _, folded = fold_in(rec.frames_, CatalogTables(items=canon))
        rec.model_.transform(folded, user_ids=gu, item_ids=ids)

    ref = median_ms(full_fold_in, max(3, r // 4))
    print(f"| **total** (`rec.rank_new_items`) | **{total:.1f}** |")
    print(f"| reference: full fold-in + `transform` (embedding only; texts memoised) | "
          f"{ref:.1f} |")
    print(f"\nrank_new_items {total:.1f} ms = {total / ref:.2f} x the full fold-in's "
          f"embedding step alone; {total / 300:.2f} x the 300 ms p99 target\n")

    one = median_ms(lambda: [rec.recommend([u], k=20) for u in raw[:8]], r) / 8
    eight = median_ms(lambda: rec.recommend(raw[:8], k=20), r) / 8
    click = str(rec.emb_.item_ids[5])
    new_user = median_ms(lambda: rec.recommend_for_new_user({}, [click], k=20), max(3, r // 4))
    print("| call | ms per user |\n|---|---|")
    print(f"| `recommend`, the same 8 users one per call | {one:.2f} |")
    print(f"| `recommend`, the 8 users in one call (micro-batch) | {eight:.2f} |")
    print(f"| `recommend_for_new_user`, 1 click | {new_user:.1f} |")
    print(f"\nrecommend: 8 users per call costs {eight / one:.2f} x one per call, per user; "
          f"one call {one / 50:.2f} x the 50 ms p99 target")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
