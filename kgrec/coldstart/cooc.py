"""Item-item co-occurrence of the graph being scored: the path ``User -> Item <- User -> Item``.

Why: where behaviour is driven by co-purchase (groceries, films), the strongest simple peers
(item-kNN, EASE) score a candidate by how often the user's own items were taken together with it.
A GNN's mean aggregation blurs that; this table keeps it exact, as a pair feature of the CTR
head's wide part: the cosine ``|U_h ∩ U_c| / sqrt(|U_h| |U_c|)`` between a history item ``h``
and the candidate ``c``, where ``U_i`` are the users who took item ``i`` **in the interactions
given** (a training step's message edges, so a supervision pair never counts itself; at inference
the whole graph). An item with no interactions there (a new SKU) co-occurs with nothing.

Bounded work: each user contributes at most their ``max_history`` (``COOC_HISTORY``, 50) most
recent items, so the within-user pairs are at most ``n_users * COOC_HISTORY**2``. (Whole
histories, as item-kNN and EASE read them, were tried: a cap chosen by a pair budget, 146 on
MovieLens, cost 6% of warm Recall@20 on its validation split, benchmarks/EVALUATION.md round 7.)
The counts are one sparse product ``X.T @ X`` of the binary user x item matrix (scipy; a
repeated event counts once). Pairs are looked up by the stable keys of the two items (as the
peer-share table), so rows of different graphs (new SKUs folded in later) compare correctly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

COOC_HISTORY = 50
_MIX = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64 (golden-ratio hashing)


def pair_key(a: Tensor, b: Tensor) -> Tensor:
    """One int64 key per (key a, key b) pair (wrapping arithmetic; ordered)."""
    return a * _MIX ^ b


@dataclass
class CoocTable:
    """Sorted pair keys of co-occurring items and their cosine, ``(nnz,)`` each."""

    keys: Tensor
    vals: Tensor

    def lookup(self, a: Tensor, b: Tensor) -> Tensor:
        """Cosine of the item pairs with stable keys ``a``, ``b`` (broadcast); 0 if none."""
        key = pair_key(a, b)
        if len(self.keys) == 0:
            return torch.zeros(key.shape)
        pos = torch.searchsorted(self.keys, key).clamp(max=len(self.keys) - 1)
        return torch.where(self.keys[pos] == key, self.vals[pos], torch.zeros(()))


def cooc_table(ptr: Tensor, items: Tensor, item_keys: Tensor,
               max_history: int = COOC_HISTORY) -> CoocTable:
    """The co-occurrence cosines of the user histories ``items[ptr[u]:ptr[u+1]]`` (most recent
    first), each cut to ``max_history`` items; ``item_keys``: stable keys of the item rows."""
    n_users, n_items = len(ptr) - 1, len(item_keys)
    count = (ptr[1:] - ptr[:-1]).clamp(max=max_history)
    users = torch.repeat_interleave(torch.arange(n_users), count)
    offs = torch.arange(len(users)) - torch.repeat_interleave(torch.cumsum(count, 0) - count,
                                                              count)
    kept = items[ptr[:-1][users] + offs]  # each user's first (most recent) items
    x = sp.csr_matrix((np.ones(len(kept), dtype=np.float32), (users.numpy(), kept.numpy())),
                      shape=(n_users, n_items))
    x.sum_duplicates()
    x.data[:] = 1.0  # binary: a user took the item or not
    degree = np.asarray(x.sum(axis=0)).ravel()
    co = (x.T.tocsr() @ x).tocoo()
    other = co.row != co.col
    a, b, n = co.row[other], co.col[other], co.data[other]
    cos = torch.from_numpy((n / np.sqrt(degree[a] * degree[b])).astype(np.float32))
    keys = pair_key(item_keys[torch.from_numpy(a.astype(np.int64))],
                    item_keys[torch.from_numpy(b.astype(np.int64))])
    order = torch.argsort(keys)
    return CoocTable(keys=keys[order], vals=cos[order])
