"""A generated shop catalogue with realistic structure and a known preference model.

Why: the demo, benchmarks, notebooks and tests need a catalogue anyone can make offline, at any
size, whose right answers are known. Structure: a department > group > leaf category tree,
brands that specialise in one department, item titles and descriptions composed from templates,
users in taste segments (with profile attributes correlated to the segment), and interactions
drawn from a latent preference model (segment taste x item category/brand + popularity) through a
view -> click -> cart -> purchase funnel, in time order. New SKUs and new users are drawn from the
same model but kept apart, with their true affinities, so cold-start quality can be checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kgrec.graph.tables import CATEGORY_SEP, CatalogTables

TREE: dict[str, dict[str, list[str]]] = {
    "Sports": {"Running": ["Running Shoes", "Running Jackets"],
               "Cycling": ["Bike Helmets", "Bike Lights"],
               "Fitness": ["Yoga Mats", "Dumbbells"]},
    "Home": {"Kitchen": ["Coffee Mugs", "Chef Knives", "Frying Pans"],
             "Bedroom": ["Pillows", "Duvet Covers"]},
    "Electronics": {"Audio": ["Headphones", "Bluetooth Speakers"],
                    "Computing": ["Keyboards", "Computer Mice", "USB Hubs"]},
    "Beauty": {"Skincare": ["Face Creams", "Sunscreens"], "Hair": ["Shampoos", "Hair Dryers"]},
    "Garden": {"Tools": ["Pruning Shears", "Garden Hoses"], "Plants": ["Seed Kits", "Planters"]},
    "Toys": {"Games": ["Board Games", "Puzzles"], "Outdoor Toys": ["Kites", "Water Guns"]},
}
ADJECTIVES = ["lightweight", "durable", "compact", "premium", "classic", "ergonomic", "eco",
              "professional", "soft", "wireless", "stainless", "waterproof"]
MATERIALS = ["recycled plastic", "stainless steel", "organic cotton", "aluminium", "bamboo",
             "ceramic", "mesh fabric", "silicone"]
USES = ["everyday use", "travel", "beginners", "professionals", "the whole family",
        "small spaces", "outdoor adventures", "gifting"]
BRAND_SYLLABLES = ["ac", "ze", "lo", "vi", "ra", "no", "ka", "pe", "tu", "mi", "so", "da"]
AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55+"]
REGIONS = ["north", "south", "east", "west", "central"]
EVENT_FUNNEL = (("view", 0.45), ("click", 0.30), ("cart", 0.13), ("purchase", 0.12))


@dataclass
class SyntheticCatalog:
    """Training tables plus held-apart new SKUs/users and their true affinities."""

    tables: CatalogTables
    new_items: pd.DataFrame            # canonical item rows, not in ``tables``
    new_users: pd.DataFrame            # canonical user rows (profile), not in ``tables``
    new_user_clicks: pd.DataFrame      # a first click or two of each new user
    segments: pd.Series                # user_id -> taste segment (all users, old and new)
    affinity: pd.DataFrame             # user_id, item_id, affinity for new items (truth)


def _leaves() -> pd.DataFrame:
    rows = [(dept, grp, leaf) for dept, groups in TREE.items()
            for grp, leaves in groups.items() for leaf in leaves]
    out = pd.DataFrame(rows, columns=["department", "group", "leaf"])
    out["path"] = out["department"] + CATEGORY_SEP + out["group"] + CATEGORY_SEP + out["leaf"]
    return out


def generate_catalog(n_users: int = 2_000, n_items: int = 1_500, n_interactions: int = 40_000,
                     *, n_new_items: int = 150, n_new_users: int = 100, n_segments: int = 8,
                     n_brands: int | None = None, seed: int = 0) -> SyntheticCatalog:
    """Generate a catalogue; the same arguments always give the same tables."""
    rng = np.random.default_rng(seed)
    leaves = _leaves()
    depts = np.asarray(leaves["department"].unique(), dtype=object)
    n_brands = n_brands or max(12, n_items // 25)

    # brands specialise in one department and have a popularity
    brand_dept = rng.integers(0, len(depts), n_brands)
    syl = np.array(BRAND_SYLLABLES)
    brand_names = pd.Series(
        [s.capitalize() for s in np.char.add(np.char.add(syl[rng.integers(0, len(syl), n_brands)],
                                                         syl[rng.integers(0, len(syl), n_brands)]),
                                             syl[rng.integers(0, len(syl), n_brands)])])
    brand_names = brand_names + "-" + pd.Series(np.arange(n_brands)).astype(str)
    brand_pop = rng.lognormal(0, 0.6, n_brands)

    # segments prefer a few leaves (mostly within one department) and a few brands
    n_leaves = len(leaves)
    seg_leaf = rng.gamma(0.3, 1.0, (n_segments, n_leaves))
    home_dept = np.arange(n_segments) % len(depts)
    in_home = leaves["department"].to_numpy(dtype=object)[None, :] == depts[home_dept][:, None]
    seg_leaf = np.log(seg_leaf + 1e-3) + 3.0 * in_home
    seg_brand = rng.normal(0, 1.0, (n_segments, n_brands))
    seg_age = rng.dirichlet(np.ones(len(AGE_BANDS)) * 0.5, n_segments)
    seg_region = rng.dirichlet(np.ones(len(REGIONS)) * 0.5, n_segments)

    total_items = n_items + n_new_items
    item_leaf = rng.integers(0, n_leaves, total_items)
    leaf_dept_idx = pd.Index(depts).get_indexer(leaves["department"])
    # a brand from the item's department when there is one
    dept_of_item = leaf_dept_idx[item_leaf]
    same_dept = brand_dept[None, :] == dept_of_item[:, None]
    brand_choice = rng.random((total_items, n_brands)) * same_dept
    item_brand = np.where(brand_choice.max(1) > 0, brand_choice.argmax(1),
                          rng.integers(0, n_brands, total_items))
    item_quality = rng.normal(0, 0.5, total_items)
    items = _item_table(rng, leaves, item_leaf, brand_names.to_numpy(), item_brand)

    total_users = n_users + n_new_users
    user_seg = rng.integers(0, n_segments, total_users)
    cum_age, cum_reg = seg_age.cumsum(1), seg_region.cumsum(1)
    u = rng.random((2, total_users))
    age = (u[0][:, None] > cum_age[user_seg]).sum(1).clip(0, len(AGE_BANDS) - 1)
    region = (u[1][:, None] > cum_reg[user_seg]).sum(1).clip(0, len(REGIONS) - 1)
    users = pd.DataFrame({
        "user_id": [f"user-{i:06d}" for i in range(total_users)],
        "age_band": np.array(AGE_BANDS)[age], "region": np.array(REGIONS)[region],
    }).astype("string")

    class Affinity:
        """True user x item affinity: segment taste for leaf and brand, popularity, quality."""

        @staticmethod
        def segment_of(user_idx: np.ndarray) -> np.ndarray:
            return user_seg[user_idx]

        @staticmethod
        def for_segment(seg: int, item_idx: np.ndarray) -> np.ndarray:
            return (seg_leaf[seg, item_leaf[item_idx]]
                    + 0.8 * seg_brand[seg, item_brand[item_idx]]
                    + 0.5 * np.log(brand_pop[item_brand[item_idx]]) + item_quality[item_idx])

        def __call__(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
            per_seg = np.stack([self.for_segment(s, item_idx) for s in range(n_segments)])
            return per_seg[user_seg[user_idx]]

    affinity = Affinity()

    inter = _interactions(rng, affinity, n_users, n_items, n_interactions)
    inter["user_id"] = users["user_id"].to_numpy()[inter.pop("u")]
    inter["item_id"] = items["item_id"].to_numpy()[inter.pop("i")]
    inter = inter[["user_id", "item_id", "event", "ts", "value"]].astype(
        {"user_id": "string", "item_id": "string", "event": "string"})

    new_u = np.arange(n_users, total_users)
    new_i = np.arange(n_items, total_items)
    first = _interactions(rng, affinity, n_new_users, n_items, 2 * n_new_users, user_offset=n_users)
    first["user_id"] = users["user_id"].to_numpy()[first.pop("u")]
    first["item_id"] = items["item_id"].to_numpy()[first.pop("i")]
    first = first.sort_values(["user_id", "ts"]).groupby("user_id").head(2)
    truth = pd.DataFrame(affinity(np.arange(n_users), new_i)) if n_new_items else pd.DataFrame()
    aff = truth.stack().rename("affinity").reset_index() if n_new_items else \
        pd.DataFrame(columns=["level_0", "level_1", "affinity"])
    aff["user_id"] = users["user_id"].to_numpy()[aff["level_0"].to_numpy(int)]
    aff["item_id"] = items["item_id"].to_numpy()[new_i[aff["level_1"].to_numpy(int)]]
    return SyntheticCatalog(
        tables=CatalogTables(items=items.iloc[:n_items].reset_index(drop=True),
                             users=users.iloc[:n_users].reset_index(drop=True),
                             interactions=inter.reset_index(drop=True)),
        new_items=items.iloc[n_items:].reset_index(drop=True),
        new_users=users.iloc[new_u].reset_index(drop=True),
        new_user_clicks=first[["user_id", "item_id", "event", "ts", "value"]]
        .reset_index(drop=True),
        segments=pd.Series(user_seg, index=users["user_id"], name="segment"),
        affinity=aff[["user_id", "item_id", "affinity"]],
    )


def _item_table(rng: np.random.Generator, leaves: pd.DataFrame, item_leaf: np.ndarray,
                brand_names: np.ndarray, item_brand: np.ndarray) -> pd.DataFrame:
    n = len(item_leaf)
    leaf = leaves["leaf"].to_numpy()[item_leaf]
    noun = pd.Series(leaf).str.rstrip("s").str.lower()
    adj = np.array(ADJECTIVES)[rng.integers(0, len(ADJECTIVES), (n, 2))]
    material = np.array(MATERIALS)[rng.integers(0, len(MATERIALS), n)]
    use = np.array(USES)[rng.integers(0, len(USES), n)]
    brand = pd.Series(brand_names[item_brand])
    title = brand + " " + pd.Series(adj[:, 0]).str.capitalize() + " " + noun.str.title() + \
        " " + pd.Series(rng.integers(100, 999, n)).astype(str)
    description = ("A " + pd.Series(adj[:, 0]) + ", " + pd.Series(adj[:, 1]) + " " + noun +
                   " for " + pd.Series(use) + ". Made of " + pd.Series(material) + " by " +
                   brand + ". Part of our " + pd.Series(leaf).str.lower() + " range.")
    price = np.round(rng.lognormal(3.0 + 0.1 * item_leaf % 3, 0.5, n), 2)
    return pd.DataFrame({
        "item_id": [f"SKU-{i:07d}" for i in range(n)],
        "title": title, "description": description, "brand": brand,
        "category": leaves["path"].to_numpy()[item_leaf], "price": price,
        "material": material,
    }).astype({c: "string" for c in
               ["item_id", "title", "description", "brand", "category", "material"]})


def _interactions(rng: np.random.Generator, affinity, n_users: int, n_items: int,  # type: ignore[no-untyped-def]
                  n_interactions: int, *, user_offset: int = 0) -> pd.DataFrame:
    """Each user draws items from their segment's softmax over affinities (O(interactions)).

    Users of one segment share a taste; a fifth of each user's draws come from a second, random
    segment so users differ. Repeated draws of the same item are kept once.
    """
    if n_users == 0 or n_items == 0:
        return pd.DataFrame({"u": np.zeros(0, np.int64), "i": np.zeros(0, np.int64),
                             "event": pd.Series(dtype="string"), "ts": np.zeros(0, np.int64),
                             "value": np.zeros(0)})
    per_user = rng.poisson(max(n_interactions / n_users - 1, 0), n_users) + 1
    users = np.repeat(np.arange(n_users), per_user) + user_offset
    # the taste each draw follows: the user's own segment (as a representative user), or another
    taste_user = np.where(rng.random(len(users)) < 0.8, users,
                          rng.integers(0, n_users, len(users)) + user_offset)
    reps, taste_code = np.unique(affinity.segment_of(taste_user), return_inverse=True)
    items = np.empty(len(users), dtype=np.int64)
    for code, seg in enumerate(reps):
        logits = affinity.for_segment(int(seg), np.arange(n_items))
        p = np.exp(logits - logits.max())
        draws = taste_code == code
        items[draws] = rng.choice(n_items, size=int(draws.sum()), p=p / p.sum())
    frame = pd.DataFrame({"u": users, "i": items}).drop_duplicates()
    u, i = frame["u"].to_numpy(), frame["i"].to_numpy()
    events, probs = zip(*EVENT_FUNNEL, strict=True)
    ev = np.array(events)[rng.choice(len(events), len(u), p=np.array(probs))]
    ts = 1_700_000_000 + np.sort(rng.integers(0, 90 * 86_400, len(u)))
    perm = rng.permutation(len(u))  # spread each user's draws over time
    return pd.DataFrame({"u": u[perm], "i": i[perm], "event": ev, "ts": ts, "value": np.nan})
