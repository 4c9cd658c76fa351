"""``EmbeddedGraphStore``: the default store, Parquet files in a folder, no server needed.

Why: a newcomer runs everything with no database; the same frames go in and come out as with
Neo4j. Each label/type is one Parquet file. Safety, because two ``kgrec ingest`` runs may share a
folder and a writer may be killed at any moment:

* every write (read-modify-write of one file) holds a writer lock (``filelock`` on
  ``DIR/.kgrec-store.lock``; the OS releases it when a process dies), so concurrent writers
  never lose each other's rows;
* a file is rewritten through a uniquely named temp file that is fsynced, renamed over the
  old one (``os.replace``) and followed by an fsync of the folder, so a reader sees the previous
  or the new complete file, never a torn one; temp files left by a killed writer are removed by
  the next writer;
* cached frames are keyed by the file's identity (inode, size, mtime), so a frame another
  process replaced is read again.

Upserts are vectorised pandas merges. One folder is one graph (the Neo4j store's ``graph``
namespace); its manifest ``kgrec-store.json`` records the format version and the pseudonym-key
fingerprint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock
import networkx as nx
import pandas as pd

from kgrec.errors import StoreError
from kgrec.graph.atomic import TMP_SUFFIX, write_atomic
from kgrec.graph.frames import empty_edges, empty_nodes, normalize_edges, normalize_nodes
from kgrec.graph.schema import GRAPH_REL_TYPES, REL_SPECS, NodeLabel, RelType

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
LOCK_FILE = ".kgrec-store.lock"
MANIFEST = "kgrec-store.json"


class EmbeddedGraphStore:
    """A graph kept as Parquet files under ``directory`` (created on first write).

    Args:
        directory: the store's folder; also holds the pseudonym key when none is in the
            environment.
        lock_timeout: seconds a write waits for another process's writer lock before it
            raises :class:`~kgrec.errors.StoreError` (default 600).
    """

    def __init__(self, directory: str | Path, *, lock_timeout: float = 600.0) -> None:
        self.directory = Path(directory)
        self.lock_timeout = lock_timeout
        self._cache: dict[str, tuple[tuple[int, int, int], pd.DataFrame]] = {}
        self._lock: filelock.FileLock | None = None

    def __repr__(self) -> str:
        return f"EmbeddedGraphStore({str(self.directory)!r})"

    # -- writes -------------------------------------------------------------------------------
    def upsert_nodes(self, label: NodeLabel, frame: pd.DataFrame) -> int:
        new = normalize_nodes(label, frame)
        with self._writing():
            merged = pd.concat([self.nodes(label), new], ignore_index=True)
            merged = merged.drop_duplicates("id", keep="last")
            self._write(f"nodes/{label.value}", normalize_nodes(label, merged))
        return len(new)

    def upsert_edges(self, rel_type: RelType, frame: pd.DataFrame) -> int:
        new = normalize_edges(rel_type, frame)
        with self._writing():
            self._check_endpoints(new)
            merged = pd.concat([self.edges(rel_type), new], ignore_index=True)
            merged = merged.drop_duplicates(REL_SPECS[rel_type].identity_columns, keep="last")
            self._write(f"edges/{rel_type.value}", normalize_edges(rel_type, merged))
        return len(new)

    def replace_edges_from(self, rel_type: RelType, src_label: NodeLabel, src_ids: list[str],
                           frame: pd.DataFrame) -> int:
        new = normalize_edges(rel_type, frame)
        with self._writing():
            self._check_endpoints(new)
            old = self.edges(rel_type)
            keep = ~((old["src_label"] == src_label.value) & old["src"].isin(src_ids))
            merged = pd.concat([old[keep], new], ignore_index=True)
            self._write(f"edges/{rel_type.value}", normalize_edges(rel_type, merged))
        return len(new)

    def clear(self) -> None:
        """Delete the graph's files and its key fingerprint; nothing else in the folder."""
        with self._writing():
            for label in NodeLabel:
                self._delete(f"nodes/{label.value}")
            for rel in RelType:
                self._delete(f"edges/{rel.value}")
            manifest = self._manifest()
            if manifest.pop("key_fingerprint", None) is not None:
                self._write_manifest(manifest)

    # -- metadata -----------------------------------------------------------------------------
    def key_fingerprint(self) -> str | None:
        """The pseudonym-key fingerprint recorded for this store, or None."""
        value = self._manifest().get("key_fingerprint")
        return None if value is None else str(value)

    def claim_key_fingerprint(self, fingerprint: str) -> str:
        """Record ``fingerprint`` unless one is recorded already; return the recorded one
        (under the writer lock, so two first ingests cannot both claim)."""
        with self._writing():
            manifest = self._manifest()
            if manifest.get("key_fingerprint") is None:
                manifest["key_fingerprint"] = fingerprint
                self._write_manifest(manifest)
            return str(manifest["key_fingerprint"])

    def node_count(self) -> int:
        """Nodes of this graph (any label)."""
        return sum(len(self.nodes(label)) for label in NodeLabel)

    # -- reads --------------------------------------------------------------------------------
    def nodes(self, label: NodeLabel) -> pd.DataFrame:
        frame = self._read(f"nodes/{label.value}")
        return empty_nodes(label) if frame is None else frame

    def edges(self, rel_type: RelType) -> pd.DataFrame:
        frame = self._read(f"edges/{rel_type.value}")
        return empty_edges(rel_type) if frame is None else frame

    def to_networkx(self) -> nx.MultiDiGraph:
        """The whole graph for exploration; nodes are ``(label, id)`` tuples."""
        graph = nx.MultiDiGraph()
        for label in NodeLabel:
            frame = self.nodes(label)
            attrs = frame.drop(columns="id").to_dict("records")
            graph.add_nodes_from(((label.value, i), {"label": label.value, **a})
                                 for i, a in zip(frame["id"], attrs, strict=True))
        for rel in GRAPH_REL_TYPES:
            frame = self.edges(rel)
            props = frame.drop(columns=["src_label", "src", "dst_label", "dst"]).to_dict("records")
            graph.add_edges_from(
                ((sl, s), (dl, d), {"type": rel.value, **p})
                for sl, s, dl, d, p in zip(frame["src_label"], frame["src"], frame["dst_label"],
                                           frame["dst"], props, strict=True))
        return graph

    # -- files --------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.parquet"

    @staticmethod
    def _identity(path: Path) -> tuple[int, int, int] | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _read(self, name: str) -> pd.DataFrame | None:
        path = self._path(name)
        ident = self._identity(path)
        if ident is None:
            self._cache.pop(name, None)
            return None
        cached = self._cache.get(name)
        if cached is not None and cached[0] == ident:
            return cached[1]
        try:
            frame = pd.read_parquet(path)
        except FileNotFoundError:  # replaced between stat and open: read the new one
            return self._read(name)
        except Exception as e:  # noqa: BLE001 - any parquet failure is a corrupt store
            raise StoreError(f"cannot read {path}: {e}. The file is corrupt; re-run the ingest "
                             f"into a fresh store folder") from e
        self._cache[name] = (ident, frame)
        return frame

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the store's writer lock (re-entrant within this object)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._lock is None:
            self._lock = filelock.FileLock(self.directory / LOCK_FILE)
        first = not self._lock.is_locked
        try:
            self._lock.acquire(timeout=self.lock_timeout)
        except filelock.Timeout as e:
            raise StoreError(
                f"another process has been writing to {self.directory} for more than "
                f"{self.lock_timeout:.0f}s (lock {self.directory / LOCK_FILE}); wait for it to "
                f"finish or pass a larger lock_timeout") from e
        try:
            if first:
                self._remove_stale_temp_files()
            yield
        finally:
            self._lock.release()

    def _remove_stale_temp_files(self) -> None:
        """Temp files of a writer that died mid-write (safe: we hold the lock)."""
        for sub in (self.directory, self.directory / "nodes", self.directory / "edges"):
            for stale in sub.glob(f".*{TMP_SUFFIX}"):
                if stale.is_file():
                    logger.info("removing %s left by an interrupted write", stale)
                    stale.unlink(missing_ok=True)

    def _write(self, name: str, frame: pd.DataFrame) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))
        ident = self._identity(path)
        if ident is not None:
            self._cache[name] = (ident, frame)
        if not (self.directory / MANIFEST).exists():
            self._write_manifest({})

    def _manifest(self) -> dict[str, object]:
        path = self.directory / MANIFEST
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise StoreError(f"cannot read {path}: {e}; restore it or use a fresh store "
                             f"folder") from e
        if not isinstance(data, dict):
            raise StoreError(f"{path} is not a kgrec store manifest (a JSON object)")
        return data

    def _write_manifest(self, manifest: dict[str, object]) -> None:
        """Write the manifest atomically (callers hold the writer lock)."""
        path = self.directory / MANIFEST
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda tmp: tmp.write_text(
            json.dumps({**manifest, "format_version": FORMAT_VERSION})))

    def _delete(self, name: str) -> None:
        self._cache.pop(name, None)
        self._path(name).unlink(missing_ok=True)

    def _check_endpoints(self, edges: pd.DataFrame) -> None:
        for side in ("src", "dst"):
            for label_value, ids in edges.groupby(f"{side}_label")[side]:
                known = self.nodes(NodeLabel(label_value))["id"]
                missing = ids[~ids.isin(known)]
                if len(missing):
                    raise StoreError(
                        f"{len(missing)} edge endpoint(s) are not {label_value} nodes in the "
                        f"store, e.g. {list(missing.unique()[:5])}; write the nodes first")
