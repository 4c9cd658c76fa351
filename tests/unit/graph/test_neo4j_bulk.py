"""Bulk-load helpers that need no server: batch cuts between source nodes and importer files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec.graph.frames import GraphFrames
from kgrec.graph.neo4j_import import write_import_files
from kgrec.graph.neo4j_store import batch_bounds
from kgrec.graph.schema import NodeLabel, RelType


@pytest.mark.parametrize("n, size", [(0, 3), (1, 3), (7, 3), (9, 3), (10, 100)])
def test_batch_bounds_cover_every_row_once(n: int, size: int) -> None:
    bounds = batch_bounds(n, size)
    assert [i for a, b in bounds for i in range(a, b)] == list(range(n))
    assert all(b - a <= size for a, b in bounds)


def test_batch_bounds_never_split_a_source() -> None:
    keys = np.array(["a", "a", "a", "b", "c", "c", "c", "c", "d", "e"], dtype=object)
    bounds = batch_bounds(len(keys), 2, keys)
    assert [i for a, b in bounds for i in range(a, b)] == list(range(len(keys)))
    owners = {}
    for k, (a, b) in enumerate(bounds):
        for key in keys[a:b]:
            assert owners.setdefault(key, k) == k, f"{key} is in two batches"
    assert bounds == [(0, 3), (3, 4), (4, 8), (8, 10)]


def test_one_source_larger_than_a_batch_stays_whole() -> None:
    keys = np.array(["a"] * 7 + ["b"], dtype=object)
    assert batch_bounds(8, 3, keys) == [(0, 7), (7, 8)]


def test_import_files_quote_strings_and_leave_nulls_empty(tmp_path: Path) -> None:
    frames = GraphFrames(
        nodes={NodeLabel.ITEM: pd.DataFrame({
            "id": ["sku-1", "sku-2", "sku-1"], "title": ['Shoe "Fast", red', "", "new"],
            "description": ["old", "two\nlines", pd.NA], "price": [1.5, np.nan, 2.25]})},
        edges={RelType.INTERACTED: pd.DataFrame({
            "src_label": "User", "src": ["u1"], "dst_label": "Item", "dst": ["sku-1"],
            "event": ["view"], "ts": [7], "value": [np.nan]})})
    args, written = write_import_files(frames, "shop", tmp_path)
    assert written == {"Item": 2, "INTERACTED": 1}  # duplicates: the last row wins
    assert "--multiline-fields=true" in args
    assert (tmp_path / "Item.header.csv").read_text() == \
        "id:ID(Item),kgrec_graph,title,description,price:double\n"
    assert (tmp_path / "Item.csv").read_text() == \
        '"sku-1","shop","new",,2.25\n"sku-2","shop","","two\nlines",\n'
    assert (tmp_path / "INTERACTED.User.Item.header.csv").read_text() == \
        ":START_ID(User),:END_ID(Item),event,ts:long,value:double\n"
    assert (tmp_path / "INTERACTED.User.Item.csv").read_text() == '"u1","sku-1","view",7,\n'
    assert any(a.startswith("--relationships=INTERACTED=") for a in args)
