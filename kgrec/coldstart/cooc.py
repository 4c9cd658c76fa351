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
The counts are the sparse product ``X.T @ X`` of the binary user x item matrix (scipy; a
repeated event counts once). Pairs are looked up by the stable keys of the two items (as the
peer-share table), so rows of different graphs (new SKUs folded in later) compare correctly.

Bounded memory: the cosine is symmetric, so each unordered pair is stored once (under its
smaller key first), and the product is computed in blocks of item rows of at most
``block_pairs`` products each; each block's pairs go to one of 64 buckets by the top bits of
their key, and the buckets are sorted one at a time into the final arrays. The peak is the
table itself plus one block's or one bucket's working set, not several copies of the whole table
(at 10M interactions the table holds ~50M pairs, 0.6 GB; benchmarks/SCALE.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

COOC_HISTORY = 50
BLOCK_PAIRS = 1 << 23  # products of one block of item rows (~8M: a few hundred MB of transients)
DENSE_CELLS = 1 << 27  # catalogues up to ~11.5k items also get the dense matrix (512 MB float32)
_BUCKET_SHIFT = 58  # 64 buckets by the top 6 bits of a key: sorting one is 1/64 of the table
_MIX = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64 (golden-ratio hashing)


def pair_key(a: Tensor, b: Tensor) -> Tensor:
    """One int64 key per (key a, key b) pair (wrapping arithmetic; ordered)."""
    return a * _MIX ^ b


def sorted_lookup(keys: Tensor, vals: Tensor, query: Tensor) -> Tensor:
    """``vals`` at the positions of ``query``'s entries in the sorted ``keys``; 0 where absent.

    Why sort the queries first: a binary search per query in random order misses the cache at
    almost every level of a table of millions of keys; in sorted order neighbouring searches
    walk the same paths. Sort + search + scatter back took a third of the time of the plain
    search (2M queries, 4M keys, one thread), with the same result.
    """
    if len(keys) == 0:
        return torch.zeros(query.shape)
    flat, order = torch.sort(query.reshape(-1))
    pos = torch.searchsorted(keys, flat).clamp(max=len(keys) - 1)
    out = torch.empty(len(flat))
    out[order] = torch.where(keys[pos] == flat, vals[pos], torch.zeros(()))
    return out.view(query.shape)


@dataclass
class CoocTable:
    """Sorted pair keys of co-occurring items and their cosine, ``(nnz,)`` each; for a catalogue
    of at most ``DENSE_CELLS`` item pairs also ``by_row``, the same cosines as an
    ``(n_items + 1, n_items + 1)`` matrix by item row (the last row and column are zeros, the
    row of a key the table has never seen), with ``row_keys``/``row_of``: the sorted stable
    keys of its rows and the row of each.

    Why the matrix: a binary search per (history item, candidate) over millions of keys was a
    fifth of a grocery fit (10k products); mapping the two keys to rows is a search in a table
    of ``n_items`` keys, once per history entry and once per candidate, and the cosine is then
    one gather (the matrix is symmetric, so callers pick the order in which neighbouring reads
    fall in one row).
    """

    keys: Tensor
    vals: Tensor
    by_row: Tensor | None = None
    row_keys: Tensor | None = None
    row_of: Tensor | None = None

    def lookup(self, a: Tensor, b: Tensor) -> Tensor:
        """Cosine of the item pairs with stable keys ``a``, ``b`` (broadcast); 0 if none."""
        if self.by_row is not None:  # symmetric: ``a``'s rows, so a block of candidates ``b``
            return self.at_rows(self.rows(a), self.rows(b))  # reads near its neighbours
        key = pair_key(torch.minimum(a, b), torch.maximum(a, b))  # stored once, smaller first
        return sorted_lookup(self.keys, self.vals, key)

    def rows(self, keys: Tensor) -> Tensor:
        """Rows of ``by_row`` of the stable item keys ``keys``; the zero row where absent."""
        assert self.by_row is not None and self.row_keys is not None and self.row_of is not None
        n = len(self.row_keys)
        if n == 0:
            return torch.zeros(keys.shape, dtype=torch.long)
        pos = torch.searchsorted(self.row_keys, keys).clamp(max=n - 1)
        return torch.where(self.row_keys[pos] == keys, self.row_of[pos], torch.tensor(n))

    def at_rows(self, a: Tensor, b: Tensor) -> Tensor:
        """Cosine of the rows ``a``, ``b`` (:meth:`rows`; broadcast) of ``by_row``; the same
        values as :meth:`lookup` on their keys."""
        assert self.by_row is not None, "built without by_row (catalogue over DENSE_CELLS)"
        at = a * self.by_row.shape[1] + b
        return self.by_row.view(-1).index_select(0, at.reshape(-1)).view(at.shape)


def cooc_table(ptr: Tensor, items: Tensor, item_keys: Tensor,
               max_history: int = COOC_HISTORY, block_pairs: int = BLOCK_PAIRS,
               by_row: bool | None = None) -> CoocTable:
    """The co-occurrence cosines of the user histories ``items[ptr[u]:ptr[u+1]]`` (most recent
    first), each cut to ``max_history`` items; ``item_keys``: stable keys of the item rows.
    ``by_row``: also the dense matrix (:class:`CoocTable`); ``None``: when the catalogue has at
    most ``DENSE_CELLS`` item pairs."""
    n_users, n_items = len(ptr) - 1, len(item_keys)
    if by_row is None:
        by_row = n_items * n_items <= DENSE_CELLS
    count = (ptr[1:] - ptr[:-1]).clamp(max=max_history)
    users = torch.repeat_interleave(torch.arange(n_users), count)
    offs = torch.arange(len(users)) - torch.repeat_interleave(torch.cumsum(count, 0) - count,
                                                              count)
    kept = items[ptr[:-1][users] + offs]  # each user's first (most recent) items
    x = sp.csr_matrix((np.ones(len(kept), dtype=np.float32), (users.numpy(), kept.numpy())),
                      shape=(n_users, n_items))
    del users, offs, kept
    x.sum_duplicates()
    x.data[:] = 1.0  # binary: a user took the item or not
    degree = np.asarray(x.sum(axis=0)).ravel()  # float32: the same cosines as one block
    xt = x.T.tocsr()
    # products in item row i of X.T @ X: the history lengths of i's users (an upper bound)
    work = np.cumsum(xt @ np.diff(x.indptr).astype(np.float64))
    buckets: list[list[tuple[Tensor, Tensor]]] = [[] for _ in range(64)]
    edges = torch.tensor([j << _BUCKET_SHIFT for j in range(-31, 32)])
    dense = torch.zeros((n_items + 1, n_items + 1)) if by_row else None
    lo = 0
    while lo < n_items:  # blocks of item rows; a single row over the budget is its own block
        done = work[lo - 1] if lo else 0.0
        hi = max(lo + 1, int(np.searchsorted(work, done + block_pairs, side="right")))
        keys, cos, rows = _block_pairs(xt[lo:hi] @ x, lo, degree, item_keys, by_row)
        if dense is not None and rows is not None:  # both orders: pairs are stored once
            dense[rows[0], rows[1]] = cos
            dense[rows[1], rows[0]] = cos
        del rows
        cuts = torch.searchsorted(keys, edges).tolist()
        for j, (s, e) in enumerate(zip([0, *cuts], [*cuts, len(keys)], strict=True)):
            if e > s:  # copies: the block's arrays are freed once its pairs are bucketed
                buckets[j].append((keys[s:e].clone(), cos[s:e].clone()))
        del keys, cos
        lo = hi
    total = sum(len(k) for b in buckets for k, _ in b)
    out_keys, out_vals = torch.empty(total, dtype=torch.long), torch.empty(total)
    at = 0
    for j in range(64):
        part, buckets[j] = buckets[j], []
        if not part:
            continue
        keys = torch.cat([k for k, _ in part])
        vals = torch.cat([v for _, v in part])
        del part
        order = torch.argsort(keys)
        out_keys[at:at + len(keys)] = keys[order]
        out_vals[at:at + len(keys)] = vals[order]
        at += len(keys)
    row_keys, row_of = torch.sort(item_keys) if by_row else (None, None)
    return CoocTable(keys=out_keys, vals=out_vals, by_row=dense, row_keys=row_keys,
                     row_of=row_of)


def _block_pairs(co: sp.csr_matrix, lo: int, degree: np.ndarray,
                 item_keys: Tensor, with_rows: bool = False
                 ) -> tuple[Tensor, Tensor, Tensor | None]:
    """Sorted keys and cosines of the pairs in rows ``lo..`` of ``X.T @ X`` whose row item's
    key is the smaller (each unordered pair once; the diagonal never), and (``with_rows``)
    their item rows ``(2, nnz)`` in the same order."""
    coo = co.tocoo()
    del co
    ka = item_keys[torch.from_numpy(coo.row.astype(np.int64) + lo)]
    kb = item_keys[torch.from_numpy(coo.col.astype(np.int64))]
    keep = ka < kb
    mask = keep.numpy()
    a, b, n = coo.row[mask].astype(np.int64) + lo, coo.col[mask], coo.data[mask]
    del coo
    cos = torch.from_numpy((n / np.sqrt(degree[a] * degree[b])).astype(np.float32))
    keys = pair_key(ka[keep], kb[keep])
    order = torch.argsort(keys)
    rows = torch.stack([torch.from_numpy(a), torch.from_numpy(b.astype(np.int64))])[:, order] \
        if with_rows else None
    return keys[order], cos[order], rows
