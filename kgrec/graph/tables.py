"""The canonical data model: three tables every source is turned into before it reaches a store.

Why: readers and adapters differ per source, but validation, pseudonymisation, the graph stores
and the exporters only ever see these columns (documented in README.md, "Data model").

``items``        item_id (str), title, description, brand (str or <NA>), category (str path,
                 levels joined by ``CATEGORY_SEP``), price (float64 or NaN), plus optional extra
                 attribute columns (str; several values joined by ``MULTI_SEP``)
``users``        user_id (str) plus optional profile columns (str: age band, gender, region ...)
``interactions`` user_id (str), item_id (str), event (one of ``EVENTS``), ts (int64: unix
                 seconds, or the 0-based position in the user's history where the source has
                 order only), value (float64 or NaN: a rating, a quantity)
``triples``      optional knowledge-graph facts: head, relation, tail (str entity ids)
``item_entities`` optional links item_id -> entity (str), so KG entities can reach items
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

CATEGORY_SEP = " > "
MULTI_SEP = "|"
EVENTS: tuple[str, ...] = ("view", "click", "cart", "purchase", "rating")
# events that say the user wanted the item; a "view" alone is an impression (a negative)
POSITIVE_EVENTS: frozenset[str] = frozenset({"click", "cart", "purchase", "rating"})

ITEM_COLUMNS: tuple[str, ...] = ("item_id", "title", "description", "brand", "category", "price")
USER_COLUMNS: tuple[str, ...] = ("user_id",)
INTERACTION_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "event", "ts", "value")
TRIPLE_COLUMNS: tuple[str, ...] = ("head", "relation", "tail")
ITEM_ENTITY_COLUMNS: tuple[str, ...] = ("item_id", "entity")

# Longest accepted field values (characters); longer values reject the row, never truncate it.
MAX_LENGTHS: dict[str, int] = {
    "item_id": 256,
    "user_id": 256,
    "title": 2_000,
    "brand": 500,
    "category": 2_000,
    "description": 100_000,
    "attribute": 1_000,
}


def empty_items() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c == "price" else "string")
                         for c in ITEM_COLUMNS})


def empty_users() -> pd.DataFrame:
    return pd.DataFrame({"user_id": pd.Series(dtype="string")})


def empty_interactions() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": pd.Series(dtype="string"),
        "item_id": pd.Series(dtype="string"),
        "event": pd.Series(dtype="string"),
        "ts": pd.Series(dtype="int64"),
        "value": pd.Series(dtype="float64"),
    })


def empty_triples() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="string") for c in TRIPLE_COLUMNS})


def empty_item_entities() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="string") for c in ITEM_ENTITY_COLUMNS})


@dataclass
class CatalogTables:
    """A catalogue and its behaviour in canonical form (see the module docstring)."""

    items: pd.DataFrame = field(default_factory=empty_items)
    users: pd.DataFrame = field(default_factory=empty_users)
    interactions: pd.DataFrame = field(default_factory=empty_interactions)
    triples: pd.DataFrame = field(default_factory=empty_triples)
    item_entities: pd.DataFrame = field(default_factory=empty_item_entities)

    def item_attribute_columns(self) -> list[str]:
        """Extra item columns that become ``Attribute`` nodes."""
        return [c for c in self.items.columns if c not in ITEM_COLUMNS]

    def user_attribute_columns(self) -> list[str]:
        """Profile columns that become ``Attribute`` nodes."""
        return [c for c in self.users.columns if c not in USER_COLUMNS]
