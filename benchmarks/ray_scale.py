"""Candidates on Ray (``kgrec candidates --ray``) vs the single-process job, on Amazon.

Builds an embedded store of Amazon Industrial & Scientific, trains a small model (hashing text
features: the job's cost does not depend on the encoder), then times, one after the other:

- the single-process job (``Recommender.load`` + ``write_candidates`` to Parquet), with 1 and
  with 2 torch threads;
- the Ray job (``ray_candidates``: actors load the model, shards to Parquet parts) with 1 and 2
  workers (1 CPU each) on a local Ray started here with ``--cpus`` CPUs (startup timed apart);

and checks that every run wrote the same rows. Prints each time and its ratio to the
single-process job with as many threads as Ray has workers. Model loading (the graph read and the
GNN forward over the whole graph) is inside every timing: each Ray actor does it once.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks._common import ROOT, peak_rss_mb, shared_data  # noqa: F401 (sys.path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    p.add_argument("--shards", type=int, default=None, help="user shards (default: workers)")
    args = p.parse_args()

    import ray

    from kgrec.coldstart import ModelConfig
    from kgrec.distributed import StoreSpec, ray_candidates
    from kgrec.encoders import HashingEncoder
    from kgrec.graph.adapters import load_tables
    from kgrec.graph.build import build_graph
    from kgrec.graph.embedded import EmbeddedGraphStore
    from kgrec.graph.store import write_graph
    from kgrec.ranking.recommender import Recommender

    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="kgrec-bench-ray-") as tmp:
        work = Path(tmp)
        store = EmbeddedGraphStore(work / "store")
        write_graph(store, build_graph(load_tables(shared_data() /
                                                   "amazon-industrial-scientific")))
        t0 = time.perf_counter()
        Recommender(ModelConfig(epochs=args.epochs, patience=args.epochs),
                    text_encoder=HashingEncoder(), num_threads=2).fit(store).save(work / "model")
        print(f"trained {args.epochs} epochs in {time.perf_counter() - t0:.1f}s")

        single: dict[int, float] = {}
        for threads in (1, 2):
            t0 = time.perf_counter()
            rec = Recommender.load(work / "model", store, num_threads=threads)
            run = rec.write_candidates(k=args.k, parquet=work / f"one-{threads}.parquet")
            single[threads] = time.perf_counter() - t0
            print(f"single process, {threads} thread(s): {single[threads]:.1f}s "
                  f"({run.rows:,} rows, {run.users:,} users)")
        reference = pd.read_parquet(work / "one-1.parquet").sort_values(["user_id", "rank"],
                                                                          ignore_index=True)
        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
        print(f"local Ray with {args.cpus} CPUs started in {time.perf_counter() - t0:.1f}s")
        try:
            for workers in (1, 2):
                out = work / f"ray-{workers}.parquet"
                run = ray_candidates(work / "model", StoreSpec.from_environment(
                    f"embedded:{work / 'store'}"), k=args.k, parquet=out, workers=workers,
                    shards=args.shards)
                got = pd.read_parquet(out).sort_values(["user_id", "rank"], ignore_index=True)
                same = bool(got[["user_id", "item_id", "rank"]].equals(
                    reference[["user_id", "item_id", "rank"]]) and
                    (got["score"] - reference["score"]).abs().max() < 1e-6)
                ref = single[min(workers, 2)]
                print(f"Ray, {workers} worker(s), {len(list(out.iterdir()))} parts: "
                      f"{run.seconds:.1f}s = {run.seconds / ref:.2f}x the single-process job "
                      f"with {min(workers, 2)} thread(s); same rows: {same}")
        finally:
            ray.shutdown()
    print(f"driver peak RSS {peak_rss_mb():,.0f} MB; load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
