"""Training on Ray Train: ``TorchTrainer`` runs kgrec's own training loop under PyTorch DDP.

How it divides the work (data parallel, and honest about what that scales): each of the ``N``
workers opens the store itself, holds the whole graph and the same initial weights (same seed),
and runs the single-process loop (:func:`kgrec.coldstart.train.fit_loop`) inside
:func:`~kgrec.coldstart.train.data_parallel`. Every step each worker scores its ``1/N`` share of
the step's supervision pairs, with edge dropout and negatives of its own, and the gradients are
averaged over workers (``torch.distributed.all_reduce`` on the ``gloo`` backend Ray Train sets
up) before the identical optimiser step. Validation, early stopping and calibration use the same
held-out pairs on every worker, so all workers stop together with the same weights. The GNN's
full-graph forward is repeated on every worker: what scales is the head's pair scoring and
sampling, not the message passing, and memory per worker is that of a single-process run.

Rank 0 saves the fitted recommender (the folder ``kgrec train`` writes) as its Ray Train
checkpoint; the driver copies it to ``model_dir``. The checkpoint storage (``storage``) must be
visible to every worker and the driver: a local folder on one machine, else a shared filesystem
or ``s3://`` / ``gs://`` URI.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgrec.distributed.cluster import StoreSpec, check_workers, ray_session
from kgrec.errors import ModelError

if TYPE_CHECKING:
    from torch import Tensor

    from kgrec.coldstart import ModelConfig


@dataclass(frozen=True)
class TrainJob:
    """What every training worker needs (picklable: settings and names, no store)."""

    store: StoreSpec
    config: ModelConfig
    encoder: str = "bert"
    threads: int = 1


@dataclass
class TrainRun:
    """What :func:`ray_train` did: where the model is, its version, rank 0's history."""

    model_dir: Path
    model_version: str
    workers: int
    history: list[dict[str, float]]
    seconds: float


def average_gradients(params: list[Tensor]) -> None:
    """Replace every gradient by its mean over the process group, in one ``all_reduce``.

    A parameter without a gradient counts as zero (on every worker alike, so the flat buffer
    lines up).
    """
    import torch
    import torch.distributed as dist

    world = dist.get_world_size()
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def train_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: fit the recommender data-parallel; rank 0 reports the model."""
    import ray.train

    from kgrec.coldstart.train import DataParallel, data_parallel
    from kgrec.encoders import make_text_encoder
    from kgrec.ranking.recommender import Recommender

    job: TrainJob = loop_config["job"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    store = job.store.open()
    try:
        rec = Recommender(job.config, text_encoder=make_text_encoder(job.encoder),
                          num_threads=job.threads)
        with data_parallel(DataParallel(rank, world, average_gradients)):
            rec.fit(store)
    finally:
        job.store.close(store)
    hist = rec.model_.history_
    metrics = {"epochs": len(hist), "loss": hist[-1]["loss"] if hist else math.nan,
               "val_score": max((h["val_score"] for h in hist
                                 if not math.isnan(h["val_score"])), default=math.nan),
               "history": hist}
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="kgrec-model-") as folder:
        rec.save(folder)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def ray_train(store: StoreSpec, model_dir: str | Path, config: ModelConfig | None = None, *,
              workers: int = 2, encoder: str = "bert", address: str | None = None,
              storage: str | Path | None = None, threads: int = 1) -> TrainRun:
    """Train on ``workers`` Ray Train workers (DDP, CPU, ``gloo``) and save to ``model_dir``.

    Args:
        store: The store to train on (every worker opens it).
        model_dir: Where the trained model folder goes (as ``kgrec train --model-dir``).
        config: The model's settings (default ``ModelConfig()``).
        workers: Training workers (Ray Train ``ScalingConfig(num_workers=...)``), 1 CPU each.
        encoder: ``"bert"`` or ``"hashing"`` (:func:`kgrec.encoders.make_text_encoder`).
        address: The Ray cluster (see :func:`~kgrec.distributed.cluster.ray_session`).
        storage: Ray Train's checkpoint storage, visible to the workers and this process;
            default a temporary local folder (one machine), removed after.
        threads: torch threads per worker.

    Raises:
        ConfigError: fewer than 1 worker; Ray not installed or not reachable.
        ModelError: training failed on a worker (the worker's error is in the message).
    """
    from ray.exceptions import RayError
    from ray.train import RunConfig, ScalingConfig, TrainingFailedError
    from ray.train.torch import TorchConfig, TorchTrainer

    from kgrec.coldstart import ModelConfig
    from kgrec.ranking.persistence import STATE_FILE

    check_workers(workers)
    job = TrainJob(store, (config or ModelConfig()).validate(), encoder, threads)
    start = time.perf_counter()
    final = Path(model_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="kgrec-ray-train-") as scratch:
        run_config = RunConfig(name="kgrec-train",
                               storage_path=str(storage or Path(scratch) / "storage"))
        with ray_session(address):
            trainer = TorchTrainer(
                train_worker, train_loop_config={"job": job},
                torch_config=TorchConfig(backend="gloo"),
                scaling_config=ScalingConfig(num_workers=workers, use_gpu=False,
                                             resources_per_worker={"CPU": 1}),
                run_config=run_config)
            try:
                result = trainer.fit()
            except (TrainingFailedError, RayError) as e:  # a worker's error, wrapped by Ray
                raise ModelError(f"training on {workers} Ray workers failed: {e}") from e
            if result.checkpoint is None:
                raise ModelError(f"training on {workers} Ray workers saved no model "
                                 f"({result.error})")
            staged = Path(scratch) / "model"
            result.checkpoint.to_directory(str(staged))
        final.mkdir(parents=True, exist_ok=True)
        for entry in staged.iterdir():  # model/ first, recommender.json (the commit) last
            dest = final / entry.name
            if entry.name == STATE_FILE:
                continue
            if dest.is_dir():
                shutil.rmtree(dest)
            shutil.move(str(entry), dest)
        shutil.move(str(staged / STATE_FILE), final / STATE_FILE)
    version = str(json.loads((final / STATE_FILE).read_text())["model_version"])
    return TrainRun(final, version, workers, list((result.metrics or {}).get("history", [])),
                    time.perf_counter() - start)
