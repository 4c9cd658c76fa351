"""Batch candidates: Parquet schema, equality with one-by-one, write-back to a store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from kgrec.graph.build import build_graph
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.schema import RelType
from kgrec.graph.store import write_graph
from kgrec.ranking.candidates import SeenIndex
from kgrec.ranking.recommender import Recommender
from tests.shops import HOMERS, RUNNERS, shop_tables


def test_parquet_schema_and_equality_with_recommend(rec: Recommender, tmp_path) -> None:
    old = rec.user_chunk
    rec.user_chunk = 3  # several chunks
    try:
        run = rec.write_candidates(k=4, parquet=tmp_path / "c.parquet",
                                   explain_to=tmp_path / "e.jsonl")
    finally:
        rec.user_chunk = old
    schema = pq.read_schema(tmp_path / "c.parquet")
    assert schema.names == ["user_id", "item_id", "rank", "score", "model_version",
                            "created_at"]
    assert str(schema.field("created_at").type) == "timestamp[us, tz=UTC]"
    frame = pd.read_parquet(tmp_path / "c.parquet")
    assert run.rows == len(frame) == 4 * len(RUNNERS + HOMERS)
    assert (frame["model_version"] == rec.model_version_).all()
    for user in (RUNNERS[0], HOMERS[3]):
        ids, scores = rec.recommend(user, k=4)
        part = frame[frame["user_id"] == user].sort_values("rank")
        assert part["item_id"].tolist() == list(ids)
        np.testing.assert_allclose(part["score"], scores, rtol=1e-6)
        assert part["rank"].tolist() == [1, 2, 3, 4]
    exp = pd.read_json(tmp_path / "e.jsonl", lines=True)
    assert {"user_id", "item_id", "path_rank", "kind", "weight", "path", "nodes"} <= set(exp)
    assert len(exp) > 0


def test_write_back_replaces_previous_run(rec: Recommender, tmp_path) -> None:
    store = EmbeddedGraphStore(tmp_path / "s")
    write_graph(store, build_graph(shop_tables(with_new_items=False)))
    rec.write_candidates(k=3, store=store)
    first = store.edges(RelType.CANDIDATE)
    assert len(first) == 3 * len(RUNNERS + HOMERS)
    assert set(first.columns) >= {"rank", "score", "model", "createdAt"}
    rec.write_candidates(k=2, store=store, user_ids=RUNNERS[:2])
    second = store.edges(RelType.CANDIDATE)
    assert len(second[second["src"] == RUNNERS[0]]) == 2
    assert len(second[second["src"] == HOMERS[0]]) == 3


def test_rerank_none_is_exact(rec: Recommender) -> None:
    exact = Recommender(rerank_n=None)
    exact.__dict__.update({k: v for k, v in rec.__dict__.items() if k.endswith("_")
                           or k.startswith("_")})
    ids, scores = exact.recommend(RUNNERS[0], k=12, exclude_seen=False)
    assert (np.diff(scores) <= 1e-12).all()
    assert len(set(ids)) == 12


def test_seen_index_gather() -> None:
    seen = SeenIndex.from_pairs(np.array([2, 0, 2]), np.array([5, 1, 7]), 3)
    pos, items = seen.gather(np.array([2, 1, 0]))
    assert sorted(zip(pos.tolist(), items.tolist(), strict=True)) == [(0, 5), (0, 7), (2, 1)]


def test_write_candidates_needs_a_target(rec: Recommender) -> None:
    with pytest.raises(ValueError, match="parquet"):
        rec.write_candidates(k=2)
