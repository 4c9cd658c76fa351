"""``TextFeaturizer`` composes and encodes only rows it has not seen."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from kgrec.coldstart.features import TextFeaturizer, row_keys
from kgrec.encoders import HashingEncoder, compose_item_texts


def _items(titles: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"i{n}" for n in range(len(titles))], "title": titles,
                         "brand": "Acme", "category": "A > B"}).astype("string")


def _fresh(items: pd.DataFrame) -> np.ndarray:
    texts, _ = compose_item_texts(items)
    return np.asarray(HashingEncoder(dim=32).encode(texts), dtype=np.float32)


def test_only_new_or_changed_rows_are_composed(caplog: pytest.LogCaptureFixture) -> None:
    feat = TextFeaturizer(HashingEncoder(dim=32))
    first = _items(["red shoe", "blue mug", "green hat"])
    np.testing.assert_array_equal(feat.item_vectors(first), _fresh(first))
    grown = pd.concat([first, _items(["x", "y", "z", "yellow sock"]).iloc[3:]],
                      ignore_index=True)
    grown.loc[1, "title"] = "blue mug, large"         # a changed row
    with caplog.at_level(logging.WARNING, logger="kgrec.encoders.compose"):
        got = feat.item_vectors(grown)
    np.testing.assert_array_equal(got, _fresh(grown))
    # composing logs the rows it composed (none has a description): the changed and the new one
    assert "2 of 2 items have no description" in caplog.text
    assert feat.n_encoded == 5
    want = _fresh(grown)[::-1]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kgrec.encoders.compose"):
        again = feat.item_vectors(grown.iloc[::-1])
    np.testing.assert_array_equal(again, want)
    assert caplog.text == ""                          # all known: nothing composed


def test_row_keys_follow_the_text_columns_only() -> None:
    a = _items(["red shoe", "blue mug"])
    b = a.assign(item_id=["other-1", "other-2"], price=[1.0, 2.0])
    np.testing.assert_array_equal(row_keys(a), row_keys(b))   # id and price: same text
    assert row_keys(a.drop(columns="brand"))[0] == row_keys(a.assign(brand=pd.NA))[0]
    assert row_keys(a)[0] != row_keys(a.assign(brand="Zeta"))[0]
