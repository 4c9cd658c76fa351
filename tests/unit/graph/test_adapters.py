"""Adapters on small fixtures in the native formats, and (slow) on the real shared datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from kgrec.errors import ConfigError, DataError, FileFormatError
from kgrec.graph.adapters import (
    ADAPTERS,
    DEFAULT_FOLDERS,
    PACKAGED,
    completejourney_tables,
    detect_adapter,
    load_amazon,
    load_dataset,
    load_movielens,
)
from kgrec.graph.readers import RawCatalog, RawTable
from kgrec.graph.validate import ValidationResult, validate_catalog

DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(os.environ.get("KGREC_SHARED_DATA")
              or Path(__file__).resolve().parents[3].parent / "shared" / "data")


def _check_counts(res: ValidationResult) -> None:
    for name, s in res.summary.items():
        assert s.input_rows == s.accepted + s.rejected + s.duplicates_merged, name


def test_amazon_fixture() -> None:
    res = validate_catalog(load_amazon(DATA / "amazon"))
    _check_counts(res)
    assert res.rejects.empty
    items = res.tables.items.set_index("item_id")
    assert items.loc["0", "category"] == (
        "Industrial & Scientific > Tapes, Adhesives & Sealants > Tapes")
    assert items.loc["0", "brand"] == "Bondhus"
    assert pd.isna(items.loc["1", "brand"])  # "" is missing, not a brand
    assert pd.isna(items.loc["1", "description"])  # "." says nothing
    assert pd.isna(items.loc["2", "category"])
    inter = res.tables.interactions
    assert inter[["user_id", "item_id", "ts"]].values.tolist() == [
        ["0", "0", 0], ["0", "1", 1], ["0", "2", 2], ["1", "2", 0], ["1", "0", 1], ["2", "1", 0]]
    assert set(inter["event"]) == {"purchase"} and inter["value"].isna().all()
    assert res.tables.users["user_id"].tolist() == ["0", "1", "2"]
    assert res.summary["users"].created == 3


def test_movielens_fixture() -> None:
    res = validate_catalog(load_movielens(DATA / "movielens"))
    _check_counts(res)
    assert [tuple(r) for r in res.rejects[["table", "row", "reason"]].values] == [
        ("item_entities", 2, "unknown item (not in the items table nor known_item_ids)")]
    users = res.tables.users.set_index("user_id")
    assert users.loc["1"].tolist() == ["18-24", "M", "technician", "8"]
    assert users.loc["2", "age_band"] == "50-55"
    assert users.loc["3", ["age_band", "region"]].tolist() == ["<18", "other"]
    items = res.tables.items.set_index("item_id")
    assert items.loc["1", "category"] == "Movies > Comedy"
    assert items.loc["2", "genre"] == "Action|Drama"
    assert items.loc["2", "category"] == "Movies > Action"
    assert items.loc["3", "category"] == "Movies" and pd.isna(items.loc["3", "genre"])
    assert items.loc["3", "title"] == "Café Movie (1996)"  # Latin-1 decoded
    assert items.loc["3", "year"] == "1996"  # no release date: year from the title
    assert items.loc["1", "description"] == "Toys come to life."
    assert pd.isna(items.loc["2", "description"])  # plot "N/A"
    inter = res.tables.interactions
    assert inter.iloc[0].tolist() == ["1", "1", "rating", 881250949, 5.0]
    assert res.tables.triples.values.tolist() == [
        ["m.01", "film.film.actor", "m.02"], ["m.01", "film.film.genre", "m.03"]]
    assert res.tables.item_entities.values.tolist() == [["1", "m.01"]]


def test_movielens_without_optional_folders(tmp_path: Path) -> None:
    orig = tmp_path / "original"
    orig.mkdir()
    for f in ("u.data", "u.user", "u.item", "u.genre"):
        (orig / f).write_bytes((DATA / "movielens" / "original" / f).read_bytes())
    raw = load_movielens(tmp_path)
    assert raw.triples is None and raw.item_entities is None
    res = validate_catalog(raw)
    assert res.tables.items["description"].isna().all()
    assert res.tables.triples.empty


def test_detect_and_load_by_path() -> None:
    assert detect_adapter(DATA / "amazon") == "amazon"
    assert detect_adapter(DATA / "movielens") == "movielens"
    assert detect_adapter(DATA / "movielens" / "original") == "movielens"
    assert load_dataset(DATA / "amazon").items is not None
    assert set(ADAPTERS) - PACKAGED == set(DEFAULT_FOLDERS) == {"amazon", "movielens"}


def test_load_by_name_with_data_root(tmp_path: Path) -> None:
    (tmp_path / DEFAULT_FOLDERS["amazon"]).symlink_to(DATA / "amazon")
    raw = load_dataset("amazon", data_root=tmp_path)
    assert raw.interactions is not None and len(raw.interactions.frame) == 6


def test_load_by_name_uses_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / DEFAULT_FOLDERS["movielens"]).symlink_to(DATA / "movielens")
    monkeypatch.setenv("KGREC_SHARED_DATA", str(tmp_path))
    assert load_dataset("movielens").users is not None


def test_load_by_name_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KGREC_SHARED_DATA", raising=False)
    with pytest.raises(ConfigError, match="no data root; pass data_root= or set "
                                          "KGREC_SHARED_DATA"):
        load_dataset("amazon")


def test_load_by_name_folder_absent(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dataset folder for 'amazon' not found"):
        load_dataset("amazon", data_root=tmp_path)


def test_unknown_name_or_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a dataset name"):
        load_dataset("netflix")
    with pytest.raises(ConfigError, match="not a known dataset folder"):
        load_dataset(tmp_path)


def test_adapters_reject_wrong_folders(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no <Name>\.item\.json"):
        load_amazon(tmp_path)
    with pytest.raises(ConfigError, match="no u.data here or in original/"):
        load_movielens(tmp_path)


def test_amazon_bad_json(tmp_path: Path) -> None:
    (tmp_path / "X.item.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "X.inter.json").write_text("{}", encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"X\.item\.json: not a readable JSON file"):
        load_amazon(tmp_path)
    (tmp_path / "X.item.json").write_text('["a"]', encoding="utf-8")
    with pytest.raises(FileFormatError, match="expected"):
        load_amazon(tmp_path)
    (tmp_path / "X.item.json").write_text("{}", encoding="utf-8")
    (tmp_path / "X.inter.json").write_text('{"u": 3}', encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"X\.inter\.json: expected"):
        load_amazon(tmp_path)


def test_movielens_unreadable_file(tmp_path: Path) -> None:
    orig = tmp_path / "original"
    orig.mkdir()
    for f in ("u.data", "u.item", "u.genre"):
        (orig / f).write_bytes((DATA / "movielens" / "original" / f).read_bytes())
    (orig / "u.user").write_bytes(b"1|24|M|caf\xe9|85711\n")  # Latin-1, but u.user is UTF-8
    with pytest.raises(FileFormatError, match=r"u\.user: cannot read as '\|'-separated"):
        load_movielens(tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared datasets not found at {SHARED}")
def test_real_amazon_counts() -> None:
    res = validate_catalog(load_dataset(SHARED / DEFAULT_FOLDERS["amazon"]))
    t = res.tables
    assert (len(t.users), len(t.items), len(t.interactions)) == (8_317, 4_344, 58_492)
    assert t.items["brand"].nunique() == 1_546
    assert res.rejects.empty
    _check_counts(res)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared datasets not found at {SHARED}")
def test_real_movielens_counts() -> None:
    res = validate_catalog(load_dataset(SHARED / DEFAULT_FOLDERS["movielens"]))
    t = res.tables
    assert (len(t.users), len(t.items), len(t.interactions)) == (943, 1_682, 100_000)
    assert (len(t.triples), len(t.item_entities)) == (91_631, 1_598)
    assert t.users["occupation"].nunique() == 21
    assert t.users["gender"].value_counts().to_dict() == {"M": 670, "F": 273}
    assert 1_590 <= t.items["description"].notna().sum() <= 1_620
    assert t.items["genre"].str.split("|").explode().nunique() == 18  # 19 flags less "unknown"
    assert res.rejects.empty
    _check_counts(res)


# -- The Complete Journey (pure transform on frames in the package's shape) --------------------
def _cj_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ts = pd.to_datetime
    transactions = pd.DataFrame({
        "household_id": [1, 1, 2, 2, 3, 3, 1, 3],
        "store_id": 10,
        "basket_id": [100, 101, 102, 102, 103, 104, 105, 106],
        "product_id": [11, 11, 11, 22, 22, 33, 22, 99],
        "quantity": 1,
        "sales_value": 1.0,
        "week": 1,
        "transaction_timestamp": ts([
            "2017-01-02 00:00:10", "2017-01-01 00:00:00",   # household 1 buys 11 twice
            "2017-01-03 00:00:00", "2017-01-03 00:00:00",
            "2017-01-04 00:00:00", "2017-01-05 00:00:00",
            "2017-01-06 00:00:00", "2017-01-07 00:00:00"]),  # 99: not in products
    })
    products = pd.DataFrame({
        "product_id": [11, 22, 33, 44],
        "manufacturer_id": [2, 69, 5, 5],
        "department": ["PRODUCE", "PASTRY", "MISCELLANEOUS", "GROCERY"],
        "brand": ["National", "Private", "National", "National"],
        "product_category": ["TROPICAL FRUIT", "BREAD", None, "ICE"],
        "product_type": ["BANANAS", None, None, "ICE - CUBED"],
        "package_size": ["40 LB", None, None, "22 LB"],
    })
    demographics = pd.DataFrame({
        "household_id": [1, 3, 7],  # 2 has no demographics; 7 bought nothing
        "age": ["45-54", "65+", "19-24"],
        "income": ["50-74K", None, "Under 15K"],
        "home_ownership": [None, "Homeowner", "Renter"],
        "marital_status": ["Married", "Unmarried", None],
        "household_size": ["2", "1", "1"],
        "household_comp": ["2 Adults No Kids", "1 Adult No Kids", "1 Adult No Kids"],
        "kids_count": ["0", "0", "0"],
    })
    return transactions, products, demographics


def test_completejourney_transform_known_answer() -> None:
    items, users, inter = completejourney_tables(*_cj_frames(), min_households=1)
    # unique household-product pairs at their first purchase, in time order; 99 left out
    assert inter[["user_id", "item_id", "ts"]].values.tolist() == [
        ["1", "11", "1483228800"], ["2", "11", "1483401600"], ["2", "22", "1483401600"],
        ["3", "22", "1483488000"], ["3", "33", "1483574400"], ["1", "22", "1483660800"]]
    assert set(inter["event"]) == {"purchase"}
    it = items.set_index("item_id")
    assert it.loc["11"].tolist() == ["BANANAS 40 LB", "manufacturer 2",
                                     "PRODUCE > TROPICAL FRUIT > BANANAS", "National", "40 LB"]
    assert it.loc["22", "title"] == "BREAD" and it.loc["22", "category"] == "PASTRY > BREAD"
    assert pd.isna(it.loc["22", "package_size"]) and it.loc["22", "brand_type"] == "Private"
    assert it.loc["33", ["title", "category"]].tolist() == ["MISCELLANEOUS", "MISCELLANEOUS"]
    assert "44" not in it.index  # never bought
    us = users.set_index("user_id")
    assert list(us.index) == ["1", "3"]  # 7 bought nothing; 2 has no demographics row
    assert us.loc["1"].fillna("-").tolist() == ["45-54", "50-74K", "-", "Married", "2",
                                                 "2 Adults No Kids", "0"]
    assert pd.isna(us.loc["3", "income_band"]) and us.loc["3", "age_band"] == "65+"


def test_completejourney_household_threshold() -> None:
    items, users, inter = completejourney_tables(*_cj_frames(), min_households=2)
    assert sorted(items["item_id"]) == ["11", "22"]  # 33 has one household, 11 and 22 three
    assert inter.groupby("item_id")["user_id"].nunique().to_dict() == {"11": 2, "22": 3}
    assert completejourney_tables(*_cj_frames(), min_households=4)[2].empty


def test_completejourney_validates_with_empty_profiles() -> None:
    items, users, inter = completejourney_tables(*_cj_frames(), min_households=1)
    res = validate_catalog(RawCatalog(
        items=RawTable.from_frame(items, "items"), users=RawTable.from_frame(users, "users"),
        interactions=RawTable.from_frame(inter, "interactions")))
    _check_counts(res)
    assert res.rejects.empty
    u = res.tables.users.set_index("user_id")
    assert sorted(u.index) == ["1", "2", "3"]  # household 2 from interactions only
    assert u.loc["2"].isna().all()


def test_completejourney_bad_input() -> None:
    t, p, d = _cj_frames()
    with pytest.raises(DataError, match=r"products: missing column\(s\) \['department'\]"):
        completejourney_tables(t, p.drop(columns="department"), d)
    with pytest.raises(ConfigError, match="min_households must be >= 1"):
        completejourney_tables(t, p, d, min_households=0)
