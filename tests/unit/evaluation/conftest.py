"""Tiny hand-built catalogues for the evaluation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kgrec.graph.tables import CatalogTables


def make_tables(n_users: int = 20, n_items: int = 10, per_user: int = 6,
                seed: int = 0) -> CatalogTables:
    """``per_user`` distinct items per user with increasing ts; items in 2 brands/categories."""
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({
        "item_id": [f"i{j:02d}" for j in range(n_items)],
        "title": [f"item {j} {'red' if j % 2 else 'blue'} widget" for j in range(n_items)],
        "description": "",
        "brand": ["A" if j % 2 else "B" for j in range(n_items)],
        "category": ["Tools > Red" if j % 2 else "Tools > Blue" for j in range(n_items)],
        "price": 1.0,
    }).astype({c: "string" for c in ("item_id", "title", "description", "brand", "category")})
    users = pd.DataFrame({"user_id": [f"u{u:02d}" for u in range(n_users)]}).astype("string")
    rows = []
    for u in range(n_users):
        for t, j in enumerate(rng.choice(n_items, per_user, replace=False)):
            rows.append((f"u{u:02d}", f"i{j:02d}", "purchase", 100 * u + t, np.nan))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "event", "ts", "value"]).astype(
        {"user_id": "string", "item_id": "string", "event": "string", "ts": "int64"})
    # shuffle rows: the split must order by ts, not by file order
    inter = inter.sample(frac=1.0, random_state=1).reset_index(drop=True)
    return CatalogTables(items=items, users=users, interactions=inter)


@pytest.fixture
def tables() -> CatalogTables:
    return make_tables()
