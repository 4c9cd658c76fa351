"""The profile-column guard and the privacy of the rejects file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kgrec.graph.privacy import WITHHELD, guard_profile_columns, identifier_reason
from kgrec.graph.pseudonym import Pseudonymizer
from kgrec.graph.readers import RawCatalog, RawTable
from kgrec.graph.validate import validate_catalog

N = 30
IDS = [f"cust-{k}" for k in range(N)]


@pytest.mark.parametrize(("column", "values", "reason"), [
    ("email", ["x"] * N, "its name says"),
    ("E-Mail Address", ["x"] * N, "its name says"),
    ("phoneNumber", ["x"] * N, "its name says"),
    ("last_name", ["x"] * N, "its name says"),
    ("Name", ["x"] * N, "its name says"),
    ("home_zip", ["x"] * N, "its name says"),
    ("contact", [f"p{k}@shop.example" for k in range(N)], "100% of its values look like e-mail"),
    ("contact", [f"+1 (555) 010-{k:04d}" for k in range(N)], "look like phone numbers"),
    ("ref", [f"3f2a9c1e-77b0-4d2e-9a41-{k:012d}" for k in range(N)], "look like ids or account"),
    ("segment_name", ["a@b.org"] * N, "look like e-mail"),
    ("ref", IDS, "repeat the user id"),
    ("tag", [f"t{k}x" for k in range(N)], "nearly unique per user (30 distinct values in 30"),
])
def test_identifying_columns_are_named_with_a_reason(column: str, values: list[str],
                                                     reason: str) -> None:
    users = pd.DataFrame({"user_id": IDS, column: values, "age_band": "25-34"})
    kept, dropped = guard_profile_columns(users)
    assert list(kept.columns) == ["user_id", "age_band"]
    assert list(dropped) == [column]
    assert reason in dropped[column]
    assert f"allow_profile_columns=[{column!r}]" in dropped[column]
    assert "@" not in dropped[column] and "555" not in dropped[column]  # never a value


@pytest.mark.parametrize(("column", "values"), [
    ("age_band", ["18-24", "25-34", "35-44"] * 10),
    ("region", [str(k % 10) for k in range(N)]),
    ("segment_name", ["north", "south"] * 15),
    ("mobile_app_user", ["yes", "no"] * 15),
    ("segment", [None] * N),
])
def test_ordinary_profile_columns_are_kept(column: str, values: list[object]) -> None:
    users = pd.DataFrame({"user_id": IDS, column: values})
    assert identifier_reason(column, users[column], users["user_id"]) is None
    assert list(guard_profile_columns(users)[0].columns) == ["user_id", column]


def test_few_users_with_distinct_values_are_not_called_unique() -> None:
    values = pd.Series(["north", "south", "east", "west"])
    assert identifier_reason("region", values) is None


def test_allow_keeps_a_flagged_column() -> None:
    users = pd.DataFrame({"user_id": IDS, "email": [f"{i}@x.org" for i in IDS]})
    kept, dropped = guard_profile_columns(users, allow=["email"])
    assert list(kept.columns) == ["user_id", "email"] and dropped == {}


def _catalog() -> RawCatalog:
    items = pd.DataFrame({"item_id": ["sku-1", "sku-2"], "title": ["a", "b"]})
    users = pd.DataFrame({"user_id": ["ann@x.org", "bob", "ann@x.org"],
                          "email": ["ann@x.org", "bob@y.org", "ann@x.org"],
                          "age_band": ["18-24", "25-34", "35-44"]})
    inter = pd.DataFrame({"user_id": ["ann@x.org", "bob", "bob"],
                          "item_id": ["sku-1", "sku-9", "sku-2"],
                          "event": ["click", "click", "shout"],
                          "phone": ["+1 555 0100 22", "+1 555 0100 23", "+1 555 0100 24"]})
    raw_inter = RawTable.from_frame(inter, "interactions")
    raw_inter.row_errors = pd.DataFrame({"row": [4], "reason": ["line is not valid JSON"],
                                         "raw": ['{"user_id": "carol@z.org", ']})
    return RawCatalog(items=RawTable.from_frame(items, "items"),
                      users=RawTable.from_frame(users, "users"), interactions=raw_inter)


def test_validation_drops_the_column_and_keeps_the_row_counts() -> None:
    result = validate_catalog(_catalog())
    assert list(result.dropped_columns) == ["email"]
    assert "email" not in result.tables.users.columns
    assert "age_band" in result.tables.users.columns
    for s in result.summary.values():
        assert s.input_rows == s.accepted + s.rejected + s.duplicates_merged


def test_rejects_file_is_owner_only_and_pseudonymised(tmp_path: Path) -> None:
    result = validate_catalog(_catalog())
    pseudo = Pseudonymizer(b"k" * 32)
    path = result.write_rejects(tmp_path / "r" / "rejects.csv", pseudo)
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["rejects.csv"]  # no temp file left
    text = path.read_text()
    for secret in ("ann@x.org", "bob@y.org", "carol@z.org", "555"):
        assert secret not in text
    rejects = pd.read_csv(path)
    by_row = {(t, r): raw for t, r, raw in zip(rejects["table"], rejects["row"], rejects["raw"],
                                               strict=True)}
    assert json.loads(by_row[("users", 1)]) == {
        "user_id": pseudo.pseudonymize(["ann@x.org"])[0], "age_band": "18-24"}
    assert json.loads(by_row[("interactions", 2)]) == {
        "user_id": pseudo.pseudonymize(["bob"])[0], "item_id": "sku-9", "event": "click"}
    assert by_row[("interactions", 4)] == WITHHELD


def test_rejects_without_a_pseudonymizer_withhold_the_id(tmp_path: Path) -> None:
    path = validate_catalog(_catalog()).write_rejects(tmp_path / "rejects.csv")
    raws = [json.loads(r) for r in pd.read_csv(path)["raw"] if r != WITHHELD]
    assert raws and all(r["user_id"] == "(withheld)" for r in raws)


def test_item_rejects_keep_their_raw_row(tmp_path: Path) -> None:
    items = pd.DataFrame({"item_id": ["sku-1"], "price": ["cheap"]})
    result = validate_catalog(RawCatalog(items=RawTable.from_frame(items, "items")))
    raw = pd.read_csv(result.write_rejects(tmp_path / "r.csv"))["raw"].iloc[0]
    assert json.loads(raw) == {"item_id": "sku-1", "price": "cheap"}
