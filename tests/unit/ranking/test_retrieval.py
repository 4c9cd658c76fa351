"""Retrieval: the exact search returns what ``torch.topk`` returns; the IVF index keeps its
recall, honours seen items and candidate subsets, and threads are restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kgrec.ranking import retrieval
from kgrec.ranking.candidates import iter_ranked, retrieve
from kgrec.ranking.recommender import Recommender
from kgrec.ranking.retrieval import (
    ApproximateIndex,
    check_retrieval,
    exact_search,
    heap_topn,
    recall_at,
)

faiss = pytest.importorskip("faiss")


def _vectors(n_users: int, n_items: int, dim: int = 16, seed: int = 0
             ) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_users, dim, generator=g), torch.randn(n_items, dim, generator=g)


def _clustered(n_items: int, n_users: int, dim: int = 32, centres: int = 20, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Items and users around shared centres: the structure trained embeddings have."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim)) * 3
    items = c[rng.integers(0, centres, n_items)] + rng.normal(size=(n_items, dim))
    users = c[rng.integers(0, centres, n_users)] + rng.normal(size=(n_users, dim))
    return users.astype(np.float32), items.astype(np.float32)


@pytest.mark.parametrize("use_faiss", [True, False])
def test_exact_search_matches_torch_topk(monkeypatch, use_faiss: bool) -> None:
    monkeypatch.setattr(retrieval, "has_faiss", lambda: use_faiss)
    monkeypatch.setattr(retrieval, "HEAP_MIN_ITEMS", 0)   # the heap on a small catalogue too
    users, items = _vectors(97, 1500)
    rng = np.random.default_rng(1)
    rows, cols = np.repeat(np.arange(97), 30), rng.integers(0, 1500, 97 * 30)
    ref_values, ref_idx = retrieve(users, items, 200, rows, cols)
    values, found = exact_search(users, items, 200, rows, cols, threads=1)
    np.testing.assert_array_equal(found, ref_idx.numpy())
    np.testing.assert_allclose(values, ref_values.numpy(), rtol=1e-6)


def test_exact_search_into_a_reused_buffer(monkeypatch) -> None:
    monkeypatch.setattr(retrieval, "HEAP_MIN_ITEMS", 0)
    users, items = _vectors(50, 300)
    buffer = torch.full((64 * 300,), float("nan"))
    for block in (users[:40], users[40:]):   # a full and a short block in the same buffer
        np.testing.assert_array_equal(exact_search(block, items, 20, out=buffer)[1],
                                      exact_search(block, items, 20)[1])


@pytest.mark.parametrize("heap_min", [0, 10**9])
def test_exact_search_pads_users_with_too_few_unmasked_items(monkeypatch, heap_min: int
                                                            ) -> None:
    monkeypatch.setattr(retrieval, "HEAP_MIN_ITEMS", heap_min)
    users, items = _vectors(2, 12)
    rows, cols = np.zeros(9, dtype=np.int64), np.arange(9)   # user 0 keeps 3 items
    ref_values, ref_idx = retrieve(users, items, 6, rows, cols)
    values, found = exact_search(users, items, 6, rows, cols)
    ok = torch.isfinite(ref_values).numpy()
    assert ok[0].sum() == 3 and ok[1].all()
    np.testing.assert_array_equal(found[ok], ref_idx.numpy()[ok])
    assert (found[~ok] == -1).all() and np.isneginf(values[~ok]).all()


def test_heap_topn_on_an_empty_block() -> None:
    values, cols = heap_topn(np.zeros((0, 5), dtype=np.float32), 3)
    assert values.shape == cols.shape == (0, 3)


def test_threads_are_restored() -> None:
    users, items = _vectors(8, 50)
    torch_before, faiss_before = torch.get_num_threads(), faiss.omp_get_max_threads()
    exact_search(users, items, 5, threads=1)
    ApproximateIndex(items.numpy(), users.numpy(), calibrate_n=5, threads=1)
    assert torch.get_num_threads() == torch_before
    assert faiss.omp_get_max_threads() == faiss_before


def test_recall_at() -> None:
    exact = np.array([[1, 2, 3, 4], [5, 6, -1, -1]])
    approx = np.array([[4, 9, 1, 8], [6, 5, 7, -1]])
    assert recall_at(approx, exact) == pytest.approx(4 / 6)


def test_approximate_index_reaches_its_calibrated_recall() -> None:
    users, items = _clustered(5000, 600)
    index = ApproximateIndex(items, users[:300], calibrate_n=50, target_recall=0.97)
    assert 1 <= index.nprobe <= index.nlist and index.recall_ is not None
    assert index.recall_ >= 0.97
    _, exact = exact_search(torch.from_numpy(users[300:]), torch.from_numpy(items), 50)
    _, approx = index.search(users[300:], 50)
    assert recall_at(approx, exact) >= 0.95   # held-out users


def test_approximate_index_with_every_cell_is_exact() -> None:
    users, items = _clustered(800, 40)
    index = ApproximateIndex(items, nlist=16, nprobe=16)
    _, exact = exact_search(torch.from_numpy(users), torch.from_numpy(items), 30)
    _, approx = index.search(users, 30)
    np.testing.assert_array_equal(approx, exact)


def test_approximate_index_excludes_pairs_and_keeps_to_a_subset() -> None:
    users, items = _clustered(800, 40)
    index = ApproximateIndex(items, nlist=16, nprobe=16)
    rng = np.random.default_rng(2)
    pos, rows = np.repeat(np.arange(40), 25), rng.integers(0, 800, 40 * 25)
    subset = np.arange(0, 800, 3)
    _, found = index.search(users, 20, subset=subset, exclude=(pos, rows))
    assert (found >= 0).all() and np.isin(found, subset).all()
    banned = set(zip(pos.tolist(), rows.tolist(), strict=True))
    assert not any((u, r) in banned for u in range(40) for r in found[u].tolist())
    # the same as an exact search over the subset with those pairs masked
    col_of = np.full(800, -1)
    col_of[subset] = np.arange(len(subset))
    keep = col_of[rows] >= 0
    _, cols = exact_search(torch.from_numpy(users), torch.from_numpy(items[subset]), 20,
                           pos[keep], col_of[rows][keep])
    np.testing.assert_array_equal(found, subset[cols])


def test_approximate_index_pads_when_the_subset_is_small() -> None:
    users, items = _clustered(200, 3)
    index = ApproximateIndex(items, nlist=4, nprobe=4)
    _, found = index.search(users, 10, subset=np.array([5, 7, 9]))
    assert found.shape == (3, 10) and (found[:, 3:] == -1).all()
    assert set(found[:, :3].ravel().tolist()) == {5, 7, 9}


def test_check_retrieval() -> None:
    assert check_retrieval("auto") == "auto"
    with pytest.raises(ValueError, match="retrieval must be one of"):
        check_retrieval("fast")


def _ranked(rec: Recommender, retrieval_name: str = "exact") -> tuple[np.ndarray, np.ndarray]:
    users = np.arange(len(rec.emb_.user_ids))
    blocks = list(iter_ranked(rec.model_, rec.emb_, users, np.arange(len(rec.emb_.item_ids)),
                              k=3, rerank_n=5, seen=rec.seen_, user_chunk=7,
                              retrieval=retrieval_name))
    return (np.concatenate([b.item_rows for b in blocks]),
            np.concatenate([b.scores for b in blocks]))


def test_rank_block_on_the_shop_is_unchanged_by_faiss(rec: Recommender, monkeypatch) -> None:
    monkeypatch.setattr(retrieval, "HEAP_MIN_ITEMS", 0)
    rows, scores = _ranked(rec)
    monkeypatch.setattr(retrieval, "has_faiss", lambda: False)   # the torch.topk path
    ref_rows, ref_scores = _ranked(rec)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_array_equal(scores, ref_scores)


def test_approximate_retrieval_on_the_shop(rec: Recommender, monkeypatch) -> None:
    monkeypatch.setattr(retrieval, "MAX_PROBE_SHARE", 1.0)   # use the index however it probes
    rows, scores = _ranked(rec, "approximate")
    exact_rows, _ = _ranked(rec, "exact")
    assert rows.shape == exact_rows.shape and (rows >= 0).all()
    seen = rec.seen_
    for u, picked in enumerate(rows):
        assert not set(picked) & set(seen.items[seen.indptr[u]:seen.indptr[u + 1]])
    assert np.isin(rows, exact_rows).mean() >= 0.9


def test_auto_retrieval_is_exact_on_a_small_catalogue(rec: Recommender) -> None:
    np.testing.assert_array_equal(_ranked(rec, "auto")[0], _ranked(rec, "exact")[0])
    with pytest.raises(ValueError, match="retrieval must be one of"):
        _ranked(rec, "fast")


def test_an_index_that_scans_most_cells_falls_back_to_exact(rec: Recommender, monkeypatch,
                                                            caplog) -> None:
    monkeypatch.setattr(retrieval, "MAX_PROBE_SHARE", 0.0)
    rows, _ = _ranked(rec, "approximate")
    np.testing.assert_array_equal(rows, _ranked(rec, "exact")[0])
    assert "searching exactly" in caplog.text
