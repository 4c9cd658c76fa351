"""The three cold-start splits of the evaluation protocol, made in one deterministic pass.

Protocol (``/work/shared/notes/evaluation.md``), for one ``seed``:

1. **Item cold.** ``item_share`` (20%) of items are drawn; *all* their interactions leave the
   training tables (so they are neither supervision nor message-passing edges). The items stay in
   the items table with their text, brand, category and attributes: what a new SKU has on the
   day it is listed. Truth: every (warm user, cold item) pair; candidates: all cold items.
   Interactions of *cold users* with cold items belong to the user-cold truth only.
2. **User cold.** ``user_share`` (20%) of users are drawn; all their interactions leave training
   (their profile stays). Their interactions sorted by time (``ts``, then input order) are the
   test stream: for each ``k`` in ``reveal`` (0, 1, 3) the first ``k`` are revealed (added to the
   test-time graph only) and the rest are the truth; candidates: all items except the revealed
   ones. Only users with more than ``max(reveal)`` distinct items take part, so every ``k`` is
   measured on the same users.
3. **Warm.** For every other user, the last ``warm_share`` (20%) of their remaining (non-cold-
   item) interactions in time order, at least one, are held out; users with a single remaining
   interaction keep it for training. Candidates: all *warm* items the user has not interacted
   with in training (cold items are measured in regime 1, so a warm user's cold-item purchase
   is never counted as a wrong answer here). A held-out pair that also occurs in training (a
   repeat purchase) is dropped from the truth.

Interactions are de-duplicated to (user, item) pairs keeping the earliest time: the metrics are
about *which* items, and a repeat must not be both training and truth.

Validation: :class:`~kgrec.coldstart.ColdStartModel` carves its early-stopping/calibration slice
(the latest positive of 10% of users) out of the training graph it is given, i.e. from training
only; nothing in the test truth is visible to it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kgrec.errors import DataError
from kgrec.graph.tables import CatalogTables

logger = logging.getLogger(__name__)



@dataclass
class EvalSplit:
    """Training tables and held-out truth for the three regimes of one seed.

    Attributes:
        train: The union training tables: every item and user (cold ones included, without
            interactions), interactions minus everything held out.
        cold_items: Sorted ids of the cold items.
        cold_users: Sorted ids of the cold users that take part in the user-cold regime.
        item_cold_truth: ``user_id, item_id`` (warm users x cold items).
        user_cold_stream: ``user_id, item_id, ts, order`` of the cold users' interactions in time
            order (``order`` = 0-based position); :meth:`revealed` / :meth:`user_cold_truth`
            cut it at ``k``.
        warm_truth: ``user_id, item_id`` held out from warm users.
        seed: The seed of the draw.
        reveal: The ``k`` values of the user-cold regime.
    """

    train: CatalogTables
    cold_items: np.ndarray
    cold_users: np.ndarray
    item_cold_truth: pd.DataFrame
    user_cold_stream: pd.DataFrame
    warm_truth: pd.DataFrame
    seed: int
    reveal: tuple[int, ...] = (0, 1, 3)
    stats: dict[str, int] = field(default_factory=dict)

    def revealed(self, k: int) -> pd.DataFrame:
        """The first ``k`` interactions of every cold user (canonical interaction rows)."""
        s = self.user_cold_stream
        return s.loc[s["order"] < k].drop(columns="order").reset_index(drop=True)

    def user_cold_truth(self, k: int) -> pd.DataFrame:
        """``user_id, item_id`` of every cold user after the first ``k``."""
        s = self.user_cold_stream
        return s.loc[s["order"] >= k, ["user_id", "item_id"]].reset_index(drop=True)

    def test_tables(self, k: int) -> CatalogTables:
        """Training tables plus the first ``k`` interactions of every cold user (test time)."""
        extra = self.revealed(k)
        inter = pd.concat([self.train.interactions, extra], ignore_index=True) if len(extra) \
            else self.train.interactions
        return CatalogTables(items=self.train.items, users=self.train.users, interactions=inter,
                             triples=self.train.triples, item_entities=self.train.item_entities)


def _pairs(interactions: pd.DataFrame) -> pd.DataFrame:
    """Unique (user, item) pairs with their earliest interaction row, in time order per user."""
    inter = interactions.copy()
    inter["user_id"] = inter["user_id"].astype(str)
    inter["item_id"] = inter["item_id"].astype(str)
    inter["_row"] = np.arange(len(inter))
    inter = inter.sort_values(["user_id", "ts", "_row"], kind="stable")
    return inter.drop_duplicates(["user_id", "item_id"], keep="first")


def make_split(tables: CatalogTables, *, seed: int = 0, item_share: float = 0.2,
               user_share: float = 0.2, warm_share: float = 0.2,
               reveal: Sequence[int] = (0, 1, 3)) -> EvalSplit:
    """Make the item-cold, user-cold and warm splits of the protocol (module docstring).

    Args:
        tables: Validated canonical tables.
        seed: Seed of the item and user draws; the same tables and seed give the same split.
        item_share: Share of items made cold, default 0.2 (0: no item-cold regime).
        user_share: Share of users made cold, default 0.2 (0: no user-cold regime).
        warm_share: Share of each warm user's interactions held out (latest first), default 0.2.
        reveal: Interactions revealed per cold user, default ``(0, 1, 3)``.

    Raises:
        ValueError: a share outside its range or a negative ``reveal``.
        DataError: the tables have no interactions.
    """
    for name, share in (("item_share", item_share), ("user_share", user_share)):
        if not 0 <= share < 1:
            raise ValueError(f"{name} must be in [0, 1), got {share}")
    if not 0 < warm_share < 1:
        raise ValueError(f"warm_share must be in (0, 1), got {warm_share}")
    reveal = tuple(sorted({int(k) for k in reveal}))
    if not reveal or reveal[0] < 0:
        raise ValueError(f"reveal must be non-negative counts, got {reveal}")
    if len(tables.interactions) == 0:
        raise DataError("the tables have no interactions to hold out; nothing to evaluate")
    rng = np.random.default_rng(seed)
    items = np.sort(tables.items["item_id"].astype(str).unique())
    users = np.sort(tables.users["user_id"].astype(str).unique())
    pairs = _pairs(tables.interactions)

    cold_items = np.sort(rng.choice(items, size=int(round(item_share * len(items))),
                                    replace=False))
    drawn_users = np.sort(rng.choice(users, size=int(round(user_share * len(users))),
                                     replace=False))
    is_cold_item = pairs["item_id"].isin(set(cold_items)).to_numpy()
    is_cold_user = pairs["user_id"].isin(set(drawn_users)).to_numpy()

    # user cold: the whole (time-ordered) history of each drawn user is the test stream
    stream = pairs.loc[is_cold_user].copy()
    stream["order"] = stream.groupby("user_id").cumcount().to_numpy()
    n_hist = stream.groupby("user_id")["item_id"].transform("size").to_numpy()
    stream = stream.loc[n_hist > max(reveal)]
    cold_users = np.sort(stream["user_id"].unique())

    # item cold: warm users' pairs on cold items
    item_truth = pairs.loc[is_cold_item & ~is_cold_user, ["user_id", "item_id"]]

    # warm: last share of each remaining user's remaining pairs, at least one (if >= 2)
    rest = pairs.loc[~is_cold_item & ~is_cold_user]
    n = rest.groupby("user_id")["item_id"].transform("size").to_numpy()
    pos = rest.groupby("user_id").cumcount().to_numpy()
    held_n = np.where(n >= 2, np.maximum(1, np.floor(warm_share * n)), 0)
    held = pos >= n - held_n
    warm_truth = rest.loc[held, ["user_id", "item_id"]]
    train_pairs = rest.loc[~held]

    # training keeps every original row (events, repeats) of the kept pairs only
    inter = tables.interactions
    key = inter["user_id"].astype(str) + "\x1f" + inter["item_id"].astype(str)
    keep_keys = set(train_pairs["user_id"] + "\x1f" + train_pairs["item_id"])
    train_inter = inter.loc[key.isin(keep_keys).to_numpy()].reset_index(drop=True)
    train = CatalogTables(items=tables.items, users=tables.users, interactions=train_inter,
                          triples=tables.triples, item_entities=tables.item_entities)
    canon = [c for c in tables.interactions.columns if c != "_row"]
    split = EvalSplit(
        train=train, cold_items=cold_items, cold_users=cold_users,
        item_cold_truth=item_truth.reset_index(drop=True),
        user_cold_stream=stream[[*canon, "order"]].reset_index(drop=True),
        warm_truth=warm_truth.reset_index(drop=True), seed=seed, reveal=reveal,
        stats={"items": len(items), "users": len(users), "pairs": len(pairs),
               "cold_items": len(cold_items), "cold_users": len(cold_users),
               "item_cold_pairs": len(item_truth), "user_cold_pairs": len(stream),
               "warm_pairs": len(warm_truth), "train_pairs": len(train_pairs)})
    logger.info("Split seed %d: %s", seed, split.stats)
    return split


def leakage(split: EvalSplit, train_pairs: pd.DataFrame) -> list[str]:
    """Problems found when ``train_pairs`` (user_id, item_id of the exported training graph's
    interaction edges) contain held-out behaviour; empty when the split is clean.

    Checked: no cold item and no cold user has an interaction, and no warm truth pair is in
    training.
    """
    problems = []
    tp = train_pairs.astype({"user_id": str, "item_id": str})
    bad_items = tp["item_id"].isin(set(split.cold_items))
    if bad_items.any():
        problems.append(f"{int(bad_items.sum())} training interactions on cold items, e.g. "
                        f"{tp.loc[bad_items, 'item_id'].iloc[0]!r}")
    bad_users = tp["user_id"].isin(set(split.cold_users))
    if bad_users.any():
        problems.append(f"{int(bad_users.sum())} training interactions of cold users")
    key = set(tp["user_id"] + "\x1f" + tp["item_id"])
    wt = split.warm_truth
    warm_keys = (wt["user_id"].astype(str) + "\x1f" + wt["item_id"].astype(str))
    n_warm = int(warm_keys.isin(key).sum())
    if n_warm:
        problems.append(f"{n_warm} warm test pairs are also training interactions")
    return problems
