"""The ``GraphStore`` protocol that the embedded store and the Neo4j store both implement.

Why: everything above the stores (ingest, export to PyG, candidate write-back, notebooks) is
written once against this protocol, and one contract test suite runs against both stores.
Frames in and out follow :mod:`kgrec.graph.frames` (canonical columns, dtypes, row order).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd

from kgrec.graph.frames import GraphFrames
from kgrec.graph.schema import GRAPH_REL_TYPES, NodeLabel, RelType


@runtime_checkable
class GraphStore(Protocol):
    """A place that holds the graph. Upserts are idempotent: writing the same frames twice
    leaves the store as after the first write."""

    def upsert_nodes(self, label: NodeLabel, frame: pd.DataFrame) -> int:
        """Insert or update nodes keyed by ``id``; returns the number of rows written."""
        ...

    def upsert_edges(self, rel_type: RelType, frame: pd.DataFrame) -> int:
        """Insert or update edges keyed by their identity columns; endpoints must exist."""
        ...

    def replace_edges_from(self, rel_type: RelType, src_label: NodeLabel, src_ids: list[str],
                           frame: pd.DataFrame) -> int:
        """Atomically delete ``rel_type`` edges leaving ``src_ids`` and write ``frame``."""
        ...

    def nodes(self, label: NodeLabel) -> pd.DataFrame:
        """All nodes of ``label`` as a canonical frame."""
        ...

    def edges(self, rel_type: RelType) -> pd.DataFrame:
        """All edges of ``rel_type`` as a canonical frame."""
        ...

    def clear(self) -> None:
        """Delete every node and edge of this store's graph (and its key fingerprint), and
        nothing else: data kgrec did not write stays."""
        ...

    def node_count(self) -> int:
        """Nodes of this store's graph, any label (cheap: no frames are built)."""
        ...

    def key_fingerprint(self) -> str | None:
        """The pseudonym-key fingerprint recorded at first ingest, or None."""
        ...

    def claim_key_fingerprint(self, fingerprint: str) -> str:
        """Record ``fingerprint`` unless one is recorded already; return the recorded one."""
        ...


def write_graph(store: GraphStore, frames: GraphFrames) -> dict[str, int]:
    """Upsert all nodes first (edges need their endpoints), then all edges.

    A store with a ``write_graph`` method of its own (Neo4j: concurrent batches, ``CREATE`` on a
    first load) writes the same graph its faster way.
    """
    own = getattr(store, "write_graph", None)
    if callable(own):
        return dict(own(frames))
    return upsert_frames(store, frames)


def upsert_frames(store: GraphStore, frames: GraphFrames) -> dict[str, int]:
    """The generic :func:`write_graph`: every node label, then every relationship type, one
    ``upsert_*`` call each (the per-batch ``MERGE`` path)."""
    written: dict[str, int] = {}
    for label in NodeLabel:
        if label in frames.nodes and len(frames.nodes[label]):
            written[label.value] = store.upsert_nodes(label, frames.nodes[label])
    for rel in RelType:
        if rel in frames.edges and len(frames.edges[rel]):
            written[rel.value] = store.upsert_edges(rel, frames.edges[rel])
    return written


def read_graph(store: GraphStore) -> GraphFrames:
    """The whole ingested graph (no CANDIDATE edges) as frames."""
    return GraphFrames(
        nodes={label: store.nodes(label) for label in NodeLabel},
        edges={rel: store.edges(rel) for rel in GRAPH_REL_TYPES},
    )


def graph_stats(store: GraphStore) -> dict[str, object]:
    """Counts by label and type, plus degree summaries of users and items."""
    frames = read_graph(store)
    counts = frames.counts()
    inter = frames.edges[RelType.INTERACTED]
    degrees: dict[str, dict[str, float]] = {}
    for side, label in (("src", NodeLabel.USER), ("dst", NodeLabel.ITEM)):
        n = len(frames.nodes[label])
        deg = inter[side].value_counts().reindex(frames.nodes[label]["id"], fill_value=0)
        degrees[label.value] = ({"min": 0.0, "median": 0.0, "mean": 0.0, "max": 0.0} if n == 0
                                else {"min": float(deg.min()), "median": float(deg.median()),
                                      "mean": float(deg.mean()), "max": float(deg.max())})
    return {"counts": counts, "interaction_degree": degrees}
