"""Benchmark: in-process latency of one product search on Amazon Industrial & Scientific.

A model with the default architecture is trained on the whole Amazon graph for ``--epochs``
epochs (latency does not depend on how well it is trained) with the real BERT encoder (item
vectors from the on-disk cache ``--cache-dir``); the search index is built once (timed), then
``--queries`` searches are timed one by one, in process, each for one (user, query): queries
are the protocol's category-path queries and item titles, users drawn at random from the graph
(a third anonymous). Also timed: adding 50 new SKUs (``add_items``), after which one of them is
searched by its exact title (rank 1 expected). Prints p50/p95/p99 and the maximum.

Usage::

    KGREC_SHARED_DATA=../shared/data .venv/bin/python benchmarks/search.py \
        [--queries 500] [--epochs 2] [--cache-dir ~/.cache/kgrec/text] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache/kgrec/text"))
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--k", type=int, default=20)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from kgrec.coldstart import ModelConfig
    from kgrec.encoders import make_text_encoder
    from kgrec.evaluation.runner import export
    from kgrec.evaluation.search_protocol import category_query
    from kgrec.graph.adapters import load_tables
    from kgrec.graph.tables import CatalogTables
    from kgrec.ranking.recommender import Recommender
    from kgrec.ranking.search import ProductSearch

    tables = load_tables("amazon")
    held = tables.items.sample(50, random_state=0)  # "new SKUs": listed after the fit
    base = CatalogTables(items=tables.items[~tables.items["item_id"].isin(held["item_id"])],
                         users=tables.users, interactions=tables.interactions[
                             ~tables.interactions["item_id"].isin(held["item_id"])])
    enc = make_text_encoder("bert", cache_dir=args.cache_dir, num_threads=args.threads)
    t0 = time.perf_counter()
    rec = Recommender(ModelConfig(epochs=args.epochs), text_encoder=enc,
                      num_threads=args.threads).fit(export(base))
    print(f"fit ({args.epochs} epochs, default architecture): {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    ps = ProductSearch().fit(rec)
    build = time.perf_counter() - t0
    print(f"index build (BM25 + dense over {len(ps.index_.item_ids_):,} items): {build:.2f} s")

    rng = np.random.default_rng(0)
    items = base.items.reset_index(drop=True)
    queries = [category_query(c) or "tool" for c in items["category"].sample(
        args.queries, replace=True, random_state=1)]
    titles = items["title"].fillna("tool").sample(args.queries, replace=True,
                                                  random_state=2).tolist()
    queries = [q if rng.random() < 0.5 else t for q, t in zip(queries, titles, strict=True)]
    users = rng.choice(np.asarray(rec.emb_.user_ids, dtype=object), size=args.queries)
    anonymous = rng.random(args.queries) < 1 / 3
    for q in queries[:5]:  # warm-up: tokenizer, jieba/BERT first calls
        ps.search(q, user=str(users[0]), k=args.k)
    times = np.empty((2, args.queries))
    load = os.getloadavg()[0]
    for n, (q, u, anon) in enumerate(zip(queries, users, anonymous, strict=True)):
        start, cpu = time.perf_counter(), time.process_time()
        ps.search(q, user=None if anon else str(u), k=args.k)
        times[:, n] = time.perf_counter() - start, time.process_time() - cpu
    print(f"{args.queries} searches (k={args.k}, {int((~anonymous).sum())} personalised), "
          f"torch threads {args.threads}, load average {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f} (2 cores):")
    for what, t in (("wall-clock", times[0]), ("CPU time", times[1])):
        ms, pers = t * 1e3, t[~anonymous] * 1e3
        print(f"  {what:10s} all: p50 {np.percentile(ms, 50):.1f} ms  p95 "
              f"{np.percentile(ms, 95):.1f} ms  p99 {np.percentile(ms, 99):.1f} ms  max "
              f"{ms.max():.1f} ms; personalised: p50 {np.percentile(pers, 50):.1f} ms  p99 "
              f"{np.percentile(pers, 99):.1f} ms")
    t0 = time.perf_counter()
    ps.add_items(held)
    print(f"add_items (50 new SKUs: fold-in + BM25 rebuild + encode): "
          f"{time.perf_counter() - t0:.2f} s")
    hits, titles = 0, tables.items.set_index("item_id")["title"]
    for _, row in held.iterrows():
        res = ps.search(str(row["title"]), user=str(users[0]), k=1)
        hits += res.item_ids[0] == row["item_id"]
        if res.item_ids[0] != row["item_id"]:
            same = titles[res.item_ids[0]] == row["title"]
            print(f"  miss: {row['item_id']} {str(row['title'])[:60]!r} -> {res.item_ids[0]}"
                  f"{' (same title)' if same else ''} {str(titles[res.item_ids[0]])[:60]!r}")
    print(f"new SKU found at rank 1 by its exact title: {hits}/50")
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
