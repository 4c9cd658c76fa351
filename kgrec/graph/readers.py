"""Read item, user and interaction files (CSV/TSV, JSONL, Parquet) into raw string tables.

Why: validation must see what the file really says, so readers never guess types. Every value
is kept as text (``str`` or missing) together with its 1-based source row number, and problems
that concern one row (a line that is not JSON, bytes that are not UTF-8) are left for
:func:`kgrec.graph.validate.validate_catalog` to reject row by row instead of failing the load.
Only problems with the file as a whole raise:

* :class:`~kgrec.errors.FileFormatError`: unknown extension, or the file does not parse as the
  format its extension names (e.g. a ``.jsonl`` file with no JSON object on any line);
* :class:`~kgrec.errors.ValidationError`: a required column (``item_id`` for items, ``user_id``
  for users, ``user_id`` and ``item_id`` for interactions) is missing, or a column mapping
  names a column the file does not have.

Format notes: ``.csv`` is comma-separated with a header row and standard double-quote quoting;
``.tsv`` is tab-separated with a header row and no quoting. A CSV/TSV line with more fields than
the header, or with a quote that does not close, is a row error (see
:mod:`kgrec.graph.delimited`); the rest of the file is read. ``.jsonl``/``.ndjson`` hold one JSON
object per line; numbers are kept as their JSON text, a list becomes its items joined by
``MULTI_SEP`` (``CATEGORY_SEP`` for ``category``), and a nested object stays JSON text.
``.parquet`` columns of any type are cast to text.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kgrec.errors import FileFormatError, ValidationError
from kgrec.graph.delimited import fast_parse, frame_from_records, split_records
from kgrec.graph.tables import CATEGORY_SEP, MULTI_SEP

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("items", "users", "interactions")
_KG_KINDS: tuple[str, ...] = ("triples", "item_entities")
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "items": ("item_id",),
    "users": ("user_id",),
    "interactions": ("user_id", "item_id"),
}
FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}


@dataclass
class RawTable:
    """One input table as text, before validation.

    Attributes:
        kind: ``"items"``, ``"users"`` or ``"interactions"`` (``"triples"`` and
            ``"item_entities"`` are used internally by validation).
        source: where the rows came from (a file path, or e.g. ``"amazon:items"``); it names the
            rows in reject reports.
        frame: one column per source column (after renaming), values ``str`` or missing. The
            dtype is ``object`` when some value may hold undecodable bytes (as
            ``surrogateescape`` code points), else pandas' string dtype.
        rows: 1-based source row number of each frame row (data row for CSV/Parquet, line
            number for JSONL), aligned with ``frame``.
        row_errors: rows the reader could not turn into values at all (e.g. a JSONL line that
            is not JSON): columns ``row``, ``reason``, ``raw``. They are rejected by validation.
        maybe_invalid_utf8: whether the source held bytes that are not UTF-8; validation only
            scans for them when this is set.
    """

    kind: str
    source: str
    frame: pd.DataFrame
    rows: np.ndarray
    row_errors: pd.DataFrame = field(default_factory=lambda: _empty_row_errors())
    maybe_invalid_utf8: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS + _KG_KINDS:
            raise ValidationError(
                f"{self.source}: table kind {self.kind!r} is not one of {', '.join(KINDS)}"
            )
        if len(self.rows) != len(self.frame):
            raise ValidationError(
                f"{self.source}: {len(self.rows)} row numbers for {len(self.frame)} rows"
            )

    @property
    def n_input_rows(self) -> int:
        """Rows in the source, including those the reader could not parse."""
        return len(self.frame) + len(self.row_errors)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        kind: str,
        *,
        source: str | None = None,
        columns: Mapping[str, str] | None = None,
    ) -> RawTable:
        """Wrap an in-memory table (rows numbered 1..n); adapters and tests use this.

        Raises:
            ValidationError: a required column is missing, or ``columns`` names a column that
                ``frame`` does not have.
        """
        src = source or f"<{kind}>"
        frame = _rename(frame.reset_index(drop=True), columns, src)
        _check_required(frame, kind, src)
        return cls(kind=kind, source=src, frame=frame,
                   rows=np.arange(1, len(frame) + 1, dtype=np.int64))


@dataclass
class RawCatalog:
    """Raw tables of one catalogue, plus optional knowledge-graph tables.

    ``triples`` (head, relation, tail) and ``item_entities`` (item_id, entity) are plain frames
    of text; adapters that ship a knowledge graph fill them.
    """

    items: RawTable | None = None
    users: RawTable | None = None
    interactions: RawTable | None = None
    triples: pd.DataFrame | None = None
    item_entities: pd.DataFrame | None = None


def _empty_row_errors() -> pd.DataFrame:
    return pd.DataFrame({"row": pd.Series(dtype="int64"), "reason": pd.Series(dtype=object),
                         "raw": pd.Series(dtype=object)})


def read_table(
    path: str | Path,
    kind: str,
    *,
    columns: Mapping[str, str] | None = None,
) -> RawTable:
    """Read one CSV/TSV, JSONL or Parquet file as text, keeping source row numbers.

    Args:
        path: the file; its extension picks the format (see the module docstring).
        kind: ``"items"``, ``"users"`` or ``"interactions"``; decides the required columns.
        columns: optional renaming ``{source column: canonical column}``, applied before the
            required columns are checked (e.g. ``{"sku": "item_id"}``).

    Returns:
        A :class:`RawTable`; nothing is validated beyond the presence of required columns.

    Raises:
        ValidationError: ``kind`` is unknown, a required column is missing (the message lists
            the columns found) or ``columns`` names a column the file lacks.
        FileFormatError: the extension is not supported, or the file does not parse as that
            format.
    """
    p = Path(path)
    if kind not in KINDS:
        raise ValidationError(f"{p}: table kind {kind!r} is not one of {', '.join(KINDS)}")
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise FileFormatError(
            f"{p}: unsupported file extension {p.suffix!r}; use one of "
            f"{', '.join(sorted(FORMATS))} (format is chosen by extension)"
        )
    try:
        data = p.read_bytes()
    except OSError as e:
        raise FileFormatError(f"{p}: cannot read file: {e}") from e
    if fmt != "parquet" and data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise FileFormatError(f"{p}: the file is UTF-16 encoded; kgrec reads UTF-8: save it "
                              f"as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8`)")
    if fmt == "parquet":
        frame, row_errors, dirty = _read_parquet(data, p, kind), _empty_row_errors(), False
        rows = np.arange(1, len(frame) + 1, dtype=np.int64)
    elif fmt == "jsonl":
        frame, rows, row_errors, dirty = _read_jsonl(data, p, kind)
    else:
        frame, rows, row_errors, dirty = _read_delimited(data, p, kind,
                                                         sep="," if fmt == "csv" else "\t")
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = _rename(frame, columns, str(p))
    _check_required(frame, kind, str(p))
    logger.info("read %s: %d rows (%d unparseable) from %s", kind, len(frame),
                len(row_errors), p)
    return RawTable(kind=kind, source=str(p), frame=frame, rows=rows, row_errors=row_errors,
                    maybe_invalid_utf8=dirty)


def read_catalog(
    *,
    items: str | Path | None = None,
    users: str | Path | None = None,
    interactions: str | Path | None = None,
    columns: Mapping[str, Mapping[str, str]] | None = None,
) -> RawCatalog:
    """Read the files of one catalogue; any of them may be omitted.

    Args:
        items: items file. users: users file. interactions: interactions file.
        columns: optional per-kind renaming, e.g. ``{"items": {"sku": "item_id"}}``.

    Raises:
        FileFormatError: see :func:`read_table`.
        ValidationError: see :func:`read_table`.
    """
    maps = columns or {}
    unknown = set(maps) - set(KINDS)
    if unknown:
        raise ValidationError(
            f"column mappings given for unknown table(s) {sorted(unknown)}; use {list(KINDS)}"
        )
    paths = {"items": items, "users": users, "interactions": interactions}
    tables = {k: read_table(v, k, columns=maps.get(k)) if v is not None else None
              for k, v in paths.items()}
    return RawCatalog(items=tables["items"], users=tables["users"],
                      interactions=tables["interactions"])


def _expected(kind: str) -> str:
    return " and ".join(REQUIRED_COLUMNS[kind])


def _rename(frame: pd.DataFrame, columns: Mapping[str, str] | None, source: str) -> pd.DataFrame:
    if not columns:
        return frame
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"{source}: column mapping names {missing} but the columns found are "
            f"{list(frame.columns)}; fix the mapping or the header"
        )
    return frame.rename(columns=dict(columns))


def _check_required(frame: pd.DataFrame, kind: str, source: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS[kind] if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"{source}: {kind} table is missing required column(s) {missing}; columns found: "
            f"{list(frame.columns)}. Rename them in the file or pass columns={{...: "
            f"{missing[0]!r}}}"
        )


def _decode(data: bytes) -> tuple[str, bool]:
    """Decode UTF-8 (a BOM is dropped); undecodable bytes survive as surrogate escapes."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="surrogateescape"), True


def _check_names(names: list[str], path: Path) -> None:
    """Column names must be text: bytes that are not UTF-8 in a header fail the file."""
    bad = [n.encode("utf-8", "backslashreplace").decode("utf-8") for n in names
           if any("\udc80" <= ch <= "\udcff" for ch in n)]
    if bad:
        raise FileFormatError(f"{path}: column name(s) {bad} hold bytes that are not UTF-8; "
                              f"save the file as UTF-8")


def _read_delimited(data: bytes, path: Path, kind: str, *, sep: str,
                    ) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, bool]:
    name = "CSV" if sep == "," else "TSV"
    try:
        data.decode("utf-8")
        dirty = False
    except UnicodeDecodeError:
        dirty = True
    hint = (f"expected a {name} with a header row containing {_expected(kind)}")
    try:
        frame = fast_parse(data, sep, dirty=dirty)
    except (pd.errors.EmptyDataError, ValueError) as e:
        raise FileFormatError(f"{path}: not a valid {name} ({str(e).strip()}); {hint}") from e
    if frame is not None:
        _check_names([str(c) for c in frame.columns], path)
        return frame, np.arange(1, len(frame) + 1, dtype=np.int64), _empty_row_errors(), dirty
    text, dirty = _decode(data)
    try:
        header, records, rows, bad = split_records(text, sep)
    except csv.Error as e:
        raise FileFormatError(f"{path}: not a valid {name} ({e}); {hint}") from e
    if header is None:
        raise FileFormatError(f"{path}: empty file; {hint}")
    _check_names(header, path)
    frame = frame_from_records(header, records, sep, dirty=dirty)
    errors = pd.DataFrame({
        "row": pd.Series([b[0] for b in bad], dtype="int64"),
        "reason": pd.Series([b[1] for b in bad], dtype=object),
        "raw": pd.Series([b[2] for b in bad], dtype=object),
    })
    logger.warning("%s: %d malformed line(s) rejected as rows, the rest read", path, len(bad))
    return frame, np.asarray(rows, dtype=np.int64), errors, dirty


def _read_parquet(data: bytes, path: Path, kind: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as e:
        raise FileFormatError(
            f"{path}: not a valid Parquet file ({e}); expected a Parquet file with a column "
            f"{_expected(kind)}"
        ) from e
    cols: dict[str, Any] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            sep = CATEGORY_SEP if name == "category" else MULTI_SEP
            col = pc.binary_join(pc.cast(col, pa.list_(pa.string())), sep)
        elif not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            try:
                col = pc.cast(col, pa.string())
            except pa.ArrowException as e:
                raise FileFormatError(
                    f"{path}: Parquet column {name!r} of type {col.type} cannot be read as "
                    f"text; store it as a string, number, date or list of strings"
                ) from e
        cols[str(name)] = pd.Series(col.to_pylist(), dtype=str)
    return pd.DataFrame(cols) if cols else pd.DataFrame(index=range(table.num_rows))


def _json_text(value: Any, column: str) -> Any:
    """A JSON value as the text a CSV cell would hold (None stays missing)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value != value:  # NaN: a key absent from this line
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return (CATEGORY_SEP if column == "category" else MULTI_SEP).join(str(v) for v in value)
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _read_jsonl(
    data: bytes, path: Path, kind: str
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, bool]:
    text, dirty = _decode(data)
    # Only \n, \r\n and \r end a line: str.splitlines would also split inside JSON strings
    # at U+2028, U+0085, \x0c ... and reject valid lines.
    lines = re.split(r"\r\n|\r|\n", text)
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    hint = (f"expected JSON Lines: one JSON object per line with {_expected(kind)}, "
            f"e.g. {{\"{REQUIRED_COLUMNS[kind][0]}\": \"A1\"}}")
    if not numbered:
        raise FileFormatError(f"{path}: empty file; {hint}")
    if numbered[0][1].lstrip().startswith("["):
        raise FileFormatError(f"{path}: looks like one JSON array, not JSON Lines; {hint}")
    records: list[Any] | None
    try:  # fast path: one C-level parse of the whole file
        records = json.loads("[" + ",".join(ln for _, ln in numbered) + "]")
        if records is not None and len(records) != len(numbered):
            records = None  # a line held two values ("{} {}" cannot, but "1,2" can)
    except json.JSONDecodeError:
        records = None
    good_rows: list[int] = []
    good: list[dict[str, Any]] = []
    bad: list[tuple[int, str, str]] = []
    if records is not None:
        pairs = list(zip((n for n, _ in numbered), records, (ln for _, ln in numbered),
                         strict=True))
    else:
        pairs = []
        for n, ln in numbered:
            try:
                pairs.append((n, json.loads(ln), ln))
            except json.JSONDecodeError as e:
                bad.append((n, f"line is not valid JSON ({e.msg})", ln))
    for n, rec, ln in pairs:
        if isinstance(rec, dict):
            good_rows.append(n)
            good.append(rec)
        else:
            bad.append((n, f"line is a JSON {type(rec).__name__}, not an object", ln))
    if not good:
        raise FileFormatError(f"{path}: no line is a JSON object; {hint}")
    keys = list(dict.fromkeys(itertools.chain.from_iterable(good)))
    _check_names([str(k) for k in keys], path)
    # Column by column from Python values: pandas must not infer (3 -> 3.0) before we do.
    cols: dict[str, pd.Series] = {}
    for k in keys:
        name = str(k)
        vals = [rec.get(k) for rec in good]
        vals = [v if v is None or type(v) is str else _json_text(v, name) for v in vals]
        cols[name] = pd.Series(vals, dtype=object if dirty else str)
    frame = pd.DataFrame(cols)
    bad.sort()
    errors = pd.DataFrame({
        "row": pd.Series([b[0] for b in bad], dtype="int64"),
        "reason": pd.Series([b[1] for b in bad], dtype=object),
        "raw": pd.Series([b[2] for b in bad], dtype=object),
    })
    return frame, np.asarray(good_rows, dtype=np.int64), errors, dirty
