"""Every metric on tiny matrices whose values are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kgrec.evaluation.metrics import MetricAccumulator, evaluate_matrix, positive_ranks

# one user, 5 candidates; order by score: c0 (0.9), c3 (0.8), c1 (0.5), c4 (0.3), c2 (0.1)
SCORES = np.array([[0.9, 0.5, 0.1, 0.8, 0.3]])
TRUTH = np.array([[False, True, False, False, True]])   # positives c1 (rank 2), c4 (rank 3)


def test_positive_ranks_puts_invalid_last() -> None:
    valid = np.array([[True, True, True, False, True]])
    ranks = positive_ranks(SCORES, valid, np.zeros_like(SCORES))
    assert ranks.tolist() == [[0, 1, 3, 4, 2]]


def test_ranking_metrics_by_hand() -> None:
    r = evaluate_matrix(SCORES, TRUTH, ks=(1, 3, 4))
    assert r["recall@1"] == 0.0 and r["hit_rate@1"] == 0.0 and r["ndcg@1"] == 0.0
    assert r["recall@3"] == pytest.approx(0.5)          # c1 at 0-based rank 2
    assert r["hit_rate@3"] == 1.0
    idcg3 = 1 + 1 / math.log2(3)
    assert r["ndcg@3"] == pytest.approx((1 / math.log2(4)) / idcg3)
    assert r["recall@4"] == 1.0
    assert r["ndcg@4"] == pytest.approx((1 / math.log2(4) + 1 / math.log2(5)) / idcg3)
    assert r["mrr"] == pytest.approx(1 / 3)
    # AUC: negatives c0, c3, c2; c1 beats c2 only, c4 beats c2 only -> 2 of 6 pairs
    assert r["gauc"] == pytest.approx(2 / 6)


def test_excluded_candidates_do_not_count() -> None:
    valid = np.array([[False, True, True, False, True]])   # c0 and c3 were seen in training
    r = evaluate_matrix(SCORES, TRUTH, valid, ks=(2,))
    assert r["recall@2"] == 1.0 and r["mrr"] == 1.0 and r["gauc"] == 1.0


def test_gauc_is_the_unweighted_mean_over_users() -> None:
    scores = np.array([[0.9, 0.1, 0.5], [0.1, 0.9, 0.5]])
    truth = np.array([[True, False, False], [True, False, False]])
    r = evaluate_matrix(scores, truth, ks=(1,))
    assert r["gauc"] == pytest.approx(0.5)      # user 0: 1.0, user 1: 0.0
    assert r["recall@1"] == pytest.approx(0.5)
    assert r["users"] == 2


def test_users_without_positives_are_skipped() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    truth = np.array([[True, False], [False, False]])
    assert evaluate_matrix(scores, truth, ks=(1,))["users"] == 1


def test_ties_are_broken_at_random_not_by_column() -> None:
    n = 200
    scores = np.zeros((n, 10))
    truth = np.zeros((n, 10), dtype=bool)
    truth[:, 0] = True                       # by column order it would always rank first
    r = evaluate_matrix(scores, truth, ks=(1,), seed=3)
    assert 0.03 < r["recall@1"] < 0.2        # expected 0.1
    assert r["gauc"] == pytest.approx(0.5, abs=0.06)


def test_log_loss_and_ece_by_hand() -> None:
    p = np.array([[0.2, 0.2, 0.9, 0.9]])
    y = np.array([[True, False, True, True]])
    r = evaluate_matrix(p, y, ks=(1,), proba=True)
    # bins: 0.2 -> bin 3 (mean y 0.5, mean p 0.2), 0.9 -> bin 13 (mean y 1, mean p 0.9)
    assert r["ece"] == pytest.approx(0.5 * 0.3 + 0.5 * 0.1)
    ll = -(math.log(0.2) + math.log(0.8) + 2 * math.log(0.9)) / 4
    assert r["log_loss"] == pytest.approx(ll)
    assert math.isnan(evaluate_matrix(p, y, ks=(1,))["ece"])   # not probabilities


def test_coverage_and_popularity_by_hand() -> None:
    scores = np.array([[0.9, 0.8, 0.1, 0.0], [0.9, 0.1, 0.8, 0.0]])
    truth = np.array([[True, False, False, False], [False, False, False, True]])
    pop = np.array([10.0, 4.0, 2.0, 0.0])
    r = evaluate_matrix(scores, truth, ks=(2,), popularity=pop, cold_items=np.array([2, 3]))
    # top-2 lists: {0, 1} and {0, 2}
    assert r["catalog_coverage@2"] == pytest.approx(3 / 4)
    assert r["cold_coverage@2"] == pytest.approx(1 / 2)
    assert r["popularity@2"] == pytest.approx((10 + 4 + 10 + 2) / 4)


def test_streaming_equals_one_block() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((30, 12))
    truth = rng.random((30, 12)) < 0.2
    truth[:, 0] = True
    one = evaluate_matrix(scores, truth, ks=(3,))
    acc = MetricAccumulator(ks=(3,), n_items=12, candidate_items=np.arange(12))
    for s in range(0, 30, 7):
        acc.add(scores[s:s + 7], truth[s:s + 7])
    res = acc.result()
    for key in ("recall@3", "ndcg@3", "mrr", "gauc", "catalog_coverage@3"):
        assert res[key] == pytest.approx(one[key])


def test_shape_and_truth_errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        evaluate_matrix(np.zeros((1, 3)), np.zeros((1, 2), dtype=bool))
    with pytest.raises(ValueError, match="not a valid candidate"):
        evaluate_matrix(np.zeros((1, 2)), np.array([[True, False]]),
                        np.array([[False, True]]))


def test_public_names_resolve() -> None:
    import importlib

    import kgrec.evaluation as ev

    assert ev.__all__ == sorted(ev._EXPORTS)
    for name, module in ev._EXPORTS.items():  # each name is the one its module defines
        home = importlib.import_module(f"kgrec.evaluation.{module}")
        assert getattr(ev, name) is getattr(home, name), name
    with pytest.raises(AttributeError, match="no attribute"):
        _ = ev.nope


@pytest.mark.parametrize("k", [1, 5, 20])
def test_streaming_ndcg_matches_scikit_learn(k: int) -> None:
    """The streaming NDCG@K equals ``sklearn.metrics.ndcg_score`` (binary gains, no ties)."""
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(k)
    scores = rng.random((40, 30))
    truth = rng.random((40, 30)) < 0.15
    truth[np.arange(40), rng.integers(30, size=40)] = True  # every user has a positive
    acc = MetricAccumulator(ks=(k,), seed=0)
    for block in (slice(0, 17), slice(17, 40)):  # streamed in two blocks
        acc.add(scores[block], truth[block])
    assert acc.result()[f"ndcg@{k}"] == pytest.approx(
        ndcg_score(truth.astype(float), scores, k=k), rel=1e-12)


def test_a_cut_off_above_the_candidate_count_counts_only_positives() -> None:
    scores = np.array([[0.9, 0.1, 0.5]])
    truth = np.array([[False, True, False]])
    res = evaluate_matrix(scores, truth, ks=(2, 20))
    assert res["recall@2"] == 0.0 and res["recall@20"] == 1.0
    assert res["hit_rate@20"] == 1.0 and res["ndcg@20"] == pytest.approx(1 / np.log2(4))
