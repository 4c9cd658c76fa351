"""Score a ranked file against a truth file: the second, independent step of a BYO split.

``ranked`` has ``user_id, item_id, rank[, score]`` (rank 1 = best); ``truth`` has ``user_id,
item_id`` (held-out positives). Nothing else is read: no model, store or training data, so
anyone can re-check the numbers. The ranked items of a user are that user's candidates; a truth
item that is missing from them counts as not retrieved (it still counts in Recall's
denominator and ranks below every listed item for GAUC). Users in ``truth`` without any ranked
row score 0. Coverage is over the items that appear in the ranked file; popularity and cold
coverage need training data and are not reported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.errors import FileFormatError, ValidationError
from kgrec.evaluation.metrics import DEFAULT_KS, MetricAccumulator

RANKED_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "rank")
TRUTH_COLUMNS: tuple[str, ...] = ("user_id", "item_id")


def read_pairs(path: str | Path, required: Sequence[str]) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet file and check its columns.

    Raises:
        FileFormatError: the file is missing or unreadable.
        ValidationError: a required column is missing (the message lists those found).
    """
    p = Path(path)
    try:
        if p.suffix == ".parquet":
            frame = pd.read_parquet(p)
        else:
            frame = pd.read_csv(p, sep="\t" if p.suffix == ".tsv" else ",",
                                dtype={"user_id": str, "item_id": str})
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise FileFormatError(f"{p}: cannot read it as a CSV/TSV/Parquet table ({e})") from e
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValidationError(f"{p}: missing column(s) {missing}; found {list(frame.columns)}; "
                              f"expected {list(required)}")
    frame["user_id"] = frame["user_id"].astype(str)
    frame["item_id"] = frame["item_id"].astype(str)
    return frame


def score_ranked(ranked: pd.DataFrame, truth: pd.DataFrame, ks: Sequence[int] = DEFAULT_KS,
                 *, chunk_users: int = 1024) -> dict[str, float]:
    """Metrics of ``ranked`` against ``truth`` (module docstring), averaged over truth users.

    Raises:
        ValidationError: a rank is not a positive integer, or a user ranks an item twice.
    """
    ranks = pd.to_numeric(ranked["rank"], errors="coerce")
    if ranks.isna().any() or (ranks < 1).any() or (ranks % 1 != 0).any():
        raise ValidationError("rank must be a positive integer (1 = best) on every row")
    if ranked.duplicated(["user_id", "item_id"]).any():
        raise ValidationError("a user ranks the same item more than once")
    truth = truth.drop_duplicates(["user_id", "item_id"])
    users = np.sort(truth["user_id"].unique())
    r = ranked.assign(rank=ranks.astype(np.int64))
    r = r[r["user_id"].isin(set(users))].sort_values(["user_id", "rank"], kind="stable")
    items = pd.Index(np.sort(ranked["item_id"].unique()))
    u_code = pd.Index(users).get_indexer(r["user_id"])
    pos = r.groupby("user_id").cumcount().to_numpy()
    width = int(pos.max()) + 1 if len(pos) else 1
    is_pos = pd.MultiIndex.from_frame(r[["user_id", "item_id"]]).isin(
        pd.MultiIndex.from_frame(truth[["user_id", "item_id"]]))
    n_pos = truth.groupby("user_id").size().reindex(users).to_numpy()
    col_item = items.get_indexer(r["item_id"])
    acc = MetricAccumulator(ks=ks, n_items=len(items), candidate_items=np.arange(len(items)))
    for start in range(0, len(users), chunk_users):
        stop = min(start + chunk_users, len(users))
        sel = (u_code >= start) & (u_code < stop)
        b = stop - start
        scores = np.full((b, width), -np.inf)
        valid = np.zeros((b, width), dtype=bool)
        hit = np.zeros((b, width), dtype=bool)
        cols = np.zeros((b, width), dtype=np.int64)
        rows, c = u_code[sel] - start, pos[sel]
        scores[rows, c] = -c.astype(np.float64)   # the file's order, no ties
        valid[rows, c] = True
        hit[rows, c] = is_pos[sel]
        cols[rows, c] = col_item[sel]
        acc.add(scores, hit, valid, columns=cols, n_positives=n_pos[start:stop])
    res = acc.result()
    res["users"] = float(len(users))
    return res


def score_files(ranked: str | Path, truth: str | Path,
                ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """:func:`score_ranked` on two files (see :func:`read_pairs` for the errors)."""
    return score_ranked(read_pairs(ranked, RANKED_COLUMNS), read_pairs(truth, TRUTH_COLUMNS), ks)
