"""Turn validated canonical tables into graph frames (nodes and edges), vectorised.

Why: this is the one place that decides how rows become graph structure, so the embedded store
and Neo4j receive exactly the same upserts:

- each item -> ``Item``; its brand -> ``Brand`` + ``HAS_BRAND``; its category path
  ``A > B > C`` -> ``Category`` nodes for every prefix, ``SUBCATEGORY_OF`` child->parent and
  ``IN_CATEGORY`` to the leaf; every extra item column -> ``Attribute {key, value}`` +
  ``HAS_ATTRIBUTE`` (multi-valued cells split on ``|``);
- each user -> ``User`` (id already pseudonymised); profile columns -> ``Attribute`` +
  ``HAS_ATTRIBUTE``;
- each interaction -> ``INTERACTED {event, ts, value}``;
- knowledge-graph triples -> ``RELATED {relation}``; an entity linked to an item *is* that item,
  any other entity is ``Attribute {key: "entity", value: <entity id>}``.
"""

from __future__ import annotations

import pandas as pd

from kgrec.graph.frames import GraphFrames, normalize_edges, normalize_nodes
from kgrec.graph.schema import REL_SPECS, NodeLabel, RelType
from kgrec.graph.tables import CATEGORY_SEP, MULTI_SEP, CatalogTables

ENTITY_KEY = "entity"


def attribute_id(key: str | pd.Series, value: pd.Series) -> pd.Series:
    """``key=value`` ids of Attribute nodes."""
    return key + "=" + value if isinstance(key, pd.Series) else f"{key}=" + value


def build_graph(tables: CatalogTables) -> GraphFrames:
    """Graph frames for validated ``tables`` (user ids must already be pseudonymised)."""
    items, users = tables.items, tables.users
    nodes: dict[NodeLabel, list[pd.DataFrame]] = {label: [] for label in NodeLabel}
    edges: dict[RelType, list[pd.DataFrame]] = {}

    def add_edges(rel: RelType, src_label: NodeLabel, src: pd.Series, dst_label: NodeLabel,
                  dst: pd.Series, **props: pd.Series) -> None:
        frame = pd.DataFrame({"src": src.to_numpy(), "dst": dst.to_numpy(),
                              **{k: v.to_numpy() for k, v in props.items()}})
        frame.insert(0, "src_label", src_label.value)
        frame.insert(2, "dst_label", dst_label.value)
        edges.setdefault(rel, []).append(frame)

    nodes[NodeLabel.ITEM].append(items[["item_id", "title", "description", "price"]]
                                 .rename(columns={"item_id": "id"}))
    nodes[NodeLabel.USER].append(users[["user_id"]].rename(columns={"user_id": "id"}))

    branded = items[items["brand"].notna()]
    nodes[NodeLabel.BRAND].append(pd.DataFrame({"id": branded["brand"].unique()}))
    add_edges(RelType.HAS_BRAND, NodeLabel.ITEM, branded["item_id"], NodeLabel.BRAND,
              branded["brand"])

    _add_categories(items, nodes, add_edges)

    for owner_label, table, id_col, columns in (
        (NodeLabel.ITEM, items, "item_id", tables.item_attribute_columns()),
        (NodeLabel.USER, users, "user_id", tables.user_attribute_columns()),
    ):
        for column in columns:
            values = table[[id_col, column]].dropna()
            values = values.assign(**{column: values[column].astype("string").str.split(MULTI_SEP)})
            values = values.explode(column)
            values[column] = values[column].astype("string").str.strip()
            values = values[values[column].fillna("") != ""]
            attr_ids = attribute_id(column, values[column])
            nodes[NodeLabel.ATTRIBUTE].append(pd.DataFrame(
                {"id": attr_ids.to_numpy(), "key": column, "value": values[column].to_numpy()}))
            add_edges(RelType.HAS_ATTRIBUTE, owner_label, values[id_col], NodeLabel.ATTRIBUTE,
                      attr_ids)

    inter = tables.interactions
    add_edges(RelType.INTERACTED, NodeLabel.USER, inter["user_id"], NodeLabel.ITEM,
              inter["item_id"], event=inter["event"], ts=inter["ts"], value=inter["value"])

    _add_triples(tables, nodes, add_edges)

    out = GraphFrames()
    for label, parts in nodes.items():
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        out.nodes[label] = normalize_nodes(label, frame.drop_duplicates("id", keep="last")
                                           if len(frame) else frame)
    for rel, parts in edges.items():
        frame = pd.concat(parts, ignore_index=True)
        norm = normalize_edges(rel, frame)
        out.edges[rel] = norm.drop_duplicates(REL_SPECS[rel].identity_columns, keep="last") \
            .reset_index(drop=True)
    return out


def _add_categories(items: pd.DataFrame, nodes: dict, add_edges) -> None:  # type: ignore[type-arg]
    paths = items[["item_id", "category"]].dropna()
    paths = paths[paths["category"].str.strip() != ""]
    add_edges(RelType.IN_CATEGORY, NodeLabel.ITEM, paths["item_id"], NodeLabel.CATEGORY,
              paths["category"])
    # Every prefix of every path is a Category whose parent is the prefix one level shorter.
    # The loop runs over distinct paths (hundreds), not over items.
    rows: dict[str, tuple[str, str | None]] = {}
    for path in paths["category"].unique():
        levels = str(path).split(CATEGORY_SEP)
        for depth in range(len(levels)):
            prefix = CATEGORY_SEP.join(levels[: depth + 1])
            parent = CATEGORY_SEP.join(levels[:depth]) if depth else None
            rows.setdefault(prefix, (levels[depth], parent))
    cats = pd.DataFrame([(k, name, parent) for k, (name, parent) in rows.items()],
                        columns=["id", "name", "parent"])
    nodes[NodeLabel.CATEGORY].append(cats[["id", "name"]])
    child = cats[cats["parent"].notna()]
    add_edges(RelType.SUBCATEGORY_OF, NodeLabel.CATEGORY, child["id"], NodeLabel.CATEGORY,
              child["parent"])


def _add_triples(tables: CatalogTables, nodes: dict, add_edges) -> None:  # type: ignore[type-arg]
    triples = tables.triples
    if triples is None or len(triples) == 0:
        return
    link = tables.item_entities.drop_duplicates("entity").set_index("entity")["item_id"]
    known_items = set(tables.items["item_id"].astype(str))
    link = link[link.isin(known_items)]
    ends = {}
    for side in ("head", "tail"):
        entity = triples[side].astype("string")
        item = entity.map(link)
        is_item = item.notna()
        node_id = item.where(is_item, attribute_id(ENTITY_KEY, entity))
        ends[side] = (is_item, node_id)
        other = entity[~is_item].unique()
        nodes[NodeLabel.ATTRIBUTE].append(pd.DataFrame(
            {"id": attribute_id(ENTITY_KEY, pd.Series(other, dtype="string")).to_numpy(),
             "key": ENTITY_KEY, "value": other}))
    for h_item in (True, False):
        for t_item in (True, False):
            mask = (ends["head"][0] == h_item) & (ends["tail"][0] == t_item)
            if not mask.any():
                continue
            add_edges(RelType.RELATED,
                      NodeLabel.ITEM if h_item else NodeLabel.ATTRIBUTE, ends["head"][1][mask],
                      NodeLabel.ITEM if t_item else NodeLabel.ATTRIBUTE, ends["tail"][1][mask],
                      relation=triples["relation"][mask])
