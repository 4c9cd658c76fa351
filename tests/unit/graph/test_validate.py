"""Validation rules on tiny hand-built tables, with the exact rejects expected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec.errors import ConfigError, ValidationError
from kgrec.graph.readers import RawCatalog, RawTable
from kgrec.graph.tables import ITEM_COLUMNS, MAX_LENGTHS
from kgrec.graph.validate import REJECT_COLUMNS, ValidationResult, validate_catalog


def _table(kind: str, rows: list[dict[str, str]], source: str | None = None) -> RawTable:
    return RawTable.from_frame(pd.DataFrame(rows, dtype=str), kind, source=source)


def _items(*ids: str) -> RawTable:
    return _table("items", [{"item_id": i} for i in ids])


def _rejects(res: ValidationResult) -> list[tuple[str, int, str, str]]:
    r = res.rejects
    return list(zip(r["table"], r["row"], r["field"], r["reason"], strict=True))


def _assert_nothing_lost(res: ValidationResult, raw: RawCatalog) -> None:
    for name, s in res.summary.items():
        assert s.input_rows == s.accepted + s.rejected + s.duplicates_merged, name
        assert (res.rejects["table"] == name).sum() == s.rejected, name
        table = getattr(res.tables, name)
        assert len(table) == s.accepted + s.created, name
        src = getattr(raw, name)
        if isinstance(src, RawTable):
            assert s.input_rows == src.n_input_rows


def test_items_rules_and_types() -> None:
    raw = RawCatalog(items=_table("items", [
        {"item_id": " A1 ", "title": " Lamp ", "price": "12.5", "brand": "", "color": "red"},
        {"item_id": "  ", "title": "no id", "price": "1", "brand": "B", "color": ""},
        {"item_id": "A3", "title": "x" * (MAX_LENGTHS["title"] + 1), "price": "", "brand": "",
         "color": ""},
        {"item_id": "A4", "title": "t", "price": "-1", "brand": "", "color": ""},
        {"item_id": "A5", "title": "t", "price": "$3", "brand": "", "color": ""},
        {"item_id": "A6", "title": "t", "price": "", "brand": "",
         "color": "c" * (MAX_LENGTHS["attribute"] + 1)},
        {"item_id": "A7", "title": "t", "price": "inf", "brand": "", "color": ""},
    ], source="items.csv"))
    res = validate_catalog(raw)
    assert _rejects(res) == [
        ("items", 2, "item_id", "missing item_id"),
        ("items", 3, "title", "title longer than 2000 characters"),
        ("items", 4, "price", "price is not a non-negative number"),
        ("items", 5, "price", "price is not a non-negative number"),
        ("items", 6, "color", "color longer than 1000 characters"),
        ("items", 7, "price", "price is not a non-negative number"),
    ]
    assert list(res.rejects.columns) == list(REJECT_COLUMNS)
    assert res.rejects["source"].unique().tolist() == ["items.csv"]
    assert res.rejects["raw"].iloc[0] == (
        '{"item_id": "  ", "title": "no id", "price": "1", "brand": "B", "color": ""}')
    items = res.tables.items
    assert list(items.columns) == [*ITEM_COLUMNS, "color"]
    assert items["item_id"].tolist() == ["A1"]
    assert items["title"].tolist() == ["Lamp"]
    assert pd.isna(items["brand"].iloc[0]) and pd.isna(items["description"].iloc[0])
    assert items["price"].dtype == "float64" and items["price"].tolist() == [12.5]
    for col in ("item_id", "title", "brand", "category", "color"):
        assert items[col].dtype == "string", col
    _assert_nothing_lost(res, raw)


def test_item_duplicates_last_wins() -> None:
    raw = RawCatalog(items=_table("items", [
        {"item_id": "A1", "title": "old", "price": "1"},
        {"item_id": "A2", "title": "same", "price": "2.0"},
        {"item_id": "A1", "title": "new", "price": "1"},
        {"item_id": "A2", "title": "same ", "price": "2"},  # identical once clean and typed
        {"item_id": "A1", "title": "newest", "price": ""},
    ]))
    res = validate_catalog(raw)
    assert _rejects(res) == [
        ("items", 1, "item_id", "duplicate item_id superseded by row 5"),
        ("items", 3, "item_id", "duplicate item_id superseded by row 5"),
    ]
    items = res.tables.items.set_index("item_id")
    assert items.loc["A1", "title"] == "newest" and np.isnan(items.loc["A1", "price"])
    assert items.loc["A2", "title"] == "same"
    s = res.summary["items"]
    assert (s.accepted, s.rejected, s.duplicates_merged, s.duplicates_superseded) == (2, 2, 1, 2)
    _assert_nothing_lost(res, raw)


def test_user_duplicates_and_rules() -> None:
    raw = RawCatalog(users=_table("users", [
        {"user_id": "u1", "gender": "F"},
        {"user_id": "u1", "gender": "M"},
        {"user_id": "u2", "gender": "M"},
        {"user_id": "u2", "gender": "M"},
        {"user_id": "u" * 257, "gender": "M"},
    ]))
    res = validate_catalog(raw)
    assert _rejects(res) == [
        ("users", 1, "user_id", "duplicate user_id superseded by row 2"),
        ("users", 5, "user_id", "user_id longer than 256 characters"),
    ]
    assert res.tables.users.to_dict("list") == {"user_id": ["u1", "u2"], "gender": ["M", "M"]}
    assert res.summary["users"].duplicates_merged == 1
    _assert_nothing_lost(res, raw)


def _inter(rows: list[dict[str, str]]) -> RawTable:
    return _table("interactions", rows)


def test_interaction_rules() -> None:
    raw = RawCatalog(items=_items("A1", "A2"), interactions=_inter([
        {"user_id": "u1", "item_id": "A1", "event": "Click", "ts": "100", "value": ""},
        {"user_id": "u1", "item_id": "A2", "event": "buy", "ts": "100", "value": ""},
        {"user_id": "u1", "item_id": "A9", "event": "view", "ts": "100", "value": ""},
        {"user_id": "", "item_id": "A1", "event": "view", "ts": "100", "value": ""},
        {"user_id": "u2", "item_id": "A1", "event": "", "ts": "100", "value": ""},
        {"user_id": "u2", "item_id": "A1", "event": "rating", "ts": "yesterday", "value": "4"},
        {"user_id": "u2", "item_id": "A1", "event": "rating", "ts": "100", "value": "four"},
        {"user_id": "u2", "item_id": "A2", "event": "rating", "ts": "2020-01-01", "value": "4"},
        {"user_id": "u2", "item_id": "A2", "event": "cart", "ts": "2020-01-01T01:00:00+01:00",
         "value": "2"},
        {"user_id": "u2", "item_id": "A1", "event": "view", "ts": "12.9", "value": ""},
    ]))
    res = validate_catalog(raw, known_user_ids={"u1"})
    assert _rejects(res) == [
        ("interactions", 2, "event",
         "unknown event 'buy'; expected one of view, click, cart, purchase, rating"),
        ("interactions", 3, "item_id", "unknown item (not in the items table nor known_item_ids)"),
        ("interactions", 4, "user_id", "missing user_id"),
        ("interactions", 5, "event", "missing event; add an event column or pass default_event"),
        ("interactions", 6, "ts", "ts is not unix seconds or an ISO-8601 date/date-time"),
        ("interactions", 7, "value", "value is not a number"),
    ]
    inter = res.tables.interactions
    assert inter["event"].tolist() == ["click", "rating", "cart", "view"]
    assert inter["ts"].tolist() == [100, 1577836800, 1577836800, 12]
    assert inter["ts"].dtype == "int64" and inter["value"].dtype == "float64"
    assert inter["value"].fillna(-1).tolist() == [-1, 4.0, 2.0, -1]
    # u1 is known (already stored), u2 is created with an empty profile
    assert res.tables.users["user_id"].tolist() == ["u2"]
    assert res.summary["users"].created == 1
    _assert_nothing_lost(res, raw)


def test_missing_ts_is_order_within_user() -> None:
    raw = RawCatalog(items=_items("A1", "A2", "A3"), interactions=_inter([
        {"user_id": "u1", "item_id": "A1"},
        {"user_id": "u2", "item_id": "A2"},
        {"user_id": "u1", "item_id": "A2"},
        {"user_id": "u1", "item_id": "A3"},
    ]))
    res = validate_catalog(raw, default_event="Purchase")
    inter = res.tables.interactions
    assert inter["ts"].tolist() == [0, 0, 1, 2]
    assert inter["event"].unique().tolist() == ["purchase"]
    assert inter["value"].isna().all()


def test_known_item_ids_and_created_users_with_profile_columns() -> None:
    raw = RawCatalog(users=_table("users", [{"user_id": "u1", "gender": "F"}]),
                     interactions=_inter([
                         {"user_id": "u1", "item_id": "OLD", "event": "view", "ts": "1"},
                         {"user_id": "u9", "item_id": "OLD", "event": "view", "ts": "1"},
                     ]))
    res = validate_catalog(raw, known_item_ids=frozenset({"OLD"}))
    assert res.rejects.empty
    users = res.tables.users
    assert users["user_id"].tolist() == ["u1", "u9"]
    assert users["gender"].isna().tolist() == [False, True]
    assert users["gender"].dtype == "string"
    s = res.summary["users"]
    assert (s.accepted, s.created) == (1, 1)
    _assert_nothing_lost(res, raw)


def test_interaction_duplicates() -> None:
    raw = RawCatalog(items=_items("A1"), interactions=_inter([
        {"user_id": "u1", "item_id": "A1", "event": "rating", "ts": "5", "value": "3"},
        {"user_id": "u1", "item_id": "A1", "event": "rating", "ts": "5", "value": "3"},
        {"user_id": "u1", "item_id": "A1", "event": "rating", "ts": "5", "value": "4"},
        {"user_id": "u1", "item_id": "A1", "event": "view", "ts": "5", "value": ""},
    ]))
    res = validate_catalog(raw)
    assert _rejects(res) == [
        ("interactions", 1, "row", "duplicate interaction superseded by row 3"),
        ("interactions", 2, "row", "duplicate interaction superseded by row 3"),
    ]
    assert res.tables.interactions["value"].fillna(0).tolist() == [4.0, 0.0]
    raw2 = RawCatalog(items=_items("A1"), interactions=_inter([
        {"user_id": "u1", "item_id": "A1", "event": "view", "ts": "5"},
        {"user_id": "u1", "item_id": "A1", "event": "VIEW", "ts": " 5"},
    ]))
    res2 = validate_catalog(raw2)
    assert res2.rejects.empty and len(res2.tables.interactions) == 1
    assert res2.summary["interactions"].duplicates_merged == 1
    _assert_nothing_lost(res, raw)
    _assert_nothing_lost(res2, raw2)


def test_kg_tables() -> None:
    triples = pd.DataFrame({"head": ["e1", "e1", "", "e2"], "relation": ["r", "r", "r", "r"],
                            "tail": ["e2", "e2", "e3", "e3"]})
    links = pd.DataFrame({"item_id": ["A1", "A9"], "entity": ["e1", "e2"]})
    raw = RawCatalog(items=_items("A1"), triples=triples, item_entities=links)
    res = validate_catalog(raw)
    assert _rejects(res) == [
        ("triples", 3, "head", "missing head"),
        ("item_entities", 2, "item_id",
         "unknown item (not in the items table nor known_item_ids)"),
    ]
    assert res.tables.triples.values.tolist() == [["e1", "r", "e2"], ["e2", "r", "e3"]]
    assert res.summary["triples"].duplicates_merged == 1
    _assert_nothing_lost(res, raw)


def test_kg_table_missing_column() -> None:
    raw = RawCatalog(triples=pd.DataFrame({"head": ["e1"], "tail": ["e2"]}))
    with pytest.raises(ValidationError, match=r"triples table is missing column\(s\) "
                                              r"\['relation'\]"):
        validate_catalog(raw)


def test_bad_default_event() -> None:
    with pytest.raises(ConfigError, match="default_event 'buy' is not one of view"):
        validate_catalog(RawCatalog(), default_event="buy")


def test_empty_catalog() -> None:
    res = validate_catalog(RawCatalog())
    assert res.summary == {} and res.rejects.empty
    assert list(res.rejects.columns) == list(REJECT_COLUMNS)


def test_write_rejects(tmp_path: Path) -> None:
    res = validate_catalog(RawCatalog(items=_items("A1", "")))
    out = res.write_rejects(tmp_path / "r.csv")
    back = pd.read_csv(out)
    assert list(back.columns) == list(REJECT_COLUMNS)
    assert back["reason"].tolist() == ["missing item_id"]


def test_nothing_lost_random_mix() -> None:
    rng = np.random.default_rng(0)
    n = 5_000
    items = _table("items", [{"item_id": f"A{i}", "title": rng.choice(["t", "u", ""])}
                             for i in rng.integers(0, 300, 400)])
    events = np.array(["view", "CLICK", "bad", "", "rating"])
    inter = RawTable.from_frame(pd.DataFrame({
        "user_id": [f"u{i}" if i else "" for i in rng.integers(0, 50, n)],
        "item_id": [f"A{i}" for i in rng.integers(0, 400, n)],
        "event": events[rng.integers(0, len(events), n)],
        "ts": rng.choice(["1", "2", "x", "", "2021-05-01"], n),
        "value": rng.choice(["", "1", "nan?"], n),
    }, dtype=str), "interactions")
    raw = RawCatalog(items=items, interactions=inter)
    res = validate_catalog(raw, default_event="view")
    _assert_nothing_lost(res, raw)
    assert res.summary["interactions"].rejected > 0
    assert res.summary["interactions"].duplicates_merged > 0


@pytest.mark.slow
def test_one_million_interactions_nothing_lost() -> None:
    """Throughput is a benchmark figure (benchmarks/ingest.py), not asserted here."""
    rng = np.random.default_rng(1)
    n = 1_000_000
    items = RawTable.from_frame(pd.DataFrame({"item_id": [f"A{i}" for i in range(10_000)]},
                                             dtype=str), "items")
    inter = RawTable.from_frame(pd.DataFrame({
        "user_id": pd.Series(rng.integers(0, 100_000, n)).map("u{}".format),
        "item_id": pd.Series(rng.integers(0, 10_500, n)).map("A{}".format),
        "event": rng.choice(["view", "click", "purchase"], n),
        "ts": pd.Series(rng.integers(1_600_000_000, 1_700_000_000, n)).astype(str),
        "value": "",
    }).astype(str), "interactions")
    raw = RawCatalog(items=items, interactions=inter)
    res = validate_catalog(raw)
    _assert_nothing_lost(res, raw)
    assert res.summary["interactions"].rejected > 0  # the ~5% unknown items


def test_timestamp_too_large_for_int64_is_rejected() -> None:
    inter = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["A1", "A1"],
                          "event": ["click", "click"], "ts": ["9.3e18", "1700000000"]})
    raw = RawCatalog(items=RawTable.from_frame(pd.DataFrame({"item_id": ["A1"]}), "items"),
                     interactions=RawTable.from_frame(inter, "interactions"))
    res = validate_catalog(raw)
    assert res.tables.interactions["ts"].tolist() == [1_700_000_000]
    assert res.rejects[["row", "field"]].values.tolist() == [[1, "ts"]]


def test_iso_dates_outside_pandas_nanosecond_range() -> None:
    ts = ["9999-12-31", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59.5", "0000-01-01", "-0 1"]
    inter = pd.DataFrame({"user_id": [f"u{k}" for k in range(5)], "item_id": "A1",
                          "event": "click", "ts": ts})
    raw = RawCatalog(items=RawTable.from_frame(pd.DataFrame({"item_id": ["A1"]}), "items"),
                     interactions=RawTable.from_frame(inter, "interactions"))
    res = validate_catalog(raw)
    assert res.tables.interactions["ts"].tolist() == [253_402_214_400, -62_135_596_800, -1]
    assert res.rejects["row"].tolist() == [4, 5]
