"""The two-segment shop (``tests/shops.py``, new SKUs kept apart) and a small Recommender
fitted on it once."""

from __future__ import annotations

import pytest

from kgrec.graph.export import ExportedGraph
from kgrec.ranking.recommender import Recommender
from tests.shops import make_recommender, shop_graph


@pytest.fixture(scope="session")
def graph() -> ExportedGraph:
    return shop_graph(with_new_items=False)


@pytest.fixture(scope="session")
def rec(graph: ExportedGraph) -> Recommender:
    return make_recommender().fit(graph)
