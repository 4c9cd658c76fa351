#!/usr/bin/env python
"""Make an item-cold-start split *outside* kgrec, for the bring-your-own-split check.

Deliberately independent of kgrec's evaluation code (plain pandas, its own parsing and its own
split logic), so that ``kgrec train`` + ``kgrec recommend`` + ``kgrec score-run`` are checked
against a split kgrec did not make. Reads an Amazon-2018-style folder (``*.item.json`` +
``*.inter.json``) or a MovieLens-100K folder (``original/u.data`` + ``original/u.item``) and
writes into ``--out``:

* ``items.csv`` (``item_id,title,description,brand,category``): EVERY item, cold ones included
  (they have no interaction in training);
* ``users.csv`` (``user_id``) and ``interactions.csv`` (``user_id,item_id,event,ts``): training,
  without any interaction on a cold item;
* ``test_users.csv`` (``user_id``): users with at least one interaction on a cold item;
* ``candidates.csv`` (``item_id``): the cold items;
* ``truth.csv`` (``user_id,item_id``): the held-out (test user, cold item) pairs.

Usage::

    python scripts/make_external_split.py --data ../shared/data/amazon-industrial-scientific \
        --out /tmp/byo --cold-share 0.2 --max-users 500 --seed 0
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def read_amazon(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    item_file = next(iter(sorted(folder.glob("*.item.json"))))
    inter_file = item_file.with_name(item_file.name.replace(".item.json", ".inter.json"))
    raw_items = json.loads(item_file.read_text(encoding="utf-8"))
    items = pd.DataFrame([
        {"item_id": str(iid), "title": rec.get("title") or "",
         "description": rec.get("description") or "", "brand": rec.get("brand") or "",
         "category": " > ".join(p.strip() for p in re.split(r",(?! )",
                                                         rec.get("categories") or "")
                                if p.strip())}
        for iid, rec in raw_items.items()])
    raw_inter = json.loads(inter_file.read_text(encoding="utf-8"))
    rows = [(str(u), str(i), t) for u, seq in raw_inter.items() for t, i in enumerate(seq)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])
    inter["event"] = "purchase"
    return items, inter


def read_movielens(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    orig = folder / "original" if (folder / "original").is_dir() else folder
    inter = pd.read_csv(orig / "u.data", sep="\t", names=["user_id", "item_id", "rating", "ts"],
                        dtype=str)
    inter["event"] = "rating"
    inter["value"] = inter.pop("rating")
    raw = pd.read_csv(orig / "u.item", sep="|", header=None, encoding="latin-1", dtype=str)
    items = pd.DataFrame({"item_id": raw[0], "title": raw[1], "description": "",
                          "brand": "", "category": "Movies"})
    return items, inter


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--cold-share", type=float, default=0.2)
    ap.add_argument("--max-users", type=int, default=None,
                    help="keep a random subset of users (and the items they touch)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    if list(args.data.glob("*.item.json")):
        items, inter = read_amazon(args.data)
    else:
        items, inter = read_movielens(args.data)
    rng = np.random.default_rng(args.seed)
    if args.max_users:
        users = inter["user_id"].drop_duplicates().sort_values().to_numpy()
        keep = rng.choice(users, size=min(args.max_users, len(users)), replace=False)
        inter = inter[inter["user_id"].isin(set(keep))]
        items = items[items["item_id"].isin(set(inter["item_id"]))]
    item_ids = np.sort(items["item_id"].unique())
    n_cold = int(round(args.cold_share * len(item_ids)))
    cold = set(rng.choice(item_ids, size=n_cold, replace=False))
    is_cold = inter["item_id"].isin(cold)
    train, test = inter[~is_cold], inter[is_cold]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    items.to_csv(out / "items.csv", index=False)
    pd.DataFrame({"user_id": np.sort(inter["user_id"].unique())}).to_csv(out / "users.csv",
                                                                          index=False)
    train.to_csv(out / "interactions.csv", index=False)
    truth = test[["user_id", "item_id"]].drop_duplicates()
    truth.to_csv(out / "truth.csv", index=False)
    pd.DataFrame({"user_id": np.sort(truth["user_id"].unique())}).to_csv(
        out / "test_users.csv", index=False)
    pd.DataFrame({"item_id": sorted(cold)}).to_csv(out / "candidates.csv", index=False)
    print(f"{len(items)} items ({n_cold} cold), {len(train)} training interactions, "
          f"{truth['user_id'].nunique()} test users, {len(truth)} truth pairs -> {out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
