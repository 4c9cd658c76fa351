"""A tiny two-segment shop with a known right answer, shared by the unit and integration tests.

Runners (profile ``segment=runner``) buy Acme running shoes; home users (``segment=home``) buy
Zeta coffee mugs. The catalogue also lists a new Acme shoe and a new Zeta mug that nobody has
bought yet, so a model that learned from text and brand must put the new shoe first for runners.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from kgrec.coldstart import ColdStartModel, ModelConfig
from kgrec.encoders import HashingEncoder
from kgrec.graph.build import build_graph
from kgrec.graph.export import ExportedGraph, to_hetero_data
from kgrec.graph.tables import CatalogTables
from kgrec.ranking.recommender import Recommender

SHOES = [f"shoe-{k}" for k in range(6)]
MUGS = [f"mug-{k}" for k in range(6)]
NEW_SHOE, NEW_MUG = "shoe-new", "mug-new"
RUNNERS = [f"runner-{k}" for k in range(12)]
HOMERS = [f"home-{k}" for k in range(12)]


def shop_tables(*, with_new_items: bool = True, extra_users: dict[str, str] | None = None,
                extra_interactions: Sequence[tuple[str, str]] = (),
                extra_items: Sequence[tuple[str, str, str, str, str, float]] = ()
                ) -> CatalogTables:
    """The two-segment shop (see the module docstring) as canonical tables."""
    rows = []
    colours = ["red", "blue", "green", "black", "white", "grey"]
    for k, sku in enumerate(SHOES):
        rows.append((sku, f"Acme {colours[k]} running shoe", "Light trail running shoe",
                     "Acme", "Sports > Shoes > Running", 60.0 + k))
    for k, sku in enumerate(MUGS):
        rows.append((sku, f"Zeta {colours[k]} coffee mug", "Ceramic kitchen mug 300 ml",
                     "Zeta", "Home > Kitchen > Mugs", 9.0 + k))
    if with_new_items:
        rows.append((NEW_SHOE, "Acme yellow running shoe", "Light trail running shoe", "Acme",
                     "Sports > Shoes > Running", 64.0))
        rows.append((NEW_MUG, "Zeta yellow coffee mug", "Ceramic kitchen mug 300 ml", "Zeta",
                     "Home > Kitchen > Mugs", 12.0))
    rows += list(extra_items)
    items = pd.DataFrame(rows, columns=["item_id", "title", "description", "brand", "category",
                                        "price"])
    items = items.astype({c: "string" for c in items.columns if c != "price"})
    seg = {u: "runner" for u in RUNNERS} | {u: "home" for u in HOMERS} | (extra_users or {})
    users = pd.DataFrame({"user_id": list(seg), "segment": list(seg.values())}).astype("string")
    rng = np.random.default_rng(0)
    inter = []
    for users_, skus in ((RUNNERS, SHOES), (HOMERS, MUGS)):
        for u in users_:
            for t, sku in enumerate(rng.choice(skus, size=4, replace=False)):
                inter.append((u, str(sku), "purchase", t))
            inter.append((u, str(rng.choice(MUGS if skus is SHOES else SHOES)), "view", 9))
    inter += [(u, i, "click", 20) for u, i in extra_interactions]
    frame = pd.DataFrame(inter, columns=["user_id", "item_id", "event", "ts"])
    frame["value"] = np.nan
    frame = frame.astype({"user_id": "string", "item_id": "string", "event": "string"})
    return CatalogTables(items=items, users=users, interactions=frame)


def shop_graph(**kw: object) -> ExportedGraph:
    return to_hetero_data(build_graph(shop_tables(**kw)))  # type: ignore[arg-type]


def new_items() -> pd.DataFrame:
    """The shop's two new SKUs as a table (for graphs built with ``with_new_items=False``)."""
    items = shop_tables().items
    return items[items["item_id"].isin([NEW_SHOE, NEW_MUG])].reset_index(drop=True)


SMALL_PARAMS: dict[str, object] = dict(hidden_dim=32, epochs=80, steps_per_epoch=2, lr=1e-2,
                                       patience=100, val_user_share=0.0, seed=0)


def _split(kw: dict[str, object]) -> tuple[ModelConfig, dict[str, object]]:
    """``kw`` as (the small config with ModelConfig settings applied, the other arguments)."""
    names = set(ModelConfig().to_dict())
    settings = {**SMALL_PARAMS, **{k: v for k, v in kw.items() if k in names}}
    rest: dict[str, object] = {"text_encoder": HashingEncoder(dim=64), "num_threads": 1}
    rest.update({k: v for k, v in kw.items() if k not in names})
    return ModelConfig(**settings), rest  # type: ignore[arg-type]


def small_model(**kw: object) -> ColdStartModel:
    """A small model for the shop: hashing text vectors, one thread; ``kw`` overrides settings
    (``ModelConfig`` names) or constructor arguments."""
    config, rest = _split(kw)
    return ColdStartModel(config, **rest)  # type: ignore[arg-type]


def make_recommender(**kw: object) -> Recommender:
    """A ``Recommender`` with the same small model, ``kw`` as for :func:`small_model`."""
    config, rest = _split(kw)
    return Recommender(config, **rest)  # type: ignore[arg-type]
