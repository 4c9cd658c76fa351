"""A CSV/TSV splitter that turns malformed lines into rejected rows instead of failing the file.

Why: pandas' C parser is fast but all-or-nothing: one line with too many fields, or a quote that
never closes, fails the whole file (or, worse, silently shifts a row into the index or swallows
the following lines into one field). :func:`read_delimited` uses it for well-formed files and
falls back to :func:`split_records` (the ``csv`` module, strict quoting) only when the fast
parse fails or a field spans lines; malformed records become row errors with their row number,
and the rest of the file is kept.

Rules of the fallback (rows are numbered like pandas numbers them: non-blank records, 1-based):

* a record with more fields than the header is rejected ("N fields, the header has M");
  fewer fields are padded with empty values, as pandas does;
* a quote that is not closed properly (a strict-mode error in a record that spans several lines,
  or end of file inside quotes) rejects the record's first physical line only; parsing resumes
  on the next line, so a stray quote cannot swallow the rest of the file;
* other strict-mode complaints on a one-line record (``"ab"c``) are read leniently, as pandas
  reads them.
"""

from __future__ import annotations

import csv
import io
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_MAX_FIELD = min(sys.maxsize, 2**31 - 1)


class _Lines:
    """Physical lines handed to ``csv.reader`` one at a time, with the position exposed."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.pos = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


@contextmanager
def _field_limit() -> Iterator[None]:
    old = csv.field_size_limit()
    csv.field_size_limit(_MAX_FIELD)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _reader(src: _Lines, sep: str, *, strict: bool) -> Iterator[list[str]]:
    if sep == ",":
        return csv.reader(src, delimiter=sep, quoting=csv.QUOTE_MINIMAL, strict=strict)
    return csv.reader(src, delimiter=sep, quoting=csv.QUOTE_NONE, strict=strict)


def _blank(record: list[str], text: str) -> bool:
    return not record or (len(record) == 1 and not record[0].strip() and '"' not in text)


def split_records(text: str, sep: str) -> tuple[list[str] | None, list[list[str]], list[int],
                                                 list[tuple[int, str, str]]]:
    """Split ``text`` into header, good records (with row numbers) and bad ``(row, reason,
    raw)``; the header is None when the text holds no record."""
    src = _Lines(_LINE.findall(text))
    header: list[str] | None = None
    good: list[list[str]] = []
    rows: list[int] = []
    bad: list[tuple[int, str, str]] = []
    row = 0
    with _field_limit():
        strict = _reader(src, sep, strict=True)
        while src.pos < len(src.lines):
            start = src.pos
            try:
                record = next(strict)
            except StopIteration:
                break
            except csv.Error as e:
                spans = src.pos - start
                src.pos = start
                if spans > 1 or "end of data" in str(e):
                    record, reason = [], "unbalanced quote: a quoted field is not closed on " \
                                         "this line"
                    src.pos = start + 1
                else:  # one-line quirk such as "ab"c: read it as pandas does
                    record = next(_reader(src, sep, strict=False))
                    reason = ""
                strict = _reader(src, sep, strict=True)
                if reason:
                    if header is None:
                        raise csv.Error(f"the header line: {reason}") from e
                    row += 1
                    bad.append((row, reason, src.lines[start]))
                    continue
            raw = "".join(src.lines[start:src.pos])
            if _blank(record, raw):
                continue
            if header is None:
                header = record
                continue
            row += 1
            if len(record) > len(header):
                bad.append((row, f"line has {len(record)} fields, the header has "
                                 f"{len(header)}", raw.rstrip("\r\n")))
                continue
            good.append(record + [""] * (len(header) - len(record)))
            rows.append(row)
    return header, good, rows, bad


def header_names(header: list[str]) -> list[str]:
    """Column names as pandas names them: a repeated ``a`` becomes ``a.1``, ``a.2``, ..."""
    counts: dict[str, int] = {}
    names: list[str] = []
    for col in header:
        seen = counts.get(col, 0)
        while seen > 0:
            counts[col] = seen + 1
            col = f"{col}.{seen}"
            seen = counts.get(col, 0)
        names.append(col)
        counts[col] = seen + 1
    return names


def frame_from_records(header: list[str], records: list[list[str]], sep: str, *,
                       dirty: bool) -> pd.DataFrame:
    names = header_names(header)
    if not records:
        return pd.DataFrame({n: pd.Series([], dtype=object if dirty else str) for n in names})
    columns = list(zip(*records, strict=True))
    return pd.DataFrame({n: pd.Series(list(col), dtype=object if dirty else str)
                         for n, col in zip(names, columns, strict=True)})


def fast_parse(data: bytes, sep: str, *, dirty: bool) -> pd.DataFrame | None:
    """pandas' C parser; None when the file needs the careful fallback."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.BytesIO(data), sep=sep, dtype=object if dirty else str,
                encoding="utf-8-sig", encoding_errors="surrogateescape",
                keep_default_na=False, na_filter=False, engine="c", index_col=False,
                quoting=csv.QUOTE_MINIMAL if sep == "," else csv.QUOTE_NONE,
            )
    except (pd.errors.ParserError, pd.errors.ParserWarning):
        return None
    if sep == "," and b'"' in data:  # a quoted field may span lines: check them properly
        for c in frame.columns:
            if frame[c].astype(object).str.contains("[\r\n]", regex=True, na=False).any():
                return None
    return frame


