"""The fitted head over embeddings: logits of flat pairs, of per-user candidate lists and of
score-matrix blocks, on the CPU-resident embeddings and pair features.

Why a module of its own: :class:`~kgrec.coldstart.estimator.ColdStartModel` checks arguments
and calibrates; how the head is fed (which shapes, which chunks, which precision) is a separate
concern with its own costs, measured in ``benchmarks/SERVE.md``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from kgrec.coldstart.heads import CTRHead
from kgrec.coldstart.inference import NodeEmbeddings
from kgrec.coldstart.model import module_device
from kgrec.coldstart.pairs import PairInputs, pair_feature_matrix, pair_features

PAIR_CHUNK = 1 << 16  # pairs fed to the head at once
# Lists of at least this many candidates go by per-user blocks (list_logits), shorter ones as
# flat pairs. Measured on Amazon, one thread: 256 users x 200 candidates 1.02x the flat path's
# time, x 500 0.56x, x 2,000 0.35x (the per-user loop's overhead pays off on long lists; the
# shipped rerank_n is 2,000). Chosen by list length only, so a user's scores never depend on
# the other users of a call.
LIST_BLOCK_MIN = 500


def flat_logits(head: CTRHead, emb: NodeEmbeddings, pairs: PairInputs | None, u: Tensor,
                i: Tensor) -> np.ndarray:
    """Logits of the pairs ``(u[k], i[k])`` (rows of ``emb``), ``(n,)``, in chunks."""
    dev = module_device(head)  # embeddings and pair features are on the CPU
    out = [head(emb.user[u[s]].to(dev), emb.item[i[s]].to(dev),
                None if pairs is None else pair_features(pairs, u[s], i[s]).to(dev))[0].cpu()
           for s in torch.arange(len(u)).split(PAIR_CHUNK)]
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def list_logits(head: CTRHead, emb: NodeEmbeddings, pairs: PairInputs | None, u: Tensor,
                lists: Tensor) -> np.ndarray:
    """Logits of user ``u[r]`` with each item of ``lists[r]``, ``(b, n)``.

    Why: re-ranking is this shape. Pair features as one (history x list) block per user
    (:func:`pair_feature_matrix`) and the head's per-node parts once per user
    (:meth:`CTRHead.indexed`) cost under half of :func:`flat_logits` on the same pairs. Each
    list is computed alone, so a user's scores do not depend on the other users of the call
    (micro-batched serving answers exactly as one request alone). Lists shorter than
    ``LIST_BLOCK_MIN`` go through :func:`flat_logits`.
    """
    b, n = lists.shape
    if n < LIST_BLOCK_MIN:
        return flat_logits(head, emb, pairs, u.repeat_interleave(n), lists.reshape(-1)
                           ).reshape(b, n)
    dev = module_device(head)
    out = np.empty((b, n))
    pos = torch.arange(n, device=dev)
    for r in range(b):
        feats = None if pairs is None else pair_feature_matrix(pairs, u[r:r + 1], lists[r])[0]
        out[r] = head.indexed(emb.user[u[r:r + 1]].to(dev), emb.item[lists[r]].to(dev),
                              torch.zeros_like(pos), pos,
                              None if feats is None else feats.to(dev))[0].cpu().double().numpy()
    return out


def matrix_logit_blocks(head64: CTRHead, emb: NodeEmbeddings, pairs: PairInputs | None,
                        u: Tensor, i: Tensor, chunk_size: int
                        ) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """Blocks ``(rows, cols, logits)`` of the ``(len(u), len(i))`` logit matrix, each of at
    most ``chunk_size`` pairs (``head64``: :meth:`HeadCopy.get`)."""
    cols = max(1, min(len(i), chunk_size))
    rows = max(1, chunk_size // cols)
    for c0 in range(0, len(i), cols):
        hi = emb.item[i[c0:c0 + cols]].double()
        for r0 in range(0, len(u), rows):
            hu = emb.user[u[r0:r0 + rows]].double()
            feats = None if pairs is None else pair_feature_matrix(
                pairs, u[r0:r0 + rows], i[c0:c0 + cols]).double()
            yield (slice(r0, r0 + len(hu)), slice(c0, c0 + len(hi)),
                   head64.logit_matrix(hu, hi, feats).numpy())


class HeadCopy:
    """A float64 CPU copy of a (small) head, so score-matrix blocks do not depend on chunk
    shapes; made again when the head object, a weight's storage or its in-place version
    counter changes, since copying it cost 1.3 ms per served call. Inference-mode tensors
    keep no version counter: a head made under ``torch.inference_mode`` is copied each call."""

    def __init__(self) -> None:
        self._of: tuple[CTRHead, tuple[tuple[int, int, int], ...]] | None = None
        self._copy: CTRHead | None = None

    def get(self, head: CTRHead) -> CTRHead:
        tensors = (*head.parameters(), *head.buffers())
        if any(t.is_inference() for t in tensors):
            return copy.deepcopy(head).double().cpu().eval()
        state = tuple((id(t), t.data_ptr(), t._version) for t in tensors)
        if self._copy is None or self._of is None or self._of[0] is not head or \
                self._of[1] != state:
            self._of, self._copy = (head, state), copy.deepcopy(head).double().cpu().eval()
        return self._copy
