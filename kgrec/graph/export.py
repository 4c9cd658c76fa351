"""Export a graph store to a PyTorch Geometric ``HeteroData`` with id maps.

Why: the GNN trains on tensors, but callers speak in external ids (SKUs, pseudonymised user
ids). ``ExportedGraph`` keeps both: node type ``label`` has ``node_ids[label]`` in index order
(sorted ids, so the export is the same whichever store it reads), and each edge type
``(src, REL, dst)`` has ``edge_index`` plus, for ``INTERACTED``, ``edge_time`` (ts), ``edge_event``
(code into ``event_vocab``) and ``edge_value``; for ``RELATED``, ``edge_relation`` (code into
``relation_vocab``). ``items`` holds the text and attributes the encoders need, aligned with the
``Item`` index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from kgrec.errors import UnknownIdError
from kgrec.graph.frames import GraphFrames
from kgrec.graph.schema import REL_SPECS, NodeLabel, RelType
from kgrec.graph.store import GraphStore, read_graph
from kgrec.graph.tables import EVENTS

EdgeType = tuple[str, str, str]


@dataclass
class ExportedGraph:
    """A ``HeteroData`` plus everything needed to map tensors back to graph ids."""

    data: HeteroData
    node_ids: dict[str, np.ndarray]
    items: pd.DataFrame
    event_vocab: tuple[str, ...] = EVENTS
    relation_vocab: tuple[str, ...] = ()
    attribute_keys: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    _positions: dict[str, pd.Index] = field(default_factory=dict, repr=False)

    def index_of(self, label: str, ids: object) -> np.ndarray:
        """Row indices of external ``ids`` in node type ``label``.

        Raises:
            UnknownIdError: some ids are not nodes of that type.
        """
        if label not in self._positions:
            self._positions[label] = pd.Index(self.node_ids[label])
        wanted = pd.Index(np.atleast_1d(np.asarray(ids, dtype=object)))
        pos = self._positions[label].get_indexer(wanted)
        if (pos < 0).any():
            raise UnknownIdError(label, wanted[pos < 0].tolist(),
                                 hint=f"they are not {label} nodes of this graph")
        return pos.astype(np.int64)


def to_hetero_data(source: GraphStore | GraphFrames) -> ExportedGraph:
    """Export a store (or frames already read) to PyG tensors."""
    frames = source if isinstance(source, GraphFrames) else read_graph(source)
    data = HeteroData()
    node_ids: dict[str, np.ndarray] = {}
    index: dict[str, pd.Index] = {}
    for label in NodeLabel:
        frame = frames.nodes.get(label)
        ids = (frame["id"].to_numpy(dtype=object) if frame is not None
               else np.empty(0, dtype=object))
        node_ids[label.value] = ids
        index[label.value] = pd.Index(ids)
        data[label.value].num_nodes = len(ids)

    relation_vocab: tuple[str, ...] = ()
    related = frames.edges.get(RelType.RELATED)
    if related is not None and len(related):
        relation_vocab = tuple(sorted(related["relation"].dropna().unique()))

    for rel, frame in frames.edges.items():
        if rel is RelType.CANDIDATE:
            continue
        for src, dst in REL_SPECS[rel].endpoints:
            part = frame[(frame["src_label"] == src.value) & (frame["dst_label"] == dst.value)]
            if not len(part):
                continue
            store = data[(src.value, rel.value, dst.value)]
            s = index[src.value].get_indexer(part["src"])
            d = index[dst.value].get_indexer(part["dst"])
            store.edge_index = torch.from_numpy(np.stack([s, d]).astype(np.int64))
            if rel is RelType.INTERACTED:
                store.edge_time = torch.tensor(part["ts"].to_numpy(np.int64))
                codes = pd.Categorical(part["event"], categories=list(EVENTS)).codes
                store.edge_event = torch.from_numpy(codes.astype(np.int64))
                store.edge_value = torch.tensor(part["value"].to_numpy(np.float32))
            if rel is RelType.RELATED:
                codes = pd.Categorical(part["relation"], categories=list(relation_vocab)).codes
                store.edge_relation = torch.from_numpy(codes.astype(np.int64))

    items = _item_table(frames, node_ids[NodeLabel.ITEM.value])
    attrs = frames.nodes.get(NodeLabel.ATTRIBUTE)
    keys = attrs["key"].to_numpy(dtype=object) if attrs is not None else np.empty(0, dtype=object)
    return ExportedGraph(data=data, node_ids=node_ids, items=items,
                         relation_vocab=relation_vocab, attribute_keys=keys, _positions=index)


def _item_table(frames: GraphFrames, item_ids: np.ndarray) -> pd.DataFrame:
    """Item text and attributes aligned with the Item index (for the text encoder)."""
    items = frames.nodes[NodeLabel.ITEM].set_index("id").reindex(item_ids)
    for rel, col in ((RelType.HAS_BRAND, "brand"), (RelType.IN_CATEGORY, "category")):
        edges = frames.edges.get(rel)
        if edges is None or not len(edges):
            items[col] = pd.Series(pd.NA, index=items.index, dtype="string")
            continue
        first = edges.drop_duplicates("src").set_index("src")["dst"]
        items[col] = first.reindex(items.index).astype("string")
    return items.rename_axis("item_id").reset_index()
