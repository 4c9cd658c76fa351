"""The full-batch training loop of the GNN and the CTR head (jointly, end to end).

Why full batch: neighbour loaders need ``pyg-lib`` or ``torch-sparse``; without them the whole
graph goes through the GNN each step (fine up to a few million edges on CPU). Each epoch:

1. split training positives into message edges and supervision edges (disjoint);
2. cut the supervision edges into ``steps_per_epoch`` batches; for each batch, hide all message
   edges of a random share of users and items (cold-start dropout), replace a few shared ids by
   "unknown" (so that embedding is learned), run the GNN, score the batch's positives, sampled
   negatives and impression negatives, and step Adam on
   ``BCE(logit) + tower_loss_weight * BCE(tower logit)``;
3. score the validation pairs on the graph of all training positives (eval mode) and stop early
   when the sampled AUC has not improved for ``patience`` epochs; the best weights are kept.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from kgrec.coldstart.features import ITEM, USER, GraphTensors, with_interactions
from kgrec.coldstart.heads import CTRHead
from kgrec.coldstart.model import HeteroGNN
from kgrec.coldstart.sampling import NegativeSampler, drop_node_edges, split_supervision

logger = logging.getLogger(__name__)

Callback = Callable[[int, dict[str, float]], Any]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (see :class:`~kgrec.coldstart.ColdStartModel` for meanings)."""

    epochs: int = 50
    steps_per_epoch: int = 4
    lr: float = 3e-3
    weight_decay: float = 1e-5
    neg_ratio: int = 4
    pop_neg_share: float = 0.5
    supervision_share: float = 0.3
    item_edge_dropout: float = 0.3
    user_edge_dropout: float = 0.3
    shared_id_dropout: float = 0.05
    tower_loss_weight: float = 0.5
    val_negatives: int = 100
    patience: int = 5
    show_progress: bool = False


def _bce(logits: Tensor, labels: Tensor) -> Tensor:
    return nn.functional.binary_cross_entropy_with_logits(logits, labels)


def _drop_ids(index: dict[str, Tensor], share: float, gen: torch.Generator) -> dict[str, Tensor]:
    if share <= 0:
        return index
    return {t: torch.where(torch.rand(len(v), generator=gen) < share, 0, v)
            for t, v in index.items()}


def pair_logits(encoder: HeteroGNN, head: CTRHead, tensors: GraphTensors, msg_pairs: Tensor,
                users: Tensor, items: Tensor) -> Tensor:
    """Raw head logits of ``(users[k], items[k])`` on the graph with ``msg_pairs`` (eval mode)."""
    encoder.eval()
    head.eval()
    with torch.no_grad():
        h = encoder(tensors.item_x, tensors.shared_index, tensors.num_nodes[USER],
                    with_interactions(tensors, msg_pairs))
        out = []
        for sl in torch.arange(len(users)).split(1 << 16):
            out.append(head(h[USER][users[sl]], h[ITEM][items[sl]])[0])
        return torch.cat(out) if out else torch.zeros(0)


def sampled_auc(pos_logits: Tensor, neg_logits: Tensor) -> float:
    """Mean over positives of the share of their own negatives scored lower (ties count half).

    Shapes: ``pos_logits`` ``(n,)``, ``neg_logits`` ``(n, m)``.
    """
    if len(pos_logits) == 0:
        return math.nan
    diff = pos_logits[:, None] - neg_logits
    return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())


def fit_loop(encoder: HeteroGNN, head: CTRHead, tensors: GraphTensors, train_idx: Tensor,
             val_idx: Tensor, cfg: TrainConfig, gen: torch.Generator,
             callback: Callback | None = None) -> list[dict[str, float]]:
    """Train ``encoder`` and ``head`` in place; returns the per-epoch history.

    Args:
        encoder, head: The modules (trained jointly, one optimiser).
        tensors: The training graph.
        train_idx, val_idx: Disjoint indices into ``tensors.pos``.
        cfg: Optimisation settings.
        gen: Random generator for every sampling step (seeded by the caller).
        callback: Called as ``callback(epoch, metrics)`` after every epoch.

    Returns:
        One dict per epoch: ``epoch``, ``loss``, ``seconds``, ``val_auc`` (NaN without a
        validation slice), ``val_loss``.
    """
    n_users, n_items = tensors.num_nodes[USER], tensors.num_nodes[ITEM]
    train_pos = tensors.pos[:, train_idx]
    sampler = NegativeSampler(n_items, torch.bincount(train_pos[1], minlength=n_items),
                              cfg.pop_neg_share)
    val_pos = tensors.pos[:, val_idx]
    val_neg = torch.randint(n_items, (val_pos.shape[1], cfg.val_negatives), generator=gen)
    imps = tensors.impressions
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[dict[str, float]] = []
    best, best_state, bad = -math.inf, None, 0
    bar = tqdm(range(cfg.epochs), disable=not cfg.show_progress, desc="coldstart fit")
    for epoch in bar:
        start = time.perf_counter()
        encoder.train()
        head.train()
        msg_idx, sup_idx = split_supervision(train_pos.shape[1], cfg.supervision_share, gen)
        msg_all = train_pos[:, msg_idx]
        losses = []
        for batch in sup_idx.chunk(max(1, cfg.steps_per_epoch)):
            keep = drop_node_edges(msg_all, n_users, n_items, cfg.user_edge_dropout,
                                   cfg.item_edge_dropout, gen)
            h = encoder(tensors.item_x, _drop_ids(tensors.shared_index, cfg.shared_id_dropout,
                                                  gen),
                        n_users, with_interactions(tensors, msg_all[:, keep]))
            pos = train_pos[:, batch]
            n_neg = pos.shape[1] * cfg.neg_ratio
            users = [pos[0], pos[0].repeat(cfg.neg_ratio)]
            items = [pos[1], sampler.sample(n_neg, gen)]
            labels = [torch.ones(pos.shape[1]), torch.zeros(n_neg)]
            if imps.shape[1]:
                take = torch.randint(imps.shape[1], (min(imps.shape[1], pos.shape[1]),),
                                     generator=gen)
                users.append(imps[0, take])
                items.append(imps[1, take])
                labels.append(torch.zeros(len(take)))
            u, i, y = torch.cat(users), torch.cat(items), torch.cat(labels)
            logit, tower = head(h[USER][u], h[ITEM][i])
            loss = _bce(logit, y) + cfg.tower_loss_weight * _bce(tower, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        metrics = {"epoch": float(epoch), "loss": sum(losses) / len(losses),
                   "val_auc": math.nan, "val_loss": math.nan}
        if val_pos.shape[1]:
            n_val = val_pos.shape[1]
            users_v = torch.cat([val_pos[0], val_pos[0].repeat_interleave(cfg.val_negatives)])
            items_v = torch.cat([val_pos[1], val_neg.reshape(-1)])
            logits = pair_logits(encoder, head, tensors, train_pos, users_v, items_v)
            pos_l, neg_l = logits[:n_val], logits[n_val:].reshape(n_val, -1)
            metrics["val_auc"] = sampled_auc(pos_l, neg_l)
            y_v = torch.cat([torch.ones(n_val), torch.zeros(neg_l.numel())])
            metrics["val_loss"] = float(_bce(logits, y_v))
        metrics["seconds"] = time.perf_counter() - start
        history.append(metrics)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", val_auc=f"{metrics['val_auc']:.4f}")
        logger.debug("epoch %d: %s", epoch, metrics)
        if callback is not None:
            callback(epoch, dict(metrics))
        score = metrics["val_auc"]
        if math.isnan(score):
            continue
        if score > best + 1e-4:
            best, bad = score, 0
            best_state = (copy.deepcopy(encoder.state_dict()), copy.deepcopy(head.state_dict()))
        else:
            bad += 1
            if bad >= cfg.patience:
                logger.info("Early stop at epoch %d (best val_auc %.4f)", epoch, best)
                break
    if best_state is not None:
        encoder.load_state_dict(best_state[0])
        head.load_state_dict(best_state[1])
    encoder.eval()
    head.eval()
    return history

