"""The real UniSRec split of Amazon Scientific: the counts its README gives, nothing held out
in training, and the masking of the test regime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kgrec.evaluation.runner import export, interaction_frame
from kgrec.evaluation.unisrec import load_unisrec, unisrec_regimes

pytestmark = pytest.mark.integration


def test_real_unisrec_split(shared_data: Path) -> None:
    split = load_unisrec(shared_data / "amazon-industrial-scientific")
    assert split.stats == {"users": 8_442, "items": 4_385, "train_rows": 34_101,
                           "train_pairs": 42_356, "train_repeats_dropped": 187,
                           "test_users": 8_442, "test_item_in_history": 50,
                           "items_without_training": 12}
    graph = export(split.tables)
    edges = interaction_frame(graph)
    assert len(edges) == 42_356 and len(graph.node_ids["Item"]) == 4_385
    key = edges["user_id"] + "\t" + edges["item_id"]
    for held, repeats in ((split.test, 37), (split.valid, 54)):
        # a held-out pair is a training edge only when the user bought the item earlier too
        assert int(np.isin(held["user_id"] + "\t" + held["item_id"], key).sum()) == repeats
    regimes = {r.name: r for r in unisrec_regimes(split, graph)}
    test = regimes["test"]
    assert len(test.users) == 8_442 and len(test.candidates) == 4_385
    assert test.exclude.shape[1] == 50_744 - 50  # input sequences, less re-bought test items
    assert regimes["test_unmasked"].exclude.shape[1] == 0
    # folded in: the test-time graph holds every input sequence (the 54 re-bought validation
    # items are a second, later edge of their training pair: 50,744 distinct pairs)
    test_graph = export(split.test_tables())
    test_edges = interaction_frame(test_graph)
    assert len(test_edges) == 42_356 + 8_442
    assert len(test_edges.drop_duplicates()) == 42_356 + 8_442 - 54 == 50_744
    folded = {r.name: r for r in unisrec_regimes(split, graph, test_graph=test_graph)}
    hist = folded["test"].histories
    assert hist is not None and sum(len(np.unique(h)) for h in hist) == 50_744
