"""Keyed pseudonyms for user ids (HMAC-SHA256).

Why: raw user ids (emails, account numbers) must never reach the graph, the logs or model files.
The key comes from ``KGREC_PSEUDONYM_KEY``; without it a random key is created once, stored beside
the store with owner-only permissions and reused (with a warning saying so). Neither the key nor a
raw-to-pseudonym mapping is ever written anywhere else. The same key pseudonymises raw ids passed
to the API later, so callers keep using their own ids.

A store records the key's *fingerprint* (an HMAC of a fixed label under the key, which reveals
nothing about the key) at first ingest; :func:`check_key` refuses another key, which would
otherwise store the same people again as new users.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kgrec.errors import ConfigError, KeyMismatchError

if TYPE_CHECKING:
    from kgrec.graph.store import GraphStore

logger = logging.getLogger(__name__)

KEY_ENV = "KGREC_PSEUDONYM_KEY"
KEY_FILE_NAME = "pseudonym.key"
PREFIX = "u_"
DIGEST_CHARS = 24  # 96 bits: collisions are negligible below billions of users
FINGERPRINT_LABEL = b"kgrec pseudonym key fingerprint v1"

_SMALL = 64  # ids below which hashing each one beats factorising (0.4 ms a call)


class Pseudonymizer:
    """Maps raw user ids to stable keyed pseudonyms ``u_<hex>``.

    Args:
        key: the secret key (at least 16 bytes).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigError(
                f"the pseudonym key must be at least 16 bytes; set {KEY_ENV} to a longer secret")
        self._key = key

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymizer(key=<hidden>)"

    @classmethod
    def from_environment(cls, key_dir: str | Path | None = None) -> Pseudonymizer:
        """Key from ``KGREC_PSEUDONYM_KEY``, else from (or created in) ``key_dir/pseudonym.key``.

        Raises:
            ConfigError: no key in the environment and no ``key_dir`` to keep one in, or the key
                file is readable by other users.
        """
        env = os.environ.get(KEY_ENV)
        if env:
            return cls(env.encode("utf-8"))
        if key_dir is None:
            raise ConfigError(f"no pseudonym key: set {KEY_ENV} or give a directory to keep one in")
        path = Path(key_dir) / KEY_FILE_NAME
        if path.exists():
            if path.stat().st_mode & 0o077:
                raise ConfigError(
                    f"{path} is readable by other users; run `chmod 600 {path}`")
            return cls(bytes.fromhex(path.read_text().strip()))
        path.parent.mkdir(parents=True, exist_ok=True)
        # Two processes may create the first key at once: each writes its own temp file and
        # os.link publishes it only if no key exists yet; the loser reads the winner's key.
        tmp = path.with_name(f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return cls(bytes.fromhex(path.read_text().strip()))
        finally:
            tmp.unlink(missing_ok=True)
        logger.warning(
            "%s is not set: created a random pseudonym key in %s (owner-only). Keep it: user ids "
            "pseudonymised with another key will not match this graph.", KEY_ENV, path)
        return cls(bytes.fromhex(path.read_text().strip()))

    def fingerprint(self) -> str:
        """``HMAC-SHA256(key, fixed label)`` as hex: identifies the key, reveals nothing of it."""
        return hmac.new(self._key, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:32]

    def pseudonymize(self, raw_ids: Iterable[object]) -> np.ndarray:
        """Pseudonyms for ``raw_ids`` (object array of str), hashing each distinct id once."""
        if isinstance(raw_ids, (list, tuple)) and len(raw_ids) <= _SMALL and \
                all(type(r) is str for r in raw_ids):  # a served request: no pandas round trip
            return np.array([self._one(r) for r in raw_ids], dtype=object)
        series = pd.Series(list(raw_ids) if not isinstance(raw_ids, pd.Series) else raw_ids,
                           dtype="string")
        codes, uniques = pd.factorize(series)
        hashed = np.array([self._one(str(u)) for u in uniques], dtype=object)
        out = np.empty(len(series), dtype=object)
        valid = codes >= 0
        out[valid] = hashed[codes[valid]]
        out[~valid] = None
        return out

    def _one(self, raw: str) -> str:
        digest = hmac.new(self._key, raw.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return PREFIX + digest.hexdigest()[:DIGEST_CHARS]


def check_key(store: GraphStore, pseudonymizer: Pseudonymizer, *, record: bool = False) -> None:
    """Refuse a pseudonym key other than the one ``store`` was built with.

    ``record=True`` (ingest) records this key's fingerprint when the store has none yet.

    Raises:
        KeyMismatchError: the store holds another key's fingerprint.
    """
    mine = pseudonymizer.fingerprint()
    theirs = store.claim_key_fingerprint(mine) if record else store.key_fingerprint()
    if theirs is not None and not hmac.compare_digest(theirs, mine):
        raise KeyMismatchError(
            f"{store!r} was built with another pseudonym key (fingerprint {theirs[:8]}..., this "
            f"key {mine[:8]}...): its users would not match and the same people would be stored "
            f"again as new users. Set {KEY_ENV} to the original key, or use a new store "
            f"(another folder or Neo4j graph name)")
