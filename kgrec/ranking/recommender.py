"""``Recommender``: the Python API for recommendations, new SKUs, new users and explanations.

scikit-learn contract (the constructor only stores arguments; ``fit`` returns ``self``) with
implicit's batch-first ``recommend(user_ids, k, candidates) -> (ids, scores)``. It wraps a
:class:`~kgrec.coldstart.ColdStartModel` and keeps the graph it was fitted on, for seen-item
exclusion, fold-in of new nodes (no retraining) and path explanations.

User ids at the API are *raw* ids when a ``pseudonymizer`` is given (they are pseudonymised with
the store's key), else graph ids. Item ids are always graph ids (SKUs).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kgrec._version import __version__
from kgrec.errors import (
    ColdStartWarning,
    DataError,
    ModelError,
    NotFittedError,
    UnknownIdError,
    ValidationError,
)
from kgrec.graph.frames import GraphFrames, normalize_edges, normalize_nodes
from kgrec.graph.schema import GRAPH_REL_TYPES, NodeLabel, RelType
from kgrec.graph.tables import ITEM_COLUMNS, CatalogTables
from kgrec.ranking.candidates import (
    CandidateRun,
    ParquetSink,
    SeenIndex,
    block_frame,
    iter_ranked,
    now_iso,
    write_to_store,
)
from kgrec.ranking.explain import (
    Explanation,
    PathIndex,
    PathNode,
    explanations,
    path_records,
    top_paths,
)

if TYPE_CHECKING:
    from kgrec.coldstart import ColdStartModel, NodeEmbeddings
    from kgrec.encoders.text import TextEncoder
    from kgrec.graph.export import ExportedGraph
    from kgrec.graph.pseudonym import Pseudonymizer
    from kgrec.graph.store import GraphStore
    from kgrec.ranking.search import ProductSearch, SearchResults

logger = logging.getLogger(__name__)

_NOT_FITTED = ("This Recommender is not fitted yet: call rec.fit(store_or_graph) or "
               "Recommender.load(path, store_or_graph) first")
STATE_FILE = "recommender.json"
MODEL_SUBDIR = "model"
RESULT_COLUMNS = ["user_id", "item_id", "rank", "score"]


@dataclass
class _Scope:
    """A graph plus embeddings of (at least) the nodes being ranked/explained."""

    frames: GraphFrames
    emb: NodeEmbeddings
    _index: PathIndex | None = None

    def index(self, history: int) -> PathIndex:
        if self._index is None:
            self._index = PathIndex(self.frames, history=history)
        return self._index


@dataclass
class NewItemRanking:
    """Result of :meth:`Recommender.rank_new_items`.

    Attributes:
        by_user: For each user, the best new SKUs (``user_id, item_id, rank, score``).
        by_item: For each new SKU, the users most likely to click (same columns, ranked per
            item).
        cold_items: New SKUs with no text and no known brand/category/attribute (scored from
            the model's "unknown" embeddings only; a ``ColdStartWarning`` was issued).
    """

    by_user: pd.DataFrame
    by_item: pd.DataFrame
    cold_items: list[str] = field(default_factory=list)
    _rec: Recommender | None = field(default=None, repr=False)
    _scope: _Scope | None = field(default=None, repr=False)

    def explain(self, user_id: str, item_id: str, max_paths: int = 3) -> Explanation:
        """Graph paths supporting ``item_id`` (a new SKU) for ``user_id`` (see explain.py)."""
        if self._rec is None or self._scope is None:
            raise NotFittedError("this ranking has no graph attached")
        return self._rec._explain_in(self._scope, [(user_id, item_id)], max_paths)[0]


class Recommender:
    """Knowledge-graph cold-start recommender (GNN + calibrated CTR head).

    Args:
        pseudonymizer: Maps raw user ids at the API to graph ids; default None (ids given are
            graph ids).
        text_encoder: Item text encoder passed to the model; default None (the BERT encoder).
        rerank_n: Items retrieved per user by dot product before the CTR head re-ranks them,
            default 200; ``None`` re-ranks every candidate (exact, slower).
        user_chunk: Users scored per block (bounds memory), default 1024.
        explain_history: Most recent interactions per user that explanation paths start from,
            default 50.
        **model_params: Passed to :class:`~kgrec.coldstart.ColdStartModel` (``epochs``,
            ``hidden_dim``, ``cache_dir``, ``num_threads`` ...).

    Attributes:
        model_: The fitted ``ColdStartModel``.
        model_version_: ``kgrec-<version>-<hash of the weights>``.
    """

    def __init__(self, *, pseudonymizer: Pseudonymizer | None = None,
                 text_encoder: TextEncoder | None = None, rerank_n: int | None = 200,
                 user_chunk: int = 1024, explain_history: int = 50,
                 **model_params: Any) -> None:
        self.pseudonymizer = pseudonymizer
        self.text_encoder = text_encoder
        self.rerank_n = rerank_n
        self.user_chunk = user_chunk
        self.explain_history = explain_history
        self.model_params = model_params

    # -- scikit-learn plumbing ------------------------------------------------------------
    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """Constructor arguments (model parameters flattened in)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters
                 if p not in ("self", "model_params")]
        return {**{n: getattr(self, n) for n in names}, **self.model_params}

    def set_params(self, **params: Any) -> Recommender:
        """Set constructor arguments (unknown names go to the model); returns ``self``."""
        own = set(self.get_params()) - set(self.model_params)
        for key, value in params.items():
            if key in own:
                setattr(self, key, value)
            else:
                self.model_params[key] = value
        return self

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.get_params().items()
                 if k not in ("pseudonymizer", "text_encoder")}
        return f"Recommender({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(_NOT_FITTED)

    # -- fitting --------------------------------------------------------------------------
    def fit(self, graph: GraphStore | ExportedGraph, *, callback: Any = None) -> Recommender:
        """Train the model on ``graph`` (a store or an export) and keep the graph; returns self.

        Raises:
            ValueError: an invalid model parameter.
            ModelError: the graph has nothing to learn from.
        """
        from kgrec.coldstart import ColdStartModel

        if self.rerank_n is not None and self.rerank_n < 1:
            raise ValueError(f"rerank_n must be >= 1 or None, got {self.rerank_n}")
        if self.user_chunk < 1:
            raise ValueError(f"user_chunk must be >= 1, got {self.user_chunk}")
        frames, exported = _frames_and_export(graph)
        model = ColdStartModel(text_encoder=self.text_encoder, **self.model_params)
        model.fit(exported, callback=callback)
        self._attach(model, frames, exported)
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
        self._scope_ = _Scope(frames, self.emb_)

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
            raise UnknownIdError("User", bad, hint="they are not users of the fitted graph; "
                                 "use recommend_for_new_user for a user with no history")
        return pos.astype(np.int64)

    def _item_rows(self, item_ids: Iterable[object]) -> np.ndarray:
        ids = [str(i) for i in item_ids]
        pos = self._item_pos.get_indexer(ids)
        if (pos < 0).any():
            bad = [i for i, p in zip(ids, pos, strict=True) if p < 0]
            raise UnknownIdError("Item", bad, hint="they are not items of the fitted graph; "
                                 "use rank_new_items for new SKUs")
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
                                  rerank_n=self.rerank_n, seen=seen,
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

        The SKUs are folded into a copy of the graph with their text and Brand/Category/
        Attribute links, embedded by the fitted GNN, and scored against the users.

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
        self._check_fitted()
        items = _canonical_items(new_items)
        dup = items["item_id"][self._item_pos.get_indexer(items["item_id"]) >= 0]
        if len(dup):
            raise DataError(f"{len(dup)} new item id(s) already in the graph: "
                            f"{', '.join(map(repr, dup.tolist()[:5]))}; rank known items with "
                            "recommend()")
        cold = self._cold_items(items)
        if cold:
            warnings.warn(ColdStartWarning(
                f"{len(cold)} new SKU(s) have no text and no known brand, category or "
                f"attribute, so they are scored from the model's 'unknown' embeddings only: "
                f"{', '.join(map(repr, cold[:5]))}"), stacklevel=2)
        shown_users = None if user_ids is None else [str(u) for u in user_ids]
        graph_users = (np.asarray(self.emb_.user_ids, dtype=object) if user_ids is None
                       else self.emb_.user_ids[self._user_rows(shown_users or [])])
        out_users = graph_users if shown_users is None else np.asarray(shown_users, object)
        extra = _build(CatalogTables(items=items))
        frames = merge_frames(self.frames_, extra)
        from kgrec.graph.export import to_hetero_data

        folded = to_hetero_data(frames)
        new_ids = items["item_id"].tolist()
        emb = self.model_.transform(folded, user_ids=list(graph_users), item_ids=new_ids)
        user_rows = np.arange(len(graph_users))
        item_rows = np.arange(len(new_ids))
        by_user = pd.concat(
            [block_frame(b, out_users[b.user_rows], emb.item_ids)
             for b in iter_ranked(self.model_, emb, user_rows, item_rows, k=k,
                                  rerank_n=self.rerank_n, user_chunk=self.user_chunk)]
            or [_empty_result()], ignore_index=True)
        by_item = _top_users_per_item(self.model_, emb, out_users, k, self.user_chunk)
        # explanations need the old items too: base embeddings plus the new SKUs
        combined = self.emb_.with_items(emb)
        scope = _Scope(frames, combined)
        return NewItemRanking(by_user=by_user, by_item=by_item, cold_items=cold, _rec=self,
                              _scope=scope)

    def _cold_items(self, items: pd.DataFrame) -> list[str]:
        def known(label: NodeLabel, ids: pd.Series) -> np.ndarray:
            nodes = pd.Index(self.frames_.nodes[label]["id"].astype(object))
            return nodes.get_indexer(ids.astype(object).fillna("")) >= 0

        text = (items["title"].fillna("").str.strip() + items["description"].fillna("")
                .str.strip()).str.len().to_numpy() > 0
        ok = text | known(NodeLabel.BRAND, items["brand"]) | \
            known(NodeLabel.CATEGORY, items["category"])
        for col in (c for c in items.columns if c not in ITEM_COLUMNS):
            ok |= known(NodeLabel.ATTRIBUTE, col + "=" + items[col].astype("string")
                        .str.split("|").str[0].str.strip())
        return items["item_id"][~ok].astype(str).tolist()

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
        users = users.astype(object).copy()
        shown = users["user_id"].astype(str).to_numpy(object)
        temp = np.array([f"__new_user__{n}" for n in range(len(users))], dtype=object)
        users["user_id"] = temp
        profile_cols = [c for c in users.columns if c != "user_id"]
        users = users.astype({c: "string" for c in users.columns})
        cl = pd.DataFrame(columns=["user_id", "item_id"]) if clicks is None else clicks
        item_rows = self._item_rows(cl["item_id"]) if len(cl) else np.zeros(0, np.int64)
        to_temp = dict(zip(shown, temp, strict=True))
        cl_user = cl["user_id"].astype(str).map(to_temp)
        if cl_user.isna().any():
            raise ValidationError("clicks name users that are not in users: "
                                  f"{cl['user_id'][cl_user.isna()].unique().tolist()[:5]}")
        inter = pd.DataFrame({
            "user_id": cl_user.to_numpy(object), "item_id": cl["item_id"].astype(str).to_numpy(),
            "event": cl["event"].astype(str).to_numpy() if "event" in cl else "click",
            "ts": pd.to_numeric(cl["ts"]).to_numpy(np.int64) if "ts" in cl
            else np.arange(len(cl), dtype=np.int64),
            "value": np.nan}).astype({"user_id": "string", "item_id": "string",
                                      "event": "string"})
        attr_known = np.zeros(len(users), dtype=bool)
        nodes = pd.Index(self.frames_.nodes[NodeLabel.ATTRIBUTE]["id"].astype(object))
        for c in profile_cols:
            ids = (c + "=" + users[c].astype("string").str.strip()).astype(object).fillna("")
            attr_known |= nodes.get_indexer(ids) >= 0
        has_click = np.isin(temp, inter["user_id"].astype(object).to_numpy())
        cold = shown[~(attr_known | has_click)].tolist()
        if cold:
            warnings.warn(ColdStartWarning(
                f"{len(cold)} new user(s) have no known profile value and no clicks, so they "
                f"get the model's 'unknown user' ranking: {', '.join(map(repr, cold[:5]))}"),
                stacklevel=2)
        extra = _build(CatalogTables(users=users, interactions=inter))
        frames = merge_frames(self.frames_, extra)
        from kgrec.graph.export import to_hetero_data

        folded = to_hetero_data(frames)
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
                                  k=k, rerank_n=self.rerank_n, seen=seen,
                                  user_chunk=self.user_chunk)] or [_empty_result()],
            ignore_index=True)
        # the scope speaks graph ids: the temporary ids stand for the new users
        scope = _Scope(frames, combined)
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

    def _explain_in(self, scope: _Scope, pairs: Sequence[tuple[str, str]],
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
        import time

        self._check_fitted()
        if parquet is None and store is None:
            raise ValueError("give parquet=PATH and/or store=GraphStore")
        start = time.perf_counter()
        rows = (np.arange(len(self._user_pos)) if user_ids is None
                else self._user_rows(user_ids))
        items = (np.arange(len(self._item_pos)) if item_ids is None
                 else np.unique(self._item_rows(item_ids)))
        version, created = self.model_version_, now_iso()
        sink = ParquetSink(parquet) if parquet is not None else None
        explain_parts: list[pd.DataFrame] = []
        n_rows = n_edges = 0
        graph_users = np.asarray(self.emb_.user_ids, dtype=object)
        for block in iter_ranked(self.model_, self.emb_, rows, items, k=k,
                                 rerank_n=self.rerank_n,
                                 seen=self.seen_ if exclude_seen else None,
                                 user_chunk=self.user_chunk, show_progress=show_progress):
            frame = block_frame(block, graph_users[block.user_rows], self.emb_.item_ids)
            n_rows += len(frame)
            if sink is not None:
                sink.write(frame, version, created)
            if store is not None:
                n_edges += write_to_store(store, frame, graph_users[block.user_rows].tolist(),
                                          version, created)
            if explain_to is not None and len(frame):
                paths = top_paths(self.model_, self.emb_, self._scope_.index(
                    self.explain_history), frame, max_paths=max_paths)
                explain_parts.append(path_records(paths))
        out_path = sink.close() if sink is not None else None
        exp_path = None
        if explain_to is not None:
            exp_path = _write_table(pd.concat(explain_parts, ignore_index=True)
                                    if explain_parts else path_records(top_paths(
                                        self.model_, self.emb_, self._scope_.index(
                                            self.explain_history),
                                        pd.DataFrame(columns=["user_id", "item_id"]))),
                                    Path(explain_to))
        return CandidateRun(rows=n_rows, users=len(rows), parquet=out_path, store_edges=n_edges,
                            explanations=exp_path, model_version=version, created_at=created,
                            seconds=time.perf_counter() - start)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model folder: ``model/`` (``ColdStartModel.save``) + ``recommender.json``.

        The graph and the pseudonym key are not saved: pass the graph again to :meth:`load`.
        """
        self._check_fitted()
        path = Path(path)
        self.model_.save(path / MODEL_SUBDIR)
        params = {k: v for k, v in self.get_params().items()
                  if k not in ("pseudonymizer", "text_encoder") and k not in
                  self.model_params}
        state = {"kgrec_version": __version__, "params": params,
                 "model_version": self.model_version_}
        tmp = path / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path / STATE_FILE)
        return path

    @classmethod
    def load(cls, path: str | Path, graph: GraphStore | ExportedGraph, *,
             pseudonymizer: Pseudonymizer | None = None,
             text_encoder: TextEncoder | None = None) -> Recommender:
        """Load a :meth:`save` folder and attach ``graph`` (the store it serves).

        Raises:
            ModelError: missing/unreadable files.
            IncompatibleModelError: another kgrec version or text encoder.
        """
        from kgrec.coldstart import ColdStartModel

        path = Path(path)
        try:
            state = json.loads((path / STATE_FILE).read_text())
        except (OSError, ValueError) as e:
            raise ModelError(f"{path / STATE_FILE} is missing or unreadable ({e}); is {path} "
                             "a folder written by Recommender.save / kgrec train?") from e
        model = ColdStartModel.load(path / MODEL_SUBDIR, text_encoder=text_encoder)
        rec = cls(pseudonymizer=pseudonymizer, text_encoder=text_encoder, **state["params"])
        frames, exported = _frames_and_export(graph)
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


@dataclass
class NewUserRanking:
    """Result of :meth:`Recommender.recommend_for_new_users`.

    Attributes:
        by_user: ``user_id, item_id, rank, score`` (user ids as given).
        cold_users: Users with nothing to score them from (a ``ColdStartWarning`` was issued).
    """

    by_user: pd.DataFrame
    cold_users: list[str] = field(default_factory=list)
    _rec: Recommender | None = field(default=None, repr=False)
    _scope: _Scope | None = field(default=None, repr=False)
    _temp: dict[str, str] = field(default_factory=dict, repr=False)

    def explain(self, user_id: str, item_id: str, max_paths: int = 3) -> Explanation:
        """Graph paths supporting ``item_id`` for the new user ``user_id`` (as given).

        The new user is not in the store; the paths show it under the id the caller gave.
        """
        if self._rec is None or self._scope is None:
            raise NotFittedError("this ranking has no graph attached")
        if user_id not in self._temp:
            raise UnknownIdError("User", [user_id], hint="not one of the new users ranked")
        temp = self._temp[user_id]
        exp = self._rec._explain_in(self._scope, [(temp, item_id)], max_paths)[0]

        def shown(node: PathNode) -> PathNode:
            return PathNode(node.label, user_id) if node.label == "User" and node.id == temp \
                else node

        paths = tuple(replace(p, nodes=tuple(shown(n) for n in p.nodes)) for p in exp.paths)
        return replace(exp, user_id=user_id, paths=paths)


def model_version(model: ColdStartModel) -> str:
    """``kgrec-<version>-<12 hex digits of a hash of the weights and calibration>``."""
    h = hashlib.sha256()
    for module in (model.encoder_, model.head_):
        for name, t in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps([model.calibrator_.a_, model.calibrator_.b_]).encode())
    return f"kgrec-{__version__}-{h.hexdigest()[:12]}"


def _empty_result() -> pd.DataFrame:
    return pd.DataFrame({"user_id": pd.Series(dtype="string"),
                         "item_id": pd.Series(dtype="string"),
                         "rank": pd.Series(dtype="int64"), "score": pd.Series(dtype="float64")})


def _top_users_per_item(model: ColdStartModel, emb: NodeEmbeddings, out_users: np.ndarray,
                        k: int, chunk: int) -> pd.DataFrame:
    """For each item of ``emb``, the ``k`` users of ``emb`` with the highest probability."""
    n_u, n_i = len(emb.user_ids), len(emb.item_ids)
    k_eff = min(k, n_u)
    if n_u == 0 or n_i == 0:
        return _empty_result()
    parts = []
    rows_per = max(1, (1 << 16) // max(n_u, 1))
    for s in range(0, n_i, max(rows_per, 1)):
        items = np.arange(s, min(n_i, s + rows_per))
        p = model.score_matrix(emb, np.arange(n_u), items,  # type: ignore[arg-type]
                               chunk_size=1 << 16).T  # (items, U)
        order = np.argsort(-p, axis=1, kind="stable")[:, :k_eff]
        parts.append(pd.DataFrame({
            "user_id": out_users[order.reshape(-1)],
            "item_id": np.repeat(np.asarray(emb.item_ids, dtype=object)[items], k_eff),
            "rank": np.tile(np.arange(1, k_eff + 1), len(items)),
            "score": np.take_along_axis(p, order, 1).reshape(-1).astype(np.float64)}))
    return pd.concat(parts, ignore_index=True).astype({"user_id": "string", "item_id": "string"})


def _canonical_items(new_items: pd.DataFrame) -> pd.DataFrame:
    if "item_id" not in new_items.columns:
        raise ValidationError("new_items needs an item_id column; found: "
                              f"{', '.join(map(str, new_items.columns))}")
    items = new_items.copy()
    for col in ITEM_COLUMNS:
        if col not in items.columns:
            items[col] = pd.NA
    ids = items["item_id"].astype("string").str.strip()
    if ids.isna().any() or (ids == "").any():
        raise ValidationError("new_items has rows without an item_id")
    if ids.duplicated().any():
        raise ValidationError(f"duplicate item_id in new_items: "
                              f"{ids[ids.duplicated()].unique().tolist()[:5]}")
    items["item_id"] = ids
    items["price"] = pd.to_numeric(items["price"], errors="coerce").astype("float64")
    for col in items.columns:
        if col != "price":
            items[col] = items[col].astype("string")
    return items.reset_index(drop=True)


def _build(tables: CatalogTables) -> GraphFrames:
    from kgrec.graph.build import build_graph

    return build_graph(tables)


def merge_frames(base: GraphFrames, extra: GraphFrames) -> GraphFrames:
    """``base`` plus the nodes and edges of ``extra`` (existing node ids keep base's values)."""
    out = GraphFrames()
    for label in NodeLabel:
        parts = [f for f in (base.nodes.get(label), extra.nodes.get(label)) if f is not None]
        frame = pd.concat(parts, ignore_index=True).drop_duplicates("id", keep="first") \
            if parts else pd.DataFrame()
        out.nodes[label] = normalize_nodes(label, frame)
    for rel in GRAPH_REL_TYPES:
        parts = [f for f in (base.edges.get(rel), extra.edges.get(rel))
                 if f is not None and len(f)]
        if parts:
            out.edges[rel] = normalize_edges(rel, pd.concat(parts, ignore_index=True))
    return out


def _frames_and_export(graph: object) -> tuple[GraphFrames, ExportedGraph]:
    from kgrec.graph.export import ExportedGraph, to_hetero_data
    from kgrec.graph.store import GraphStore, read_graph

    if isinstance(graph, ExportedGraph):
        return frames_from_export(graph), graph
    if isinstance(graph, GraphFrames):
        return graph, to_hetero_data(graph)
    if isinstance(graph, GraphStore):
        frames = read_graph(graph)
        return frames, to_hetero_data(frames)
    raise TypeError(f"expected a GraphStore, GraphFrames or ExportedGraph, got "
                    f"{type(graph).__name__}")


def frames_from_export(graph: ExportedGraph) -> GraphFrames:
    """Graph frames that export back to ``graph`` (nodes, edges and item text)."""
    out = GraphFrames()
    items = graph.items.rename(columns={"item_id": "id"})
    out.nodes[NodeLabel.ITEM] = normalize_nodes(NodeLabel.ITEM, items)
    for label in (NodeLabel.USER, NodeLabel.BRAND):
        out.nodes[label] = normalize_nodes(label, pd.DataFrame(
            {"id": graph.node_ids[label.value]}))
    cats = pd.Series(graph.node_ids[NodeLabel.CATEGORY.value], dtype="string")
    out.nodes[NodeLabel.CATEGORY] = normalize_nodes(NodeLabel.CATEGORY, pd.DataFrame(
        {"id": cats, "name": cats.str.split(" > ").str[-1]}))
    attrs = pd.Series(graph.node_ids[NodeLabel.ATTRIBUTE.value], dtype="string")
    kv = attrs.str.split("=", n=1)
    out.nodes[NodeLabel.ATTRIBUTE] = normalize_nodes(NodeLabel.ATTRIBUTE, pd.DataFrame(
        {"id": attrs, "key": kv.str[0], "value": kv.str[1]}))
    for et in graph.data.edge_types:
        src, rel, dst = et
        store = graph.data[et]
        ei = store.edge_index.numpy()
        frame = pd.DataFrame({"src_label": src, "src": graph.node_ids[src][ei[0]],
                              "dst_label": dst, "dst": graph.node_ids[dst][ei[1]]})
        if rel == RelType.INTERACTED.value:
            frame["event"] = np.asarray(graph.event_vocab, dtype=object)[
                store.edge_event.numpy()]
            frame["ts"] = store.edge_time.numpy()
            frame["value"] = store.edge_value.numpy().astype(np.float64)
        if rel == RelType.RELATED.value:
            frame["relation"] = np.asarray(graph.relation_vocab, dtype=object)[
                store.edge_relation.numpy()]
        rt = RelType(rel)
        prev = out.edges.get(rt)
        out.edges[rt] = normalize_edges(rt, frame if prev is None else
                                        pd.concat([prev, frame], ignore_index=True))
    return out


def _write_table(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
    tmp.replace(path)
    return path


