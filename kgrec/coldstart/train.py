"""The training loop of the GNN and the CTR head (jointly, end to end).

Full batch (the default up to ``MINI_BATCH_ABOVE`` positives, see ``ModelConfig.batch_mode``):
the whole graph goes through the GNN each step. Mini-batch (:mod:`kgrec.coldstart.minibatch`):
each step's pairs are scored on their sampled neighbourhoods, the rest is the same. Each epoch:

1. split training positives into message edges and supervision edges (disjoint);
2. cut the supervision edges into ``steps_per_epoch`` batches; for each batch, hide all message
   edges of a random share of users and items (cold-start dropout), replace a few shared ids by
   "unknown" (so that embedding is learned), run the GNN, score the batch's positives, sampled
   negatives (those of a positive on an edgeless item redrawn among edgeless items, see
   ``match_cold_negatives``) and impression negatives, and step Adam on
   ``BCE(logit) + tower_loss_weight * BCE(tower logit)`` (with pair features, plus
   ``deep_loss_weight * BCE(logit without the wide part)``);
3. score the validation pairs on the graph of all training positives (eval mode), and the
   positives of the items held out of training entirely (``cold_pos``, ranked among those
   items: the item-cold task); stop early when the mean of the two sampled AUCs has not
   improved for ``patience`` epochs; the best weights are kept;
4. with pair features, refit the head's gate and wide part on the held-out sets: the held-out
   items, the warm validation pairs, the validation users with all their history hidden
   (new users) and, with the history features, those users with their first 1-3
   interactions shown (few clicks), each with uniform negatives; and the validation users with
   the latest fifth of their history hidden, ranked against the whole catalogue
   (:mod:`kgrec.coldstart.refit`).

Data-parallel hook (``kgrec.distributed``, Ray Train): inside :func:`data_parallel`, worker
``rank`` of ``world`` trains on its share (``batch[rank::world]``) of every step's supervision
batch, with edge dropout and negatives from a generator of its own, and ``grad_sync`` averages the
gradients over workers after ``backward``, so every worker takes the same step. Every worker
holds the whole graph and runs the whole GNN forward; only the supervision pairs are split.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from kgrec.coldstart.config import ModelConfig
from kgrec.coldstart.features import ITEM, USER, GraphTensors, with_interactions
from kgrec.coldstart.heads import CTRHead
from kgrec.coldstart.minibatch import (
    INFERENCE_CHUNK,
    MiniBatchEpoch,
    NeighbourSampler,
    minibatch_losses,
)
from kgrec.coldstart.model import HeteroGNN, module_device
from kgrec.coldstart.pairs import SHORT_HISTORY_MAX, PairInputs, pair_features, without_recency
from kgrec.coldstart.refit import (
    PairBuilder,
    chunked_features,
    deep_logits,
    fit_combination,
    ranked_set,
)
from kgrec.coldstart.sampling import (
    NegativeSampler,
    drop_node_edges,
    first_clicks,
    match_cold_negatives,
    split_supervision,
)
from kgrec.coldstart.steps import bce, draw_pairs, drop_ids, pair_loss, shard_batch

logger = logging.getLogger(__name__)

Callback = Callable[[int, dict[str, float]], Any]
_LOG_STEPS = 50  # a debug line every this many steps (progress of long mini-batch epochs)


@dataclass(frozen=True)
class DataParallel:
    """This process's part in data-parallel training (see the module docstring).

    ``grad_sync`` replaces each parameter's gradient by its mean over the ``world`` workers
    (``torch.distributed.all_reduce``); parameters come in the same order on every worker.
    """

    rank: int
    world: int
    grad_sync: Callable[[list[Tensor]], None]


_DATA_PARALLEL: ContextVar[DataParallel | None] = ContextVar("kgrec_data_parallel", default=None)


@contextmanager
def data_parallel(part: DataParallel) -> Iterator[None]:
    """Every :func:`fit_loop` run inside this block (same thread) trains as ``part``."""
    token = _DATA_PARALLEL.set(part)
    try:
        yield
    finally:
        _DATA_PARALLEL.reset(token)


def pair_logits(encoder: HeteroGNN, head: CTRHead, tensors: GraphTensors, msg_pairs: Tensor,
                users: Tensor, items: Tensor,
                pairs: Callable[[], PairInputs | None] | None = None,
                chunk: int | None = None) -> Tensor:
    """Raw head logits of ``(users[k], items[k])`` on the graph with ``msg_pairs`` (eval mode).

    ``pairs``: builds that graph's pair-feature inputs, needed when the head has a wide part;
    called after the GNN pass, so the two memory peaks never add up (at 10M interactions each
    is a few GB). ``chunk``: node states layer by layer in chunks of this many nodes
    (:func:`encode_graph`).
    """
    deep, _ = deep_logits(encoder, head, tensors, msg_pairs, users, items, None, chunk)
    inputs = None if pairs is None else pairs()
    feats = None if inputs is None or not len(users) else chunked_features(inputs, users, items)
    return combined(head, deep, feats)


def mute_recency(feats: Tensor, n_recent: int) -> Tensor:
    """``feats`` with the last ``n_recent`` (recency-weighted) columns set to 0
    (:func:`~kgrec.coldstart.pairs.without_recency`)."""
    out = feats.clone()
    out[:, -n_recent:] = 0
    return out


def combined(head: CTRHead, deep: Tensor, feats: Tensor | None) -> Tensor:
    """``head.combine(deep, feats)`` without autograd, run on the head's device; the logits on
    the CPU (held-out deep logits and pair features live there, as do their consumers)."""
    dev = module_device(head)
    with torch.no_grad():
        return head.combine(deep.to(dev), None if feats is None else feats.to(dev)).cpu()


def sampled_auc(pos_logits: Tensor, neg_logits: Tensor) -> float:
    """Mean over positives of the share of their own negatives scored lower (ties count half).

    Shapes: ``pos_logits`` ``(n,)``, ``neg_logits`` ``(n, m)``.
    """
    if len(pos_logits) == 0:
        return math.nan
    diff = pos_logits[:, None] - neg_logits
    return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())


@dataclass
class HeldOutPairs:
    """Held-out positives, each with ``m`` sampled negatives, scored on one message graph."""

    users: Tensor
    items: Tensor
    n_pos: int

    @classmethod
    def sample(cls, pos: Tensor, candidates: Tensor | int, m: int, max_pairs: int,
               gen: torch.Generator) -> HeldOutPairs:
        """At most ``max_pairs`` of ``pos`` ``(2, P)``, negatives uniform over ``candidates``
        (item indices, or ``n`` for all items)."""
        if pos.shape[1] > max_pairs:
            pick = torch.randperm(pos.shape[1], generator=gen)[:max_pairs]
            pos = pos[:, torch.sort(pick).values]
        n = pos.shape[1]
        if isinstance(candidates, int):
            negs = torch.randint(candidates, (n * m,), generator=gen)
        else:
            negs = candidates[torch.randint(len(candidates), (n * m,), generator=gen)]
        return cls(users=torch.cat([pos[0], pos[0].repeat_interleave(m)]),
                   items=torch.cat([pos[1], negs]), n_pos=n)

    @property
    def labels(self) -> Tensor:
        return torch.cat([torch.ones(self.n_pos), torch.zeros(len(self.users) - self.n_pos)])

    def auc(self, logits: Tensor) -> float:
        return sampled_auc(logits[:self.n_pos], logits[self.n_pos:].reshape(self.n_pos, -1))


def _score_held_out(encoder: HeteroGNN, head: CTRHead, tensors: GraphTensors,
                    msg_pairs: Tensor, sets: list[HeldOutPairs], pairs: PairInputs | None,
                    chunk: int | None = None) -> list[tuple[Tensor, Tensor | None]]:
    """:func:`deep_logits` of several held-out sets on one graph, in one GNN pass."""
    sizes = [len(s.users) for s in sets]
    if sum(sizes) == 0:  # no validation at all: no GNN pass
        return [(torch.zeros(0), None) for _ in sets]
    deep, feats = deep_logits(encoder, head, tensors, msg_pairs,
                              torch.cat([s.users for s in sets]),
                              torch.cat([s.items for s in sets]), pairs, chunk)
    return list(zip(deep.split(sizes), feats.split(sizes) if feats is not None
                    else [None] * len(sets), strict=True))


def _full_batch_losses(encoder: HeteroGNN, head: CTRHead, tensors: GraphTensors,
                       train_pos: Tensor, msg_all: Tensor, msg_time: Tensor, sup_idx: Tensor,
                       cfg: ModelConfig, sampler: NegativeSampler, has_pos: Tensor,
                       gen: torch.Generator, pair_builder: PairBuilder | None,
                       shard: tuple[int, int] | None = None) -> Iterator[Tensor]:
    """One epoch's step losses, each with the GNN run over the whole graph (step 2 above);
    ``shard`` ``(rank, world)``: this worker's share of each batch (data parallel).
    Dropout, negatives and pair features are drawn on the CPU; the GNN's inputs move to the
    modules' device (the graph once per epoch)."""
    n_users, n_items = tensors.num_nodes[USER], tensors.num_nodes[ITEM]
    dev = module_device(encoder)
    on = tensors.to(dev)
    for batch in sup_idx.chunk(max(1, cfg.steps_per_epoch)):
        batch = shard_batch(batch, shard)
        keep = drop_node_edges(msg_all, n_users, n_items, cfg.user_edge_dropout,
                               cfg.item_edge_dropout, gen)
        shared = drop_ids(tensors.shared_index, cfg.shared_id_dropout, gen)
        h = encoder(on.item_x, {t: v.to(dev) for t, v in shared.items()}, n_users,
                    with_interactions(on, msg_all[:, keep].to(dev)))
        edgeless = has_pos & (torch.bincount(msg_all[1, keep], minlength=n_items) == 0)
        recast = partial(match_cold_negatives, edgeless=edgeless, gen=gen) \
            if cfg.cold_matched_negatives else None
        u, i, y = draw_pairs(train_pos[:, batch], cfg, sampler, tensors.impressions, gen,
                             recast)
        feats = None if pair_builder is None else \
            pair_features(pair_builder(msg_all[:, keep], msg_time[keep]), u, i)
        yield pair_loss(head, cfg, h[USER], h[ITEM], u, i, y, feats)
        del h, feats  # freed before the next step allocates (RSS)


def _new_user_parts(encoder: HeteroGNN, head: CTRHead, tensors: GraphTensors,
                    train_pos: Tensor, train_time: Tensor, val_idx: Tensor, cfg: ModelConfig,
                    pair_builder: PairBuilder, gen: torch.Generator
                    ) -> list[tuple[Tensor, Tensor, int]]:
    """The refit's "new user" set: the validation users with every interaction hidden from
    the graph, each of their positives ranked among uniform negatives; with the history
    features, also a "few clicks" set: the same users with their first 1, 2 or 3 interactions
    (by turns) shown, each later positive ranked among uniform negatives.

    Why: a user without history is scored by the gate and wide part of "no history"
    (popularity, peer shares, the GNN's view of a bare profile), and training only sees such
    users through edge dropout, with half the negatives drawn by popularity -- which teaches
    the model to discount popularity. Uniform negatives on held-out users give that
    combination the weight it has when a new user's candidates are all items. A user with
    one to three clicks is rarer still in training (none on MovieLens, where every user rated
    twenty films): without the second set the short-history gate would never be fitted.
    """
    val_pos, val_time = tensors.pos[:, val_idx], tensors.pos_time[val_idx]
    users = torch.unique(val_pos[0])
    if len(users) == 0:
        return []
    hidden = torch.isin(train_pos[0], users)
    pos = torch.cat([train_pos[:, hidden], val_pos], dim=1)
    pos_time = torch.cat([train_time[hidden], val_time])
    msg, times = train_pos[:, ~hidden], train_time[~hidden]
    graphs = [(msg, times, pos)]
    if cfg.history_features:
        shown = first_clicks(pos[0], pos_time, tensors.num_nodes[USER], SHORT_HISTORY_MAX)
        graphs.append((torch.cat([msg, pos[:, shown]], dim=1),
                       torch.cat([times, pos_time[shown]]), pos[:, ~shown]))
    parts = []
    for graph, graph_time, truth in graphs:
        held = HeldOutPairs.sample(truth, tensors.num_nodes[ITEM], cfg.val_negatives,
                                   cfg.max_val_pairs, gen)
        if not held.n_pos:
            continue
        (deep, _), = _score_held_out(encoder, head, tensors, graph, [held], None)
        # the graph's pair inputs only after its GNN pass: the two peaks never add up (RSS)
        parts.append((deep, chunked_features(pair_builder(graph, graph_time), held.users,
                                             held.items), held.n_pos))
    return parts


def fit_loop(encoder: HeteroGNN, head: CTRHead, tensors: GraphTensors, train_idx: Tensor,
             val_idx: Tensor, cfg: ModelConfig, gen: torch.Generator,
             callback: Callback | None = None, show_progress: bool = False,
             pair_builder: PairBuilder | None = None,
             cold_pos: Tensor | None = None) -> list[dict[str, float]]:
    """Train ``encoder`` and ``head`` in place; returns the per-epoch history.

    Args:
        encoder, head: The modules (trained jointly, one optimiser).
        tensors: The training graph.
        train_idx, val_idx: Disjoint indices into ``tensors.pos``.
        cfg: The model's settings (the training ones are read here).
        gen: Random generator for every sampling step (seeded by the caller).
        callback: Called as ``callback(epoch, metrics)`` after every epoch.
        show_progress: A tqdm bar over epochs.
        pair_builder: Builds the pair-feature inputs of a message graph; required when the
            head has a wide part (each step's features then come from that step's edges).
        cold_pos: Positives ``(2, C)`` of items held out of training entirely: early stopping
            also watches them (ranked among themselves), and the head's gate and wide part
            are refitted on them and the validation pairs at the end (:func:`fit_combination`).

    Returns:
        One dict per epoch: ``epoch``, ``loss``, ``seconds``, ``val_auc`` (NaN without a
        validation slice), ``val_loss``, ``val_auc_cold`` (with held-out items, ``cold_pos``)
        and ``val_score`` (the mean of the two that exist, used for early stopping).
    """
    n_items = tensors.num_nodes[ITEM]
    train_pos = tensors.pos[:, train_idx]
    train_time = tensors.pos_time[train_idx]
    if head.n_pair and pair_builder is None:
        raise ValueError("the head has a wide part: fit_loop needs a pair_builder")
    val_pairs = pair_builder(train_pos, train_time) if pair_builder and head.n_pair else None
    item_counts = torch.bincount(train_pos[1], minlength=n_items)
    has_pos = item_counts > 0  # matched cold negatives come from dropped *training* items
    pos_items = torch.nonzero(has_pos).squeeze(1)
    mini = cfg.mini_batch(tensors.pos.shape[1])
    chunk = INFERENCE_CHUNK if mini else None  # validation states layer by layer in chunks
    sampler = NegativeSampler(n_items, item_counts, cfg.pop_neg_share)
    # early stopping needs a sample, not every pair: at most max_val_pairs positives per set
    warm_val = HeldOutPairs.sample(tensors.pos[:, val_idx], n_items, cfg.val_negatives,
                                   cfg.max_val_pairs, gen)
    held = [warm_val]
    if cold_pos is not None and cold_pos.shape[1]:  # items held out entirely (new SKUs)
        held.append(HeldOutPairs.sample(cold_pos, torch.unique(cold_pos[1]),
                                        cfg.val_negatives, cfg.max_val_pairs, gen))
    # their pair features depend on the graph only, not on the weights: computed once (on a
    # grocery catalogue with long histories they cost more than an epoch's training steps)
    held_feats = [None if val_pairs is None or not len(s.users) else
                  chunked_features(val_pairs, s.users, s.items) for s in held]
    wide_on = val_pairs is not None
    # recency columns: 0 and unweighted while training jointly, learned by the refit only
    n_recent = 0 if val_pairs is None or not val_pairs.recency_on else val_pairs.n_recency
    loop_feats = held_feats if not n_recent else [None if f is None else mute_recency(f, n_recent)
                                                  for f in held_feats]
    step_builder = pair_builder if not n_recent or pair_builder is None else \
        (lambda p, t: without_recency(pair_builder(p, t)))
    if n_recent:
        head.zero_wide_inputs(n_recent)
    del val_pairs  # only the held-out features above read it: not kept through the epochs (RSS)
    # the wide part and its gate (a few hundred weights over fixed features) learn at
    # wide_lr_scale x lr, as Wide & Deep trains its wide part with its own optimiser: at the
    # deep part's rate they stay near their zero start while the GNN fits everything
    wide = {id(p) for p in head.wide_parameters()}
    groups: list[dict[str, Any]] = [
        {"params": [p for p in list(encoder.parameters()) + list(head.parameters())
                    if id(p) not in wide]}]
    if wide:
        groups.append({"params": [p for p in head.parameters() if id(p) in wide],
                       "lr": cfg.lr * cfg.wide_lr_scale})
    opt = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[dict[str, float]] = []
    best, best_state, bad = -math.inf, None, 0
    # data parallel: ``gen`` (splits, held-out sets) stays the same on every worker, ``local``
    # (dropout, negatives) differs per worker; one process: both are ``gen``, as before
    dp = _DATA_PARALLEL.get()
    local = gen if dp is None else torch.Generator().manual_seed(cfg.seed + 7919 * (dp.rank + 1))
    params = [p for g in groups for p in g["params"]]
    shard = None if dp is None else (dp.rank, dp.world)
    bar = tqdm(range(cfg.epochs), disable=not show_progress, desc="coldstart fit")
    for epoch in bar:
        start = time.perf_counter()
        encoder.train()
        head.train()
        msg_idx, sup_idx = split_supervision(train_pos.shape[1], cfg.supervision_share, gen)
        msg_all, msg_time = train_pos[:, msg_idx], train_time[msg_idx]
        if mini:
            epoch_data = MiniBatchEpoch(
                NeighbourSampler(with_interactions(tensors, msg_all), tensors.num_nodes,
                                 cfg.fanout, encoder.num_layers),
                torch.bincount(msg_all[1], minlength=n_items), has_pos, pos_items,
                step_builder(msg_all, msg_time) if wide_on and step_builder else None)
            steps = minibatch_losses(encoder, head, tensors, train_pos, sup_idx, epoch_data,
                                     cfg, sampler, local, shard)
        else:
            steps = _full_batch_losses(encoder, head, tensors, train_pos, msg_all, msg_time,
                                       sup_idx, cfg, sampler, has_pos, local,
                                       step_builder if wide_on else None, shard)
        losses = []
        for loss in steps:  # one optimiser step per batch, whichever way its loss was computed
            opt.zero_grad()
            loss.backward()
            if dp is not None:
                dp.grad_sync(params)
            opt.step()
            losses.append(float(loss.detach()))
            if len(losses) % _LOG_STEPS == 0:
                logger.debug("epoch %d: %d steps, %.1f s", epoch, len(losses),
                             time.perf_counter() - start)
        del steps
        if mini:  # this epoch's sampler and pair tables go before the next epoch builds its own
            del epoch_data
        metrics = {"epoch": float(epoch), "loss": sum(losses) / len(losses),
                   "val_auc": math.nan, "val_loss": math.nan}
        scored = _score_held_out(encoder, head, tensors, train_pos, held, None, chunk)
        logits = [combined(head, d, f) for (d, _), f in zip(scored, loop_feats, strict=True)]
        if warm_val.n_pos:
            metrics["val_auc"] = warm_val.auc(logits[0])
            metrics["val_loss"] = float(bce(logits[0], warm_val.labels))
        if len(held) > 1:
            metrics["val_auc_cold"] = held[1].auc(logits[1])
        aucs = [metrics[k] for k in ("val_auc", "val_auc_cold")
                if k in metrics and not math.isnan(metrics[k])]
        metrics["val_score"] = sum(aucs) / len(aucs) if aucs else math.nan
        metrics["seconds"] = time.perf_counter() - start
        history.append(metrics)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", val_auc=f"{metrics['val_auc']:.4f}")
        logger.debug("epoch %d: %s", epoch, metrics)
        if callback is not None:
            callback(epoch, dict(metrics))
        score = metrics["val_score"]
        if math.isnan(score):
            continue
        if score > best + 1e-4:
            best, bad = score, 0
            best_state = (copy.deepcopy(encoder.state_dict()), copy.deepcopy(head.state_dict()))
        else:
            bad += 1
            if bad >= cfg.patience:
                logger.info("Early stop at epoch %d (best val_score %.4f)", epoch, best)
                break
    if best_state is not None:
        encoder.load_state_dict(best_state[0])
        head.load_state_dict(best_state[1])
    if len(held) > 1 and wide_on and pair_builder is not None:
        sets = [1] + ([0] if warm_val.n_pos else [])  # held-out items, warm validation
        scored = _score_held_out(encoder, head, tensors, train_pos, [held[k] for k in sets],
                                 None, chunk)
        parts = [(d, f, held[k].n_pos) for (d, _), k in zip(scored, sets, strict=True)
                 if (f := held_feats[k]) is not None]
        parts += _new_user_parts(encoder, head, tensors, train_pos, train_time, val_idx, cfg,
                                 pair_builder, gen)
        ranked = ranked_set(encoder, head, tensors, train_pos, train_time, val_idx,
                            pair_builder, gen, chunk) if cfg.ranked_refit else None
        head.split_parts()
        fit_combination(head, parts, [] if ranked is None else [ranked],
                        steps=cfg.refit_steps, anchor=cfg.refit_anchor)
    encoder.eval()
    head.eval()
    return history

