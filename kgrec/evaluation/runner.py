"""Run the protocol: split per seed, train kgrec once on the union graph, score every regime.

For each seed: :func:`~kgrec.evaluation.splits.make_split`; the union training graph
(cold items present without interactions, cold users present with their profile only) is
exported once and checked for leakage (:func:`~kgrec.evaluation.splits.leakage` on its
INTERACTED edges, raising ``DataError``); kgrec (and each ablation) is fitted on it; the
user-cold regime uses a test-time graph = training graph + the ``k`` revealed interactions,
embedded inductively with ``ColdStartModel.transform``. Every model scores the full candidate
set of every regime in blocks of users (:class:`~kgrec.evaluation.metrics.
MetricAccumulator`); nothing is computed on training pairs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kgrec.coldstart.config import ModelConfig
from kgrec.encoders import make_text_encoder
from kgrec.errors import DataError
from kgrec.evaluation._names import ABLATIONS, BASELINES, CONFIG_ABLATIONS, SUPPORTED_ABLATIONS
from kgrec.evaluation.baselines import TrainData, available_baselines, group_by_row
from kgrec.evaluation.metrics import DEFAULT_KS, MetricAccumulator
from kgrec.evaluation.splits import EvalSplit, leakage, make_split
from kgrec.graph.build import build_graph
from kgrec.graph.export import ExportedGraph, to_hetero_data
from kgrec.graph.schema import NodeLabel, RelType
from kgrec.graph.tables import CatalogTables

logger = logging.getLogger(__name__)

VALIDATION_SEED_OFFSET = 1000

USER, ITEM = NodeLabel.USER.value, NodeLabel.ITEM.value
INTERACTED = (USER, RelType.INTERACTED.value, ITEM)
ATTRIBUTE_RELS: frozenset[str] = frozenset(r.value for r in (
    RelType.HAS_BRAND, RelType.IN_CATEGORY, RelType.HAS_ATTRIBUTE, RelType.RELATED,
    RelType.SUBCATEGORY_OF))


@dataclass(frozen=True)
class EvalConfig:
    """Everything one evaluation run depends on (recorded in ``results.json``).

    Attributes:
        seeds: Split/model seeds, default ``(0, 1, 2)``.
        ks: Ranking cut-offs, default ``(10, 20, 50)``.
        item_share, user_share, warm_share: The protocol's 20% shares.
        reveal: Interactions revealed per cold user, default ``(0, 1, 3)``.
        encoder: ``"bert"`` (the real model) or ``"hashing"`` (fast, for tests).
        cache_dir: On-disk text-embedding cache (BERT); None keeps vectors in memory.
        model: The model's settings (``ModelConfig``; its ``seed`` is set per run). The
            default is ``ModelConfig()``, the configuration ``Recommender()`` ships.
        threads: torch threads while training and scoring (and of the BERT encoder).
        baselines: Baseline names (optional ones are skipped when not installed).
        ablations: kgrec ablations (``no_text``, ``no_attributes``, ``no_dropout``,
            ``with_cooc``, ``no_pairs``).
        ablation_seeds: Seeds the ablations run on; None = all ``seeds``.
        chunk_users: Users per scoring block.
        validation: Evaluate on a validation split instead of the test split: the protocol's
            split (seed ``s``) is made, its test part is set aside unread, and a second split
            (seed ``VALIDATION_SEED_OFFSET + s``) is carved from its training part. Settings
            are chosen this way, never on the test split.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    ks: tuple[int, ...] = DEFAULT_KS
    item_share: float = 0.2
    user_share: float = 0.2
    warm_share: float = 0.2
    reveal: tuple[int, ...] = (0, 1, 3)
    encoder: str = "bert"
    cache_dir: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    threads: int | None = 1
    baselines: tuple[str, ...] = BASELINES
    ablations: tuple[str, ...] = SUPPORTED_ABLATIONS
    ablation_seeds: tuple[int, ...] | None = None
    chunk_users: int = 512
    validation: bool = False

    def __post_init__(self) -> None:
        if len(self.seeds) < 1:
            raise ValueError("give at least one seed")
        if self.encoder not in ("bert", "hashing"):
            raise ValueError(f"encoder must be 'bert' or 'hashing', got {self.encoder!r}")
        unknown = [a for a in self.ablations if a not in ABLATIONS]
        if unknown:
            raise ValueError(f"unknown ablation(s) {unknown}; choose from {sorted(ABLATIONS)}")
        if self.chunk_users < 1:
            raise ValueError("chunk_users must be >= 1")


@dataclass
class EvalResults:
    """Per-seed metric records, calibration bins, timings and notes of one run."""

    dataset: str
    config: EvalConfig
    records: list[dict[str, Any]] = field(default_factory=list)
    reliability: dict[str, list[dict[str, list[float]]]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    split_stats: list[dict[str, int]] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        """One row per (seed, regime, model) with every metric."""
        return pd.DataFrame(self.records)

    def summary(self) -> pd.DataFrame:
        """Mean and std over seeds per (regime, model): ``<metric>_mean/_std``, ``seeds``."""
        df = self.frame()
        if df.empty:
            return df
        metrics = [c for c in df.columns if c not in ("seed", "regime", "model")]
        g = df.groupby(["regime", "model"], sort=False)[metrics]
        mean, std = g.mean(), g.std(ddof=1)
        out = mean.add_suffix("_mean").join(std.add_suffix("_std"))
        out["seeds"] = df.groupby(["regime", "model"], sort=False)["seed"].nunique()
        return out.reset_index()


class ZeroTextEncoder:
    """A text encoder whose vectors are all zero: the "without text features" ablation."""

    pooling = "zero"

    def __init__(self, dim: int = 384) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def name(self) -> str:
        return "zero"

    def identity(self) -> dict[str, Any]:
        return {"name": "zero", "files_hash": "", "pooling": "zero", "max_length": 0,
                "dim": self._dim}

    def encode(self, texts: Sequence[str], *, batch_size: int = 64,
               show_progress: bool = False) -> np.ndarray:
        return np.zeros((len(texts), self._dim), dtype=np.float32)


def without_attributes(graph: ExportedGraph) -> ExportedGraph:
    """A copy of ``graph`` without attribute/knowledge edges (the items table keeps its text)."""
    data = graph.data.clone()
    for et in list(data.edge_types):
        if et[1] in ATTRIBUTE_RELS:
            del data[et]
    return dataclasses.replace(graph, data=data, _positions={})


def export(tables: CatalogTables) -> ExportedGraph:
    return to_hetero_data(build_graph(tables))


def interaction_frame(graph: ExportedGraph) -> pd.DataFrame:
    """``user_id, item_id`` of every INTERACTED edge of ``graph`` (any event)."""
    if INTERACTED not in graph.data.edge_types:
        return pd.DataFrame({"user_id": [], "item_id": []}, dtype=object)
    ei = graph.data[INTERACTED].edge_index.numpy()
    return pd.DataFrame({"user_id": graph.node_ids[USER][ei[0]],
                         "item_id": graph.node_ids[ITEM][ei[1]]})


@dataclass
class Regime:
    """One regime of one seed, in graph indices: who is ranked, over what, against what."""

    name: str
    users: np.ndarray              # user rows
    candidates: np.ndarray         # item rows (columns)
    truth: np.ndarray              # (2, T): position in users, column
    exclude: np.ndarray            # (2, E): position in users, column (not candidates)
    histories: list[np.ndarray] | None = None   # revealed item rows (user cold)
    cold_items: np.ndarray | None = None        # item rows counted for cold coverage
    graph: ExportedGraph | None = None          # test-time graph (user cold)

    def block(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """``truth`` and ``valid`` boolean matrices of users ``start:stop``."""
        n = stop - start
        truth = np.zeros((n, len(self.candidates)), dtype=bool)
        valid = np.ones_like(truth)
        sel = (self.truth[0] >= start) & (self.truth[0] < stop)
        truth[self.truth[0][sel] - start, self.truth[1][sel]] = True
        sel = (self.exclude[0] >= start) & (self.exclude[0] < stop)
        valid[self.exclude[0][sel] - start, self.exclude[1][sel]] = False
        return truth, valid


def check_same_nodes(test_graph: ExportedGraph, graph: ExportedGraph) -> None:
    """Raise ``DataError`` unless ``test_graph`` holds ``graph``'s users and items, in order
    (scores are indexed by the training graph's rows)."""
    if not all(np.array_equal(test_graph.node_ids[t], graph.node_ids[t]) for t in (USER, ITEM)):
        raise DataError("the test-time graph must hold the same users and items as the "
                        "training graph")


def pairs_to_positions(graph: ExportedGraph, pairs: pd.DataFrame, users: np.ndarray,
                       col_of: np.ndarray) -> np.ndarray:
    """``(2, n)`` (position in ``users``, ``col_of[item row]``) of ``pairs`` (external ids);
    pairs outside ``users`` or with ``col_of`` -1 are dropped."""
    if not len(pairs):
        return np.zeros((2, 0), dtype=np.int64)
    u = graph.index_of(USER, pairs["user_id"].astype(str).to_numpy())
    i = graph.index_of(ITEM, pairs["item_id"].astype(str).to_numpy())
    row_of = np.full(len(graph.node_ids[USER]), -1)
    row_of[users] = np.arange(len(users))
    r, c = row_of[u], col_of[i]
    ok = (r >= 0) & (c >= 0)
    return np.stack([r[ok], c[ok]]).astype(np.int64)


def build_regimes(split: EvalSplit, graph: ExportedGraph,
                  train_pairs: np.ndarray) -> list[Regime]:
    """The item-cold, user-cold (one per ``k``) and warm regimes of ``split`` on ``graph``."""
    n_items = len(graph.node_ids[ITEM])
    cold = graph.index_of(ITEM, split.cold_items)
    out = []
    # item cold: all cold items for every warm user with a cold-item interaction
    col_of = np.full(n_items, -1)
    col_of[cold] = np.arange(len(cold))
    users = np.unique(graph.index_of(USER, split.item_cold_truth["user_id"].astype(str)
                                     .to_numpy()))
    out.append(Regime("item_cold", users, cold,
                      pairs_to_positions(graph, split.item_cold_truth, users, col_of),
                      np.zeros((2, 0), dtype=np.int64), cold_items=cold))
    # user cold: every item except the revealed ones
    all_items = np.arange(n_items)
    users = graph.index_of(USER, split.cold_users)
    for k in split.reveal:
        revealed = split.revealed(k)
        test_graph = export(split.test_tables(k)) if len(revealed) else graph
        check_same_nodes(test_graph, graph)
        excl = pairs_to_positions(graph, revealed, users, all_items)
        out.append(Regime(f"user_cold_k{k}", users, all_items,
                          pairs_to_positions(graph, split.user_cold_truth(k), users, all_items),
                          excl, histories=group_by_row(excl, len(users)), cold_items=cold,
                          graph=test_graph))
    # warm: warm items the user did not interact with in training
    warm_items = np.setdiff1d(all_items, cold)
    col_of = np.full(n_items, -1)
    col_of[warm_items] = np.arange(len(warm_items))
    users = np.unique(graph.index_of(USER, split.warm_truth["user_id"].astype(str).to_numpy()))
    row_of = np.full(len(graph.node_ids[USER]), -1)
    row_of[users] = np.arange(len(users))
    r, c = row_of[train_pairs[0]], col_of[train_pairs[1]]
    ok = (r >= 0) & (c >= 0)
    out.append(Regime("warm", users, warm_items,
                      pairs_to_positions(graph, split.warm_truth, users, col_of),
                      np.stack([r[ok], c[ok]]).astype(np.int64)))
    return out


Scorer = Callable[[Regime, np.ndarray, np.ndarray], np.ndarray]


def score_regime(regime: Regime, scorer: Scorer, acc: MetricAccumulator, *, proba: bool,
                 chunk_users: int) -> None:
    """Stream ``regime`` through ``scorer(regime, positions, item_rows)`` into ``acc``."""
    for start in range(0, len(regime.users), chunk_users):
        stop = min(start + chunk_users, len(regime.users))
        truth, valid = regime.block(start, stop)
        if not truth.any():
            continue
        scores = scorer(regime, np.arange(start, stop), regime.candidates)
        acc.add(scores, truth, valid, columns=regime.candidates, proba=proba)


class _KgrecScorer:
    """Calibrated CTR probabilities of a fitted ``ColdStartModel`` (per-graph embeddings)."""

    def __init__(self, model: Any, graph: ExportedGraph,
                 transform_graph: Callable[[ExportedGraph], ExportedGraph]) -> None:
        self.model = model
        self.graph = graph
        self.transform_graph = transform_graph
        self._emb: dict[int, Any] = {}
        self._fast: bool | None = None

    def __call__(self, regime: Regime, pos: np.ndarray, items: np.ndarray) -> np.ndarray:
        g = regime.graph if regime.graph is not None else self.graph
        if id(g) not in self._emb:
            self._emb = {id(g): self.model.transform(self.transform_graph(g))}
            if self._fast is None:
                self._fast = self._check_fast(self._emb[id(g)])
        emb = self._emb[id(g)]
        if not self._fast:
            out: np.ndarray = self.model.score_matrix(emb, regime.users[pos], items)
            return out
        import torch

        head = self.model.head_
        head.eval()
        rows = []
        hi = emb.item[torch.as_tensor(items)]
        step = max(1, (1 << 24) // max(len(items) * head.mlp_hidden, 1))
        with torch.no_grad():
            for s in range(0, len(pos), step):
                hu = emb.user[torch.as_tensor(regime.users[pos[s:s + step]])]
                rows.append(head.logit_matrix(hu, hi).double().numpy())
        logits = np.concatenate(rows) if rows else np.zeros((0, len(items)))
        return self.model.calibrator_.predict_proba(logits).astype(np.float32)

    def _check_fast(self, emb: Any) -> bool:
        """Whether float32 ``CTRHead.logit_matrix`` reproduces ``predict_logits`` on a sample."""
        import torch

        head = self.model.head_
        if getattr(emb, "pairs", None) is not None:  # the wide part needs the model's own path
            return False
        try:
            n_u, n_i = min(len(emb.user), 7), min(len(emb.item), 11)
            head.eval()
            with torch.no_grad():
                fast = head.logit_matrix(emb.user[:n_u], emb.item[:n_i]).double().numpy()
            slow = self.model.predict_logits(emb, np.repeat(np.arange(n_u), n_i),
                                             np.tile(np.arange(n_i), n_u)).reshape(n_u, n_i)
            ok = bool(np.allclose(fast, slow, rtol=1e-4, atol=1e-4))
        except (AttributeError, IndexError, RuntimeError, TypeError) as e:
            logger.warning("Fast head scoring unavailable (%s); using score_matrix", e)
            return False
        if not ok:
            logger.warning("Fast head scoring differs from the model's head; using score_matrix")
        return ok


def _baseline_scorer(model: Any) -> Scorer:
    def score(regime: Regime, pos: np.ndarray, items: np.ndarray) -> np.ndarray:
        hist = None if regime.histories is None else [regime.histories[p] for p in pos]
        out: np.ndarray = model.score(regime.users[pos], items, hist)
        return out
    return score


KgrecScorer = _KgrecScorer  # public names for other protocols (kgrec.evaluation.unisrec)
baseline_scorer = _baseline_scorer


def _regime_family(name: str) -> str:
    return "user_cold" if name.startswith("user_cold") else name


def run_evaluation(tables: CatalogTables, config: EvalConfig, *, dataset: str = "",
                   log: Callable[[str], None] | None = None) -> EvalResults:
    """Evaluate kgrec, its ablations and the baselines on every seed (module docstring).

    Args:
        tables: Validated canonical tables of the whole dataset.
        config: The run's settings.
        dataset: A name for the report.
        log: Called with one-line progress messages (the CLI prints them).

    Raises:
        DataError: the tables have no interactions, or a split leaks held-out behaviour into
            the training graph (a bug: never expected).
        ConfigError: an unknown baseline name.
    """
    from kgrec.coldstart import ColdStartModel
    from kgrec.coldstart.features import TextFeaturizer, interaction_pairs

    say = log or (lambda msg: logger.info("%s", msg))
    res = EvalResults(dataset=dataset, config=config)
    t_all = time.perf_counter()
    res.timings["load_average_start"] = os.getloadavg()[0]
    encoder = make_text_encoder(config.encoder, cache_dir=config.cache_dir,
                                num_threads=config.threads)
    res.notes.append(f"kgrec settings: {config.model.describe()}")
    featurizer = TextFeaturizer(encoder)
    skipped = [b for b in config.baselines if b in ("lightfm", "als")
               and not available_baselines([b])]
    for b in skipped:
        res.notes.append(f"baseline {b} skipped: its package is not installed "
                         "(pip install 'kgrec[eval]')")
    res.notes.append("ablation ctr_separate (CTR head trained separately) not run: "
                     "ColdStartModel trains the GNN and CTR head jointly only")
    for seed in config.seeds:
        t_seed = time.perf_counter()
        shares = {"item_share": config.item_share, "user_share": config.user_share,
                  "warm_share": config.warm_share, "reveal": config.reveal}
        split = make_split(tables, seed=seed, **shares)  # type: ignore[arg-type]
        if config.validation:  # the test part is set aside unread
            split = make_split(split.train, seed=VALIDATION_SEED_OFFSET + seed,
                               **shares)  # type: ignore[arg-type]
        res.split_stats.append({"seed": seed, **split.stats})
        graph = export(split.train)
        problems = leakage(split, interaction_frame(graph))
        if problems:
            raise DataError("the split leaks held-out behaviour into training: "
                            + "; ".join(problems))
        train_pairs, train_ts, _ = interaction_pairs(graph)
        users = split.train.users.astype({"user_id": str}).drop_duplicates("user_id") \
            .set_index("user_id").reindex(graph.node_ids[USER]).rename_axis("user_id") \
            .reset_index()
        train = TrainData(items=graph.items, users=users, pairs=train_pairs, ts=train_ts)
        vectors = featurizer.item_vectors(graph.items)
        regimes = build_regimes(split, graph, train_pairs)
        popularity = train.item_counts()
        say(f"seed {seed}: split {split.stats}")

        def accumulate(model_name: str, scorer: Scorer, proba: bool,
                       only: frozenset[str] | None = None, seed: int = seed,
                       regimes: list[Regime] = regimes,
                       popularity: np.ndarray = popularity) -> None:
            for regime in regimes:
                if only is not None and _regime_family(regime.name) not in only:
                    continue
                acc = MetricAccumulator(ks=config.ks, n_items=len(popularity),
                                        cold_items=regime.cold_items,
                                        candidate_items=regime.candidates,
                                        popularity=popularity, seed=seed)
                t0 = time.perf_counter()
                score_regime(regime, scorer, acc, proba=proba, chunk_users=config.chunk_users)
                rec = {"seed": seed, "regime": regime.name, "model": model_name, **acc.result(),
                       "score_seconds": time.perf_counter() - t0}
                res.records.append(rec)
                if proba:
                    res.reliability.setdefault(f"{model_name}/{regime.name}", []).append(
                        acc.reliability())

        variants: list[tuple[str, dict[str, Any], Any, bool]] = [("kgrec", {}, encoder, False)]
        # ablations change one thing each; the rest is config.model
        if config.ablation_seeds is None or seed in config.ablation_seeds:
            for ab in config.ablations:
                if ab == "no_text":
                    variants.append((f"kgrec-{ab}", {}, ZeroTextEncoder(encoder.dim), False))
                elif ab == "no_attributes":
                    variants.append((f"kgrec-{ab}", {}, encoder, True))
                elif ab in CONFIG_ABLATIONS:
                    variants.append((f"kgrec-{ab}", CONFIG_ABLATIONS[ab], encoder, False))
        for name, extra, enc, strip in variants:
            t0 = time.perf_counter()
            model = ColdStartModel(config.model.replace(**extra, seed=seed), text_encoder=enc,
                                   num_threads=config.threads)
            tgraph: Callable[[ExportedGraph], ExportedGraph] = \
                without_attributes if strip else (lambda g: g)
            model.fit(tgraph(graph))
            fit_s = time.perf_counter() - t0
            res.timings[f"fit_seconds/{name}/seed{seed}"] = fit_s
            res.timings[f"epochs/{name}/seed{seed}"] = float(len(model.history_))
            val = [h.get("val_auc", float("nan")) for h in model.history_]
            res.timings[f"best_val_auc/{name}/seed{seed}"] = float(np.nanmax(val)) \
                if np.isfinite(val).any() else float("nan")
            say(f"seed {seed}: {name} fitted in {fit_s:.0f} s ({len(model.history_)} epochs, "
                f"held-out calibration {model.calibration_.get('ece', float('nan')):.4f} ECE)")
            accumulate(name, _KgrecScorer(model, graph, tgraph), proba=True)
        for baseline in available_baselines(config.baselines, seed=seed):
            t0 = time.perf_counter()
            baseline.fit(train, vectors)
            res.timings[f"fit_seconds/{baseline.name}/seed{seed}"] = time.perf_counter() - t0
            accumulate(baseline.name, _baseline_scorer(baseline), proba=False,
                       only=baseline.regimes)
        res.timings[f"seed_seconds/{seed}"] = time.perf_counter() - t_seed
        say(f"seed {seed}: done in {time.perf_counter() - t_seed:.0f} s")
    res.timings["total_seconds"] = time.perf_counter() - t_all
    res.timings["load_average_end"] = os.getloadavg()[0]
    return res




