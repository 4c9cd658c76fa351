"""ColdStartModel on the two-segment shop: known answers, fold-in, determinism, shapes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from kgrec.coldstart import ColdStartModel, ModelConfig, NodeEmbeddings
from kgrec.errors import NotFittedError, UnknownIdError
from kgrec.graph.export import ExportedGraph
from tests.shops import HOMERS, MUGS, NEW_MUG, NEW_SHOE, RUNNERS, SHOES, shop_graph, small_model


def rows(ids: np.ndarray, wanted: list[str]) -> np.ndarray:
    pos = {v: k for k, v in enumerate(ids)}
    return np.array([pos[w] for w in wanted])


def test_buyers_of_brand_rank_new_brand_item_first(fitted: ColdStartModel,
                                                   graph: ExportedGraph) -> None:
    emb = fitted.transform(graph)
    new = rows(emb.item_ids, [NEW_SHOE, NEW_MUG])
    runners = rows(emb.user_ids, RUNNERS)
    homers = rows(emb.user_ids, HOMERS)
    s_run = fitted.score_matrix(emb, runners, new)
    s_home = fitted.score_matrix(emb, homers, new)
    assert (s_run[:, 0] > s_run[:, 1]).all()
    assert (s_home[:, 1] > s_home[:, 0]).all()


def test_new_user_with_profile_gets_segment_favourites(fitted: ColdStartModel) -> None:
    g = shop_graph(extra_users={"newbie": "runner", "newhome": "home"})
    emb = fitted.transform(g)
    users = rows(emb.user_ids, ["newbie", "newhome"])
    shoes, mugs = rows(emb.item_ids, SHOES), rows(emb.item_ids, MUGS)
    s = fitted.score_matrix(emb, users)
    assert s[0, shoes].mean() > s[0, mugs].mean()
    assert s[1, mugs].mean() > s[1, shoes].mean()
    assert emb.item_ids[s[0].argmax()].startswith("shoe")
    assert emb.item_ids[s[1].argmax()].startswith("mug")


def test_fold_in_new_item_equals_recompute(fitted: ColdStartModel) -> None:
    g = shop_graph(extra_items=[("shoe-fold", "Acme orange running shoe", "Trail shoe",
                                 "Acme", "Sports > Shoes > Running", 70.0)])
    full = fitted.transform(g)
    folded = fitted.transform(g, user_ids=RUNNERS[:3], item_ids=["shoe-fold", NEW_MUG])
    assert list(folded.item_ids) == ["shoe-fold", NEW_MUG]
    assert list(folded.user_ids) == RUNNERS[:3]
    want = fitted.score_matrix(full, rows(full.user_ids, RUNNERS[:3]),
                               rows(full.item_ids, ["shoe-fold", NEW_MUG]))
    got = fitted.score_matrix(folded)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(folded.item, full.item[rows(full.item_ids, ["shoe-fold",
                                                                            NEW_MUG])])


def test_unknown_brand_and_category_use_the_unknown_embedding(fitted: ColdStartModel) -> None:
    g = shop_graph(extra_items=[("lamp-1", "Nova desk lamp", "LED lamp", "Nova",
                                 "Home > Lighting", 30.0)])
    assert fitted.vocabs_["Brand"].lookup(np.array(["Nova", "Acme"])).tolist()[0] == 0
    emb = fitted.transform(g, item_ids=["lamp-1"])
    assert emb.item.shape == (1, fitted.config_.hidden_dim + 64)
    assert torch.isfinite(emb.item).all()


def test_same_seed_same_scores_other_seed_differs(graph: ExportedGraph,
                                                  fitted: ColdStartModel) -> None:
    again = small_model().fit(graph)
    a = fitted.score_matrix(fitted.transform(graph))
    b = again.score_matrix(again.transform(graph))
    np.testing.assert_array_equal(a, b)
    other = small_model(seed=1, epochs=3).fit(graph)
    assert not np.array_equal(a, other.score_matrix(other.transform(graph)))


def test_shapes_and_chunking(fitted: ColdStartModel, graph: ExportedGraph) -> None:
    emb = fitted.transform(graph)
    assert isinstance(emb, NodeEmbeddings)
    n_u, n_i = len(graph.node_ids["User"]), len(graph.node_ids["Item"])
    d = 32 + 64  # hidden + text-match columns (HashingEncoder dim 64)
    assert emb.user.shape == (n_u, d) and emb.item.shape == (n_i, d)
    full = fitted.score_matrix(emb)
    assert full.shape == (n_u, n_i) and full.dtype == np.float32
    assert ((full > 0) & (full < 1)).all()
    np.testing.assert_allclose(fitted.score_matrix(emb, chunk_size=5), full, rtol=1e-6)
    u, i = np.array([0, 3, 5]), np.array([1, 1, 7])
    np.testing.assert_allclose(fitted.predict_proba(emb, u, i), full[u, i], rtol=1e-5)
    assert fitted.predict_logits(emb, u, i).shape == (3,)
    r = fitted.retrieval_scores(emb, [0, 1], [2, 3, 4])
    assert r.shape == (2, 3)
    uv, iv = fitted.retrieval_vectors(emb)
    np.testing.assert_allclose(uv[[0, 1]] @ iv[[2, 3, 4]].T, r, rtol=1e-5)
    with pytest.raises(ValueError, match="differ in length"):
        fitted.predict_logits(emb, [0, 1], [0])
    with pytest.raises(ValueError, match="chunk_size"):
        fitted.score_matrix(emb, chunk_size=0)


def test_candidate_lists_score_as_flat_pairs_and_alone(fitted: ColdStartModel,
                                                       graph: ExportedGraph,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    emb = fitted.transform(graph)
    users = np.array([0, 3, 5])
    lists = np.array([[1, 2, 7, 4], [7, 1, 0, 2], [3, 3, 6, 1]])  # a repeated item too
    flat = fitted.predict_proba(emb, np.repeat(users, 4), lists.reshape(-1)).reshape(3, 4)
    # short lists are scored as the flat pairs themselves
    np.testing.assert_array_equal(fitted.predict_proba_lists(emb, users, lists), flat)
    monkeypatch.setattr("kgrec.coldstart.scoring.LIST_BLOCK_MIN", 1)  # per-user blocks
    got = fitted.predict_proba_lists(emb, users, lists)
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, flat, rtol=1e-5)
    for r in range(3):  # a list's scores do not depend on the other lists of the call
        np.testing.assert_array_equal(fitted.predict_proba_lists(emb, users[r:r + 1],
                                                                 lists[r:r + 1])[0], got[r])
    assert fitted.predict_proba_lists(emb, users[:0], lists[:0]).shape == (0, 4)
    with pytest.raises(ValueError, match=r"item_lists must have shape \(3, n\)"):
        fitted.predict_proba_lists(emb, users, lists[:2])


def test_score_matrix_follows_a_changed_head(fitted: ColdStartModel,
                                             graph: ExportedGraph) -> None:
    emb = fitted.transform(graph)
    before = fitted.score_matrix(emb, [0], [1, 2])
    np.testing.assert_array_equal(fitted.score_matrix(emb, [0], [1, 2]), before)  # cached copy
    bias = fitted.head_.tower_bias
    with torch.no_grad():
        bias += 1.0  # in place: the float64 copy must be made again
    try:
        assert (fitted.score_matrix(emb, [0], [1, 2]) > before).all()
    finally:
        with torch.no_grad():
            bias -= 1.0
    with torch.inference_mode():  # a head made there keeps no version counter: no cache
        model = copy.deepcopy(fitted)
        model.head_ = copy.deepcopy(fitted.head_)
    np.testing.assert_allclose(model.score_matrix(emb, [0], [1, 2]), before, rtol=1e-6)


def test_unknown_ids_in_fold_in_raise(fitted: ColdStartModel, graph: ExportedGraph) -> None:
    with pytest.raises(UnknownIdError, match="nope"):
        fitted.transform(graph, item_ids=["nope"])


@pytest.mark.parametrize("method", ["transform", "save"])
def test_use_before_fit_raises_with_the_fix(method: str, graph: ExportedGraph,
                                            tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = ColdStartModel()
    arg = graph if method == "transform" else tmp_path
    with pytest.raises(NotFittedError, match=r"call model\.fit\(graph\)"):
        getattr(model, method)(arg)


def test_constructor_only_stores_and_params_round_trip() -> None:
    config = ModelConfig(hidden_dim=16, conv="nope")  # no validation before fit
    model = ColdStartModel(config, num_threads=1)
    assert model.get_params()["config"] is config and model.get_params()["num_threads"] == 1
    assert model.set_params(config=config.replace(hidden_dim=8)).config.hidden_dim == 8
    assert "hidden_dim=8" in repr(model)
    with pytest.raises(ValueError, match="unknown parameter"):
        model.set_params(hiddn=3)


def test_invalid_argument_raises_in_fit(graph: ExportedGraph) -> None:
    with pytest.raises(ValueError, match="conv must be one of"):
        small_model(conv="nope").fit(graph)


def test_callback_and_history(graph: ExportedGraph) -> None:
    seen: list[tuple[int, dict[str, float]]] = []
    model = small_model(epochs=3, val_user_share=0.5).fit(
        graph, callback=lambda e, m: seen.append((e, m)))
    assert [e for e, _ in seen] == [0, 1, 2]
    assert len(model.history_) == 3
    assert {"loss", "val_auc", "val_loss", "seconds"} <= set(model.history_[0])
    assert 0 <= model.history_[-1]["val_auc"] <= 1


@pytest.mark.parametrize("conv", ["gat", "hgt"])
def test_other_convolutions_train_and_score(conv: str, graph: ExportedGraph) -> None:
    model = small_model(conv=conv, epochs=15).fit(graph)
    emb = model.transform(graph)
    s = model.score_matrix(emb, rows(emb.user_ids, RUNNERS), rows(emb.item_ids, SHOES + MUGS))
    assert s[:, :6].mean() > s[:, 6:].mean()
