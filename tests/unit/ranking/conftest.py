"""A tiny two-segment shop (runners buy Acme shoes, home users buy Zeta mugs) and a small
Recommender fitted on it once (HashingEncoder, few epochs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kgrec.encoders import HashingEncoder
from kgrec.graph.build import build_graph
from kgrec.graph.export import ExportedGraph, to_hetero_data
from kgrec.graph.tables import CatalogTables
from kgrec.ranking.recommender import Recommender

SHOES = [f"shoe-{k}" for k in range(6)]
MUGS = [f"mug-{k}" for k in range(6)]
RUNNERS = [f"runner-{k}" for k in range(10)]
HOMERS = [f"home-{k}" for k in range(10)]


def shop_tables() -> CatalogTables:
    rows = [(s, f"Acme running shoe {k}", "Light trail running shoe", "Acme",
             "Sports > Shoes > Running", 60.0 + k) for k, s in enumerate(SHOES)]
    rows += [(m, f"Zeta coffee mug {k}", "Ceramic kitchen mug", "Zeta",
              "Home > Kitchen > Mugs", 9.0 + k) for k, m in enumerate(MUGS)]
    items = pd.DataFrame(rows, columns=["item_id", "title", "description", "brand", "category",
                                        "price"])
    items = items.astype({c: "string" for c in items.columns if c != "price"})
    seg = {u: "runner" for u in RUNNERS} | {u: "home" for u in HOMERS}
    users = pd.DataFrame({"user_id": list(seg), "segment": list(seg.values())}).astype("string")
    rng = np.random.default_rng(0)
    inter = []
    for group, skus in ((RUNNERS, SHOES), (HOMERS, MUGS)):
        for u in group:
            for t, sku in enumerate(rng.choice(skus, size=3, replace=False)):
                inter.append((u, str(sku), "purchase", t))
    frame = pd.DataFrame(inter, columns=["user_id", "item_id", "event", "ts"])
    frame["value"] = np.nan
    frame = frame.astype({"user_id": "string", "item_id": "string", "event": "string"})
    return CatalogTables(items=items, users=users, interactions=frame)


def new_items() -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": ["shoe-new", "mug-new"],
        "title": ["Acme yellow running shoe", "Zeta yellow coffee mug"],
        "description": ["Light trail running shoe", "Ceramic kitchen mug"],
        "brand": ["Acme", "Zeta"],
        "category": ["Sports > Shoes > Running", "Home > Kitchen > Mugs"],
        "price": [64.0, 12.0]})


def make_recommender(**kw: object) -> Recommender:
    params: dict[str, object] = dict(text_encoder=HashingEncoder(dim=64), hidden_dim=32,
                                     epochs=40, steps_per_epoch=2, lr=1e-2, patience=100,
                                     val_user_share=0.0, seed=0, num_threads=1)
    params.update(kw)
    return Recommender(**params)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def graph() -> ExportedGraph:
    return to_hetero_data(build_graph(shop_tables()))


@pytest.fixture(scope="session")
def rec(graph: ExportedGraph) -> Recommender:
    return make_recommender().fit(graph)
