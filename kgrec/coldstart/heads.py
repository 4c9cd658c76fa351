"""The CTR head: pairwise MLP plus a dot-product retrieval tower, trained with one loss.

Why both: the MLP over ``[h_u, h_i, h_u * h_i]`` scores a pair best, but it cannot be searched;
the tower term ``scale * <u, i>`` with L2-normalised ``u = W_u h_u``, ``i = W_i h_i`` can be
(maximum inner product over all items). The logit is their sum, and the tower logit alone gets
its own BCE term too, so retrieval by dot product and re-ranking by the full head agree.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class CTRHead(nn.Module):
    """``logit(u, i) = scale * <norm(W_u h_u), norm(W_i h_i)> + MLP([h_u, h_i, h_u*h_i]) + b``.

    Args:
        dim: Size of the GNN representations.
        mlp_hidden: Hidden units of the MLP, default ``dim``.
        init_scale: Initial temperature of the cosine term, default 10 (learned, log-space).

    Shapes:
        ``forward(h_u, h_i)``: both ``(n, dim)`` -> ``(logit, tower_logit)``, each ``(n,)``.
    """

    def __init__(self, dim: int, mlp_hidden: int | None = None, init_scale: float = 10.0) -> None:
        super().__init__()
        self.dim, self.mlp_hidden = dim, mlp_hidden or dim
        self.init_scale = init_scale
        self.user_tower = nn.Linear(dim, dim)
        self.item_tower = nn.Linear(dim, dim)
        self.log_scale = nn.Parameter(torch.empty(()))
        self.tower_bias = nn.Parameter(torch.empty(()))
        self.mlp = nn.Sequential(nn.Linear(3 * dim, self.mlp_hidden), nn.ReLU(),
                                 nn.Linear(self.mlp_hidden, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every weight; the MLP output starts at 0 so the tower leads early."""
        self.user_tower.reset_parameters()
        self.item_tower.reset_parameters()
        nn.init.constant_(self.log_scale, math.log(self.init_scale))
        nn.init.constant_(self.tower_bias, -math.log(self.init_scale))
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                m.reset_parameters()
        last: nn.Linear = self.mlp[-1]  # type: ignore[assignment]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(dim={self.dim}, mlp_hidden={self.mlp_hidden})"

    def user_vectors(self, h_u: Tensor) -> Tensor:
        """Unit retrieval vectors of users, ``(n, dim)``."""
        return nn.functional.normalize(self.user_tower(h_u), dim=-1)

    def item_vectors(self, h_i: Tensor) -> Tensor:
        """Unit retrieval vectors of items, ``(n, dim)``."""
        return nn.functional.normalize(self.item_tower(h_i), dim=-1)

    def tower_logits(self, u: Tensor, i: Tensor) -> Tensor:
        """Retrieval logits for all pairs of unit vectors ``u`` ``(U, d)`` x ``i`` ``(I, d)``."""
        return self.log_scale.exp() * (u @ i.T) + self.tower_bias

    def forward(self, h_u: Tensor, h_i: Tensor) -> tuple[Tensor, Tensor]:
        tower = self.log_scale.exp() * (self.user_vectors(h_u) * self.item_vectors(h_i)).sum(-1) \
            + self.tower_bias
        mlp = self.mlp(torch.cat([h_u, h_i, h_u * h_i], dim=-1)).squeeze(-1)
        return tower + mlp, tower
