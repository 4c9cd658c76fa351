"""Per-item inputs of the pair features that do not depend on users: attribute slots, and
item x item tables of text cosines and attribute overlaps for small catalogues.

Why a module of its own: :mod:`kgrec.coldstart.pairs` reads them per pair; computing them is a
separate concern (once per graph, reused by every training step and every call).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from kgrec.coldstart.features import ITEM, EdgeType, GraphTensors

MAX_ATTR_SLOTS = 8
_TABLE_BUDGET = 1 << 26  # most item x item cells precomputed (256 MB of float32)
_TEXT_TABLE_BUDGET = 1 << 27  # beyond that, text cosines alone up to this many (512 MB)


def attr_slots(edges: Tensor, n_items: int, node_keys: Tensor) -> Tensor:
    """``(n_items, k)`` padded keys of each item's linked nodes (first ``MAX_ATTR_SLOTS``)."""
    if edges.shape[1] == 0:
        return torch.zeros((n_items, 1), dtype=torch.long)
    order = torch.argsort(edges[0], stable=True)
    item, node = edges[0][order], edges[1][order]
    count = torch.bincount(item, minlength=n_items)
    start = torch.cumsum(count, 0) - count
    slot = torch.arange(len(item)) - start[item]
    k = int(min(int(count.max()), MAX_ATTR_SLOTS))
    ok = slot < k
    out = torch.zeros((n_items, k), dtype=torch.long)
    out[item[ok], slot[ok]] = node_keys[node[ok]]
    return out


@dataclass
class ItemTables:
    """Item x item text cosines and attribute overlaps, precomputed for a small catalogue.

    Why: training scores tens of thousands of pairs per step against each user's history, and
    gathering two text vectors per (history entry, candidate) dominated a MovieLens epoch; a
    lookup in a precomputed table is far cheaper. ``cells[h * n_items + c]`` holds, for history
    item ``h`` and candidate ``c``: the text cosine, then per attribute relation ``r`` the share
    of ``c``'s relation-``r`` keys that ``h`` also has (as the per-pair path computes it), then
    (with lexical vectors) the TF-IDF cosine. One row per pair, so a lookup gathers its
    columns together instead of one random read per table.

    A catalogue too large for every column (``_TABLE_BUDGET`` cells) but with at most
    ``_TEXT_TABLE_BUDGET`` item pairs gets the text cosines alone (``has_attrs`` False): on
    a grocery catalogue of 10k products the per-pair dot products of two text vectors were
    half of a fit's pair-feature time, the attribute overlaps a tenth of it.
    """

    cells: Tensor  # (n_items * n_items, 1 + n_attr + has_lex), or (n_items * n_items, 1)
    n_items: int
    has_lex: bool = False
    has_attrs: bool = True

    def at(self, h: Tensor, c: Tensor) -> Tensor:
        """The cells of the item-row pairs ``(h[k], c[k])``, ``(len(h), n_columns)``."""
        return self.cells.index_select(0, h * self.n_items + c)


def item_tables(tensors: GraphTensors, attr_types: Sequence[EdgeType],
                node_keys: dict[str, Tensor], text_dim: int,
                lex: sp.csr_matrix | None = None) -> ItemTables | None:
    """:class:`ItemTables` of ``tensors``' items (``lex``: their TF-IDF rows); the text
    column alone when every column would exceed ``_TABLE_BUDGET`` cells; None when that too
    would exceed ``_TEXT_TABLE_BUDGET`` (then features are computed per pair)."""
    n = tensors.num_nodes[ITEM]
    if n == 0 or n * n > _TEXT_TABLE_BUDGET:
        return None
    text = torch.nn.functional.normalize(tensors.item_x[:, :text_dim], dim=-1)
    if n * n * (1 + len(attr_types) + (lex is not None)) > _TABLE_BUDGET:
        return ItemTables(cells=(text @ text.T).view(n * n, 1), n_items=n, has_attrs=False)
    overlaps = []
    for et in attr_types:
        slots = attr_slots(tensors.edges.get(et, torch.zeros((2, 0), dtype=torch.long)), n,
                           node_keys[et[2]])
        _, col = torch.unique(slots, return_inverse=True)
        valid = slots != 0
        rows = torch.arange(n)[:, None].expand_as(slots)
        onehot = torch.zeros((n, int(col.max()) + 1))
        onehot[rows[valid], col[valid]] = 1.0
        shared = onehot @ onehot.T  # (h, c): keys the two items share
        overlaps.append(shared / valid.sum(1).clamp(min=1).to(torch.float32)[None, :])
    columns = [text @ text.T, *overlaps]
    if lex is not None:
        columns.append(torch.from_numpy((lex @ lex.T).toarray().astype(np.float32)))
    cells = torch.stack(columns, dim=-1).view(n * n, len(columns))
    return ItemTables(cells=cells, n_items=n, has_lex=lex is not None)
