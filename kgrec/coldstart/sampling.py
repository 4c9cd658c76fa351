"""Per-step sampling for training: edge splits, cold-start edge dropout, negatives, validation.

Why each piece:

* **message / supervision split** -- every epoch the training positives are split at random into
  disjoint message-passing edges (``1 - supervision_share``) and supervision edges
  (``supervision_share``), so the model never sees the edge it is asked to predict;
* **cold-start edge dropout** (DropoutNet) -- every step all message edges of a random share of
  items (``item_edge_dropout``) and users (``user_edge_dropout``) are hidden, so those nodes must
  be scored from text and attributes alone, exactly as new ones are;
* **negatives** -- per supervision positive, ``neg_ratio`` items for the same user: a share
  ``pop_neg_share`` drawn proportional to item popularity (number of training positives), the
  rest uniformly over all items. Popular negatives stop the model from just learning popularity;
  uniform ones match the ranking task (all candidates). Sampled negatives are not filtered
  against the user's positives (a collision has probability ~ deg(u) / n_items);
* **validation** -- carved from training interactions only: for a random ``share`` of users with
  at least two positives, their latest positive by time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def split_supervision(n: int, share: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random disjoint ``(message_idx, supervision_idx)`` over ``n`` positives."""
    perm = torch.randperm(n, generator=gen)
    n_sup = max(1, int(round(share * n))) if n else 0
    return perm[n_sup:], perm[:n_sup]


def drop_node_edges(pairs: Tensor, n_users: int, n_items: int, user_share: float,
                    item_share: float, gen: torch.Generator) -> Tensor:
    """Keep-mask over ``pairs`` ``(2, E)`` hiding every edge of a random share of users/items."""
    keep = torch.ones(pairs.shape[1], dtype=torch.bool)
    if user_share > 0 and n_users:
        keep &= ~(torch.rand(n_users, generator=gen) < user_share)[pairs[0]]
    if item_share > 0 and n_items:
        keep &= ~(torch.rand(n_items, generator=gen) < item_share)[pairs[1]]
    return keep


def match_cold_negatives(negatives: Tensor, pos_items: Tensor, edgeless: Tensor,
                         gen: torch.Generator) -> Tensor:
    """Negatives of positives on edgeless items, redrawn uniformly among edgeless items.

    Why: a positive whose item has no message edge this step (dropped out, DropoutNet-style)
    is the item-cold test task in miniature, where every candidate is edgeless. Against
    ordinary negatives (mostly items with edges) it only teaches "edgeless means unpopular";
    against edgeless negatives it teaches how to rank cold items by content.

    Shapes: ``negatives`` and ``pos_items`` ``(n,)`` (the positive each negative belongs to),
    ``edgeless`` ``(n_items,)`` bool; returns ``(n,)``.
    """
    pool = torch.nonzero(edgeless).squeeze(1)
    rows = torch.nonzero(edgeless[pos_items]).squeeze(1)
    if len(pool) < 2 or len(rows) == 0:
        return negatives
    out = negatives.clone()
    pick = torch.randint(len(pool), (len(rows),), generator=gen)
    # never the positive itself: take the next pool item instead
    same = pool[pick] == pos_items[rows]
    pick = torch.where(same, (pick + 1) % len(pool), pick)
    out[rows] = pool[pick]
    return out


class NegativeSampler:
    """Mix of popularity-weighted and uniform negative items.

    Args:
        n_items: Items to draw from.
        item_counts: Training positives per item, shape ``(n_items,)`` (popularity).
        pop_share: Share of negatives drawn by popularity, default 0.5.
    """

    def __init__(self, n_items: int, item_counts: Tensor, pop_share: float = 0.5) -> None:
        if not 0 <= pop_share <= 1:
            raise ValueError(f"pop_neg_share must be in [0, 1], got {pop_share}")
        self.n_items, self.pop_share = n_items, pop_share
        counts = item_counts.double()
        self.probs = counts / counts.sum() if counts.sum() > 0 else None

    def __repr__(self) -> str:
        return f"NegativeSampler(n_items={self.n_items}, pop_share={self.pop_share})"

    def prob_of(self, items: Tensor) -> Tensor:
        """Probability that one :meth:`sample` draw is each of ``items`` (for logQ)."""
        uniform = torch.full((len(items),), 1.0 / max(self.n_items, 1), dtype=torch.float32)
        if self.probs is None:
            return uniform
        return (self.pop_share * self.probs[items].float()
                + (1 - self.pop_share) * uniform).clamp(min=1e-12)

    def sample(self, n: int, gen: torch.Generator) -> Tensor:
        """``n`` item indices (popular ones first, then uniform; shuffle is not needed)."""
        probs = self.probs
        n_pop = int(round(n * self.pop_share)) if probs is not None else 0
        pop = (torch.multinomial(probs, n_pop, replacement=True, generator=gen)
               if probs is not None and n_pop else torch.zeros(0, dtype=torch.long))
        uni = torch.randint(self.n_items, (n - n_pop,), generator=gen)
        return torch.cat([pop, uni])


def carve_validation(pos: Tensor, pos_time: Tensor, n_users: int, share: float,
                     gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(train_idx, val_idx)`` into ``pos`` ``(2, P)``: latest positive of a share of users.

    Only users with at least two positives are eligible, so no validation user loses all
    history. Ties in time are broken by position (the later row wins).
    """
    n = pos.shape[1]
    if n == 0 or share <= 0:
        return torch.arange(n), torch.zeros(0, dtype=torch.long)
    users = pos[0]
    degree = torch.bincount(users, minlength=n_users)
    chosen = (torch.rand(n_users, generator=gen) < share) & (degree >= 2)
    # latest positive per user: sort by (user, time, position) and take each user's last row
    order = torch.argsort(pos_time.double() + torch.arange(n, dtype=torch.double) / (n + 1),
                          stable=True)
    order = order[torch.argsort(users[order], stable=True)]
    last = torch.ones(n, dtype=torch.bool)
    last[:-1] = users[order][1:] != users[order][:-1]
    last_rows = order[last]
    val_idx = last_rows[chosen[users[last_rows]]]
    mask = torch.ones(n, dtype=torch.bool)
    mask[val_idx] = False
    return torch.nonzero(mask).squeeze(1), torch.sort(val_idx).values


MIN_HELD_OUT_ITEMS = 20


def carve_cold_items(pos: Tensor, train_idx: Tensor, val_idx: Tensor, n_items: int,
                     share: float, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``(train_idx, val_idx, cold_idx)``: every positive of a random ``share`` of the items
    that have training positives moves to ``cold_idx``.

    Why: a new SKU's text was never seen in training, while a training item's text vector can
    be memorised by the GNN like an id. Only items held out entirely show how the model does
    on truly new items, for early stopping and for weighing the GNN against the pair features.
    Nothing is held out when that would be fewer than ``MIN_HELD_OUT_ITEMS`` items (a tiny
    catalogue needs every item for training, and so few items measure nothing).
    """
    none = torch.zeros(0, dtype=torch.long)
    if share <= 0 or len(train_idx) == 0:
        return train_idx, val_idx, none
    has = torch.zeros(n_items, dtype=torch.bool)
    has[pos[1, train_idx]] = True
    cold = has & (torch.rand(n_items, generator=gen) < share)
    if int(cold.sum()) < MIN_HELD_OUT_ITEMS:
        return train_idx, val_idx, none
    on_train, on_val = cold[pos[1, train_idx]], cold[pos[1, val_idx]]
    cold_idx = torch.sort(torch.cat([train_idx[on_train], val_idx[on_val]])).values
    return train_idx[~on_train], val_idx[~on_val], cold_idx


def _ranks_in_time(users: Tensor, times: Tensor, n_users: int
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The pairs sorted by user, then time (ties: input order): the ``order``, each sorted
    pair's user (``ranked``), the pairs per user (``count``) and each sorted pair's 0-based
    position among its user's pairs (``rank``)."""
    order = torch.argsort(times, stable=True)
    order = order[torch.argsort(users[order], stable=True)]
    ranked = users[order]
    count = torch.bincount(ranked, minlength=n_users)
    rank = torch.arange(len(ranked)) - (torch.cumsum(count, 0) - count)[ranked]
    return order, ranked, count, rank


def first_clicks(users: Tensor, times: Tensor, n_users: int, most: int) -> Tensor:
    """Mask of each user's first ``1 + user % most`` pairs in time order (ties: input order).

    Why: a user with one to ``most`` clicks (the evaluation's k = 1 and k = 3) is simulated on
    held-out users by showing only their first few pairs, 1, 2, ..., ``most`` by turns; the
    later pairs are what they went on to take. ``users``, ``times``: ``(P,)`` each.
    """
    order, ranked, _, rank = _ranks_in_time(users, times, n_users)
    shown = torch.zeros(len(users), dtype=torch.bool)
    shown[order] = rank < 1 + torch.remainder(ranked, most)
    return shown


def latest_share(users: Tensor, times: Tensor, n_users: int, share: float) -> Tensor:
    """Mask of each user's latest ``max(1, floor(share * n))`` of their ``n`` pairs in time
    order (ties: input order, the later row is the later pair); ``users``, ``times``:
    ``(P,)`` each.

    Why: the evaluation's warm protocol holds out each user's latest share in the same way,
    and a model refitted to rank "the rest of this user's history" should see that task.
    """
    order, ranked, count, rank = _ranks_in_time(users, times, n_users)
    held_n = torch.clamp(torch.floor(share * count.double()).long(), min=1)
    held = torch.zeros(len(users), dtype=torch.bool)
    held[order] = rank >= (count - held_n)[ranked]
    return held


@dataclass
class HiddenLatest:
    """Some users' pairs with each one's latest share hidden (:func:`hide_latest`).

    ``pos`` ``(2, P)``: those users' training then validation pairs; ``held`` ``(P,)``: which
    of them are hidden; ``msg`` ``(2, E)``, ``msg_time`` ``(E,)``: the graph left (everyone
    else's training pairs, then those users' shown pairs).
    """

    pos: Tensor
    held: Tensor
    msg: Tensor
    msg_time: Tensor


def hide_latest(train_pos: Tensor, train_time: Tensor, val_pos: Tensor, val_time: Tensor,
                users: Tensor, n_users: int, share: float) -> HiddenLatest:
    """Hide the latest ``share`` (:func:`latest_share`) of ``users``' training and validation
    pairs from the training graph. Why: the ranked refit set and the warm calibration both
    pose the evaluation's warm task, "rank the rest of this user's history"."""
    mine, val_mine = torch.isin(train_pos[0], users), torch.isin(val_pos[0], users)
    pos = torch.cat([train_pos[:, mine], val_pos[:, val_mine]], dim=1)
    time = torch.cat([train_time[mine], val_time[val_mine]])
    held = latest_share(pos[0], time, n_users, share)
    return HiddenLatest(pos, held, torch.cat([train_pos[:, ~mine], pos[:, ~held]], dim=1),
                        torch.cat([train_time[~mine], time[~held]]))
