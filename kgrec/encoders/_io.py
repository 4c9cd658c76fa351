"""Small file helpers shared by the cache and the attribute encoders: atomic writes, checksums.

Why: a crash (or a killed notebook kernel) in the middle of a write must never leave a file that
looks complete. Every write goes to a temporary file in the same directory, is flushed to disk,
and only then renamed over the final name with :func:`os.replace` (atomic on POSIX and Windows).
Temporary files start with ``TMP_PREFIX`` so readers can skip (and clean) leftovers.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

TMP_PREFIX = ".tmp-"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory + ``os.replace``).

    Raises:
        OSError: the directory is not writable or the disk is full (the target is untouched).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON, atomically (see :func:`atomic_write_bytes`)."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """Serialise arrays to the bytes of an uncompressed ``.npz`` file (no pickled objects)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()
