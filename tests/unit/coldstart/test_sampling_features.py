"""Sampling rules, interaction rules and the evaluation split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kgrec.coldstart.features import IdVocab, interaction_pairs
from kgrec.coldstart.sampling import (
    NegativeSampler,
    carve_validation,
    drop_node_edges,
    split_supervision,
)
from kgrec.graph.export import ExportedGraph


def test_split_is_disjoint_and_complete() -> None:
    msg, sup = split_supervision(100, 0.3, torch.Generator().manual_seed(0))
    assert len(sup) == 30 and len(msg) == 70
    assert sorted(torch.cat([msg, sup]).tolist()) == list(range(100))


def test_edge_dropout_hides_every_edge_of_a_dropped_node() -> None:
    pairs = torch.tensor([[0, 0, 1, 1, 2, 2], [0, 1, 1, 2, 2, 0]])
    gen = torch.Generator().manual_seed(3)
    keep = drop_node_edges(pairs, 3, 3, 0.0, 0.5, gen)
    dropped_items = set(pairs[1][~keep].tolist())
    assert not (set(pairs[1][keep].tolist()) & dropped_items)
    assert drop_node_edges(pairs, 3, 3, 0.0, 0.0, gen).all()


def test_negative_sampler_mix() -> None:
    counts = torch.tensor([0, 0, 0, 100])
    neg = NegativeSampler(4, counts, pop_share=0.5).sample(1000, torch.Generator().manual_seed(0))
    assert len(neg) == 1000
    assert (neg[:500] == 3).all()  # popularity part only draws popular items
    assert len(set(neg[500:].tolist())) == 4  # uniform part covers all
    with pytest.raises(ValueError, match="pop_neg_share"):
        NegativeSampler(4, counts, pop_share=1.5)


def test_validation_takes_latest_positive_of_users_with_two() -> None:
    pos = torch.tensor([[0, 0, 0, 1, 2, 2], [5, 6, 7, 1, 3, 4]])
    ts = torch.tensor([3, 9, 1, 5, 2, 1])
    train, val = carve_validation(pos, ts, 3, 0.999, torch.Generator().manual_seed(0))
    assert sorted(val.tolist()) == [1, 4]  # user 0: ts 9; user 1 has one positive; user 2: ts 2
    assert sorted(torch.cat([train, val]).tolist()) == list(range(6))


def test_views_without_click_are_impression_negatives(graph: ExportedGraph) -> None:
    pos, ts, views = interaction_pairs(graph)
    assert pos.shape[1] == 24 * 4 and views.shape[1] == 24
    assert not set(map(tuple, pos.T.tolist())) & set(map(tuple, views.T.tolist()))


def test_vocab_maps_unknown_to_zero() -> None:
    v = IdVocab(["a", "b"])
    assert v.lookup(np.array(["b", "zz", "a"], dtype=object)).tolist() == [2, 0, 1]


