"""Lexical (BM25) and dense retrieval indexes over an item table, for product search.

Why two indexes: BM25 finds exact words (a model number, a brand, a new SKU's title) that a
sentence encoder blurs, and the dense cosine finds paraphrases BM25 misses. Both score *every*
item of the table, new SKUs included, so a later stage can mix them per query.

Tokenisation (:func:`tokenize`) works for any script: NFKC, lower case, words of letters and
digits for space-separated languages (English stop words dropped), and runs of Chinese/Japanese
characters cut into words by jieba when it is installed (``pip install 'kgrec[search]'``), else
into overlapping character bigrams (the classic CJK analyser of Lucene). BM25 is bm25s's
(Lucene variant, ``k1``/``b``), built once per :meth:`SearchIndex.fit` and rebuilt from the
kept token lists by :meth:`SearchIndex.add_items` (only the new SKUs are tokenised/encoded).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kgrec.errors import ConfigError, DataError, ValidationError

if TYPE_CHECKING:
    from kgrec.encoders.text import TextEncoder

logger = logging.getLogger(__name__)

#: Item fields indexed for BM25 (one document per item), and named in explanations.
SEARCH_FIELDS: tuple[str, ...] = ("title", "brand", "category", "description")
#: Characters of the description indexed (the same trim as the text encoder's input).
DESCRIPTION_CHARS = 1_000
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"([{_CJK}]+)|([^\W{_CJK}]+)")


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


@lru_cache(maxsize=1)
def _jieba() -> Any:
    try:
        import jieba
    except ImportError:
        return None
    jieba.setLogLevel(logging.WARNING)
    return jieba


def cjk_segmenter() -> str:
    """``"jieba"`` when jieba is installed (Chinese/Japanese words), else ``"bigram"``."""
    return "bigram" if _jieba() is None else "jieba"


def _cjk_words(run: str, segmenter: str) -> list[str]:
    if segmenter == "jieba":
        return [w for w in _jieba().lcut_for_search(run) if w.strip()]
    if len(run) == 1:
        return [run]
    return [run[i:i + 2] for i in range(len(run) - 1)]


def tokenize(text: str, *, segmenter: str | None = None, stop_words: bool = True) -> list[str]:
    """Search tokens of ``text`` in any script (module docstring).

    Args:
        text: Any text; ``None``/NaN count as empty.
        segmenter: ``"jieba"``, ``"bigram"`` or ``None`` (jieba when installed).
        stop_words: Drop English stop words, default True.

    Raises:
        ConfigError: ``segmenter="jieba"`` without jieba installed, or an unknown segmenter.
    """
    seg = segmenter or cjk_segmenter()
    if seg not in ("jieba", "bigram"):
        raise ConfigError(f"segmenter must be 'jieba' or 'bigram', got {segmenter!r}")
    if seg == "jieba" and _jieba() is None:
        raise ConfigError("segmenter='jieba' needs jieba: pip install 'kgrec[search]' "
                          "(or pass segmenter='bigram')")
    if not isinstance(text, str):
        return []
    stop = _stop_words() if stop_words else frozenset()
    out: list[str] = []
    for cjk, word in _TOKEN_RE.findall(unicodedata.normalize("NFKC", text).lower()):
        if cjk:
            out.extend(_cjk_words(cjk, seg))
        elif word not in stop:
            out.append(word)
    return out


def _field_texts(items: pd.DataFrame) -> dict[str, list[str]]:
    """The indexed fields of ``items`` as plain strings (missing -> "")."""
    out = {}
    for f in SEARCH_FIELDS:
        col = items[f] if f in items.columns else pd.Series("", index=items.index)
        s = col.astype("string").fillna("")
        if f == "description":
            s = s.str.slice(0, DESCRIPTION_CHARS)
        out[f] = s.tolist()
    return out


@dataclass(frozen=True)
class SearchFilters:
    """Restrict search results (all given conditions must hold).

    Attributes:
        brands: Keep items of these brands (exact names).
        category: Keep items in this category subtree (a path ``"A > B"``: ``A > B`` itself
            and everything below it).
        min_price, max_price: Keep items priced within these bounds (items without a price
            are dropped when either bound is given).
    """

    brands: tuple[str, ...] | None = None
    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None

    @classmethod
    def coerce(cls, value: SearchFilters | Mapping[str, Any] | None) -> SearchFilters:
        """``value`` as filters; a dict uses the attribute names as keys.

        Raises:
            ConfigError: an unknown key, or ``min_price`` > ``max_price``.
        """
        if value is None:
            return cls()
        if isinstance(value, SearchFilters):
            out = value
        else:
            unknown = set(value) - {"brands", "category", "min_price", "max_price"}
            if unknown:
                raise ConfigError(f"unknown search filter(s) {sorted(unknown)}; use brands, "
                                  "category, min_price, max_price")
            brands = value.get("brands")
            out = cls(brands=None if brands is None else
                      tuple([brands] if isinstance(brands, str) else brands),
                      category=value.get("category"), min_price=value.get("min_price"),
                      max_price=value.get("max_price"))
        if (out.min_price is not None and out.max_price is not None
                and out.min_price > out.max_price):
            raise ConfigError(f"min_price {out.min_price} > max_price {out.max_price}: swap them")
        return out


class SearchIndex:
    """BM25 + dense index over an item table (every item, new SKUs included).

    Args:
        k1: BM25 term-frequency saturation, default 1.2.
        b: BM25 length normalisation, default 0.75.
        segmenter: CJK word segmenter for :func:`tokenize` (default: jieba when installed).

    Attributes:
        item_ids_: Item ids in row order (``pd.Index``).
        vectors_: L2-normalised text vectors, ``(n_items, dim)`` float32.
        bm25_: The ``bm25s.BM25`` index.
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75,
                 segmenter: str | None = None) -> None:
        self.k1 = k1
        self.b = b
        self.segmenter = segmenter

    def __repr__(self) -> str:
        n = len(self.item_ids_) if hasattr(self, "item_ids_") else "unfitted"
        return f"SearchIndex(k1={self.k1}, b={self.b}, items={n})"

    def fit(self, items: pd.DataFrame, vectors: np.ndarray,
            encoder: TextEncoder) -> SearchIndex:
        """Index ``items`` (canonical item rows) with their text ``vectors``; returns self.

        ``encoder`` must be the encoder that made ``vectors``: queries are encoded with it.

        Raises:
            ValidationError: no ``item_id`` column, duplicate ids, or ``vectors`` of another
                length than ``items``.
        """
        self.encoder_ = encoder
        self._tokens: list[list[str]] = []
        self._fields: dict[str, list[str]] = {f: [] for f in SEARCH_FIELDS}
        self._titles: dict[tuple[str, ...], list[int]] = {}
        self.item_ids_ = pd.Index([], dtype=object)
        self.vectors_ = np.zeros((0, int(np.asarray(vectors).shape[-1])), np.float32)
        self.brand_ = np.zeros(0, dtype=object)
        self.category_ = np.zeros(0, dtype=object)
        self.price_ = np.zeros(0)
        return self._append(items, vectors)

    def add_items(self, items: pd.DataFrame, vectors: np.ndarray) -> SearchIndex:
        """Add new SKUs (tokenise only them, rebuild BM25's matrix); returns self.

        Raises:
            NotFittedError: before ``fit``.
            DataError: an id already indexed.
            ValidationError: as :meth:`fit`.
        """
        from kgrec.errors import NotFittedError

        if not hasattr(self, "item_ids_"):
            raise NotFittedError("SearchIndex is not fitted: call fit(items, vectors, encoder)")
        ids = items["item_id"].astype(str) if "item_id" in items.columns else None
        if ids is not None and (self.item_ids_.get_indexer(ids) >= 0).any():
            dup = ids[self.item_ids_.get_indexer(ids) >= 0].tolist()
            raise DataError(f"item id(s) already in the search index: {dup[:5]}; "
                            "only new SKUs can be added")
        return self._append(items, vectors)

    def _append(self, items: pd.DataFrame, vectors: np.ndarray) -> SearchIndex:
        import bm25s
        import torch

        if "item_id" not in items.columns:
            raise ValidationError("items need an item_id column; found: "
                                  f"{', '.join(map(str, items.columns))}")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(items):
            raise ValidationError(f"vectors {vectors.shape} must have one row per item "
                                  f"({len(items)})")
        ids = items["item_id"].astype(str)
        if ids.duplicated().any():
            raise ValidationError(f"duplicate item_id: {ids[ids.duplicated()].tolist()[:5]}")
        fields = _field_texts(items)
        for f in SEARCH_FIELDS:
            self._fields[f].extend(fields[f])
        docs = [" ".join(parts) for parts in zip(*(fields[f] for f in SEARCH_FIELDS),
                                                 strict=True)]
        self._tokens.extend(tokenize(d, segmenter=self.segmenter) for d in docs)
        base = len(self.item_ids_)
        for row, title in enumerate(fields["title"]):
            key = tuple(tokenize(title, segmenter=self.segmenter))
            if key:
                self._titles.setdefault(key, []).append(base + row)
        self.item_ids_ = self.item_ids_.append(pd.Index(ids.to_numpy(object)))
        norm = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors_ = np.vstack([self.vectors_, vectors / np.maximum(norm, 1e-12)])
        self._vectors_t = torch.from_numpy(self.vectors_)
        self.brand_ = np.concatenate([self.brand_, fields["brand"]]).astype(object)
        self.category_ = np.concatenate([self.category_, fields["category"]]).astype(object)
        price = (pd.to_numeric(items["price"], errors="coerce").to_numpy(np.float64)
                 if "price" in items.columns else np.full(len(items), np.nan))
        self.price_ = np.concatenate([self.price_, price])
        self.bm25_ = bm25s.BM25(k1=self.k1, b=self.b)
        # an item with no text still needs a document: bm25s wants non-empty token lists
        self.bm25_.index([t or [""] for t in self._tokens], show_progress=False)
        return self

    # -- scoring ----------------------------------------------------------------------------
    def query_tokens(self, query: str) -> list[str]:
        """The query's tokens, without duplicates (order kept)."""
        return list(dict.fromkeys(tokenize(query, segmenter=self.segmenter)))

    def exact_title_rows(self, query: str) -> np.ndarray:
        """Rows of items whose title has exactly the query's tokens, in order (a lookup)."""
        key = tuple(tokenize(query, segmenter=self.segmenter))
        return np.asarray(self._titles.get(key, []), dtype=np.int64)

    def lexical_scores(self, queries: Sequence[str]) -> np.ndarray:
        """BM25 score of every item for each query, ``(n_queries, n_items)`` float32."""
        out = np.zeros((len(queries), len(self.item_ids_)), dtype=np.float32)
        vocab = self.bm25_.vocab_dict
        for q, text in enumerate(queries):
            ids = [vocab[t] for t in self.query_tokens(text) if t in vocab]
            if ids:
                out[q] = self.bm25_.get_scores_from_ids(ids)
        return out

    def dense_scores(self, queries: Sequence[str]) -> np.ndarray:
        """Cosine between each query's encoding and every item's, ``(n_queries, n_items)``."""
        if not len(queries):
            return np.zeros((0, len(self.item_ids_)), np.float32)
        import torch

        q = np.asarray(self.encoder_.encode(list(queries)), dtype=np.float32)
        q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        # torch, not numpy: a multi-threaded OpenBLAS gemv on a busy machine took 25 ms
        # (wall) for 4k x 384, torch's single-threaded one 0.5 ms (benchmarks/SEARCH.md)
        with torch.inference_mode():
            return (torch.from_numpy(q) @ self._vectors_t.T).numpy()

    def mask(self, candidates: Sequence[str] | None = None,
             filters: SearchFilters | None = None) -> np.ndarray:
        """Boolean ``(n_items,)``: items that are candidates and pass ``filters``.

        Raises:
            UnknownIdError: a candidate id is not indexed.
        """
        from kgrec.errors import UnknownIdError

        keep = np.ones(len(self.item_ids_), dtype=bool)
        if candidates is not None:
            pos = self.item_ids_.get_indexer([str(c) for c in candidates])
            if (pos < 0).any():
                bad = [c for c, p in zip(candidates, pos, strict=True) if p < 0]
                raise UnknownIdError("Item", bad, hint="candidates must be indexed items "
                                     "(add new SKUs with add_items first)")
            keep[:] = False
            keep[pos] = True
        if filters is None:
            return keep
        if filters.brands is not None:
            keep &= np.isin(self.brand_, np.asarray(filters.brands, dtype=object))
        if filters.category:
            root = filters.category.strip()
            cat = pd.Series(self.category_, dtype="string")
            keep &= ((cat == root) | cat.str.startswith(root + " > ")).to_numpy(bool)
        with np.errstate(invalid="ignore"):
            if filters.min_price is not None:
                keep &= self.price_ >= filters.min_price
            if filters.max_price is not None:
                keep &= self.price_ <= filters.max_price
        return keep

    def matched_terms(self, query: str, row: int) -> dict[str, tuple[str, ...]]:
        """Query tokens found in each field of item ``row`` (fields without a match left out)."""
        terms = self.query_tokens(query)
        out = {}
        for f in SEARCH_FIELDS:
            present = set(tokenize(self._fields[f][row], segmenter=self.segmenter))
            hit = tuple(t for t in terms if t in present)
            if hit:
                out[f] = hit
        return out
