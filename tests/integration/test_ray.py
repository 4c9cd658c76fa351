"""Ray as the distributed engine, on a real two-node Ray cluster (``ray_cluster``), never a mock.

- ``kgrec candidates --ray``: the Parquet parts hold exactly the single-process job's rows, and
  the CANDIDATE edges written per shard to a real Neo4j match them.
- ``kgrec train --ray --workers 2``: DDP on two Ray Train workers reaches the single-process
  model's quality on the two-segment shop, and saves the folder ``kgrec train`` writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec.cli import main
from kgrec.graph.build import build_graph
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.neo4j_store import Neo4jGraphStore
from kgrec.graph.schema import RelType
from kgrec.graph.store import write_graph
from kgrec.ranking.recommender import Recommender
from tests.integration.conftest import Neo4jTarget
from tests.shops import (
    HOMERS,
    MUGS,
    NEW_MUG,
    NEW_SHOE,
    RUNNERS,
    SHOES,
    make_recommender,
    shop_tables,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = ["user_id", "rank"]


def test_candidates_on_ray_equal_single_process(ray_cluster: str, neo4j_store: Neo4jGraphStore,
                                                neo4j_target: Neo4jTarget, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in neo4j_target.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KGREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    write_graph(neo4j_store, build_graph(shop_tables()))
    model = tmp_path / "model"
    make_recommender(epochs=5, user_chunk=5).fit(neo4j_store).save(model)
    Recommender.load(model, neo4j_store).write_candidates(
        k=3, parquet=tmp_path / "one.parquet", explain_to=tmp_path / "one.jsonl")
    base = ["candidates", "--model-dir", str(model), "--store", "neo4j", "--k", "3"]
    assert main([*base, "--to", f"parquet:{tmp_path / 'ray.parquet'}", "--to", "neo4j",
                 "--explain", str(tmp_path / "ray.jsonl"), "--ray", ray_cluster,
                 "--workers", "2", "--shards", "3"]) == 0

    parts = sorted(p.name for p in (tmp_path / "ray.parquet").iterdir())
    assert parts == [f"part-0000{i}.parquet" for i in range(3)]
    one = pd.read_parquet(tmp_path / "one.parquet").sort_values(KEY, ignore_index=True)
    ray = pd.read_parquet(tmp_path / "ray.parquet").sort_values(KEY, ignore_index=True)
    assert len(one) == 3 * len(RUNNERS + HOMERS)
    pd.testing.assert_frame_equal(ray[["user_id", "item_id", "rank"]],
                                  one[["user_id", "item_id", "rank"]], check_dtype=False)
    np.testing.assert_allclose(ray["score"], one["score"], rtol=1e-5)
    assert ray["model_version"].nunique() == 1
    assert ray["model_version"].iloc[0] == one["model_version"].iloc[0]
    assert ray["created_at"].nunique() == 1  # every shard carries the driver's run time

    edges = neo4j_store.edges(RelType.CANDIDATE)
    written = pd.DataFrame({"user_id": edges["src"].astype(str),
                            "item_id": edges["dst"].astype(str),
                            "rank": edges["rank"].astype(np.int64)}
                           ).sort_values(KEY, ignore_index=True)
    pd.testing.assert_frame_equal(written, one[["user_id", "item_id", "rank"]],
                                  check_dtype=False)

    explained = pd.concat([pd.read_json(p, lines=True) for p in
                           sorted((tmp_path / "ray.jsonl").iterdir())], ignore_index=True)
    single = pd.read_json(tmp_path / "one.jsonl", lines=True)
    cols = sorted(single.columns)
    floats = [c for c in cols if pd.api.types.is_float_dtype(single[c])]
    keys = [c for c in cols if c not in floats]
    explained = explained[cols].sort_values(keys, ignore_index=True)
    single = single[cols].sort_values(keys, ignore_index=True)
    pd.testing.assert_frame_equal(explained[keys].astype(str), single[keys].astype(str))
    for c in floats:  # path weights: float32 sums whose order depends on the batch
        np.testing.assert_allclose(explained[c], single[c], rtol=1e-5)


def _segment_hits(rec: Recommender) -> float:
    """Share of the top-3 unseen items that are of the user's own segment (1.0 = perfect)."""
    ids, _ = rec.recommend(RUNNERS + HOMERS, k=3)
    own = [set(SHOES + [NEW_SHOE])] * len(RUNNERS) + [set(MUGS + [NEW_MUG])] * len(HOMERS)
    return float(np.mean([[item in want for item in row]
                          for row, want in zip(ids.tolist(), own, strict=True)]))


def test_train_on_ray_two_workers_reaches_single_process_quality(
        ray_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KGREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    store = EmbeddedGraphStore(tmp_path / "store")
    write_graph(store, build_graph(shop_tables()))
    base = ["train", "--store", f"embedded:{tmp_path / 'store'}", "--encoder", "hashing",
            "--epochs", "40", "--hidden-dim", "32", "--lr", "0.01", "--steps-per-epoch", "2",
            "--patience", "100", "--threads", "1"]
    assert main([*base, "--model-dir", str(tmp_path / "one")]) == 0
    assert main([*base, "--model-dir", str(tmp_path / "ray"), "--ray", ray_cluster,
                 "--workers", "2"]) == 0
    assert "on 2 Ray workers" in capsys.readouterr().out

    one = Recommender.load(tmp_path / "one", store, num_threads=1)
    ray = Recommender.load(tmp_path / "ray", store, num_threads=1)  # the same folder format
    assert ray.model_.config_ == one.model_.config_
    assert len(ray.model_.history_) == 40
    first, last = ray.model_.history_[0]["loss"], ray.model_.history_[-1]["loss"]
    assert last < 0.7 * first
    single, ddp = _segment_hits(one), _segment_hits(ray)
    assert single >= 0.9
    assert ddp >= single - 0.05, (single, ddp)
