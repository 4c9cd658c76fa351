"""The CTR head: pairwise MLP plus a dot-product retrieval tower, trained with one loss.

Why both: the MLP over ``[h_u, h_i, h_u * h_i]`` scores a pair best, but it cannot be searched;
the tower term ``scale * <u, i>`` with L2-normalised ``u = W_u h_u``, ``i = W_i h_i`` can be
(maximum inner product over all items). The logit is their sum, and the tower logit alone gets
its own BCE term too, so retrieval by dot product and re-ranking by the full head agree.
With ``n_pair > 0`` a small "wide" MLP over per-pair graph-path features
(:mod:`kgrec.coldstart.pairs`) adds its logit to the full head (not to the tower).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor, nn

PAIR_CHUNK = 1 << 16  # pairs per block of the per-pair terms in training (CTRHead.indexed)


def _pair_block(uv: Tensor, iv: Tensor, gu: Tensor, gi: Tensor, a: Tensor, b: Tensor,
                w3: Tensor, w2: Tensor, b2: Tensor, tb: Tensor, u: Tensor,
                i: Tensor) -> tuple[Tensor, Tensor]:
    """Tower and MLP logits of the pairs ``(u[k], i[k])`` from per-node parts (see indexed)."""
    # index_select, not x[idx]: its backward is a fast index_add (advanced indexing's
    # gather and accumulate-put were the largest costs of a 1M-interaction epoch)
    tower = (uv.index_select(0, u) * iv.index_select(0, i)).sum(-1) + tb
    cross = (gu.index_select(0, u) * gi.index_select(0, i)) @ w3.T
    z = a.index_select(0, u) + b.index_select(0, i) + cross
    return tower, nn.functional.linear(torch.relu(z), w2, b2).squeeze(-1)


class _PairTerms(torch.autograd.Function):
    """:func:`_pair_block` over blocks of ``chunk`` pairs, keeping no per-pair activation.

    Why: autograd would keep about ten ``(pairs, dim)`` tensors until backward (about 1 GB for
    the ~330k pairs of a 1M-interaction training step), and a checkpoint per block would still
    allocate a zeroed gradient of every per-node input per block. Here backward recomputes
    each block and accumulates into one gradient buffer per input (``index_add_``).
    """

    @staticmethod
    def forward(ctx: Any, uv: Tensor, iv: Tensor, gu: Tensor, gi: Tensor, a: Tensor,
                b: Tensor, w3: Tensor, w2: Tensor, b2: Tensor, tb: Tensor, users: Tensor,
                items: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
        tower = uv.new_empty(len(users))
        mlp = uv.new_empty(len(users))
        for s in range(0, len(users), chunk):
            tower[s:s + chunk], mlp[s:s + chunk] = _pair_block(
                uv, iv, gu, gi, a, b, w3, w2, b2, tb, users[s:s + chunk], items[s:s + chunk])
        ctx.save_for_backward(uv, iv, gu, gi, a, b, w3, w2, users, items)
        ctx.chunk, ctx.b2_shape, ctx.tb_shape = chunk, b2.shape, tb.shape
        return tower, mlp

    @staticmethod
    def backward(ctx: Any, g_tower: Tensor | None,  # type: ignore[override]
                 g_mlp: Tensor | None) -> tuple[Tensor | None, ...]:
        uv, iv, gu, gi, a, b, w3, w2, users, items = ctx.saved_tensors
        d_uv, d_iv, d_gu, d_gi = (torch.zeros_like(x) for x in (uv, iv, gu, gi))
        d_a, d_b, d_w3, d_w2 = (torch.zeros_like(x) for x in (a, b, w3, w2))
        for s in range(0, len(users), ctx.chunk):
            u, i = users[s:s + ctx.chunk], items[s:s + ctx.chunk]
            if g_tower is not None:
                gt = g_tower[s:s + ctx.chunk, None]
                d_uv.index_add_(0, u, gt * iv.index_select(0, i))
                d_iv.index_add_(0, i, gt * uv.index_select(0, u))
            if g_mlp is not None:
                gu_u, gi_i = gu.index_select(0, u), gi.index_select(0, i)
                p = gu_u * gi_i
                z = a.index_select(0, u) + b.index_select(0, i) + p @ w3.T
                gm = g_mlp[s:s + ctx.chunk, None]
                d_w2 += gm.T @ torch.relu(z)
                d_z = (gm * w2) * (z > 0)
                d_a.index_add_(0, u, d_z)
                d_b.index_add_(0, i, d_z)
                d_w3 += d_z.T @ p
                d_p = d_z @ w3
                d_gu.index_add_(0, u, d_p * gi_i)
                d_gi.index_add_(0, i, d_p * gu_u)
        d_b2 = g_mlp.sum().reshape(ctx.b2_shape) if g_mlp is not None else None
        d_tb = g_tower.sum().reshape(ctx.tb_shape) if g_tower is not None else None
        return d_uv, d_iv, d_gu, d_gi, d_a, d_b, d_w3, d_w2, d_b2, d_tb, None, None, None


class CTRHead(nn.Module):
    """``logit(u, i) = scale * <norm(W_u h_u), norm(W_i h_i)> + MLP([h_u, h_i, h_u*h_i]) + b``.

    With ``text_dim > 0`` the inputs go on with ``text_dim`` text columns (see ``HeteroGNN``'s
    ``text_match_dim``) and the tower adds ``text_scale * <t_u, t_i>`` (learned weight): a
    content-match term that is still a dot product, so retrieval stays a maximum inner product.

    Args:
        dim: Size of the GNN representations.
        mlp_hidden: Hidden units of the MLP, default ``dim``.
        init_scale: Initial temperature of the cosine terms, default 10 (learned, log-space).
        text_dim: Trailing text columns of the inputs, default 0 (no text-match term).
        n_pair: Number of pair features fed to the wide MLP, default 0 (no wide part). The
            methods take them as ``pair``; ``pair=None`` gives the deep part alone (training
            uses it for an auxiliary loss, inference must pass the features).
        gate_columns: With ``n_pair``: the pair-feature columns of the 0/1 flags "user has
            history" and "item has history" (and optionally "short history") that select the
            gate (by name, from :func:`kgrec.coldstart.pairs.gate_columns`).
        wide_hidden: Hidden units of the wide MLP, default 16.
        warm_part: Give users with a longer history (not short, not none) a wide part of their
            own at the refit (:meth:`split_parts`), default False (``ModelConfig.ranked_refit``).

    Shapes:
        ``forward(h_u, h_i, pair)``: both ``(n, dim + text_dim)``, ``pair`` ``(n, n_pair)`` or
        None -> ``(logit, tower_logit)``, each ``(n,)``.
    """

    def __init__(self, dim: int, mlp_hidden: int | None = None, init_scale: float = 10.0,
                 text_dim: int = 0, n_pair: int = 0,
                 gate_columns: tuple[int, ...] | None = None, wide_hidden: int = 16,
                 warm_part: bool = False) -> None:
        super().__init__()
        self.n_pair = int(n_pair)
        if n_pair and (gate_columns is None or not all(0 <= c < n_pair for c in gate_columns)):
            raise ValueError(f"a head with {n_pair} pair features needs gate_columns: the "
                             "columns of the user-has-history and item-has-history flags")
        self.gate_columns = tuple(gate_columns) if n_pair and gate_columns else ()
        self.wide = nn.Sequential(nn.Linear(n_pair, wide_hidden), nn.ReLU(),
                                  nn.Linear(wide_hidden, 1)) if n_pair else None
        # plus a linear term: each feature's own weight, learned from every pair
        self.wide_linear = nn.Linear(n_pair, 1, bias=False) if n_pair else None
        # weight of the deep logit per combination of the flags (user has history, item has
        # history[, short history]), one learned logit each: the GNN part can be noise for a
        # cold item or a one-click user, and the model learns how far to trust it; a
        # combination missing from the refit data keeps its jointly trained value
        self.gate = nn.Embedding(2 ** len(self.gate_columns), 1) if n_pair else None
        # with a short-history flag (third gate column): a wide part of its own for users with
        # 1-3 history items, a copy of the main one from the refit on (split_parts), so the
        # few-clicks refit set moves only theirs (one shared part traded warm users for them)
        short = len(self.gate_columns) == 3
        self.short_wide = copy.deepcopy(self.wide) if short else None
        self.short_wide_linear = copy.deepcopy(self.wide_linear) if short else None
        if short:  # saved with the weights: whether the refit has split the two parts
            self.register_buffer("short_split", torch.zeros((), dtype=torch.bool))
        # with ``warm_part``: one more copy for users with a longer history, so the ranked refit
        # set (kgrec.coldstart.refit) moves theirs and not the new users' part
        warm = bool(n_pair) and warm_part
        self.warm_wide = copy.deepcopy(self.wide) if warm else None
        self.warm_wide_linear = copy.deepcopy(self.wide_linear) if warm else None
        if warm:
            self.register_buffer("warm_split", torch.zeros((), dtype=torch.bool))
        self.dim, self.mlp_hidden, self.text_dim = dim, mlp_hidden or dim, text_dim
        self.log_text_scale = nn.Parameter(torch.empty(()))
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
        nn.init.constant_(self.log_text_scale, math.log(self.init_scale))
        nn.init.constant_(self.tower_bias, -math.log(self.init_scale))
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                m.reset_parameters()
        last: nn.Linear = self.mlp[-1]  # type: ignore[assignment]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        if self.wide is not None and self.gate is not None:
            self.wide[0].reset_parameters()  # type: ignore[operator]
            nn.init.zeros_(self.wide[2].weight)  # type: ignore[arg-type]
            nn.init.zeros_(self.wide[2].bias)  # type: ignore[arg-type]
            nn.init.zeros_(self.wide_linear.weight)  # type: ignore[union-attr]
            nn.init.constant_(self.gate.weight, 2.0)  # starts near 1: the deep part leads
            self.split_parts()  # the short-history and warm parts start as the main one ...
            for name in ("short_split", "warm_split"):  # ... serving nobody until the refit
                if hasattr(self, name):
                    self.get_buffer(name).fill_(False)

    def zero_wide_inputs(self, n_last: int) -> None:
        """Zero every wide part's weights on the last ``n_last`` pair features, so features
        that are held at 0 while training jointly start from no influence at the refit."""
        with torch.no_grad():
            for wide, linear in ((self.wide, self.wide_linear),
                                 (self.short_wide, self.short_wide_linear),
                                 (self.warm_wide, self.warm_wide_linear)):
                for layer in (None if wide is None else wide[0], linear):
                    if isinstance(layer, nn.Linear):
                        layer.weight[:, -n_last:] = 0

    def combine(self, deep: Tensor, pair: Tensor | None) -> Tensor:
        """Full logit from the deep logit and ``pair`` features (``(..., n_pair)``):
        ``sigmoid(gate(flags)) * deep + wide_logit(pair)``; the deep logit
        itself without a wide part or without features."""
        if self.wide is None or self.gate is None or pair is None:
            return deep
        flags = pair[..., list(self.gate_columns)].round().long()
        bits = 2 ** torch.arange(len(self.gate_columns) - 1, -1, -1, device=flags.device)
        gate = torch.sigmoid(self.gate((flags * bits).sum(-1))).squeeze(-1)
        return gate * deep + self.wide_logit(pair)

    def wide_parameters(self) -> list[nn.Parameter]:
        """The parameters of the wide part(s) and the gate (empty without a wide part)."""
        return [p for m in (self.wide, self.wide_linear, self.gate) if m is not None
                for p in m.parameters()] + self.history_parameters()

    def history_parameters(self) -> list[nn.Parameter]:
        """The parameters of the wide parts of users with a history (short and longer ones;
        empty without them): a subset of :meth:`wide_parameters`."""
        return [p for m in (self.short_wide, self.short_wide_linear, self.warm_wide,
                            self.warm_wide_linear) if m is not None for p in m.parameters()]

    def split_parts(self) -> None:
        """From now on, users with a short history (and, with ``warm_part``, users with a
        longer one) get a wide part of their own, each starting as a copy of the main one,
        which then serves users without history (a no-op without those parts)."""
        for part, linear, flag in ((self.short_wide, self.short_wide_linear, "short_split"),
                                   (self.warm_wide, self.warm_wide_linear, "warm_split")):
            if part is None or linear is None:
                continue
            assert self.wide is not None and self.wide_linear is not None
            part.load_state_dict(self.wide.state_dict())
            linear.load_state_dict(self.wide_linear.state_dict())
            self.get_buffer(flag).fill_(True)

    def wide_logit(self, pair: Tensor) -> Tensor:
        """The wide part alone: ``linear(pair) + MLP(pair)``, ``(..., n_pair)`` -> ``(...)``
        (after :meth:`split_parts`, the short-history part's for short histories and the
        warm part's for longer ones). Each row goes through its own part only: the refit's
        ranked set holds over a million rows, and three parts on every row tripled its cost."""
        assert self.wide is not None and self.wide_linear is not None
        parts = [(self.wide_linear, self.wide)]
        flat = pair.reshape(-1, pair.shape[-1])
        part = torch.zeros(len(flat), dtype=torch.long, device=pair.device)
        short_rows = None
        if self.short_wide is not None and self.short_wide_linear is not None and \
                bool(self.get_buffer("short_split")):
            short_rows = flat[:, self.gate_columns[2]] > 0.5
            part[short_rows] = len(parts)
            parts.append((self.short_wide_linear, self.short_wide))
        if self.warm_wide is not None and self.warm_wide_linear is not None and \
                bool(self.get_buffer("warm_split")):
            rows = flat[:, self.gate_columns[0]] > 0.5  # the user has history ...
            if short_rows is not None:
                rows = rows & ~short_rows  # ... and not a short one
            part[rows] = len(parts)
            parts.append((self.warm_wide_linear, self.warm_wide))
        if len(parts) == 1:
            return (self.wide_linear(pair) + self.wide(pair)).squeeze(-1)
        out = flat.new_zeros(len(flat))
        for k, (linear, mlp) in enumerate(parts):
            rows = (part == k).nonzero().squeeze(1)
            if len(rows):
                x = flat.index_select(0, rows)
                out = out.index_copy(0, rows, (linear(x) + mlp(x)).squeeze(-1))
        return out.reshape(pair.shape[:-1])

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(dim={self.dim}, mlp_hidden={self.mlp_hidden})"

    def _vectors(self, h: Tensor, tower: nn.Linear) -> Tensor:
        g = nn.functional.normalize(tower(h[:, :self.dim]), dim=-1) * self.log_scale.exp().sqrt()
        parts = [g]
        start = self.dim
        if self.text_dim:
            t = h[:, start:start + self.text_dim]
            parts.append(nn.functional.normalize(t, dim=-1) * self.log_text_scale.exp().sqrt())
        return torch.cat(parts, dim=-1) if len(parts) > 1 else g

    def user_vectors(self, h_u: Tensor) -> Tensor:
        """Retrieval vectors of users: ``<user_vectors(u), item_vectors(i)> + bias`` is the
        tower logit. Shape ``(n, dim + text_dim)``."""
        return self._vectors(h_u, self.user_tower)

    def item_vectors(self, h_i: Tensor) -> Tensor:
        """Retrieval vectors of items, ``(n, dim + text_dim)`` (see :meth:`user_vectors`)."""
        return self._vectors(h_i, self.item_tower)

    def logit_matrix(self, h_u: Tensor, h_i: Tensor, pair: Tensor | None = None) -> Tensor:
        """Logits of every ``(h_u[r], h_i[c])`` pair, ``(len(h_u), len(h_i))``, unmaterialised.

        Same arithmetic as :meth:`forward` (up to float summation order): the tower is a matrix
        product, and the MLP's first layer splits into a user part, an item part and the
        bilinear ``g_u * g_i`` part, computed as one matrix product. Memory is about
        ``len(h_u) * len(h_i) * mlp_hidden`` floats. ``pair``: ``(len(h_u), len(h_i), n_pair)``.
        """
        d = self.dim
        tower = self.user_vectors(h_u) @ self.item_vectors(h_i).T + self.tower_bias
        lin1: nn.Linear = self.mlp[0]  # type: ignore[assignment]
        lin2: nn.Linear = self.mlp[2]  # type: ignore[assignment]
        w = lin1.weight
        gu, gi = h_u[:, :d], h_i[:, :d]
        a = gu @ w[:, :d].T + lin1.bias  # (b, H)
        b = gi @ w[:, d:2 * d].T  # (C, H)
        n_h = w.shape[0]
        cross = (gu[:, None, :] * w[None, :, 2 * d:]).reshape(-1, d) @ gi.T  # (b*H, C)
        z = torch.relu(cross.reshape(len(gu), n_h, -1) + (a[:, :, None] + b.T[None, :, :]))
        mlp = torch.einsum("bhc,h->bc", z, lin2.weight[0]) + lin2.bias[0]
        return self.combine(tower + mlp, pair)

    def indexed(self, h_users: Tensor, h_items: Tensor, users: Tensor,
                items: Tensor, pair: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``forward(h_users[users], h_items[items])`` without per-pair copies of the inputs.

        Tower vectors and the user/item parts of the MLP's first layer are computed once per
        node and gathered; only the bilinear part is per pair. Equal to :meth:`forward` up to
        float summation order, and much cheaper when pairs outnumber nodes (training).
        With autograd on, no per-pair activation is kept for backward (see ``_PairTerms``).
        """
        d = self.dim
        uv, iv = self.user_vectors(h_users), self.item_vectors(h_items)
        lin1: nn.Linear = self.mlp[0]  # type: ignore[assignment]
        lin2: nn.Linear = self.mlp[2]  # type: ignore[assignment]
        w = lin1.weight
        gu, gi = h_users[:, :d], h_items[:, :d]
        a = gu @ w[:, :d].T + lin1.bias
        b = gi @ w[:, d:2 * d].T
        # per-pair part: with autograd, in blocks recomputed in backward (memory, see _PairTerms)
        args = (uv, iv, gu, gi, a, b, w[:, 2 * d:], lin2.weight, lin2.bias, self.tower_bias)
        tower, mlp = (_PairTerms.apply(*args, users, items, PAIR_CHUNK)
                      if torch.is_grad_enabled() else _pair_block(*args, users, items))
        return self.combine(tower + mlp, pair), tower

    def forward(self, h_u: Tensor, h_i: Tensor,
                pair: Tensor | None = None) -> tuple[Tensor, Tensor]:
        tower = (self.user_vectors(h_u) * self.item_vectors(h_i)).sum(-1) + self.tower_bias
        gu, gi = h_u[:, :self.dim], h_i[:, :self.dim]
        mlp = self.mlp(torch.cat([gu, gi, gu * gi], dim=-1)).squeeze(-1)
        return self.combine(tower + mlp, pair), tower
