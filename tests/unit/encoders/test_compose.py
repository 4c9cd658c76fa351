from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from kgrec.encoders import DEFAULT_MAX_CHARS, compose_item_texts
from kgrec.encoders.compose import cut_at_word
from kgrec.errors import DataError


def _items(**cols: list) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    base = {"item_id": [f"i{k}" for k in range(n)], "title": [None] * n,
            "description": [None] * n, "brand": [None] * n, "category": [None] * n}
    # object columns: pandas' default str dtype (pyarrow) cannot even hold a lone surrogate
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in {**base, **cols}.items()})


def test_template_with_all_parts() -> None:
    texts, report = compose_item_texts(_items(
        title=["Cordless Drill 18V"], brand=["Bosch"], category=["Tools > Power Tools > Drills"],
        description=["Lightweight drill with two batteries."]))
    assert texts == ["Cordless Drill 18V. Brand: Bosch. Category: Tools > Power Tools > Drills. "
                     "Lightweight drill with two batteries."]
    assert report.n_truncated == 0 and report.empty_item_ids == []


def test_no_double_full_stop() -> None:
    texts, _ = compose_item_texts(_items(title=["Staples, Steel (1000 Count)."],
                                         brand=["Sealed Unit Parts Co., Inc."]))
    assert texts == ["Staples, Steel (1000 Count). Brand: Sealed Unit Parts Co., Inc."]


def test_missing_description_falls_back_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    df = _items(title=["A", "B", "C"], description=["desc a", None, "  "])
    with caplog.at_level(logging.WARNING, logger="kgrec.encoders.compose"):
        texts, report = compose_item_texts(df)
    assert texts == ["A. desc a", "B.", "C."]
    assert report.n_without_description == 2
    records = [r for r in caplog.records if r.name == "kgrec.encoders.compose"]
    assert len(records) == 1 and "2 of 3 items have no description" in records[0].getMessage()


def test_item_without_any_text_gets_empty_string_and_is_reported(caplog) -> None:
    df = _items(title=[None, "Saw"], brand=[np.nan, None])
    with caplog.at_level(logging.WARNING):
        texts, report = compose_item_texts(df)
    assert texts == ["", "Saw."]
    assert report.empty_item_ids == ["i0"]
    assert "1 have no text at all (e.g. i0)" in caplog.text


def test_no_warning_when_everything_is_present(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        compose_item_texts(_items(title=["A"], description=["b"]))
    assert caplog.records == []


def test_description_is_trimmed_first_at_a_word_boundary() -> None:
    title = "Cordless Drill"
    desc = " ".join(f"word{k}" for k in range(200))
    texts, report = compose_item_texts(_items(title=[title], description=[desc]), max_chars=100)
    (text,) = texts
    assert len(text) <= 100 and text.startswith("Cordless Drill. word0 word1")
    assert text.split()[-1].startswith("word") and text.split()[-1] in desc.split()
    assert report.n_truncated == 1


def test_over_long_title_is_cut_and_description_dropped() -> None:
    texts, _ = compose_item_texts(_items(title=["long " * 100], description=["tail"]),
                                  max_chars=50)
    assert len(texts[0]) <= 50 and "tail" not in texts[0]


def test_100k_character_description_is_cheap_and_bounded() -> None:
    texts, report = compose_item_texts(_items(title=["T"], description=["x" * 100_000]))
    assert len(texts[0]) <= DEFAULT_MAX_CHARS and report.n_truncated == 1


@pytest.mark.parametrize("value", [None, np.nan, pd.NA, "", "   \t\n"])
def test_missing_like_values_count_as_missing(value) -> None:
    texts, report = compose_item_texts(_items(title=["T"], brand=[value]))
    assert texts == ["T."] and report.missing["brand"] == 1


def test_non_string_values_are_converted_and_counted() -> None:
    df = _items(title=[12345, b"Bytes \xff title", ["a", "b"]])
    texts, report = compose_item_texts(df)
    assert texts[0] == "12345."
    assert texts[1] == "Bytes \ufffd title."
    assert texts[2] == "['a', 'b']."
    assert report.non_string["title"] == 3


def test_control_chars_and_surrogates_are_cleaned_emoji_and_scripts_kept() -> None:
    df = _items(title=["Tea\x00 🍵 чай 茶 \ud800 end"])
    texts, report = compose_item_texts(df)
    assert texts == ["Tea 🍵 чай 茶 \ufffd end."]
    assert report.cleaned["title"] == 1
    texts[0].encode("utf-8")  # would raise on a lone surrogate


def test_whitespace_is_collapsed() -> None:
    texts, _ = compose_item_texts(_items(title=["  a \n\n b\t c  "]))
    assert texts == ["a b c."]


def test_string_dtype_columns() -> None:
    df = pd.DataFrame({"item_id": pd.Series(["x", "y"], dtype="string"),
                       "title": pd.Series(["A", pd.NA], dtype="string"),
                       "brand": pd.Series(["B", "C"], dtype="string")})
    texts, report = compose_item_texts(df)
    assert texts == ["A. Brand: B.", "Brand: C."]
    assert report.missing["description"] == 2 and report.missing["category"] == 2


def test_attribute_columns_are_added_before_description() -> None:
    df = _items(title=["T"], description=["D"], material=["steel|plastic"])
    texts, _ = compose_item_texts(df, attribute_columns=["material"])
    assert texts == ["T. material: steel, plastic. D"]


def test_empty_table() -> None:
    texts, report = compose_item_texts(_items(title=[]))
    assert texts == [] and report.n_items == 0


def test_summary_mentions_counts() -> None:
    _, report = compose_item_texts(_items(title=[None]))
    assert "1 without any text" in report.summary()


def test_not_a_dataframe_raises() -> None:
    with pytest.raises(DataError, match="must be a pandas DataFrame"):
        compose_item_texts([{"title": "x"}])  # type: ignore[arg-type]


def test_missing_id_column_raises() -> None:
    with pytest.raises(DataError, match="no 'item_id' column"):
        compose_item_texts(pd.DataFrame({"title": ["x"]}))


def test_no_text_columns_raises() -> None:
    with pytest.raises(DataError, match="none of the text columns"):
        compose_item_texts(pd.DataFrame({"item_id": ["a"], "price": [1.0]}))


def test_unknown_attribute_column_raises() -> None:
    with pytest.raises(DataError, match=r"attribute_columns not in items: \['colour'\]"):
        compose_item_texts(_items(title=["T"]), attribute_columns=["colour"])


@pytest.mark.parametrize("bad", [10, 0, "100", True])
def test_bad_max_chars_raises(bad) -> None:
    with pytest.raises(ValueError, match="max_chars"):
        compose_item_texts(_items(title=["T"]), max_chars=bad)


@pytest.mark.parametrize("text,limit,expected", [
    ("short", 10, "short"),
    ("alpha beta gamma delta", 16, "alpha beta"),
    ("x" * 30, 10, "x" * 10),  # one long token: hard cut
    ("alpha beta, gamma", 12, "alpha beta"),  # trailing punctuation dropped
])
def test_cut_at_word(text, limit, expected) -> None:
    assert cut_at_word(text, limit) == expected
