"""Keep personal data out of what kgrec writes: a profile-column guard and a safe rejects file.

Why: user ids are pseudonymised at ingest, but that is defeated if a profile column holds an
e-mail address or a phone number (it would become ``Attribute {id: "email=a@b.com"}``, enter the
model's vocabulary and show up in explanations), or if the rejects file repeats raw rows.

* :func:`guard_profile_columns` refuses user-profile columns that look like direct identifiers:
  an identifying name (email, phone, name, address, ssn, ...), values that look like e-mail
  addresses, phone numbers or long id/account numbers, values that repeat the user id, or values
  that are nearly unique per user. Such a column is reported (never its values) and not stored;
  ``allow`` (``--allow-profile-column COL``) keeps it when the caller knows better.
* :func:`write_rejects` writes the rejects file atomically with owner-only permissions, with
  user ids in rows of the ``users``/``interactions`` tables replaced by their pseudonyms and
  unparsed lines of those tables withheld (source and row number still find them).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from kgrec.graph.atomic import write_atomic
from kgrec.graph.pseudonym import Pseudonymizer
from kgrec.graph.tables import INTERACTION_COLUMNS

logger = logging.getLogger(__name__)

# A column whose name has one of these words (split at separators and camelCase) ...
IDENTIFYING_WORDS: frozenset[str] = frozenset({
    "email", "mail", "phone", "telephone", "fax", "surname", "address", "street", "zip",
    "zipcode", "postcode", "ssn", "passport", "iban", "dob", "birthday", "birthdate",
})
# ... or is one of these as a whole (separators removed), names people or their accounts.
IDENTIFYING_NAMES: frozenset[str] = frozenset({
    "name", "firstname", "lastname", "fullname", "givenname", "username", "displayname",
    "login", "mobile", "cell", "tel", "emailaddress", "phonenumber", "mobilenumber",
    "streetaddress", "postalcode", "socialsecuritynumber", "nationalid", "taxid", "creditcard",
    "cardnumber", "ip", "ipaddress", "dateofbirth",
})
MIN_ROWS_FOR_UNIQUENESS = 20  # below this, "nearly unique" says nothing
UNIQUE_SHARE = 0.9
PATTERN_SHARE = 0.5
USER_TABLES: tuple[str, ...] = ("users", "interactions")
WITHHELD = "(withheld: an unparsed line of a table with user ids; see source and row)"

_EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s]+"
_PHONE = r"\+?[\d\s().\-/]{7,24}"
_LONG_ID = r"(?:\d[\d\-]{8,}\d|[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?" \
           r"[0-9a-fA-F]{12})"


def identifying_name(column: str) -> bool:
    """Whether the column's name says it holds contact or identity data."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", column).lower()
    tokens = [t for t in re.split(r"[^a-z0-9]+", spaced) if t]
    return bool(set(tokens) & IDENTIFYING_WORDS) or "".join(tokens) in IDENTIFYING_NAMES


def identifier_reason(column: str, values: pd.Series, user_ids: pd.Series | None = None,
                      ) -> str | None:
    """Why ``column`` looks like a direct identifier, or None. Never quotes a value."""
    if identifying_name(column):
        return "its name says it holds personal contact or identity data"
    # object dtype: values may still hold undecodable bytes (surrogates) before validation
    s = values.astype(object).where(values.notna()).str.strip()
    present = s.notna() & s.ne("")
    s = s[present].astype(object)
    n = len(s)
    if n == 0:
        return None
    shares = {
        "e-mail addresses": s.str.fullmatch(_EMAIL).astype(bool).mean(),
        "phone numbers": (s.str.fullmatch(_PHONE).astype(bool)
                          & s.str.count(r"\d").ge(7)).mean(),
        "ids or account numbers": s.str.fullmatch(_LONG_ID).astype(bool).mean(),
    }
    for what, share in shares.items():
        if share >= PATTERN_SHARE:
            return f"{share:.0%} of its values look like {what}"
    if user_ids is not None:
        ids = user_ids.astype(object).where(user_ids.notna()).str.strip()[present]
        same = (s == ids).astype(bool).mean()
        if same >= PATTERN_SHARE:
            return f"{same:.0%} of its values repeat the user id"
    distinct = s.nunique()
    if n >= MIN_ROWS_FOR_UNIQUENESS and distinct / n >= UNIQUE_SHARE:
        return (f"it is nearly unique per user ({distinct:,} distinct values in {n:,} rows), "
                f"so it identifies users like an id")
    return None


def guard_profile_columns(users: pd.DataFrame, *, allow: Iterable[str] = (),
                          ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Drop profile columns that look like direct identifiers, unless named in ``allow``.

    Returns:
        ``(users without those columns, {column: reason})``; the reasons say how to keep one.
    """
    allowed = set(allow)
    ids = users["user_id"] if "user_id" in users.columns else None
    dropped: dict[str, str] = {}
    for col in users.columns:
        if col == "user_id" or col in allowed:
            continue
        reason = identifier_reason(str(col), users[col], ids)
        if reason is not None:
            dropped[str(col)] = (f"{reason}; not stored. If it is not personal data, keep it "
                                 f"with allow_profile_columns=[{str(col)!r}] "
                                 f"(kgrec ingest --allow-profile-column {col})")
    if dropped:
        logger.warning("profile column(s) not stored because they look like direct "
                       "identifiers: %s", ", ".join(dropped))
    return users.drop(columns=list(dropped)), dropped


def _safe_record(raw: str, table: str, field: str) -> dict[str, object] | None:
    """The raw row without identifying fields, or None when it must be withheld whole."""
    if field == "(row)":
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    if table == "interactions":  # other columns are not read by kgrec; they may be anything
        record = {k: v for k, v in record.items() if k in INTERACTION_COLUMNS}
    return {k: v for k, v in record.items()
            if k == "user_id" or not identifying_name(str(k))}


def write_rejects(rejects: pd.DataFrame, path: str | Path,
                  pseudonymizer: Pseudonymizer | None = None) -> Path:
    """Write ``rejects`` as UTF-8 CSV, atomically and readable by the owner only.

    In rows of the ``users`` and ``interactions`` tables the ``user_id`` inside ``raw`` is
    replaced by its pseudonym (``"(withheld)"`` without a pseudonymizer), fields with an
    identifying name are removed, and lines that could not be parsed are withheld.
    """
    p = Path(path)
    out = rejects.copy()
    personal = out["table"].isin(USER_TABLES).to_numpy()
    if personal.any():
        sub = out.loc[personal]
        records = [_safe_record(str(r), str(t), str(f))
                   for r, t, f in zip(sub["raw"], sub["table"], sub["field"], strict=True)]
        uids = [r.get("user_id") if r is not None else None for r in records]
        raw_ids = [u.strip() if isinstance(u, str) and u.strip() else None for u in uids]
        pseudo = (pseudonymizer.pseudonymize(raw_ids) if pseudonymizer is not None
                  else ["(withheld)" if u is not None else None for u in raw_ids])
        texts = []
        for rec, uid, new in zip(records, raw_ids, pseudo, strict=True):
            if rec is None:
                texts.append(WITHHELD)
                continue
            if uid is not None:
                rec["user_id"] = new
            texts.append(json.dumps(rec, ensure_ascii=False)
                         .encode("utf-8", "backslashreplace").decode("utf-8"))
        out["raw"] = out["raw"].astype(object)
        out.loc[personal, "raw"] = pd.Series(texts, index=sub.index, dtype=object)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(p, lambda tmp: out.to_csv(tmp, index=False, encoding="utf-8",
                                                 errors="backslashreplace"), mode=0o600)
    return p


__all__ = ["IDENTIFYING_NAMES", "IDENTIFYING_WORDS", "guard_profile_columns", "identifier_reason",
           "identifying_name", "write_rejects"]
