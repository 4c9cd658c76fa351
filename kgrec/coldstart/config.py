"""``ModelConfig``: every setting of the cold-start model, with ONE set of defaults.

Why one object: the library, ``kgrec train``, ``kgrec evaluate`` and the demo used to carry their
own copies of these numbers, and the configuration behind the benchmarked figures was not the one
a user got from ``Recommender()``. Now each entry point takes a ``ModelConfig`` (the demo shortens
``epochs`` explicitly and says so), the model saves it beside its weights, and every report prints
it. The defaults are the settings of ``benchmarks/EVALUATION.md``.

Runtime choices that do not change what is learned (device, threads, progress bars, the text
encoder and its cache) are arguments of :class:`~kgrec.coldstart.ColdStartModel`, not settings.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

from kgrec.errors import ModelError

CONVS: tuple[str, ...] = ("sage", "gat", "hgt")

# Settings that older kgrec versions saved and that were removed with their code (they did not
# help on validation, benchmarks/TRAIN.md round 2): loading such a model drops them when they
# hold their "off" value and refuses it otherwise.
REMOVED_SETTINGS: dict[str, Any] = {
    "softmax_weight": 0.0, "softmax_max_items": None, "softmax_samples": None,
    "cold_softmax_weight": 0.0, "center_embeddings": False, "attr_match_buckets": 0,
    "attr_match_max_floats": None,
}
# Runtime arguments that older versions saved among the settings.
RUNTIME_ARGUMENTS: frozenset[str] = frozenset(
    {"device", "num_threads", "show_progress", "cache_dir"})
BATCH_MODES: tuple[str, ...] = ("auto", "full", "mini")
# batch_mode="auto" trains mini-batch above this many positive pairs: full batch peaked at 3.0 GB
# for 1M (benchmarks/TRAIN.md) and grows with the graph, so 2M is about 6 GB, the most that
# leaves room beside other work on a 24 GB machine (benchmarks/SCALE.md, "Training")
MINI_BATCH_ABOVE = 2_000_000


@dataclass(frozen=True)
class ModelConfig:
    """What the cold-start model is and how it is trained.

    Architecture:
        hidden_dim: Representation size, default 64.
        num_layers: Message-passing layers, default 2.
        conv: ``"sage"`` (default), ``"gat"`` or ``"hgt"``.
        heads: Attention heads for GAT/HGT, default 2.
        dropout: Dropout on each GNN layer's update, default 0.1.
        text_match: A learned-weight cosine between an item's text vector and the mean text
            vector of the user's items in the tower (keeps retrieval a dot product), default True.
        pair_features: The head's "wide" part over graph-path features of the pair
            (:mod:`kgrec.coldstart.pairs`), default True; False gives the deep-only model.
        max_history: Most recent history items per user the pair features read, default 256.
        cooc_features: With ``pair_features``, add the mean and max item co-occurrence cosine
            between the candidate and the user's history items (``User -> Item <- User ->
            Item`` on the graph being scored; :mod:`kgrec.coldstart.cooc`), default True: on
            the round-6 validation splits it lifted warm and one-to-three-click users on
            Amazon and MovieLens (MovieLens warm to item-kNN's level), benchmarks/EVALUATION.md.
        lexical_features: With ``pair_features``, add the mean and max TF-IDF cosine between
            the candidate's text and the user's history items' texts (scikit-learn's
            ``TfidfVectorizer``, vocabulary and IDF fitted on the training catalogue and saved;
            :mod:`kgrec.encoders.lexical`), default False: on the round-6 validation splits it
            lifted Amazon's new SKUs (Recall@20 0.214 -> 0.234) but cut MovieLens's (0.159 ->
            0.133), so it does not earn its place on every dataset.
        history_features: With ``pair_features``, add the user's history size (``log1p``) and
            a short-history flag (1 to 3 items) to the pair features, with a gate of its own
            for short histories, refitted on validation users cut to their first 1 to 3
            interactions (:mod:`kgrec.coldstart.pairs`), default True.
        recency_features: With ``pair_features``, add the text and co-occurrence cosines to
            the user's history items weighted by recency (``1 / (1 + j)`` for the ``j``-th most
            recent, users with at least 4 history items; :mod:`kgrec.coldstart.pairs`), held
            at 0 while training jointly and learned by the time-ordered refit sets, default
            True: on the validation splits (round 11, benchmarks/EVALUATION.md) MovieLens warm
            Recall@20 +16% and +19% (seeds 0, 1), Amazon warm -1% and +4%, The Complete
            Journey warm -2% (seed 0), the other regimes within single-seed noise.
        ranked_refit: With ``pair_features``, the final refit of the wide part also ranks the
            latest fifth of validation users' histories against the whole catalogue (softmax
            over every item, or over 4,096 sampled ones plus the positives on larger
            catalogues; :mod:`kgrec.coldstart.refit`), and users with a longer history get a
            wide part of their own, default True: the sampled warm set alone never shows the
            close calls among popular items. Like the whole refit, it runs only with items held
            out for validation (``cold_val_share`` > 0).
        refit_anchor: With the history parts above, the final refit adds this weight times
            the squared move of the wide parts of users with a history from their jointly
            trained values to its loss, and their step size decays to zero (cosine); 0 refits
            them as before, default 1e-3. Why: a few hundred validation users cannot pin down
            every weight; unanchored, a float-rounding change in the inputs moved refitted
            logits by up to 3.6 and changed a tenth of the top-20 lists (MovieLens; 0.14 and
            under 1% anchored), and single-seed results moved by up to 12% with it
            (benchmarks/EVALUATION.md, round 10).
        refit_steps: Adam steps of that final refit, default 300. A fine-tune
            (``fit(init_from=...)``) starts from a model whose wide parts were already
            refitted and can take fewer: 100 cut a MovieLens warm-start update from 77 to 59 s
            of CPU with no loss of Recall@20 on the replay it was chosen on (one seed;
            benchmarks/REPLAY.md).
        use_price: Standardised log-price among the item inputs, default True.
        use_related: Use RELATED (knowledge-graph) edges, default True.

    Training:
        epochs: Maximum epochs, default 60.
        steps_per_epoch: Optimiser steps (supervision batches) per epoch, default 8.
        lr: Adam learning rate, default 5e-3; the wide part uses ``lr * wide_lr_scale``.
        weight_decay: Adam L2 penalty, default 1e-5.
        neg_ratio: Sampled negatives per supervision positive, default 4.
        pop_neg_share: Share of negatives drawn by item popularity (rest uniform), default 0.5.
        cold_matched_negatives: A positive on an edge-hidden item gets its negatives among
            edge-hidden items, default True.
        supervision_share: Share of training positives used as supervision (not message) edges
            each epoch, default 0.3.
        item_edge_dropout: Share of items whose interaction edges are hidden each step, so the
            model learns to score from content, default 0.3.
        user_edge_dropout: The same for users, default 0.3.
        shared_id_dropout: Share of brand/category/attribute ids replaced by "unknown" each step,
            default 0.05.
        tower_loss_weight: Weight of the retrieval tower's own BCE term, default 0.5.
        deep_loss_weight: Weight of the BCE on the logit without the wide part, default 0.5.
        wide_lr_scale: Learning-rate multiplier of the wide part, default 10.
        patience: Epochs without validation gain before stopping, default 8.
        val_user_share: Users whose latest positive is held out for early stopping and
            calibration, default 0.1.
        cold_val_share: Share of the items with positives held out of training entirely, for
            early stopping on the item-cold task and the refit of the gate, default 0.1.
        val_negatives: Sampled negatives per validation positive, default 100.
        max_val_pairs: Most validation positives scored per epoch, default 2,000.
        calibration_negatives: Uniform negatives per validation positive for calibration,
            default 100 (25 in the fine-tune recipe, :meth:`fine_tune`).
        seed: Seed of every random draw, default 0.

    Scale (:mod:`kgrec.coldstart.minibatch`):
        batch_mode: ``"full"``: every step runs the GNN over the whole graph; ``"mini"``: every
            step runs it on the sampled neighbourhoods of its pairs only, and inference runs
            layer by layer in node chunks, so memory follows the batch, not the graph;
            ``"auto"`` (default): mini above ``MINI_BATCH_ABOVE`` (2,000,000) positive pairs.
        batch_size: Mini-batch: most supervision positives per step, default 4,096 (an epoch
            takes ``max(steps_per_epoch, ceil(supervision positives / batch_size))`` steps).
        fanout: Mini-batch: in-neighbours sampled per node, edge type and hop (all of them
            when a node has no more), default 10.
    """

    hidden_dim: int = 64
    num_layers: int = 2
    conv: str = "sage"
    heads: int = 2
    dropout: float = 0.1
    text_match: bool = True
    pair_features: bool = True
    max_history: int = 256
    cooc_features: bool = True
    lexical_features: bool = False
    history_features: bool = True
    recency_features: bool = True
    ranked_refit: bool = True
    refit_anchor: float = 1e-3
    refit_steps: int = 300
    use_price: bool = True
    use_related: bool = True
    epochs: int = 60
    steps_per_epoch: int = 8
    lr: float = 5e-3
    weight_decay: float = 1e-5
    neg_ratio: int = 4
    pop_neg_share: float = 0.5
    cold_matched_negatives: bool = True
    supervision_share: float = 0.3
    item_edge_dropout: float = 0.3
    user_edge_dropout: float = 0.3
    shared_id_dropout: float = 0.05
    tower_loss_weight: float = 0.5
    deep_loss_weight: float = 0.5
    wide_lr_scale: float = 10.0
    patience: int = 8
    val_user_share: float = 0.1
    cold_val_share: float = 0.1
    val_negatives: int = 100
    max_val_pairs: int = 2000
    calibration_negatives: int = 100
    seed: int = 0
    batch_mode: str = "auto"
    batch_size: int = 4096
    fanout: int = 10

    def mini_batch(self, n_pos: int) -> bool:
        """Whether a graph with ``n_pos`` positive pairs trains mini-batch (``batch_mode``)."""
        return self.batch_mode == "mini" or (self.batch_mode == "auto"
                                             and n_pos > MINI_BATCH_ABOVE)

    def fine_tune(self) -> ModelConfig:
        """These settings with the warm-start recipe: ``FINE_TUNE`` (5 epochs, 100 refit steps,
        25 calibration negatives), for ``fit(init_from=...)`` and ``kgrec train --init-from``.

        Why: a fine-tune starts from a trained model, so it needs a few epochs and a short
        refit (chosen on the MovieLens replay, benchmarks/REPLAY.md); its calibration draws 25
        negatives per validation positive, not 100, because the calibration is a fixed cost of
        every fit (a third of a MovieLens warm start's CPU) and does not change any ranking.
        With 25 the Platt slopes and intercepts of every regime stayed within 5% of
        100's and the held-out ECE at 0.003-0.019 (0.003-0.016 with 100); 10 moved them 6-11%.
        """
        return self.replace(**FINE_TUNE)

    def validate(self) -> ModelConfig:
        """Check every setting; returns ``self``.

        Raises:
            ValueError: a setting out of range, naming it and the range.
        """
        checks = [
            (self.conv in CONVS, f"conv must be one of {CONVS}, got {self.conv!r}"),
            (self.hidden_dim >= 2, f"hidden_dim must be >= 2, got {self.hidden_dim}"),
            (self.num_layers >= 1, f"num_layers must be >= 1, got {self.num_layers}"),
            (self.heads >= 1, f"heads must be >= 1, got {self.heads}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.max_history >= 1, f"max_history must be >= 1, got {self.max_history}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.steps_per_epoch >= 1,
             f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.refit_anchor >= 0, f"refit_anchor must be >= 0, got {self.refit_anchor}"),
            (self.refit_steps >= 1, f"refit_steps must be >= 1, got {self.refit_steps}"),
            (self.neg_ratio >= 1, f"neg_ratio must be >= 1, got {self.neg_ratio}"),
            (0 <= self.pop_neg_share <= 1, "pop_neg_share must be in [0, 1]"),
            (0 < self.supervision_share < 1, "supervision_share must be in (0, 1)"),
            (0 <= self.item_edge_dropout < 1, "item_edge_dropout must be in [0, 1)"),
            (0 <= self.user_edge_dropout < 1, "user_edge_dropout must be in [0, 1)"),
            (0 <= self.shared_id_dropout < 1, "shared_id_dropout must be in [0, 1)"),
            (self.tower_loss_weight >= 0, "tower_loss_weight must be >= 0"),
            (self.deep_loss_weight >= 0, "deep_loss_weight must be >= 0"),
            (self.wide_lr_scale > 0, "wide_lr_scale must be > 0"),
            (self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
            (0 <= self.val_user_share < 1, "val_user_share must be in [0, 1)"),
            (0 <= self.cold_val_share < 1, "cold_val_share must be in [0, 1)"),
            (self.val_negatives >= 1, "val_negatives must be >= 1"),
            (self.max_val_pairs >= 1, "max_val_pairs must be >= 1"),
            (self.calibration_negatives >= 1, "calibration_negatives must be >= 1"),
            (self.batch_mode in BATCH_MODES,
             f"batch_mode must be one of {BATCH_MODES}, got {self.batch_mode!r}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.fanout >= 1, f"fanout must be >= 1, got {self.fanout}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        return self

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with ``changes`` applied.

        Raises:
            ValueError: an unknown setting name (the message lists the valid ones).
        """
        unknown = sorted(set(changes) - set(self.to_dict()))
        if unknown:
            raise ValueError(f"unknown model setting(s) {unknown}; valid: "
                             f"{sorted(self.to_dict())}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every setting by name (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def changed(self) -> dict[str, Any]:
        """The settings that differ from the defaults."""
        default = ModelConfig().to_dict()
        return {k: v for k, v in self.to_dict().items() if v != default[k]}

    def describe(self) -> str:
        """One line for reports: ``defaults`` or the changed settings."""
        changed = self.changed()
        if not changed:
            return "ModelConfig() (the defaults)"
        return "ModelConfig(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> ModelConfig:
        """The config saved by :meth:`to_dict` (or by an older kgrec, see ``REMOVED_SETTINGS``).

        Raises:
            ModelError: an unknown setting, or a removed one that was switched on.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        kept: dict[str, Any] = {}
        for key, value in settings.items():
            if key in known:
                kept[key] = value
            elif key in RUNTIME_ARGUMENTS or key == "text_encoder":
                continue
            elif key in REMOVED_SETTINGS:
                off = REMOVED_SETTINGS[key]
                if off is not None and value != off:
                    raise ModelError(f"this model uses {key}={value!r}, which kgrec no longer "
                                     "supports; retrain it with this version")
            else:
                raise ModelError(f"unknown model setting {key!r}; retrain the model with this "
                                 "version of kgrec")
        return cls(**kept)


# The warm-start recipe of ModelConfig.fine_tune (benchmarks/REPLAY.md).
FINE_TUNE: dict[str, Any] = {"epochs": 5, "patience": 5, "refit_steps": 100,
                             "calibration_negatives": 25}


class Params:
    """scikit-learn's parameter contract for kgrec's estimators: ``get_params``/``set_params``
    over the constructor's arguments, which the constructor only stores."""

    _PARAM_HINT = ""  # appended to the "unknown parameter" message

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """Constructor arguments as stored (scikit-learn contract)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Any:
        """Set constructor arguments; returns ``self``.

        Raises:
            ValueError: an unknown parameter name.
        """
        names = set(self._param_names())
        for key, value in params.items():
            if key not in names:
                raise ValueError(f"unknown parameter {key!r}; valid: {sorted(names)}"
                                 f"{self._PARAM_HINT}")
            setattr(self, key, value)
        return self
