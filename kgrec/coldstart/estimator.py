"""``ColdStartModel``: the public estimator (scikit-learn contract) around GNN + CTR head.

The ranking layer builds on exactly these methods: ``fit`` -> ``transform`` (embeddings for any
graph with the same schema, new nodes included) -> ``retrieval_scores`` (dot product, for
top-N retrieval) and ``predict_proba`` / ``score_matrix`` (calibrated CTR, for re-ranking).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import Tensor

from kgrec.coldstart.calibration import (
    LogitFn,
    calibrate_regimes,
    calibrate_warm,
    calibrated_by_regime,
)
from kgrec.coldstart.config import ModelConfig, Params
from kgrec.coldstart.features import (
    INTERACTED,
    ITEM,
    PRICE_DIM,
    REV_INTERACTED,
    SHARED_TYPES,
    USER,
    GraphTensors,
    IdVocab,
    PriceScaler,
    TextFeaturizer,
    graph_tensors,
    reverse,
    structural_edge_types,
)
from kgrec.coldstart.heads import CTRHead
from kgrec.coldstart.inference import (
    NodeEmbeddings,
    check_rows,
    induced_subgraph,
    khop_nodes,
    torch_threads,
)
from kgrec.coldstart.item_tables import ItemTables, item_tables
from kgrec.coldstart.memory import release_free_memory
from kgrec.coldstart.minibatch import encode_graph, inference_chunk
from kgrec.coldstart.model import HeteroGNN, module_device
from kgrec.coldstart.pairs import (
    PairInputs,
    build_pair_inputs,
    feature_names,
    gate_columns,
    graph_keys,
)
from kgrec.coldstart.persistence import (
    check_encoder,
    read_model,
    restore_sizes,
    restore_state,
    save_model,
    saved_config,
    warm_start,
)
from kgrec.coldstart.sampling import carve_cold_items, carve_validation
from kgrec.coldstart.scoring import HeadCopy, flat_logits, list_logits, matrix_logit_blocks
from kgrec.coldstart.train import Callback, fit_loop, pair_logits
from kgrec.encoders import (
    CachedTextEncoder,
    EmbeddingCache,
    compose_item_texts,
    make_text_encoder,
)
from kgrec.encoders.lexical import LexicalEncoder
from kgrec.encoders.text import TextEncoder
from kgrec.errors import ModelError, NotFittedError
from kgrec.graph.export import ExportedGraph

logger = logging.getLogger(__name__)

_NOT_FITTED = ("This ColdStartModel is not fitted yet: call model.fit(graph) or "
               "ColdStartModel.load(path) first")


class ColdStartModel(Params):
    """Heterogeneous GNN + jointly trained CTR head that scores new items and users.

    The constructor only stores its arguments (scikit-learn contract); ``fit`` does the work.

    Args:
        config: What the model is and how it is trained (:class:`ModelConfig`); default
            ``None`` -> ``ModelConfig()``, the one set of defaults.
        text_encoder: Item text encoder; default ``None`` -> the factory's BERT encoder
            (:func:`kgrec.encoders.make_text_encoder`), created in ``fit``.
        device: Torch device, default ``"cpu"``.
        num_threads: torch CPU threads while fitting/scoring (restored afterwards); default
            None keeps torch's setting. On a busy shared machine 1 avoids thread thrashing,
            which can make small graphs hundreds of times slower.
        show_progress: tqdm bar over epochs, default False.
        cache_dir: Folder for an on-disk text-embedding cache, default None (memory only).

    Attributes:
        config_: The validated :class:`ModelConfig` the model was fitted with.
        history_: Per-epoch dicts (``loss``, ``val_auc``, ``val_loss``, ``seconds``).
        calibration_: Calibration slope/intercept and held-out ``ece``/``log_loss``.
        vocabs_: ``IdVocab`` per shared node type.
    """

    # fitted state read across methods (declared for type checkers)
    vocabs_: dict[str, IdVocab]
    encoder_identity_: dict[str, Any]
    lexical_: LexicalEncoder | None  # TF-IDF of item texts (config lexical_features)

    def __init__(self, config: ModelConfig | None = None, *,
                 text_encoder: TextEncoder | None = None, device: str = "cpu",
                 num_threads: int | None = None, show_progress: bool = False,
                 cache_dir: str | Path | None = None) -> None:
        self.config = config
        self.text_encoder = text_encoder
        self.device = device
        self.num_threads = num_threads
        self.show_progress = show_progress
        self.cache_dir = cache_dir

    def __repr__(self) -> str:
        cfg = "" if self.config is None else self.config.describe()
        return f"ColdStartModel({cfg})"

    @property
    def settings(self) -> ModelConfig:
        """The configuration in force: ``config_`` once fitted, else ``config`` or defaults."""
        fitted = getattr(self, "config_", None)
        if fitted is not None:
            return fitted  # type: ignore[no-any-return]
        return self.config if self.config is not None else ModelConfig()

    def _threads(self) -> contextlib.AbstractContextManager[None]:
        return torch_threads(self.num_threads)

    def _check_fitted(self) -> None:
        if not hasattr(self, "encoder_"):
            raise NotFittedError(_NOT_FITTED)

    def _resolve_encoder(self) -> TextEncoder:
        enc: TextEncoder = self.text_encoder if self.text_encoder is not None \
            else make_text_encoder("bert", device=self.device)
        if self.cache_dir is not None:
            enc = CachedTextEncoder(enc, EmbeddingCache(self.cache_dir))
        return enc

    def _build_modules(self, text_dim: int, edge_types: list[tuple[str, str, str]]) -> None:
        cfg = self.config_
        all_types = [et for base in edge_types for et in (base, reverse(base))]
        all_types += [INTERACTED, REV_INTERACTED]
        in_item = text_dim + (PRICE_DIM if cfg.use_price else 0)
        self.encoder_ = HeteroGNN(in_item=in_item,
                                  vocab_sizes={t: len(v) for t, v in self.vocabs_.items()},
                                  edge_types=all_types, hidden_dim=cfg.hidden_dim,
                                  num_layers=cfg.num_layers, conv=cfg.conv, heads=cfg.heads,
                                  dropout=cfg.dropout,
                                  text_match_dim=text_dim if cfg.text_match else 0
                                  ).to(self.device)
        self.pair_attr_types_ = [et for et in edge_types
                                 if et[0] == ITEM and et[2] in SHARED_TYPES]
        self.pair_profile_types_ = [et for et in edge_types
                                    if et[0] == USER and et[2] in SHARED_TYPES]
        names = feature_names(self.pair_attr_types_, bool(self.pair_profile_types_),
                              cfg.cooc_features, cfg.lexical_features, cfg.history_features,
                              cfg.recency_features) if cfg.pair_features else []
        self.head_ = CTRHead(cfg.hidden_dim, text_dim=text_dim if cfg.text_match else 0,
                             n_pair=len(names), warm_part=cfg.ranked_refit,
                             gate_columns=gate_columns(names) if names else None).to(self.device)

    def _pair_inputs(self, graph: ExportedGraph, tensors: GraphTensors, pairs: Tensor,
                     times: Tensor, tables: ItemTables | None = None,
                     keys: dict[str, Tensor] | None = None,
                     lex: sp.csr_matrix | None = None) -> PairInputs | None:
        """Pair-feature inputs of ``tensors`` (built from ``graph``) with history ``pairs``;
        None for a model without pair features. ``tables``/``keys``/``lex``:
        :func:`item_tables`, :func:`graph_keys` and TF-IDF rows of the same graph, when the
        caller already has them."""
        if not self.head_.n_pair:
            return None
        keys = keys if keys is not None else graph_keys(graph)
        if lex is None and self.lexical_ is not None:
            lex = self.lexical_.item_rows(graph.items)
        return build_pair_inputs(tensors, pairs, self.pair_attr_types_, keys, self.text_dim_,
                                 self.config_.max_history, times, self.pair_profile_types_,
                                 tables, cooc=self.config_.cooc_features, lex=lex,
                                 history=self.config_.history_features,
                                 recency=self.config_.recency_features)

    # -- fitting --------------------------------------------------------------------------
    def fit(self, graph: ExportedGraph, *, callback: Callback | None = None,
            init_from: ColdStartModel | None = None) -> ColdStartModel:
        """Train GNN and CTR head jointly on ``graph``, then calibrate; returns ``self``.

        Args:
            graph: The training graph (``to_hetero_data(...)``).
            callback: Called as ``callback(epoch, metrics)`` after every epoch.
            init_from: A fitted model to warm-start from (its weights that fit, the rows of
                shared ids it knows, the text vectors it encoded): fine-tuning on a grown graph.

        Raises:
            ValueError: an invalid setting in ``config``.
            ModelError: the graph has no positive interaction to learn from.
        """
        self.config_ = (self.config if self.config is not None else ModelConfig()).validate()
        with self._threads():
            return self._fit(graph, callback, init_from)

    def _fit(self, graph: ExportedGraph, callback: Callback | None,
             init_from: ColdStartModel | None = None) -> ColdStartModel:
        cfg = self.config_
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        encoder = self._resolve_encoder()
        self.text_ = TextFeaturizer(encoder, show_progress=self.show_progress)
        if init_from is not None:  # its vectors are only valid for the same encoder
            check_encoder(init_from.encoder_identity_, encoder.identity(), "init_from")
            self.text_.preload(*init_from.text_.snapshot())
        self.encoder_identity_ = encoder.identity()
        self.lexical_ = LexicalEncoder().fit(compose_item_texts(graph.items)[0]) \
            if cfg.pair_features and cfg.lexical_features and len(graph.items) else None
        self.vocabs_ = {t: IdVocab(graph.node_ids.get(t, np.empty(0, dtype=object)))
                        for t in SHARED_TYPES}
        prices = pd.to_numeric(graph.items["price"], errors="coerce").to_numpy(np.float64) \
            if "price" in graph.items else np.zeros(0)
        self.price_ = PriceScaler.fit(prices) if cfg.use_price else None
        self.edge_types_ = structural_edge_types(graph, use_related=cfg.use_related)
        tensors = graph_tensors(graph, edge_types=self.edge_types_, vocabs=self.vocabs_,
                                text=self.text_, price=self.price_)
        if tensors.pos.shape[1] == 0:
            raise ModelError("the graph has no positive interaction (click, cart, purchase or "
                             "rating) to learn from; check the INTERACTED edges")
        train_idx, val_idx = carve_validation(tensors.pos, tensors.pos_time,
                                              tensors.num_nodes[USER], cfg.val_user_share, gen)
        train_idx, val_idx, cold_idx = carve_cold_items(tensors.pos, train_idx, val_idx,
                                                        tensors.num_nodes[ITEM],
                                                        cfg.cold_val_share, gen)
        self.text_dim_ = int(tensors.item_x.shape[1]) - (PRICE_DIM if cfg.use_price else 0)
        self._build_modules(self.text_dim_, self.edge_types_)
        if init_from is not None:
            warm_start(self, init_from)
        release_free_memory()  # what building the graph left cached, before training's peak
        logger.info("Training on %d positives (%d validation, %d on held-out items), %d users, "
                    "%d items", len(train_idx), len(val_idx), len(cold_idx),
                    tensors.num_nodes[USER], tensors.num_nodes[ITEM])
        keys = graph_keys(graph)  # once per fit: hashing ids every step is not free
        lex = None if self.lexical_ is None else self.lexical_.item_rows(graph.items)
        tables = item_tables(tensors, self.pair_attr_types_, keys, self.text_dim_, lex) \
            if self.head_.n_pair else None  # item x item lookups while the catalogue is small

        def pair_builder(pairs: Tensor, times: Tensor) -> PairInputs:
            inputs = self._pair_inputs(graph, tensors, pairs, times, tables, keys, lex)
            assert inputs is not None
            return inputs

        self.history_ = fit_loop(self.encoder_, self.head_, tensors, train_idx, val_idx, cfg,
                                 gen, callback, show_progress=self.show_progress,
                                 pair_builder=pair_builder if self.head_.n_pair else None,
                                 cold_pos=tensors.pos[:, cold_idx])
        self._calibrate(graph, tensors, train_idx, val_idx, cold_idx, gen, tables)
        return self

    def _calibrate(self, graph: ExportedGraph, tensors: GraphTensors, train_idx: Tensor,
                   val_idx: Tensor, cold_idx: Tensor, gen: torch.Generator,
                   tables: ItemTables | None = None) -> None:
        """Platt-scale warm validation users' next items (:func:`calibrate_warm`), then new SKUs
        and new users on held-out ones of their own (:func:`calibrate_regimes`)."""
        def logit_fn_on(msg: Tensor, times: Tensor) -> LogitFn:
            def logit_fn(users: Tensor, items: Tensor) -> np.ndarray:
                out: np.ndarray = pair_logits(
                    self.encoder_, self.head_, tensors, msg, users, items,
                    lambda: self._pair_inputs(graph, tensors, msg, times, tables),
                    inference_chunk(self.config_, tensors)).numpy()
                return out
            return logit_fn

        n_users, n_items = tensors.num_nodes[USER], tensors.num_nodes[ITEM]
        m = self.config_.calibration_negatives
        self.calibrator_, self.calibration_ = calibrate_warm(
            logit_fn_on, tensors.pos, tensors.pos_time, train_idx, val_idx, cold_idx, n_users,
            n_items, m, gen)
        self.regime_calibrators_, self.calibration_["regimes"] = calibrate_regimes(
            logit_fn_on, tensors.pos, tensors.pos_time, train_idx, val_idx, cold_idx, n_users,
            n_items, m, gen)

    def _calibrated(self, logits: np.ndarray, emb: NodeEmbeddings, u: Tensor, i: Tensor,
                    scope: Tensor | None = None) -> np.ndarray:
        """Probabilities of ``logits`` ``(len(u), len(i))`` or ``(n,)`` (then ``u``, ``i`` are
        the pairs) by regime (:func:`calibrated_by_regime`; ``scope``: the whole ranked
        candidate set of a score matrix)."""
        return calibrated_by_regime(self.calibrator_, getattr(self, "regime_calibrators_", {}),
                                    logits, emb.pairs, u, i, scope)

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
        keep = khop_nodes(tensors, targets, self.config_.num_layers)
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
        self.encoder_.eval()  # past MINI_BATCH_ABOVE positives: layer by layer, in node chunks
        on = tensors.to(self.device)
        h = encode_graph(self.encoder_, on, on.pos, inference_chunk(self.config_, on))
        return {t: v.cpu() for t, v in h.items()}  # computed on the device, used on the CPU

    def predict_logits(self, emb: NodeEmbeddings, user_idx: Sequence[int] | np.ndarray,
                       item_idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """Raw (uncalibrated) head logits for pairs ``(emb.user[u_k], emb.item[i_k])``.

        Shapes: ``user_idx``, ``item_idx``: ``(n,)`` rows of ``emb``; returns ``(n,)``.

        Raises:
            NotFittedError: before ``fit``/``load``.
            ValueError: the index arrays differ in length.
        """
        self._check_fitted()
        u = check_rows(user_idx, len(emb.user_ids))
        i = check_rows(item_idx, len(emb.item_ids))
        if len(u) != len(i):
            raise ValueError(f"user_idx and item_idx differ in length: {len(u)} vs {len(i)}")
        pairs = self._emb_pairs(emb)
        self.head_.eval()
        with self._threads(), torch.no_grad():
            return flat_logits(self.head_, emb, pairs, u, i)

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
        return self._calibrated(logits, emb, check_rows(user_idx, len(emb.user_ids)),
                                check_rows(item_idx, len(emb.item_ids)))

    def predict_proba_lists(self, emb: NodeEmbeddings, user_idx: Sequence[int] | np.ndarray,
                            item_lists: np.ndarray) -> np.ndarray:
        """:meth:`predict_proba` of user ``user_idx[r]`` with items ``item_lists[r]`` (rows of
        ``emb``, ``(b,)`` and ``(b, n)``) -> ``(b, n)``: re-ranking's shape, long lists at under
        half the cost of flat pairs (:func:`~kgrec.coldstart.scoring.list_logits`)."""
        self._check_fitted()
        u = check_rows(user_idx, len(emb.user_ids))
        lists = np.asarray(item_lists, dtype=np.int64)
        if lists.ndim != 2 or len(lists) != len(u):
            raise ValueError(f"item_lists must have shape ({len(u)}, n), got {lists.shape}")
        grid = check_rows(lists.reshape(-1), len(emb.item_ids)).view(lists.shape)
        self.head_.eval()
        with self._threads(), torch.no_grad():
            logits = list_logits(self.head_, emb, self._emb_pairs(emb), u, grid)
        return self._calibrated(logits, emb, u, grid.reshape(-1))

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
        u = check_rows(user_idx, len(emb.user_ids))
        i = check_rows(item_idx, len(emb.item_ids))
        out = np.empty((len(u), len(i)), dtype=np.float32)
        pairs = self._emb_pairs(emb)
        if not hasattr(self, "_head64"):
            self._head64 = HeadCopy()
        with self._threads(), torch.no_grad():
            for rows, cols, logit in matrix_logit_blocks(self._head64.get(self.head_), emb,
                                                         pairs, u, i, chunk_size):
                out[rows, cols] = self._calibrated(logit, emb, u[rows], i[cols], scope=i)
        return out

    def retrieval_vectors(self, emb: NodeEmbeddings) -> tuple[np.ndarray, np.ndarray]:
        """User and item tower vectors for a maximum-inner-product index, ``(n, d')`` each.

        Raises:
            NotFittedError: before ``fit``/``load``.
        """
        self._check_fitted()
        dev = module_device(self.head_)
        with torch.no_grad():
            return (self.head_.user_vectors(emb.user.to(dev)).cpu().numpy(),
                    self.head_.item_vectors(emb.item.to(dev)).cpu().numpy())

    def retrieval_scores(self, emb: NodeEmbeddings, user_idx: Sequence[int] | None = None,
                         item_idx: Sequence[int] | None = None) -> np.ndarray:
        """Dot products of the retrieval towers (the head's tower logit minus its bias), ``(U, I)``.

        Ranks like the tower term of the head; use it to retrieve top-N candidates, then
        re-rank them with :meth:`predict_proba`.

        Raises:
            NotFittedError: before ``fit``/``load``.
        """
        uv, iv = self.retrieval_vectors(emb)
        u = check_rows(user_idx, len(uv)).numpy()
        i = check_rows(item_idx, len(iv)).numpy()
        return uv[u] @ iv[i].T

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model directory (JSON config + safetensors + vocabularies); returns it.

        Raises:
            NotFittedError: before ``fit``/``load``.
            ModelError: the directory cannot be written.
        """
        self._check_fitted()
        return save_model(self, path)

    @classmethod
    def load(cls, path: str | Path, *, text_encoder: TextEncoder | None = None,
             device: str = "cpu", num_threads: int | None = None,
             cache_dir: str | Path | None = None) -> ColdStartModel:
        """Load a model saved by :meth:`save`.

        Args:
            path: The model directory.
            text_encoder: The encoder to use; default: rebuilt from the saved identity
                (:func:`kgrec.encoders.encoder_for_identity`).
            device, num_threads, cache_dir: Runtime arguments, as in the constructor.

        Raises:
            ModelError: the directory is missing files or unreadable.
            IncompatibleModelError: saved by another kgrec major.minor, or the text encoder's
                identity differs from the saved one (the message names both).
        """
        config, vocab, weights, text_encoder = read_model(path, text_encoder, device, num_threads)
        model = cls(saved_config(config), text_encoder=text_encoder, device=device,
                    num_threads=num_threads, cache_dir=cache_dir)
        model.config_ = model.settings.validate()
        model.text_ = TextFeaturizer(model._resolve_encoder(), show_progress=False)
        restore_sizes(model, config, vocab)
        model._build_modules(model.text_dim_, model.edge_types_)
        restore_state(model, config, vocab, weights, path)
        return model
