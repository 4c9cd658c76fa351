"""Candidates written to a real Neo4j server as CANDIDATE relationships; a re-run replaces them."""

from __future__ import annotations

import pytest

from kgrec.graph.build import build_graph
from kgrec.graph.neo4j_store import Neo4jGraphStore
from kgrec.graph.schema import RelType
from kgrec.graph.store import write_graph
from tests.shops import HOMERS, RUNNERS, make_recommender, shop_tables

pytestmark = pytest.mark.integration

COUNT = ("MATCH (u:User {kgrec_graph: $graph, id: $id})-[c:CANDIDATE]->(i:Item) "
         "RETURN i.id AS item, c.rank AS rank, c.score AS score, c.model AS model, "
         "c.createdAt AS createdAt ORDER BY c.rank")


def test_candidates_round_trip_and_replace(neo4j_store: Neo4jGraphStore) -> None:
    write_graph(neo4j_store, build_graph(shop_tables(with_new_items=False)))
    rec = make_recommender(epochs=5, user_chunk=7).fit(neo4j_store)
    run = rec.write_candidates(k=3, store=neo4j_store)
    assert run.store_edges == 3 * len(RUNNERS + HOMERS)
    with neo4j_store.driver.session(database=neo4j_store.database) as s:
        rows = s.run(COUNT, id=RUNNERS[0], graph=neo4j_store.graph).data()
    ids, scores = rec.recommend(RUNNERS[0], k=3)
    assert [r["item"] for r in rows] == list(ids)
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["score"] == pytest.approx(scores[0], rel=1e-6)
    assert {r["model"] for r in rows} == {rec.model_version_}
    assert len(neo4j_store.edges(RelType.CANDIDATE)) == 3 * len(RUNNERS + HOMERS)
    # a re-run for some users replaces their candidates only
    rec.write_candidates(k=1, store=neo4j_store, user_ids=RUNNERS[:2])
    with neo4j_store.driver.session(database=neo4j_store.database) as s:
        assert len(s.run(COUNT, id=RUNNERS[0], graph=neo4j_store.graph).data()) == 1
        assert len(s.run(COUNT, id=HOMERS[0], graph=neo4j_store.graph).data()) == 3
