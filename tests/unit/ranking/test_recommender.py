"""The Recommender API contract on the two-segment shop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec.coldstart import ModelConfig
from kgrec.errors import ColdStartWarning, DataError, NotFittedError, UnknownIdError
from kgrec.graph.build import build_graph
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.export import ExportedGraph, to_hetero_data
from kgrec.graph.pseudonym import Pseudonymizer
from kgrec.graph.schema import NodeLabel
from kgrec.graph.store import write_graph
from kgrec.graph.tables import CatalogTables
from kgrec.ranking.recommender import Recommender
from tests.fakes import CountingEncoder
from tests.shops import HOMERS, MUGS, RUNNERS, SHOES, make_recommender, new_items, shop_tables


def test_not_fitted_raises_with_fix() -> None:
    rec = Recommender(ModelConfig(epochs=1))
    with pytest.raises(NotFittedError, match="call rec.fit"):
        rec.recommend(["x"])
    with pytest.raises(NotFittedError):
        rec.rank_new_items(new_items())
    with pytest.raises(NotFittedError):
        rec.explain("x", "y")


def test_constructor_only_stores_params() -> None:
    config = ModelConfig(epochs=3, hidden_dim=8)
    rec = Recommender(config, rerank_n=5)
    assert rec.get_params()["config"] is config and rec.get_params()["rerank_n"] == 5
    assert not hasattr(rec, "model_")
    rec.set_params(config=config.replace(epochs=4), rerank_n=7)
    assert rec.config is not None and rec.config.epochs == 4 and rec.rerank_n == 7
    with pytest.raises(ValueError, match="config=ModelConfig"):
        rec.set_params(epochs=5)


def test_recommend_shapes_and_segments(rec: Recommender) -> None:
    ids, scores = rec.recommend(RUNNERS[:3] + HOMERS[:2], k=3)
    assert ids.shape == (5, 3) and scores.shape == (5, 3)
    assert all(str(i).startswith("shoe") for i in ids[:3, 0])
    assert all(str(i).startswith("mug") for i in ids[3:, 0])
    assert (np.diff(scores, axis=1) <= 1e-12).all()
    assert ((scores > 0) & (scores < 1)).all()
    one_ids, one_scores = rec.recommend(RUNNERS[0], k=3)
    assert one_ids.shape == (3,) and one_scores.shape == (3,)
    np.testing.assert_array_equal(one_ids, ids[0])


@pytest.mark.parametrize("list_min", [500, 1])  # flat pairs / per-user blocks (any length)
def test_batch_equals_one_by_one(rec: Recommender, list_min: int,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kgrec.coldstart.scoring.LIST_BLOCK_MIN", list_min)
    users = RUNNERS + HOMERS
    ids, scores = rec.recommend(users, k=5)
    for n, u in enumerate(users):
        i1, s1 = rec.recommend(u, k=5)
        np.testing.assert_array_equal(i1, ids[n])
        np.testing.assert_allclose(s1, scores[n], rtol=1e-6)


def test_list_and_flat_rerank_agree(rec: Recommender, monkeypatch: pytest.MonkeyPatch) -> None:
    users = RUNNERS + HOMERS
    ids, scores = rec.recommend(users, k=5)  # the tiny catalogue: flat pairs
    monkeypatch.setattr("kgrec.coldstart.scoring.LIST_BLOCK_MIN", 1)
    ids2, scores2 = rec.recommend(users, k=5)
    np.testing.assert_array_equal(ids2, ids)
    np.testing.assert_allclose(scores2, scores, rtol=1e-5)


def test_exclude_seen(rec: Recommender, graph: ExportedGraph) -> None:
    tables = shop_tables(with_new_items=False)
    seen = set(tables.interactions.loc[tables.interactions["user_id"] == RUNNERS[0], "item_id"])
    ids, _ = rec.recommend(RUNNERS[0], k=12)
    assert not seen & {i for i in ids if i is not None}
    assert ids[-len(seen):].tolist() == [None] * len(seen)
    ids_all, _ = rec.recommend(RUNNERS[0], k=12, exclude_seen=False)
    assert seen <= set(ids_all)


def test_candidates_restriction(rec: Recommender) -> None:
    ids, scores = rec.recommend(RUNNERS[:2], k=10, candidates=["mug-1", "mug-2"],
                                exclude_seen=False)
    assert ids.shape == (2, 2)
    assert set(ids.reshape(-1)) == {"mug-1", "mug-2"}


def test_unknown_ids_are_listed(rec: Recommender) -> None:
    with pytest.raises(UnknownIdError, match="'ghost-1', 'ghost-2'") as e:
        rec.recommend([RUNNERS[0], "ghost-1", "ghost-2"])
    assert e.value.ids == ["ghost-1", "ghost-2"]
    with pytest.raises(UnknownIdError, match="nope"):
        rec.recommend(RUNNERS[0], candidates=["shoe-1", "nope"])
    with pytest.raises(UnknownIdError):
        rec.score([RUNNERS[0]], ["nope"])


def test_score_matches_recommend(rec: Recommender) -> None:
    ids, scores = rec.recommend(HOMERS[0], k=3)
    np.testing.assert_allclose(rec.score(HOMERS[0], list(ids)), scores, rtol=1e-6)
    with pytest.raises(ValueError, match="differ in length"):
        rec.score(HOMERS[:2], MUGS[:3])


def test_rank_new_items_equals_refit_free_recompute(rec: Recommender) -> None:
    result = rec.rank_new_items(new_items(), k=2)
    by_user = result.by_user.set_index(["user_id", "item_id"])["score"]
    assert set(result.by_user.columns) == {"user_id", "item_id", "rank", "score"}
    first = result.by_user[result.by_user["rank"] == 1].set_index("user_id")["item_id"]
    assert (first[RUNNERS] == "shoe-new").all() and (first[HOMERS] == "mug-new").all()
    # the same model on the whole graph rebuilt with the new SKUs (no fold-in shortcut)
    tables = shop_tables(with_new_items=False)
    full = CatalogTables(items=pd.concat([tables.items, new_items().astype(
        {c: "string" for c in ["item_id", "title", "description", "brand", "category"]})],
        ignore_index=True), users=tables.users, interactions=tables.interactions)
    g = to_hetero_data(build_graph(full))
    emb = rec.model_.transform(g)
    u = g.index_of("User", [RUNNERS[0], HOMERS[0]])
    i = g.index_of("Item", ["shoe-new", "mug-new"])
    want = rec.model_.score_matrix(emb, u, i)
    got = np.array([[by_user[(usr, it)] for it in ["shoe-new", "mug-new"]]
                    for usr in [RUNNERS[0], HOMERS[0]]])
    np.testing.assert_allclose(got, want, rtol=1e-4)
    per_item = result.by_item[result.by_item["item_id"] == "shoe-new"]
    assert per_item["user_id"].str.startswith("runner").all()
    assert (per_item["rank"].to_numpy() == np.arange(1, len(per_item) + 1)).all()


def test_rank_new_items_for_given_users(rec: Recommender) -> None:
    result = rec.rank_new_items(new_items(), user_ids=[HOMERS[1]], k=1)
    assert result.by_user["user_id"].tolist() == [HOMERS[1]]
    assert result.by_user["item_id"].tolist() == ["mug-new"]


def test_new_sku_with_nothing_known_warns(rec: Recommender) -> None:
    bare = pd.DataFrame({"item_id": ["blank"], "title": [""], "brand": ["NoSuchBrand"]})
    with pytest.warns(ColdStartWarning, match="blank"):
        result = rec.rank_new_items(bare, k=1)
    assert result.cold_items == ["blank"]
    assert len(result.by_user) == len(RUNNERS) + len(HOMERS)


def test_new_sku_already_in_graph_is_refused(rec: Recommender) -> None:
    with pytest.raises(DataError, match="shoe-1"):
        rec.rank_new_items(pd.DataFrame({"item_id": ["shoe-1"], "title": ["x"]}))


def test_new_user_from_profile_and_clicks(rec: Recommender) -> None:
    ids, scores = rec.recommend_for_new_user({"segment": "runner"}, k=3)
    assert ids.shape == (3,) and all(str(i).startswith("shoe") for i in ids)
    ids, _ = rec.recommend_for_new_user({}, clicks=["mug-1"], k=3)
    assert "mug-1" not in ids and str(ids[0]).startswith("mug")
    with pytest.warns(ColdStartWarning):
        rec.recommend_for_new_user({"segment": "astronaut"}, k=2)
    with pytest.raises(UnknownIdError, match="nope"):
        rec.recommend_for_new_user({}, clicks=["nope"])


def test_save_load_identical_scores(rec: Recommender, graph: ExportedGraph, tmp_path) -> None:
    rec.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m", graph, text_encoder=rec.text_encoder,
                              num_threads=rec.num_threads)
    assert loaded.config == rec.model_.config_
    a_ids, a_scores = rec.recommend(RUNNERS + HOMERS, k=4)
    b_ids, b_scores = loaded.recommend(RUNNERS + HOMERS, k=4)
    np.testing.assert_array_equal(a_ids, b_ids)
    np.testing.assert_array_equal(a_scores, b_scores)
    assert loaded.model_version_ == rec.model_version_
    assert loaded.rerank_n == rec.rerank_n
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pickle"))


def test_fit_on_store_with_pseudonymizer(tmp_path) -> None:
    from kgrec.graph.ingest import ingest_tables

    store = EmbeddedGraphStore(tmp_path / "s")
    pseudo = Pseudonymizer(b"k" * 32)
    ingest_tables(shop_tables(with_new_items=False), store, pseudo)
    rec = make_recommender(pseudonymizer=pseudo, epochs=5).fit(store)
    ids, _ = rec.recommend([RUNNERS[0], HOMERS[0]], k=2)  # raw ids at the API
    assert ids.shape == (2, 2)
    exp = rec.explain(RUNNERS[0], ids[0][0])
    assert exp.user_id == pseudo.pseudonymize([RUNNERS[0]])[0]
    with pytest.raises(UnknownIdError, match="stranger"):
        rec.recommend("stranger")
    assert set(ids.ravel()) <= set(SHOES + MUGS)  # catalogue ids, not indices or pseudonyms
    stored = set(store.nodes(NodeLabel.USER)["id"])
    assert RUNNERS[0] not in stored and exp.user_id in stored


def test_new_user_explanation_names_the_caller_id(rec: Recommender) -> None:
    users = pd.DataFrame({"user_id": ["visitor-42"], "segment": ["runner"]})
    clicks = pd.DataFrame({"user_id": ["visitor-42"], "item_id": ["shoe-1"]})
    ranking = rec.recommend_for_new_users(users, clicks, k=2)
    top = ranking.by_user.iloc[0]
    exp = ranking.explain("visitor-42", top["item_id"])
    assert exp.user_id == "visitor-42" and exp.paths
    user_nodes = {n.id for p in exp.paths for n in p.nodes if n.label == "User"}
    assert "visitor-42" in user_nodes
    assert not any(i.startswith("__new_user__") for i in user_nodes)


def test_load_encodes_only_texts_that_are_new(tmp_path: Path) -> None:
    """A saved model keeps its training text vectors: a load encodes no known item text, and
    after SKUs are added to the store it encodes exactly those."""
    store = EmbeddedGraphStore(tmp_path / "store")
    write_graph(store, build_graph(shop_tables(with_new_items=False)))
    fitted = make_recommender(text_encoder=CountingEncoder(dim=64), epochs=2).fit(store)
    fitted.save(tmp_path / "m")
    again = CountingEncoder(dim=64)
    loaded = Recommender.load(tmp_path / "m", store, text_encoder=again, num_threads=1)
    loaded.recommend(RUNNERS[0], k=3)
    assert again.encoded == []
    write_graph(store, build_graph(CatalogTables(items=new_items())))
    grown = CountingEncoder(dim=64)
    Recommender.load(tmp_path / "m", store, text_encoder=grown, num_threads=1)
    assert len(grown.encoded) == len(new_items())
