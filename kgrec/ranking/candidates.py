"""Top-K candidates in bounded memory: dot-product retrieval, then calibrated CTR re-ranking.

Why two stages: the pairwise CTR head scores a pair best but cannot be searched, while the
head's retrieval tower is a plain dot product (``ColdStartModel.retrieval_vectors``) and so ranks
every item for a block of users with one ``torch.matmul`` + ``torch.topk``. Each user block keeps
its ``N = max(k, rerank_n)`` best items by tower score; the full head (calibrated click
probability) re-orders those ``N`` and the best ``k`` are kept. Memory is bounded by
``user_chunk x n_items`` floats for the score block plus ``user_chunk x N`` re-rank pairs,
whatever the number of users.

Every user row is ranked independently, so a batch gives the same answer as one user at a time.
Items a user has interacted with (any event) can be excluded (``SeenIndex``).

``write_candidates`` streams the result to Parquet (``user_id, item_id, rank, score,
model_version, created_at``) and, optionally, writes it back to a graph store as
``(:User)-[:CANDIDATE {rank, score, model, createdAt}]->(:Item)`` with one
``replace_edges_from`` (one transaction in Neo4j) per user chunk, so a re-run replaces the
previous run's candidates of those users.

All-or-nothing where it matters: each user's set is swapped in one transaction (Neo4j) or one
atomic file rewrite (embedded), so a reader sees that user's previous complete set or the new
one, each tagged with its run (``model`` + ``createdAt``); a fault between chunks leaves some users
on the previous run, and re-running the same command brings every user to the new one. The
Parquet file is written to a private temporary file beside it and renamed into place only when
the run completes; a failed run removes its temporary file and leaves any previous file whole.
"""

from __future__ import annotations

import logging
import os
import secrets
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from kgrec.graph.schema import NodeLabel, RelType
from kgrec.ranking.retrieval import (
    APPROXIMATE_MIN_ITEMS,
    ApproximateIndex,
    check_retrieval,
    exact_search,
)

if TYPE_CHECKING:
    from kgrec.coldstart import ColdStartModel, NodeEmbeddings
    from kgrec.graph.store import GraphStore

logger = logging.getLogger(__name__)

CANDIDATE_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "rank", "score", "model_version",
                                      "created_at")


@dataclass
class SeenIndex:
    """Items each user has interacted with, CSR-style over embedding rows.

    ``items[indptr[u]:indptr[u + 1]]`` are the item rows seen by user row ``u``.
    """

    indptr: np.ndarray
    items: np.ndarray

    @classmethod
    def from_pairs(cls, user_rows: np.ndarray, item_rows: np.ndarray, n_users: int) -> SeenIndex:
        """Build from parallel arrays of (user row, item row) pairs (duplicates are fine)."""
        user_rows = np.asarray(user_rows, dtype=np.int64)
        order = np.argsort(user_rows, kind="stable")
        counts = np.bincount(user_rows, minlength=n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr=indptr, items=np.asarray(item_rows, dtype=np.int64)[order])

    def gather(self, user_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in ``user_rows``, seen item row) for every seen pair of those users."""
        start, stop = self.indptr[user_rows], self.indptr[user_rows + 1]
        counts = stop - start
        pos = np.repeat(np.arange(len(user_rows)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return pos, self.items[np.repeat(start, counts) + offsets]


@dataclass
class RankedBlock:
    """One user block's result: item rows (``-1`` = no more candidates) and scores."""

    user_rows: np.ndarray
    item_rows: np.ndarray   # (n_users, k) int64 rows of the embeddings, -1 where padded
    scores: np.ndarray      # (n_users, k) float64 calibrated probabilities, NaN where padded


def retrieve(user_vecs: torch.Tensor, item_vecs: torch.Tensor, n: int,
             mask_rows: np.ndarray | None = None, mask_cols: np.ndarray | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``n`` items per user by ``torch.topk``; masked pairs get ``-inf`` (never chosen first).

    The reference the exact search (:func:`kgrec.ranking.retrieval.exact_search`) is tested
    against. Shapes: ``user_vecs`` ``(B, d)``, ``item_vecs`` ``(I, d)`` -> values, indices
    ``(B, n)``.
    """
    scores = torch.matmul(user_vecs, item_vecs.T)
    if mask_rows is not None and mask_cols is not None and len(mask_rows):
        scores[torch.from_numpy(mask_rows), torch.from_numpy(mask_cols)] = float("-inf")
    return torch.topk(scores, n, dim=1, sorted=True)


def rank_block(model: ColdStartModel, emb: NodeEmbeddings, user_vecs: torch.Tensor,
               item_vecs: torch.Tensor, user_rows: np.ndarray, item_rows: np.ndarray, k: int,
               rerank_n: int | None, seen: SeenIndex | None = None, *,
               index: ApproximateIndex | None = None, threads: int | None = None,
               scratch: torch.Tensor | None = None) -> RankedBlock:
    """Rank ``item_rows`` for ``user_rows`` (rows of ``emb``): retrieve ``N``, re-rank, keep ``k``.

    Args:
        model: The fitted model (its head re-ranks).
        emb: Embeddings whose rows ``user_rows``/``item_rows`` index.
        user_vecs, item_vecs: ``model.retrieval_vectors(emb)`` as float32 tensors (all rows).
        user_rows, item_rows: The users of this block and the candidate items.
        k: Items kept per user.
        rerank_n: Items retrieved per user before re-ranking; ``None`` re-ranks all candidates
            (exact CTR ranking).
        seen: Items to exclude per user row, or ``None``.
        index: An approximate index over all rows of ``item_vecs``; ``None`` searches exactly.
        threads: torch and FAISS threads of the retrieval (None: torch's current count).
        scratch: Reused score buffer of the exact search (see ``exact_search``'s ``out``).
    """
    n_items = len(item_rows)
    k_eff = min(k, n_items)
    n = n_items if rerank_n is None else min(n_items, max(k, rerank_n))
    b = len(user_rows)
    if b == 0 or k_eff == 0:
        return RankedBlock(user_rows, np.full((b, k_eff), -1, np.int64),
                           np.full((b, k_eff), np.nan))
    full = n_items == len(item_vecs) and _is_arange(item_rows)
    pos = seen_items = np.empty(0, dtype=np.int64)
    mask_c = None
    if seen is not None:
        pos, seen_items = seen.gather(user_rows)
        col_of = np.full(len(emb.item_ids), -1, dtype=np.int64)
        col_of[item_rows] = np.arange(n_items)
        cols = col_of[seen_items]
        keep = cols >= 0
        pos, seen_items, mask_c = pos[keep], seen_items[keep], cols[keep]
    uvec = user_vecs[torch.from_numpy(user_rows)]
    if index is None:
        ivec = item_vecs if full else item_vecs[torch.from_numpy(item_rows)]
        _, found = exact_search(uvec, ivec, n, pos, mask_c, threads=threads, out=scratch)
        cand = item_rows[found]                                    # (b, n) item rows
    else:
        _, cand = index.search(uvec.numpy(), n, subset=None if full else item_rows,
                               exclude=(pos, seen_items))
    valid = found >= 0 if index is None else cand >= 0
    cand = np.where(valid, cand, item_rows[0])
    proba = model.predict_proba_lists(emb, user_rows, cand)
    proba = np.where(valid, proba, -np.inf)
    order = np.argsort(-proba, axis=1, kind="stable")[:, :k_eff]
    top_items = np.take_along_axis(cand, order, 1)
    top_scores = np.take_along_axis(proba, order, 1)
    pad = ~np.isfinite(top_scores)
    top_items[pad] = -1
    top_scores[pad] = np.nan
    return RankedBlock(user_rows, top_items.astype(np.int64), top_scores.astype(np.float64))


def _is_arange(rows: np.ndarray) -> bool:
    return bool(len(rows) == 0 or (rows[0] == 0 and np.all(np.diff(rows) == 1)))


_INDEXES: dict[tuple[int, int], tuple[Any, Any, ApproximateIndex]] = {}


def approximate_index(model: ColdStartModel, emb: NodeEmbeddings, user_vecs: np.ndarray,
                      item_vecs: np.ndarray, n: int, threads: int | None) -> ApproximateIndex:
    """The IVF index of ``emb``'s items under ``model``, built once and kept while both live.

    Why a cache: ``recommend`` calls :func:`iter_ranked` once per request, and building (k-means
    + calibration) costs far more than one search. Keyed by the identity of the model and of
    ``emb.item`` (``with_users`` keeps it, so folded-in users reuse the index).
    """
    key = (id(model), id(emb.item))
    hit = _INDEXES.get(key)
    if hit is not None and hit[0]() is model and hit[1]() is emb.item \
            and hit[2].n_items == len(item_vecs):
        return hit[2]
    index = ApproximateIndex(item_vecs, user_vecs, calibrate_n=n, threads=threads)
    _INDEXES[key] = (weakref.ref(model), weakref.ref(emb.item), index)
    weakref.finalize(emb.item, _INDEXES.pop, key, None)
    return index


_VECTORS: dict[tuple[int, int, int], tuple[Any, Any, Any, tuple[int, ...], torch.Tensor,
                                            torch.Tensor]] = {}


def retrieval_tensors(model: ColdStartModel, emb: NodeEmbeddings
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.retrieval_vectors(emb)`` as float32 tensors, computed once per model head and
    embeddings and kept while they live.

    Why: a ``recommend`` request for one user ran both towers over every user and item of the
    graph (about half its time on Amazon); the served embeddings do not change between
    requests. Keyed by the identity of the head, ``emb.user`` and ``emb.item`` (as
    :func:`approximate_index`) and checked against the head's parameter versions (torch counts
    in-place updates, so a head trained further is recomputed); embeddings made per call (new
    SKUs, new users) are computed as before and dropped with them.
    """
    key = (id(model.head_), id(emb.user), id(emb.item))
    versions = tuple(p._version for p in model.head_.parameters())
    hit = _VECTORS.get(key)
    if hit is not None and hit[0]() is model.head_ and hit[1]() is emb.user \
            and hit[2]() is emb.item and hit[3] == versions:
        return hit[4], hit[5]
    uv, iv = model.retrieval_vectors(emb)
    user_vecs = torch.from_numpy(np.ascontiguousarray(uv, dtype=np.float32))
    item_vecs = torch.from_numpy(np.ascontiguousarray(iv, dtype=np.float32))
    _VECTORS[key] = (weakref.ref(model.head_), weakref.ref(emb.user), weakref.ref(emb.item),
                     versions, user_vecs, item_vecs)
    for t in (emb.user, emb.item):
        weakref.finalize(t, _VECTORS.pop, key, None)
    return user_vecs, item_vecs


def iter_ranked(model: ColdStartModel, emb: NodeEmbeddings, user_rows: np.ndarray,
                item_rows: np.ndarray, *, k: int, rerank_n: int | None,
                seen: SeenIndex | None = None, user_chunk: int = 1024,
                retrieval: str = "exact", show_progress: bool = False) -> Iterator[RankedBlock]:
    """:func:`rank_block` over ``user_rows`` in chunks of ``user_chunk`` users.

    ``retrieval``: ``"exact"`` (default), ``"approximate"`` (the IVF index of
    :mod:`kgrec.ranking.retrieval`, built once per model and embeddings) or ``"auto"``
    (approximate from ``APPROXIMATE_MIN_ITEMS`` catalogue items on). An index that needs more
    than half its cells for its calibrated recall is not used (exact search, with a warning).
    Retrieval runs on the model's ``num_threads`` (torch's current count when None).
    """
    if user_chunk < 1:
        raise ValueError(f"user_chunk must be >= 1, got {user_chunk}")
    check_retrieval(retrieval)
    user_vecs, item_vecs = retrieval_tensors(model, emb)
    threads = getattr(model, "num_threads", None)
    index = None
    if retrieval == "approximate" or (retrieval == "auto"
                                      and len(item_rows) >= APPROXIMATE_MIN_ITEMS):
        n = len(item_rows) if rerank_n is None else max(k, rerank_n)
        index = approximate_index(model, emb, user_vecs.numpy(), item_vecs.numpy(),
                                  min(n, len(item_vecs)), threads)
        if not index.pays:
            logger.warning("%r needs %d of %d cells for its recall: searching exactly", index,
                           index.nprobe, index.nlist)
            index = None
    starts = range(0, len(user_rows), user_chunk)
    if show_progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="candidates", unit="chunk")  # type: ignore[assignment]
    scratch = None if index is not None or not len(user_rows) \
        else torch.empty(min(user_chunk, len(user_rows)) * len(item_rows))
    with torch.no_grad():
        for s in starts:
            yield rank_block(model, emb, user_vecs, item_vecs, user_rows[s:s + user_chunk],
                             item_rows, k, rerank_n, seen, index=index, threads=threads,
                             scratch=scratch)


def block_frame(block: RankedBlock, user_ids: np.ndarray, item_ids: np.ndarray
                ) -> pd.DataFrame:
    """Long ``user_id, item_id, rank, score`` rows of a block (padding dropped; rank from 1).

    ``user_ids`` are the ids to write for ``block.user_rows`` (same order); ``item_ids`` map
    item rows to ids.
    """
    b, k = block.item_rows.shape
    valid = block.item_rows.reshape(-1) >= 0
    frame = pd.DataFrame({
        "user_id": np.repeat(np.asarray(user_ids, dtype=object), k)[valid],
        "item_id": np.asarray(item_ids, dtype=object)[block.item_rows.reshape(-1)[valid]],
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), b)[valid],
        "score": block.scores.reshape(-1)[valid],
    })
    return frame.astype({"user_id": "string", "item_id": "string"})


@dataclass
class CandidateRun:
    """What :func:`write_candidates` wrote."""

    rows: int
    users: int
    parquet: Path | None
    store_edges: int
    explanations: Path | None
    model_version: str
    created_at: str
    seconds: float

    def summary(self) -> str:
        parts = [f"{self.rows:,} candidates for {self.users:,} users "
                 f"(model {self.model_version}) in {self.seconds:.1f}s"]
        if self.parquet is not None:
            parts.append(f"Parquet: {self.parquet}")
        if self.store_edges:
            parts.append(f"{self.store_edges:,} CANDIDATE relationships written")
        if self.explanations is not None:
            parts.append(f"explanations: {self.explanations}")
        return "; ".join(parts)


def now_iso() -> str:
    """UTC timestamp in ISO-8601 with seconds (the ``createdAt`` of a run)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def candidate_edges(frame: pd.DataFrame, model_version: str, created_at: str) -> pd.DataFrame:
    """CANDIDATE edge frame (``src_label, src, dst_label, dst, rank, score, model, createdAt``)."""
    return pd.DataFrame({
        "src_label": NodeLabel.USER.value, "src": frame["user_id"].to_numpy(),
        "dst_label": NodeLabel.ITEM.value, "dst": frame["item_id"].to_numpy(),
        "rank": frame["rank"].to_numpy(), "score": frame["score"].to_numpy(),
        "model": model_version, "createdAt": created_at,
    })


class ParquetSink:
    """Streams candidate frames into one Parquet file that appears only on :meth:`close`.

    Where the OS allows (Linux ``O_TMPFILE``), the rows go to an *unnamed* file in the target's
    folder that is linked into place on ``close``: a run that raises, or a process that is
    killed, leaves nothing behind. Elsewhere a private temporary file (pid + random suffix) is
    used and removed by :meth:`abort` or when the sink is dropped. Either way a failed run leaves
    the previous file at ``path`` whole.
    """

    def __init__(self, path: str | Path) -> None:
        import pyarrow as pa

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(
            f".{self.path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        self.schema = pa.schema([("user_id", pa.string()), ("item_id", pa.string()),
                                 ("rank", pa.int32()), ("score", pa.float64()),
                                 ("model_version", pa.string()),
                                 ("created_at", pa.timestamp("us", tz="UTC"))])
        self._writer: Any = None
        self._file: Any = None
        self._handles: list[Any] = []  # writer and file, closed by the finalizer of a failed run
        self._cleanup = weakref.finalize(self, _discard, self._tmp, self._handles)

    def _open(self) -> Any:
        import pyarrow.parquet as pq

        flag = getattr(os, "O_TMPFILE", 0)
        if flag:
            try:
                fd = os.open(self.path.parent, flag | os.O_WRONLY, 0o644)
                self._file = os.fdopen(fd, "wb")
                self._handles.append(pq.ParquetWriter(self._file, self.schema))
                self._handles.append(self._file)
                return self._handles[0]
            except OSError:  # the filesystem has no unnamed files: use a named one
                self._file = None
        self._handles.append(pq.ParquetWriter(self._tmp, self.schema))
        return self._handles[0]

    def write(self, frame: pd.DataFrame, model_version: str, created_at: str) -> None:
        import pyarrow as pa

        if self._writer is None:
            self._writer = self._open()
        n = len(frame)
        ts = pd.Timestamp(created_at)
        table = pa.table({
            "user_id": pa.array(frame["user_id"].astype(object), pa.string()),
            "item_id": pa.array(frame["item_id"].astype(object), pa.string()),
            "rank": pa.array(frame["rank"].to_numpy(np.int32), pa.int32()),
            "score": pa.array(frame["score"].to_numpy(np.float64), pa.float64()),
            "model_version": pa.array([model_version] * n, pa.string()),
            "created_at": pa.array([ts] * n, pa.timestamp("us", tz="UTC")),
        }, schema=self.schema)
        self._writer.write_table(table)

    def close(self) -> Path:
        if self._writer is None:
            self._writer = self._open()
        self._writer.close()
        if self._file is not None:  # give the unnamed file its (temporary) name
            self._file.flush()
            os.fsync(self._file.fileno())
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:  # linkat(AT_SYMLINK_FOLLOW), the documented way to name an O_TMPFILE file
                os.link(f"/proc/self/fd/{self._file.fileno()}", self._tmp,
                        src_dir_fd=folder, follow_symlinks=True)
            finally:
                os.close(folder)
            self._file.close()
        self._tmp.replace(self.path)
        self._cleanup.detach()
        return self.path

    def abort(self) -> None:
        """Drop what was written; the file at ``path`` (if any) is left as it was."""
        self._writer = self._file = None
        self._cleanup()


def _discard(tmp: Path, open_handles: list[Any]) -> None:
    for handle in open_handles:  # writer first, then the file; an unnamed file then vanishes
        handle.close()
    tmp.unlink(missing_ok=True)


def write_to_store(store: GraphStore, frame: pd.DataFrame, user_ids: Sequence[str],
                   model_version: str, created_at: str) -> int:
    """Replace the CANDIDATE edges of ``user_ids`` with ``frame`` (one transaction)."""
    edges = candidate_edges(frame, model_version, created_at)
    return store.replace_edges_from(RelType.CANDIDATE, NodeLabel.USER,
                                    [str(u) for u in user_ids], edges)
