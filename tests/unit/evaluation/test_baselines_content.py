"""TF-IDF kNN and the TF-IDF + BERT blend on a tiny catalogue with known lexical matches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kgrec.evaluation.baselines import ContentKNN, Popularity, TrainData
from kgrec.evaluation.baselines_content import TfidfBertBlend, TfidfKNN, zscore_rows

ITEMS = pd.DataFrame({
    "item_id": [f"i{j}" for j in range(6)],
    "title": ["Nitrile gloves, powder free", "Steel hex bolt M6", "Latex gloves",
              "Digital caliper 150 mm", "Stainless hex bolt M8", "Nitrile exam gloves"],
    "description": ["", "zinc plated", "", "stainless steel jaws", "", "blue nitrile"],
    "brand": ["Acme", "Bolty", "Medi", "Measure", "Bolty", "Medi"],
    "category": "Industrial",
})
USERS = pd.DataFrame({"user_id": ["u0", "u1", "u2"]})
# u0 bought the nitrile gloves and the steel bolt; u1 the caliper; u2 nothing (cold)
PAIRS = np.array([[0, 0, 1, 1, 1], [0, 1, 3, 3, 4]])
VECTORS = np.random.default_rng(0).normal(size=(6, 5))


@pytest.fixture
def train() -> TrainData:
    return TrainData(items=ITEMS, users=USERS, pairs=PAIRS)


def test_tfidf_knn_ranks_the_lexical_match_first(train: TrainData) -> None:
    model = TfidfKNN().fit(train, VECTORS)
    # revealed the nitrile gloves: the other nitrile gloves (2 shared terms), then latex (1)
    s = model.score(np.array([2]), np.array([1, 2, 3, 4, 5]), histories=[np.array([0])])[0]
    assert np.argsort(-s).tolist()[:2] == [4, 1]              # items 5, then 2
    # revealed the steel bolt: the other hex bolt first
    s = model.score(np.array([2]), np.array([0, 2, 3, 4, 5]), histories=[np.array([1])])[0]
    assert int(np.argmax(s)) == 3                             # item 4


def test_tfidf_knn_is_the_cosine_to_the_mean_normalised_history(train: TrainData) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from kgrec.encoders import compose_item_texts

    t = TfidfVectorizer(min_df=2, sublinear_tf=True, stop_words="english").fit_transform(
        compose_item_texts(ITEMS)[0]).toarray()
    model = TfidfKNN().fit(train, VECTORS)
    user = t[[0, 1]].mean(axis=0)                             # u0's training history
    expected = t @ user / np.linalg.norm(user)                # rows of t have unit norm
    np.testing.assert_allclose(model.score(np.array([0]), np.arange(6))[0], expected,
                               rtol=1e-5, atol=1e-6)


def test_tfidf_knn_without_history_is_popularity(train: TrainData) -> None:
    s = TfidfKNN().fit(train, VECTORS).score(np.array([2]), np.arange(6))[0]
    pop = Popularity().fit(train, VECTORS).item_scores_
    assert np.argsort(-s, kind="stable").tolist() == np.argsort(-pop, kind="stable").tolist()


def test_zscore_rows_by_hand() -> None:
    z = zscore_rows(np.array([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]]))
    np.testing.assert_allclose(z, [[-np.sqrt(1.5), 0.0, np.sqrt(1.5)], [0.0, 0.0, 0.0]])


def test_blend_is_the_sum_of_per_user_z_scores(train: TrainData) -> None:
    users, items = np.array([0, 1, 2]), np.arange(6)
    hist = [np.array([0, 1]), np.array([3]), np.array([5])]
    blend = TfidfBertBlend().fit(train, VECTORS).score(users, items, histories=hist)
    tfidf = TfidfKNN().fit(train, VECTORS).score(users, items, histories=hist)
    bert = ContentKNN().fit(train, VECTORS).score(users, items, histories=hist)
    expected = zscore_rows(tfidf) + zscore_rows(bert)
    np.testing.assert_allclose(blend, expected)
    np.testing.assert_allclose(blend.mean(axis=1), 0.0, atol=1e-12)
    assert not np.allclose(blend, 2 * zscore_rows(tfidf))     # BERT really contributes
