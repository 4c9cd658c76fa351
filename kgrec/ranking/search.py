"""Personalised product search over the graph: hybrid retrieval, then a graph-model re-rank.

Scoring of one query (for all items, new SKUs included; ``z`` = per-query z-score over the
items being ranked)::

    hybrid   = w_lex z(BM25) + w_dense z(cos(query, item text)) [+ w_pop z(log1p popularity)]
    personal = hybrid + w_personal z_N(CTR-head logit of (user, item))   on the top-N of hybrid

Items below the hybrid's top ``rerank_n`` keep their hybrid order after the re-ranked ones;
items whose title is exactly the query come first (:func:`exact_title_first`).
Why z-scores: BM25, cosine and logits live on unrelated scales that also change from query to
query; standardising each per query makes one set of weights transfer across queries and
catalogues. Why re-rank only the top N: the CTR head is the expensive part and the query has
already decided which items are relevant; the user decides among them. The weights
(:data:`DEFAULT_WEIGHTS`) were chosen once on a validation slice carved from *training*
purchases (``kgrec.evaluation.search_protocol.tune_weights``), never on test data.

No user, or a user the graph does not know, gets the hybrid ranking; a new user with a profile
or a few clicks is folded into the graph (as ``Recommender.recommend_for_new_users`` does) and
gets the personal ranking.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kgrec.errors import NotFittedError, UnknownIdError, ValidationError
from kgrec.graph.schema import NodeLabel, RelType
from kgrec.ranking.search_index import SearchFilters, SearchIndex

if TYPE_CHECKING:
    from kgrec.coldstart import NodeEmbeddings
    from kgrec.ranking.explain import Explanation
    from kgrec.ranking.recommender import Recommender

logger = logging.getLogger(__name__)

#: Ranked ahead of every non-re-ranked item (z-scores are far smaller in magnitude).
_RERANK_OFFSET = 1e6


@dataclass(frozen=True)
class SearchWeights:
    """Mixing weights of the per-query z-scores (module docstring)."""

    lexical: float = 1.0
    dense: float = 1.0
    personal: float = 1.0
    popularity: float = 0.0


#: Chosen on the validation slice of training purchases (benchmarks/EVALUATION.md).
DEFAULT_WEIGHTS = SearchWeights()


def zscore(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Row-wise z-score of ``x`` over its ``valid`` cells (0 where invalid or constant)."""
    x = np.asarray(x, dtype=np.float64)
    n = np.maximum(valid.sum(1, keepdims=True), 1)
    mean = np.where(valid, x, 0.0).sum(1, keepdims=True) / n
    var = np.where(valid, (x - mean) ** 2, 0.0).sum(1, keepdims=True) / n
    std = np.sqrt(var)
    return np.where(valid & (std > 0), (x - mean) / np.where(std > 0, std, 1.0), 0.0)


def hybrid_scores(lexical: np.ndarray, dense: np.ndarray, valid: np.ndarray,
                  weights: SearchWeights, popularity: np.ndarray | None = None) -> np.ndarray:
    """The non-personalised score, ``(b, n_items)``; ``-inf`` where not ``valid``."""
    s = weights.lexical * zscore(lexical, valid) + weights.dense * zscore(dense, valid)
    if weights.popularity and popularity is not None:
        pop = np.broadcast_to(np.log1p(popularity)[None, :], valid.shape)
        s = s + weights.popularity * zscore(pop, valid)
    return np.where(valid, s, -np.inf)


def personal_rerank(hybrid: np.ndarray, weight: float, rerank_n: int,
                    logits_of: Callable[[np.ndarray], np.ndarray],
                    strata: np.ndarray | None = None) -> np.ndarray:
    """Add ``weight * z(logit)`` to the top ``rerank_n`` hybrid items of each row.

    ``logits_of(top)`` gets ``(b, N)`` item rows and returns the model's ``(b, N)`` logits
    (NaN where the model has no score: those items get a neutral personal part).
    ``strata`` (``(n_items,)`` ints) z-scores the logits within each stratum separately.
    Returns final scores ``(b, n_items)``: re-ranked items first, the rest in hybrid order.
    """
    b, n = hybrid.shape
    n_top = int(min(rerank_n, n))
    if weight == 0 or n_top == 0 or b == 0:
        return hybrid
    top = np.argpartition(-hybrid, n_top - 1, axis=1)[:, :n_top]
    h_top = np.take_along_axis(hybrid, top, 1)
    ok = np.isfinite(h_top)
    logit = np.asarray(logits_of(top), dtype=np.float64).reshape(b, n_top)
    scored = ok & np.isfinite(logit)  # NaN logit: no personal evidence, neutral z of 0
    logit = np.where(scored, logit, 0.0)
    if strata is None:
        z = zscore(logit, scored)
    else:
        s_top = strata[top]
        z = sum((zscore(logit, scored & (s_top == g)) for g in np.unique(s_top)),
                np.zeros_like(logit))
    final = h_top + weight * z + _RERANK_OFFSET
    out = hybrid.copy()
    np.put_along_axis(out, top, np.where(ok, final, -np.inf), 1)
    return out


def exact_title_first(scores: np.ndarray, rows: Sequence[np.ndarray]) -> np.ndarray:
    """Rank items whose title *is* the query (``rows[q]`` for row ``q``) above all others.

    Why: a shopper who types a product's exact name wants that product; the personal part
    must not put a popular near-duplicate (another colour, another pack size) above it.
    """
    out = scores
    for q, r in enumerate(rows):
        if len(r):
            if out is scores:
                out = scores.copy()
            ok = r[np.isfinite(out[q, r])]
            out[q, ok] += 2 * _RERANK_OFFSET
    return out


@dataclass(frozen=True)
class SearchExplanation:
    """Why an item matched a query (and, when personalised, why it suits the user).

    Attributes:
        item_id: The item.
        query_terms: The query's tokens.
        matched: Query tokens found per item field (``title``, ``brand``, ``category``,
            ``description``); empty when only the dense match found it.
        lexical, dense: The item's BM25 score and text cosine for the query.
        personal: The model's click probability for the user (None: not personalised).
        paths: The graph paths behind the personal part (None: not personalised).
    """

    item_id: str
    query_terms: tuple[str, ...]
    matched: dict[str, tuple[str, ...]]
    lexical: float
    dense: float
    personal: float | None = None
    paths: Explanation | None = None

    def __str__(self) -> str:
        match = "; ".join(f"{f}: {' '.join(t)}" for f, t in self.matched.items()) or \
            "no exact term (dense match)"
        lines = [f"{self.item_id}: {match} (BM25 {self.lexical:.2f}, cosine {self.dense:.3f})"]
        if self.paths is not None:
            lines.append(str(self.paths))
        return "\n".join(lines)


@dataclass
class SearchResults:
    """Top-``k`` results of one query: ``frame`` has ``item_id, rank, score, lexical, dense,
    personal`` (``personal``: click probability, NaN when not personalised)."""

    query: str
    user_id: str | None
    personalised: bool
    frame: pd.DataFrame
    _explain: Callable[[str, int], SearchExplanation] | None = field(default=None, repr=False)

    @property
    def item_ids(self) -> list[str]:
        return self.frame["item_id"].tolist()

    def explain(self, item_id: str, max_paths: int = 3) -> SearchExplanation:
        """Matched terms/fields and (personalised) graph paths of one result.

        Raises:
            UnknownIdError: ``item_id`` is not among the results.
        """
        if item_id not in set(self.item_ids) or self._explain is None:
            raise UnknownIdError("Item", [item_id], hint="explain one of the results")
        return self._explain(item_id, max_paths)


@dataclass
class _Person:
    """The personal part of one search: embeddings, the user's row, an explain scope.

    ``item_map`` maps index rows to rows of ``emb`` (-1: an added SKU the embeddings lack,
    which gets a neutral personal part); None when they are the same rows.
    """

    emb: NodeEmbeddings
    row: int
    graph_id: str
    shown_id: str
    scope: Any
    item_map: np.ndarray | None = None

    def logits(self, rec: Recommender, items: np.ndarray) -> np.ndarray:
        rows = items if self.item_map is None else self.item_map[items]
        out = rec.model_.predict_logits(self.emb, np.full(rows.size, self.row),
                                        np.maximum(rows, 0).reshape(-1)).reshape(rows.shape)
        return np.where(rows >= 0, out, np.nan)

    def knows(self, item_row: int) -> bool:
        return self.item_map is None or bool(self.item_map[item_row] >= 0)


class ProductSearch:
    """Personalised product search built from a fitted :class:`Recommender`.

    Args:
        weights: Mixing weights, default :data:`DEFAULT_WEIGHTS`.
        rerank_n: Hybrid top-N re-ranked with the user's CTR logits, default 300.
        cold_strata: z-score the logits of items with and without interactions (new SKUs)
            separately, default True. Why: the head scores a new SKU from text and
            attributes only, on a lower scale than items with history (its popularity
            features are zero); pooled, the personal part would push every new SKU down.
        k1, b: BM25 parameters (defaults 1.2, 0.75).
        segmenter: CJK segmenter (default: jieba when installed, else bigrams).

    Attributes:
        index_: The :class:`SearchIndex` (BM25 + dense) over every item, built once in
            ``fit`` and extended by :meth:`add_items`.
        emb_: GNN embeddings of users and every indexed item.
        base_emb_: ``rec.emb_`` at fit time (a refitted recommender builds a new search).
        popularity_: Interactions per indexed item in the fitted graph.
    """

    def __init__(self, *, weights: SearchWeights = DEFAULT_WEIGHTS, rerank_n: int = 300,
                 cold_strata: bool = True, k1: float = 1.2, b: float = 0.75,
                 segmenter: str | None = None) -> None:
        self.weights = weights
        self.rerank_n = rerank_n
        self.cold_strata = cold_strata
        self.k1 = k1
        self.b = b
        self.segmenter = segmenter

    def __repr__(self) -> str:
        return (f"ProductSearch(weights={self.weights}, rerank_n={self.rerank_n}, "
                f"k1={self.k1}, b={self.b})")

    def fit(self, rec: Recommender) -> ProductSearch:
        """Index every item of ``rec``'s graph (text vectors from its encoder); returns self.

        Raises:
            NotFittedError: ``rec`` is not fitted.
            ValueError: ``rerank_n`` < 1.
        """
        from kgrec.ranking.results import Scope

        rec._check_fitted()
        if self.rerank_n < 1:
            raise ValueError(f"rerank_n must be >= 1, got {self.rerank_n}")
        self.rec_ = rec
        featurizer = rec.model_.text_
        items = rec.graph_.items
        from kgrec.encoders import CachedTextEncoder

        # queries skip the on-disk cache: one-off texts, and a disk lookup costs latency
        enc = featurizer.encoder
        query_encoder = enc.encoder if isinstance(enc, CachedTextEncoder) else enc
        self.index_ = SearchIndex(k1=self.k1, b=self.b, segmenter=self.segmenter).fit(
            items, featurizer.item_vectors(items), query_encoder)
        self.emb_ = self.base_emb_ = rec.emb_
        self._user_index = pd.Index(self.emb_.user_ids)
        self.frames_ = rec.frames_
        self._scope = Scope(rec.frames_, rec.emb_)
        ei = rec.graph_.data[(NodeLabel.USER.value, RelType.INTERACTED.value,
                              NodeLabel.ITEM.value)]
        cols = ei.edge_index[1].numpy() if "edge_index" in ei else np.zeros(0, np.int64)
        self.popularity_ = np.bincount(cols, minlength=len(items)).astype(np.float64)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "index_"):
            raise NotFittedError("ProductSearch is not fitted: call ProductSearch().fit(rec) "
                                 "or rec.search(...)")

    # -- new SKUs ---------------------------------------------------------------------------
    def add_items(self, new_items: pd.DataFrame) -> ProductSearch:
        """Make new SKUs searchable (and personally scored) without retraining; returns self.

        The SKUs are folded into the graph with their text and Brand/Category/Attribute links
        (as ``Recommender.rank_new_items``), embedded by the fitted GNN, and added to both
        indexes (only their text is tokenised and encoded).

        Raises:
            ValidationError: no ``item_id`` column, or missing/duplicate ids.
            DataError: an id already searchable.
        """
        from kgrec.graph.build import build_graph
        from kgrec.graph.export import to_hetero_data
        from kgrec.graph.tables import CatalogTables
        from kgrec.ranking.foldin import canonical_items, merge_frames
        from kgrec.ranking.results import Scope

        self._check_fitted()
        items = canonical_items(new_items)
        vectors = self.rec_.model_.text_.item_vectors(items)
        self.index_.add_items(items, vectors)  # raises DataError on a known id
        self.frames_ = merge_frames(self.frames_, build_graph(CatalogTables(items=items)))
        folded = to_hetero_data(self.frames_)
        self.emb_ = self.rec_.model_.transform(folded)
        order = pd.Index(self.emb_.item_ids).get_indexer(self.index_.item_ids_)
        self.emb_ = _select_items(self.emb_, order)
        self._user_index = pd.Index(self.emb_.user_ids)
        self._scope = Scope(self.frames_, self.emb_)
        self.popularity_ = np.concatenate([self.popularity_, np.zeros(len(items))])
        return self

    # -- searching --------------------------------------------------------------------------
    def search(self, query: str, *, user: str | None = None,
               profile: Mapping[str, object] | None = None, clicks: Sequence[str] = (),
               k: int = 20, candidates: Sequence[str] | None = None,
               filters: SearchFilters | Mapping[str, Any] | None = None) -> SearchResults:
        """Top-``k`` items for ``query``, personalised for ``user`` when the graph knows them.

        Args:
            query: Free text in any script.
            user: A user id (raw with the recommender's pseudonymizer); unknown or None gives
                the non-personalised ranking unless ``profile``/``clicks`` are given.
            profile, clicks: A new user's profile values and clicked item ids: folded into the
                graph for the personal part.
            k: Results to return.
            candidates: Restrict to these item ids.
            filters: :class:`SearchFilters` or a dict with its field names.

        Raises:
            NotFittedError: before ``fit``.
            ValidationError: an empty query.
            ValueError: ``k`` < 1.
            UnknownIdError: unknown candidate or clicked item ids.
            ConfigError: an unknown filter.
        """
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("the query is empty: pass some words to search for")
        valid = self.index_.mask(candidates, SearchFilters.coerce(filters))[None, :]
        lex = self.index_.lexical_scores([query])
        dense = self.index_.dense_scores([query])
        hybrid = hybrid_scores(lex, dense, valid, self.weights, self.popularity_)
        person = self._person(user, profile, clicks)
        scores = hybrid
        seen_logit = np.full(hybrid.shape[1], np.nan)  # logits of the re-ranked items

        def logits_of(top: np.ndarray) -> np.ndarray:
            assert person is not None
            out = person.logits(self.rec_, top)
            seen_logit[top[0]] = out[0]
            return out

        if person is not None:
            scores = personal_rerank(hybrid, self.weights.personal, self.rerank_n, logits_of,
                                     self.strata())
        s = exact_title_first(scores, [self.index_.exact_title_rows(query)])[0]
        n_valid = int(np.isfinite(s).sum())
        k_eff = min(k, n_valid)
        top = np.argpartition(-s, k_eff - 1)[:k_eff] if k_eff else np.zeros(0, np.int64)
        top = top[np.lexsort((top, -s[top]))]
        prob = np.full(len(top), np.nan)
        if person is not None and len(top):
            logit = seen_logit[top]
            missing = np.isnan(logit) & (person.item_map is None or
                                         person.item_map[top] >= 0)  # type: ignore[index]
            if missing.any():  # below the re-ranked top N (k > rerank_n, or weight 0)
                logit[missing] = person.logits(self.rec_, top[missing])
            ok = np.isfinite(logit)
            prob[ok] = self.rec_.model_.calibrator_.predict_proba(logit[ok])
        frame = pd.DataFrame({
            "item_id": self.index_.item_ids_[top].astype(str),
            "rank": np.arange(1, len(top) + 1), "score": s[top],
            "lexical": lex[0, top].astype(np.float64), "dense": dense[0, top].astype(np.float64),
            "personal": prob})

        def explain(item_id: str, max_paths: int) -> SearchExplanation:
            row = int(self.index_.item_ids_.get_loc(item_id))
            paths = None
            if person is not None and person.knows(row):
                paths = self.rec_._explain_in(person.scope, [(person.graph_id, item_id)],
                                              max_paths)[0]
                paths = _shown_as(paths, person.graph_id, person.shown_id)
            return SearchExplanation(
                item_id=item_id, query_terms=tuple(self.index_.query_tokens(query)),
                matched=self.index_.matched_terms(query, row), lexical=float(lex[0, row]),
                dense=float(dense[0, row]),
                personal=None if person is None else float(
                    frame.set_index("item_id").loc[item_id, "personal"]),
                paths=paths)

        return SearchResults(query=query, user_id=user, personalised=person is not None,
                             frame=frame, _explain=explain)

    def strata(self) -> np.ndarray | None:
        """Per indexed item: 1 without interactions in the graph (a new SKU), else 0."""
        return (self.popularity_ == 0).astype(np.int8) if self.cold_strata else None

    def _person(self, user: str | None, profile: Mapping[str, object] | None,
                clicks: Sequence[str]) -> _Person | None:
        """The user's embedding row: known user, folded-in new user, or None."""
        rec = self.rec_
        if user is not None:
            gid = str(rec._graph_user_ids([user])[0])
            pos = self._user_index.get_indexer([gid])[0]
            if pos >= 0:
                return _Person(self.emb_, int(pos), gid, gid, self._scope)
            if not profile and not clicks:
                logger.info("search: user %r is not in the graph; non-personalised ranking",
                            user)
                return None
        if not profile and not clicks:
            return None
        users = pd.DataFrame([{"user_id": "new-user", **{str(a): v for a, v in
                                                          (profile or {}).items()
                                                          if v is not None}}])
        cl = pd.DataFrame({"user_id": "new-user", "item_id": [str(c) for c in clicks]})
        ranking = rec.recommend_for_new_users(users, cl, k=1)
        scope = ranking._scope
        assert scope is not None
        temp = ranking._temp["new-user"]
        order = pd.Index(scope.emb.item_ids).get_indexer(self.index_.item_ids_)
        if (order < 0).any():  # SKUs added after fit are not in the fold-in's embeddings
            logger.info("search: %d added SKU(s) get a neutral personal score for a new user",
                        int((order < 0).sum()))
        row = int(pd.Index(scope.emb.user_ids).get_indexer([temp])[0])
        same = len(order) == len(scope.emb.item_ids) and (order == np.arange(len(order))).all()
        return _Person(scope.emb, row, temp, str(user or "new-user"), scope,
                       item_map=None if same else order)


def _shown_as(exp: Explanation, graph_id: str, shown: str) -> Explanation:
    """``exp`` with the user node ``graph_id`` (a temporary fold-in id) shown as ``shown``."""
    from kgrec.ranking.explain import PathNode

    def node(n: PathNode) -> PathNode:
        return PathNode(n.label, shown) if n.label == "User" and n.id == graph_id else n

    return replace(exp, user_id=shown, paths=tuple(
        replace(p, nodes=tuple(node(n) for n in p.nodes)) for p in exp.paths))


def _select_items(emb: NodeEmbeddings, rows: np.ndarray) -> NodeEmbeddings:
    """``emb`` with its items re-ordered/selected by ``rows`` (pair inputs kept aligned)."""
    import torch

    idx = torch.as_tensor(np.asarray(rows, dtype=np.int64))
    return replace(emb, item=emb.item[idx], item_ids=np.asarray(emb.item_ids, object)[rows],
                   pairs=None if emb.pairs is None else emb.pairs.select(None, idx))
