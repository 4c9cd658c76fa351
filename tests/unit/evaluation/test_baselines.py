"""Baselines on toy data with known answers, and the optional-extra handling."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from kgrec.errors import ConfigError, NotFittedError
from kgrec.evaluation.baselines import (
    ALSBaseline,
    ContentKNN,
    LightFMBaseline,
    Popularity,
    RandomScores,
    TrainData,
    attribute_popularity,
    available_baselines,
)

ITEMS = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "title": ["red", "red", "blue", "blue"],
                      "description": "", "brand": ["X", "X", "Y", pd.NA],
                      "category": ["K", "L", "K", "L"]})
USERS = pd.DataFrame({"user_id": ["u0", "u1", "u2"]})
# u0 bought a, b; u1 bought a, c; u2 nothing (cold). d has no interactions (cold item).
PAIRS = np.array([[0, 0, 1, 1], [0, 1, 0, 2]])
VECTORS = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])


@pytest.fixture
def train() -> TrainData:
    return TrainData(items=ITEMS, users=USERS, pairs=PAIRS)


def test_train_data_views(train: TrainData) -> None:
    assert train.item_counts().tolist() == [2, 1, 1, 0]
    assert [h.tolist() for h in train.histories()] == [[0, 1], [0, 2], []]


def test_attribute_popularity_by_hand() -> None:
    counts = np.array([2.0, 1.0, 1.0, 0.0])
    # brand X: 3, Y: 1, missing: 0; category K: 3, L: 1
    expected = np.log1p([3 + 0, 3, 1, 0]) + np.log1p([3, 1, 3, 1])
    expected[0] = np.log1p(3) + np.log1p(3)
    assert attribute_popularity(ITEMS, counts) == pytest.approx(expected)


def test_popularity_ranks_warm_by_count_and_cold_below(train: TrainData) -> None:
    s = Popularity().fit(train, VECTORS).score(np.array([0, 2]), np.arange(4))
    assert s.shape == (2, 4)
    assert np.argsort(-s[0]).tolist()[0] == 0
    assert s[0, 3] < s[0, 1] and s[0, 3] > 0          # cold item d: brand missing, category L


def test_content_knn_prefers_similar_text_and_falls_back(train: TrainData) -> None:
    m = ContentKNN().fit(train, VECTORS)
    s = m.score(np.array([0]), np.array([2, 3]))       # u0 likes "red" (a, b)
    assert s[0, 1] > s[0, 0]                           # d (0.1, 0.9) is closer than c (0, 1)
    s = m.score(np.array([2]), np.arange(4), histories=[np.array([2])])   # revealed c
    assert np.argmax(s[0]) == 2
    pop = Popularity().fit(train, VECTORS).score(np.array([2]), np.arange(4))
    s = m.score(np.array([2]), np.arange(4), histories=[np.zeros(0, dtype=np.int64)])
    assert np.argsort(-s[0]).tolist() == np.argsort(-pop[0]).tolist()


def test_random_is_seeded(train: TrainData) -> None:
    a = RandomScores(3).fit(train, VECTORS).score(np.arange(2), np.arange(4))
    b = RandomScores(3).fit(train, VECTORS).score(np.arange(2), np.arange(4))
    assert np.array_equal(a, b)


def test_not_fitted() -> None:
    with pytest.raises(NotFittedError, match="call fit"):
        Popularity().score(np.arange(1), np.arange(1))


def test_unknown_baseline() -> None:
    with pytest.raises(ConfigError, match="unknown baseline 'nope'"):
        available_baselines(["nope"])


@pytest.mark.skipif(importlib.util.find_spec("lightfm") is None, reason="lightfm not installed")
def test_lightfm_learns_the_toy_shop(train: TrainData) -> None:
    m = LightFMBaseline(no_components=4, epochs=20).fit(train, VECTORS)
    s = m.score(np.arange(3), np.arange(4))
    assert s.shape == (3, 4) and np.isfinite(s).all()
    cold = m.score(np.array([2]), np.arange(4), histories=[np.array([0])])
    assert cold.shape == (1, 4)


@pytest.mark.skipif(importlib.util.find_spec("implicit") is None, reason="implicit not installed")
def test_als_scores_warm_users_only(train: TrainData) -> None:
    m = ALSBaseline(factors=2, iterations=3).fit(train, VECTORS)
    assert m.score(np.arange(2), np.arange(4)).shape == (2, 4)
    with pytest.raises(ValueError, match="warm users only"):
        m.score(np.arange(1), np.arange(4), histories=[np.zeros(0, dtype=np.int64)])
