"""Personalised product search on the two-segment shop (runners buy Acme shoes, home users
buy Zeta mugs), where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.errors import DataError, NotFittedError, UnknownIdError, ValidationError
from kgrec.ranking.recommender import Recommender
from kgrec.ranking.search import (
    ProductSearch,
    SearchWeights,
    exact_title_first,
    hybrid_scores,
    personal_rerank,
    zscore,
)
from tests.shops import HOMERS, NEW_MUG, NEW_SHOE, RUNNERS, new_items


def test_zscore_known_answer_and_constant_rows() -> None:
    x = np.array([[1.0, 2.0, 3.0, 100.0], [5.0, 5.0, 5.0, 5.0]])
    valid = np.array([[True, True, True, False], [True] * 4])
    z = zscore(x, valid)
    np.testing.assert_allclose(z[0], [-np.sqrt(1.5), 0, np.sqrt(1.5), 0])
    assert (z[1] == 0).all()


def test_rerank_moves_only_the_top_n() -> None:
    hybrid = np.array([[4.0, 3.0, 2.0, 1.0, -np.inf]])
    logits = {0: -5.0, 1: 5.0}  # the model prefers item 1 among the top 2
    out = personal_rerank(hybrid, 10.0, 2,
                          lambda top: np.vectorize(logits.get)(top).astype(float))
    assert np.argsort(-out[0])[:4].tolist() == [1, 0, 2, 3] and out[0, 4] == -np.inf
    assert personal_rerank(hybrid, 0.0, 2, lambda top: top) is hybrid
    # NaN logits (no personal evidence) leave the hybrid order
    same = personal_rerank(hybrid, 10.0, 2, lambda top: np.full(top.shape, np.nan))
    assert np.argsort(-same[0])[:4].tolist() == [0, 1, 2, 3]


def test_hybrid_ignores_invalid_items() -> None:
    lex = np.array([[3.0, 0.0, 100.0]])
    s = hybrid_scores(lex, np.zeros_like(lex), np.array([[True, True, False]]), SearchWeights())
    assert s[0, 2] == -np.inf and s[0, 0] > s[0, 1]


@pytest.mark.parametrize("query", ["red", "white", "blue"])
def test_ambiguous_query_is_decided_by_the_user(rec: Recommender, query: str) -> None:
    # "<colour>" matches one Acme shoe and one Zeta mug equally well lexically; the dense
    # part is left out so that the tie is exact (hashing vectors are arbitrary here)
    ps = ProductSearch(weights=SearchWeights(dense=0.0)).fit(rec)
    anon = ps.search(query, k=2)
    assert not anon.personalised
    assert {i.split("-")[0] for i in anon.item_ids} == {"shoe", "mug"}
    for runner in RUNNERS[:4]:
        assert ps.search(query, user=runner, k=1).item_ids[0].startswith("shoe")
    for home in HOMERS[:4]:
        assert ps.search(query, user=home, k=1).item_ids[0].startswith("mug")


def test_unknown_user_gets_the_non_personalised_ranking(rec: Recommender) -> None:
    anon = rec.search("red running shoe", k=5)
    unknown = rec.search("red running shoe", user="nobody", k=5)
    assert not unknown.personalised and unknown.item_ids == anon.item_ids
    np.testing.assert_allclose(unknown.frame["score"], anon.frame["score"])
    assert anon.frame["personal"].isna().all()


def test_new_user_from_profile_or_clicks_is_folded_in(rec: Recommender) -> None:
    runner = rec.search("red", profile={"segment": "runner"}, k=1)
    assert runner.personalised and runner.item_ids == ["shoe-0"]
    home = rec.search("red", clicks=["mug-2", "mug-3"], k=1)
    assert home.item_ids == ["mug-0"]
    exp = runner.explain("shoe-0")
    assert exp.paths is not None and exp.paths.paths
    assert all(n.id != "__new_user__0" for p in exp.paths.paths for n in p.nodes)


def test_zero_personal_weight_is_the_hybrid(rec: Recommender) -> None:
    ps = ProductSearch(weights=SearchWeights(personal=0.0)).fit(rec)
    assert ps.search("red", user=RUNNERS[0], k=4).item_ids == rec.search("red", k=4).item_ids


def test_new_skus_are_searchable_by_exact_title(rec: Recommender) -> None:
    ps = ProductSearch().fit(rec).add_items(new_items())
    for sku, title in ((NEW_SHOE, "Acme yellow running shoe"),
                       (NEW_MUG, "Zeta yellow coffee mug")):
        for user in (None, RUNNERS[0], HOMERS[0]):
            res = ps.search(title, user=user, k=3)
            assert res.item_ids[0] == sku
    res = ps.search("yellow", user=RUNNERS[0], k=2)
    assert res.item_ids[0] == NEW_SHOE and np.isfinite(res.frame["personal"]).all()
    # a new user folded in after the SKUs were added: the new SKU scores neutral, not wrong
    assert ps.search("Zeta yellow coffee mug", profile={"segment": "runner"},
                     k=1).item_ids == [NEW_MUG]
    with pytest.raises(DataError, match="already in the search index"):
        ps.add_items(new_items())


def test_filters_and_candidates(rec: Recommender) -> None:
    assert {i[:3] for i in rec.search("red", filters={"brands": ["Zeta"]}).item_ids} == {"mug"}
    shoes = rec.search("coffee mug", filters={"category": "Sports"}, k=50).item_ids
    assert shoes and all(i.startswith("shoe") for i in shoes)
    cheap = rec.search("mug", filters={"max_price": 10.0}, k=50).item_ids
    assert sorted(cheap) == ["mug-0", "mug-1"]
    assert rec.search("red", candidates=["mug-3", "shoe-2"], k=5).item_ids[0] in ("mug-3",
                                                                                  "shoe-2")


def test_explanation_names_matched_fields_and_graph_paths(rec: Recommender) -> None:
    res = rec.search("red running shoe acme", user=RUNNERS[0], k=3)
    exp = res.explain("shoe-0")
    assert exp.matched["title"] == ("red", "running", "shoe", "acme")
    assert exp.matched["brand"] == ("acme",)
    assert exp.paths is not None and exp.paths.paths and 0 < (exp.personal or 0) < 1
    assert "title: red running shoe acme" in str(exp)
    with pytest.raises(UnknownIdError):
        res.explain("mug-5")


def test_bad_input_errors(rec: Recommender) -> None:
    with pytest.raises(ValidationError, match="query is empty"):
        rec.search("   ")
    with pytest.raises(ValueError, match="k must be"):
        rec.search("red", k=0)
    with pytest.raises(NotFittedError, match="fit"):
        ProductSearch().search("red")
    with pytest.raises(NotFittedError):
        Recommender().search("red")


def test_index_is_built_once_per_load(rec: Recommender) -> None:
    assert rec.product_search() is rec.product_search()


def test_cold_strata_keep_a_new_sku_from_being_pushed_down() -> None:
    hybrid = np.array([[3.0, 2.9, 2.8]])
    logits = np.array([5.0, 4.0, -10.0])  # item 2 is a new SKU: the head scores it far lower

    def of(top: np.ndarray) -> np.ndarray:
        return logits[top]

    pooled = personal_rerank(hybrid, 1.0, 3, of)
    strata = personal_rerank(hybrid, 1.0, 3, of, strata=np.array([0, 0, 1]))
    assert np.argsort(-pooled[0]).tolist() == [0, 1, 2]
    # within the warm stratum item 0 > item 1 (z = +1 / -1); the lone new SKU gets z = 0
    assert np.argsort(-strata[0]).tolist() == [0, 2, 1]
    np.testing.assert_allclose(strata[0] - 1e6, [4.0, 1.9, 2.8])


def test_exact_title_beats_a_preferred_near_duplicate(rec: Recommender) -> None:
    # "Acme red running" is a new SKU; runners' model score prefers the warm shoe-0,
    # "Acme red running shoe", which holds every query word too
    extra = new_items().iloc[:1].assign(item_id="shoe-red-new", title="Acme red running")
    ps = ProductSearch().fit(rec).add_items(extra)
    for runner in RUNNERS[:4]:
        assert ps.search("acme RED running", user=runner, k=2).item_ids[0] == "shoe-red-new"
    # without the exact-title rule the near-duplicate would win for these users
    raw = ProductSearch().fit(rec).add_items(extra)
    raw.index_._titles.clear()
    assert any(raw.search("acme RED running", user=r, k=1).item_ids[0] == "shoe-0"
               for r in RUNNERS[:4])


def test_exact_title_first_only_moves_valid_exact_rows() -> None:
    scores = np.array([[3.0, 1.0, -np.inf], [1.0, 2.0, 0.0]])
    out = exact_title_first(scores, [np.array([1, 2]), np.array([], dtype=np.int64)])
    assert np.argsort(-out[0])[0] == 1 and out[0, 2] == -np.inf
    np.testing.assert_array_equal(out[1], scores[1])
