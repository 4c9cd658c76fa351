"""Top-N retrieval by maximum inner product: an exact search and an approximate (IVF) index.

The tower logit of the CTR head is ``<user_vector, item_vector> + bias`` with one scalar bias,
so the ``N`` items with the largest inner product are the ``N`` best by tower score: maximum
inner-product search (MIPS) over ``ColdStartModel.retrieval_vectors``.

**Exact** (:func:`exact_search`): one ``torch.matmul`` (MKL's GEMM) per user block against
every candidate item, masked pairs set to ``-inf``, then FAISS's per-row heap selection
(``float_minheap_array_t.addn``, OpenMP over rows) keeps the ``N`` best. Why this pairing: the
heap pass reads each score once and rejects almost all of them with one comparison, where
``torch.topk`` partially sorts a copy of every row; and MKL's GEMM is faster than the OpenBLAS
GEMM inside FAISS's own ``IndexFlatIP.search``. Same items in the same order as
``torch.topk`` (ties aside); see ``benchmarks/SCORE.md`` for the times. Below
:data:`HEAP_MIN_ITEMS` candidates, or without ``faiss-cpu`` (:func:`has_faiss`), the selection
is ``torch.topk``.

**Approximate** (:class:`ApproximateIndex`): FAISS ``IndexIVFFlat`` with the inner-product
metric. Items are split into ``nlist`` k-means cells (default ``4 * sqrt(n_items)``; k-means on
at most ``32 * nlist`` items, 10 iterations); a query scans the ``nprobe`` cells whose
centroids have the largest inner product with it. ``nprobe`` is calibrated at build time:
doubled from 1 until the mean recall@``calibrate_n`` against the exact search, on a sample of
real queries (user vectors), reaches ``target_recall`` (default 0.97, so held-out users clear
0.95). Seen items are excluded by over-fetching the block's largest seen count and filtering;
a candidate subset by an ``IDSelectorBatch``. It pays only for large catalogues (build cost,
and an IVF scan is less efficient per item than a GEMM): ``retrieval="auto"`` switches to it
from :data:`APPROXIMATE_MIN_ITEMS` items on.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from functools import cache
from types import ModuleType

import numpy as np
import torch

from kgrec.coldstart.inference import torch_threads

logger = logging.getLogger(__name__)

RETRIEVALS: tuple[str, ...] = ("exact", "approximate", "auto")
# "auto" switches to the IVF index from here: measured no faster at 4,344 items and 7.4x faster
# at 1M (benchmarks/SCORE.md); 200k is a judgement between the two (not measured), leaving room
# to amortise the build (about 100 s at 1M items on 2 busy cores).
APPROXIMATE_MIN_ITEMS = 200_000
# Below this many candidate items torch.topk selects faster than the heap (N = 200, 2 threads:
# 4,344 items 0.52 vs 0.64 CPU-s; 16,384 items 1.15 vs 1.07; 50,000 items 0.49 vs 0.36).
HEAP_MIN_ITEMS = 10_000
# k-means of the IVF cells: FAISS suggests >= 39 training items per cell and 25 iterations; fewer
# keep a 1M-item build under two minutes on 2 cores, and nprobe is calibrated on recall anyway.
TRAIN_PER_CELL = 32
KMEANS_ITERATIONS = 10
# An index whose calibration needs more than this share of its cells scans about as much as the
# exact search, less efficiently (random 128-d vectors at 1M items: every cell, 0.26x the
# exact speed): ``iter_ranked`` then searches exactly.
MAX_PROBE_SHARE = 0.5


@cache
def _faiss() -> ModuleType | None:
    try:
        import faiss
    except ImportError:  # faiss-cpu is a dependency; a platform without its wheel uses torch
        logger.info("faiss is not installed: retrieval uses torch.topk")
        return None
    return faiss


def has_faiss() -> bool:
    """Whether ``faiss`` can be imported (the fast exact path and the approximate index)."""
    return _faiss() is not None


def require_faiss() -> ModuleType:
    """The ``faiss`` module, or an ``ImportError`` that names the package to install."""
    faiss = _faiss()
    if faiss is None:
        raise ImportError("the approximate index needs faiss: pip install faiss-cpu")
    return faiss


@contextlib.contextmanager
def faiss_threads(n: int | None) -> Iterator[None]:
    """FAISS (OpenMP) uses ``n`` threads (None: torch's current count); restored afterwards."""
    faiss = _faiss()
    if faiss is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(n) if n is not None else torch.get_num_threads())
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def check_retrieval(retrieval: str) -> str:
    """``retrieval`` if it is one of :data:`RETRIEVALS`, else a ``ValueError``."""
    if retrieval not in RETRIEVALS:
        raise ValueError(f"retrieval must be one of {RETRIEVALS}, got {retrieval!r}")
    return retrieval


def heap_topn(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` largest entries of each row of ``scores`` ``(B, I)`` float32, best first.

    Returns values ``(B, n)`` float32 and columns ``(B, n)`` int64; ``-inf`` entries are never
    kept, so a row with fewer than ``n`` finite scores ends in columns ``-1``.
    """
    faiss = require_faiss()
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    b = len(scores)
    values = np.empty((b, n), dtype=np.float32)
    cols = np.empty((b, n), dtype=np.int64)
    if b == 0:
        return values, cols
    heaps = faiss.float_minheap_array_t()
    heaps.nh, heaps.k = b, n
    heaps.val, heaps.ids = faiss.swig_ptr(values), faiss.swig_ptr(cols)
    heaps.heapify()
    heaps.addn(scores.shape[1], faiss.swig_ptr(scores), 0, 0, -1)
    heaps.reorder()
    empty = cols < 0
    cols[empty], values[empty] = -1, -np.inf
    return values, cols


def exact_search(user_vecs: torch.Tensor, item_vecs: torch.Tensor, n: int,
                 mask_rows: np.ndarray | None = None, mask_cols: np.ndarray | None = None,
                 *, threads: int | None = None, out: torch.Tensor | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n`` items per user by dot product; masked pairs are never returned.

    Shapes: ``user_vecs`` ``(B, d)``, ``item_vecs`` ``(I, d)``, ``n <= I`` -> values
    ``(B, n)`` float32 and item columns ``(B, n)`` int64, ``-1`` where a user has fewer than
    ``n`` unmasked items. ``threads``: torch and FAISS threads for the call (None: torch's).
    ``out``: a float32 buffer of at least ``(B, I)`` for the score block, reused across calls
    (a fresh block of hundreds of MB is page-faulted in on every call; that cost about a
    fifth of the search's CPU time at 50,000 items).
    """
    with torch_threads(threads):
        if out is not None:
            scores = torch.matmul(user_vecs, item_vecs.T,
                                  out=out.view(-1)[:len(user_vecs) * len(item_vecs)]
                                  .view(len(user_vecs), len(item_vecs)))
        else:
            scores = torch.matmul(user_vecs, item_vecs.T)
        if mask_rows is not None and mask_cols is not None and len(mask_rows):
            scores[torch.from_numpy(mask_rows), torch.from_numpy(mask_cols)] = float("-inf")
        if not has_faiss() or len(item_vecs) < HEAP_MIN_ITEMS:
            values, idx = torch.topk(scores, n, dim=1, sorted=True)
            v, c = values.numpy(), idx.numpy()
            return v, np.where(np.isfinite(v), c, -1)
        with faiss_threads(threads):
            return heap_topn(scores.numpy(), n)


def default_nlist(n_items: int) -> int:
    """``4 * sqrt(n_items)`` cells (FAISS's rule of thumb), at least 1."""
    return max(1, int(round(4 * math.sqrt(n_items))))


class ApproximateIndex:
    """IVF-Flat inner-product index over item vectors (see the module docstring).

    Args:
        item_vecs: ``(I, d)`` item tower vectors; result columns are rows of this array.
        queries: Sample queries (user tower vectors) to calibrate ``nprobe``; ``None`` uses the
            item vectors themselves.
        nlist: k-means cells; default :func:`default_nlist`.
        nprobe: Cells scanned per query; default: calibrated to ``target_recall``.
        target_recall: Mean recall@``calibrate_n`` the calibration aims for.
        calibrate_n: Depth of the calibration recall (the retrieval depth ``N``).
        sample: Queries used for calibration.
        seed: k-means and sampling seed.
        threads: FAISS threads while building and searching (None: torch's count).
    """

    def __init__(self, item_vecs: np.ndarray, queries: np.ndarray | None = None, *,
                 nlist: int | None = None, nprobe: int | None = None,
                 target_recall: float = 0.97, calibrate_n: int = 200, sample: int = 512,
                 seed: int = 0, threads: int | None = None) -> None:
        faiss = require_faiss()
        items = np.ascontiguousarray(item_vecs, dtype=np.float32)
        self.n_items, self.dim = items.shape
        self.nlist = min(nlist or default_nlist(self.n_items), max(1, self.n_items))
        self.threads = threads
        rng = np.random.default_rng(seed)
        with faiss_threads(threads):
            quantizer = faiss.IndexFlatIP(self.dim)
            self.index = faiss.IndexIVFFlat(quantizer, self.dim, self.nlist,
                                            faiss.METRIC_INNER_PRODUCT)
            self.index.cp.seed = seed
            train = items
            if self.n_items > TRAIN_PER_CELL * self.nlist:
                train = items[np.sort(rng.choice(self.n_items, TRAIN_PER_CELL * self.nlist,
                                                 replace=False))]
            self.index.cp.niter = KMEANS_ITERATIONS
            self.index.cp.min_points_per_centroid = 1  # small catalogues: no warning spam
            self.index.train(train)
            self.index.add(items)
        self._quantizer = quantizer  # the IVF index does not own it
        self.recall_: float | None = None
        if nprobe is not None:
            self.nprobe = min(int(nprobe), self.nlist)
        else:
            q = items if queries is None else np.ascontiguousarray(queries, dtype=np.float32)
            q = q[np.sort(rng.choice(len(q), min(sample, len(q)), replace=False))]
            self.nprobe = self._calibrate(q, items, min(calibrate_n, self.n_items),
                                          target_recall)
        logger.info("IVF index: %d items, nlist %d, nprobe %d (calibration recall %s)",
                    self.n_items, self.nlist, self.nprobe, self.recall_)

    @property
    def pays(self) -> bool:
        """Whether ``nprobe`` scans at most :data:`MAX_PROBE_SHARE` of the cells."""
        return self.nprobe <= MAX_PROBE_SHARE * self.nlist

    def __repr__(self) -> str:
        return (f"ApproximateIndex(n_items={self.n_items}, dim={self.dim}, "
                f"nlist={self.nlist}, nprobe={self.nprobe})")

    def _calibrate(self, queries: np.ndarray, items: np.ndarray, n: int, target: float) -> int:
        """Smallest power-of-two ``nprobe`` whose mean recall@n on ``queries`` reaches target."""
        exact = np.concatenate([  # blocks of 128 queries bound the score block's memory
            exact_search(torch.from_numpy(queries[s:s + 128]), torch.from_numpy(items), n,
                         threads=self.threads)[1] for s in range(0, len(queries), 128)])
        nprobe = 1
        while True:
            self.nprobe = nprobe
            _, approx = self.search(queries, n)
            self.recall_ = recall_at(approx, exact)
            if self.recall_ >= target or nprobe >= self.nlist:
                return nprobe
            nprobe = min(2 * nprobe, self.nlist)

    def search(self, queries: np.ndarray, n: int, *, subset: np.ndarray | None = None,
               exclude: tuple[np.ndarray, np.ndarray] | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``n`` item rows per query, best first.

        Args:
            queries: ``(B, d)`` float32.
            n: Items per query.
            subset: Sorted item rows allowed (None: all).
            exclude: ``(query position, item row)`` pairs never returned.

        Returns values ``(B, n)`` float32 and item rows ``(B, n)`` int64, ``-1`` where fewer
        were found.
        """
        faiss = require_faiss()
        q = np.ascontiguousarray(queries, dtype=np.float32)
        ex_pos, ex_rows = exclude if exclude is not None else (np.empty(0, np.int64),) * 2
        extra = int(np.bincount(ex_pos, minlength=len(q)).max()) if len(ex_pos) else 0
        fetch = min(n + extra, self.n_items if subset is None else len(subset))
        params = faiss.SearchParametersIVF(nprobe=self.nprobe)
        if subset is not None and len(subset) < self.n_items:
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(subset, dtype=np.int64))
            params.sel = sel
        with faiss_threads(self.threads):
            values, rows = self.index.search(q, fetch, params=params)
        if extra:
            key = ex_pos.astype(np.int64) * self.n_items + ex_rows
            drop = np.isin(np.arange(len(q))[:, None] * self.n_items + rows, key) | (rows < 0)
            order = np.argsort(drop, axis=1, kind="stable")
            values = np.take_along_axis(values, order, 1)
            rows = np.where(np.take_along_axis(drop, order, 1), -1,
                            np.take_along_axis(rows, order, 1))
        values, rows = values[:, :n], rows[:, :n]
        if rows.shape[1] < n:  # fewer allowed items than n
            pad = n - rows.shape[1]
            values = np.pad(values, ((0, 0), (0, pad)), constant_values=-np.inf)
            rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
        return values, rows


def recall_at(approx: np.ndarray, exact: np.ndarray) -> float:
    """Share of ``exact``'s ids (``-1`` = none) that ``approx`` holds in the same row."""
    width = int(max(approx.max(initial=-1), exact.max(initial=-1))) + 2
    rows = np.arange(len(exact))[:, None] * width
    ok = exact >= 0
    hits = np.isin(rows + exact, (rows + approx)[approx >= 0]) & ok
    return float(hits.sum() / ok.sum()) if ok.any() else 1.0
