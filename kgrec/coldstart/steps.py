"""What one training step scores and its loss, shared by full-batch and mini-batch training.

Why a module of its own: the two training paths differ only in *where* the node states come
from (the whole graph, or a batch's sampled neighbourhoods); the pairs a step scores and the
loss on them must stay identical, so that switching ``batch_mode`` changes memory, not the
model that is learned.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from kgrec.coldstart.config import ModelConfig
from kgrec.coldstart.heads import CTRHead
from kgrec.coldstart.sampling import NegativeSampler

# (negatives (n,), the positive item of each (n,)) -> negatives, some redrawn among cold items
Recast = Callable[[Tensor, Tensor], Tensor]


def bce(logits: Tensor, labels: Tensor) -> Tensor:
    return nn.functional.binary_cross_entropy_with_logits(logits, labels)


def drop_ids(index: dict[str, Tensor], share: float, gen: torch.Generator) -> dict[str, Tensor]:
    """Each shared id (brand, category, ...) replaced by 0, "unknown", with probability
    ``share`` (so that embedding is learned, for ids a new SKU brings that training never saw)."""
    if share <= 0:
        return index
    return {t: torch.where(torch.rand(len(v), generator=gen) < share, 0, v)
            for t, v in index.items()}


def draw_pairs(pos: Tensor, cfg: ModelConfig, sampler: NegativeSampler, imps: Tensor,
               gen: torch.Generator, recast: Recast | None = None
               ) -> tuple[Tensor, Tensor, Tensor]:
    """``(users, items, labels)`` of one step: the positives ``pos`` ``(2, B)``, ``neg_ratio``
    sampled negatives each (``recast`` may redraw some, see ``match_cold_negatives``) and as
    many impression negatives (shown, not clicked) as positives, when there are any."""
    n_neg = pos.shape[1] * cfg.neg_ratio
    users = [pos[0], pos[0].repeat(cfg.neg_ratio)]
    negs = sampler.sample(n_neg, gen)
    if recast is not None:
        negs = recast(negs, pos[1].repeat(cfg.neg_ratio))
    items = [pos[1], negs]
    labels = [torch.ones(pos.shape[1]), torch.zeros(n_neg)]
    if imps.shape[1]:
        take = torch.randint(imps.shape[1], (min(imps.shape[1], pos.shape[1]),), generator=gen)
        users.append(imps[0, take])
        items.append(imps[1, take])
        labels.append(torch.zeros(len(take)))
    return torch.cat(users), torch.cat(items), torch.cat(labels)


def pair_loss(head: CTRHead, cfg: ModelConfig, h_user: Tensor, h_item: Tensor, users: Tensor,
              items: Tensor, labels: Tensor, feats: Tensor | None) -> Tensor:
    """``BCE(logit) + tower_loss_weight * BCE(tower logit)``, plus with pair features ``feats``
    ``deep_loss_weight * BCE(logit without the wide part)`` (users without history rely on
    the deep part alone, so it has to stand alone). ``users``/``items`` index the rows of
    ``h_user``/``h_item``. The pairs, labels and features are drawn on the CPU; they move to
    the node states' device here (a no-op on the CPU)."""
    dev = h_user.device
    users, items, labels = users.to(dev), items.to(dev), labels.to(dev)
    feats = None if feats is None else feats.to(dev)
    logit, tower = head.indexed(h_user, h_item, users, items)
    loss = cfg.tower_loss_weight * bce(tower, labels)
    if feats is not None:
        loss = loss + cfg.deep_loss_weight * bce(logit, labels)
        logit = head.combine(logit, feats)
    return loss + bce(logit, labels)


def shard_batch(batch: Tensor, shard: tuple[int, int] | None) -> Tensor:
    """Worker ``rank``'s share ``batch[rank::world]`` of a step's supervision indices (data
    parallel, ``shard = (rank, world)``); the whole batch for one process or a tiny batch."""
    if shard is None or len(batch) < shard[1]:
        return batch
    return batch[shard[0]::shard[1]]
