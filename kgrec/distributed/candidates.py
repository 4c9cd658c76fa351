"""The nightly candidate job on Ray Data: user shards in parallel, one Parquet part per shard.

Why shards of users: every user is ranked on its own (``kgrec.ranking.candidates``), so the
single-process job splits without changing any answer. The users (sorted graph ids) are cut into
``shards`` contiguous shards; ``ray.data.from_items`` + ``map_batches`` hands them to ``workers``
actors. Each actor loads the saved model once (``Recommender.load`` from the model folder,
against its own connection to the store: never a pickled model or driver), then runs the
single-process job (:func:`kgrec.ranking.batch.write_candidates`: retrieval, CTR re-rank,
explanations) on each shard it is given, writing

- ``PARQUET/part-NNNNN.parquet`` (the single-process columns and rows, for that shard's users),
- ``CANDIDATE`` edges to the target store, one transaction per ``user_chunk`` users, as today,
- ``EXPLAIN/part-NNNNN.<suffix>`` when explanations are asked for.

Every shard carries the driver's ``created_at`` and the model's version. The parts are written
into a hidden folder beside the target that replaces it only when every shard is done, so a
failed run leaves the previous output whole (and no stale part of a run with more shards).
Paths must be visible to every worker (one machine, or a shared filesystem); the store must be
reachable from every worker (Neo4j, or an embedded store on a shared filesystem).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kgrec.distributed.cluster import StoreSpec, check_workers, ray_session
from kgrec.errors import ConfigError
from kgrec.ranking.candidates import CandidateRun, now_iso

logger = logging.getLogger(__name__)

PART = "part-{:05d}{}"


@dataclass(frozen=True)
class CandidateJob:
    """What every shard of one run needs (small and picklable: no model, no driver)."""

    model_dir: str
    source: StoreSpec
    target: StoreSpec | None
    parquet: str | None
    explain: str | None
    k: int
    shards: int
    created_at: str
    rerank_n: int | None = None
    user_chunk: int | None = None
    max_paths: int = 3
    threads: int = 1


class ShardWriter:
    """A Ray Data actor: loads the model once, then writes the shards it is given."""

    def __init__(self, job: CandidateJob) -> None:
        from kgrec.ranking.recommender import Recommender

        self.job = job
        self.source = job.source.open()
        # graph ids in, graph ids out: no pseudonymizer (and no key) on a worker
        self.rec = Recommender.load(job.model_dir, self.source, num_threads=job.threads)
        if job.rerank_n is not None:
            self.rec.rerank_n = job.rerank_n
        if job.user_chunk is not None:
            self.rec.user_chunk = job.user_chunk
        self.target = None if job.target is None else \
            self.source if job.target == job.source else job.target.open()
        self.users = np.array_split(np.sort(np.asarray(self.rec.emb_.user_ids, dtype=str)),
                                    job.shards)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from kgrec.ranking.batch import write_candidates

        out: dict[str, list[Any]] = {"shard": [], "users": [], "rows": [], "edges": [],
                                     "seconds": []}
        for shard in batch["shard"].tolist():
            job, users = self.job, self.users[shard].tolist()
            explain = None if job.explain is None else \
                Path(job.explain) / PART.format(shard, Path(job.explain).suffix or ".jsonl")
            run = write_candidates(
                self.rec, k=job.k, user_ids=users, store=self.target,
                parquet=None if job.parquet is None else
                Path(job.parquet) / PART.format(shard, ".parquet"),
                explain_to=explain, max_paths=job.max_paths, created_at=job.created_at)
            for key, value in (("shard", shard), ("users", run.users), ("rows", run.rows),
                               ("edges", run.store_edges), ("seconds", run.seconds)):
                out[key].append(value)
        return {key: np.asarray(values) for key, values in out.items()}

    def __del__(self) -> None:
        for store in {id(s): s for s in (self.target, self.source) if s is not None}.values():
            self.job.source.close(store)


def _staging(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    tmp.mkdir()
    return tmp


def _publish(tmp: Path, final: Path) -> Path:
    """Put the finished folder ``tmp`` at ``final``, replacing what was there."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.{secrets.token_hex(4)}.old")
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    return final


def ray_candidates(model_dir: str | Path, store: StoreSpec, *, k: int = 50,
                   parquet: str | Path | None = None, target: StoreSpec | None = None,
                   explain_to: str | Path | None = None, workers: int = 2,
                   shards: int | None = None, address: str | None = None,
                   rerank_n: int | None = None, user_chunk: int | None = None,
                   max_paths: int = 3) -> CandidateRun:
    """Top-``k`` candidates of every user with Ray Data: the single-process job per user shard.

    Args:
        model_dir: A folder written by ``Recommender.save`` / ``kgrec train``.
        store: The store the model serves (every worker loads the model against it).
        k: Items per user.
        parquet: A folder for ``part-NNNNN.parquet`` (one per shard), or None.
        target: The store to write ``CANDIDATE`` edges to, or None.
        explain_to: A folder for the explanation parts (``part-NNNNN`` with this path's suffix,
            ``.jsonl`` by default; ``.parquet`` for Parquet), or None.
        workers: Ray actors (each loads the model once, 1 CPU each).
        shards: User shards (Parquet parts); default ``workers``.
        address: The Ray cluster (see :func:`~kgrec.distributed.cluster.ray_session`).
        rerank_n, user_chunk: Override the saved model's settings, as the CLI flags do.
        max_paths: Explanation paths per candidate.

    Raises:
        ConfigError: nothing to write, fewer than 1 worker or shard, a store that cannot be
            opened (e.g. missing Neo4j settings), Ray not installed or not reachable.
        ModelError: the model folder is missing or unreadable (raised before Ray starts).
    """
    if parquet is None and target is None:
        raise ConfigError("nothing to write: give parquet=FOLDER and/or target=StoreSpec "
                          "(--to parquet:PATH and/or --to neo4j)")
    check_workers(workers)
    shards = workers if shards is None else shards
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ConfigError(f"shards must be an integer >= 1, got {shards!r}")
    model_path = Path(model_dir).resolve()
    version = _model_version(model_path)
    for spec in (store, target):  # settings errors here, not inside an actor (no I/O yet)
        if spec is not None:
            spec.close(spec.open())
    start = time.perf_counter()
    outputs = {name: Path(p).resolve() for name, p in (("parquet", parquet),
                                                        ("explain", explain_to)) if p is not None}
    staged = {name: _staging(final) for name, final in outputs.items()}
    try:
        job = CandidateJob(str(model_path), store, target,
                           str(staged["parquet"]) if "parquet" in staged else None,
                           str(staged["explain"]) if "explain" in staged else None,
                           k, shards, now_iso(), rerank_n, user_chunk, max_paths)
        with ray_session(address) as ray:
            ray.data.DataContext.get_current().enable_progress_bars = False
            # from_items: the shard list lives in the object store, so no read task has to
            # wait for a CPU that the writer actors hold
            done = ray.data.from_items([{"shard": i} for i in range(shards)],
                                       override_num_blocks=shards).map_batches(
                ShardWriter, fn_constructor_args=(job,), batch_size=1, concurrency=workers,
                num_cpus=1).take_all()
        for name, tmp in staged.items():
            _publish(tmp, outputs[name])
    finally:
        for tmp in staged.values():
            if tmp.exists():
                shutil.rmtree(tmp)
    logger.info("%d shards on %d workers: %s", len(done), workers,
                sorted((int(d["shard"]), round(float(d["seconds"]), 2)) for d in done))
    return CandidateRun(rows=sum(int(d["rows"]) for d in done),
                        users=sum(int(d["users"]) for d in done),
                        parquet=outputs.get("parquet"),
                        store_edges=sum(int(d["edges"]) for d in done),
                        explanations=outputs.get("explain"), model_version=version,
                        created_at=job.created_at, seconds=time.perf_counter() - start)


def _model_version(model_dir: Path) -> str:
    """The saved model's version, read on the driver so a bad folder fails before Ray starts.

    Raises:
        ModelError: the folder has no readable ``recommender.json``.
    """
    from kgrec.errors import ModelError
    from kgrec.ranking.persistence import STATE_FILE

    try:
        return str(json.loads((model_dir / STATE_FILE).read_text())["model_version"])
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"{model_dir / STATE_FILE} is missing or unreadable ({e}); is "
                         f"{model_dir} a folder written by `kgrec train`?") from e
