"""Inductive inference helpers: the k-hop subgraph that computes a few nodes exactly.

Why: folding a new item (or user) into a served model should not recompute every node. With
``L`` message-passing layers a node's representation depends only on its ``L``-hop
in-neighbourhood, so running the GNN on the subgraph induced by that neighbourhood gives the
same vectors (up to float summation order) as running it on the whole graph.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from kgrec.coldstart.features import (
    INTERACTED,
    ITEM,
    NODE_TYPES,
    REV_INTERACTED,
    USER,
    GraphTensors,
    with_interactions,
)
from kgrec.coldstart.pairs import PairInputs


@dataclass
class NodeEmbeddings:
    """User and item representations from :meth:`ColdStartModel.transform`.

    Rows line up with ``user_ids`` / ``item_ids`` (external ids). Pass row positions of this
    object (not graph indices) to ``predict_proba`` and friends.

    ``pairs`` holds what the pair (graph-path) features need, row-aligned too (``None`` for a
    model without them). Combine two transforms with :meth:`with_users` / :meth:`with_items`,
    which keep it aligned.

    Shapes:
        ``user``: ``(n_users, hidden_dim)``; ``item``: ``(n_items, hidden_dim)``.
    """

    user: Tensor
    item: Tensor
    user_ids: np.ndarray
    item_ids: np.ndarray
    pairs: PairInputs | None = None

    def with_users(self, other: NodeEmbeddings) -> NodeEmbeddings:
        """These users followed by ``other``'s; the items stay this object's."""
        return replace(self, user=torch.cat([self.user, other.user]),
                       user_ids=np.concatenate([self.user_ids, other.user_ids]),
                       pairs=None if self.pairs is None or other.pairs is None
                       else self.pairs.with_users(other.pairs))

    def with_items(self, other: NodeEmbeddings) -> NodeEmbeddings:
        """These items followed by ``other``'s; the users stay this object's."""
        return replace(self, item=torch.cat([self.item, other.item]),
                       item_ids=np.concatenate([self.item_ids, other.item_ids]),
                       pairs=None if self.pairs is None or other.pairs is None
                       else self.pairs.with_items(other.pairs))

    def __repr__(self) -> str:
        return (f"NodeEmbeddings(users={len(self.user_ids)}, items={len(self.item_ids)}, "
                f"dim={self.user.shape[1]})")


def hop_masks(tensors: GraphTensors, seeds: dict[str, Tensor], hops: int, *,
              incoming: bool) -> dict[str, Tensor]:
    """Boolean masks per type of the nodes within ``hops`` hops of ``seeds``: against the
    edges (the nodes a seed reads from, ``incoming``) or along them (the nodes it reaches)."""
    edges = with_interactions(tensors, tensors.pos)
    inside = {t: torch.zeros(tensors.num_nodes[t], dtype=torch.bool) for t in NODE_TYPES}
    for t, idx in seeds.items():
        inside[t][idx] = True
    for _ in range(hops):
        grown = {t: m.clone() for t, m in inside.items()}
        for (src, _rel, dst), ei in edges.items():
            if not ei.shape[1]:
                continue
            if incoming:
                grown[src][ei[0][inside[dst][ei[1]]]] = True
            else:
                grown[dst][ei[1][inside[src][ei[0]]]] = True
        inside = grown
    return inside


def khop_nodes(tensors: GraphTensors, targets: dict[str, Tensor],
               num_layers: int) -> dict[str, Tensor]:
    """Sorted node indices per type within ``num_layers`` incoming hops of ``targets``."""
    return {t: torch.nonzero(m).squeeze(1)
            for t, m in hop_masks(tensors, targets, num_layers, incoming=True).items()}


def induced_subgraph(tensors: GraphTensors, keep: dict[str, Tensor]) -> GraphTensors:
    """The part of ``tensors`` on the nodes ``keep[t]``, re-indexed 0..len-1 per type."""
    remap = {}
    for t in NODE_TYPES:
        r = torch.full((tensors.num_nodes[t],), -1, dtype=torch.long)
        r[keep[t]] = torch.arange(len(keep[t]))
        remap[t] = r

    def sub(et: tuple[str, str, str], ei: Tensor) -> Tensor:
        if ei.shape[1] == 0:
            return ei
        s, d = remap[et[0]][ei[0]], remap[et[2]][ei[1]]
        ok = (s >= 0) & (d >= 0)
        return torch.stack([s[ok], d[ok]])

    pos_ok = sub(INTERACTED, tensors.pos)
    mask_pos = (remap[USER][tensors.pos[0]] >= 0) & (remap[ITEM][tensors.pos[1]] >= 0) \
        if tensors.pos.shape[1] else torch.zeros(0, dtype=torch.bool)
    return GraphTensors(
        num_nodes={t: len(keep[t]) for t in NODE_TYPES},
        item_x=tensors.item_x[keep[ITEM]],
        shared_index={t: v[keep[t]] for t, v in tensors.shared_index.items()},
        edges={et: sub(et, ei) for et, ei in tensors.edges.items()
               if et not in (INTERACTED, REV_INTERACTED)},
        pos=pos_ok,
        pos_time=tensors.pos_time[mask_pos],
        impressions=torch.zeros((2, 0), dtype=torch.long),
    )


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` torch CPU threads inside (None: leave torch's setting); restored after.

    Concurrency (the service runs requests in parallel threads): with torch's OpenMP backend
    the count is per thread (``omp_set_num_threads`` sets the calling thread's count), plus one
    process-wide default that threads pick up the first time they use torch. So this saves and
    restores the *calling* thread's count, and touches nothing when the count is already ``n``:
    a request thread then never changes another's count nor, in the usual case, the default a
    new pool thread starts from (measured; ``tests/unit/coldstart/test_inference.py``).
    """
    if n is None or torch.get_num_threads() == int(n):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_rows(idx: Sequence[int] | np.ndarray | None, n: int) -> Tensor:
    """Row indices as a tensor (None: all ``n`` rows).

    Raises:
        IndexError: an index outside ``[0, n)``.
    """
    if idx is None:
        return torch.arange(n)
    t = torch.as_tensor(np.asarray(idx, dtype=np.int64))
    if len(t) and (t.min() < 0 or t.max() >= n):
        raise IndexError(f"row indices must be in [0, {n}); got {int(t.min())}..{int(t.max())}")
    return t
