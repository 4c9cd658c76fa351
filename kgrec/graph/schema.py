"""The graph schema as an allow-list.

Why: Cypher cannot take labels or relationship types as parameters, so they must be written into
query text. Every label and type that ever reaches a query comes from this module's enums, never
from user strings; ``check_label``/``check_rel_type`` turn anything else into a typed error.

Nodes (key property ``id``)::

    (:User {id})                       id = keyed pseudonym of the raw user id
    (:Item {id, title, description, price})
    (:Brand {id})                      id = brand name
    (:Category {id, name})             id = full path "A > B > C", name = last level
    (:Attribute {id, key, value})      id = "key=value" (profile values, extra item columns,
                                       knowledge-graph entities with key "entity")

Relationships::

    (:User)-[:INTERACTED {event, ts, value}]->(:Item)      key: event, ts
    (:Item)-[:HAS_BRAND]->(:Brand)
    (:Item)-[:IN_CATEGORY]->(:Category)                   the leaf of the item's path
    (:Category)-[:SUBCATEGORY_OF]->(:Category)            child -> parent
    (:Item|User)-[:HAS_ATTRIBUTE]->(:Attribute)
    (:Item|Attribute)-[:RELATED {relation}]->(:Item|Attribute)   key: relation
    (:User)-[:CANDIDATE {rank, score, model, createdAt}]->(:Item)  written by the batch job
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kgrec.errors import ValidationError


class NodeLabel(StrEnum):
    USER = "User"
    ITEM = "Item"
    BRAND = "Brand"
    CATEGORY = "Category"
    ATTRIBUTE = "Attribute"


class RelType(StrEnum):
    INTERACTED = "INTERACTED"
    HAS_BRAND = "HAS_BRAND"
    IN_CATEGORY = "IN_CATEGORY"
    SUBCATEGORY_OF = "SUBCATEGORY_OF"
    HAS_ATTRIBUTE = "HAS_ATTRIBUTE"
    RELATED = "RELATED"
    CANDIDATE = "CANDIDATE"


@dataclass(frozen=True)
class NodeSpec:
    """A node label, its key (always ``id``) and its other properties with pandas dtypes."""

    label: NodeLabel
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def columns(self) -> list[str]:
        return ["id", *(name for name, _ in self.properties)]

    @property
    def dtypes(self) -> dict[str, str]:
        return {"id": "string", **dict(self.properties)}


@dataclass(frozen=True)
class RelSpec:
    """A relationship type, the label pairs it may join, and its properties.

    ``key`` properties take part in identity (two INTERACTED edges between the same user and item
    differ by event and ts); the others are plain values that an upsert overwrites.
    """

    type: RelType
    endpoints: tuple[tuple[NodeLabel, NodeLabel], ...]
    key: tuple[tuple[str, str], ...] = ()
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def columns(self) -> list[str]:
        return ["src_label", "src", "dst_label", "dst", *self.key_columns, *self.value_columns]

    @property
    def key_columns(self) -> list[str]:
        return [name for name, _ in self.key]

    @property
    def value_columns(self) -> list[str]:
        return [name for name, _ in self.properties]

    @property
    def identity_columns(self) -> list[str]:
        return ["src_label", "src", "dst_label", "dst", *self.key_columns]

    @property
    def dtypes(self) -> dict[str, str]:
        base = {"src_label": "string", "src": "string", "dst_label": "string", "dst": "string"}
        return {**base, **dict(self.key), **dict(self.properties)}


U, IT, B, C, A = (NodeLabel.USER, NodeLabel.ITEM, NodeLabel.BRAND, NodeLabel.CATEGORY,
                  NodeLabel.ATTRIBUTE)

NODE_SPECS: dict[NodeLabel, NodeSpec] = {
    U: NodeSpec(U),
    IT: NodeSpec(IT, (("title", "string"), ("description", "string"), ("price", "float64"))),
    B: NodeSpec(B),
    C: NodeSpec(C, (("name", "string"),)),
    A: NodeSpec(A, (("key", "string"), ("value", "string"))),
}

REL_SPECS: dict[RelType, RelSpec] = {
    RelType.INTERACTED: RelSpec(RelType.INTERACTED, ((U, IT),),
                                key=(("event", "string"), ("ts", "int64")),
                                properties=(("value", "float64"),)),
    RelType.HAS_BRAND: RelSpec(RelType.HAS_BRAND, ((IT, B),)),
    RelType.IN_CATEGORY: RelSpec(RelType.IN_CATEGORY, ((IT, C),)),
    RelType.SUBCATEGORY_OF: RelSpec(RelType.SUBCATEGORY_OF, ((C, C),)),
    RelType.HAS_ATTRIBUTE: RelSpec(RelType.HAS_ATTRIBUTE, ((IT, A), (U, A))),
    RelType.RELATED: RelSpec(RelType.RELATED, ((IT, A), (A, IT), (A, A), (IT, IT)),
                             key=(("relation", "string"),)),
    RelType.CANDIDATE: RelSpec(RelType.CANDIDATE, ((U, IT),),
                               properties=(("rank", "int64"), ("score", "float64"),
                                           ("model", "string"), ("createdAt", "string"))),
}

# The relationship types that make up the ingested graph (CANDIDATE is model output).
GRAPH_REL_TYPES: tuple[RelType, ...] = tuple(t for t in RelType if t is not RelType.CANDIDATE)


def check_label(label: str) -> NodeLabel:
    """Return the allow-listed label for ``label`` or raise ``ValidationError``."""
    try:
        return NodeLabel(label)
    except ValueError:
        allowed = ", ".join(label.value for label in NodeLabel)
        raise ValidationError(f"unknown node label {label!r}; allowed: {allowed}") from None


def check_rel_type(rel_type: str) -> RelType:
    """Return the allow-listed relationship type or raise ``ValidationError``."""
    try:
        return RelType(rel_type)
    except ValueError:
        allowed = ", ".join(t.value for t in RelType)
        raise ValidationError(
            f"unknown relationship type {rel_type!r}; allowed: {allowed}") from None
