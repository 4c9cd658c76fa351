"""The two-segment shop (``tests/shops.py``) and a small model fitted on it once."""

from __future__ import annotations

import pytest

from kgrec.coldstart import ColdStartModel
from kgrec.graph.export import ExportedGraph
from tests.shops import shop_graph, small_model


@pytest.fixture(scope="session")
def graph() -> ExportedGraph:
    return shop_graph()


@pytest.fixture(scope="session")
def fitted(graph: ExportedGraph) -> ColdStartModel:
    return small_model().fit(graph)
