"""Every Cypher statement kgrec runs, in one module.

Why: values are always parameters (``$rows``, ``$ids``); labels and relationship types cannot be
parameters in Cypher, so the statements that need them are *templates* filled only from the
schema enums (``NodeLabel``, ``RelType``) through the functions below, never from user strings.

Namespace: every node kgrec writes carries ``kgrec_graph = $graph`` (the store's graph name), and
every statement matches on it, so several kgrec graphs and foreign data can share one database:
kgrec reads, clears and replaces only nodes of its own graph. Uniqueness is per graph: a composite
``(kgrec_graph, id)`` uniqueness constraint (Community edition supports those). The graph's
metadata (the pseudonym-key fingerprint) is one ``(:KgrecGraph {name})`` node.
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

GRAPH_PROPERTY = "kgrec_graph"
META_LABEL = "KgrecGraph"


def create_constraint(label: NodeLabel) -> str:
    label = check_label(label)
    return (f"CREATE CONSTRAINT kgrec_{label.value.lower()}_graph_id IF NOT EXISTS "
            f"FOR (n:{label.value}) REQUIRE (n.{GRAPH_PROPERTY}, n.id) IS UNIQUE")


def drop_legacy_constraint(label: NodeLabel) -> str:
    """Earlier kgrec versions made ``id`` unique per label database-wide, which forbids a second
    graph (or foreign data) with the same ids; the constraint is kgrec's own (``kgrec_*``)."""
    label = check_label(label)
    return f"DROP CONSTRAINT kgrec_{label.value.lower()}_id IF EXISTS"


CREATE_META_CONSTRAINT = (f"CREATE CONSTRAINT kgrec_graph_name IF NOT EXISTS "
                          f"FOR (m:{META_LABEL}) REQUIRE m.name IS UNIQUE")
READ_KEY_FINGERPRINT = (f"MATCH (m:{META_LABEL} {{name: $graph}}) "
                        f"RETURN m.key_fingerprint AS fingerprint")
CLAIM_KEY_FINGERPRINT = (f"MERGE (m:{META_LABEL} {{name: $graph}}) "
                         f"ON CREATE SET m.key_fingerprint = $fingerprint, m.created_at = $now "
                         f"SET m.key_fingerprint = coalesce(m.key_fingerprint, $fingerprint) "
                         f"RETURN m.key_fingerprint AS fingerprint")


def upsert_nodes(label: NodeLabel) -> str:
    label = check_label(label)
    sets = ", ".join(f"n.{p} = row.{p}" for p, _ in NODE_SPECS[label].properties)
    return (f"UNWIND $rows AS row MERGE (n:{label.value} {{{GRAPH_PROPERTY}: $graph, id: row.id}})"
            + (f" SET {sets}" if sets else ""))


def upsert_edges(rel_type: RelType, src: NodeLabel, dst: NodeLabel) -> str:
    spec = REL_SPECS[check_rel_type(rel_type)]
    src, dst = check_label(src), check_label(dst)
    key = ", ".join(f"{k}: row.{k}" for k in spec.key_columns)
    sets = ", ".join(f"r.{p} = row.{p}" for p in spec.value_columns)
    return (f"UNWIND $rows AS row "
            f"MATCH (a:{src.value} {{{GRAPH_PROPERTY}: $graph, id: row.src}}) "
            f"MATCH (b:{dst.value} {{{GRAPH_PROPERTY}: $graph, id: row.dst}}) "
            f"MERGE (a)-[r:{spec.type.value}{' {' + key + '}' if key else ''}]->(b)"
            + (f" SET {sets}" if sets else "") + " RETURN count(r) AS written")


def create_nodes(label: NodeLabel) -> str:
    """``CREATE`` instead of ``MERGE``: only for rows known new (a first load into an empty
    graph), where it skips the index lookup per row; the uniqueness constraint still refuses a
    duplicate, so a concurrent writer makes the load fail rather than the graph wrong."""
    label = check_label(label)
    props = "".join(f", {p}: row.{p}" for p, _ in NODE_SPECS[label].properties)
    return (f"UNWIND $rows AS row "
            f"CREATE (n:{label.value} {{{GRAPH_PROPERTY}: $graph, id: row.id{props}}})")


def create_edges(rel_type: RelType, src: NodeLabel, dst: NodeLabel) -> str:
    """``CREATE`` twin of :func:`upsert_edges` for a first load (rows deduplicated by identity);
    null properties are simply not stored, as with ``SET r.p = null``."""
    spec = REL_SPECS[check_rel_type(rel_type)]
    src, dst = check_label(src), check_label(dst)
    props = ", ".join(f"{p}: row.{p}" for p in (*spec.key_columns, *spec.value_columns))
    return (f"UNWIND $rows AS row "
            f"MATCH (a:{src.value} {{{GRAPH_PROPERTY}: $graph, id: row.src}}) "
            f"MATCH (b:{dst.value} {{{GRAPH_PROPERTY}: $graph, id: row.dst}}) "
            f"CREATE (a)-[r:{spec.type.value}{' {' + props + '}' if props else ''}]->(b) "
            f"RETURN count(r) AS written")


def delete_edges_from(rel_type: RelType, src: NodeLabel) -> str:
    rel_type, src = check_rel_type(rel_type), check_label(src)
    return (f"UNWIND $ids AS sid "
            f"MATCH (a:{src.value} {{{GRAPH_PROPERTY}: $graph, id: sid}})-[r:{rel_type.value}]->"
            f"(b {{{GRAPH_PROPERTY}: $graph}}) DELETE r")


def read_nodes(label: NodeLabel) -> str:
    label = check_label(label)
    cols = ", ".join(f"n.{c} AS {c}" for c in NODE_SPECS[label].columns)
    return f"MATCH (n:{label.value}) WHERE n.{GRAPH_PROPERTY} = $graph RETURN {cols}"


def read_edges(rel_type: RelType, src: NodeLabel, dst: NodeLabel) -> str:
    spec = REL_SPECS[check_rel_type(rel_type)]
    src, dst = check_label(src), check_label(dst)
    props = "".join(f", r.{c} AS {c}" for c in (*spec.key_columns, *spec.value_columns))
    return (f"MATCH (a:{src.value})-[r:{spec.type.value}]->(b:{dst.value}) "
            f"WHERE a.{GRAPH_PROPERTY} = $graph AND b.{GRAPH_PROPERTY} = $graph "
            f"RETURN a.id AS src, b.id AS dst{props}")


DELETE_GRAPH_BATCHED = (
    f"MATCH (n) WHERE ({' OR '.join(f'n:{label.value}' for label in NodeLabel)}) "
    f"AND n.{GRAPH_PROPERTY} = $graph "
    f"CALL (n) {{ DETACH DELETE n }} IN TRANSACTIONS OF 10000 ROWS"
)
DELETE_META = f"MATCH (m:{META_LABEL} {{name: $graph}}) DELETE m"
COUNT_GRAPH_NODES = (f"MATCH (n) WHERE n.{GRAPH_PROPERTY} = $graph "
                     f"AND ({' OR '.join(f'n:{label.value}' for label in NodeLabel)}) "
                     f"RETURN count(n) AS n")
SERVER_VERSION = ("CALL dbms.components() YIELD name, versions, edition "
                  "RETURN versions[0] AS v, edition")
