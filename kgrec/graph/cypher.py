"""Every Cypher statement kgrec runs, in one module.

Why: values are always parameters (``$rows``, ``$ids``); labels and relationship types cannot be
parameters in Cypher, so the statements that need them are *templates* filled only from the
schema enums (``NodeLabel``, ``RelType``) through the functions below, never from user strings.
"""

from __future__ import annotations

from kgrec.graph.schema import (
    NODE_SPECS,
    REL_SPECS,
    NodeLabel,
    RelType,
    check_label,
    check_rel_type,
)


def create_constraint(label: NodeLabel) -> str:
    label = check_label(label)
    return (f"CREATE CONSTRAINT kgrec_{label.value.lower()}_id IF NOT EXISTS "
            f"FOR (n:{label.value}) REQUIRE n.id IS UNIQUE")


def upsert_nodes(label: NodeLabel) -> str:
    label = check_label(label)
    sets = ", ".join(f"n.{p} = row.{p}" for p, _ in NODE_SPECS[label].properties)
    return (f"UNWIND $rows AS row MERGE (n:{label.value} {{id: row.id}})"
            + (f" SET {sets}" if sets else ""))


def upsert_edges(rel_type: RelType, src: NodeLabel, dst: NodeLabel) -> str:
    spec = REL_SPECS[check_rel_type(rel_type)]
    src, dst = check_label(src), check_label(dst)
    key = ", ".join(f"{k}: row.{k}" for k in spec.key_columns)
    sets = ", ".join(f"r.{p} = row.{p}" for p in spec.value_columns)
    return (f"UNWIND $rows AS row "
            f"MATCH (a:{src.value} {{id: row.src}}) MATCH (b:{dst.value} {{id: row.dst}}) "
            f"MERGE (a)-[r:{spec.type.value}{' {' + key + '}' if key else ''}]->(b)"
            + (f" SET {sets}" if sets else "") + " RETURN count(r) AS written")


def delete_edges_from(rel_type: RelType, src: NodeLabel) -> str:
    rel_type, src = check_rel_type(rel_type), check_label(src)
    return (f"UNWIND $ids AS sid MATCH (a:{src.value} {{id: sid}})-[r:{rel_type.value}]->() "
            f"DELETE r")


def read_nodes(label: NodeLabel) -> str:
    label = check_label(label)
    cols = ", ".join(f"n.{c} AS {c}" for c in NODE_SPECS[label].columns)
    return f"MATCH (n:{label.value}) RETURN {cols}"


def read_edges(rel_type: RelType, src: NodeLabel, dst: NodeLabel) -> str:
    spec = REL_SPECS[check_rel_type(rel_type)]
    src, dst = check_label(src), check_label(dst)
    props = "".join(f", r.{c} AS {c}" for c in (*spec.key_columns, *spec.value_columns))
    return (f"MATCH (a:{src.value})-[r:{spec.type.value}]->(b:{dst.value}) "
            f"RETURN a.id AS src, b.id AS dst{props}")


DELETE_ALL_BATCHED = (
    "MATCH (n) WHERE n:User OR n:Item OR n:Brand OR n:Category OR n:Attribute "
    "CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
)
COUNT_NODES = "MATCH (n) RETURN count(n) AS n"
SERVER_VERSION = ("CALL dbms.components() YIELD name, versions, edition "
                  "RETURN versions[0] AS v, edition")
