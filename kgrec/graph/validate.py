"""Validate raw tables into the canonical :class:`~kgrec.graph.tables.CatalogTables`.

Why: every source (files, adapters) passes through the same rules, so the stores and models
only ever see clean, typed tables, and every input row is accounted for: it is accepted,
rejected (with a reason in ``rejects``) or merged into an identical duplicate. Rules, applied
in this order; a row is rejected for the first rule it breaks:

* Text is stripped of surrounding whitespace; an empty value is missing (``<NA>``).
* A missing id (``item_id``, ``user_id``; both for interactions) rejects the row.
* A field that holds bytes that are not UTF-8 rejects the row ("invalid UTF-8 in field X").
* A field longer than ``MAX_LENGTHS`` (extra attribute/profile columns use the ``attribute``
  limit) rejects the row, naming the field and the limit; values are never truncated.
* ``price`` must be a non-negative finite number; missing is NaN.
* ``event`` is matched case-insensitively against ``EVENTS``; an unknown event rejects the row;
  a missing event rejects it too unless ``default_event`` is given.
* ``ts`` is integer unix seconds, float seconds (floored), or an ISO-8601 date/date-time
  (naive means UTC), stored as int64 unix seconds; anything else rejects the row. A missing
  ``ts`` becomes the 0-based position of the row among that user's accepted rows in file order
  ("order only", like sources that keep the sequence but not the time).
* ``value`` is optional; present, it must be a finite number.
* An interaction whose item is neither an accepted item nor in ``known_item_ids`` is rejected
  ("unknown item"); so is an item-entity link to such an item.
* A user-profile column that looks like a direct identifier (see
  :func:`kgrec.graph.privacy.guard_profile_columns`: e-mail, phone, name, address, ...) is
  dropped whole and listed in ``dropped_columns`` unless named in ``allow_profile_columns``.
* An interaction whose user is not in the users table nor in ``known_user_ids`` creates that
  user with an empty profile (counted as ``created``).
* Duplicate ids (items by ``item_id``, users by ``user_id``, interactions by user, item, event
  and ts): identical rows are merged silently (counted as ``duplicates_merged``); rows that
  differ are resolved like an upsert feed, the LAST row wins and each earlier row is rejected
  with "duplicate item_id superseded by row N" (counted as ``duplicates_superseded``, which are
  part of ``rejected``). Triples and item-entity links are merged when identical.

For every table: ``input_rows == accepted + rejected + duplicates_merged``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kgrec.errors import ConfigError, ValidationError
from kgrec.graph.privacy import guard_profile_columns, write_rejects
from kgrec.graph.pseudonym import Pseudonymizer
from kgrec.graph.readers import RawCatalog, RawTable
from kgrec.graph.tables import (
    EVENTS,
    ITEM_COLUMNS,
    ITEM_ENTITY_COLUMNS,
    MAX_LENGTHS,
    TRIPLE_COLUMNS,
    CatalogTables,
)

logger = logging.getLogger(__name__)

REJECT_COLUMNS: tuple[str, ...] = ("source", "row", "table", "field", "reason", "raw")
_SURROGATES = "[\udc80-\udcff]"
_EVENT_LIST = ", ".join(EVENTS)
_MAX_TS = 2.0**62  # seconds; anything larger cannot be a time and would overflow int64


@dataclass(frozen=True)
class TableSummary:
    """Counts for one table; ``input_rows == accepted + rejected + duplicates_merged``.

    ``created`` counts users added because an interaction named them; they are in the output
    table but not in ``accepted`` (they were no input row).
    """

    input_rows: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates_merged: int = 0
    duplicates_superseded: int = 0
    created: int = 0


@dataclass
class ValidationResult:
    """Canonical tables, the rejected rows with reasons, per-table counts, and the profile
    columns that were not kept (``{column: reason}``) because they look like identifiers."""

    tables: CatalogTables
    rejects: pd.DataFrame
    summary: dict[str, TableSummary]
    dropped_columns: dict[str, str] = field(default_factory=dict)

    def write_rejects(self, path: str | Path, pseudonymizer: Pseudonymizer | None = None,
                      ) -> Path:
        """Write ``rejects`` as UTF-8 CSV (columns ``REJECT_COLUMNS``) and return the path.

        Owner-only and atomic; user ids inside ``raw`` are pseudonymised (or withheld without
        a ``pseudonymizer``): see :func:`kgrec.graph.privacy.write_rejects`.
        """
        return write_rejects(self.rejects, path, pseudonymizer)


class _Rows:
    """Per-row verdicts of one table: the first broken rule wins."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.field = np.full(n, "", dtype=object)
        self.reason = np.full(n, "", dtype=object)

    def reject(self, mask: np.ndarray, field: str, reason: Any) -> None:
        new = mask & ~self.bad
        if not new.any():
            return
        self.bad |= new
        self.field[new] = field
        self.reason[new] = reason[new] if isinstance(reason, np.ndarray) else reason


def _mask(s: pd.Series) -> np.ndarray:
    return s.to_numpy(dtype=bool, na_value=False)


def _clean_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Strip every column; empty becomes missing."""
    out = {}
    for c in frame.columns:
        s = frame[c].str.strip()
        out[c] = s.where(s.ne("") & s.notna())
    return pd.DataFrame(out, index=frame.index)


def _check_text(clean: pd.DataFrame, raw: RawTable, verdict: _Rows, ids: Iterable[str]) -> None:
    for c in ids:
        verdict.reject(_mask(clean[c].isna()), c, f"missing {c}")
    if raw.maybe_invalid_utf8:
        for c in clean.columns:
            hit = _mask(clean[c].str.contains(_SURROGATES, regex=True, na=False))
            verdict.reject(hit, c, f"invalid UTF-8 in field {c}")
    for c in clean.columns:
        if c in ("price", "ts", "value", "event"):
            continue
        limit = MAX_LENGTHS.get(c, MAX_LENGTHS["attribute"])
        verdict.reject(_mask(clean[c].str.len() > limit), c,
                       f"{c} longer than {limit} characters")


def _numbers(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _winners(frame: pd.DataFrame, key: list[str]) -> np.ndarray | None:
    """Position of the last row with the same key, for every row (None: no duplicates)."""
    if not frame.duplicated(key, keep="last").any():
        return None
    gid = frame.groupby(key, sort=False, dropna=False).ngroup().to_numpy()
    pos = pd.Series(np.arange(len(frame))).groupby(gid).transform("max")
    return pos.to_numpy()


def _dedupe(
    frame: pd.DataFrame, rows: np.ndarray, key: list[str], name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split accepted rows into kept, merged (identical to the winner) and superseded.

    Returns:
        ``(keep, merged, superseded_reason)`` where the reason array is set where superseded.
    """
    n = len(frame)
    keep = np.ones(n, dtype=bool)
    merged = np.zeros(n, dtype=bool)
    reason = np.full(n, "", dtype=object)
    win = _winners(frame, key)
    if win is None:
        return keep, merged, reason
    loser = win != np.arange(n)
    same = np.ones(n, dtype=bool)
    for c in frame.columns:
        s = frame[c].reset_index(drop=True)
        w = s.iloc[win].reset_index(drop=True)
        same &= _mask(s.eq(w)) | (s.isna() & w.isna()).to_numpy()
    keep = ~loser
    merged = loser & same
    sup = loser & ~same
    if sup.any():
        reason[sup] = [f"duplicate {name} superseded by row {r}" for r in rows[win[sup]]]
    return keep, merged, reason


class _Table:
    """Bookkeeping for one input table while it is validated."""

    def __init__(self, raw: RawTable, table: str) -> None:
        self.raw = raw
        self.table = table
        self.clean = _clean_text(raw.frame)
        self.verdict = _Rows(len(raw.frame))
        self.merged = np.zeros(len(raw.frame), dtype=bool)
        self.superseded = 0

    def dedupe(self, typed: pd.DataFrame, key: list[str], name: str) -> pd.DataFrame:
        """Resolve duplicates among accepted rows of ``typed`` (indexed by row position)."""
        ok = ~self.verdict.bad
        sub = typed[ok]
        # Only now: rows with undecodable bytes are gone, so the text fits the string dtype.
        sub = sub.astype({c: "string" for c in sub.columns
                          if not pd.api.types.is_numeric_dtype(sub[c])})
        keep, merged, reason = _dedupe(sub, self.raw.rows[ok], key, name)
        pos = np.flatnonzero(ok)
        self.merged[pos[merged]] = True
        sup = np.zeros(len(typed), dtype=bool)
        sup[pos[reason != ""]] = True
        full_reason = np.full(len(typed), "", dtype=object)
        full_reason[pos] = reason
        self.verdict.reject(sup, key[0] if len(key) == 1 else "row", full_reason)
        self.superseded = int(sup.sum())
        return sub[keep].reset_index(drop=True)

    def rejects(self) -> pd.DataFrame:
        pos = np.flatnonzero(self.verdict.bad)
        cols = list(self.raw.frame.columns)
        records = self.raw.frame.iloc[pos].to_numpy(dtype=object).tolist()
        raws = [_raw_json(dict(zip(cols, r, strict=True))) for r in records]
        parsed = pd.DataFrame({
            "source": self.raw.source, "row": self.raw.rows[pos], "table": self.table,
            "field": self.verdict.field[pos], "reason": self.verdict.reason[pos], "raw": raws,
        })
        errs = self.raw.row_errors
        unread = pd.DataFrame({
            "source": self.raw.source, "row": errs["row"].to_numpy(dtype=np.int64),
            "table": self.table, "field": "(row)", "reason": errs["reason"].to_list(),
            "raw": [_raw_json(r) for r in errs["raw"].to_list()],
        })
        return pd.concat([unread, parsed], ignore_index=True) if len(unread) else parsed

    def summary(self, accepted: int, created: int = 0) -> TableSummary:
        return TableSummary(
            input_rows=self.raw.n_input_rows, accepted=accepted,
            rejected=int(self.verdict.bad.sum()) + len(self.raw.row_errors),
            duplicates_merged=int(self.merged.sum()),
            duplicates_superseded=self.superseded, created=created,
        )


def _raw_json(value: Any) -> str:
    """JSON of raw values; undecodable bytes appear as ``\\udcXX`` escapes, never crash."""
    if isinstance(value, dict):
        value = {k: v if isinstance(v, str) else None for k, v in value.items()}
    text = json.dumps(value, ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _validate_items(t: _Table) -> pd.DataFrame:
    c = t.clean
    _check_text(c, t.raw, t.verdict, ["item_id"])
    price = np.full(len(c), np.nan)
    if "price" in c:
        price = _numbers(c["price"])
        bad = c["price"].notna().to_numpy() & ~(np.isfinite(price) & (price >= 0))
        t.verdict.reject(bad, "price", "price is not a non-negative number")
    typed = pd.DataFrame({col: (pd.Series(price, index=c.index) if col == "price"
                                else c[col] if col in c
                                else pd.Series(pd.NA, index=c.index, dtype="string"))
                          for col in ITEM_COLUMNS})
    for col in c.columns:
        if col not in ITEM_COLUMNS:
            typed[col] = c[col]
    return t.dedupe(typed, ["item_id"], "item_id")


def _validate_users(t: _Table) -> pd.DataFrame:
    _check_text(t.clean, t.raw, t.verdict, ["user_id"])
    cols = ["user_id"] + [c for c in t.clean.columns if c != "user_id"]
    typed = pd.DataFrame({col: t.clean[col] for col in cols})
    return t.dedupe(typed, ["user_id"], "user_id")


def _parse_ts(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (seconds as int64, missing mask, bad mask)."""
    missing = s.isna().to_numpy()
    num = _numbers(s)
    sec = np.zeros(len(s), dtype=np.int64)
    huge = np.isfinite(num) & (np.abs(num) >= _MAX_TS)  # would overflow int64
    is_num = np.isfinite(num) & ~huge
    sec[is_num] = np.floor(num[is_num]).astype(np.int64)
    other = ~missing & np.isnan(num)
    bad = ~missing & (np.isinf(num) | huge)
    if other.any():
        sub = s[other]
        dt = pd.to_datetime(sub, utc=True, errors="coerce", format="ISO8601")
        # years 1..9999 only (pandas parses "0000-01-01"); microseconds since the epoch, so
        # dates outside pandas' nanosecond range (e.g. the sentinel 9999-12-31) do not overflow
        ok = (dt.notna() & dt.dt.year.between(1, 9999)).to_numpy()
        idx = np.flatnonzero(other)
        micros = dt[ok].dt.as_unit("us").astype("int64").to_numpy()
        sec[idx[ok]] = np.floor_divide(micros, 1_000_000)
        bad[idx[~ok]] = True
    return sec, missing, bad


def _validate_interactions(
    t: _Table, item_ids: pd.Index, default_event: str | None
) -> pd.DataFrame:
    c = t.clean
    _check_text(c, t.raw, t.verdict, ["user_id", "item_id"])
    n = len(c)
    no_event = pd.Series(pd.NA, index=c.index, dtype="string")
    ev = c["event"].str.lower() if "event" in c else no_event
    if default_event is not None:
        ev = ev.fillna(default_event)
    else:
        t.verdict.reject(_mask(ev.isna()), "event",
                         "missing event; add an event column or pass default_event")
    unknown = ev.notna().to_numpy() & ~ev.isin(EVENTS).to_numpy()
    if unknown.any():
        msg = np.full(n, "", dtype=object)
        msg[unknown] = [f"unknown event {e!r}; expected one of {_EVENT_LIST}"
                        for e in ev[unknown].tolist()]
        t.verdict.reject(unknown, "event", msg)
    if "ts" in c:
        sec, no_ts, bad_ts = _parse_ts(c["ts"])
        t.verdict.reject(bad_ts, "ts", "ts is not unix seconds or an ISO-8601 date/date-time")
    else:
        sec, no_ts = np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
    value = np.full(n, np.nan)
    if "value" in c:
        value = _numbers(c["value"])
        t.verdict.reject(c["value"].notna().to_numpy() & ~np.isfinite(value), "value",
                         "value is not a number")
    t.verdict.reject(~c["item_id"].isin(item_ids).to_numpy(), "item_id",
                     "unknown item (not in the items table nor known_item_ids)")
    fill = no_ts & ~t.verdict.bad
    if fill.any():
        order = c["user_id"][~t.verdict.bad].groupby(c["user_id"][~t.verdict.bad],
                                                     sort=False).cumcount()
        pos = np.zeros(n, dtype=np.int64)
        pos[~t.verdict.bad] = order.to_numpy()
        sec[fill] = pos[fill]
    typed = pd.DataFrame({
        "user_id": c["user_id"], "item_id": c["item_id"],
        "event": ev, "ts": sec, "value": value,
    }, index=c.index)
    return t.dedupe(typed, ["user_id", "item_id", "event", "ts"], "interaction")


def _validate_kg(
    frame: pd.DataFrame | None, table: str, columns: tuple[str, ...], item_ids: pd.Index | None
) -> tuple[pd.DataFrame | None, _Table | None]:
    if frame is None:
        return None, None
    missing = [col for col in columns if col not in frame.columns]
    source = str(frame.attrs.get("source", table))
    if missing:
        raise ValidationError(
            f"{source}: {table} table is missing column(s) {missing}; columns found: "
            f"{list(frame.columns)}"
        )
    sub = frame[list(columns)].reset_index(drop=True).astype(object)
    raw = RawTable(kind=table, source=source, frame=sub,
                   rows=np.arange(1, len(sub) + 1, dtype=np.int64))
    t = _Table(raw, table)
    _check_text(t.clean, raw, t.verdict, columns)
    if item_ids is not None:
        t.verdict.reject(~t.clean["item_id"].isin(item_ids).to_numpy(), "item_id",
                         "unknown item (not in the items table nor known_item_ids)")
    typed = pd.DataFrame({col: t.clean[col] for col in columns})
    return t.dedupe(typed, list(columns), table), t


def validate_catalog(
    raw: RawCatalog,
    *,
    known_item_ids: Iterable[str] = frozenset(),
    known_user_ids: Iterable[str] = frozenset(),
    default_event: str | None = None,
    allow_profile_columns: Iterable[str] = (),
) -> ValidationResult:
    """Apply the rules in the module docstring and return canonical tables plus rejects.

    Args:
        raw: the raw catalogue (from :func:`~kgrec.graph.readers.read_catalog` or an adapter).
        known_item_ids: items already in the store, so interactions with them are accepted
            when this batch has no row for them (incremental loads).
        known_user_ids: users already in the store; they are not created again.
        default_event: event for interaction rows without one (e.g. ``"purchase"``); without
            it such rows are rejected.
        allow_profile_columns: user-profile columns to keep even though they look like
            direct identifiers (e-mail, phone, name, nearly unique values, ...).

    Returns:
        A :class:`ValidationResult`; ``summary`` has one entry per table present.

    Raises:
        ConfigError: ``default_event`` is not one of ``EVENTS``.
        ValidationError: a table lacks a required column.
    """
    if default_event is not None:
        default_event = default_event.strip().lower()
        if default_event not in EVENTS:
            raise ConfigError(f"default_event {default_event!r} is not one of {_EVENT_LIST}")
    out = CatalogTables()
    parts: list[_Table] = []
    summary: dict[str, TableSummary] = {}
    if raw.items is not None:
        t = _Table(raw.items, "items")
        out.items = _validate_items(t)
        parts.append(t)
        summary["items"] = t.summary(len(out.items))
    item_ids = pd.Index(out.items["item_id"].astype(object)).union(
        pd.Index(list(known_item_ids), dtype=object))
    users_accepted = 0
    dropped: dict[str, str] = {}
    if raw.users is not None:
        kept, dropped = guard_profile_columns(raw.users.frame, allow=allow_profile_columns)
        t = _Table(replace(raw.users, frame=kept), "users")
        out.users = _validate_users(t)
        users_accepted = len(out.users)
        parts.append(t)
        summary["users"] = t.summary(users_accepted)
    if raw.interactions is not None:
        t = _Table(raw.interactions, "interactions")
        out.interactions = _validate_interactions(t, item_ids, default_event)
        parts.append(t)
        summary["interactions"] = t.summary(len(out.interactions))
        have = pd.Index(out.users["user_id"].astype(object)).union(
            pd.Index(list(known_user_ids), dtype=object))
        new = pd.unique(out.interactions["user_id"][~out.interactions["user_id"].isin(have)])
        if len(new):
            extra = pd.DataFrame({col: pd.Series(pd.NA, index=range(len(new)), dtype="string")
                                  for col in out.users.columns})
            extra["user_id"] = pd.Series(new, dtype="string")
            out.users = pd.concat([out.users, extra], ignore_index=True)
            prev = summary.get("users", TableSummary())
            summary["users"] = TableSummary(**{**prev.__dict__, "created": len(new)})
    for name, cols, ids in (("triples", TRIPLE_COLUMNS, None),
                            ("item_entities", ITEM_ENTITY_COLUMNS, item_ids)):
        frame, t_kg = _validate_kg(getattr(raw, name), name, cols, ids)
        if frame is not None and t_kg is not None:
            setattr(out, name, frame)
            parts.append(t_kg)
            summary[name] = t_kg.summary(len(frame))
    rejects = _collect_rejects(parts)
    for name, s in summary.items():
        logger.info("validated %s: %d in, %d accepted, %d rejected, %d merged, %d created",
                    name, s.input_rows, s.accepted, s.rejected, s.duplicates_merged, s.created)
    return ValidationResult(tables=out, rejects=rejects, summary=summary,
                            dropped_columns=dropped)


def _collect_rejects(parts: list[_Table]) -> pd.DataFrame:
    frames = [p.rejects() for p in parts]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "row" else "string")
                             for c in REJECT_COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["table", "row"], kind="stable", key=_table_order).reset_index(
        drop=True)
    return out.astype({c: "string" for c in REJECT_COLUMNS if c != "row"} | {"row": "int64"})


_ORDER = {"items": 0, "users": 1, "interactions": 2, "triples": 3, "item_entities": 4}


def _table_order(s: pd.Series) -> pd.Series:
    return s.map(_ORDER) if s.name == "table" else s


__all__ = [
    "REJECT_COLUMNS",
    "TableSummary",
    "ValidationResult",
    "validate_catalog",
]
