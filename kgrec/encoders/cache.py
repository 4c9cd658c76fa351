"""On-disk embedding cache: re-runs encode only new or changed texts.

Layout (one folder per encoder identity, so a new model, pooling or ``max_length`` never reads
another encoder's vectors)::

    <directory>/
      <identity key>/             16 hex digits of sha256(canonical JSON of encoder.identity())
        identity.json             the identity itself, for humans and as a collision check
        shard-<time>-<rand>.npz   one file per write: keys (S64: sha256 hex of the UTF-8 text),
                                  vectors (float32, n x dim), checksum (S64: sha256 of both)
        .tmp-*                    leftovers of an interrupted write: ignored

Why shards: a write appends one new file instead of rewriting everything, and each shard is
written to a temp file and renamed into place (:func:`os.replace`), so a crash leaves either the
whole shard or none of it. When a folder holds more than ``max_shards`` shards, they are merged
into one (the merged shard is written before the old ones are deleted, so a crash in between
only leaves harmless duplicates).

Trust: every shard is loaded with ``allow_pickle=False`` and its checksum, dtypes and shapes are
verified. A corrupt or truncated shard is logged as a warning and deleted; its texts count as
misses, are re-encoded and written again. Several processes may read and append at the same
time (shard names are unique); keys are text hashes, so the cache never stores the texts.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kgrec.encoders._io import TMP_PREFIX, atomic_write_bytes, atomic_write_json, npz_bytes
from kgrec.encoders.text import TextEncoder, check_texts, dedupe, identity_key
from kgrec.errors import EncoderError

logger = logging.getLogger(__name__)

SHARD_GLOB = "shard-*.npz"
_KEY_DTYPE = np.dtype("S64")


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """sha256 hex digest of each text's UTF-8 bytes, as an ``S64`` array.

    Lone surrogates (invalid in UTF-8) are hashed via ``surrogatepass`` so no text can fail.
    """
    import hashlib

    return np.array(
        [hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest().encode("ascii")
         for t in texts],
        dtype=_KEY_DTYPE,
    ).reshape(len(texts))


def _checksum(keys: np.ndarray, vectors: np.ndarray) -> bytes:
    import hashlib

    h = hashlib.sha256()
    h.update(np.ascontiguousarray(keys).tobytes())
    h.update(np.ascontiguousarray(vectors).tobytes())
    return h.hexdigest().encode("ascii")


class _CorruptShard(Exception):
    """Internal: a shard failed verification (never escapes this module)."""


@dataclass
class _Table:
    """Everything cached for one identity, in memory."""

    index: dict[bytes, int]
    vectors: list[np.ndarray]  # one row each, in index order
    shards: list[Path]


class EmbeddingCache:
    """Text vectors on disk, keyed by encoder identity and the sha256 of each text.

    The constructor only stores arguments; the folder is created on the first write.

    Args:
        directory: Cache root (created on first write).
        max_shards: Shards per identity before they are merged into one, default 64.
    """

    def __init__(self, directory: str | os.PathLike[str], max_shards: int = 64) -> None:
        self.directory = Path(directory)
        self.max_shards = max_shards
        self._tables: dict[str, _Table] = {}

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r})"

    # -- paths and identity ----------------------------------------------------------------
    def folder(self, identity: dict[str, Any]) -> Path:
        """The folder holding vectors of the encoder with this identity."""
        return self.directory / identity_key(identity)

    def _table(self, identity: dict[str, Any]) -> _Table:
        key = identity_key(identity)
        if key not in self._tables:
            self._tables[key] = self._read_folder(self.directory / key, identity)
        return self._tables[key]

    def _read_folder(self, folder: Path, identity: dict[str, Any]) -> _Table:
        table = _Table(index={}, vectors=[], shards=[])
        if not folder.is_dir():
            return table
        if not self._identity_matches(folder, identity):
            return table
        dim = int(identity.get("dim") or 0)
        for shard in sorted(folder.glob(SHARD_GLOB)):
            try:
                keys, vectors = _read_shard(shard, dim)
            except FileNotFoundError:
                continue  # merged and deleted by another process meanwhile
            except _CorruptShard as e:
                logger.warning("Embedding cache shard %s is corrupt (%s); deleting it, its "
                               "texts will be re-encoded", shard, e)
                shard.unlink(missing_ok=True)
                continue
            table.shards.append(shard)
            for k, v in zip(keys.tolist(), vectors, strict=True):
                if k not in table.index:
                    table.index[k] = len(table.vectors)
                    table.vectors.append(v)
        return table

    def _identity_matches(self, folder: Path, identity: dict[str, Any]) -> bool:
        path = folder / "identity.json"
        if not path.exists() and not any(folder.glob(SHARD_GLOB)):
            return True  # nothing written yet
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            logger.warning("Embedding cache %s has no readable identity.json (%s); discarding "
                           "its shards", folder, e)
            stored = None
        expected = json.loads(json.dumps(identity, default=str))
        if stored != expected:
            if stored is not None:
                logger.warning("Embedding cache %s belongs to another encoder; discarding its "
                               "shards", folder)
            for shard in folder.glob(SHARD_GLOB):
                shard.unlink(missing_ok=True)
            return False
        return True

    # -- public API --------------------------------------------------------------------------
    def lookup(
        self, identity: dict[str, Any], texts: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cached vectors of ``texts``.

        Returns:
            ``(vectors, found)``: ``float32`` ``(len(texts), dim)`` (zero rows for misses) and
            a boolean mask of the texts that were cached.

        Raises:
            EncoderError: a text is not a ``str``, or ``identity`` has no positive ``dim``.
        """
        items = check_texts(texts)
        dim = _dim_of(identity)
        table = self._table(identity)
        keys = text_keys(items).tolist()
        rows = np.fromiter((table.index.get(k, -1) for k in keys), dtype=np.int64,
                           count=len(keys))
        found = rows >= 0
        out = np.zeros((len(items), dim), dtype=np.float32)
        if found.any():
            out[found] = np.stack([table.vectors[r] for r in rows[found]])
        return out, found

    def store(self, identity: dict[str, Any], texts: Sequence[str], vectors: np.ndarray) -> None:
        """Add vectors of ``texts`` (one new shard file, written atomically).

        Raises:
            EncoderError: shapes disagree, vectors are not finite, a text is not a ``str``, or
                the folder cannot be written (the message names it).
        """
        items = check_texts(texts)
        dim = _dim_of(identity)
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.shape != (len(items), dim):
            raise EncoderError(
                f"store() got vectors of shape {vecs.shape} for {len(items)} texts; expected "
                f"({len(items)}, {dim}) from the encoder identity")
        if not np.isfinite(vecs).all():
            raise EncoderError("store() got non-finite vectors (NaN/inf); refusing to cache them")
        if not items:
            return
        unique, inverse = dedupe(items)
        first = np.zeros(len(unique), dtype=np.int64)
        first[inverse[::-1]] = np.arange(len(items))[::-1]
        keys = text_keys(unique)
        vecs = np.ascontiguousarray(vecs[first])
        table = self._table(identity)
        folder = self.folder(identity)
        name = f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        try:
            if not (folder / "identity.json").is_file():
                atomic_write_json(folder / "identity.json",
                                  json.loads(json.dumps(identity, default=str)))
            payload = npz_bytes(keys=keys, vectors=vecs, checksum=np.array(
                [_checksum(keys, vecs)], dtype=_KEY_DTYPE))
            atomic_write_bytes(folder / name, payload)
        except OSError as e:
            raise EncoderError(f"Cannot write the embedding cache in {str(folder)!r}: {e}. "
                               "Check permissions and free disk space.") from e
        table.shards.append(folder / name)
        for k, v in zip(keys.tolist(), vecs, strict=True):
            if k not in table.index:
                table.index[k] = len(table.vectors)
                table.vectors.append(v)
        if len(table.shards) > self.max_shards:
            self.compact(identity)

    def compact(self, identity: dict[str, Any]) -> None:
        """Merge this identity's shards into one and delete leftover temp files.

        Raises:
            EncoderError: the folder cannot be written.
        """
        table = self._table(identity)
        folder = self.folder(identity)
        if table.vectors:
            keys = np.array(list(table.index), dtype=_KEY_DTYPE)
            vecs = np.stack(table.vectors).astype(np.float32, copy=False)
            name = folder / f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
            try:
                atomic_write_bytes(name, npz_bytes(keys=keys, vectors=vecs, checksum=np.array(
                    [_checksum(keys, vecs)], dtype=_KEY_DTYPE)))
            except OSError as e:
                raise EncoderError(f"Cannot write the embedding cache in {str(folder)!r}: {e}. "
                                   "Check permissions and free disk space.") from e
            for old in table.shards:
                old.unlink(missing_ok=True)
            table.shards = [name]
        for tmp in folder.glob(f"{TMP_PREFIX}*"):
            tmp.unlink(missing_ok=True)

    def count(self, identity: dict[str, Any]) -> int:
        """Number of distinct texts cached for this identity."""
        return len(self._table(identity).index)

    def shard_paths(self, identity: dict[str, Any]) -> list[Path]:
        """Shard files currently in use for this identity."""
        return list(self._table(identity).shards)

    def forget(self) -> None:
        """Drop the in-memory copy; the next lookup re-reads (and re-verifies) the disk."""
        self._tables.clear()


def _dim_of(identity: dict[str, Any]) -> int:
    dim = identity.get("dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise EncoderError(f"Encoder identity needs a positive int 'dim', got {dim!r}")
    return dim


def _read_shard(path: Path, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Load and verify one shard; raise ``_CorruptShard`` on any inconsistency."""
    data = path.read_bytes()  # FileNotFoundError propagates: deleted by another process
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            keys, vectors, checksum = z["keys"], z["vectors"], z["checksum"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise _CorruptShard(f"unreadable: {e}") from e
    if keys.dtype != _KEY_DTYPE or keys.ndim != 1:
        raise _CorruptShard(f"keys have dtype {keys.dtype} and shape {keys.shape}")
    if vectors.dtype != np.float32 or vectors.shape != (len(keys), dim):
        raise _CorruptShard(f"vectors have dtype {vectors.dtype} and shape {vectors.shape}, "
                            f"expected float32 ({len(keys)}, {dim})")
    if checksum.shape != (1,) or checksum[0] != _checksum(keys, vectors):
        raise _CorruptShard("checksum mismatch")
    return keys, vectors


class CachedTextEncoder:
    """A :class:`TextEncoder` that answers from an :class:`EmbeddingCache` first.

    Only texts missing from the cache reach the wrapped encoder (so a fully cached run never
    loads the model); their vectors are then stored. ``last_hits`` / ``last_misses`` count the
    distinct texts of the latest :meth:`encode`.

    Args:
        encoder: Any :class:`TextEncoder`.
        cache: Where vectors are kept.
    """

    def __init__(self, encoder: TextEncoder, cache: EmbeddingCache) -> None:
        self.encoder = encoder
        self.cache = cache
        self.last_hits = 0
        self.last_misses = 0

    def __repr__(self) -> str:
        return f"CachedTextEncoder({self.encoder!r}, {self.cache!r})"

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def name(self) -> str:
        return self.encoder.name

    def identity(self) -> dict[str, Any]:
        return self.encoder.identity()

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """Encode ``texts``, reusing cached vectors and caching new ones.

        Raises:
            EncoderError: a text is not a ``str``, encoding fails, or the cache cannot be
                written.
            ModelNotFoundError: the wrapped encoder's model is missing.
        """
        items = check_texts(texts, batch_size)
        identity = self.encoder.identity()
        unique, inverse = dedupe(items)
        vectors, found = self.cache.lookup(identity, unique)
        missing = np.flatnonzero(~found)
        self.last_hits, self.last_misses = int(found.sum()), len(missing)
        if len(missing):
            new_texts = [unique[i] for i in missing]
            new = self.encoder.encode(new_texts, batch_size=batch_size,
                                      show_progress=show_progress)
            vectors[missing] = new
            self.cache.store(identity, new_texts, new)
        logger.debug("Embedding cache: %d hits, %d misses", self.last_hits, self.last_misses)
        return vectors[inverse]
