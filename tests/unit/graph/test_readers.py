"""Readers: every format as text with row numbers; whole-file problems raise, row problems don't."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kgrec.errors import FileFormatError, ValidationError
from kgrec.graph.readers import RawTable, read_catalog, read_table
from kgrec.graph.validate import validate_catalog


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_csv_keeps_text_and_row_numbers(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.csv", "item_id,price,title\n007,1.50,NA\nA2,,\" x, y \"\n")
    t = read_table(p, "items")
    assert t.frame["item_id"].tolist() == ["007", "A2"]  # no int guessing
    assert t.frame["price"].tolist() == ["1.50", ""]
    assert t.frame["title"].tolist() == ["NA", " x, y "]  # "NA" is text, not missing
    assert t.rows.tolist() == [1, 2]
    assert t.source == str(p)
    assert not t.maybe_invalid_utf8


def test_tsv_has_no_quoting(tmp_path: Path) -> None:
    p = _write(tmp_path / "users.tsv", 'user_id\tnote\nu1\t"quoted\n')
    assert read_table(p, "users").frame["note"].tolist() == ['"quoted']


def test_csv_with_bom(tmp_path: Path) -> None:
    p = _write(tmp_path / "users.csv", b"\xef\xbb\xbfuser_id\nu1\n")
    assert read_table(p, "users").frame["user_id"].tolist() == ["u1"]


def test_jsonl_values_as_text(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.ndjson",
               '{"item_id": 7, "price": 3, "tags": ["a", "b"], "category": ["A", "B"], '
               '"flag": true, "meta": {"k": 1}}\n\n{"item_id": "B2", "price": 2.5}\n')
    t = read_table(p, "items")
    assert t.frame.loc[0, ["item_id", "price", "tags", "category", "flag", "meta"]].tolist() == [
        "7", "3", "a|b", "A > B", "true", '{"k": 1}']
    assert pd.isna(t.frame.loc[1, "tags"])
    assert t.rows.tolist() == [1, 3]  # line numbers, blank line skipped


def test_bad_jsonl_line_is_a_rejected_row(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.jsonl",
               '{"item_id": "A1"}\n{"item_id": oops}\n["A3"]\n{"item_id": "A4"}\n')
    t = read_table(p, "items")
    assert t.rows.tolist() == [1, 4]
    assert t.row_errors["row"].tolist() == [2, 3]
    res = validate_catalog(read_catalog(items=p))
    assert res.tables.items["item_id"].tolist() == ["A1", "A4"]
    rej = res.rejects
    assert rej["row"].tolist() == [2, 3]
    assert rej["reason"].str.startswith("line is not valid JSON").tolist() == [True, False]
    assert rej["reason"].tolist()[1] == "line is a JSON list, not an object"
    assert rej["raw"].tolist()[0] == '"{\\"item_id\\": oops}"'


def test_parquet_typed_columns_become_text(tmp_path: Path) -> None:
    p = tmp_path / "inter.parquet"
    pq.write_table(pa.table({
        "user_id": ["u1", "u2"], "item_id": pa.array([1, 2], pa.int64()),
        "value": pa.array([4.5, None]), "tags": pa.array([["a", "b"], []]),
    }), p)
    t = read_table(p, "interactions")
    assert t.frame["item_id"].tolist() == ["1", "2"]
    assert t.frame["value"].tolist()[0] == "4.5"
    assert pd.isna(t.frame["value"].tolist()[1])
    assert t.frame["tags"].tolist() == ["a|b", ""]
    assert t.rows.tolist() == [1, 2]


def test_invalid_utf8_row_rejected_others_accepted(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.csv", b"item_id,title\nA1,ok\nA2,caf\xe9\nA3,\xc3\xa9t\xc3\xa9\n")
    t = read_table(p, "items")
    assert t.maybe_invalid_utf8
    res = validate_catalog(read_catalog(items=p))
    assert res.tables.items["item_id"].tolist() == ["A1", "A3"]
    assert res.tables.items["title"].tolist() == ["ok", "été"]
    assert res.rejects[["row", "field", "reason"]].values.tolist() == [
        [2, "title", "invalid UTF-8 in field title"]]
    assert "\\udce9" in res.rejects["raw"].iloc[0]
    out = res.write_rejects(tmp_path / "rej" / "rejects.csv")
    assert "invalid UTF-8 in field title" in out.read_text(encoding="utf-8")


def test_invalid_utf8_in_jsonl(tmp_path: Path) -> None:
    p = _write(tmp_path / "users.jsonl", b'{"user_id": "u1"}\n{"user_id": "u\xff"}\n')
    res = validate_catalog(read_catalog(users=p))
    assert res.tables.users["user_id"].tolist() == ["u1"]
    assert res.rejects["reason"].tolist() == ["invalid UTF-8 in field user_id"]


@pytest.mark.parametrize("name", ["items.txt", "items.json", "items"])
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    p = _write(tmp_path / name, "item_id\nA1\n")
    with pytest.raises(FileFormatError, match=r"unsupported file extension.*\.csv"):
        read_table(p, "items")


def _invariant(res: object) -> None:
    for s in res.summary.values():  # type: ignore[attr-defined]
        assert s.input_rows == s.accepted + s.rejected + s.duplicates_merged


def test_csv_line_with_too_many_fields_is_a_rejected_row(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.csv", "item_id,title\nA1,x\nA2,y,z,w\nA3,v\n")
    t = read_table(p, "items")
    assert t.frame["item_id"].tolist() == ["A1", "A3"]
    assert t.rows.tolist() == [1, 3]
    res = validate_catalog(read_catalog(items=p))
    assert res.rejects[["row", "field", "reason", "raw"]].values.tolist() == [
        [2, "(row)", "line has 4 fields, the header has 2", '"A2,y,z,w"']]
    assert res.summary["items"].input_rows == 3
    _invariant(res)


def test_extra_field_on_the_first_row_is_not_taken_as_an_index(tmp_path: Path) -> None:
    # pandas alone would make column 1 the index and shift every value one column left
    p = _write(tmp_path / "items.csv", "item_id,title\nA1,x,extra\nA2,y\n")
    t = read_table(p, "items")
    assert t.frame.to_dict("list") == {"item_id": ["A2"], "title": ["y"]}
    assert t.row_errors["row"].tolist() == [1]


def test_unbalanced_quote_rejects_one_line_not_the_rest(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.csv",
               'item_id,title,brand\nA1,"broken title,Acme\nA2,fine,Acme\nA3,"ok",Acme\n'
               'A4,"two\nlines",Lumo\n')
    res = validate_catalog(read_catalog(items=p))
    assert res.tables.items["item_id"].tolist() == ["A2", "A3", "A4"]
    assert res.tables.items["title"].tolist() == ["fine", "ok", "two\nlines"]
    assert res.rejects[["row", "reason"]].values.tolist() == [
        [1, "unbalanced quote: a quoted field is not closed on this line"]]
    _invariant(res)


def test_quote_open_until_end_of_file(tmp_path: Path) -> None:
    p = _write(tmp_path / "users.csv", 'user_id,region\nu1,north\nu2,"south\nu3,east\n')
    t = read_table(p, "users")
    assert t.frame["user_id"].tolist() == ["u1", "u3"]
    assert t.row_errors["row"].tolist() == [2]


def test_tsv_line_with_too_many_fields(tmp_path: Path) -> None:
    p = _write(tmp_path / "users.tsv", "user_id\tregion\nu1\tn\tx\nu2\ts\n")
    t = read_table(p, "users")
    assert t.frame["user_id"].tolist() == ["u2"] and t.rows.tolist() == [2]


def test_header_that_does_not_parse(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.csv", 'item_id,"title\nA1,x\nA2,y,z\n')
    with pytest.raises(FileFormatError, match=r"items\.csv: not a valid CSV.*header row "
                                              r"containing item_id"):
        read_table(p, "items")


def test_empty_csv(tmp_path: Path) -> None:
    p = _write(tmp_path / "inter.csv", "")
    with pytest.raises(FileFormatError, match="user_id and item_id"):
        read_table(p, "interactions")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="cannot read file"):
        read_table(tmp_path / "nope.csv", "items")


def test_csv_named_jsonl_is_not_jsonl(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.jsonl", "item_id,title\nA1,x\n")
    with pytest.raises(FileFormatError, match="no line is a JSON object; expected JSON Lines"):
        read_table(p, "items")


def test_json_array_is_not_jsonl(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.jsonl", '[{"item_id": "A1"}]\n')
    with pytest.raises(FileFormatError, match="one JSON array, not JSON Lines"):
        read_table(p, "items")


def test_empty_jsonl(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.jsonl", "\n\n")
    with pytest.raises(FileFormatError, match="empty file"):
        read_table(p, "items")


def test_not_parquet(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.parquet", "item_id\nA1\n")
    with pytest.raises(FileFormatError, match="not a valid Parquet file"):
        read_table(p, "items")


def test_parquet_column_that_is_not_text(tmp_path: Path) -> None:
    p = tmp_path / "items.parquet"
    pq.write_table(pa.table({"item_id": ["A1"], "m": pa.array([{"k": 1}])}), p)
    with pytest.raises(FileFormatError, match="column 'm' .* cannot be read as text"):
        read_table(p, "items")


@pytest.mark.parametrize(("kind", "header", "missing"), [
    ("items", "sku,title", "item_id"),
    ("users", "id", "user_id"),
    ("interactions", "user_id,sku", "item_id"),
])
def test_missing_required_column(tmp_path: Path, kind: str, header: str, missing: str) -> None:
    p = _write(tmp_path / f"{kind}.csv", f"{header}\n")
    with pytest.raises(ValidationError,
                       match=rf"{kind}\.csv: {kind} table is missing required column\(s\) "
                             rf"\['{missing}'\]; columns found: \[.*'{header.split(',')[0]}'"):
        read_table(p, kind)


def test_column_mapping(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.csv", "sku,name\nA1,Lamp\n")
    t = read_table(p, "items", columns={"sku": "item_id", "name": "title"})
    assert list(t.frame.columns) == ["item_id", "title"]
    cat = read_catalog(items=p, columns={"items": {"sku": "item_id"}})
    assert cat.items is not None and "item_id" in cat.items.frame


def test_column_mapping_names_absent_column(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.csv", "item_id\nA1\n")
    with pytest.raises(ValidationError, match=r"column mapping names \['sku'\] but the columns "
                                              r"found are \['item_id'\]"):
        read_table(p, "items", columns={"sku": "item_id"})


def test_mapping_for_unknown_table(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown table"):
        read_catalog(columns={"products": {"sku": "item_id"}})


def test_unknown_kind(tmp_path: Path) -> None:
    p = _write(tmp_path / "x.csv", "a\n1\n")
    with pytest.raises(ValidationError, match="table kind 'products' is not one of"):
        read_table(p, "products")


def test_raw_table_from_frame_checks() -> None:
    with pytest.raises(ValidationError, match=r"missing required column\(s\) \['user_id'\]"):
        RawTable.from_frame(pd.DataFrame({"id": ["u"]}), "users")
    with pytest.raises(ValidationError, match="1 row numbers for 2 rows"):
        RawTable(kind="users", source="s", frame=pd.DataFrame({"user_id": ["a", "b"]}),
                 rows=np.array([1]))


def test_jsonl_line_with_unicode_line_separators_in_a_string(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.jsonl",
               '{"item_id": "A1", "title": "one\u2028two\x85three\u2029four"}\r\n'
               '{"item_id": "A2"}\r')
    t = read_table(p, "items")
    assert t.frame["item_id"].tolist() == ["A1", "A2"] and t.row_errors.empty
    assert t.frame["title"].iloc[0] == "one\u2028two\x85three\u2029four"
    assert t.rows.tolist() == [1, 2]
