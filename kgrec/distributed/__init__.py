"""Ray as kgrec's distributed engine (the optional extra ``ray``: ``pip install 'kgrec[ray]'``).

- :func:`ray_candidates`: the nightly candidate job over user shards with Ray Data (one Parquet
  part per shard, ``CANDIDATE`` edges per shard), the same rows as the single-process job.
- :func:`ray_train`: Ray Train's ``TorchTrainer`` running kgrec's training loop under PyTorch
  DDP (data parallel: every worker holds the whole graph; the supervision pairs are split).

Above ``ranking`` and ``coldstart`` (it imports them; they never import it), below ``cli``.
Ray itself is imported only inside these functions, so the package imports without Ray.
"""

from kgrec.distributed.candidates import ray_candidates
from kgrec.distributed.cluster import StoreSpec, ray_session
from kgrec.distributed.train import ray_train

__all__ = ["StoreSpec", "ray_candidates", "ray_session", "ray_train"]
