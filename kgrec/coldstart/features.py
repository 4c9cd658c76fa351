"""Turn an :class:`~kgrec.graph.export.ExportedGraph` into the tensors the GNN reads.

Why: the model must be inductive, so nothing here depends on a node's *index*: items are
described by their text vector (and price), Brand/Category/Attribute nodes by their *external id*
looked up in a vocabulary fixed at training time (unknown ids map to slot 0, a learned "unknown"
embedding per type), users by nothing at all (they are what they are connected to).

Interaction rule (documented in the package docstring as well): a (user, item) pair is
*positive* when it has at least one ``click``, ``cart``, ``purchase`` or ``rating`` event; a pair
seen only as ``view`` is an *impression negative* (shown, not clicked). Only positives become
message-passing edges.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from kgrec.encoders import compose_item_texts
from kgrec.encoders.cache import text_keys
from kgrec.encoders.compose import TEXT_COLUMNS
from kgrec.encoders.text import TextEncoder
from kgrec.graph.export import ExportedGraph
from kgrec.graph.schema import NodeLabel, RelType
from kgrec.graph.tables import POSITIVE_EVENTS

logger = logging.getLogger(__name__)

EdgeType = tuple[str, str, str]
# PyG type names are the schema's labels and relationship types (kgrec.graph.schema)
USER, ITEM = NodeLabel.USER.value, NodeLabel.ITEM.value
SHARED_TYPES: tuple[str, ...] = tuple(label.value for label in (
    NodeLabel.BRAND, NodeLabel.CATEGORY, NodeLabel.ATTRIBUTE))
NODE_TYPES: tuple[str, ...] = (USER, ITEM, *SHARED_TYPES)
INTERACTED: EdgeType = (USER, RelType.INTERACTED.value, ITEM)
REV_INTERACTED: EdgeType = (ITEM, f"rev_{RelType.INTERACTED.value}", USER)
PRICE_DIM = 2  # standardised log1p(price), "price missing" flag


def reverse(edge_type: EdgeType) -> EdgeType:
    """``(src, REL, dst)`` -> ``(dst, rev_REL, src)``: a valid PyG edge-type name."""
    src, rel, dst = edge_type
    return (dst, f"rev_{rel}", src)


def structural_edge_types(graph: ExportedGraph, *, use_related: bool = True) -> list[EdgeType]:
    """Edge types of ``graph`` other than INTERACTED that have edges, sorted (for a fixed model).

    RELATED edges are left out when ``use_related`` is False (e.g. behaviour-derived triples
    that could leak held-out interactions).
    """
    out = []
    for et in graph.data.edge_types:
        if et == INTERACTED or (et[1] == RelType.RELATED.value and not use_related):
            continue
        if graph.data[et].edge_index.shape[1] > 0:
            out.append(tuple(et))
    return sorted(out)  # type: ignore[arg-type]


class IdVocab:
    """External ids of one shared node type -> embedding rows (0 = unknown, known i -> i + 1).

    Args:
        ids: The ids known at training time (their order fixes the rows).
    """

    def __init__(self, ids: Sequence[str] | np.ndarray) -> None:
        self.ids = [str(i) for i in ids]
        self._index = pd.Index(self.ids)

    def __repr__(self) -> str:
        return f"IdVocab(n={len(self.ids)})"

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """Rows for ``ids``; ids unseen at training time get row 0 (the unknown embedding)."""
        if len(ids) == 0:
            return np.zeros(0, dtype=np.int64)
        pos = self._index.get_indexer(pd.Index(np.asarray(ids, dtype=object).astype(str)))
        return (pos + 1).astype(np.int64)  # -1 (unknown) -> 0


class TextFeaturizer:
    """Item text vectors with an in-memory memo, so each distinct text is encoded once.

    A saved model keeps the vectors it was trained with (:meth:`snapshot`) and a loaded one
    starts from them (:meth:`preload`, keyed by the sha256 of each text): loading a model
    encodes only texts that are new or changed.

    Args:
        encoder: The text encoder (wrap it in a ``CachedTextEncoder`` for an on-disk cache).
        batch_size: Texts per encoder batch, default 64.
        show_progress: Passed to the encoder.
    """

    def __init__(self, encoder: TextEncoder, batch_size: int = 64,
                 show_progress: bool = False) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._memo: dict[str, np.ndarray] = {}
        self._preloaded: dict[bytes, np.ndarray] = {}
        # composed rows: sorted row keys (row_keys) and their texts (the memo's own strings)
        self._rows: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.uint64),
                                                     np.zeros(0, dtype=object))
        self.n_encoded = 0  # texts this featurizer has sent to the encoder

    def __repr__(self) -> str:
        return f"TextFeaturizer({self.encoder!r}, memo={len(self._memo)})"

    def preload(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Known vectors by text key (``kgrec.encoders.cache.text_keys``), ``(n,)`` and
        ``(n, dim)``; a text whose key is here is never encoded."""
        self._preloaded.update(zip(np.asarray(keys).tolist(), np.asarray(vectors, np.float32),
                                   strict=True))

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """Keys and vectors of every text seen so far (for saving with a model)."""
        texts = sorted(self._memo)
        vectors = np.stack([self._memo[t] for t in texts]) if texts else \
            np.zeros((0, self.encoder.dim), np.float32)
        return text_keys(texts), vectors.astype(np.float32)

    def item_vectors(self, items: pd.DataFrame) -> np.ndarray:
        """Text vectors of ``items`` rows (``compose_item_texts``), shape ``(n, dim)``.

        Rows seen before are not composed again: composing (cleaning every field with regular
        expressions) was most of a ``transform`` of a grown graph, which holds the same rows
        plus a few new ones. Rows are recognised by a 64-bit hash of their text columns
        (:func:`row_keys`; a collision is astronomically unlikely), so only new or changed
        rows are composed, and only texts not seen before are encoded.
        """
        if not len(items):
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        keys = row_keys(items)
        known_keys, known_texts = self._rows   # one read: another thread may replace it
        pos = np.searchsorted(known_keys, keys).clip(max=max(len(known_keys) - 1, 0))
        hit = known_keys[pos] == keys if len(known_keys) else np.zeros(len(keys), bool)
        if not hit.all():
            new_keys, first = np.unique(keys[~hit], return_index=True)
            texts, _ = compose_item_texts(items.iloc[np.flatnonzero(~hit)[first]])
            all_keys = np.concatenate([known_keys, new_keys])
            order = np.argsort(all_keys, kind="stable")
            known_keys = all_keys[order]
            known_texts = np.concatenate([known_texts, np.asarray(texts, dtype=object)])[order]
            self._rows = (known_keys, known_texts)
            pos = np.searchsorted(known_keys, keys)
        return self._text_vectors(known_texts[pos].tolist())

    def _text_vectors(self, texts: list[str]) -> np.ndarray:
        """Vectors of composed ``texts``: memoised, preloaded by key, or encoded now."""
        new = sorted({t for t in texts if t not in self._memo})
        if new and self._preloaded:
            for text, key in zip(new, text_keys(new).tolist(), strict=True):
                if key in self._preloaded:
                    self._memo[text] = self._preloaded[key]
            new = [t for t in new if t not in self._memo]
        if new:
            self.n_encoded += len(new)
            vecs = self.encoder.encode(new, batch_size=self.batch_size,
                                       show_progress=self.show_progress)
            self._memo.update(zip(new, np.asarray(vecs, dtype=np.float32), strict=True))
            logger.info("Encoded %d new item texts (%d memoised)", len(new), len(self._memo))
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts]).astype(np.float32)


def row_keys(items: pd.DataFrame) -> np.ndarray:
    """A ``uint64`` hash per row of the columns ``compose_item_texts`` reads (an absent
    column hashes as missing values, as composing treats it)."""
    cols = {c: (items[c].astype(object) if c in items.columns else
                pd.Series(None, index=items.index, dtype=object)) for c in TEXT_COLUMNS}
    frame = pd.DataFrame(cols).astype(object).where(lambda f: f.notna(), None)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(np.uint64)


@dataclass
class PriceScaler:
    """Standardise ``log1p(price)`` with training statistics; NaN -> 0 plus a missing flag."""

    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def fit(cls, prices: np.ndarray) -> PriceScaler:
        logp = np.log1p(np.clip(prices[np.isfinite(prices)], 0, None))
        if len(logp) < 2:
            return cls()
        return cls(float(logp.mean()), float(logp.std()) or 1.0)

    def transform(self, prices: np.ndarray) -> np.ndarray:
        ok = np.isfinite(prices)
        z = np.zeros(len(prices), dtype=np.float32)
        z[ok] = (np.log1p(np.clip(prices[ok], 0, None)) - self.mean) / self.std
        return np.stack([z, (~ok).astype(np.float32)], axis=1)


@dataclass
class GraphTensors:
    """Everything the GNN and the trainer read from one graph.

    Shapes:
        ``item_x``: ``(n_items, text_dim + PRICE_DIM)``; ``shared_index[t]``: ``(n_t,)`` vocab
        rows; ``edges[et]``: ``(2, E)``; ``pos``: ``(2, P)`` unique positive (user, item)
        pairs with ``pos_time`` ``(P,)`` (latest ts); ``impressions``: ``(2, N)``.
    """

    num_nodes: dict[str, int]
    item_x: Tensor
    shared_index: dict[str, Tensor]
    edges: dict[EdgeType, Tensor]
    pos: Tensor
    pos_time: Tensor
    impressions: Tensor

    def to(self, device: str | torch.device) -> GraphTensors:
        """The message-passing inputs (features, ids, edges, positives) on ``device``."""
        return GraphTensors(self.num_nodes, self.item_x.to(device),
                            {t: v.to(device) for t, v in self.shared_index.items()},
                            {et: v.to(device) for et, v in self.edges.items()},
                            self.pos.to(device), self.pos_time, self.impressions)


def interaction_pairs(graph: ExportedGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique positive pairs ``(2, P)``, their latest ts ``(P,)`` and view-only pairs ``(2, N)``.

    See the module docstring for which events count as positive.
    """
    if INTERACTED not in graph.data.edge_types:
        empty = np.zeros((2, 0), dtype=np.int64)
        return empty, np.zeros(0, dtype=np.int64), empty
    store = graph.data[INTERACTED]
    ei = store.edge_index.numpy()
    vocab = np.asarray(graph.event_vocab, dtype=object)
    events = vocab[store.edge_event.numpy().clip(0)]
    positive = np.isin(events, list(POSITIVE_EVENTS))
    n_items = max(graph.data[ITEM].num_nodes, 1)
    key = ei[0] * n_items + ei[1]
    frame = pd.DataFrame({"key": key, "pos": positive, "ts": store.edge_time.numpy()})
    per_pair = frame.groupby("key", sort=True).agg(pos=("pos", "max"), ts=("ts", "max"))
    keys = per_pair.index.to_numpy()
    pairs = np.stack([keys // n_items, keys % n_items]).astype(np.int64)
    is_pos = per_pair["pos"].to_numpy(bool)
    is_view = ~is_pos  # any non-positive event here is a view (EVENTS has no other kind)
    return pairs[:, is_pos], per_pair["ts"].to_numpy(np.int64)[is_pos], pairs[:, is_view]


def graph_tensors(graph: ExportedGraph, *, edge_types: Sequence[EdgeType],
                  vocabs: dict[str, IdVocab], text: TextFeaturizer,
                  price: PriceScaler | None) -> GraphTensors:
    """Build :class:`GraphTensors` for ``graph`` with the model's fixed ``edge_types``.

    Edge types of ``graph`` the model does not know are ignored (logged); types the graph lacks
    get empty edge lists. Reverse edges are added for every structural type.
    """
    data = graph.data
    num_nodes = {t: int(data[t].num_nodes or 0) if t in data.node_types else 0
                 for t in NODE_TYPES}
    vectors = text.item_vectors(graph.items)
    parts = [vectors]
    if price is not None:
        prices = pd.to_numeric(graph.items.get("price", pd.Series(np.nan, index=graph.items.index)),
                               errors="coerce").to_numpy(np.float64)
        parts.append(price.transform(prices))
    item_x = torch.from_numpy(np.concatenate(parts, axis=1).astype(np.float32))
    shared_index = {t: torch.from_numpy(vocabs[t].lookup(graph.node_ids.get(t, np.empty(0))))
                    for t in SHARED_TYPES}
    unknown = [tuple(et) for et in data.edge_types
               if tuple(et) != INTERACTED and tuple(et) not in edge_types
               and data[et].edge_index.shape[1] > 0]
    if unknown:
        logger.warning("Ignoring edge types unknown to the model: %s", unknown)
    edges: dict[EdgeType, Tensor] = {}
    for et in edge_types:
        ei = data[et].edge_index if et in data.edge_types else torch.zeros((2, 0), dtype=torch.long)
        edges[et] = ei
        edges[reverse(et)] = ei.flip(0)
    pos, pos_time, views = interaction_pairs(graph)
    return GraphTensors(num_nodes=num_nodes, item_x=item_x, shared_index=shared_index,
                        edges=edges, pos=torch.from_numpy(pos), pos_time=torch.from_numpy(pos_time),
                        impressions=torch.from_numpy(views))


def with_interactions(tensors: GraphTensors, pairs: Tensor) -> dict[EdgeType, Tensor]:
    """The edge dict for message passing: structural edges plus ``pairs`` both ways."""
    edges = dict(tensors.edges)
    edges[INTERACTED] = pairs
    edges[REV_INTERACTED] = pairs.flip(0)
    return edges
