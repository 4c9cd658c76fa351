"""EASE and item-kNN CF against direct numpy computations on tiny matrices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kgrec.errors import ConfigError
from kgrec.evaluation.baselines import Popularity, TrainData, available_baselines
from kgrec.evaluation.baselines_cf import (
    EASE,
    ItemKNN,
    cosine_item_similarity,
    ease_weights,
    slice_recall,
    top_k_per_row,
    validation_slice,
)


def make_train(x: np.ndarray, ts: np.ndarray | None = None) -> TrainData:
    n_users, n_items = x.shape
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(n_items)], "title": "t",
                          "brand": "B", "category": "C"})
    users = pd.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]})
    u, i = np.nonzero(x)
    return TrainData(items=items, users=users, pairs=np.stack([u, i]), ts=ts)


def random_binary(n_users: int = 30, n_items: int = 8, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n_users, n_items)) < 0.4).astype(np.float64)


def direct_ease(x: np.ndarray, l2: float) -> np.ndarray:
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    out: np.ndarray = np.eye(x.shape[1]) - p @ np.diag(1.0 / np.diag(p))
    return out


@pytest.mark.parametrize("l2", [0.5, 10.0, 500.0])
def test_ease_weights_equal_the_closed_form(l2: float) -> None:
    x = random_binary()
    b = ease_weights(make_train(x).interaction_matrix(), l2)
    assert b.dtype == np.float32
    np.testing.assert_allclose(b, direct_ease(x, l2), rtol=1e-4, atol=1e-6)
    assert np.all(np.diag(b) == 0.0)


def test_ease_scores_are_history_times_b_and_empty_history_is_popularity() -> None:
    x = random_binary()
    x[:, 7] = 0.0                                           # item 7: no training interaction
    train = make_train(x)
    model = EASE(l2_grid=(5.0,)).fit(train, np.zeros((8, 2)))
    assert model.l2_ == 5.0 and model.val_recall_ == {}     # a single value is used as is
    b = direct_ease(x, 5.0)
    s = model.score(np.array([0, 1]), np.arange(8))
    np.testing.assert_allclose(s, x[[0, 1]] @ b, rtol=1e-4, atol=1e-5)
    revealed = [np.array([2, 4]), np.zeros(0, dtype=np.int64), np.array([7])]
    s = model.score(np.array([0, 1, 2]), np.array([0, 3, 5]), histories=revealed)
    np.testing.assert_allclose(s[0], b[[2, 4]][:, [0, 3, 5]].sum(axis=0), rtol=1e-4, atol=1e-5)
    pop = Popularity().fit(train, np.zeros((8, 2))).item_scores_[[0, 3, 5]]
    for row in (1, 2):  # no history, or only an item without training signal
        assert np.argsort(-s[row]).tolist() == np.argsort(-pop).tolist()
    assert model.regimes == frozenset({"user_cold", "warm"})


def test_validation_slice_holds_out_the_latest_training_pair() -> None:
    x = np.ones((10, 4))
    x[9, 1:] = 0.0                                          # user 9 has one pair: not eligible
    train = make_train(x)
    train.ts = np.arange(train.pairs.shape[1])[::-1].copy()  # each user's first item is latest
    fit_pairs, users, items = validation_slice(train, share=0.5, seed=3)
    assert len(users) == 4 and 9 not in users                # round(0.5 * 9 eligible)
    assert np.all(items == 0)
    assert fit_pairs.shape[1] == train.pairs.shape[1] - 4
    held = set(zip(users.tolist(), items.tolist(), strict=True))
    rest = set(zip(*fit_pairs.tolist(), strict=True))
    assert held.isdisjoint(rest)
    assert held | rest == set(zip(*train.pairs.tolist(), strict=True))


def naive_recall(x: np.ndarray, b: np.ndarray, users: np.ndarray, items: np.ndarray,
                 k: int) -> float:
    hits = 0.0
    for u, target in zip(users, items, strict=True):
        s = x[u] @ b
        s[x[u] > 0] = -np.inf
        greater, equal = (s > s[target]).sum(), (s == s[target]).sum() - 1
        hits += float(greater + 0.5 * equal < k)
    return hits / len(users)


def test_l2_is_chosen_by_recall_on_the_training_validation_slice_then_refitted() -> None:
    x = random_binary(60, 12, seed=1)
    train = make_train(x)                      # the model sees TrainData (training pairs) only
    model = EASE(l2_grid=(1000.0, 1.0, 10.0), val_share=0.5, val_k=3, seed=0)
    model.fit(train, np.zeros((12, 2)))
    fit_pairs, users, items = validation_slice(train, 0.5, 0)
    x_fit = np.zeros_like(x)
    x_fit[fit_pairs[0], fit_pairs[1]] = 1.0
    expected = {l2: naive_recall(x_fit, direct_ease(x_fit, l2), users, items, 3)
                for l2 in (1.0, 10.0, 1000.0)}
    assert model.val_recall_ == pytest.approx(expected)
    assert model.l2_ == next(v for v in (1.0, 10.0, 1000.0)
                             if expected[v] == max(expected.values()))
    np.testing.assert_allclose(model.weights_, direct_ease(x, model.l2_), rtol=1e-4,
                               atol=1e-6)                # refitted on every training pair
    x_sp = make_train(x_fit).interaction_matrix()
    assert slice_recall(x_sp, ease_weights(x_sp, 10.0), users, items, 3) == \
        pytest.approx(expected[10.0])


def test_ease_refuses_a_catalogue_above_max_items() -> None:
    with pytest.raises(ConfigError, match="dense item x item matrix: 8 items > max_items=5"):
        EASE(max_items=5).fit(make_train(random_binary()), np.zeros((8, 2)))


def checkerboard(n_users: int = 8, n_items: int = 6) -> np.ndarray:
    """User u likes item i when u and i have the same parity (two blocks)."""
    u, i = np.indices((n_users, n_items))
    x = (u % 2 == i % 2).astype(np.float64)
    x[0, 4] = 0.0                                           # one missing pair: unequal weights
    return x


def test_cosine_similarity_equals_dense_numpy_and_pruning_keeps_the_largest() -> None:
    x = checkerboard()
    c = x.T @ x
    expected = c / np.sqrt(np.outer(np.diag(c), np.diag(c)))
    np.fill_diagonal(expected, 0.0)
    sim = cosine_item_similarity(make_train(x).interaction_matrix(), None)
    np.testing.assert_allclose(sim.toarray(), expected, rtol=1e-6)
    top = top_k_per_row(sim, 1).toarray()
    assert (np.count_nonzero(top, axis=1) == 1).all()
    assert np.array_equal(top.argmax(axis=1), expected.argmax(axis=1))


def test_item_knn_recovers_the_checkerboard_block() -> None:
    x = checkerboard()
    train = make_train(x)
    model = ItemKNN(neighbours=100).fit(train, np.zeros((6, 2)))
    # a cold user revealing item 1 (odd block): the other odd items first, even items last
    s = model.score(np.array([0]), np.arange(6), histories=[np.array([1])])[0]
    s[1] = -np.inf
    assert set(np.argsort(-s)[:2].tolist()) == {3, 5}
    assert np.all(s[[0, 2, 4]] == 0.0)
    # warm user 0 (even, never bought item 4): item 4 is the best unseen item
    s = model.score(np.array([0]), np.arange(6))[0]
    s[x[0] > 0] = -np.inf
    assert int(np.argmax(s)) == 4
    # neighbours=1: each history item contributes only its single nearest neighbour
    one = ItemKNN(neighbours=1).fit(train, np.zeros((6, 2)))
    assert np.count_nonzero(one.score(np.array([0]), np.arange(6),
                                      histories=[np.array([1])])) == 1


def test_new_baselines_are_registered() -> None:
    from kgrec.evaluation._names import BASELINES

    names = ["tfidf_knn", "tfidf_bert_blend", "ease", "item_knn"]
    assert set(names) <= set(BASELINES)
    assert [b.name for b in available_baselines(names)] == names
    with pytest.raises(ConfigError, match="choose from .*tfidf_knn.*ease, item_knn"):
        available_baselines(["nope"])
