"""Atomic file writes: a unique temp file beside the target, fsync, rename, fsync the folder.

Why: a reader (or a process that restarts after a crash) must see the old file or the new one,
never a torn one, and two writers must never share a temp name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

TMP_SUFFIX = ".kgrec-tmp"
_UMASK = os.umask(0o022)  # read once at import (os.umask can only be read by setting it)
os.umask(_UMASK)
DEFAULT_MODE = 0o666 & ~_UMASK  # what open() would have given the file


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[Path], object], *,
                 mode: int = DEFAULT_MODE) -> None:
    """Write ``path`` via a unique temp file beside it: fsync, rename, fsync the folder.

    ``mode`` defaults to what a plain ``open`` would give (0o666 less the umask); pass 0o600
    for files only the owner may read.

    ``write`` is called with the temp file's path. A crash leaves the old file (or none) and
    at most a stray ``*.kgrec-tmp`` file, never a torn ``path``.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.close(fd)
        os.chmod(tmp, mode)
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
