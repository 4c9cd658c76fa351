"""Typed results of the recommender's fold-in calls, each able to explain its rankings.

A ranking of new SKUs or new users keeps the folded graph and embeddings it was made on (a
:class:`Scope`), so ``explain`` can show the graph paths behind any of its rows afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pandas as pd

from kgrec.errors import NotFittedError, UnknownIdError
from kgrec.graph.frames import GraphFrames
from kgrec.graph.schema import NodeLabel
from kgrec.ranking.explain import Explanation, PathIndex, PathNode

if TYPE_CHECKING:
    from kgrec.coldstart import NodeEmbeddings
    from kgrec.ranking.recommender import Recommender


@dataclass
class Scope:
    """A graph plus embeddings of (at least) the nodes being ranked/explained.

    ``source`` is the graph, or a function that builds it: a ranking of new SKUs defers
    merging them into the graph's frames until an explanation needs them.
    """

    source: GraphFrames | Callable[[], GraphFrames]
    emb: NodeEmbeddings
    _index: PathIndex | None = None

    @property
    def frames(self) -> GraphFrames:
        if callable(self.source):
            self.source = self.source()
        return self.source

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
    _scope: Scope | None = field(default=None, repr=False)

    def explain(self, user_id: str, item_id: str, max_paths: int = 3) -> Explanation:
        """Graph paths supporting ``item_id`` (a new SKU) for ``user_id`` (see explain.py)."""
        if self._rec is None or self._scope is None:
            raise NotFittedError("this ranking has no graph attached")
        return self._rec._explain_in(self._scope, [(user_id, item_id)], max_paths)[0]


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
    _scope: Scope | None = field(default=None, repr=False)
    _temp: dict[str, str] = field(default_factory=dict, repr=False)

    def explain(self, user_id: str, item_id: str, max_paths: int = 3) -> Explanation:
        """Graph paths supporting ``item_id`` for the new user ``user_id`` (as given).

        The new user is not in the store; the paths show it under the id the caller gave.
        """
        if self._rec is None or self._scope is None:
            raise NotFittedError("this ranking has no graph attached")
        if user_id not in self._temp:
            raise UnknownIdError(NodeLabel.USER.value, [user_id],
                                 hint="not one of the new users ranked")
        temp = self._temp[user_id]
        exp = self._rec._explain_in(self._scope, [(temp, item_id)], max_paths)[0]

        def shown(node: PathNode) -> PathNode:
            is_new = node.label == NodeLabel.USER.value and node.id == temp
            return PathNode(node.label, user_id) if is_new else node

        paths = tuple(replace(p, nodes=tuple(shown(n) for n in p.nodes)) for p in exp.paths)
        return replace(exp, user_id=user_id, paths=paths)
