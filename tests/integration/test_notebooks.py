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


def test_explore_graph_neo4j(neo4j_store: Neo4jGraphStore, neo4j_server: object,
                             tmp_path: Path) -> None:
    small = generate_catalog(600, 400, 6_000, n_new_items=0, n_new_users=0, seed=0)
    ingest_tables(small.tables, neo4j_store, Pseudonymizer(KEY.encode()))
    env = {"KGREC_STORE": "neo4j", "KGREC_HOME": str(tmp_path)}
    if neo4j_server is not None:
        env.update({"NEO4J_URI": neo4j_server.uri,  # type: ignore[attr-defined]
                    "NEO4J_PASSWORD": neo4j_server.password()})  # type: ignore[attr-defined]
    nb = run_notebook(NOTEBOOKS / "01_explore_graph.ipynb", env, tmp_path)
    outputs = "".join(str(o) for c in nb.cells for o in c.get("outputs", []))
    assert "runs when KGREC_STORE=neo4j" not in outputs  # the Cypher cell really ran
    neo4j_store.clear()
