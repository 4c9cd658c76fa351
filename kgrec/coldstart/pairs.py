"""Graph-path match features of a (user, item) pair, for the CTR head's "wide" part.

Why: a cold item has no interaction edge, so everything the model knows about it is its text
and its Brand/Category/Attribute links, and the user's side is the items they interacted with.
Mean aggregation in the GNN blurs a user's history into one vector; these features keep the
sharp signals the paths ``User -> Item ~text~ candidate`` and ``User -> Item -> Brand <- candidate``
carry, computed exactly from the graph (no learned parts, no gradients):

* ``text_mean``: mean cosine between the candidate's text vector and the user's history items;
* ``text_max``: the largest such cosine (the closest item the user already took);
* ``share_<REL>``: for each Item->Brand/Category/Attribute relation, the share of the user's
  history items linked to the candidate's brand (category, ...), averaged over the candidate's
  links of that relation;
* ``peer_share`` (when users have profile attributes): for each of the user's profile values
  (``User -> Attribute``), the share of the users with that value who took the candidate,
  averaged over the values: the path ``User -> Attribute <- User -> Item``, which is all a
  new user with a profile and no clicks has;
* ``has_history``: 1 when the user has any history item other than the candidate, else 0
  (the text and share features are then 0);
* ``item_log_degree``: ``log1p`` of the candidate's interactions / 10 (a popularity prior, the
  only signal for a user nothing is known about);
* ``item_has_history``: 1 when the candidate has interactions itself (a warm item), so the
  part can weigh the content match differently for cold items;
* ``lex_mean``, ``lex_max`` (with lexical vectors, :mod:`kgrec.encoders.lexical`): the mean and
  largest TF-IDF cosine between the candidate's text and the history items' texts -- the
  exact-word match a sentence encoder blurs;
* ``cooc_mean``, ``cooc_max`` (optional, :mod:`kgrec.coldstart.cooc`): item co-occurrence;
* ``history_log_len``, ``short_history`` (optional): ``log1p`` of the user's history size / 10,
  and 1 when it holds 1 to ``SHORT_HISTORY_MAX`` items. Why: one or two clicks make a noisy
  match (one co-purchase, one similar text), where popularity should weigh more than for a
  user with a hundred items; without them the wide part applies one weighting to both, and the
  flag gives such users a gate of their own (:class:`~kgrec.coldstart.heads.CTRHead`).
* ``text_recent``, ``cooc_recent`` (optional; the second with co-occurrence): the text and
  co-occurrence cosines weighted by recency (:func:`recency_weights`). Why: the mean treats a
  user's first and latest items alike, while what a user takes next follows most from what
  they took last (a film site's sessions, a shopper's current project).

History = the user's interaction (message) edges in the graph being scored, at most
``max_history`` most recent per user, minus the candidate item itself: the features describe
the user's *other* items, so a sampled training negative that the user did take is not
"a perfect match labelled 0", and a warm candidate is not its own best match. Attribute
nodes are compared by a stable hash of their
external id, so rows of different graphs (a new SKU folded in later) compare correctly.
Everything is row-aligned with :class:`~kgrec.coldstart.inference.NodeEmbeddings`, so the
recommender can concatenate users or items of two transforms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import Tensor

from kgrec.coldstart.cooc import CoocTable, cooc_table, pair_key, sorted_lookup
from kgrec.coldstart.features import ITEM, SHARED_TYPES, USER, EdgeType, GraphTensors
from kgrec.coldstart.item_tables import ItemTables, attr_slots
from kgrec.encoders.lexical import row_dots
from kgrec.graph.export import ExportedGraph

DEFAULT_MAX_HISTORY = 256
_EXPANDED_BUDGET = 1 << 22  # most (history entry x candidate x slot) cells held at once


def feature_names(attr_types: Sequence[EdgeType], profile: bool = False,
                  cooc: bool = False, lexical: bool = False,
                  history: bool = False, recency: bool = False) -> list[str]:
    """Column names of the features for a model with these Item->attribute relations (and
    User->attribute relations when ``profile``; co-occurrence features when ``cooc``; TF-IDF
    cosines when ``lexical``; the history-size features when ``history``; the
    recency-weighted matches when ``recency``)."""
    return ["text_mean", "text_max", *[f"share_{et[1]}" for et in attr_types],
            *(["peer_share"] if profile else []), *(["cooc_mean", "cooc_max"] if cooc else []),
            *(["lex_mean", "lex_max"] if lexical else []),
            "item_log_degree", "has_history", "item_has_history",
            *(["history_log_len", "short_history"] if history else []),
            *((["text_recent"] + (["cooc_recent"] if cooc else [])) if recency else [])]


GATE_FLAGS: tuple[str, ...] = ("has_history", "item_has_history", "short_history")
SHORT_HISTORY_MAX = 3  # a "short" history: 1 to 3 items (the evaluation's k = 1 and k = 3)
# the recency-weighted matches are 0 below this many history items: for one item they equal the
# means, and one to three revealed clicks are the short-history part's to weigh
RECENCY_MIN_HISTORY = SHORT_HISTORY_MAX + 1


def gate_columns(names: Sequence[str]) -> tuple[int, ...]:
    """Columns of the 0/1 flags the head's gate reads, looked up by name in ``names`` (the
    ``short_history`` flag only where the features have it)."""
    return tuple(names.index(f) for f in GATE_FLAGS if f in names)


LOG_DEGREE_SCALE = 10.0  # item_log_degree = log1p(interactions) / 10: about 0..1


def recency_weights(hist_ptr: Tensor, users: Tensor, rows: Tensor, flat: Tensor) -> Tensor:
    """``1 / (1 + j)`` for each expanded history entry (:func:`csr_expand`), ``j`` its position
    in its user's history (:func:`build_pair_inputs` orders it most recent first). Fixed, not
    fitted: the latest item weighs as much as the next two, and a long history still counts
    (256 weights sum to about 6)."""
    return 1.0 / (1.0 + (flat - hist_ptr[users][rows]).to(torch.float32))


def stable_keys(label: str, ids: np.ndarray) -> Tensor:
    """Non-zero int64 hashes of ``label:id`` (0 marks an empty attribute slot)."""
    if len(ids) == 0:
        return torch.zeros(0, dtype=torch.long)
    keys = pd.util.hash_array(np.asarray(ids).astype(str).astype(object))
    salt = pd.util.hash_array(np.asarray([label], dtype=object))[0]
    return torch.from_numpy(((keys ^ salt) | np.uint64(1)).view(np.int64))


def graph_keys(graph: ExportedGraph) -> dict[str, Tensor]:
    """Stable keys of the Item and attribute nodes of ``graph`` (:func:`stable_keys`)."""
    return {t: stable_keys(t, np.asarray(graph.node_ids.get(t, np.empty(0)), dtype=object))
            for t in (ITEM, *SHARED_TYPES)}


def _pad(blocks: Sequence[Tensor]) -> list[Tensor]:
    k = max(b.shape[1] for b in blocks)
    return [torch.nn.functional.pad(b, (0, k - b.shape[1])) for b in blocks]


@dataclass
class PairInputs:
    """Per-node inputs of the pair features, row-aligned with a ``NodeEmbeddings``.

    Shapes:
        ``item_keys`` ``(n_items,)`` stable id hashes, ``item_text`` ``(n_items, d)`` unit text
        vectors and ``item_attrs[r]`` ``(n_items, k_r)`` attribute keys of the embedding's
        items; ``hist_ptr`` ``(n_users + 1,)`` and ``hist_idx`` ``(nnz,)``: user ``u``'s
        history is ``pool_*[hist_idx[ptr[u]:ptr[u+1]]]``; ``pool_keys`` ``(n_pool,)``,
        ``pool_text`` ``(n_pool, d)``, ``pool_attrs[r]`` ``(n_pool, k_r)``.
    """

    item_keys: Tensor
    item_text: Tensor
    item_attrs: list[Tensor]
    item_degree: Tensor  # log1p(interactions) of each item in this graph
    hist_ptr: Tensor
    hist_idx: Tensor
    pool_keys: Tensor
    pool_text: Tensor
    pool_attrs: list[Tensor]
    profile: Tensor | None = None
    peer_keys: Tensor | None = None
    peer_vals: Tensor | None = None
    tables: ItemTables | None = None  # only while pool rows == item rows (build_pair_inputs)
    cooc: CoocTable | None = None  # item co-occurrence of the history graph (cooc.py)
    item_lex: sp.csr_matrix | None = None  # TF-IDF rows of the items (encoders.lexical)
    pool_lex: sp.csr_matrix | None = None  # ... and of the history pool
    history: bool = False  # add the history-size features
    recency: bool = False  # add the recency-weighted matches
    recency_on: bool = True  # False: their columns are 0 (joint training, see without_recency)

    @property
    def n_features(self) -> int:
        return (5 + len(self.item_attrs) + (self.profile is not None)
                + 2 * (self.cooc is not None) + 2 * (self.item_lex is not None)
                + 2 * self.history + self.n_recency)

    @property
    def n_recency(self) -> int:
        """Columns of the recency-weighted matches: text, then co-occurrence where present."""
        return (1 + (self.cooc is not None)) if self.recency else 0

    def _users_part(self, other: PairInputs
                    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """Profile rows of these users followed by ``other``'s, and ``other``'s peer table."""
        if self.profile is None or other.profile is None:
            return None, None, None
        assert self.peer_keys is not None and self.peer_vals is not None
        assert other.peer_keys is not None and other.peer_vals is not None
        # ``other`` comes from the later graph (a fold-in of new users into this one), so its
        # table is used for everyone: the same shares as recomputing on that graph
        return torch.cat(_pad([self.profile, other.profile])), other.peer_keys, other.peer_vals

    def with_users(self, other: PairInputs) -> PairInputs:
        """These users followed by ``other``'s (items stay this object's). ``other`` is
        expected to come from a graph that contains this one (new users folded in): its
        peer-share table then serves all users."""
        same_pool = other.pool_text is self.pool_text
        offset = 0 if same_pool else len(self.pool_text)
        pool_keys = self.pool_keys if same_pool else torch.cat([self.pool_keys, other.pool_keys])
        pool_text = self.pool_text if same_pool else torch.cat([self.pool_text, other.pool_text])
        pool_attrs = self.pool_attrs if same_pool else [
            torch.cat(_pad([a, b])) for a, b in zip(self.pool_attrs, other.pool_attrs,
                                                    strict=True)]
        pool_lex = self.pool_lex if same_pool or self.pool_lex is None or \
            other.pool_lex is None else sp.vstack([self.pool_lex, other.pool_lex], format="csr")
        profile, peer_keys, peer_vals = self._users_part(other)
        # tables index pool rows as item rows: no longer valid once either side changes
        return dataclasses.replace(
            self, hist_ptr=torch.cat([self.hist_ptr, other.hist_ptr[1:] + self.hist_ptr[-1]]),
            hist_idx=torch.cat([self.hist_idx, other.hist_idx + offset]), pool_keys=pool_keys,
            pool_text=pool_text, pool_attrs=pool_attrs, profile=profile, peer_keys=peer_keys,
            peer_vals=peer_vals, tables=None, cooc=other.cooc, pool_lex=pool_lex)

    def with_items(self, other: PairInputs) -> PairInputs:
        """These items followed by ``other``'s (users stay this object's)."""
        return dataclasses.replace(
            self, item_keys=torch.cat([self.item_keys, other.item_keys]),
            item_text=torch.cat([self.item_text, other.item_text]),
            item_attrs=[torch.cat(_pad([a, b])) for a, b in zip(self.item_attrs,
                                                                other.item_attrs, strict=True)],
            item_degree=torch.cat([self.item_degree, other.item_degree]), tables=None,
            item_lex=None if self.item_lex is None or other.item_lex is None
            else sp.vstack([self.item_lex, other.item_lex], format="csr"))

    def select(self, users: Tensor | None = None, items: Tensor | None = None) -> PairInputs:
        """The rows ``users`` / ``items`` (``None``: all), sharing the pool."""
        changes: dict[str, Any] = {"tables": None}
        if items is not None:
            changes.update(item_keys=self.item_keys[items], item_text=self.item_text[items],
                           item_degree=self.item_degree[items],
                           item_attrs=[a[items] for a in self.item_attrs],
                           item_lex=None if self.item_lex is None
                           else self.item_lex[items.numpy()])
        if users is not None:
            _, flat = csr_expand(self.hist_ptr, users)
            count = self.hist_ptr[users + 1] - self.hist_ptr[users]
            changes.update(profile=None if self.profile is None else self.profile[users],
                           hist_ptr=torch.cat([torch.zeros(1, dtype=torch.long),
                                               torch.cumsum(count, 0)]),
                           hist_idx=self.hist_idx[flat])
        return dataclasses.replace(self, **changes)


def without_recency(inputs: PairInputs) -> PairInputs:
    """``inputs`` whose recency-weighted columns are 0 (kept: the head's shape holds). Why:
    joint training draws supervision positives at random times, where the order of the rest
    of a history says nothing; the columns are learned from time-ordered targets only (the
    refit's held-out sets, each validation user's latest items: :mod:`kgrec.coldstart.refit`)."""
    return dataclasses.replace(inputs, recency_on=False)


def build_pair_inputs(tensors: GraphTensors, msg_pairs: Tensor, attr_types: Sequence[EdgeType],
                      node_keys: dict[str, Tensor], text_dim: int,
                      max_history: int = DEFAULT_MAX_HISTORY,
                      pair_time: Tensor | None = None,
                      profile_types: Sequence[EdgeType] = (),
                      tables: ItemTables | None = None, cooc: bool = False,
                      lex: sp.csr_matrix | None = None, history: bool = False,
                      recency: bool = False) -> PairInputs:
    """Pair inputs of every user and item of ``tensors``; history = ``msg_pairs`` ``(2, E)``.

    ``node_keys``: stable keys (:func:`stable_keys`) of the Item nodes and of the attribute
    node types of ``attr_types`` and ``profile_types`` (User->attribute relations: with any,
    the ``peer_share`` feature is on).

    With ``pair_time`` ``(E,)`` the ``max_history`` most recent pairs of each user are kept,
    else the first ones in ``msg_pairs`` order. ``tables``: :func:`item_tables` of the same
    ``tensors`` (computed once per graph, reused by every call). ``cooc``: add the item
    co-occurrence table of the history graph (:mod:`kgrec.coldstart.cooc`). ``lex``: TF-IDF
    rows of the items (:mod:`kgrec.encoders.lexical`), for the ``lex_*`` features.
    ``history``: add the history-size features; ``recency``: the recency-weighted matches
    (their order is ``pair_time``'s, so without it they weigh ``msg_pairs`` order).
    """
    n_users, n_items = tensors.num_nodes[USER], tensors.num_nodes[ITEM]
    text = torch.nn.functional.normalize(tensors.item_x[:, :text_dim], dim=-1)
    attrs = [attr_slots(tensors.edges.get(et, torch.zeros((2, 0), dtype=torch.long)), n_items,
                        node_keys[et[2]]) for et in attr_types]
    users, items = msg_pairs[0], msg_pairs[1]
    if pair_time is not None and len(pair_time):
        order = torch.argsort(-pair_time, stable=True)
        users, items = users[order], items[order]
    order = torch.argsort(users, stable=True)
    users, items = users[order], items[order]
    count = torch.bincount(users, minlength=n_users)
    start = torch.cumsum(count, 0) - count
    keep = (torch.arange(len(users)) - start[users]) < max_history
    users, items = users[keep], items[keep]
    ptr = torch.zeros(n_users + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(torch.bincount(users, minlength=n_users), 0)
    keys = node_keys[ITEM]
    degree = torch.log1p(torch.bincount(msg_pairs[1], minlength=n_items).to(torch.float32))
    profile, peer_keys, peer_vals = (
        _peer_table(tensors, profile_types, node_keys, ptr, items, keys) if profile_types
        else (None, None, None))
    return PairInputs(keys, text, attrs, degree, ptr, items, keys, text, attrs, profile,
                      peer_keys, peer_vals, tables,
                      cooc=cooc_table(ptr, items, keys) if cooc else None,
                      item_lex=lex, pool_lex=lex, history=history, recency=recency)


def _peer_table(tensors: GraphTensors, profile_types: Sequence[EdgeType],
                node_keys: dict[str, Tensor], ptr: Tensor, items: Tensor,
                item_keys: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Profile key slots per user and the sorted ``(value, item) -> share of the value's users
    who took the item`` table, from the users' histories (``ptr``, ``items``)."""
    n_users = tensors.num_nodes[USER]
    empty = torch.zeros((2, 0), dtype=torch.long)
    edges = [tensors.edges.get(et, empty) for et in profile_types]
    profile = torch.cat([attr_slots(e, n_users, node_keys[et[2]])
                         for e, et in zip(edges, profile_types, strict=True)], dim=1)
    user = torch.cat([e[0] for e in edges])
    value = torch.cat([node_keys[et[2]][e[1]] for e, et in zip(edges, profile_types,
                                                                strict=True)])
    # each user with history counts 1 / (users of the value with history): the same scale in a
    # training step (message edges only) as on the whole graph
    active = (ptr[user + 1] > ptr[user]).to(torch.float32)
    _, inv = torch.unique(value, return_inverse=True)
    n_with = torch.zeros(int(inv.max()) + 1 if len(inv) else 0).index_add_(0, inv, active)
    weight = 1.0 / n_with[inv].clamp(min=1)
    rows, flat = csr_expand(ptr, user)
    pair = pair_key(value[rows], item_keys[items[flat]])
    peer_keys, where = torch.unique(pair, return_inverse=True)
    peer_vals = torch.zeros(len(peer_keys)).index_add_(0, where, weight[rows])
    return profile, peer_keys, peer_vals


def _peer_share(inp: PairInputs, profile: Tensor, cand_keys: Tensor) -> Tensor:
    """Mean peer share over each user's profile values; ``profile`` ``(..., k)`` and
    ``cand_keys`` broadcastable to ``(...)`` -> ``(...)``."""
    assert inp.peer_keys is not None and inp.peer_vals is not None
    key = pair_key(profile, cand_keys.unsqueeze(-1))
    valid = profile != 0
    val = sorted_lookup(inp.peer_keys, inp.peer_vals, key) * valid
    return val.sum(-1) / valid.sum(-1).clamp(min=1).to(torch.float32)


def csr_expand(ptr: Tensor, users: Tensor) -> tuple[Tensor, Tensor]:
    """For each entry of the CSR rows ``users``: its row in ``users`` and its position in the
    CSR's value array (``ptr`` ``(n_rows + 1,)`` offsets)."""
    count = ptr[users + 1] - ptr[users]
    rows = torch.repeat_interleave(torch.arange(len(users)), count)
    offs = torch.arange(len(rows)) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    return rows, ptr[users][rows] + offs


def _overlap(hist_keys: Tensor, cand_keys: Tensor) -> Tensor:
    """Share of each candidate's keys found among the history item's keys.

    Shapes: ``hist_keys`` ``(..., k_h)``, ``cand_keys`` ``(..., k_c)`` (broadcast) -> ``(...)``.
    """
    valid = cand_keys != 0
    hit = (hist_keys.unsqueeze(-1) == cand_keys.unsqueeze(-2)).any(-2) & valid
    return hit.sum(-1).to(torch.float32) / valid.sum(-1).clamp(min=1).to(torch.float32)


def _finish(sums: Tensor, top: Tensor, deg: Tensor, degree: Tensor,
            peer: Tensor | None, extra_tops: Sequence[Tensor] = (),
            history: bool = False, recent: Tensor | None = None) -> Tensor:
    """Feature columns from per-pair sums ``(..., 1 + n_attr + len(extra_tops))``, max text
    cosine, history size, peer share, the maxima of the extra similarities (co-occurrence,
    then TF-IDF, as present; their sums are the last columns) and the candidate's degree
    (``history``: then the history-size columns; ``recent`` ``(..., n_recency + 1)``: the
    recency-weighted sums of the text and co-occurrence cosines and, last, of the weights)."""
    has = deg > 0
    mean = sums / deg.clamp(min=1).unsqueeze(-1)
    zero = torch.zeros(())
    n_share = sums.shape[-1] - 1 - len(extra_tops)
    cols = [mean[..., :1], torch.where(has, top, zero).unsqueeze(-1),
            mean[..., 1:1 + n_share]]
    if peer is not None:
        cols.append(peer.expand_as(deg).unsqueeze(-1))
    for j, extra in enumerate(extra_tops):
        col = 1 + n_share + j
        cols += [mean[..., col:col + 1], torch.where(has, extra, zero).unsqueeze(-1)]
    degree = degree.expand_as(deg).unsqueeze(-1)
    cols += [degree / LOG_DEGREE_SCALE, has.to(torch.float32).unsqueeze(-1),
             (degree > 0).to(torch.float32)]
    if history:
        short = has & (deg <= SHORT_HISTORY_MAX)
        cols += [(torch.log1p(deg) / LOG_DEGREE_SCALE).unsqueeze(-1),
                 short.to(torch.float32).unsqueeze(-1)]
    if recent is not None:  # only where order says more than the mean (RECENCY_MIN_HISTORY)
        long = (deg >= RECENCY_MIN_HISTORY).to(torch.float32).unsqueeze(-1)
        cols.append(recent[..., :-1] / recent[..., -1:].clamp(min=1e-12) * long)
    return torch.cat(cols, dim=-1)


def pair_features(inp: PairInputs, users: Tensor, items: Tensor) -> Tensor:
    """Features of the pairs ``(users[k], items[k])`` (rows of ``inp``), ``(n, n_features)``."""
    n = len(users)
    rows, flat = csr_expand(inp.hist_ptr, users)
    pool = inp.hist_idx[flat]
    width = inp.pool_text.shape[1] + sum(a.shape[1] ** 2 for a in inp.item_attrs)
    step = max(1, _EXPANDED_BUDGET // max(width, 1))
    lexical = inp.item_lex is not None and inp.pool_lex is not None
    sums = torch.zeros((n, 1 + len(inp.item_attrs) + (inp.cooc is not None) + lexical))
    top = torch.full((n,), -torch.inf)
    cooc_top = None if inp.cooc is None else torch.zeros(n)
    lex_top = torch.zeros(n) if lexical else None
    deg = torch.zeros(n)
    recent = torch.zeros((n, inp.n_recency + 1)) if inp.recency else None
    weight = recency_weights(inp.hist_ptr, users, rows, flat) if inp.recency else None
    # co-occurrence by dense rows: each pool entry's and candidate's row found once per call
    co_rows = None if inp.cooc is None or inp.cooc.by_row is None else \
        (inp.cooc.rows(inp.pool_keys), inp.cooc.rows(inp.item_keys))
    for s in range(0, len(rows), step):
        r, p = rows[s:s + step], pool[s:s + step]
        c = items[r]
        other = inp.pool_keys[p] != inp.item_keys[c]  # leave the candidate itself out
        r, p, c = r[other], p[other], c[other]
        w = None if weight is None else weight[s:s + step][other]
        cells = None if inp.tables is None else inp.tables.at(p, c)  # pool rows = item rows
        sim = cells[:, 0] if cells is not None else \
            (inp.pool_text[p] * inp.item_text[c]).sum(-1)
        if cells is not None and inp.tables is not None and inp.tables.has_attrs:
            parts = list(cells[:, :1 + len(inp.item_attrs)].unbind(1))
        else:
            parts = [sim] + [_overlap(pa[p], ia[c]) for pa, ia in zip(inp.pool_attrs,
                                                                      inp.item_attrs,
                                                                      strict=True)]
        if inp.cooc is not None and cooc_top is not None:
            co = inp.cooc.at_rows(co_rows[1][c], co_rows[0][p]) if co_rows is not None \
                else inp.cooc.lookup(inp.pool_keys[p], inp.item_keys[c])
            cooc_top.scatter_reduce_(0, r, co, "amax")
            parts.append(co)
        if lex_top is not None:
            lex = cells[:, -1] if cells is not None and inp.tables is not None \
                and inp.tables.has_lex else \
                torch.from_numpy(row_dots(inp.pool_lex, p.numpy(), inp.item_lex, c.numpy()))
            lex_top.scatter_reduce_(0, r, lex, "amax")
            parts.append(lex)
        top.scatter_reduce_(0, r, sim, "amax")
        deg.index_add_(0, r, torch.ones(len(r)))
        sums.index_add_(0, r, torch.stack(parts, dim=1))
        if recent is not None and w is not None:
            matches = [sim] + ([parts[1 + len(inp.item_attrs)]] if inp.cooc is not None else [])
            recent.index_add_(0, r, torch.stack([m * w for m in matches] + [w], dim=1))
    peer = None if inp.profile is None else _peer_share(inp, inp.profile[users],
                                                         inp.item_keys[items])
    return _finish(sums, top, deg, inp.item_degree[items], peer,
                   [t for t in (cooc_top, lex_top) if t is not None], inp.history,
                   recent if inp.recency_on or recent is None else torch.zeros_like(recent))


def pair_feature_matrix(inp: PairInputs, users: Tensor, items: Tensor) -> Tensor:
    """Features of every ``(users[r], items[c])`` pair, ``(len(users), len(items), n_feat)``.

    Same values as :func:`pair_features` on the flattened pairs (up to float summation
    order). Work runs in blocks of candidates and of users, so the temporaries stay within
    about ``_EXPANDED_BUDGET`` cells (history entries x candidates x attribute slots) beside
    the result.
    """
    n_u, n_c = len(users), len(items)
    out = torch.zeros((n_u, n_c, inp.n_features))
    if n_u == 0 or n_c == 0:
        return out
    slots = max([1] + [a.shape[1] * b.shape[1] for a, b in zip(inp.pool_attrs, inp.item_attrs,
                                                                strict=True)])
    longest = int((inp.hist_ptr[users + 1] - inp.hist_ptr[users]).max())
    step = max(1, _EXPANDED_BUDGET // (slots * max(longest, 1)))
    for c0 in range(0, n_c, step):
        out[:, c0:c0 + step] = _feature_block(inp, users, items[c0:c0 + step], slots)
    return out


def _feature_block(inp: PairInputs, users: Tensor, items: Tensor, slots: int) -> Tensor:
    """:func:`pair_feature_matrix` for one block of candidates, in blocks of users
    (``slots``: the most attribute-key comparisons per history entry and candidate)."""
    n_u, n_c = len(users), len(items)
    out = torch.zeros((n_u, n_c, inp.n_features))
    cand_keys, cand_text = inp.item_keys[items], inp.item_text[items]
    cand_attrs = [a[items] for a in inp.item_attrs]
    cand_lex = None if inp.item_lex is None or inp.pool_lex is None else \
        sp.csr_matrix(inp.item_lex[items.numpy()].T)
    n_extra = (inp.cooc is not None) + (cand_lex is not None)
    count = inp.hist_ptr[users + 1] - inp.hist_ptr[users]
    budget = max(1, _EXPANDED_BUDGET // (n_c * slots))
    k_profile = 1 if inp.profile is None else inp.profile.shape[1]
    max_users = max(1, _EXPANDED_BUDGET // (n_c * k_profile))
    r0 = 0
    while r0 < n_u:  # blocks of users whose history fits the budget (at least one user)
        cum = torch.cumsum(count[r0:], 0)
        r1 = r0 + max(1, int(torch.searchsorted(cum, torch.tensor(budget), right=True)))
        r1 = min(r1, r0 + max_users)
        rows, flat = csr_expand(inp.hist_ptr, users[r0:r1])
        peer = None if inp.profile is None else _peer_share(
            inp, inp.profile[users[r0:r1]][:, None, :], cand_keys[None, :])
        shape = (r1 - r0, n_c)
        if len(rows):
            pool = inp.hist_idx[flat]
            other = inp.pool_keys[pool][:, None] != cand_keys[None, :]  # (E, C)
            sim = inp.pool_text[pool] @ cand_text.T
            top = torch.full(shape, -torch.inf).scatter_reduce_(
                0, rows[:, None].expand(-1, n_c), sim.masked_fill(~other, -torch.inf), "amax")
            deg = torch.zeros(shape).index_add_(0, rows, other.to(torch.float32))
            sums = [torch.zeros(shape).index_add_(0, rows, sim * other)]
            for pa, ca in zip(inp.pool_attrs, cand_attrs, strict=True):
                ov = _overlap(pa[pool][:, None, :], ca[None, :, :]) * other
                sums.append(torch.zeros(shape).index_add_(0, rows, ov))
            extra_sims = []
            if inp.cooc is not None:
                extra_sims.append(
                    inp.cooc.lookup(inp.pool_keys[pool][:, None], cand_keys[None, :]) * other)
            if cand_lex is not None:
                assert inp.pool_lex is not None
                lex = (inp.pool_lex[pool.numpy()] @ cand_lex).toarray()
                extra_sims.append(torch.from_numpy(lex.astype(np.float32)) * other)
            tops = []
            for extra in extra_sims:
                sums.append(torch.zeros(shape).index_add_(0, rows, extra))
                tops.append(torch.zeros(shape).scatter_reduce_(
                    0, rows[:, None].expand(-1, n_c), extra, "amax"))
            recent = None if not inp.recency else torch.zeros((*shape, inp.n_recency + 1))
            if inp.recency and inp.recency_on:
                w = recency_weights(inp.hist_ptr, users[r0:r1], rows, flat)[:, None] * other
                matches = [sim] + extra_sims[:1 if inp.cooc is not None else 0] + [1.0]
                recent = torch.stack([torch.zeros(shape).index_add_(0, rows, m * w)
                                      for m in matches], dim=-1)
            out[r0:r1] = _finish(torch.stack(sums, dim=-1), top, deg, inp.item_degree[items],
                                 peer, tops, inp.history, recent)
        else:
            n_sums = 1 + len(inp.item_attrs) + n_extra
            out[r0:r1] = _finish(torch.zeros((*shape, n_sums)), torch.zeros(shape),
                                 torch.zeros(shape), inp.item_degree[items], peer,
                                 [torch.zeros(shape)] * n_extra, inp.history,
                                 torch.zeros((*shape, inp.n_recency + 1)) if inp.recency
                                 else None)
        r0 = r1
    return out
