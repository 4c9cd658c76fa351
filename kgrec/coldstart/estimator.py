"""``ColdStartModel``: the public estimator (scikit-learn contract) around GNN + CTR head.

The ranking layer builds on exactly these methods: ``fit`` -> ``transform`` (embeddings for any
graph with the same schema, new nodes included) -> ``retrieval_scores`` (dot product, for
top-N retrieval) and ``predict_proba`` / ``score_matrix`` (calibrated CTR, for re-ranking).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from kgrec.coldstart.calibration import PlattCalibrator, expected_calibration_error, log_loss
from kgrec.coldstart.features import (
    ITEM,
    PRICE_DIM,
    SHARED_TYPES,
    USER,
    GraphTensors,
    IdVocab,
    PriceScaler,
    TextFeaturizer,
    graph_tensors,
    reverse,
    structural_edge_types,
    with_interactions,
)
from kgrec.coldstart.heads import CTRHead
from kgrec.coldstart.inference import NodeEmbeddings, induced_subgraph, khop_nodes
from kgrec.coldstart.memory import release_free_memory
from kgrec.coldstart.model import CONVS, HeteroGNN
from kgrec.coldstart.pairs import (
    DEFAULT_MAX_HISTORY,
    ItemTables,
    PairInputs,
    build_pair_inputs,
    feature_names,
    item_tables,
    pair_feature_matrix,
    pair_features,
    stable_keys,
)
from kgrec.coldstart.persistence import check_encoder, load_dir, save_dir
from kgrec.coldstart.sampling import carve_cold_items, carve_validation
from kgrec.coldstart.train import Callback, TrainConfig, fit_loop, pair_logits
from kgrec.encoders import BertTextEncoder, CachedTextEncoder, EmbeddingCache, HashingEncoder
from kgrec.encoders.text import TextEncoder
from kgrec.errors import ModelError, NotFittedError
from kgrec.graph.export import ExportedGraph

logger = logging.getLogger(__name__)

_NOT_FITTED = ("This ColdStartModel is not fitted yet: call model.fit(graph) or "
               "ColdStartModel.load(path) first")


class ColdStartModel:
    """Heterogeneous GNN + jointly trained CTR head that scores new items and users.

    The constructor only stores its arguments (scikit-learn contract); ``fit`` does the work.

    Args:
        text_encoder: Item text encoder; default ``None`` -> ``BertTextEncoder()``, created
            lazily in ``fit``.
        hidden_dim: Representation size, default 64.
        num_layers: Message-passing layers, default 2.
        conv: ``"sage"`` (default), ``"gat"`` or ``"hgt"``.
        heads: Attention heads for GAT/HGT, default 2.
        dropout: Dropout on each GNN layer's update, default 0.1.
        epochs: Maximum epochs, default 50.
        steps_per_epoch: Optimiser steps per epoch (supervision batches), default 4.
        lr: Adam learning rate, default 3e-3.
        weight_decay: Adam L2 penalty, default 1e-5.
        neg_ratio: Sampled negatives per supervision positive, default 4.
        pop_neg_share: Share of negatives drawn by item popularity (rest uniform), default 0.5.
        supervision_share: Share of training positives used as supervision (not message) edges
            each epoch, default 0.3.
        item_edge_dropout: Share of items whose interaction edges are all hidden each step
            (learn to score from content), default 0.3.
        user_edge_dropout: Same for users, default 0.3.
        text_match: Add a learned-weight cosine between an item's text vector and the mean
            text vector of the user's interacted items to the tower (a content-match feature
            that keeps retrieval a dot product), default True.
        pair_features: Add the "wide" part to the CTR head: a small MLP over graph-path
            features of the pair (mean and max text cosine to the user's history items, share
            of the history with the item's brand/category/attribute; see
            :mod:`kgrec.coldstart.pairs`), default True. Full-head scores only; retrieval
            by dot product is unchanged.
        max_history: Most recent history items per user the pair features read, default 256.
        use_price: Add standardised log-price to item inputs, default True.
        use_related: Use RELATED (knowledge-graph) edges, default True.
        val_user_share: Users whose latest positive is held out for early stopping and
            calibration, default 0.1.
        cold_val_share: Share of the items with training positives held out of training
            entirely (all their positives), default 0.1: early stopping watches how they rank
            among themselves (the item-cold task), and the head's gate and wide part are
            refitted on them. 0 turns this off (tiny graphs).
        calibration_negatives: Uniform negatives per validation positive for calibration,
            default 100.
        patience: Epochs without validation gain before stopping, default 5.
        seed: Seed of every random draw, default 0.
        device: Torch device, default ``"cpu"``.
        num_threads: torch CPU threads while fitting/scoring (restored afterwards); default
            None keeps torch's setting. On a busy shared machine 1 avoids thread thrashing,
            which can make small graphs hundreds of times slower.
        show_progress: tqdm bar over epochs, default False.
        cache_dir: Folder for an on-disk text-embedding cache, default None (memory only).

    Attributes:
        history_: Per-epoch dicts (``loss``, ``val_auc``, ``val_loss``, ``seconds``).
        calibration_: Calibration slope/intercept and held-out ``ece``/``log_loss``.
        vocabs_: ``IdVocab`` per shared node type.
    """

    def __init__(self, *, text_encoder: TextEncoder | None = None, hidden_dim: int = 64,
                 num_layers: int = 2, conv: str = "sage", heads: int = 2, dropout: float = 0.1,
                 epochs: int = 50, steps_per_epoch: int = 4, lr: float = 3e-3,
                 weight_decay: float = 1e-5, neg_ratio: int = 4, pop_neg_share: float = 0.5,
                 supervision_share: float = 0.3, item_edge_dropout: float = 0.3,
                 user_edge_dropout: float = 0.3, text_match: bool = True,
                 pair_features: bool = True, max_history: int = DEFAULT_MAX_HISTORY,
                 use_price: bool = True,
                 use_related: bool = True, val_user_share: float = 0.1,
                 cold_val_share: float = 0.1,
                 calibration_negatives: int = 100, patience: int = 5, seed: int = 0,
                 device: str = "cpu", num_threads: int | None = None,
                 show_progress: bool = False, cache_dir: str | Path | None = None,
                 softmax_weight: float = 0.0, softmax_max_items: int = 20_000,
                 softmax_samples: int = 4096, cold_softmax_weight: float = 0.0,
                 center_embeddings: bool = False, attr_match_buckets: int = 0,
                 attr_match_max_floats: int = 1 << 25) -> None:
        self.text_encoder = text_encoder
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.conv = conv
        self.heads = heads
        self.dropout = dropout
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.lr = lr
        self.weight_decay = weight_decay
        self.neg_ratio = neg_ratio
        self.pop_neg_share = pop_neg_share
        self.supervision_share = supervision_share
        self.item_edge_dropout = item_edge_dropout
        self.user_edge_dropout = user_edge_dropout
        self.text_match = text_match
        self.pair_features = pair_features
        self.max_history = max_history
        self.use_price = use_price
        self.use_related = use_related
        self.val_user_share = val_user_share
        self.cold_val_share = cold_val_share
        self.calibration_negatives = calibration_negatives
        self.patience = patience
        self.seed = seed
        self.device = device
        self.num_threads = num_threads
        self.show_progress = show_progress
        self.cache_dir = cache_dir
        self.softmax_weight = softmax_weight
        self.softmax_max_items = softmax_max_items
        self.softmax_samples = softmax_samples
        self.cold_softmax_weight = cold_softmax_weight
        self.center_embeddings = center_embeddings
        self.attr_match_buckets = attr_match_buckets
        self.attr_match_max_floats = attr_match_max_floats

    # -- scikit-learn plumbing ------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """Constructor arguments as stored (scikit-learn contract)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> ColdStartModel:
        """Set constructor arguments; returns ``self``.

        Raises:
            ValueError: an unknown parameter name.
        """
        names = set(self._param_names())
        for key, value in params.items():
            if key not in names:
                raise ValueError(f"unknown parameter {key!r}; valid: {sorted(names)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {k: v.default for k, v in inspect.signature(type(self).__init__)
                    .parameters.items() if k != "self"}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k]]
        return f"ColdStartModel({', '.join(changed)})"

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """Temporarily use ``num_threads`` torch threads (global torch state is restored)."""
        if self.num_threads is None:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(int(self.num_threads))
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _check_fitted(self) -> None:
        if not hasattr(self, "encoder_"):
            raise NotFittedError(_NOT_FITTED)

    def _validate(self) -> None:
        checks = [
            (self.conv in CONVS, f"conv must be one of {CONVS}, got {self.conv!r}"),
            (self.hidden_dim >= 2, f"hidden_dim must be >= 2, got {self.hidden_dim}"),
            (self.num_layers >= 1, f"num_layers must be >= 1, got {self.num_layers}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.neg_ratio >= 1, f"neg_ratio must be >= 1, got {self.neg_ratio}"),
            (0 <= self.pop_neg_share <= 1, "pop_neg_share must be in [0, 1]"),
            (0 < self.supervision_share < 1, "supervision_share must be in (0, 1)"),
            (0 <= self.item_edge_dropout < 1, "item_edge_dropout must be in [0, 1)"),
            (0 <= self.user_edge_dropout < 1, "user_edge_dropout must be in [0, 1)"),
            (0 <= self.val_user_share < 1, "val_user_share must be in [0, 1)"),
            (0 <= self.cold_val_share < 1, "cold_val_share must be in [0, 1)"),
            (self.softmax_weight >= 0, "softmax_weight must be >= 0"),
            (self.softmax_samples >= 1, "softmax_samples must be >= 1"),
            (self.cold_softmax_weight >= 0, "cold_softmax_weight must be >= 0"),
            (self.max_history >= 1, f"max_history must be >= 1, got {self.max_history}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    def _resolve_encoder(self) -> TextEncoder:
        enc: TextEncoder = self.text_encoder if self.text_encoder is not None \
            else BertTextEncoder(device=self.device)
        if self.cache_dir is not None:
            enc = CachedTextEncoder(enc, EmbeddingCache(self.cache_dir))
        return enc

    def _build_modules(self, text_dim: int, edge_types: list[tuple[str, str, str]]) -> None:
        all_types = [et for base in edge_types for et in (base, reverse(base))]
        all_types += [("User", "INTERACTED", "Item"), ("Item", "rev_INTERACTED", "User")]
        in_item = text_dim + (PRICE_DIM if self.use_price else 0)
        attr = [(et, n) for et, n in self.attr_dims_]
        self.encoder_ = HeteroGNN(in_item=in_item,
                                  vocab_sizes={t: len(v) for t, v in self.vocabs_.items()},
                                  edge_types=all_types, hidden_dim=self.hidden_dim,
                                  num_layers=self.num_layers, conv=self.conv, heads=self.heads,
                                  dropout=self.dropout,
                                  text_match_dim=text_dim if self.text_match else 0,
                                  center=self.center_embeddings,
                                  attr_match=attr).to(self.device)
        self.pair_attr_types_ = [et for et in edge_types
                                 if et[0] == ITEM and et[2] in SHARED_TYPES]
        self.pair_profile_types_ = [et for et in edge_types
                                    if et[0] == USER and et[2] in SHARED_TYPES]
        n_pair = len(feature_names(self.pair_attr_types_, bool(self.pair_profile_types_))) \
            if self.pair_features else 0
        self.head_ = CTRHead(self.hidden_dim, text_dim=text_dim if self.text_match else 0,
                             attr_dims=tuple(n for _, n in attr), n_pair=n_pair).to(self.device)

    @staticmethod
    def _pair_keys(graph: ExportedGraph) -> dict[str, Tensor]:
        return {t: stable_keys(t, np.asarray(graph.node_ids.get(t, np.empty(0)), dtype=object))
                for t in (ITEM, *SHARED_TYPES)}

    def _item_tables(self, tensors: GraphTensors,
                     keys: dict[str, Tensor]) -> ItemTables | None:
        """Item x item tables for fitting (many pairs per step), when the catalogue is small."""
        if not self.head_.n_pair:
            return None
        return item_tables(tensors, self.pair_attr_types_, keys, self.text_dim_)

    def _pair_inputs(self, graph: ExportedGraph, tensors: GraphTensors, pairs: Tensor,
                     times: Tensor, tables: ItemTables | None = None,
                     keys: dict[str, Tensor] | None = None) -> PairInputs | None:
        """Pair-feature inputs of ``tensors`` (built from ``graph``) with history ``pairs``;
        None for a model without pair features. ``tables``/``keys``: :meth:`_item_tables` and
        :meth:`_pair_keys` of the same graph, when the caller already has them."""
        if not self.head_.n_pair:
            return None
        keys = keys if keys is not None else self._pair_keys(graph)
        return build_pair_inputs(tensors, pairs, self.pair_attr_types_, keys, self.text_dim_,
                                 self.max_history, times, self.pair_profile_types_, tables)

    def _attr_dims(self, edge_types: list[tuple[str, str, str]],
                   n_users: int) -> list[tuple[tuple[str, str, str], int]]:
        """Attribute-match blocks: ``min(attr_match_buckets, vocabulary)`` columns per
        Item->Brand/Category/Attribute edge type, scaled down so that the user blocks hold at
        most ``attr_match_max_floats`` numbers (memory stays bounded on big graphs)."""
        types = [et for et in edge_types if et[0] == ITEM and et[2] in SHARED_TYPES
                 and len(self.vocabs_[et[2]]) > 0]
        if self.attr_match_buckets <= 0 or not types:
            return []
        dims = [min(self.attr_match_buckets, len(self.vocabs_[et[2]])) for et in types]
        budget = max(1, self.attr_match_max_floats // max(n_users, 1))
        if sum(dims) > budget:
            dims = [max(1, d * budget // sum(dims)) for d in dims]
        return list(zip(types, dims, strict=True))

    # -- fitting --------------------------------------------------------------------------
    def fit(self, graph: ExportedGraph, *, callback: Callback | None = None) -> ColdStartModel:
        """Train GNN and CTR head jointly on ``graph``, then calibrate; returns ``self``.

        Args:
            graph: The training graph (``to_hetero_data(...)``).
            callback: Called as ``callback(epoch, metrics)`` after every epoch.

        Raises:
            ValueError: an invalid constructor argument.
            ModelError: the graph has no positive interaction to learn from.
        """
        self._validate()
        with self._threads():
            return self._fit(graph, callback)

    def _fit(self, graph: ExportedGraph, callback: Callback | None) -> ColdStartModel:
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        encoder = self._resolve_encoder()
        self.text_ = TextFeaturizer(encoder, show_progress=self.show_progress)
        self.encoder_identity_ = encoder.identity()
        self.vocabs_ = {t: IdVocab(graph.node_ids.get(t, np.empty(0, dtype=object)))
                        for t in SHARED_TYPES}
        prices = pd.to_numeric(graph.items["price"], errors="coerce").to_numpy(np.float64) \
            if "price" in graph.items else np.zeros(0)
        self.price_ = PriceScaler.fit(prices) if self.use_price else None
        self.edge_types_ = structural_edge_types(graph, use_related=self.use_related)
        tensors = graph_tensors(graph, edge_types=self.edge_types_, vocabs=self.vocabs_,
                                text=self.text_, price=self.price_)
        if tensors.pos.shape[1] == 0:
            raise ModelError("the graph has no positive interaction (click, cart, purchase or "
                             "rating) to learn from; check the INTERACTED edges")
        train_idx, val_idx = carve_validation(tensors.pos, tensors.pos_time,
                                              tensors.num_nodes[USER], self.val_user_share, gen)
        train_idx, val_idx, cold_idx = carve_cold_items(tensors.pos, train_idx, val_idx,
                                                        tensors.num_nodes[ITEM],
                                                        self.cold_val_share, gen)
        self.text_dim_ = int(tensors.item_x.shape[1]) - (PRICE_DIM if self.use_price else 0)
        self.attr_dims_ = self._attr_dims(self.edge_types_, tensors.num_nodes[USER])
        self._build_modules(self.text_dim_, self.edge_types_)
        release_free_memory()  # what building the graph left cached, before training's peak
        cfg = TrainConfig(epochs=self.epochs, steps_per_epoch=self.steps_per_epoch, lr=self.lr,
                          weight_decay=self.weight_decay, neg_ratio=self.neg_ratio,
                          pop_neg_share=self.pop_neg_share,
                          supervision_share=self.supervision_share,
                          item_edge_dropout=self.item_edge_dropout,
                          user_edge_dropout=self.user_edge_dropout, patience=self.patience,
                          softmax_weight=self.softmax_weight,
                          softmax_max_items=self.softmax_max_items,
                          softmax_samples=self.softmax_samples,
                          cold_softmax_weight=self.cold_softmax_weight,
                          show_progress=self.show_progress)
        logger.info("Training on %d positives (%d validation, %d on held-out items), %d users, "
                    "%d items", len(train_idx), len(val_idx), len(cold_idx),
                    tensors.num_nodes[USER], tensors.num_nodes[ITEM])
        keys = self._pair_keys(graph)  # once per fit: hashing ids every step is not free
        tables = self._item_tables(tensors, keys)

        def pair_builder(pairs: Tensor, times: Tensor) -> PairInputs:
            inputs = self._pair_inputs(graph, tensors, pairs, times, tables=tables, keys=keys)
            assert inputs is not None
            return inputs

        self.history_ = fit_loop(self.encoder_, self.head_, tensors, train_idx, val_idx, cfg,
                                 gen, callback,
                                 pair_builder=pair_builder if self.head_.n_pair else None,
                                 cold_pos=tensors.pos[:, cold_idx])
        self._calibrate(graph, tensors, train_idx, val_idx, gen, tables)
        return self

    def _calibrate(self, graph: ExportedGraph, tensors: GraphTensors, train_idx: Tensor,
                   val_idx: Tensor, gen: torch.Generator,
                   tables: ItemTables | None = None) -> None:
        """Platt-scale on validation pairs weighted to the real base rate (see calibration)."""
        n_items = tensors.num_nodes[ITEM]
        val = tensors.pos[:, val_idx]
        n_val, m = val.shape[1], self.calibration_negatives
        self.calibrator_ = PlattCalibrator()
        if n_val == 0:
            logger.warning("No validation pairs: probabilities are uncalibrated")
            self.calibrator_.a_, self.calibrator_.b_ = 1.0, 0.0
            self.calibration_ = {"a": 1.0, "b": 0.0, "n_pos": 0, "held_out": False}
            return
        known = torch.bincount(tensors.pos[0], minlength=tensors.num_nodes[USER])
        negs = torch.randint(n_items, (n_val, m), generator=gen)
        users = torch.cat([val[0], val[0].repeat_interleave(m)])
        items = torch.cat([val[1], negs.reshape(-1)])
        pairs = self._pair_inputs(graph, tensors, tensors.pos[:, train_idx],
                                  tensors.pos_time[train_idx], tables)
        logits = pair_logits(self.encoder_, self.head_, tensors, tensors.pos[:, train_idx],
                             users, items, pairs).numpy()
        # A validation user has one held-out positive among n_items - known other candidates:
        # each of the m sampled negatives stands for (n_items - known) / m real ones.
        w_neg = ((n_items - known[val[0]]).clamp(min=1).double() / m).numpy()
        row = np.concatenate([np.arange(n_val), np.repeat(np.arange(n_val), m)])
        y = np.concatenate([np.ones(n_val), np.zeros(n_val * m)])
        w = np.concatenate([np.ones(n_val), np.repeat(w_neg, m)])
        perm = torch.randperm(n_val, generator=gen).numpy()
        held_out = n_val >= 20
        fit_rows = perm[: n_val // 2] if held_out else perm
        rep_rows = perm[n_val // 2:] if held_out else perm
        fit_mask, rep_mask = np.isin(row, fit_rows), np.isin(row, rep_rows)
        self.calibrator_.fit(logits[fit_mask], y[fit_mask], w[fit_mask])
        p = self.calibrator_.predict_proba(logits[rep_mask])
        self.calibration_ = {
            "a": self.calibrator_.a_, "b": self.calibrator_.b_, "n_pos": int(len(rep_rows)),
            "held_out": held_out, "negatives_per_pos": m,
            "base_rate": float(np.sum(w[rep_mask] * y[rep_mask]) / np.sum(w[rep_mask])),
            "ece": expected_calibration_error(y[rep_mask], p, sample_weight=w[rep_mask]),
            "log_loss": log_loss(y[rep_mask], p, sample_weight=w[rep_mask]),
        }
        logger.info("Calibration: %s", self.calibration_)

    # -- inference ------------------------------------------------------------------------
    def transform(self, graph: ExportedGraph, *, user_ids: Sequence[str] | None = None,
                  item_ids: Sequence[str] | None = None) -> NodeEmbeddings:
        """User and item representations for any graph with the training schema.

        New items need only text and Brand/Category/Attribute edges; new users their profile
        attributes and any interactions. Shared ids unseen in training use the learned
        "unknown" embedding of their type. Deterministic (eval mode).

        Args:
            graph: The graph to embed (training graph, or it plus new nodes).
            user_ids, item_ids: When either is given, only these nodes are computed, on their
                ``num_layers``-hop subgraph (fold-in of new nodes without running the GNN on
                the whole graph; same result as the whole graph; the pair-feature inputs are
                still built from the whole graph, a linear pass over its edges); the other
                type then holds only the ids given (possibly none).

        Returns:
            :class:`NodeEmbeddings` whose rows follow ``graph.node_ids`` (or the ids given).

        Raises:
            NotFittedError: before ``fit``/``load``.
            UnknownIdError: an id in ``user_ids``/``item_ids`` is not a node of ``graph``.
        """
        self._check_fitted()
        with self._threads():
            return self._transform(graph, user_ids, item_ids)

    def _transform(self, graph: ExportedGraph, user_ids: Sequence[str] | None,
                   item_ids: Sequence[str] | None) -> NodeEmbeddings:
        tensors = graph_tensors(graph, edge_types=self.edge_types_, vocabs=self.vocabs_,
                                text=self.text_, price=self.price_)
        if user_ids is None and item_ids is None:
            h = self._encode(tensors)
            return NodeEmbeddings(user=h[USER], item=h[ITEM],
                                  user_ids=np.asarray(graph.node_ids[USER], dtype=object),
                                  item_ids=np.asarray(graph.node_ids[ITEM], dtype=object),
                                  pairs=self._pair_inputs(graph, tensors, tensors.pos,
                                                          tensors.pos_time))
        u_idx = graph.index_of(USER, list(user_ids or []))
        i_idx = graph.index_of(ITEM, list(item_ids or []))
        targets = {USER: torch.from_numpy(u_idx), ITEM: torch.from_numpy(i_idx)}
        keep = khop_nodes(tensors, targets, self.num_layers)
        sub = induced_subgraph(tensors, keep)
        h = self._encode(sub)
        pos_u = torch.searchsorted(keep[USER], targets[USER])
        pos_i = torch.searchsorted(keep[ITEM], targets[ITEM])
        # pair inputs from the whole graph: peer shares read users beyond the k-hop subgraph
        pairs = self._pair_inputs(graph, tensors, tensors.pos, tensors.pos_time)
        return NodeEmbeddings(user=h[USER][pos_u], item=h[ITEM][pos_i],
                              user_ids=np.asarray(graph.node_ids[USER], dtype=object)[u_idx],
                              item_ids=np.asarray(graph.node_ids[ITEM], dtype=object)[i_idx],
                              pairs=None if pairs is None else pairs.select(targets[USER],
                                                                            targets[ITEM]))

    def _encode(self, tensors: GraphTensors) -> dict[str, Tensor]:
        self.encoder_.eval()
        with torch.no_grad():
            return self.encoder_(tensors.item_x.to(self.device),
                                 {t: v.to(self.device) for t, v in tensors.shared_index.items()},
                                 tensors.num_nodes[USER],
                                 {k: v.to(self.device) for k, v in
                                  with_interactions(tensors, tensors.pos).items()})

    @staticmethod
    def _rows(idx: Sequence[int] | np.ndarray | None, n: int) -> Tensor:
        if idx is None:
            return torch.arange(n)
        t = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        if len(t) and (t.min() < 0 or t.max() >= n):
            raise IndexError(f"row indices must be in [0, {n}); got {int(t.min())}..{int(t.max())}")
        return t

    def predict_logits(self, emb: NodeEmbeddings, user_idx: Sequence[int] | np.ndarray,
                       item_idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """Raw (uncalibrated) head logits for pairs ``(emb.user[u_k], emb.item[i_k])``.

        Shapes: ``user_idx``, ``item_idx``: ``(n,)`` rows of ``emb``; returns ``(n,)``.

        Raises:
            NotFittedError: before ``fit``/``load``.
            ValueError: the index arrays differ in length.
        """
        self._check_fitted()
        u = self._rows(user_idx, len(emb.user_ids))
        i = self._rows(item_idx, len(emb.item_ids))
        if len(u) != len(i):
            raise ValueError(f"user_idx and item_idx differ in length: {len(u)} vs {len(i)}")
        pairs = self._emb_pairs(emb)
        self.head_.eval()
        with self._threads(), torch.no_grad():
            out = [self.head_(emb.user[u[s]], emb.item[i[s]],
                              None if pairs is None else pair_features(pairs, u[s], i[s]))[0]
                   for s in torch.arange(len(u)).split(1 << 16)]
        return torch.cat(out).double().numpy() if out else np.zeros(0)

    def _emb_pairs(self, emb: NodeEmbeddings) -> PairInputs | None:
        """``emb.pairs`` when the head needs pair features (error if they are missing)."""
        if not self.head_.n_pair:
            return None
        if emb.pairs is None:
            raise ValueError("these embeddings carry no pair-feature inputs, which this model's "
                             "head needs: make them with model.transform(graph) and combine "
                             "them with NodeEmbeddings.with_users/with_items")
        return emb.pairs

    def predict_proba(self, emb: NodeEmbeddings, user_idx: Sequence[int] | np.ndarray,
                      item_idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """Calibrated click probabilities for pairs: chance among all candidates, ``(n,)``.

        Raises:
            NotFittedError: before ``fit``/``load``.
        """
        logits = self.predict_logits(emb, user_idx, item_idx)
        return self.calibrator_.predict_proba(logits)

    def score_matrix(self, emb: NodeEmbeddings, user_idx: Sequence[int] | None = None,
                     item_idx: Sequence[int] | None = None, *,
                     chunk_size: int = 65_536) -> np.ndarray:
        """Calibrated probabilities for every (user, item) of the given rows, ``(U, I)``.

        The head runs on blocks of at most ``chunk_size`` pairs without materialising pairs
        (:meth:`CTRHead.logit_matrix`), so memory stays bounded (about
        ``chunk_size * hidden_dim`` floats) whatever U x I is; only the
        ``float32`` result grows with it. For large candidate sets retrieve with
        :meth:`retrieval_scores` first.

        Args:
            emb: From :meth:`transform`.
            user_idx, item_idx: Rows of ``emb``; default all.
            chunk_size: Most pairs scored at once, default 65,536.

        Raises:
            NotFittedError: before ``fit``/``load``.
            ValueError: ``chunk_size`` < 1.
        """
        self._check_fitted()
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        u = self._rows(user_idx, len(emb.user_ids))
        i = self._rows(item_idx, len(emb.item_ids))
        out = np.empty((len(u), len(i)), dtype=np.float32)
        cols = max(1, min(len(i), chunk_size))
        rows = max(1, chunk_size // cols)
        pairs = self._emb_pairs(emb)
        # float64 copy of the (small) head: block results then do not depend on chunk shapes
        head = copy.deepcopy(self.head_).double().eval()
        with self._threads(), torch.no_grad():
            for c0 in range(0, len(i), cols):
                hi = emb.item[i[c0:c0 + cols]].double()
                for r0 in range(0, len(u), rows):
                    hu = emb.user[u[r0:r0 + rows]].double()
                    feats = None if pairs is None else pair_feature_matrix(
                        pairs, u[r0:r0 + rows], i[c0:c0 + cols]).double()
                    logit = head.logit_matrix(hu, hi, feats).numpy()
                    out[r0:r0 + len(hu), c0:c0 + len(hi)] = self.calibrator_.predict_proba(logit)
        return out

    def retrieval_vectors(self, emb: NodeEmbeddings) -> tuple[np.ndarray, np.ndarray]:
        """User and item tower vectors for a maximum-inner-product index, ``(n, d')`` each.

        Raises:
            NotFittedError: before ``fit``/``load``.
        """
        self._check_fitted()
        with torch.no_grad():
            return (self.head_.user_vectors(emb.user).numpy(),
                    self.head_.item_vectors(emb.item).numpy())

    def retrieval_scores(self, emb: NodeEmbeddings, user_idx: Sequence[int] | None = None,
                         item_idx: Sequence[int] | None = None) -> np.ndarray:
        """Dot products of the retrieval towers (the head's tower logit minus its bias), ``(U, I)``.

        Ranks like the tower term of the head; use it to retrieve top-N candidates, then
        re-rank them with :meth:`predict_proba`.

        Raises:
            NotFittedError: before ``fit``/``load``.
        """
        uv, iv = self.retrieval_vectors(emb)
        u = self._rows(user_idx, len(uv)).numpy()
        i = self._rows(item_idx, len(iv)).numpy()
        return uv[u] @ iv[i].T

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model directory (JSON config + safetensors + vocabularies); returns it.

        Raises:
            NotFittedError: before ``fit``/``load``.
            ModelError: the directory cannot be written.
        """
        self._check_fitted()
        params = {k: (str(v) if isinstance(v, Path) else v)
                  for k, v in self.get_params().items() if k != "text_encoder"}
        config = {
            "params": params,
            "text_dim": self.text_dim_,
            "attr_dims": [[list(et), n] for et, n in self.attr_dims_],
            "edge_types": [list(et) for et in self.edge_types_],
            "price": None if self.price_ is None else
            {"mean": self.price_.mean, "std": self.price_.std},
            "calibration": {k: v for k, v in self.calibration_.items()
                            if not isinstance(v, float) or math.isfinite(v)},
            "encoder_identity": self.encoder_identity_,
            "history": self.history_,
        }
        weights = {f"encoder.{k}": v.cpu() for k, v in self.encoder_.state_dict().items()}
        weights.update({f"head.{k}": v.cpu() for k, v in self.head_.state_dict().items()})
        vocab = {t: v.ids for t, v in self.vocabs_.items()}
        return save_dir(path, config, vocab, weights)

    @classmethod
    def load(cls, path: str | Path, *, text_encoder: TextEncoder | None = None) -> ColdStartModel:
        """Load a model saved by :meth:`save`.

        Args:
            path: The model directory.
            text_encoder: The encoder to use; default: rebuilt from the saved identity
                (``HashingEncoder`` or the default ``BertTextEncoder``).

        Raises:
            ModelError: the directory is missing files or unreadable.
            IncompatibleModelError: saved by another kgrec major.minor, or the text encoder's
                identity differs from the saved one (the message names both).
        """
        config, vocab, weights = load_dir(path)
        saved = config["encoder_identity"]
        if text_encoder is None:
            if str(saved.get("name", "")).startswith("hashing-"):
                text_encoder = HashingEncoder(int(saved["dim"]), int(saved.get("ngram_max", 2)))
            else:
                text_encoder = BertTextEncoder(device=config["params"].get("device", "cpu"))
        check_encoder(saved, text_encoder.identity(), path)
        params = dict(config["params"])
        params.setdefault("pair_features", False)  # saved before the wide part existed
        model = cls(text_encoder=text_encoder, **params)
        enc = model._resolve_encoder()
        model.text_ = TextFeaturizer(enc, show_progress=model.show_progress)
        model.encoder_identity_ = saved
        model.vocabs_ = {t: IdVocab(vocab.get(t, [])) for t in SHARED_TYPES}
        model.price_ = PriceScaler(**config["price"]) if config["price"] else None
        model.edge_types_ = [tuple(et) for et in config["edge_types"]]
        model.text_dim_ = int(config["text_dim"])
        model.attr_dims_ = [((et[0], et[1], et[2]), int(n))
                            for et, n in config.get("attr_dims", [])]
        model._build_modules(model.text_dim_, model.edge_types_)  # type: ignore[arg-type]
        try:
            model.encoder_.load_state_dict(
                {k[8:]: v for k, v in weights.items() if k.startswith("encoder.")})
            model.head_.load_state_dict(
                {k[5:]: v for k, v in weights.items() if k.startswith("head.")})
        except RuntimeError as e:
            raise ModelError(f"weights in {path} do not fit the saved config: {e}") from e
        model.encoder_.eval()
        model.head_.eval()
        cal = config["calibration"]
        model.calibrator_ = PlattCalibrator()
        model.calibrator_.a_, model.calibrator_.b_ = float(cal["a"]), float(cal["b"])
        model.calibration_ = cal
        model.history_ = config.get("history", [])
        return model
