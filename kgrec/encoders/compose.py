"""Turn rows of the canonical ``items`` table into one text per item for the text encoder.

Template (``ITEM_TEXT_TEMPLATE``; parts whose value is missing are left out, together with
their label)::

    {title}. Brand: {brand}. Category: {category}. [{attr}: {value}. ...] {description}

``category`` is the table's path string (levels joined by ``" > "``); a part that already ends
with ``.``, ``!`` or ``?`` gets no second full stop. The description goes last because it is
the part trimmed first: the text is cut to ``max_chars`` characters by shortening the
description at a word boundary, and only if title, brand and category alone are longer is the
whole text cut (again at a word boundary). ``max_chars`` (default 1,000, about 200-250 word
pieces) keeps texts within the encoder's 256 tokens and stops a 100k-character description from
costing tokenizer time.

Cleaning, for every value: ``None``/NaN/``pd.NA`` and blank strings are missing; bytes are
decoded as UTF-8 (invalid bytes replaced); other non-strings (numbers, lists ...) are turned
into ``str``; control characters become spaces, lone UTF-16 surrogates (which tokenizers reject)
become U+FFFD; runs of whitespace collapse to one space. Emoji and any script are kept.

An item with no text at all gets the empty string; :class:`~kgrec.encoders.BertTextEncoder`
maps it to the model's fixed vector for ``[CLS] [SEP]`` and
:class:`~kgrec.encoders.HashingEncoder` to zeros. Its id is listed in the report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kgrec.errors import DataError

logger = logging.getLogger(__name__)

ITEM_TEXT_TEMPLATE = "{title}. Brand: {brand}. Category: {category}. {description}"
TEXT_COLUMNS: tuple[str, ...] = ("title", "brand", "category", "description")
DEFAULT_MAX_CHARS = 1_000
MIN_MAX_CHARS = 32
_BAD_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
_SURROGATES = "[\ud800-\udfff]"
_PRE_CAP = 4  # values are sliced to PRE_CAP * max_chars before any regex work


@dataclass
class CompositionReport:
    """What :func:`compose_item_texts` found and changed.

    Attributes:
        n_items: Rows composed.
        missing: Per text column, values that were missing or blank (an absent column counts
            every row).
        non_string: Per column, values that were not ``str`` and were converted.
        cleaned: Per column, values that held control characters or lone surrogates.
        n_truncated: Texts cut to ``max_chars``.
        empty_item_ids: Items with no text at all (their text is ``""``).
    """

    n_items: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    non_string: dict[str, int] = field(default_factory=dict)
    cleaned: dict[str, int] = field(default_factory=dict)
    n_truncated: int = 0
    empty_item_ids: list[str] = field(default_factory=list)

    @property
    def n_without_description(self) -> int:
        """Items whose text falls back to title/brand/category only."""
        return self.missing.get("description", 0)

    def summary(self) -> str:
        """One line for logs and CLIs."""
        return (
            f"{self.n_items} items: missing {self.missing}, non-string {self.non_string}, "
            f"cleaned {self.cleaned}, truncated {self.n_truncated}, "
            f"{len(self.empty_item_ids)} without any text"
        )


def _clean_column(raw: pd.Series, cap: int) -> tuple[pd.Series, int, int]:
    """Return the cleaned column (``""`` for missing), #non-string values, #cleaned values."""
    values = raw.astype(object)
    is_na = pd.isna(values).to_numpy(dtype=bool) if len(values) else np.zeros(0, dtype=bool)
    if isinstance(raw.dtype, pd.StringDtype):
        is_str = ~is_na
    else:  # one isinstance per value; the conversion below only touches the odd ones
        is_str = np.fromiter((isinstance(v, str) for v in values.to_numpy()), dtype=bool,
                             count=len(values))
    odd = ~is_str & ~is_na
    if odd.any():
        values = values.copy()
        values[odd] = [
            v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else str(v)
            for v in values[odd]
        ]
    text = pd.Series(np.where(is_na, "", values), index=raw.index, dtype=object)
    text = text.str.slice(0, cap)
    bad = text.str.contains(_BAD_CHARS, regex=True) | text.str.contains(_SURROGATES, regex=True)
    n_cleaned = int(bad.sum())
    if n_cleaned:
        text = text.str.replace(_BAD_CHARS, " ", regex=True)
        text = text.str.replace(_SURROGATES, "\ufffd", regex=True)
    text = text.str.replace(r"\s+", " ", regex=True).str.strip()
    return text, int(odd.sum()), n_cleaned


def _end_sentence(s: pd.Series) -> pd.Series:
    """``s`` with a full stop added where it does not end in ``.``, ``!`` or ``?``."""
    ends = s.str.contains(r"[.!?]$", regex=True)
    return s.where(ends, s + ".")


def _part(value: pd.Series, label: str = "") -> pd.Series:
    """``"{label}{value}. "`` where ``value`` is non-empty, else ``""``."""
    decorated = _end_sentence(label + value) + " "
    return decorated.where(value != "", "")


def cut_at_word(text: str, limit: int) -> str:
    """``text`` shortened to at most ``limit`` characters, at a word boundary if one is near.

    Cuts at the last space in the final 40% of the window; a single long token is cut hard.
    """
    if len(text) <= limit:
        return text
    window = text[:limit]
    space = window.rfind(" ")
    if space >= int(limit * 0.6):
        window = window[:space]
    return window.rstrip(" ,;:-")


def compose_item_texts(
    items: pd.DataFrame,
    max_chars: int = DEFAULT_MAX_CHARS,
    *,
    attribute_columns: Sequence[str] = (),
    id_column: str = "item_id",
) -> tuple[list[str], CompositionReport]:
    """Compose one text per row of ``items`` (see the module docstring for the template).

    Args:
        items: Canonical items table (``item_id``, ``title``, ``description``, ``brand``,
            ``category`` ...). Missing text columns count as all-missing.
        max_chars: Longest text, in characters (default 1,000; at least 32).
        attribute_columns: Extra columns added as ``"{column}: {value}."`` before the
            description (several values joined by ``|`` are shown as ``a, b``).
        id_column: Column whose values identify items in the report.

    Returns:
        ``(texts, report)``: texts in row order; the report counts every fallback and fix.

    Raises:
        DataError: ``items`` is not a DataFrame, lacks ``id_column``, or has none of the text
            columns (nor any of ``attribute_columns``).
        ValueError: ``max_chars`` < 32.
    """
    if not isinstance(items, pd.DataFrame):
        raise DataError(f"items must be a pandas DataFrame, got {type(items).__name__}")
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < MIN_MAX_CHARS:
        raise ValueError(f"max_chars must be an int >= {MIN_MAX_CHARS}, got {max_chars!r}")
    if id_column not in items.columns:
        raise DataError(f"items has no {id_column!r} column (columns: {list(items.columns)}); "
                        "pass the canonical items table or set id_column=")
    attrs = list(attribute_columns)
    absent_attrs = [c for c in attrs if c not in items.columns]
    if absent_attrs:
        raise DataError(f"attribute_columns not in items: {absent_attrs}")
    if not any(c in items.columns for c in TEXT_COLUMNS) and not attrs:
        raise DataError(f"items has none of the text columns {list(TEXT_COLUMNS)} "
                        f"(columns: {list(items.columns)})")

    report = CompositionReport(n_items=len(items))
    if len(items) == 0:
        return [], report
    cap = _PRE_CAP * max_chars
    cols: dict[str, pd.Series] = {}
    for c in (*TEXT_COLUMNS, *attrs):
        raw = items[c] if c in items.columns else pd.Series(pd.NA, index=items.index,
                                                            dtype=object)
        text, n_odd, n_clean = _clean_column(raw, cap)
        cols[c] = text
        report.missing[c] = int((text == "").sum())
        report.non_string[c] = n_odd
        report.cleaned[c] = n_clean

    head = _part(cols["title"]) + _part(cols["brand"], "Brand: ") \
        + _part(cols["category"], "Category: ")
    for c in attrs:
        head = head + _part(cols[c].str.replace(r"\s*\|\s*", ", ", regex=True), f"{c}: ")
    desc = cols["description"]
    budget = max_chars - head.str.len()
    texts = (head + desc).str.strip()
    long = texts.str.len() > max_chars
    report.n_truncated = int(long.sum())
    if report.n_truncated:  # per-row work only on the (few) rows that are too long
        idx = np.flatnonzero(long.to_numpy())
        fixed = []
        for h, d, b in zip(head.iloc[idx], desc.iloc[idx], budget.iloc[idx], strict=True):
            d_cut = cut_at_word(d, int(b)) if b >= MIN_MAX_CHARS else ""
            fixed.append(cut_at_word((h + d_cut).strip(), max_chars))
        texts.iloc[idx] = fixed

    empty = (texts == "").to_numpy()
    report.empty_item_ids = items[id_column].to_numpy()[empty].astype(str).tolist()
    n_nodesc = report.missing["description"]
    if n_nodesc or report.empty_item_ids:
        shown = ", ".join(report.empty_item_ids[:5])
        logger.warning(
            "%d of %d items have no description (their text falls back to title/brand/"
            "category); %d have no text at all%s",
            n_nodesc, len(items), len(report.empty_item_ids), f" (e.g. {shown})" if shown else "",
        )
    return texts.tolist(), report
