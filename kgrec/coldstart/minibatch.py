"""Training and inference with memory bounded by the batch, not the graph (``batch_mode``).

Why: full batch runs the GNN over every node each step, so its activations (and autograd's
copies of them) grow with the graph: 3.0 GB at 1M interactions, ~30 GB projected at 10M.

* **Training** -- each step scores a batch of supervision pairs (``batch_size`` positives,
  their negatives) with node states computed on the pairs' sampled ``num_layers``-hop
  in-neighbourhoods only: up to ``fanout`` in-neighbours per node, edge type and hop, drawn
  from per-type CSR tables built once per epoch (:class:`NeighbourSampler`). This is PyG's
  ``NeighborLoader`` scheme written in vectorised torch, because ``NeighborLoader`` needs
  ``pyg-lib`` or ``torch-sparse``, which have no wheels for this torch on PyPI. The GNN then
  runs unchanged on the small subgraph, so any conv (SAGE/GAT/HGT) trains this way.
  Cold-start edge dropout, shared-id dropout and matched cold negatives are kept, decided per
  node by a hash of (node, step salt) so nothing per step touches every node or edge.
  Pair features read a per-epoch history table, narrowed to the batch's users and items with
  the step's dropped users/items hidden (as full batch builds them from the kept edges).
* **Inference** -- :func:`encode_graph` computes all nodes layer by layer in node chunks: each
  chunk aggregates its in-neighbours from the previous layer's full state matrix, so peak
  memory is O(nodes x hidden) + O(chunk edges), never O(all edges x hidden). HGT, whose layer is
  one module over all types, falls back to the whole-graph forward.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from functools import partial
from typing import Any

import torch
from torch import Tensor

from kgrec.coldstart.config import ModelConfig
from kgrec.coldstart.features import (
    INTERACTED,
    ITEM,
    REV_INTERACTED,
    USER,
    EdgeType,
    GraphTensors,
    with_interactions,
)
from kgrec.coldstart.heads import CTRHead
from kgrec.coldstart.model import HeteroGNN, module_device, to_torch_csr_tensor
from kgrec.coldstart.pairs import PairInputs, csr_expand, pair_features
from kgrec.coldstart.sampling import NegativeSampler
from kgrec.coldstart.steps import draw_pairs, drop_ids, pair_loss, shard_batch

INFERENCE_CHUNK = 1 << 16  # destination nodes per chunk in layer-wise inference
_COLD_TRIES = 16  # candidates per matched cold negative (rejection sampling)


def hashed_uniform(idx: Tensor, salt: int) -> Tensor:
    """A uniform [0, 1) number per index, fixed for one ``salt`` (splitmix64-style mixing).

    Why: a step's node-level decisions (dropout) must agree wherever a node turns up in the
    sampled subgraph, without drawing a number for every node of the graph each step.
    """
    x = idx.to(torch.int64) * 0x5851F42D4C957F2D + salt  # int64 arithmetic wraps
    x = x ^ (x >> 31)
    x = x * 0x2545F4914F6CDD1D
    x = x ^ (x >> 29)
    return ((x >> 11) & ((1 << 52) - 1)).to(torch.float64) / float(1 << 52)


@dataclasses.dataclass
class _Csr:
    """In-neighbours of one edge type, grouped by destination."""

    ptr: Tensor  # (n_dst + 1,)
    src: Tensor  # (E,) sources, sorted by destination
    dst: Tensor  # (E,) destinations, sorted


def _by_destination(edge_index: Tensor, n_dst: int) -> _Csr:
    order = torch.argsort(edge_index[1], stable=True)
    dst = edge_index[1][order]
    ptr = torch.zeros(n_dst + 1, dtype=torch.long, device=edge_index.device)
    ptr[1:] = torch.cumsum(torch.bincount(dst, minlength=n_dst), 0)
    return _Csr(ptr, edge_index[0][order], dst)


def _dedupe(edges: Tensor, n_dst: int) -> Tensor:
    if edges.shape[1] == 0:
        return edges
    key = torch.unique(edges[0] * n_dst + edges[1])
    return torch.stack([key // n_dst, key % n_dst])


class NeighbourSampler:
    """Up to ``fanout`` sampled in-neighbours per node, edge type and hop, ``hops`` hops.

    A node with at most ``fanout`` in-neighbours of a type keeps all of them; one with more
    gets ``fanout`` drawn uniformly with replacement (duplicates merged).

    Args:
        edges: ``{(src, rel, dst): (2, E)}`` global indices (message edges both ways).
        num_nodes: Nodes per type.
        fanout: In-neighbours per node, edge type and hop.
        hops: Hops (the GNN's layers).
    """

    def __init__(self, edges: dict[EdgeType, Tensor], num_nodes: dict[str, int], fanout: int,
                 hops: int) -> None:
        self.num_nodes, self.fanout, self.hops = num_nodes, fanout, hops
        self.csr = {et: _by_destination(ei, num_nodes[et[2]]) for et, ei in edges.items()}

    def __repr__(self) -> str:
        return (f"NeighbourSampler(edge_types={len(self.csr)}, fanout={self.fanout}, "
                f"hops={self.hops})")

    def degree(self, et: EdgeType, nodes: Tensor) -> Tensor:
        ptr = self.csr[et].ptr
        return ptr[nodes + 1] - ptr[nodes]

    def _draw(self, et: EdgeType, nodes: Tensor, gen: torch.Generator) -> Tensor:
        csr = self.csr[et]
        deg = self.degree(et, nodes)
        k = deg.clamp(max=self.fanout)
        dst = torch.repeat_interleave(nodes, k)
        deg_e = torch.repeat_interleave(deg, k)
        local = torch.arange(len(dst)) - torch.repeat_interleave(torch.cumsum(k, 0) - k, k)
        rand = (torch.rand(len(dst), generator=gen, dtype=torch.float64) * deg_e).long()
        off = torch.where(deg_e <= self.fanout, local, rand.clamp(max=deg_e - 1))
        return torch.stack([csr.src[csr.ptr[dst] + off], dst])

    def sample(self, seeds: dict[str, Tensor], gen: torch.Generator,
               drop: NodeDropout | None = None
               ) -> tuple[dict[str, Tensor], dict[EdgeType, Tensor], dict[str, Tensor]]:
        """``(nodes, edges, depth)``: sorted unique global node indices per type (the seeds
        among them), the sampled edges per type in *local* indices (positions in ``nodes``),
        and each node's hop from the seeds (0 for a seed; :func:`trimmed_forward`).

        ``drop``: interaction edges (both ways) with a dropped user or item are left out
        before they can widen the neighbourhood (cold-start edge dropout).
        """
        found = {t: [v] for t, v in seeds.items()}
        hop_of = {t: [torch.zeros(len(v), dtype=torch.long)] for t, v in seeds.items()}
        frontier = {t: torch.unique(v) for t, v in seeds.items()}
        picked: dict[EdgeType, list[Tensor]] = {et: [] for et in self.csr}
        for hop in range(1, self.hops + 1):
            new: dict[str, list[Tensor]] = {}
            for et in self.csr:
                nodes = frontier.get(et[2])
                if nodes is None or len(nodes) == 0:
                    continue
                e = self._draw(et, nodes, gen)
                if drop is not None and et in (INTERACTED, REV_INTERACTED):
                    user, item = (e[0], e[1]) if et == INTERACTED else (e[1], e[0])
                    e = e[:, ~(drop.dropped(USER, user) | drop.dropped(ITEM, item))]
                picked[et].append(e)
                new.setdefault(et[0], []).append(e[0])
            frontier = {}
            for t, parts in new.items():
                cand = torch.unique(torch.cat(parts))
                seen = torch.cat(found[t]) if t in found else cand[:0]
                frontier[t] = cand[~torch.isin(cand, seen)]
                found.setdefault(t, []).append(frontier[t])
                hop_of.setdefault(t, []).append(torch.full((len(frontier[t]),), hop))
        nodes, depth = {}, {}
        for t in self.num_nodes:
            if t not in found:
                nodes[t] = depth[t] = torch.zeros(0, dtype=torch.long)
                continue
            nodes[t], inv = torch.unique(torch.cat(found[t]), return_inverse=True)
            depth[t] = torch.full((len(nodes[t]),), self.hops).scatter_reduce_(
                0, inv, torch.cat(hop_of[t]), "amin")
        local = {}
        for et, parts in picked.items():
            e = _dedupe(torch.cat(parts, dim=1), self.num_nodes[et[2]]) if parts \
                else torch.zeros((2, 0), dtype=torch.long)
            local[et] = torch.stack([torch.searchsorted(nodes[et[0]], e[0]),
                                     torch.searchsorted(nodes[et[2]], e[1])])
        return nodes, local, depth


class NodeDropout:
    """One step's cold-start dropout: which users/items have every interaction edge hidden.

    Decided by :func:`hashed_uniform` of (node, a salt drawn per step), so the same node gets
    the same decision wherever it appears, at a cost proportional to the nodes asked about.
    """

    def __init__(self, user_share: float, item_share: float, gen: torch.Generator) -> None:
        self.share = {USER: user_share, ITEM: item_share}
        self.salt = {t: int(torch.randint(1 << 62, (1,), generator=gen)) for t in (USER, ITEM)}

    def __repr__(self) -> str:
        return f"NodeDropout(user_share={self.share[USER]}, item_share={self.share[ITEM]})"

    def dropped(self, node_type: str, idx: Tensor) -> Tensor:
        if self.share[node_type] <= 0:
            return torch.zeros(len(idx), dtype=torch.bool)
        return hashed_uniform(idx, self.salt[node_type]) < self.share[node_type]


def step_pair_inputs(inputs: PairInputs, users: Tensor, items: Tensor, drop: NodeDropout,
                     user_share: float) -> PairInputs:
    """The pair inputs of ``users`` x ``items`` (rows in that order), as full batch builds them
    from the step's kept edges: histories lose dropped items, dropped users have none, and a
    dropped item's degree is 0 (the rest shrink by the expected share of dropped users)."""
    sub = inputs.select(users, items)
    rows, flat = csr_expand(sub.hist_ptr, torch.arange(len(users)))
    hist = sub.hist_idx[flat]
    keep = ~drop.dropped(ITEM, hist) & ~drop.dropped(USER, users)[rows]
    ptr = torch.zeros(len(users) + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(torch.bincount(rows[keep], minlength=len(users)), 0)
    degree = torch.log1p(torch.expm1(sub.item_degree) * (1 - user_share))
    degree = torch.where(drop.dropped(ITEM, items), 0.0, degree)
    return dataclasses.replace(sub, hist_ptr=ptr, hist_idx=hist[keep], item_degree=degree)


@dataclasses.dataclass
class MiniBatchEpoch:
    """What every step of one mini-batch epoch reads."""

    sampler: NeighbourSampler
    msg_degree: Tensor  # (n_items,) message edges per item this epoch
    has_pos: Tensor  # (n_items,) bool: the item has training positives
    pos_items: Tensor  # nonzero(has_pos)
    pairs: PairInputs | None  # pair inputs on this epoch's message edges

    def edgeless(self, items: Tensor, drop: NodeDropout) -> Tensor:
        """Whether each of ``items`` has no kept interaction edge this step: dropped, no
        message edge, or (for items with at most ``fanout`` of them) all from dropped users."""
        deg = self.msg_degree[items]
        small = torch.nonzero((deg > 0) & (deg <= self.sampler.fanout)).squeeze(1)
        csr = self.sampler.csr[INTERACTED]
        rows, flat = csr_expand(csr.ptr, items[small])
        alive = torch.bincount(rows[~drop.dropped(USER, csr.src[flat])], minlength=len(small))
        out = drop.dropped(ITEM, items) | (deg == 0)
        out[small] |= alive == 0
        return out

    def matched_cold(self, negs: Tensor, pos_items: Tensor, drop: NodeDropout,
                     gen: torch.Generator) -> Tensor:
        """``match_cold_negatives`` without scanning every item: a negative of a positive on
        an edgeless training item becomes the first edgeless one of ``_COLD_TRIES`` uniform
        training items (kept as drawn when none is, probability ~0.7^16)."""
        rows = torch.nonzero(self.edgeless(pos_items, drop)).squeeze(1)
        if len(rows) == 0 or len(self.pos_items) < 2:
            return negs
        cand = self.pos_items[torch.randint(len(self.pos_items), (len(rows), _COLD_TRIES),
                                            generator=gen)]
        ok = self.edgeless(cand.reshape(-1), drop).reshape(cand.shape)
        ok &= cand != pos_items[rows, None]
        first = torch.argmax(ok.to(torch.int8), dim=1)
        hit = ok.any(dim=1)
        out = negs.clone()
        out[rows[hit]] = cand[hit, first[hit]]
        return out


def epoch_steps(n_sup: int, cfg: ModelConfig) -> int:
    """Steps of a mini-batch epoch: at least ``steps_per_epoch``, at most ``batch_size``
    supervision positives each."""
    return max(cfg.steps_per_epoch, math.ceil(n_sup / cfg.batch_size))


def minibatch_losses(encoder: HeteroGNN, head: CTRHead, tensors: GraphTensors, train_pos: Tensor,
                     sup_idx: Tensor, epoch: MiniBatchEpoch, cfg: ModelConfig,
                     neg_sampler: NegativeSampler, gen: torch.Generator,
                     shard: tuple[int, int] | None = None) -> Iterator[Tensor]:
    """One epoch's step losses (the caller steps the optimiser after each), each on its pairs'
    sampled neighbourhoods; the same pairs and loss as full batch (:mod:`.steps`).
    ``shard`` ``(rank, world)``: this worker's share of each batch (data parallel).

    Sampling, dropout and pair features stay on the CPU (``tensors`` and ``epoch`` are CPU
    tensors); only the GNN's inputs (item features, ids, sampled edges) move to the modules'
    device, the item features once per epoch."""
    dev = module_device(encoder)
    item_x = tensors.item_x.to(dev)
    for batch in sup_idx.chunk(epoch_steps(len(sup_idx), cfg)):
        batch = shard_batch(batch, shard)
        drop = NodeDropout(cfg.user_edge_dropout, cfg.item_edge_dropout, gen)
        recast = partial(epoch.matched_cold, drop=drop, gen=gen) \
            if cfg.cold_matched_negatives else None
        u, i, y = draw_pairs(train_pos[:, batch], cfg, neg_sampler, tensors.impressions, gen,
                             recast)
        seeds = {USER: torch.unique(u), ITEM: torch.unique(i)}
        nodes, edges, depth = epoch.sampler.sample(seeds, gen, drop)
        shared = drop_ids({t: v[nodes[t]] for t, v in tensors.shared_index.items()},
                          cfg.shared_id_dropout, gen)
        on = {et: e.to(dev) for et, e in edges.items()}
        # a user's items are its sampled in-neighbours (rev edges): its mean text vector too
        h = trimmed_forward(encoder, item_x[nodes[ITEM].to(dev)],
                            {t: v.to(dev) for t, v in shared.items()}, len(nodes[USER]), on,
                            {t: d.to(dev) for t, d in depth.items()},
                            text_edges=on[REV_INTERACTED].flip(0))
        u_loc = torch.searchsorted(nodes[USER], u)
        i_loc = torch.searchsorted(nodes[ITEM], i)
        feats = None
        if epoch.pairs is not None:
            su, si = seeds[USER], seeds[ITEM]
            inputs = step_pair_inputs(epoch.pairs, su, si, drop, cfg.user_edge_dropout)
            feats = pair_features(inputs, torch.searchsorted(su, u), torch.searchsorted(si, i))
        yield pair_loss(head, cfg, h[USER], h[ITEM], u_loc, i_loc, y, feats)
        del h, feats  # freed before the next step allocates (RSS)


def trimmed_forward(encoder: HeteroGNN, item_x: Tensor, shared_index: dict[str, Tensor],
                    num_users: int, edges: dict[EdgeType, Tensor], depth: dict[str, Tensor],
                    text_edges: Tensor) -> dict[str, Tensor]:
    """``encoder``'s forward on a sampled subgraph, layer ``l`` (of ``L``) computed only for
    the nodes within ``L - 1 - l`` hops of the seeds (``depth``), the only ones whose state
    reaches a seed: the seeds' outputs are the whole forward's (up to float summation order
    and dropout draws); other nodes keep stale states.

    Why: PyG's ``trim_to_layer``. Every layer over every sampled node was 3/4 of a
    mini-batch fit at 3M interactions (the conv linears, dropout and their backward), and
    the 2-hop ring, which only the first layer's sources need, is most of the subgraph.
    HGT (one module over all types) runs the whole forward.
    """
    if encoder.conv_name == "hgt":
        whole: dict[str, Tensor] = encoder(item_x, shared_index, num_users, edges,
                                           text_edges=text_edges)
        return whole
    h = encoder.inputs(item_x, shared_index, num_users)
    for layer_no, layer in enumerate(encoder.convs):
        convs: Any = layer.convs  # HeteroConv's convs, keyed by edge type
        reach = encoder.num_layers - 1 - layer_no
        out = dict(h)
        for t in sorted({et[2] for et in encoder.edge_types}):  # fixed order: dropout draws
            rows = torch.nonzero(depth[t] <= reach).squeeze(1)  # sorted positions
            x_dst = h[t][rows]
            parts = []
            for et in (et for et in encoder.edge_types if et[2] == t):
                ei = edges[et][:, depth[t][edges[et][1]] <= reach]
                ei = torch.stack([ei[0], torch.searchsorted(rows, ei[1])])
                parts.append(_conv_edges(convs[et], encoder.conv_name, h[et[0]], x_dst, ei))
            out[t] = h[t].index_copy(0, rows, encoder.update(x_dst, torch.stack(parts).mean(0)))
        h = out
    return encoder.finish(h, item_x, text_edges)


def inference_chunk(cfg: ModelConfig, tensors: GraphTensors) -> int | None:
    """Nodes per chunk for :func:`encode_graph` on ``tensors`` (None: whole graph at once)."""
    return INFERENCE_CHUNK if cfg.mini_batch(tensors.pos.shape[1]) else None


def encode_graph(encoder: HeteroGNN, tensors: GraphTensors, msg_pairs: Tensor,
                 chunk: int | None = None) -> dict[str, Tensor]:
    """All node states on the graph with interactions ``msg_pairs`` (no autograd).

    ``chunk``: destination nodes per chunk for layer-wise inference (SAGE/GAT); None runs the
    whole-graph forward. Both give the same states up to float summation order. ``tensors``
    and ``msg_pairs`` are moved to the encoder's device (no copy when already there); the
    states are on that device.
    """
    dev = module_device(encoder)
    tensors, msg_pairs = tensors.to(dev), msg_pairs.to(dev)
    edges = with_interactions(tensors, msg_pairs)
    with torch.no_grad():
        if chunk is None or encoder.conv_name == "hgt":
            return encoder(tensors.item_x, tensors.shared_index, tensors.num_nodes[USER], edges)
        return _layerwise(encoder, tensors, edges, chunk)


def _layerwise(encoder: HeteroGNN, tensors: GraphTensors, edges: dict[EdgeType, Tensor],
               chunk: int) -> dict[str, Tensor]:
    h = encoder.inputs(tensors.item_x, tensors.shared_index, tensors.num_nodes[USER])
    csr = {et: _by_destination(edges[et], len(h[et[2]])) for et in encoder.edge_types}
    for layer in encoder.convs:
        convs: Any = layer.convs  # HeteroConv's convs, keyed by edge type
        out: dict[str, Tensor] = {}
        for t in {et[2] for et in encoder.edge_types}:
            types = [et for et in encoder.edge_types if et[2] == t]
            n = len(h[t])
            res = h[t].new_empty((n, encoder.hidden_dim))
            for a in range(0, n, chunk):
                b = min(n, a + chunk)
                parts = [_conv_chunk(convs[et], encoder.conv_name, h[et[0]], h[t][a:b],
                                     csr[et], a, b) for et in types]
                res[a:b] = torch.stack(parts).mean(0)
            out[t] = h[t] + torch.relu(res)
        h = {t: out.get(t, v) for t, v in h.items()}
    return encoder.finish(h, tensors.item_x, edges[INTERACTED])


def _conv_chunk(conv: torch.nn.Module, conv_name: str, x_src: Tensor, x_dst: Tensor, csr: _Csr,
                a: int, b: int) -> Tensor:
    """One edge type's conv output for destination nodes ``a..b-1`` (as ``HeteroConv`` calls
    it: ``conv((x_src, x_dst), edges)``), on their in-edges only."""
    lo, hi = int(csr.ptr[a]), int(csr.ptr[b])
    return _conv_edges(conv, conv_name, x_src, x_dst,
                       torch.stack([csr.src[lo:hi], csr.dst[lo:hi] - a]))


def _conv_edges(conv: torch.nn.Module, conv_name: str, x_src: Tensor, x_dst: Tensor,
                ei: Tensor) -> Tensor:
    """One edge type's conv output for ``x_dst`` over the edges ``ei`` (rows of ``x_src`` ->
    rows of ``x_dst``), as ``HeteroConv`` calls it: ``conv((x_src, x_dst), edges)``."""
    if conv_name == "sage":  # as HeteroGNN.forward: a (dst x src) CSR mean
        adj = to_torch_csr_tensor(ei.flip(0), size=(len(x_dst), len(x_src)))
        return conv((x_src, x_dst), adj)  # type: ignore[no-any-return]
    return conv((x_src, x_dst), ei)  # type: ignore[no-any-return]
