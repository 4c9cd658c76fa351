"""Folding new SKUs and new users into a fitted graph without retraining (the inductive path).

The recommender keeps the graph it was fitted on as :class:`~kgrec.graph.frames.GraphFrames`;
a new user is added to a copy (:func:`fold_in`), the copy is exported, and the fitted GNN embeds
just the new nodes on their neighbourhood. New SKUs take the cheaper append-only path
(:func:`new_item_ranking`): only their own small graph is built and exported, and it is appended
to the base graph's tensors, built once per loaded model (:mod:`kgrec.coldstart.append`); the
merged frames, which only explanations read, are built when first asked for.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kgrec.coldstart.append import embed_new_items
from kgrec.errors import ColdStartWarning, DataError, ValidationError
from kgrec.graph.frames import GraphFrames, normalize_edges, normalize_nodes
from kgrec.graph.schema import GRAPH_REL_TYPES, NodeLabel, RelType
from kgrec.graph.tables import ITEM_COLUMNS, CatalogTables
from kgrec.ranking.candidates import block_frame, iter_ranked
from kgrec.ranking.results import NewItemRanking, Scope

if TYPE_CHECKING:
    from kgrec.coldstart import ColdStartModel, NodeEmbeddings
    from kgrec.graph.export import ExportedGraph
    from kgrec.ranking.recommender import Recommender

NEW_USER_PREFIX = "__new_user__"


def empty_result() -> pd.DataFrame:
    """An empty ``user_id, item_id, rank, score`` result."""
    return pd.DataFrame({"user_id": pd.Series(dtype="string"),
                         "item_id": pd.Series(dtype="string"),
                         "rank": pd.Series(dtype="int64"), "score": pd.Series(dtype="float64")})


def top_users_per_item(model: ColdStartModel, emb: NodeEmbeddings, out_users: np.ndarray,
                        k: int, chunk: int) -> pd.DataFrame:
    """For each item of ``emb``, the ``k`` users of ``emb`` with the highest probability."""
    n_u, n_i = len(emb.user_ids), len(emb.item_ids)
    k_eff = min(k, n_u)
    if n_u == 0 or n_i == 0:
        return empty_result()
    parts = []
    rows_per = max(1, (1 << 16) // max(n_u, 1))
    for s in range(0, n_i, max(rows_per, 1)):
        items = np.arange(s, min(n_i, s + rows_per))
        p = model.score_matrix(emb, np.arange(n_u), items,  # type: ignore[arg-type]
                               chunk_size=1 << 16).T  # (items, U)
        order = np.argsort(-p, axis=1, kind="stable")[:, :k_eff]
        parts.append(pd.DataFrame({
            "user_id": out_users[order.reshape(-1)],
            "item_id": np.repeat(np.asarray(emb.item_ids, dtype=object)[items], k_eff),
            "rank": np.tile(np.arange(1, k_eff + 1), len(items)),
            "score": np.take_along_axis(p, order, 1).reshape(-1).astype(np.float64)}))
    return pd.concat(parts, ignore_index=True).astype({"user_id": "string", "item_id": "string"})


def canonical_items(new_items: pd.DataFrame) -> pd.DataFrame:
    """New SKU rows as canonical item columns; ids stripped, present and unique."""
    if "item_id" not in new_items.columns:
        raise ValidationError("new_items needs an item_id column; found: "
                              f"{', '.join(map(str, new_items.columns))}")
    items = new_items.copy()
    for col in ITEM_COLUMNS:
        if col not in items.columns:
            items[col] = pd.NA
    ids = items["item_id"].astype("string").str.strip()
    if ids.isna().any() or (ids == "").any():
        raise ValidationError("new_items has rows without an item_id")
    if ids.duplicated().any():
        raise ValidationError(f"duplicate item_id in new_items: "
                              f"{ids[ids.duplicated()].unique().tolist()[:5]}")
    items["item_id"] = ids
    items["price"] = pd.to_numeric(items["price"], errors="coerce").astype("float64")
    for col in items.columns:
        if col != "price":
            items[col] = items[col].astype("string")
    return items.reset_index(drop=True)


def unknown_new_items(items: pd.DataFrame, frames: GraphFrames) -> list[str]:
    """New SKUs with no text and no brand/category/attribute the graph knows (nothing to
    score them from but the model's "unknown" embeddings)."""
    def known(label: NodeLabel, ids: pd.Series) -> np.ndarray:
        nodes = pd.Index(frames.nodes[label]["id"].astype(object))
        return nodes.get_indexer(ids.astype(object).fillna("")) >= 0

    text = (items["title"].fillna("").str.strip() + items["description"].fillna("")
            .str.strip()).str.len().to_numpy() > 0
    ok = text | known(NodeLabel.BRAND, items["brand"]) | \
        known(NodeLabel.CATEGORY, items["category"])
    for col in (c for c in items.columns if c not in ITEM_COLUMNS):
        ok |= known(NodeLabel.ATTRIBUTE, col + "=" + items[col].astype("string")
                    .str.split("|").str[0].str.strip())
    return items["item_id"][~ok].astype(str).tolist()


def new_user_tables(users: pd.DataFrame, clicks: pd.DataFrame | None,
                    item_rows: Callable[[Iterable[object]], np.ndarray]
                    ) -> tuple[CatalogTables, np.ndarray, np.ndarray, np.ndarray]:
    """Canonical tables of new users (profile + clicks) under temporary graph ids.

    Returns ``(tables, shown ids, temporary ids, item rows of the clicks)``; ``item_rows``
    maps item ids to rows of the fitted graph (raising ``UnknownIdError``).

    Raises:
        ValidationError: no ``user_id`` column, or clicks of users not in ``users``.
    """
    if "user_id" not in users.columns:
        raise ValidationError("users needs a user_id column")
    users = users.astype(object).copy()
    shown = users["user_id"].astype(str).to_numpy(object)
    temp = np.array([f"{NEW_USER_PREFIX}{n}" for n in range(len(users))], dtype=object)
    users["user_id"] = temp
    users = users.astype({c: "string" for c in users.columns})
    cl = pd.DataFrame(columns=["user_id", "item_id"]) if clicks is None else clicks
    rows = item_rows(cl["item_id"]) if len(cl) else np.zeros(0, np.int64)
    to_temp = dict(zip(shown, temp, strict=True))
    cl_user = cl["user_id"].astype(str).map(to_temp)
    if cl_user.isna().any():
        raise ValidationError("clicks name users that are not in users: "
                              f"{cl['user_id'][cl_user.isna()].unique().tolist()[:5]}")
    inter = pd.DataFrame({
        "user_id": cl_user.to_numpy(object), "item_id": cl["item_id"].astype(str).to_numpy(),
        "event": cl["event"].astype(str).to_numpy() if "event" in cl else "click",
        "ts": pd.to_numeric(cl["ts"]).to_numpy(np.int64) if "ts" in cl
        else np.arange(len(cl), dtype=np.int64),
        "value": np.nan}).astype({"user_id": "string", "item_id": "string",
                                  "event": "string"})
    return CatalogTables(users=users, interactions=inter), shown, temp, rows


def known_new_users(tables: CatalogTables, frames: GraphFrames, temp: np.ndarray) -> np.ndarray:
    """Per new user: has a profile value the graph knows, or a click."""
    users = tables.users
    nodes = pd.Index(frames.nodes[NodeLabel.ATTRIBUTE]["id"].astype(object))
    known = np.zeros(len(users), dtype=bool)
    for c in (c for c in users.columns if c != "user_id"):
        ids = (c + "=" + users[c].astype("string").str.strip()).astype(object).fillna("")
        known |= nodes.get_indexer(ids) >= 0
    return known | np.isin(temp, tables.interactions["user_id"].astype(object).to_numpy())


def new_item_ranking(rec: Recommender, new_items: pd.DataFrame,
                     user_ids: Sequence[str] | None, k: int) -> NewItemRanking:
    """:meth:`Recommender.rank_new_items` (see there for arguments, errors and warnings)."""
    from kgrec.graph.build import build_graph
    from kgrec.graph.export import to_hetero_data

    rec._check_fitted()
    items = canonical_items(new_items)
    dup = items["item_id"][rec._item_pos.get_indexer(items["item_id"]) >= 0]
    if len(dup):
        raise DataError(f"{len(dup)} new item id(s) already in the graph: "
                        f"{', '.join(map(repr, dup.tolist()[:5]))}; rank known items with "
                        "recommend()")
    cold = unknown_new_items(items, rec.frames_)
    if cold:
        warnings.warn(ColdStartWarning(
            f"{len(cold)} new SKU(s) have no text and no known brand, category or "
            f"attribute, so they are scored from the model's 'unknown' embeddings only: "
            f"{', '.join(map(repr, cold[:5]))}"), stacklevel=3)
    shown_users = None if user_ids is None else [str(u) for u in user_ids]
    rows = (np.arange(len(rec.emb_.user_ids)) if shown_users is None
            else rec._user_rows(shown_users))
    out_users = (np.asarray(rec.emb_.user_ids, dtype=object) if shown_users is None
                 else np.asarray(shown_users, dtype=object))
    extra = build_graph(CatalogTables(items=items))
    new_ids = items["item_id"].tolist()
    emb = embed_new_items(rec.model_, rec._new_item_base.get(rec.model_, rec.graph_), rec.emb_,
                          to_hetero_data(extra), new_ids, rows)
    by_user = pd.concat(
        [block_frame(b, out_users[b.user_rows], emb.item_ids)
         for b in iter_ranked(rec.model_, emb, np.arange(len(rows)), np.arange(len(new_ids)),
                              k=k, rerank_n=rec.rerank_n, retrieval=rec.retrieval,
                              user_chunk=rec.user_chunk)]
        or [empty_result()], ignore_index=True)
    by_item = top_users_per_item(rec.model_, emb, out_users, k, rec.user_chunk)
    # explanations need the old items too: base embeddings plus the new SKUs
    scope = Scope(lambda: merge_frames(rec.frames_, extra), rec.emb_.with_items(emb))
    return NewItemRanking(by_user=by_user, by_item=by_item, cold_items=cold, _rec=rec,
                          _scope=scope)


def warm_new_items(rec: Recommender) -> None:
    """Build the graph tensors new SKUs are appended to now, not on the first request."""
    rec._check_fitted()
    rec._new_item_base.get(rec.model_, rec.graph_)


def fold_in(base: GraphFrames, tables: CatalogTables) -> tuple[GraphFrames, ExportedGraph]:
    """``base`` plus the graph of ``tables`` (new SKUs/users), and its export."""
    from kgrec.graph.build import build_graph
    from kgrec.graph.export import to_hetero_data

    frames = merge_frames(base, build_graph(tables))
    return frames, to_hetero_data(frames)


def merge_frames(base: GraphFrames, extra: GraphFrames) -> GraphFrames:
    """``base`` plus the nodes and edges of ``extra`` (existing node ids keep base's values)."""
    out = GraphFrames()
    for label in NodeLabel:
        parts = [f for f in (base.nodes.get(label), extra.nodes.get(label)) if f is not None]
        frame = pd.concat(parts, ignore_index=True).drop_duplicates("id", keep="first") \
            if parts else pd.DataFrame()
        out.nodes[label] = normalize_nodes(label, frame)
    for rel in GRAPH_REL_TYPES:
        parts = [f for f in (base.edges.get(rel), extra.edges.get(rel))
                 if f is not None and len(f)]
        if parts:
            out.edges[rel] = normalize_edges(rel, pd.concat(parts, ignore_index=True))
    return out


def frames_and_export(graph: object) -> tuple[GraphFrames, ExportedGraph]:
    """The frames and the export of a store, frames or export (whichever was given)."""
    from kgrec.graph.export import ExportedGraph, to_hetero_data
    from kgrec.graph.store import GraphStore, read_graph

    if isinstance(graph, ExportedGraph):
        return frames_from_export(graph), graph
    if isinstance(graph, GraphFrames):
        return graph, to_hetero_data(graph)
    if isinstance(graph, GraphStore):
        frames = read_graph(graph)
        return frames, to_hetero_data(frames)
    raise TypeError(f"expected a GraphStore, GraphFrames or ExportedGraph, got "
                    f"{type(graph).__name__}")


def frames_from_export(graph: ExportedGraph) -> GraphFrames:
    """Graph frames that export back to ``graph`` (nodes, edges and item text)."""
    out = GraphFrames()
    items = graph.items.rename(columns={"item_id": "id"})
    out.nodes[NodeLabel.ITEM] = normalize_nodes(NodeLabel.ITEM, items)
    for label in (NodeLabel.USER, NodeLabel.BRAND):
        out.nodes[label] = normalize_nodes(label, pd.DataFrame(
            {"id": graph.node_ids[label.value]}))
    cats = pd.Series(graph.node_ids[NodeLabel.CATEGORY.value], dtype="string")
    out.nodes[NodeLabel.CATEGORY] = normalize_nodes(NodeLabel.CATEGORY, pd.DataFrame(
        {"id": cats, "name": cats.str.split(" > ").str[-1]}))
    attrs = pd.Series(graph.node_ids[NodeLabel.ATTRIBUTE.value], dtype="string")
    kv = attrs.str.split("=", n=1)
    out.nodes[NodeLabel.ATTRIBUTE] = normalize_nodes(NodeLabel.ATTRIBUTE, pd.DataFrame(
        {"id": attrs, "key": kv.str[0], "value": kv.str[1]}))
    for et in graph.data.edge_types:
        src, rel, dst = et
        store = graph.data[et]
        ei = store.edge_index.numpy()
        frame = pd.DataFrame({"src_label": src, "src": graph.node_ids[src][ei[0]],
                              "dst_label": dst, "dst": graph.node_ids[dst][ei[1]]})
        if rel == RelType.INTERACTED.value:
            frame["event"] = np.asarray(graph.event_vocab, dtype=object)[
                store.edge_event.numpy()]
            frame["ts"] = store.edge_time.numpy()
            frame["value"] = store.edge_value.numpy().astype(np.float64)
        if rel == RelType.RELATED.value:
            frame["relation"] = np.asarray(graph.relation_vocab, dtype=object)[
                store.edge_relation.numpy()]
        rt = RelType(rel)
        prev = out.edges.get(rt)
        out.edges[rt] = normalize_edges(rt, frame if prev is None else
                                        pd.concat([prev, frame], ignore_index=True))
    return out
