"""The data-parallel hook of the training loop (``data_parallel``): what Ray Train's workers use.

The two-worker run itself (real ``torch.distributed`` over Ray) is in
``tests/integration/test_ray.py``; here one process checks the hook's contract.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kgrec.coldstart.train import DataParallel, data_parallel
from tests.shops import shop_graph, small_model


def test_grad_sync_runs_once_per_step_over_every_parameter() -> None:
    calls: list[int] = []

    def count(params: list[Tensor]) -> None:  # a real (identity) sync: a world of one
        calls.append(len(params))

    model = small_model(epochs=3, steps_per_epoch=2)
    with data_parallel(DataParallel(rank=0, world=1, grad_sync=count)):
        model.fit(shop_graph())
    n_params = sum(1 for m in (model.encoder_, model.head_) for _ in m.parameters())
    assert calls == [n_params] * (3 * 2)


def test_outside_the_block_training_is_the_single_process_one() -> None:
    graph = shop_graph()
    with data_parallel(DataParallel(rank=1, world=2, grad_sync=lambda params: None)):
        small_model(epochs=2).fit(graph)  # the block ends here
    a, b = small_model(epochs=2).fit(graph), small_model(epochs=2).fit(graph)
    for p, q in zip(a.head_.parameters(), b.head_.parameters(), strict=True):
        assert torch.equal(p, q)
