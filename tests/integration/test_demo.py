"""The demo runs end to end with the real text encoder and writes its report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kgrec.cli import main
from kgrec.cli.demo_run import DemoConfig, run_demo
from kgrec.graph.neo4j_store import Neo4jGraphStore
from kgrec.graph.schema import NodeLabel
from kgrec.graph.synthetic import generate_catalog
from tests.integration.conftest import Neo4jTarget

pytestmark = pytest.mark.integration


def test_demo_small_real_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGREC_PSEUDONYM_KEY", "demo-test-key-0123456789")
    res = run_demo(DemoConfig(out=tmp_path / "demo", encoder="bert", n_users=300, n_items=250,
                              n_interactions=5_000, n_new_items=40, n_new_users=20, epochs=4,
                              threads=2))
    text = res.report.read_text()
    assert "Cold-start candidates: new SKUs" in text and "-INTERACTED->" in text
    assert "Cold-start candidates: new users" in text
    for p in res.plots:
        assert p.is_file() and p.stat().st_size > 1000
    cands = pd.read_parquet(res.files["new_sku_candidates"])
    assert {"user_id", "item_id", "rank", "score", "model_version"} <= set(cands.columns)
    assert res.figures["affinity_recommended"] > res.figures["affinity_random"]
    assert (tmp_path / "demo" / "text-cache").is_dir()


def test_demo_on_neo4j_writes_candidate_relationships(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, neo4j_store: Neo4jGraphStore,
        neo4j_target: Neo4jTarget) -> None:
    """The same job with ``--store neo4j``: CANDIDATE edges read back from the real server."""
    monkeypatch.setenv("KGREC_PSEUDONYM_KEY", "demo-test-key-0123456789")
    monkeypatch.setenv("KGREC_HOME", str(tmp_path))
    for name, value in neo4j_target.env().items():
        monkeypatch.setenv(name, value)
    res = run_demo(DemoConfig(out=tmp_path / "demo", store="neo4j", encoder="hashing",
                              n_users=200, n_items=150, n_interactions=3_000, n_new_items=20,
                              n_new_users=10, epochs=3, threads=1))
    assert res.report.is_file()
    records, _, _ = neo4j_store.driver.execute_query(
        "MATCH (u:User {kgrec_graph: $graph})-[c:CANDIDATE]->(i:Item {kgrec_graph: $graph}) "
        "RETURN count(c) AS n, min(c.rank) AS best, max(c.score) AS top, "
        "count(DISTINCT c.model) AS models", graph=neo4j_store.graph, database_="neo4j")
    row = records[0]
    assert row["n"] > 0 and row["best"] == 1 and 0 < row["top"] <= 1 and row["models"] == 1
    written = pd.read_parquet(res.files["new_sku_candidates"])
    assert row["n"] >= len(written)
    neo4j_store.clear()


def test_demo_refuses_to_clear_a_named_store_that_holds_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kgrec.errors import ConfigError
    from kgrec.graph.embedded import EmbeddedGraphStore
    from kgrec.graph.ingest import ingest_tables
    from tests.contract import pseudonymizer, tiny_catalog

    monkeypatch.setenv("KGREC_PSEUDONYM_KEY", "demo-test-key-0123456789")
    ingest_tables(tiny_catalog(), EmbeddedGraphStore(tmp_path / "mine"), pseudonymizer())
    with pytest.raises(ConfigError, match="--reset-store"):
        run_demo(DemoConfig(out=tmp_path / "demo", store=f"embedded:{tmp_path / 'mine'}",
                            encoder="hashing", n_users=50, n_items=40, n_interactions=400,
                            n_new_items=5, n_new_users=3, epochs=1, threads=1))
    assert len(EmbeddedGraphStore(tmp_path / "mine").nodes(NodeLabel.ITEM)) == 3


def _canonical_folder(folder: Path) -> int:
    tables = generate_catalog(120, 100, 1_500, n_new_items=0, n_new_users=0, seed=5).tables
    folder.mkdir()
    tables.items.to_csv(folder / "items.csv", index=False)
    tables.users.to_csv(folder / "users.csv", index=False)
    tables.interactions.to_csv(folder / "interactions.csv", index=False)
    return len(tables.items)


def test_demo_runs_on_a_folder_of_canonical_csvs(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KGREC_PSEUDONYM_KEY", "demo-test-key-0123456789")
    n_items = _canonical_folder(tmp_path / "shop")
    out = tmp_path / "demo"
    assert main(["demo", "--data", str(tmp_path / "shop"), "--out", str(out),
                 "--encoder", "hashing", "--epochs", "2"]) == 0
    report = (out / "report.md").read_text()
    assert f"dataset {tmp_path / 'shop'}" in report
    assert "ModelConfig(epochs=2, patience=2)" in report  # the demo says what it shortened
    cands = pd.read_parquet(out / "candidates_new_skus.parquet")
    assert cands["item_id"].nunique() == n_items // 20  # 5% of the items held out as new SKUs
    assert "epochs shortened" in capsys.readouterr().out
