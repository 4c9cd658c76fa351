"""Benchmark: batch top-K candidate generation against a bare ``torch.matmul`` + ``topk``.

Parts (run each in its own process, so peak RSS belongs to that part only):

* ``synthetic`` -- random unit-vector embeddings, ``--users`` x ``--items`` (default
  100,000 x 50,000, dimension 128): the retrieval stage of kgrec's candidate path
  (``kgrec.ranking.candidates.retrieve`` per user chunk, with seen-item masking of ~20 items per
  user, and the id/rank bookkeeping) against the bare loop ``topk(U[chunk] @ I.T, N)`` over the
  same embeddings and chunk size, in the same run. Target: ratio <= 1.5.
* ``amazon`` -- Amazon Industrial & Scientific (``load_tables``), a model
  trained with ``HashingEncoder`` (model-free text features, so the figure is about the top-K
  machinery, not BERT) for ``--epochs`` epochs; then every user x every item: retrieval stage
  vs bare matmul+topk, and the full path (retrieval + calibrated CTR re-rank of N, seen items
  excluded, Parquet written).

Usage::

    .venv/bin/python benchmarks/score.py synthetic [--users 100000] [--items 50000]
    .venv/bin/python benchmarks/score.py amazon [--epochs 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, shared_data  # noqa: E402

from kgrec.ranking.candidates import SeenIndex, retrieve  # noqa: E402


def bare(uv: torch.Tensor, iv: torch.Tensor, n: int, chunk: int) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(uv), chunk):
            torch.topk(torch.matmul(uv[s:s + chunk], iv.T), n, dim=1)
    return time.perf_counter() - start


def kgrec_retrieval(uv: torch.Tensor, iv: torch.Tensor, n: int, chunk: int,
                    seen: SeenIndex | None, item_ids: np.ndarray) -> float:
    """The retrieval stage as rank_block runs it: masking, topk, mapping rows to ids."""
    start = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(uv), chunk):
            rows = np.arange(s, min(len(uv), s + chunk))
            mr = mc = None
            if seen is not None:
                mr, mc = seen.gather(rows)
            values, idx = retrieve(uv[s:s + chunk], iv, n, mr, mc)
            _ = item_ids[idx.numpy()], torch.isfinite(values).numpy()
    return time.perf_counter() - start


def synthetic(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    uv = torch.nn.functional.normalize(torch.randn(args.users, args.dim, generator=g), dim=1)
    iv = torch.nn.functional.normalize(torch.randn(args.items, args.dim, generator=g), dim=1)
    rng = np.random.default_rng(0)
    seen = SeenIndex.from_pairs(np.repeat(np.arange(args.users), 20),
                                rng.integers(0, args.items, 20 * args.users), args.users)
    ids = np.array([f"SKU-{i}" for i in range(args.items)], dtype=object)
    n = max(args.k, args.rerank_n)
    t_bare = bare(uv, iv, n, args.chunk)
    t_ours = kgrec_retrieval(uv, iv, n, args.chunk, seen, ids)
    print(f"synthetic {args.users:,} users x {args.items:,} items, dim {args.dim}, N={n}, "
          f"chunk {args.chunk}, threads {args.threads}")
    print(f"  bare matmul+topk      {t_bare:8.2f} s")
    print(f"  kgrec retrieval stage {t_ours:8.2f} s   ratio {t_ours / t_bare:.2f} "
          f"(target <= 1.5)")
    print(f"  peak RSS {peak_rss_mb():,.0f} MB")


def amazon(args: argparse.Namespace) -> None:
    import pandas as pd

    from kgrec.coldstart import ModelConfig
    from kgrec.encoders import HashingEncoder
    from kgrec.graph.adapters import load_tables
    from kgrec.graph.build import build_graph
    from kgrec.graph.export import to_hetero_data
    from kgrec.ranking.recommender import Recommender

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    tables = load_tables(shared_data() / "amazon-industrial-scientific")
    graph = to_hetero_data(build_graph(tables))
    rec = Recommender(ModelConfig(epochs=args.epochs, patience=args.epochs),
                      text_encoder=HashingEncoder(), num_threads=args.threads,
                      rerank_n=args.rerank_n, user_chunk=args.chunk).fit(graph)
    t_train = time.perf_counter() - t0
    uvn, ivn = rec.model_.retrieval_vectors(rec.emb_)
    uv, iv = torch.from_numpy(uvn).float(), torch.from_numpy(ivn).float()
    n = max(args.k, args.rerank_n)
    t_bare = bare(uv, iv, n, args.chunk)
    t_ret = kgrec_retrieval(uv, iv, n, args.chunk, rec.seen_, rec.emb_.item_ids)
    with tempfile.TemporaryDirectory() as tmp:
        run = rec.write_candidates(k=args.k, parquet=Path(tmp) / "c.parquet")
        rows = len(pd.read_parquet(Path(tmp) / "c.parquet"))
    print(f"amazon {len(uv):,} users x {len(iv):,} items, tower dim {uv.shape[1]}, N={n}, "
          f"k={args.k}, chunk {args.chunk}, threads {args.threads} (train {t_train:.0f} s, "
          f"{args.epochs} epochs, HashingEncoder)")
    print(f"  bare matmul+topk      {t_bare:8.2f} s")
    print(f"  kgrec retrieval stage {t_ret:8.2f} s   ratio {t_ret / t_bare:.2f} "
          f"(target <= 1.5)")
    print(f"  full path (retrieval + CTR re-rank + Parquet) {run.seconds:.2f} s, "
          f"{rows:,} rows; ratio to bare {run.seconds / t_bare:.2f}")
    print(f"  peak RSS {peak_rss_mb():,.0f} MB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("part", choices=["synthetic", "amazon"])
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--rerank-n", type=int, default=200)
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    (synthetic if args.part == "synthetic" else amazon)(args)


if __name__ == "__main__":
    main()
