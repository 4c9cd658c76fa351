"""Item co-occurrence cosines of a history graph, and their pair features (known answers)."""

from __future__ import annotations

import pytest
import torch

from kgrec.coldstart.cooc import cooc_table


def _histories(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    ptr = torch.tensor([0] + [len(r) for r in rows]).cumsum(0)
    return ptr, torch.tensor([i for r in rows for i in r], dtype=torch.long)


KEYS = torch.tensor([101, 202, 303, 404])  # stable keys of items A, B, C, D


def test_cosines_of_a_tiny_history() -> None:
    # u0: A B; u1: A B C; u2: C -> |U_A| = |U_B| = |U_C| = 2, D untouched
    table = cooc_table(*_histories([[0, 1], [0, 1, 2], [2]]), KEYS)
    got = table.lookup(KEYS[[0, 1, 0, 2, 1, 3, 0]], KEYS[[1, 0, 2, 0, 2, 0, 0]])
    assert got.tolist() == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.5, 0.0, 0.0])


def test_history_is_cut_to_the_most_recent_items() -> None:
    # u0's history, most recent first: A B C; with max_history 2, C never co-occurs
    table = cooc_table(*_histories([[0, 1, 2], [1, 2]]), KEYS, max_history=2)
    assert table.lookup(KEYS[[0]], KEYS[[2]]).item() == 0.0
    assert table.lookup(KEYS[[1]], KEYS[[2]]).item() == pytest.approx(1 / 2 ** 0.5)


def test_an_empty_graph_gives_zeros() -> None:
    table = cooc_table(*_histories([[], []]), KEYS)
    assert table.lookup(KEYS[:2], KEYS[2:]).tolist() == [0.0, 0.0]


def test_a_repeated_event_counts_once() -> None:
    # u0 viewed then bought A (two rows), and took B: A and B still co-occur with cosine 1
    table = cooc_table(*_histories([[0, 0, 1]]), KEYS)
    assert table.lookup(KEYS[[0]], KEYS[[1]]).item() == pytest.approx(1.0)


def test_blocks_give_the_table_of_one_block() -> None:
    # a budget of one product per block: every item row is its own block, the same cosines
    rows = [[0, 1, 2], [1, 3], [0, 3, 2], [2, 1]]
    whole = cooc_table(*_histories(rows), KEYS)
    blocks = cooc_table(*_histories(rows), KEYS, block_pairs=1)
    assert torch.equal(whole.keys, blocks.keys) and torch.equal(whole.vals, blocks.vals)
    a, b = torch.meshgrid(KEYS, KEYS, indexing="ij")
    got = blocks.lookup(a.reshape(-1), b.reshape(-1)).reshape(4, 4)
    assert torch.equal(got, got.T)  # symmetric: either order finds the pair stored once
    assert len(whole.keys) == 6  # all 6 unordered pairs of A..D co-occur, each stored once


def test_keys_span_every_bucket_in_order() -> None:
    # stable keys from int64 hashes fall in all 64 buckets; the table must still be sorted
    keys = torch.randint(-(1 << 62), 1 << 62, (200,), generator=torch.Generator().manual_seed(0))
    rows = [[(3 * u + j) % 200 for j in range(5)] for u in range(300)]
    table = cooc_table(*_histories(rows), keys, block_pairs=64)
    assert bool((table.keys[1:] > table.keys[:-1]).all())
    ref = cooc_table(*_histories(rows), keys)
    assert torch.equal(table.keys, ref.keys) and torch.equal(table.vals, ref.vals)


@pytest.mark.parametrize("block_pairs", [1, 1 << 23])
def test_rows_matrix_holds_the_same_cosines_as_the_keyed_table(block_pairs: int) -> None:
    rows = [[0, 1, 2], [1, 3], [0, 3, 2], [2, 1], [3]]
    table = cooc_table(*_histories(rows), KEYS, block_pairs=block_pairs, by_row=True)
    keyed = cooc_table(*_histories(rows), KEYS, block_pairs=block_pairs, by_row=False)
    assert keyed.by_row is None
    a, b = (g.reshape(-1) for g in torch.meshgrid(torch.arange(4), torch.arange(4),
                                                   indexing="ij"))
    assert torch.equal(table.at_rows(a, b), keyed.lookup(KEYS[a], KEYS[b]))
    assert torch.equal(table.lookup(KEYS[a], KEYS[b]), keyed.lookup(KEYS[a], KEYS[b]))
    assert table.at_rows(a, b).view(4, 4).diagonal().tolist() == [0.0] * 4
    # broadcast shapes, as the scoring blocks call it: (E, 1) history keys x (1, C) candidates
    grid = table.lookup(KEYS[:, None], KEYS[None, :])
    assert torch.equal(grid, keyed.lookup(KEYS[:, None], KEYS[None, :]))
    assert torch.equal(grid, grid.T) and grid.shape == (4, 4)


def test_rows_of_unknown_keys_read_zeros() -> None:
    # a key the table's graph never had (a new SKU folded in later) co-occurs with nothing
    table = cooc_table(*_histories([[0, 1], [0, 1, 2]]), KEYS, by_row=True)
    new = torch.tensor([999, -5])
    assert table.rows(new).tolist() == [4, 4]  # the zero row
    assert table.lookup(new, KEYS[:2]).tolist() == [0.0, 0.0]
    assert table.lookup(KEYS[:1], KEYS[1:2]).item() == pytest.approx(1.0)


def test_the_dense_matrix_only_for_small_catalogues(monkeypatch: pytest.MonkeyPatch) -> None:
    import kgrec.coldstart.cooc as cooc

    rows = _histories([[0, 1, 2], [1, 3]])
    assert cooc_table(*rows, KEYS).by_row is not None  # 16 pairs: within DENSE_CELLS
    monkeypatch.setattr(cooc, "DENSE_CELLS", 15)  # memory: no dense matrix past the budget
    big = cooc_table(*rows, KEYS)
    assert big.by_row is None
    assert big.lookup(KEYS[[1]], KEYS[[2]]).item() == pytest.approx(1 / 2 ** 0.5)


def test_sorted_lookup_finds_present_keys_and_zero_for_absent_ones() -> None:
    from kgrec.coldstart.cooc import sorted_lookup

    keys = torch.tensor([-50, 3, 7, 1 << 40])
    vals = torch.tensor([0.5, 0.25, 0.75, 1.0])
    query = torch.tensor([[7, 8, -50], [1 << 40, 3, 7]])  # any shape, any order, repeats
    got = sorted_lookup(keys, vals, query)
    assert got.shape == query.shape
    assert got.tolist() == [[0.75, 0.0, 0.5], [1.0, 0.25, 0.75]]
    assert sorted_lookup(keys[:0], vals[:0], query).tolist() == [[0.0] * 3] * 2
