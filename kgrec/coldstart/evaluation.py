"""Item-cold and warm splits, Recall@K and the two cold-start baselines (evaluation.md).

Why here: the integration test and ``benchmarks/train.py`` must use one protocol, and the
baselines must see exactly the text vectors the model sees. Metrics are pure functions over
score matrices; nothing here reads training-set labels when scoring test pairs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kgrec.graph.tables import CatalogTables

logger = logging.getLogger(__name__)


@dataclass
class ColdSplit:
    """Training tables plus held-out truth.

    Attributes:
        train: Tables for training: every item (cold ones keep text, brand, category) and every
            user, but no interaction on a cold item and no held-out warm interaction.
        cold_items: Ids of the cold items.
        cold_test: ``user_id, item_id`` pairs on cold items (the item-cold truth).
        warm_test: ``user_id, item_id`` pairs held out from warm users (last share by time).
    """

    train: CatalogTables
    cold_items: np.ndarray
    cold_test: pd.DataFrame
    warm_test: pd.DataFrame


def item_cold_split(tables: CatalogTables, *, cold_share: float = 0.2,
                    warm_holdout: float = 0.0, seed: int = 0) -> ColdSplit:
    """Hide all interactions of a random ``cold_share`` of items (and optionally warm tails).

    Args:
        tables: Validated canonical tables.
        cold_share: Share of items made cold, default 0.2.
        warm_holdout: Share of each user's remaining interactions (latest by ``ts``, at least
            one when > 0, and never a user's only one) held out as the warm test, default 0.
        seed: Seed of the item draw.

    Raises:
        ValueError: a share outside [0, 1).
    """
    if not 0 <= cold_share < 1 or not 0 <= warm_holdout < 1:
        raise ValueError("cold_share and warm_holdout must be in [0, 1)")
    rng = np.random.default_rng(seed)
    items = tables.items["item_id"].astype(str).to_numpy()
    cold = np.sort(rng.choice(items, size=int(round(cold_share * len(items))), replace=False))
    inter = tables.interactions.copy()
    inter["user_id"] = inter["user_id"].astype(str)
    inter["item_id"] = inter["item_id"].astype(str)
    is_cold = inter["item_id"].isin(set(cold)).to_numpy()
    cold_test = inter.loc[is_cold, ["user_id", "item_id"]].drop_duplicates()
    rest = inter.loc[~is_cold]
    warm_test = rest.iloc[:0][["user_id", "item_id"]]
    if warm_holdout > 0:
        rest = rest.sort_values(["user_id", "ts"], kind="stable")
        n = rest.groupby("user_id")["item_id"].transform("size").to_numpy()
        pos = rest.groupby("user_id").cumcount().to_numpy()
        k = np.where(n >= 2, np.maximum(1, np.floor(warm_holdout * n)), 0)
        held = pos >= n - k
        warm_test = rest.loc[held, ["user_id", "item_id"]].drop_duplicates()
        rest = rest.loc[~held]
        # a pair both kept and held out (repeat purchase) is not a fair test: drop it
        seen = set(zip(rest["user_id"], rest["item_id"], strict=True))
        keep = [p not in seen for p in zip(warm_test["user_id"], warm_test["item_id"],
                                           strict=True)]
        warm_test = warm_test.loc[keep]
    train = CatalogTables(items=tables.items, users=tables.users,
                          interactions=rest.reset_index(drop=True), triples=tables.triples,
                          item_entities=tables.item_entities)
    logger.info("Split: %d cold items, %d cold test pairs, %d warm test pairs, %d train rows",
                len(cold), len(cold_test), len(warm_test), len(rest))
    return ColdSplit(train, cold, cold_test.reset_index(drop=True),
                     warm_test.reset_index(drop=True))


def recall_at_k(scores: np.ndarray, truth: list[np.ndarray], k: int = 20) -> float:
    """Mean over users of ``|top-k of scores[u]| ∩ truth[u]| / |truth[u]|``.

    Args:
        scores: ``(U, I)``; excluded candidates should hold ``-inf``.
        truth: For each row, the column indices of its held-out positives (non-empty).
        k: Cut-off, default 20.
    """
    if len(truth) != scores.shape[0]:
        raise ValueError(f"{scores.shape[0]} score rows but {len(truth)} truth lists")
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    hits = [len(np.intersect1d(top[r], t)) / len(t) for r, t in enumerate(truth)]
    return float(np.mean(hits)) if hits else float("nan")


def content_knn_scores(item_vectors: np.ndarray, user_history: list[np.ndarray],
                       candidates: np.ndarray) -> np.ndarray:
    """Cosine between each user's mean training-item text vector and each candidate, ``(U, C)``.

    Users without history score 0 everywhere.
    """
    vec = item_vectors / np.maximum(np.linalg.norm(item_vectors, axis=1, keepdims=True), 1e-12)
    users = np.zeros((len(user_history), vec.shape[1]), dtype=np.float64)
    for r, hist in enumerate(user_history):
        if len(hist):
            users[r] = vec[hist].mean(axis=0)
    users /= np.maximum(np.linalg.norm(users, axis=1, keepdims=True), 1e-12)
    out: np.ndarray = users @ vec[candidates].T
    return out


def attribute_popularity_scores(items: pd.DataFrame, train_item_counts: np.ndarray,
                                candidates: np.ndarray) -> np.ndarray:
    """Popularity for items without history: ``log1p(brand count) + log1p(category count)``.

    Counts are training interactions of all items sharing the brand (category). Shape ``(C,)``;
    the same for every user.
    """
    frame = pd.DataFrame({"brand": items["brand"].astype(object).to_numpy(),
                          "category": items["category"].astype(object).to_numpy(),
                          "n": train_item_counts})
    score = np.zeros(len(items))
    for col in ("brand", "category"):
        key = frame[col].fillna("<missing>")
        totals = frame.groupby(key)["n"].sum()
        counts = key.map(totals).to_numpy(np.float64)
        score += np.where(frame[col].isna().to_numpy(), 0.0, np.log1p(counts))
    out: np.ndarray = score[candidates]
    return out
