"""Benchmark: batch top-K candidate generation against a bare ``torch.matmul`` + ``topk`` and
FAISS's exact ``IndexFlatIP``; recall and speed-up of the approximate (IVF) index.

Parts (run each in its own process, so peak RSS belongs to that part only):

* ``synthetic`` -- random unit-vector embeddings, ``--users`` x ``--items`` (default
  20,000 x 50,000, dimension 128, N = 200): three searches of the same vectors, interleaved
  over ``--repeats`` rounds (median reported): the bare loop ``topk(U[chunk] @ I.T, N)``,
  kgrec's exact retrieval stage (``kgrec.ranking.retrieval.exact_search`` per user chunk, with
  seen-item masking of ~20 items per user, and the id bookkeeping) and FAISS ``IndexFlatIP``
  searching all users in one call. Targets: kgrec <= 1.5x bare, kgrec <= 1.0x FAISS flat.
* ``amazon`` -- Amazon Industrial & Scientific (``load_tables``), a model
  trained with ``HashingEncoder`` (model-free text features, so the figure is about the top-K
  machinery, not BERT) for ``--epochs`` epochs; then every user x every item: retrieval stage
  vs bare matmul+topk, and the full path (retrieval + calibrated CTR re-rank of N, seen items
  excluded, Parquet written); then the approximate index on the trained tower vectors
  (calibrated on half the users, recall@50 and recall@N measured on the other half against
  the exact search; target recall@50 >= 0.95) and the final top-k overlap after re-ranking.
* ``million`` -- a ``--items`` (default 1,000,000) item catalogue for the approximate index,
  built in bounded memory: ``--source amazon`` draws each item as a trained Amazon item vector
  plus Gaussian noise (``--noise`` times the per-dimension spread), queried by the trained
  Amazon user vectors (real geometry at catalogue scale); ``--source random`` uses random unit
  vectors (the worst case for any index). Build time, recall@50/@N and search speed-up against
  the exact search of the same queries.

Usage::

    .venv/bin/python benchmarks/score.py synthetic [--users 20000] [--items 50000]
    .venv/bin/python benchmarks/score.py amazon [--epochs 5]
    .venv/bin/python benchmarks/score.py million [--source amazon] [--items 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, shared_data  # noqa: E402

from kgrec.ranking.candidates import SeenIndex  # noqa: E402
from kgrec.ranking.retrieval import (  # noqa: E402
    ApproximateIndex,
    exact_search,
    recall_at,
)


def bare(uv: torch.Tensor, iv: torch.Tensor, n: int, chunk: int) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(uv), chunk):
            torch.topk(torch.matmul(uv[s:s + chunk], iv.T), n, dim=1)
    return time.perf_counter() - start


def kgrec_retrieval(uv: torch.Tensor, iv: torch.Tensor, n: int, chunk: int,
                    seen: SeenIndex | None, item_ids: np.ndarray) -> float:
    """The retrieval stage as rank_block runs it: masking, search, mapping rows to ids."""
    start = time.perf_counter()
    scratch = torch.empty(min(chunk, len(uv)) * len(iv))  # as iter_ranked holds it
    with torch.no_grad():
        for s in range(0, len(uv), chunk):
            rows = np.arange(s, min(len(uv), s + chunk))
            mr = mc = None
            if seen is not None:
                mr, mc = seen.gather(rows)
            _, found = exact_search(uv[s:s + chunk], iv, n, mr, mc, out=scratch)
            _ = item_ids[found], found >= 0
    return time.perf_counter() - start


def faiss_flat(uv: torch.Tensor, iv: torch.Tensor, n: int) -> float:
    """FAISS's exact inner-product search used directly: one index, every user in one call."""
    import faiss

    start = time.perf_counter()
    index = faiss.IndexFlatIP(iv.shape[1])
    index.add(iv.numpy())
    index.search(uv.numpy(), n)
    return time.perf_counter() - start


def interleaved(runs: dict[str, Callable[[], float]], repeats: int
                ) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and process-CPU seconds of each run over ``repeats`` rounds, the runs taking
    turns in each round (so a change in the machine's load hits all of them alike). CPU time
    (all threads) is the steadier figure on a shared machine: waiting for a core is not in it."""
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            c0 = time.process_time()
            wall[name].append(run())
            cpu[name].append(time.process_time() - c0)
    return ({name: statistics.median(t) for name, t in wall.items()},
            {name: statistics.median(t) for name, t in cpu.items()})


def set_threads(n: int) -> None:
    import faiss

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)


def synthetic(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    uv = torch.nn.functional.normalize(torch.randn(args.users, args.dim, generator=g), dim=1)
    iv = torch.nn.functional.normalize(torch.randn(args.items, args.dim, generator=g), dim=1)
    rng = np.random.default_rng(0)
    seen = SeenIndex.from_pairs(np.repeat(np.arange(args.users), 20),
                                rng.integers(0, args.items, 20 * args.users), args.users)
    ids = np.array([f"SKU-{i}" for i in range(args.items)], dtype=object)
    n = max(args.k, args.rerank_n)
    t, c = interleaved({
        "bare": lambda: bare(uv, iv, n, args.chunk),
        "kgrec": lambda: kgrec_retrieval(uv, iv, n, args.chunk, seen, ids),
        "faiss": lambda: faiss_flat(uv, iv, n),
    }, args.repeats)
    print(f"synthetic {args.users:,} users x {args.items:,} items, dim {args.dim}, N={n}, "
          f"chunk {args.chunk}, threads {args.threads}, median of {args.repeats} interleaved "
          f"rounds, load average {os.getloadavg()[0]:.1f}")
    print("                          wall      CPU (both threads)")
    print(f"  bare matmul+topk        {t['bare']:6.2f} s  {c['bare']:6.2f} s")
    print(f"  FAISS IndexFlatIP       {t['faiss']:6.2f} s  {c['faiss']:6.2f} s")
    print(f"  kgrec exact retrieval   {t['kgrec']:6.2f} s  {c['kgrec']:6.2f} s")
    for name, ref, target in (("bare", "bare matmul+topk", 1.5), ("faiss", "FAISS flat", 1.0)):
        print(f"  kgrec / {ref}: wall {t['kgrec'] / t[name]:.2f}, CPU "
              f"{c['kgrec'] / c[name]:.2f} (target <= {target})")
    print(f"  peak RSS {peak_rss_mb():,.0f} MB")


def train_amazon(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """A Recommender fitted on Amazon with HashingEncoder text features; (rec, seconds)."""
    from kgrec.coldstart import ModelConfig
    from kgrec.encoders import HashingEncoder
    from kgrec.graph.adapters import load_tables
    from kgrec.graph.build import build_graph
    from kgrec.graph.export import to_hetero_data
    from kgrec.ranking.recommender import Recommender

    t0 = time.perf_counter()
    tables = load_tables(shared_data() / "amazon-industrial-scientific")
    graph = to_hetero_data(build_graph(tables))
    rec = Recommender(ModelConfig(epochs=args.epochs, patience=args.epochs),
                      text_encoder=HashingEncoder(), num_threads=args.threads,
                      rerank_n=args.rerank_n, user_chunk=args.chunk).fit(graph)
    return rec, time.perf_counter() - t0


def exact_rows(queries: np.ndarray, items: np.ndarray, n: int, chunk: int
               ) -> tuple[np.ndarray, float]:
    """Exact top-``n`` item rows of every query (blocks of ``chunk``) and the seconds taken."""
    it = torch.from_numpy(items)
    start = time.perf_counter()
    found = np.concatenate([exact_search(torch.from_numpy(queries[s:s + chunk]), it, n)[1]
                            for s in range(0, len(queries), chunk)])
    return found, time.perf_counter() - start


def approximate_report(items: np.ndarray, calibrate: np.ndarray, queries: np.ndarray, n: int,
                       k: int, chunk: int, threads: int) -> None:
    """Build the IVF index (calibrated on ``calibrate``), then recall and speed-up against the
    exact search on ``queries`` (users not used for calibration)."""
    t0 = time.perf_counter()
    index = ApproximateIndex(items, calibrate, calibrate_n=n, threads=threads)
    t_build = time.perf_counter() - t0
    exact, t_exact = exact_rows(queries, items, n, chunk)
    t0 = time.perf_counter()
    _, approx = index.search(queries, n)
    t_approx = time.perf_counter() - t0
    print(f"  approximate index: IVF-Flat nlist {index.nlist}, nprobe {index.nprobe} "
          f"(calibrated on {len(calibrate):,} users: recall@{n} {index.recall_:.3f}), "
          f"build {t_build:.2f} s")
    print(f"  held-out {len(queries):,} users: recall@{k} "
          f"{recall_at(approx[:, :k], exact[:, :k]):.4f} (target >= 0.95), recall@{n} "
          f"{recall_at(approx, exact):.4f}")
    print(f"  search: exact {t_exact:.3f} s, approximate {t_approx:.3f} s, speed-up "
          f"{t_exact / t_approx:.2f}x")
    calibrated, nprobe = index.nprobe, 1
    while nprobe <= index.nlist:  # the recall / speed trade-off around the calibrated value
        index.nprobe = nprobe
        t0 = time.perf_counter()
        _, approx = index.search(queries, n)
        t_approx = time.perf_counter() - t0
        print(f"    nprobe {nprobe:5d}: recall@{k} {recall_at(approx[:, :k], exact[:, :k]):.4f}, "
              f"recall@{n} {recall_at(approx, exact):.4f}, speed-up {t_exact / t_approx:.2f}x")
        nprobe *= 2
    index.nprobe = calibrated


def amazon(args: argparse.Namespace) -> None:
    import pandas as pd

    from kgrec.ranking import retrieval
    from kgrec.ranking.candidates import iter_ranked

    set_threads(args.threads)
    rec, t_train = train_amazon(args)
    uvn, ivn = rec.model_.retrieval_vectors(rec.emb_)
    uv, iv = torch.from_numpy(uvn).float(), torch.from_numpy(ivn).float()
    n = max(args.k, args.rerank_n)
    t_bare = bare(uv, iv, n, args.chunk)
    t_ret = kgrec_retrieval(uv, iv, n, args.chunk, rec.seen_, rec.emb_.item_ids)
    t_faiss = faiss_flat(uv, iv, n)
    with tempfile.TemporaryDirectory() as tmp:
        run = rec.write_candidates(k=args.k, parquet=Path(tmp) / "c.parquet")
        rows = len(pd.read_parquet(Path(tmp) / "c.parquet"))
    print(f"amazon {len(uv):,} users x {len(iv):,} items, tower dim {uv.shape[1]}, N={n}, "
          f"k={args.k}, chunk {args.chunk}, threads {args.threads} (train {t_train:.0f} s, "
          f"{args.epochs} epochs, HashingEncoder), load average {os.getloadavg()[0]:.1f}")
    print(f"  bare matmul+topk      {t_bare:8.2f} s")
    print(f"  FAISS IndexFlatIP     {t_faiss:8.2f} s")
    print(f"  kgrec retrieval stage {t_ret:8.2f} s   ratio to bare {t_ret / t_bare:.2f} "
          f"(target <= 1.5), to FAISS flat {t_ret / t_faiss:.2f}")
    print(f"  full path (retrieval + CTR re-rank + Parquet) {run.seconds:.2f} s, "
          f"{rows:,} rows; ratio to bare {run.seconds / t_bare:.2f}")
    users = np.random.default_rng(0).permutation(len(uvn))
    cal, held = np.sort(users[:len(users) // 2]), np.sort(users[len(users) // 2:])
    approximate_report(ivn, uvn[cal], uvn[held], n, args.k, args.chunk, args.threads)
    items = np.arange(len(ivn))
    retrieval.MAX_PROBE_SHARE = 1.0  # use the index even where iter_ranked would search exactly
    final = {name: np.concatenate([b.item_rows for b in iter_ranked(
        rec.model_, rec.emb_, held, items, k=args.k, rerank_n=args.rerank_n, seen=rec.seen_,
        user_chunk=args.chunk, retrieval=name)]) for name in ("exact", "approximate")}
    print(f"  final top-{args.k} after the CTR re-rank (seen excluded), approximate vs exact "
          f"retrieval: overlap {recall_at(final['approximate'], final['exact']):.4f}")
    print(f"  peak RSS {peak_rss_mb():,.0f} MB")


def million(args: argparse.Namespace) -> None:
    """The approximate index on a large catalogue (see the module docstring)."""
    set_threads(args.threads)
    rng = np.random.default_rng(0)
    if args.source == "amazon":
        rec, t_train = train_amazon(args)
        uvn, ivn = rec.model_.retrieval_vectors(rec.emb_)
        spread = ivn.std(axis=0, keepdims=True) * args.noise
        items = np.empty((args.items, ivn.shape[1]), dtype=np.float32)
        for s in range(0, args.items, 100_000):  # bounded temporaries
            m = min(100_000, args.items - s)
            items[s:s + m] = ivn[rng.integers(0, len(ivn), m)] + \
                rng.standard_normal((m, ivn.shape[1]), dtype=np.float32) * spread
        users = uvn[rng.permutation(len(uvn))].astype(np.float32)
        what = (f"Amazon item vectors + noise {args.noise} x spread, trained Amazon users "
                f"(train {t_train:.0f} s)")
    else:
        def unit(m: int) -> np.ndarray:
            v = rng.standard_normal((m, args.dim), dtype=np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)
        items = np.concatenate([unit(min(100_000, args.items - s))
                                for s in range(0, args.items, 100_000)])
        users = unit(args.users + 512)
        what = "random unit vectors"
    n = max(args.k, args.rerank_n)
    cal, held = users[:512], users[512:512 + args.users]
    print(f"million {args.items:,} items x {len(held):,} held-out users, dim {items.shape[1]}, "
          f"N={n}, threads {args.threads}: {what}; load average {os.getloadavg()[0]:.1f}")
    approximate_report(items, cal, held, n, args.k, 128, args.threads)
    print(f"  peak RSS {peak_rss_mb():,.0f} MB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("part", choices=["synthetic", "amazon", "million"])
    p.add_argument("--users", type=int, default=None,
                   help="synthetic: 20,000; million: 2,000 held-out queries")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--items", type=int, default=None,
                   help="synthetic: 50,000; million: 1,000,000")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--rerank-n", type=int, default=200)
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--source", choices=["amazon", "random"], default="amazon")
    p.add_argument("--noise", type=float, default=0.5)
    args = p.parse_args()
    big = args.part == "million"
    args.items = args.items or (1_000_000 if big else 50_000)
    args.users = args.users or (2_000 if big else 20_000)
    {"synthetic": synthetic, "amazon": amazon, "million": million}[args.part](args)


if __name__ == "__main__":
    main()
