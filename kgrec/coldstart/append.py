"""Append-only fold-in of new SKUs: embed them against the base graph's tensors, built once.

Why: ``ColdStartModel.transform`` on a folded copy of the graph rebuilds every tensor of the
whole graph (all item texts composed and looked up, vocabularies, interaction pairs, pair-feature
inputs, the co-occurrence table) to embed ten new SKUs; on Amazon that was most of a
``rank_new_items`` call. New SKUs have no interactions, so none of that changes for the existing
nodes: :class:`BaseTensors` holds the base graph's tensors, :func:`embed_new_items` appends the
new SKUs' rows and edges to them and runs the GNN on the ``num_layers``-hop subgraph.

What is exact and what changes (``L`` = ``num_layers``):

- A node's vector depends on the nodes within ``L`` *incoming* hops. A new SKU's neighbours
  (brand, category, attributes) are existing nodes whose intermediate states do change (they
  now also aggregate the new SKU), so the SKU is embedded on the appended graph, never from its
  neighbours' stored final vectors.
- An existing node changes only when a new node lies within ``L`` incoming hops of it, i.e. it is
  within ``L`` *outgoing* hops of a new node. Users are at least 3 hops away (new SKU -> brand
  -> item -> user), so with the default 2 layers no user changes; with more layers the users in
  reach are re-embedded on the appended graph and every other user keeps its stored vector.
- The users' pair-feature inputs (history, peer shares, co-occurrence) read interactions only,
  which new SKUs do not add, so they are the base graph's; the SKUs' own inputs (text, attribute
  keys, degree 0) come from their rows.

The result equals ``transform(folded_graph, user_ids=..., item_ids=new_ids)`` up to float
summation order (tested).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from kgrec.coldstart.features import (
    ITEM,
    NODE_TYPES,
    USER,
    GraphTensors,
    graph_tensors,
    reverse,
)
from kgrec.coldstart.inference import NodeEmbeddings, hop_masks, induced_subgraph, khop_nodes
from kgrec.coldstart.item_tables import attr_slots
from kgrec.coldstart.pairs import stable_keys
from kgrec.graph.export import ExportedGraph

if TYPE_CHECKING:
    from kgrec.coldstart.estimator import ColdStartModel


@dataclass
class BaseTensors:
    """A graph's tensors under a fitted model, built once and reused by every fold-in."""

    graph: ExportedGraph
    tensors: GraphTensors
    positions: dict[str, pd.Index]

    @classmethod
    def build(cls, model: ColdStartModel, graph: ExportedGraph) -> BaseTensors:
        """The tensors of ``graph`` exactly as ``model.transform(graph)`` builds them."""
        tensors = graph_tensors(graph, edge_types=model.edge_types_, vocabs=model.vocabs_,
                                text=model.text_, price=model.price_)
        return cls(graph, tensors, {t: pd.Index(graph.node_ids.get(t, np.empty(0, object)))
                                    for t in NODE_TYPES})


class BaseCache:
    """One :class:`BaseTensors` per (model, graph), built on first use under a lock (the
    service's threads may ask at once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._base: BaseTensors | None = None

    def get(self, model: ColdStartModel, graph: ExportedGraph) -> BaseTensors:
        key = (id(model), id(graph))
        with self._lock:
            if self._base is None or self._key != key or self._base.graph is not graph:
                self._base, self._key = BaseTensors.build(model, graph), key
            return self._base


def _append(base: BaseTensors, new: GraphTensors, new_graph: ExportedGraph
            ) -> tuple[GraphTensors, dict[str, Tensor]]:
    """``base`` plus the nodes and edges of ``new`` (no interactions), and for each type the
    appended graph's row of each of ``new``'s nodes (existing ids keep their base row)."""
    t0 = base.tensors
    rows: dict[str, Tensor] = {}
    fresh: dict[str, np.ndarray] = {}
    num_nodes = dict(t0.num_nodes)
    for t in NODE_TYPES:
        ids = np.asarray(new_graph.node_ids.get(t, np.empty(0, object)), dtype=object)
        pos = base.positions[t].get_indexer(ids) if len(ids) else np.zeros(0, np.int64)
        fresh[t] = pos < 0
        pos[fresh[t]] = t0.num_nodes[t] + np.arange(int(fresh[t].sum()))
        rows[t] = torch.from_numpy(pos.astype(np.int64))
        num_nodes[t] += int(fresh[t].sum())
    shared = {t: torch.cat([v, new.shared_index[t][torch.from_numpy(fresh[t])]])
              for t, v in t0.shared_index.items()}
    item_x = torch.cat([t0.item_x, new.item_x[torch.from_numpy(fresh[ITEM])]])
    edges: dict[tuple[str, str, str], Tensor] = {}
    for et, ei in t0.edges.items():
        if et[1].startswith("rev_"):
            continue
        add = new.edges.get(et, torch.zeros((2, 0), dtype=torch.long))
        if add.shape[1]:
            s, d = rows[et[0]][add[0]], rows[et[2]][add[1]]
            drop = torch.zeros(len(s), dtype=torch.bool)
            old = torch.nonzero((s < t0.num_nodes[et[0]]) & (d < t0.num_nodes[et[2]])).squeeze(1)
            if len(old) and ei.shape[1]:  # edges between existing nodes: a union, no repeats
                width = num_nodes[et[2]]
                drop[old] = torch.from_numpy(np.isin((s[old] * width + d[old]).numpy(),
                                                     (ei[0] * width + ei[1]).numpy()))
            ei = torch.cat([ei, torch.stack([s[~drop], d[~drop]])], dim=1)
        edges[et] = ei
        edges[reverse(et)] = ei.flip(0)
    return replace(t0, num_nodes=num_nodes, item_x=item_x, shared_index=shared,
                   edges=edges), rows


def embed_new_items(model: ColdStartModel, base: BaseTensors, base_emb: NodeEmbeddings,
                    new_graph: ExportedGraph, item_ids: list[str],
                    user_rows: np.ndarray) -> NodeEmbeddings:
    """Embeddings of the users ``base_emb.user[user_rows]`` and the new SKUs ``item_ids``.

    Args:
        model: The fitted model ``base`` and ``base_emb`` were made with.
        base: The base graph's tensors (:meth:`BaseTensors.build`).
        base_emb: ``model.transform(base.graph)`` (all users, with pair inputs).
        new_graph: The export of the new SKUs' own graph (their items, brands, categories,
            attributes and edges; ids already in the base graph are matched by id).
        item_ids: The new SKUs, in the order wanted (none may be in the base graph).
        user_rows: Rows of ``base_emb`` to keep.

    Returns:
        ``NodeEmbeddings`` with those users and the new SKUs, pair inputs aligned.
    """
    model._check_fitted()
    with model._threads():
        new = graph_tensors(new_graph, edge_types=model.edge_types_, vocabs=model.vocabs_,
                            text=model.text_, price=model.price_)
        tensors, rows = _append(base, new, new_graph)
        local = new_graph.index_of(ITEM, item_ids)
        targets = {ITEM: rows[ITEM][local]}
        users = torch.from_numpy(np.asarray(user_rows, dtype=np.int64))
        news = {t: r[r >= base.tensors.num_nodes[t]] for t, r in rows.items()}
        changed = hop_masks(tensors, news, model.config_.num_layers,
                            incoming=False)[USER][users]
        targets[USER] = users[changed].unique()
        keep = khop_nodes(tensors, targets, model.config_.num_layers)
        h = model._encode(induced_subgraph(tensors, keep))
        user = base_emb.user[users].clone()
        if len(targets[USER]):
            redone = h[USER][torch.searchsorted(keep[USER], targets[USER])]
            user[changed] = redone[torch.searchsorted(targets[USER], users[changed])]
        item = h[ITEM][torch.searchsorted(keep[ITEM], targets[ITEM])]
    pairs = None
    if base_emb.pairs is not None:
        item_x = new.item_x[torch.from_numpy(local)]
        keys = {t: stable_keys(t, np.asarray(new_graph.node_ids.get(t, np.empty(0, object)),
                                             dtype=object)) for t in NODE_TYPES}
        attrs = [attr_slots(new.edges.get(et, torch.zeros((2, 0), dtype=torch.long)),
                            new.num_nodes[ITEM], keys[et[2]])[torch.from_numpy(local)]
                 for et in model.pair_attr_types_]
        pairs = replace(base_emb.pairs.select(users=users),
                        item_keys=stable_keys(ITEM, np.asarray(item_ids, dtype=object)),
                        item_text=torch.nn.functional.normalize(
                            item_x[:, :model.text_dim_], dim=-1),
                        item_attrs=attrs, item_degree=torch.zeros(len(item_ids)),
                        item_lex=None if model.lexical_ is None else
                        model.lexical_.item_rows(new_graph.items.iloc[local]))
    return NodeEmbeddings(user=user, item=item,
                          user_ids=np.asarray(base_emb.user_ids, dtype=object)[user_rows],
                          item_ids=np.asarray(item_ids, dtype=object), pairs=pairs)
