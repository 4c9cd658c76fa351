"""Execute every notebook headless; a failing cell fails the test.

Each notebook runs twice where it has Neo4j cells: on a generated catalogue in an embedded
store, and on the same catalogue in the real Neo4j server of the test session.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from kgrec.graph.ingest import ingest_tables
from kgrec.graph.neo4j_store import Neo4jGraphStore
from kgrec.graph.pseudonym import Pseudonymizer
from kgrec.graph.synthetic import generate_catalog
from tests.integration.conftest import Neo4jTarget

pytestmark = pytest.mark.integration

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KEY = "notebook-test-key-0123456789"


def run_notebook(path: Path, env: dict[str, str], tmp_path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    old = dict(os.environ)
    os.environ.pop("MPLBACKEND", None)  # the kernel uses its inline backend (PNG outputs)
    os.environ.update({"KGREC_PSEUDONYM_KEY": KEY, **env})
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nb


def images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb.cells
               for out in cell.get("outputs", []))


def test_notebooks_are_stripped() -> None:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path


def test_explore_graph_embedded(tmp_path: Path) -> None:
    nb = run_notebook(NOTEBOOKS / "01_explore_graph.ipynb", {}, tmp_path)
    assert images(nb) >= 3


def test_explore_graph_neo4j(neo4j_store: Neo4jGraphStore, neo4j_target: Neo4jTarget,
                             tmp_path: Path) -> None:
    small = generate_catalog(600, 400, 6_000, n_new_items=0, n_new_users=0, seed=0)
    ingest_tables(small.tables, neo4j_store, Pseudonymizer(KEY.encode()))
    env = {"KGREC_STORE": "neo4j", "KGREC_HOME": str(tmp_path)}
    env.update(neo4j_target.env())
    nb = run_notebook(NOTEBOOKS / "01_explore_graph.ipynb", env, tmp_path)
    outputs = "".join(str(o) for c in nb.cells for o in c.get("outputs", []))
    assert "runs when KGREC_STORE=neo4j" not in outputs  # the Cypher cell really ran
    neo4j_store.clear()


def outputs_text(nb: nbformat.NotebookNode) -> str:
    return "".join(str(o) for c in nb.cells for o in c.get("outputs", []))


def test_train_and_evaluate_embedded(tmp_path: Path) -> None:
    nb = run_notebook(NOTEBOOKS / "02_train_and_evaluate.ipynb",
                      {"KGREC_NOTEBOOK_ENCODER": "hashing", "KGREC_NOTEBOOK_SEEDS": "0,1"},
                      tmp_path)
    assert images(nb) >= 3  # learning curves, metric per regime, user-cold curve + calibration
    text = outputs_text(nb)
    for regime in ("item_cold", "user_cold_k0", "user_cold_k1", "user_cold_k3", "warm"):
        assert f"| {regime} | kgrec |" in text, regime  # the evaluation table


# The catalogue notebook 03 generates; the Neo4j test ingests the same one beforehand so the
# notebook runs on a store that already holds the shop (the embedded test covers the ingest).
NB03_CATALOG = dict(n_users=800, n_items=600, n_interactions=12_000, n_new_items=40,
                    n_new_users=20, seed=0)


def check_rank_new_skus(nb: nbformat.NotebookNode) -> str:
    assert images(nb) >= 4  # learning curves, reach of new SKUs, explanations, new user
    text = outputs_text(nb)
    assert "HAS_BRAND" in text or "IN_CATEGORY" in text  # printed explanation paths
    assert "profile + 1 click" in text
    return text


def test_rank_new_skus_embedded(tmp_path: Path) -> None:
    nb = run_notebook(NOTEBOOKS / "03_rank_new_skus.ipynb",
                      {"KGREC_NOTEBOOK_ENCODER": "hashing"}, tmp_path)
    text = check_rank_new_skus(nb)
    assert "EmbeddedGraphStore" in text and "accepted:" in text  # ingested a generated shop


def test_rank_new_skus_neo4j(neo4j_store: Neo4jGraphStore, neo4j_target: Neo4jTarget,
                             tmp_path: Path) -> None:
    shop = generate_catalog(**NB03_CATALOG)  # type: ignore[arg-type]
    ingest_tables(shop.tables, neo4j_store, Pseudonymizer(KEY.encode()))
    env = {"KGREC_STORE": "neo4j", "KGREC_HOME": str(tmp_path),
           "KGREC_NOTEBOOK_ENCODER": "hashing"}
    env.update(neo4j_target.env())
    try:
        nb = run_notebook(NOTEBOOKS / "03_rank_new_skus.ipynb", env, tmp_path)
        text = check_rank_new_skus(nb)
        assert "Neo4jGraphStore" in text and "accepted:" not in text  # used the shop in Neo4j
    finally:
        neo4j_store.clear()
