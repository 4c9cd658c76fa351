"""Exploration helpers for notebooks: degrees, the category tree, popularity, neighbourhoods.

Why: notebooks only import kgrec; any logic they show lives here, tested, and works against any
``GraphStore`` (embedded or Neo4j) through its frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from kgrec.errors import UnknownIdError
from kgrec.graph.schema import GRAPH_REL_TYPES, NodeLabel, RelType
from kgrec.graph.store import GraphStore
from kgrec.graph.tables import POSITIVE_EVENTS


def interaction_degrees(store: GraphStore) -> pd.DataFrame:
    """Interactions per user and per item: columns ``label, id, degree`` (zeros included)."""
    inter = store.edges(RelType.INTERACTED)
    parts = []
    for side, label in (("src", NodeLabel.USER), ("dst", NodeLabel.ITEM)):
        ids = store.nodes(label)["id"]
        deg = inter[side].value_counts().reindex(ids, fill_value=0)
        parts.append(pd.DataFrame({"label": label.value, "id": ids.to_numpy(),
                                   "degree": deg.to_numpy(np.int64)}))
    return pd.concat(parts, ignore_index=True)


def degree_distribution(degrees: pd.Series) -> pd.DataFrame:
    """How many nodes have each degree (for a log-log plot): ``degree, count``."""
    counts = degrees.value_counts().sort_index()
    return pd.DataFrame({"degree": counts.index.to_numpy(np.int64),
                         "count": counts.to_numpy(np.int64)})


def category_tree(store: GraphStore) -> nx.DiGraph:
    """The category hierarchy as a parent -> child tree with item counts per node.

    Node attributes: ``name``, ``items`` (items directly in that category) and ``items_total``
    (including all subcategories).
    """
    cats = store.nodes(NodeLabel.CATEGORY)
    sub = store.edges(RelType.SUBCATEGORY_OF)
    in_cat = store.edges(RelType.IN_CATEGORY)["dst"].value_counts()
    tree = nx.DiGraph()
    for cid, name in zip(cats["id"], cats["name"], strict=True):
        tree.add_node(cid, name=name, items=int(in_cat.get(cid, 0)))
    tree.add_edges_from(zip(sub["dst"], sub["src"], strict=True))  # parent -> child
    for node in reversed(list(nx.topological_sort(tree))):
        tree.nodes[node]["items_total"] = tree.nodes[node]["items"] + sum(
            tree.nodes[c]["items_total"] for c in tree.successors(node))
    return tree


def popularity(store: GraphStore, by: str = "brand", *, top: int = 20,
               events: Iterable[str] = POSITIVE_EVENTS) -> pd.DataFrame:
    """Positive interactions and distinct items per brand or category: ``by, interactions,
    items, users``, most popular first.

    Raises:
        ValueError: ``by`` is not ``"brand"`` or ``"category"``.
    """
    rel = {"brand": RelType.HAS_BRAND, "category": RelType.IN_CATEGORY}.get(by)
    if rel is None:
        raise ValueError(f"by must be 'brand' or 'category', not {by!r}")
    inter = store.edges(RelType.INTERACTED)
    inter = inter[inter["event"].isin(list(events))]
    link = store.edges(rel)[["src", "dst"]].rename(columns={"src": "item", "dst": by})
    joined = inter[["src", "dst"]].rename(columns={"src": "user", "dst": "item"}).merge(link)
    out = joined.groupby(by).agg(interactions=("item", "size"), items=("item", "nunique"),
                                 users=("user", "nunique"))
    return out.sort_values("interactions", ascending=False).head(top).reset_index()


def neighbourhood(store: GraphStore, label: str, node_id: str, *, hops: int = 2,
                  max_nodes: int = 60) -> nx.MultiDiGraph:
    """The ``hops``-hop neighbourhood of one node (edges in both directions), capped at
    ``max_nodes`` nodes taken in breadth-first order. Nodes are ``(label, id)``.

    Raises:
        UnknownIdError: the node is not in the store.
    """
    label = NodeLabel(label).value
    if not store.nodes(NodeLabel(label))["id"].eq(node_id).any():
        raise UnknownIdError(label, [node_id])
    edges = pd.concat([store.edges(rel).assign(type=rel.value)[
        ["src_label", "src", "dst_label", "dst", "type"]] for rel in GRAPH_REL_TYPES],
        ignore_index=True)
    edges["s"] = list(zip(edges["src_label"], edges["src"], strict=True))
    edges["d"] = list(zip(edges["dst_label"], edges["dst"], strict=True))
    seen: dict[tuple[str, str], int] = {(label, node_id): 0}
    frontier = {(label, node_id)}
    for hop in range(1, hops + 1):
        touch = edges[edges["s"].isin(frontier) | edges["d"].isin(frontier)]
        nxt = [n for n in pd.unique(pd.concat([touch["s"], touch["d"]])) if n not in seen]
        for n in nxt[: max(0, max_nodes - len(seen))]:
            seen[n] = hop
        frontier = {n for n in nxt if n in seen}
        if len(seen) >= max_nodes:
            break
    sub = edges[edges["s"].isin(seen) & edges["d"].isin(seen)]
    graph = nx.MultiDiGraph()
    for n, hop in seen.items():
        graph.add_node(n, label=n[0], hop=hop)
    graph.add_edges_from((s, d, {"type": t}) for s, d, t in
                         zip(sub["s"], sub["d"], sub["type"], strict=True))
    return graph


NODE_COLOURS = {NodeLabel.USER.value: "#4c72b0", NodeLabel.ITEM.value: "#dd8452",
                NodeLabel.BRAND.value: "#55a868", NodeLabel.CATEGORY.value: "#c44e52",
                NodeLabel.ATTRIBUTE.value: "#8172b3"}


def draw_graph(graph: nx.MultiDiGraph, ax: Any = None, *, title: str = "",
               highlight: tuple[str, str] | None = None, seed: int = 0) -> Any:
    """Draw a small ``(label, id)`` graph with matplotlib, coloured by label; returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 7))
    pos = nx.spring_layout(graph, seed=seed, k=0.9)
    colours = [NODE_COLOURS.get(n[0], "#999999") for n in graph.nodes]
    sizes = [600 if n == highlight else 220 for n in graph.nodes]
    nx.draw_networkx_edges(graph, pos, ax=ax, alpha=0.35, arrows=False)
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_color=colours, node_size=sizes)
    labels = {n: (n[1] if len(n[1]) <= 18 else n[1][:16] + "…") for n in graph.nodes}
    nx.draw_networkx_labels(graph, pos, labels=labels, ax=ax, font_size=7)
    ax.legend(handles=[Line2D([], [], marker="o", ls="", color=c, label=lab)
                       for lab, c in NODE_COLOURS.items()], loc="lower left", fontsize=8)
    ax.set_title(title)
    ax.set_axis_off()
    return ax
