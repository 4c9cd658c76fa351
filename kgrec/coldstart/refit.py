"""The last step of training: refit the CTR head's gate and wide part on held-out sets.

Why: on training items the GNN looks informative even with their edges hidden (it can memorise
an item's text like an id), so only held-out items and users show how far to trust it, and how
to weigh the pair features, for a new SKU, a new user or a warm user's next items. The GNN and
the deep part stay frozen; only a few hundred weights move.

Two kinds of held-out set:

* **sampled** ``(deep logits, pair features, n_pos)``: each positive among its own uniform
  negatives, scored by :func:`listwise_loss` (held-out items, new users, few clicks);
* **ranked** (:class:`RankedSet`): the validation users with the latest ``RANKED_SHARE`` of
  their interactions hidden, each hidden positive ranked against the whole catalogue (on
  larger ones: a uniform sample of ``RANKED_CANDIDATES`` items plus the held-out items).
  Why: a positive beats 100 uniform negatives on popularity alone, so the sampled warm set
  never shows how the close calls among popular items are decided, which is where a
  full-catalogue Recall@20 is won; and one next item per user (the sampled warm set) says less
  about a user's coming weeks than the latest fifth of their history. Tried on the MovieLens
  validation split of seed 1 (warm Recall@20): sampled set 0.228, ranked 0.27
  (``benchmarks/EVALUATION.md``, round 8).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kgrec.coldstart.features import ITEM, USER, GraphTensors
from kgrec.coldstart.heads import CTRHead
from kgrec.coldstart.minibatch import encode_graph
from kgrec.coldstart.model import HeteroGNN, module_device
from kgrec.coldstart.pairs import PairInputs, pair_feature_matrix, pair_features
from kgrec.coldstart.sampling import hide_latest

RANKED_SHARE = 0.2  # the evaluation's warm protocol holds out each user's latest 20% too
RANKED_USERS = 256  # most validation users in the ranked set (bounds its U x C features)
RANKED_POSITIVES = 4096  # most held-out positives (bounds the P x C softmax)
RANKED_CANDIDATES = 4096  # candidates: the whole catalogue up to this size
_PAIR_BLOCK = 1 << 18  # held-out pairs scored (and featurised) per block

SampledPart = tuple[Tensor, Tensor, int]
# (message pairs (2, E), their times (E,)) -> the pair-feature inputs of that graph
PairBuilder = Callable[[Tensor, Tensor], PairInputs]


def listwise_loss(logits: Tensor, n_pos: int) -> Tensor:
    """Cross-entropy of each positive among its own sampled negatives.

    ``logits``: the ``n_pos`` positives, then ``m`` negatives per positive (positive-major).
    A ranking loss: a per-user offset, which BCE would reward, changes nothing here.
    """
    table = torch.cat([logits[:n_pos, None], logits[n_pos:].reshape(n_pos, -1)], dim=1)
    return nn.functional.cross_entropy(table, torch.zeros(n_pos, dtype=torch.long,
                                                          device=logits.device))


@dataclass
class RankedSet:
    """Held-out positives, each ranked against every candidate of its user.

    Shapes: ``deep`` ``(U, C)`` deep logits and ``feats`` ``(U, C, F)`` pair features of every
    (user, candidate); ``row``, ``target`` ``(P,)``: each positive's user row and candidate
    column; ``mask`` ``(P, C)``: the user's other positives (shown or held out), left out of
    that positive's ranking.
    """

    deep: Tensor
    feats: Tensor
    row: Tensor
    target: Tensor
    mask: Tensor

    def to(self, device: torch.device) -> RankedSet:
        return RankedSet(*(t.to(device) for t in (self.deep, self.feats, self.row,
                                                   self.target, self.mask)))

    def loss(self, head: CTRHead) -> Tensor:
        """Softmax cross-entropy of each positive among its user's candidates."""
        logits = head.combine(self.deep, self.feats)[self.row].masked_fill(self.mask,
                                                                           -torch.inf)
        return nn.functional.cross_entropy(logits, self.target)


def fit_combination(head: CTRHead, parts: Sequence[SampledPart],
                    ranked: Sequence[RankedSet] = (), steps: int = 300,
                    lr: float = 0.02, anchor: float = 0.0) -> None:
    """Refit the head's gate and wide part on held-out sets, everything else frozen; each set
    counts equally. Calibration comes after, so only the ranking matters here. The sets (on
    the CPU) move to the head's device.

    ``anchor``: the wide parts of users with a history (:meth:`CTRHead.history_parameters`)
    get the squared distance of their weights from the start (the jointly trained values)
    added to the loss with this weight, and their step size decays to zero (cosine). Why:
    without either, Adam's normalised steps let the weights that a few hundred held-out users
    hardly constrain drift with float-rounding noise (``ModelConfig.refit_anchor``). The part
    of users without history and the gate refit as before: anchored too, new users (k = 0)
    lost 1.5-7% Recall@20 on all four validation splits it ran on (MovieLens, Amazon), and
    that part was not the noisy one."""
    params = head.wide_parameters()
    if not params or not (parts or ranked):
        return
    dev = module_device(head)
    sampled = [(d.to(dev), f.to(dev), n) for d, f, n in parts]
    on_dev = [r.to(dev) for r in ranked]
    held = head.history_parameters() if anchor else []
    start = [p.detach().clone() for p in held]
    free = [p for p in params if all(p is not q for q in held)]
    opt = torch.optim.Adam([{"params": free}] + ([{"params": held}] if held else []), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, [lambda _: 1.0, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps))]
    ) if held else None
    head.train()
    for _ in range(steps):
        losses = [listwise_loss(head.combine(d, f), n) for d, f, n in sampled]
        losses += [r.loss(head) for r in on_dev]
        loss = torch.stack(losses).mean()
        if held:
            loss = loss + anchor * sum(((p - s) ** 2).sum() for p, s in zip(held, start,
                                                                           strict=True))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if schedule is not None:
            schedule.step()
    head.eval()


def ranked_set(encoder: HeteroGNN, head: CTRHead, tensors: GraphTensors, train_pos: Tensor,
               train_time: Tensor, val_idx: Tensor, pair_builder: PairBuilder,
               gen: torch.Generator, chunk: int | None = None) -> RankedSet | None:
    """The ranked set (module docstring) of at most ``RANKED_USERS`` validation users: their
    training and validation positives, the latest ``RANKED_SHARE`` (at least one) hidden from
    the graph of ``train_pos``, at most ``RANKED_POSITIVES`` of them; None without any.

    Caveats: most held-out positives of a long history are pairs the GNN trained on (only the
    latest is a validation pair), so its deep logits there are somewhat optimistic; and the
    items held out of training entirely (new SKUs) are among the candidates, as negatives.
    """
    n_users, n_items = tensors.num_nodes[USER], tensors.num_nodes[ITEM]
    val_pos, val_time = tensors.pos[:, val_idx], tensors.pos_time[val_idx]
    users = torch.unique(val_pos[0])
    if len(users) == 0:
        return None
    if len(users) > RANKED_USERS:
        users = torch.sort(users[torch.randperm(len(users), generator=gen)[:RANKED_USERS]]).values
    hidden = hide_latest(train_pos, train_time, val_pos, val_time, users, n_users, RANKED_SHARE)
    pos, msg, msg_time = hidden.pos, hidden.msg, hidden.msg_time
    truth = pos[:, hidden.held]
    # a user left with nothing shown would be a new user, scored by another wide part
    truth = truth[:, torch.bincount(msg[0], minlength=n_users)[truth[0]] > 0]
    if truth.shape[1] > RANKED_POSITIVES:  # bounds the (positives x candidates) softmax
        truth = truth[:, torch.sort(torch.randperm(truth.shape[1], generator=gen)
                                    [:RANKED_POSITIVES]).values]
    if truth.shape[1] == 0:
        return None
    users = torch.unique(truth[0])
    cands = torch.arange(n_items) if n_items <= RANKED_CANDIDATES else torch.unique(torch.cat(
        [truth[1], torch.randperm(n_items, generator=gen)[:RANKED_CANDIDATES]]))
    col_of = torch.full((n_items,), -1, dtype=torch.long)
    col_of[cands] = torch.arange(len(cands))
    row_of = torch.full((n_users,), -1, dtype=torch.long)
    row_of[users] = torch.arange(len(users))
    deep = deep_logits(encoder, head, tensors, msg, users.repeat_interleave(len(cands)),
                       cands.repeat(len(users)), None, chunk)[0].reshape(len(users), -1)
    feats = pair_feature_matrix(pair_builder(msg, msg_time), users, cands)
    known = torch.zeros((len(users), len(cands)), dtype=torch.bool)
    seen = (col_of[pos[1]] >= 0) & (row_of[pos[0]] >= 0)
    known[row_of[pos[0, seen]], col_of[pos[1, seen]]] = True
    row, target = row_of[truth[0]], col_of[truth[1]]
    mask = known[row]
    mask[torch.arange(len(row)), target] = False
    return RankedSet(deep, feats, row, target, mask)


def deep_logits(encoder: HeteroGNN, head: CTRHead, tensors: GraphTensors, msg_pairs: Tensor,
                users: Tensor, items: Tensor, pairs: PairInputs | None,
                chunk: int | None = None) -> tuple[Tensor, Tensor | None]:
    """Deep logits (no wide part) and pair features of ``(users[k], items[k])`` (eval mode),
    both on the CPU (the GNN and the head run on their device; pair features on the CPU)."""
    encoder.eval()
    head.eval()
    dev = module_device(head)
    with torch.no_grad():
        h = encode_graph(encoder, tensors, msg_pairs, chunk)
        deep = [head.indexed(h[USER], h[ITEM], users[sl].to(dev), items[sl].to(dev))[0].cpu()
                for sl in torch.arange(len(users)).split(_PAIR_BLOCK)]
        return (torch.cat(deep) if deep else torch.zeros(0),
                None if pairs is None or not len(users) else
                chunked_features(pairs, users, items))


def chunked_features(pairs: PairInputs, users: Tensor, items: Tensor) -> Tensor:
    """:func:`pair_features` of ``(users[k], items[k])``, in blocks of ``_PAIR_BLOCK`` pairs."""
    return torch.cat([pair_features(pairs, users[sl], items[sl])
                      for sl in torch.arange(len(users)).split(_PAIR_BLOCK)])
