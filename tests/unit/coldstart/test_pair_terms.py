"""CTRHead.indexed's blockwise per-pair terms with a hand-written backward (memory)."""

from __future__ import annotations

import pytest
import torch

from kgrec.coldstart import CTRHead
from kgrec.coldstart import heads as heads_module


def _head_and_inputs() -> tuple[CTRHead, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    head = CTRHead(8, text_dim=5).double()
    torch.nn.init.normal_(head.mlp[2].weight)  # starts at zero; make the MLP count
    hu = torch.randn(6, 13, dtype=torch.double, requires_grad=True)
    hi = torch.randn(7, 13, dtype=torch.double, requires_grad=True)
    u = torch.tensor([0, 5, 2, 2, 1, 0, 3])  # repeats: gradients accumulate per node
    i = torch.tensor([6, 0, 3, 3, 3, 6, 1])
    return head, hu, hi, u, i


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_blockwise_indexed_matches_pairwise_forward_and_gradients(
        chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heads_module, "PAIR_CHUNK", chunk)
    head, hu, hi, u, i = _head_and_inputs()
    weights = torch.linspace(-1, 1, len(u), dtype=torch.double)

    def grads(logit: torch.Tensor, tower: torch.Tensor) -> list[torch.Tensor]:
        loss = (weights * logit).sum() + 0.5 * (weights * tower).pow(2).sum()
        params = [hu, hi, *head.parameters()]
        got = torch.autograd.grad(loss, params, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(params, got, strict=True)]

    want_logit, want_tower = head(hu[u], hi[i])  # plain autograd reference
    got_logit, got_tower = head.indexed(hu, hi, u, i)
    torch.testing.assert_close(got_logit, want_logit)
    torch.testing.assert_close(got_tower, want_tower)
    for got, want in zip(grads(got_logit, got_tower), grads(want_logit, want_tower),
                         strict=True):
        torch.testing.assert_close(got, want)


def test_pair_terms_gradcheck() -> None:
    head, hu, hi, u, i = _head_and_inputs()
    d = head.dim
    lin1, lin2 = head.mlp[0], head.mlp[2]

    def f(hu: torch.Tensor, hi: torch.Tensor, w: torch.Tensor, w2: torch.Tensor,
          b2: torch.Tensor, tb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gu, gi = hu[:, :d], hi[:, :d]
        return heads_module._PairTerms.apply(
            hu, hi, gu, gi, gu @ w[:, :d].T, gi @ w[:, d:2 * d].T, w[:, 2 * d:], w2, b2, tb,
            u, i, 2)

    inputs = (hu, hi, lin1.weight.detach().clone().requires_grad_(),
              lin2.weight.detach().clone().requires_grad_(),
              lin2.bias.detach().clone().requires_grad_(),
              head.tower_bias.detach().clone().requires_grad_())
    assert torch.autograd.gradcheck(f, inputs)


def test_no_grad_path_is_the_plain_block() -> None:
    head, hu, hi, u, i = _head_and_inputs()
    with torch.no_grad():
        want = head(hu[u], hi[i])
        got = head.indexed(hu, hi, u, i)
    torch.testing.assert_close(got, want)
