"""Property tests: whatever bytes a file holds, reading + validation ends in accepted rows,
rejected rows, or a typed ``KgrecError``; never another exception, never a row unaccounted for.

``KGREC_PROPERTY_EXAMPLES`` sets the number of generated inputs per property (default 100; the
figure in benchmarks/RELIABILITY.md was run with more).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kgrec.errors import KgrecError
from kgrec.graph.delimited import frame_from_records, split_records
from kgrec.graph.readers import read_table
from kgrec.graph.validate import validate_catalog

EXAMPLES = int(os.environ.get("KGREC_PROPERTY_EXAMPLES", "100"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HEADERS = {
    "items": ["item_id", "title", "brand", "category", "price", "colour"],
    "users": ["user_id", "age_band", "region", "email"],
    "interactions": ["user_id", "item_id", "event", "ts", "value"],
}
NASTY = ["", " ", '"', '""', ",", "\t", "\n", "\r\n", "\r", "\ufeff", "\x00", "\u2028",
         "x') DETACH DELETE n //", "1; DROP TABLE users;--", "${jndi:ldap://x/a}",
         "<script>alert(1)</script>", "=HYPERLINK(\"http://x\")", "../../etc/passwd",
         "NaN", "inf", "-1", "1e309", "2026-13-45", "purchase", "CLICK", "a@b.co",
         "\U0001f600", "é", "中文", "\u202e", "x" * 1_500]
field = st.one_of(st.sampled_from(NASTY), st.text(max_size=30),
                  st.text(alphabet="0123456789.-:TZ ", max_size=12))
NEWLINES = st.sampled_from(["\n", "\r\n", "\r"])
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"])


def _check(path: Path, kind: str) -> None:
    """The property: typed error, or every input row accounted for."""
    try:
        table = read_table(path, kind)
        res = validate_catalog(_catalog(kind, table))
    except KgrecError as e:
        event(f"typed error {type(e).__name__}")
        return
    s = res.summary[kind]
    event("some rows rejected" if s.rejected else "rows accepted, none rejected"
          if s.accepted else "no rows")
    if len(table.row_errors):
        event("malformed lines rejected as rows")
    assert s.input_rows == table.n_input_rows
    assert s.input_rows == s.accepted + s.rejected + s.duplicates_merged
    assert len(res.rejects) == s.rejected + (res.summary["users"].rejected
                                             if kind != "users" and "users" in res.summary
                                             else 0)
    with tempfile.TemporaryDirectory() as d:  # the rejects file can always be written
        res.write_rejects(Path(d) / "rejects.csv")


def _catalog(kind: str, table: object) -> object:
    from kgrec.graph.readers import RawCatalog

    return RawCatalog(**{kind: table})  # type: ignore[arg-type]


def _file(data: bytes, suffix: str) -> Path:
    d = Path(tempfile.mkdtemp())
    p = d / f"input{suffix}"
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
@pytest.mark.parametrize("kind", ["items", "users", "interactions"])
@SETTINGS
@given(data=st.binary(max_size=600))
def test_random_bytes(kind: str, suffix: str, data: bytes) -> None:
    _check(_file(data, suffix), kind)


@st.composite
def delimited_files(draw: st.DrawFn, kind: str, sep: str) -> bytes:
    header = draw(st.permutations(HEADERS[kind]))
    n = draw(st.integers(0, 12))
    nl = draw(NEWLINES)
    rows = []
    for _ in range(n):
        width = draw(st.integers(max(0, len(header) - 2), len(header) + 2))
        cells = draw(st.lists(field, min_size=width, max_size=width))
        if draw(st.booleans()) and sep == ",":  # well quoted
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow(cells)
            rows.append(buf.getvalue())
        else:  # raw join: stray quotes, separators and newlines break the line on purpose
            rows.append(sep.join(cells))
    if draw(st.booleans()):
        rows.append("x" * draw(st.integers(10_000, 120_000)))  # a huge field
    text = sep.join(header) + nl + nl.join(rows) + draw(st.sampled_from(["", nl]))
    if draw(st.booleans()):  # mixed newlines
        text = text.replace(nl, draw(NEWLINES), draw(st.integers(0, 3)))
    try:
        data = text.encode(draw(ENCODINGS), errors="surrogateescape")
    except UnicodeEncodeError:
        data = text.encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=8)) + data[cut:]  # bad bytes
    return data


@pytest.mark.parametrize("kind", ["items", "users", "interactions"])
@SETTINGS
@given(st.data())
def test_structured_csv_and_tsv(kind: str, data: st.DataObject) -> None:
    sep = data.draw(st.sampled_from([",", "\t"]))
    raw = data.draw(delimited_files(kind, sep))
    _check(_file(raw, ".csv" if sep == "," else ".tsv"), kind)


json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() |
                          st.sampled_from(NASTY) | st.text(max_size=20),
                          lambda inner: st.lists(inner, max_size=3) |
                          st.dictionaries(st.text(max_size=5), inner, max_size=3),
                          max_leaves=6)


@pytest.mark.parametrize("kind", ["items", "users", "interactions"])
@SETTINGS
@given(st.data())
def test_structured_jsonl(kind: str, data: st.DataObject) -> None:
    keys = st.sampled_from(HEADERS[kind] + ["extra", ""])
    lines = []
    for _ in range(data.draw(st.integers(0, 10))):
        if data.draw(st.integers(0, 4)) == 0:
            lines.append(data.draw(st.sampled_from(NASTY + ["{", "[1]", "{} {}", "1,2"])))
        else:
            obj = data.draw(st.dictionaries(keys, json_value, max_size=6))
            lines.append(json.dumps(obj, ensure_ascii=data.draw(st.booleans())))
    nl = data.draw(NEWLINES)
    text = nl.join(lines)
    bom = data.draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe"]))
    _check(_file(bom + text.encode("utf-8", errors="surrogatepass"), ".jsonl"), kind)


@SETTINGS
@given(header=st.lists(st.text(alphabet="abcxyz_", min_size=1, max_size=6), min_size=2,
                       max_size=4, unique=True),
       rows=st.lists(st.lists(st.text(alphabet='ab ,"\n1é', max_size=8), min_size=1,
                              max_size=4), max_size=8))
def test_fallback_reads_well_formed_csv_like_pandas(header: list[str],
                                                    rows: list[list[str]]) -> None:
    """For files the fast parser can read, the careful parser gives the same frame."""
    import pandas as pd

    rows = [(r + [""] * len(header))[:len(header)] for r in rows]
    rows = [r for r in rows if any(c.strip() for c in r)]  # blank lines are skipped by both
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    text = buf.getvalue()
    fast = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False,
                       index_col=False)
    head, records, numbers, bad = split_records(text, ",")
    assert head is not None and bad == []
    careful = frame_from_records(head, records, ",", dirty=False)
    assert careful.columns.tolist() == fast.columns.tolist()
    assert careful.astype(object).values.tolist() == fast.astype(object).values.tolist()
    assert numbers == list(range(1, len(fast) + 1))
