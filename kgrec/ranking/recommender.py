"""``Recommender``: the Python API for recommendations, new SKUs, new users and explanations.

scikit-learn contract (the constructor only stores arguments; ``fit`` returns ``self``) with
implicit's batch-first ``recommend(user_ids, k, candidates) -> (ids, scores)``. It wraps a
:class:`~kgrec.coldstart.ColdStartModel` and keeps the graph it was fitted on, for seen-item
exclusion, fold-in of new nodes (no retraining) and path explanations.

User ids at the API are *raw* ids when a ``pseudonymizer`` is given (they are pseudonymised with
the store's key), else graph ids. Item ids are always graph ids (SKUs).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kgrec.coldstart.append import BaseCache
from kgrec.coldstart.config import Params
from kgrec.coldstart.persistence import model_version
from kgrec.errors import (
    ColdStartWarning,
    NotFittedError,
    UnknownIdError,
    ValidationError,
)
from kgrec.graph.frames import GraphFrames
from kgrec.graph.schema import NodeLabel, RelType
from kgrec.ranking.candidates import (
    CandidateRun,
    SeenIndex,
    block_frame,
    iter_ranked,
)
from kgrec.ranking.explain import (
    Explanation,
    explanations,
)
from kgrec.ranking.foldin import (
    empty_result,
    fold_in,
    frames_and_export,
    known_new_users,
    new_item_ranking,
    new_user_tables,
)
from kgrec.ranking.persistence import read_state, write_state
from kgrec.ranking.results import NewItemRanking, NewUserRanking, Scope
from kgrec.ranking.retrieval import check_retrieval

if TYPE_CHECKING:
    from kgrec.coldstart import ColdStartModel, ModelConfig, NodeEmbeddings
    from kgrec.encoders.text import TextEncoder
    from kgrec.graph.export import ExportedGraph
    from kgrec.graph.pseudonym import Pseudonymizer
    from kgrec.graph.store import GraphStore
    from kgrec.ranking.search import ProductSearch, SearchResults

logger = logging.getLogger(__name__)

_NOT_FITTED = ("This Recommender is not fitted yet: call rec.fit(store_or_graph) or "
               "Recommender.load(path, store_or_graph) first")
SAVED_PARAMS: tuple[str, ...] = ("rerank_n", "user_chunk", "explain_history", "retrieval")


class Recommender(Params):
    """Knowledge-graph cold-start recommender (GNN + calibrated CTR head).

    Args:
        config: The model's settings (:class:`~kgrec.coldstart.ModelConfig`); default None ->
            ``ModelConfig()``, the defaults behind ``benchmarks/EVALUATION.md``.
        pseudonymizer: Maps raw user ids at the API to graph ids; default None (ids given are
            graph ids).
        text_encoder: Item text encoder passed to the model; default None (the BERT encoder).
        rerank_n: Items retrieved per user by dot product before the CTR head re-ranks them,
            default 200; ``None`` re-ranks every candidate (exact, slower).
        user_chunk: Users scored per block (bounds memory), default 1024.
        explain_history: Most recent interactions per user that explanation paths start from,
            default 50.
        retrieval: ``"exact"`` (default), ``"approximate"`` (an IVF index, for 1M+ SKUs) or
            ``"auto"`` (approximate from 200,000 items); see :mod:`kgrec.ranking.retrieval`.
        device, num_threads, show_progress, cache_dir: Runtime arguments of
            :class:`~kgrec.coldstart.ColdStartModel` (they do not change what is learned).

    Attributes:
        model_: The fitted ``ColdStartModel``.
        model_version_: ``kgrec-<version>-<hash of the weights>``.
    """

    _PARAM_HINT = " (model settings go in config=ModelConfig(...))"

    def __init__(self, config: ModelConfig | None = None, *,
                 pseudonymizer: Pseudonymizer | None = None,
                 text_encoder: TextEncoder | None = None, rerank_n: int | None = 200,
                 user_chunk: int = 1024, explain_history: int = 50,
                 retrieval: str = "exact", device: str = "cpu",
                 num_threads: int | None = None, show_progress: bool = False,
                 cache_dir: str | Path | None = None) -> None:
        self.config = config
        self.pseudonymizer = pseudonymizer
        self.text_encoder = text_encoder
        self.rerank_n = rerank_n
        self.user_chunk = user_chunk
        self.explain_history = explain_history
        self.retrieval = retrieval
        self.device = device
        self.num_threads = num_threads
        self.show_progress = show_progress
        self.cache_dir = cache_dir

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.get_params().items()
                 if k not in ("pseudonymizer", "text_encoder", "config")}
        cfg = "" if self.config is None else self.config.describe() + ", "
        return f"Recommender({cfg}{', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(_NOT_FITTED)

    # -- fitting --------------------------------------------------------------------------
    def fit(self, graph: GraphStore | ExportedGraph, *, callback: Any = None,
            init_from: Recommender | None = None) -> Recommender:
        """Train the model on ``graph`` (a store or an export) and keep the graph; returns self.

        ``init_from``: a fitted recommender to warm-start from (fine-tuning on a grown graph;
        see ``ColdStartModel.fit``).

        Raises:
            ValueError: an invalid model parameter.
            ModelError: the graph has nothing to learn from.
        """
        from kgrec.coldstart import ColdStartModel

        if self.rerank_n is not None and self.rerank_n < 1:
            raise ValueError(f"rerank_n must be >= 1 or None, got {self.rerank_n}")
        if self.user_chunk < 1:
            raise ValueError(f"user_chunk must be >= 1, got {self.user_chunk}")
        check_retrieval(self.retrieval)
        frames, exported = frames_and_export(graph)
        model = ColdStartModel(self.config, text_encoder=self.text_encoder, device=self.device,
                               num_threads=self.num_threads, show_progress=self.show_progress,
                               cache_dir=self.cache_dir)
        model.fit(exported, callback=callback,
                  init_from=None if init_from is None else init_from.model_)
        self._attach(model, frames, exported)
        return self

    def partial_fit(self, graph: GraphStore | ExportedGraph) -> Recommender:
        """Fold the grown ``graph`` (new interactions, users and SKUs) in without retraining.

        The fitted GNN is inductive: it embeds the new graph as it is (only texts it has not
        seen are encoded), so new SKUs and users are scored from their neighbourhoods and known
        users see their newest interactions. Weights and calibration are unchanged; check
        :func:`kgrec.evaluation.drift.drift_report` for when to retrain. Returns ``self``.

        Raises:
            NotFittedError: before ``fit``/``load``.
        """
        self._check_fitted()
        frames, exported = frames_and_export(graph)
        self._attach(self.model_, frames, exported)
        return self

    def _attach(self, model: ColdStartModel, frames: GraphFrames,
                exported: ExportedGraph) -> None:
        self.model_ = model
        self.frames_ = frames
        self.graph_ = exported
        self.emb_ = model.transform(exported)
        ei = exported.data[(NodeLabel.USER.value, RelType.INTERACTED.value,
                            NodeLabel.ITEM.value)]
        idx = ei.edge_index.numpy() if "edge_index" in ei else np.zeros((2, 0), np.int64)
        self.seen_ = SeenIndex.from_pairs(idx[0], idx[1], len(self.emb_.user_ids))
        self.model_version_ = model_version(model)
        self._user_pos = pd.Index(self.emb_.user_ids)
        self._item_pos = pd.Index(self.emb_.item_ids)
        self._scope_ = Scope(frames, self.emb_)
        self._new_item_base = BaseCache()  # the graph's tensors, for new SKUs (foldin.py)

    # -- id handling ----------------------------------------------------------------------
    def _graph_user_ids(self, user_ids: Sequence[object]) -> np.ndarray:
        raw = [str(u) for u in user_ids]
        if self.pseudonymizer is None:
            return np.asarray(raw, dtype=object)
        return np.asarray(self.pseudonymizer.pseudonymize(raw), dtype=object)

    def _user_rows(self, user_ids: Sequence[object]) -> np.ndarray:
        gids = self._graph_user_ids(user_ids)
        pos = self._user_pos.get_indexer(gids)
        if (pos < 0).any():
            bad = [u for u, p in zip(user_ids, pos, strict=True) if p < 0]
            raise UnknownIdError(NodeLabel.USER.value, bad,
                                 hint="they are not users of the fitted graph; use "
                                 "recommend_for_new_user for a user with no history")
        return pos.astype(np.int64)

    def _item_rows(self, item_ids: Iterable[object]) -> np.ndarray:
        ids = [str(i) for i in item_ids]
        pos = self._item_pos.get_indexer(ids)
        if (pos < 0).any():
            bad = [i for i, p in zip(ids, pos, strict=True) if p < 0]
            raise UnknownIdError(NodeLabel.ITEM.value, bad,
                                 hint="they are not items of the fitted graph; use "
                                 "rank_new_items for new SKUs")
        return pos.astype(np.int64)

    # -- recommending ---------------------------------------------------------------------
    def recommend(self, user_ids: str | Sequence[str], k: int = 10,
                  candidates: Sequence[str] | None = None, exclude_seen: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per user: ``(ids, scores)``, each ``(n_users, k)``.

        A single id (a ``str``) gives 1-D arrays of length ``k``. Scores are calibrated click
        probabilities, best first. Where fewer than ``k`` candidates remain (``candidates``
        small, ``exclude_seen``), ids are padded with ``None`` and scores with NaN;
        ``k`` larger than the number of candidates is cut to it.

        Args:
            user_ids: Raw ids (with a pseudonymizer) or graph ids.
            k: Items per user.
            candidates: Item ids to choose from; default every item.
            exclude_seen: Leave out items the user has interacted with (any event).

        Raises:
            NotFittedError: before ``fit``/``load``.
            UnknownIdError: unknown user or candidate ids (all listed).
            ValueError: ``k`` < 1.
        """
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        single = isinstance(user_ids, str)
        users = [user_ids] if single else list(user_ids)  # type: ignore[list-item]
        rows = self._user_rows(users)
        items = (np.arange(len(self._item_pos)) if candidates is None
                 else np.unique(self._item_rows(candidates)))
        ids, scores = self._rank(self.emb_, rows, items, k,
                                 self.seen_ if exclude_seen else None)
        return (ids[0], scores[0]) if single else (ids, scores)

    def _rank(self, emb: NodeEmbeddings, user_rows: np.ndarray, item_rows: np.ndarray, k: int,
              seen: SeenIndex | None) -> tuple[np.ndarray, np.ndarray]:
        blocks = list(iter_ranked(self.model_, emb, user_rows, item_rows, k=k,
                                  rerank_n=self.rerank_n, retrieval=self.retrieval, seen=seen,
                                  user_chunk=self.user_chunk))
        k_eff = min(k, len(item_rows))
        if not blocks:
            return np.empty((0, k_eff), dtype=object), np.empty((0, k_eff))
        rows = np.concatenate([b.item_rows for b in blocks])
        scores = np.concatenate([b.scores for b in blocks])
        ids = np.empty(rows.shape, dtype=object)
        ids[rows >= 0] = np.asarray(emb.item_ids, dtype=object)[rows[rows >= 0]]
        return ids, scores

    def score(self, user_ids: str | Sequence[str], item_ids: str | Sequence[str]) -> np.ndarray:
        """Calibrated click probabilities of pairs ``(user_ids[n], item_ids[n])``, ``(n,)``.

        One side may be a single id (broadcast). Raises ``UnknownIdError`` for unknown ids and
        ``ValueError`` when the lengths differ.
        """
        self._check_fitted()
        users = [user_ids] if isinstance(user_ids, str) else list(user_ids)
        items = [item_ids] if isinstance(item_ids, str) else list(item_ids)
        if len(users) == 1 and len(items) > 1:
            users = users * len(items)
        if len(items) == 1 and len(users) > 1:
            items = items * len(users)
        if len(users) != len(items):
            raise ValueError(f"user_ids and item_ids differ in length: {len(users)} vs "
                             f"{len(items)}")
        return self.model_.predict_proba(self.emb_, self._user_rows(users),
                                         self._item_rows(items))

    # -- new SKUs ---------------------------------------------------------------------------
    def rank_new_items(self, new_items: pd.DataFrame, user_ids: Sequence[str] | None = None,
                       k: int = 10) -> NewItemRanking:
        """Rank SKUs that are not in the graph, with no retraining.

        The SKUs are appended to the graph's tensors with their text and Brand/Category/
        Attribute links, embedded by the fitted GNN on their neighbourhood (append-only: the
        rest of the graph is not rebuilt; see :mod:`kgrec.coldstart.append`), and scored
        against the users.

        Args:
            new_items: Canonical item rows (``item_id, title, description, brand, category,
                price`` plus extra attribute columns).
            user_ids: Users to rank for (raw ids with a pseudonymizer); default every user.
            k: New SKUs per user and users per new SKU.

        Raises:
            NotFittedError: before ``fit``/``load``.
            ValidationError: no ``item_id`` column, or missing/duplicate ids.
            DataError: an ``item_id`` already in the graph.
            UnknownIdError: unknown user ids.

        Warns:
            ColdStartWarning: a SKU with no text and no known brand/category/attribute.
        """
        return new_item_ranking(self, new_items, user_ids, k)

    # -- new users --------------------------------------------------------------------------
    def recommend_for_new_user(self, profile: Mapping[str, object],
                               clicks: Sequence[str] = (), k: int = 10,
                               exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items ``(ids, scores)`` (1-D) for a user who is not in the graph.

        Args:
            profile: Profile values, e.g. ``{"age_band": "25-34", "region": "north"}``.
            clicks: Item ids the user has clicked (the first one or two).
            k: Items to return.
            exclude_seen: Leave out the clicked items.

        Raises:
            UnknownIdError: a clicked item is not in the graph.

        Warns:
            ColdStartWarning: no known profile value and no clicks.
        """
        users = pd.DataFrame([{"user_id": "new-user", **{str(a): v for a, v in profile.items()
                                                          if v is not None}}])
        cl = pd.DataFrame({"user_id": "new-user", "item_id": list(clicks)})
        ranking = self.recommend_for_new_users(users, cl, k=k, exclude_seen=exclude_seen)
        ids = np.full(min(k, len(self._item_pos)), None, dtype=object)
        scores = np.full(len(ids), np.nan)
        n = len(ranking.by_user)
        ids[:n] = ranking.by_user["item_id"].to_numpy(object)
        scores[:n] = ranking.by_user["score"].to_numpy(np.float64)
        return ids, scores

    def recommend_for_new_users(self, users: pd.DataFrame, clicks: pd.DataFrame | None = None,
                                k: int = 10, exclude_seen: bool = True) -> NewUserRanking:
        """Batch form of :meth:`recommend_for_new_user`.

        Args:
            users: ``user_id`` (any label, echoed in the result; not looked up) plus profile
                columns.
            clicks: ``user_id, item_id`` rows (optionally ``event``, ``ts``).

        Raises:
            ValidationError: no ``user_id`` column.
            UnknownIdError: a clicked item is not in the graph.

        Warns:
            ColdStartWarning: users with no known profile value and no clicks.
        """
        self._check_fitted()
        if "user_id" not in users.columns:
            raise ValidationError("users needs a user_id column")
        tables, shown, temp, item_rows = new_user_tables(users, clicks, self._item_rows)
        cold = shown[~known_new_users(tables, self.frames_, temp)].tolist()
        if cold:
            warnings.warn(ColdStartWarning(
                f"{len(cold)} new user(s) have no known profile value and no clicks, so they "
                "get the model's 'unknown user' ranking (see the result's cold_users)"),
                stacklevel=2)
        inter = tables.interactions
        to_temp = dict(zip(shown, temp, strict=True))
        frames, folded = fold_in(self.frames_, tables)
        new = self.model_.transform(folded, user_ids=list(temp))
        combined = self.emb_.with_users(new)
        base = len(self.emb_.user_ids)
        rows = base + np.arange(len(temp))
        seen = None
        if exclude_seen:
            urow = base + pd.Index(temp).get_indexer(inter["user_id"].astype(object))
            seen = SeenIndex.from_pairs(urow, item_rows, base + len(temp))
        frame = pd.concat(
            [block_frame(b, shown[b.user_rows - base], combined.item_ids)
             for b in iter_ranked(self.model_, combined, rows, np.arange(len(self._item_pos)),
                                  k=k, rerank_n=self.rerank_n, retrieval=self.retrieval, seen=seen,
                                  user_chunk=self.user_chunk)] or [empty_result()],
            ignore_index=True)
        # the scope speaks graph ids: the temporary ids stand for the new users
        scope = Scope(frames, combined)
        return NewUserRanking(by_user=frame, cold_users=cold, _rec=self, _scope=scope,
                              _temp=to_temp)

    # -- explanations -----------------------------------------------------------------------
    def explain(self, user_id: str, item_id: str, max_paths: int = 3) -> Explanation:
        """The ``max_paths`` graph paths that best support ``item_id`` for ``user_id``.

        Node ids in the paths are graph ids (users pseudonymised), so every node can be looked
        up in the store. See :mod:`kgrec.ranking.explain` for the path weight.

        Raises:
            NotFittedError: before ``fit``/``load``.
            UnknownIdError: unknown user or item.
        """
        self._check_fitted()
        row = self._user_rows([user_id])
        self._item_rows([item_id])
        gid = str(self.emb_.user_ids[row[0]])
        return self._explain_in(self._scope_, [(gid, str(item_id))], max_paths)[0]

    def _explain_in(self, scope: Scope, pairs: Sequence[tuple[str, str]],
                    max_paths: int) -> list[Explanation]:
        upos, ipos = pd.Index(scope.emb.user_ids), pd.Index(scope.emb.item_ids)
        u = upos.get_indexer([p[0] for p in pairs])
        i = ipos.get_indexer([p[1] for p in pairs])
        if (u < 0).any() or (i < 0).any():
            bad = [p for p, a, b in zip(pairs, u, i, strict=True) if a < 0 or b < 0]
            raise UnknownIdError("pair", bad, hint="user or item not in this graph")
        scores = self.model_.predict_proba(scope.emb, u, i)
        return explanations(self.model_, scope.emb, scope.index(self.explain_history), pairs,
                            scores.tolist(), max_paths)

    # -- batch candidates -------------------------------------------------------------------
    def write_candidates(self, *, k: int = 50, user_ids: Sequence[str] | None = None,
                         item_ids: Sequence[str] | None = None, parquet: str | Path | None = None,
                         store: GraphStore | None = None, explain_to: str | Path | None = None,
                         max_paths: int = 3, exclude_seen: bool = True,
                         show_progress: bool = False) -> CandidateRun:
        """Top-``k`` candidates for all (or given) users over all (or given) items, in chunks.

        Writes Parquet (``user_id, item_id, rank, score, model_version, created_at``; user ids
        are graph ids) and/or ``(:User)-[:CANDIDATE]->(:Item)`` edges to ``store`` (one
        ``replace_edges_from`` per user chunk: a re-run replaces those users' candidates), and
        optionally the top explanation paths of every candidate to ``explain_to`` (``.jsonl``
        or ``.parquet``).

        Raises:
            NotFittedError: before ``fit``/``load``.
            UnknownIdError: unknown user or item ids.
            ValueError: nothing to write to.
        """
        from kgrec.ranking.batch import write_candidates

        return write_candidates(self, k=k, user_ids=user_ids, item_ids=item_ids,
                                parquet=parquet, store=store, explain_to=explain_to,
                                max_paths=max_paths, exclude_seen=exclude_seen,
                                show_progress=show_progress)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model folder: ``model/`` (``ColdStartModel.save``) + ``recommender.json``.

        The graph and the pseudonym key are not saved: pass the graph again to :meth:`load`.
        """
        self._check_fitted()
        return write_state(self, Path(path), {k: getattr(self, k) for k in SAVED_PARAMS})

    @classmethod
    def load(cls, path: str | Path, graph: GraphStore | ExportedGraph, *,
             pseudonymizer: Pseudonymizer | None = None,
             text_encoder: TextEncoder | None = None, device: str = "cpu",
             num_threads: int | None = None) -> Recommender:
        """Load a :meth:`save` folder and attach ``graph`` (the store it serves).

        ``device`` and ``num_threads`` are runtime arguments (not saved with the model).

        Raises:
            ModelError: missing/unreadable files.
            IncompatibleModelError: another kgrec version or text encoder.
        """
        model, params = read_state(Path(path), text_encoder=text_encoder, device=device,
                                   num_threads=num_threads)
        own = {k: v for k, v in params.items() if k in SAVED_PARAMS}
        rec = cls(model.config_, pseudonymizer=pseudonymizer, text_encoder=text_encoder,
                  device=device, num_threads=num_threads, **own)
        frames, exported = frames_and_export(graph)
        rec._attach(model, frames, exported)
        return rec

    # -- product search (kgrec/ranking/search.py) -------------------------------------------
    def product_search(self) -> ProductSearch:
        """The search index of this model, built on first use and kept (``add_items`` on it
        makes new SKUs searchable)."""
        from kgrec.ranking.search import ProductSearch

        self._check_fitted()
        ps = getattr(self, "search_", None)
        if ps is None or ps.base_emb_ is not self.emb_:
            self.search_ = ps = ProductSearch().fit(self)
        return ps

    def search(self, query: str, user: str | None = None, k: int = 20,
               candidates: Sequence[str] | None = None, filters: Any = None,
               **kwargs: Any) -> SearchResults:
        """Personalised product search; see :meth:`ProductSearch.search` (args, raises)."""
        return self.product_search().search(query, user=user, k=k, candidates=candidates,
                                            filters=filters, **kwargs)
