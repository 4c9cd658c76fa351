"""Batch candidates: Parquet schema, equality with one-by-one, write-back to a store."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from kgrec.errors import StoreError
from kgrec.graph.build import build_graph
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.schema import RelType
from kgrec.graph.store import write_graph
from kgrec.ranking.candidates import SeenIndex, retrieval_tensors
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


class FailingStore(EmbeddedGraphStore):
    """An embedded store whose ``fail_on``-th ``replace_edges_from`` raises (a crash mid-run)."""

    def __init__(self, directory, fail_on: int) -> None:
        super().__init__(directory)
        self.fail_on, self.calls = fail_on, 0

    def replace_edges_from(self, *args, **kwargs) -> int:  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == self.fail_on:
            raise StoreError("injected fault")
        return super().replace_edges_from(*args, **kwargs)


def per_user_runs(store: EmbeddedGraphStore) -> pd.DataFrame:
    cands = store.edges(RelType.CANDIDATE)
    return cands.groupby("src").agg(n=("dst", "size"), ranks=("rank", lambda r: sorted(r)),
                                    runs=("createdAt", "nunique"))


def test_interrupted_write_back_leaves_whole_sets_and_reruns_to_completion(
        rec: Recommender, tmp_path) -> None:
    import gc

    users = RUNNERS + HOMERS
    write_graph(EmbeddedGraphStore(tmp_path / "s"), build_graph(shop_tables(with_new_items=False)))
    parquet = tmp_path / "c.parquet"
    old = rec.user_chunk
    rec.user_chunk = 3  # several chunks
    try:
        rec.write_candidates(k=3, store=EmbeddedGraphStore(tmp_path / "s"), parquet=parquet)
        before = pd.read_parquet(parquet)
        with pytest.raises(StoreError, match="injected"):
            rec.write_candidates(k=2, store=FailingStore(tmp_path / "s", fail_on=2),
                                 parquet=parquet)
        gc.collect()
        # the previous Parquet file is whole and no temporary file is left behind
        pd.testing.assert_frame_equal(pd.read_parquet(parquet), before)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.parquet", "s"]
        # every user holds one complete set: the new run's (first chunk) or the previous one
        runs = per_user_runs(EmbeddedGraphStore(tmp_path / "s"))
        assert len(runs) == len(users) and (runs["runs"] == 1).all()
        assert set(map(tuple, runs["ranks"])) == {(1, 2), (1, 2, 3)}
        assert (runs["n"] == 2).sum() == 3  # the one chunk written before the fault
        # re-running the same command completes the run for everyone
        rec.write_candidates(k=2, store=EmbeddedGraphStore(tmp_path / "s"), parquet=parquet)
    finally:
        rec.user_chunk = old
    runs = per_user_runs(EmbeddedGraphStore(tmp_path / "s"))
    assert (runs["n"] == 2).all() and len(runs) == len(users)
    assert len(pd.read_parquet(parquet)) == 2 * len(users)


@pytest.mark.parametrize("unnamed", [True, False])
def test_parquet_sink_abort_keeps_the_previous_file(tmp_path, monkeypatch, unnamed) -> None:
    import os

    from kgrec.ranking.candidates import ParquetSink
    if not unnamed:  # a system without O_TMPFILE: a named private temporary file
        monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    frame = pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"], "rank": [1], "score": [0.5]})
    first = ParquetSink(tmp_path / "c.parquet")
    first.write(frame, "m1", "2026-01-01T00:00:00+00:00")
    first.close()
    sink = ParquetSink(tmp_path / "c.parquet")
    sink.write(frame.assign(item_id="i2"), "m2", "2026-01-02T00:00:00+00:00")
    assert len(list(tmp_path.iterdir())) == (1 if unnamed else 2)
    sink.abort()
    assert [p.name for p in tmp_path.iterdir()] == ["c.parquet"]
    assert pd.read_parquet(tmp_path / "c.parquet")["model_version"].tolist() == ["m1"]
    third = ParquetSink(tmp_path / "c.parquet")
    third.write(frame.assign(item_id="i3"), "m3", "2026-01-03T00:00:00+00:00")
    third.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c.parquet"]
    assert pd.read_parquet(tmp_path / "c.parquet")["item_id"].tolist() == ["i3"]


def test_retrieval_vectors_are_computed_once_per_head_and_embeddings(rec: Recommender) -> None:
    model = copy.deepcopy(rec.model_)
    emb = rec.emb_
    users, items = retrieval_tensors(model, emb)
    np.testing.assert_array_equal(users.numpy(), model.retrieval_vectors(emb)[0])
    assert retrieval_tensors(model, emb)[0] is users  # cached
    other = replace(emb, user=emb.user.clone())
    assert retrieval_tensors(model, other)[0] is not users
    with torch.no_grad():  # a head trained further in place is recomputed
        next(model.head_.user_tower.parameters()).add_(0.5)
    again = retrieval_tensors(model, emb)[0]
    assert not torch.equal(again, users)
    np.testing.assert_array_equal(again.numpy(), model.retrieval_vectors(emb)[0])
