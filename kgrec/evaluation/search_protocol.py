"""The Amazon product-search protocol (Van Gysel et al. 2016; Ai et al., HEM, 2017).

For each purchase, the query is its item's category path: the words of the category levels,
lower-cased, stop words and duplicate words removed (:func:`category_query`). Each user's last
20% of purchases in time order (at least one, for users with two or more) are the test
queries; the rest trains the model. Every test (user, query) ranks **all** items, and the one
purchased item is the single relevant one: MRR, NDCG@10 and HitRate@10 (the metric code of
:class:`~kgrec.evaluation.metrics.MetricAccumulator`, ties broken at random), over all test
queries and over those whose item is a **new SKU** (no interaction in training).

Models on the same queries: ``bm25``, ``dense`` (cosine to the same BERT vectors), ``hybrid``
(their per-query z-scored mix), ``hybrid+pop`` (plus z-scored log popularity) and
``kgrec-search`` (the hybrid re-ranked with the user's CTR-head logit, :mod:`kgrec.ranking.
search`). The mixing weights are fixed defaults chosen by :func:`tune_weights` on a validation
slice carved from the *training* purchases (each user's last 20% of them), with a model
trained without that slice; the test split is never looked at.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kgrec.coldstart.config import ModelConfig
from kgrec.encoders import make_text_encoder
from kgrec.errors import DataError
from kgrec.evaluation.metrics import MetricAccumulator
from kgrec.evaluation.splits import _pairs
from kgrec.graph.tables import CatalogTables
from kgrec.ranking.search import (
    DEFAULT_WEIGHTS,
    ProductSearch,
    SearchWeights,
    exact_title_first,
    hybrid_scores,
    personal_rerank,
)

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

SEARCH_KS: tuple[int, ...] = (10,)
SEARCH_METRICS: tuple[str, ...] = ("mrr", "ndcg@10", "hit_rate@10")
#: Weight of z(log popularity) in the ``hybrid+pop`` baseline (chosen like DEFAULT_WEIGHTS).
POPULARITY_WEIGHT = 1.0
DENSE_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)
PERSONAL_GRID: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
POPULARITY_GRID: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0)
_WORD = re.compile(r"[^\W_]+")


def category_query(category: object) -> str:
    """The protocol's query for an item of ``category`` (``"A > B C > ..."``; missing: "")."""
    from kgrec.ranking.search_index import _stop_words

    if not isinstance(category, str):
        return ""
    words = _WORD.findall(category.lower())
    stop = _stop_words()
    return " ".join(dict.fromkeys(w for w in words if w not in stop))


@dataclass(frozen=True)
class SearchSplit:
    """Training tables and test queries of the protocol.

    Attributes:
        train: Tables with every test purchase removed (all items and users kept).
        test: ``user_id, item_id, query, new_sku`` (one row per held-out purchase).
        stats: Counts for the report.
    """

    train: CatalogTables
    test: pd.DataFrame
    stats: dict[str, int] = field(default_factory=dict)


def make_search_split(tables: CatalogTables, *, share: float = 0.2) -> SearchSplit:
    """Hold out each user's last ``share`` of purchases (module docstring); deterministic.

    Purchases are ``purchase`` events when the data has any, else every positive event.

    Raises:
        ValueError: ``share`` outside (0, 1).
        DataError: no purchases, or no item with a category to build queries from.
    """
    from kgrec.coldstart.features import POSITIVE_EVENTS

    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    inter = tables.interactions
    events = inter["event"].astype(str)
    is_buy = (events == "purchase") if (events == "purchase").any() else \
        events.isin(POSITIVE_EVENTS)
    if not is_buy.any():
        raise DataError("no purchases (or other positive events) to build search queries from")
    pairs = _pairs(inter.loc[is_buy.to_numpy()])
    n = pairs.groupby("user_id")["item_id"].transform("size").to_numpy()
    pos = pairs.groupby("user_id").cumcount().to_numpy()
    held_n = np.where(n >= 2, np.maximum(1, np.floor(share * n)), 0)
    test = pairs.loc[pos >= n - held_n, ["user_id", "item_id"]].reset_index(drop=True)
    key = inter["user_id"].astype(str) + "\x1f" + inter["item_id"].astype(str)
    held = set(test["user_id"] + "\x1f" + test["item_id"])
    train_inter = inter.loc[~key.isin(held).to_numpy()].reset_index(drop=True)
    cats = tables.items.assign(item_id=tables.items["item_id"].astype(str)) \
        .drop_duplicates("item_id").set_index("item_id")["category"]
    test["query"] = test["item_id"].map(cats.map(category_query)).fillna("")
    test = test.loc[test["query"] != ""].reset_index(drop=True)
    if not len(test):
        raise DataError("no held-out purchase has an item with a category: the search "
                        "protocol builds its queries from the category path")
    trained_items = set(train_inter["item_id"].astype(str))
    test["new_sku"] = ~test["item_id"].isin(trained_items)
    train = CatalogTables(items=tables.items, users=tables.users, interactions=train_inter,
                          triples=tables.triples, item_entities=tables.item_entities)
    stats = {"users": int(pairs["user_id"].nunique()), "purchases": len(pairs),
             "train_interactions": len(train_inter), "test_queries": len(test),
             "distinct_queries": int(test["query"].nunique()),
             "new_sku_queries": int(test["new_sku"].sum())}
    return SearchSplit(train=train, test=test, stats=stats)


@dataclass(frozen=True)
class SearchEvalConfig:
    """Settings of one search evaluation (recorded in its results).

    Attributes:
        seeds: Model seeds (the split itself is deterministic), default ``(0, 1, 2)``.
        encoder: ``"bert"`` or ``"hashing"`` (tests).
        cache_dir: On-disk BERT cache, or None.
        model: The model's settings (``ModelConfig``; its ``seed`` is set per run).
        threads: torch threads while training and scoring.
        weights: The personal search's weights; ``hybrid`` uses the same lexical/dense ones.
        popularity_weight: ``hybrid+pop``'s popularity weight.
        rerank_n: Hybrid top-N re-ranked by the model.
        chunk: Test queries per scoring block.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    encoder: str = "bert"
    cache_dir: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    threads: int | None = 1
    weights: SearchWeights = DEFAULT_WEIGHTS
    popularity_weight: float = POPULARITY_WEIGHT
    rerank_n: int = 300
    chunk: int = 256


class QueryScorer:
    """Scores blocks of (user, query) test rows against every item for each model variant.

    Lexical and dense scores are computed once per distinct query (and shared by all
    variants); the model's logits only for each row's hybrid top ``rerank_n``.
    """

    def __init__(self, search: ProductSearch, test: pd.DataFrame) -> None:
        self.search = search
        self.queries, self.qrow = np.unique(test["query"].to_numpy(str), return_inverse=True)
        self.lexical = search.index_.lexical_scores(list(self.queries))
        self.dense = search.index_.dense_scores(list(self.queries))
        self.exact = [search.index_.exact_title_rows(q) for q in self.queries]
        self.items = search.index_.item_ids_.get_indexer(test["item_id"].astype(str))
        gids = search.rec_._graph_user_ids(test["user_id"].astype(str).tolist())
        self.users = pd.Index(search.emb_.user_ids).get_indexer(gids)
        if (self.items < 0).any() or (self.users < 0).any():
            raise DataError("test rows name users or items missing from the fitted graph")

    def scores(self, rows: np.ndarray, weights: SearchWeights, personal: bool,
               rerank_n: int) -> np.ndarray:
        """``(len(rows), n_items)`` scores of the test ``rows`` (higher is better)."""
        q = self.qrow[rows]
        lex, dense = self.lexical[q], self.dense[q]
        valid = np.ones(lex.shape, dtype=bool)
        hybrid = hybrid_scores(lex, dense, valid, weights, self.search.popularity_)
        exact = [self.exact[i] for i in q]
        if not personal:
            return exact_title_first(hybrid, exact)
        model, emb, users = self.search.rec_.model_, self.search.emb_, self.users[rows]

        def logits(top: np.ndarray) -> np.ndarray:
            return model.predict_logits(emb, np.repeat(users, top.shape[1]),
                                        top.reshape(-1)).reshape(top.shape)

        return exact_title_first(personal_rerank(hybrid, weights.personal, rerank_n, logits,
                                                 self.search.strata()), exact)


#: Variant name -> (weights from the config, personalised?).
def variants(config: SearchEvalConfig) -> dict[str, tuple[SearchWeights, bool]]:
    w = config.weights
    return {
        "bm25": (SearchWeights(lexical=1.0, dense=0.0, personal=0.0), False),
        "dense": (SearchWeights(lexical=0.0, dense=1.0, personal=0.0), False),
        "hybrid": (replace(w, personal=0.0, popularity=0.0), False),
        "hybrid+pop": (replace(w, personal=0.0, popularity=config.popularity_weight), False),
        "kgrec-search": (replace(w, popularity=0.0), True),
    }


def evaluate_rows(scorer: QueryScorer, test: pd.DataFrame, weights: SearchWeights,
                  personal: bool, rerank_n: int, *, chunk: int = 256,
                  seed: int = 0) -> dict[str, dict[str, float]]:
    """MRR / NDCG@10 / HitRate@10 over ``all`` test rows and the ``new_sku`` subset."""
    n_items = len(scorer.search.index_.item_ids_)
    accs = {"all": MetricAccumulator(ks=SEARCH_KS, seed=seed),
            "new_sku": MetricAccumulator(ks=SEARCH_KS, seed=seed)}
    new = test["new_sku"].to_numpy(bool)
    for start in range(0, len(test), chunk):
        rows = np.arange(start, min(len(test), start + chunk))
        scores = scorer.scores(rows, weights, personal, rerank_n)
        truth = np.zeros((len(rows), n_items), dtype=bool)
        truth[np.arange(len(rows)), scorer.items[rows]] = True
        accs["all"].add(scores, truth)
        if new[rows].any():
            accs["new_sku"].add(scores[new[rows]], truth[new[rows]])
    return {name: {m: acc.result().get(m, float("nan")) for m in ("users", *SEARCH_METRICS)}
            for name, acc in accs.items()}


def fit_search(train: CatalogTables, config: SearchEvalConfig, seed: int,
               encoder: Any) -> ProductSearch:
    """Train the recommender on ``train`` and build its search index."""
    from kgrec.evaluation.runner import export
    from kgrec.ranking.recommender import Recommender

    rec = Recommender(config.model.replace(seed=seed), text_encoder=encoder,
                      num_threads=config.threads)
    rec.fit(export(train))
    return ProductSearch(weights=config.weights, rerank_n=config.rerank_n).fit(rec)


def run_search_evaluation(tables: CatalogTables, config: SearchEvalConfig, *,
                          dataset: str = "", log: Callable[[str], None] | None = None
                          ) -> pd.DataFrame:
    """Every variant on every seed: one row per (seed, subset, model) with the metrics.

    Raises:
        DataError: no purchases or categories to build queries from.
    """
    say = log or (lambda msg: logger.info("%s", msg))
    split = make_search_split(tables)
    say(f"search split{' of ' + dataset if dataset else ''}: {split.stats}")
    encoder = make_text_encoder(config.encoder, cache_dir=config.cache_dir,
                                num_threads=config.threads)
    records = []
    for seed in config.seeds:
        t0 = time.perf_counter()
        search = fit_search(split.train, config, seed, encoder)
        fit_s = time.perf_counter() - t0
        scorer = QueryScorer(search, split.test)
        for name, (weights, personal) in variants(config).items():
            t1 = time.perf_counter()
            res = evaluate_rows(scorer, split.test, weights, personal, config.rerank_n,
                                chunk=config.chunk, seed=seed)
            for subset, metrics in res.items():
                records.append({"seed": seed, "subset": subset, "model": name, **metrics,
                                "score_seconds": time.perf_counter() - t1})
        say(f"seed {seed}: fitted in {fit_s:.0f} s, scored in "
            f"{time.perf_counter() - t0 - fit_s:.0f} s (load {os.getloadavg()[0]:.1f})")
    return pd.DataFrame.from_records(records)


def search_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per (subset, model), plus the ratios the issue asks for."""
    metrics = [m for m in SEARCH_METRICS if m in results.columns]
    g = results.groupby(["subset", "model"], sort=False)[metrics]
    mean, std = g.mean(), g.std(ddof=0).fillna(0.0)
    out = mean.copy().astype(object)
    for m in metrics:
        out[m] = [f"{a:.4f} ± {s:.4f}" for a, s in zip(mean[m], std[m], strict=True)]
    out["queries"] = results.groupby(["subset", "model"], sort=False)["users"].first() \
        .astype(int)
    for base in ("bm25", "hybrid"):
        ratio = []
        for subset, model in mean.index:
            b = mean.loc[(subset, base), "ndcg@10"] if (subset, base) in mean.index else np.nan
            ratio.append(f"{mean.loc[(subset, model), 'ndcg@10'] / b:.2f}x" if b else "–")
        out[f"ndcg@10 / {base}"] = ratio
    return out.reset_index()


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a markdown table (every cell ``str``-ed)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def tune_weights(tables: CatalogTables, config: SearchEvalConfig, *, seed: int = 0,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Choose the mixing weights on a validation slice of the *training* purchases.

    The protocol's training part is split again the same way (each user's last 20% of their
    training purchases = validation queries); a model trained without them scores them.
    Greedy on NDCG@10 of all validation queries: the dense weight for the hybrid, then the
    personal weight on top of it, and the popularity weight of ``hybrid+pop``.

    Returns:
        ``{"dense": d, "personal": p, "popularity": q, "grid": [...rows...]}``.
    """
    say = log or (lambda msg: logger.info("%s", msg))
    val_split = make_search_split(make_search_split(tables).train)
    say(f"validation split: {val_split.stats}")
    encoder = make_text_encoder(config.encoder, cache_dir=config.cache_dir,
                                num_threads=config.threads)
    search = fit_search(val_split.train, config, seed, encoder)
    scorer = QueryScorer(search, val_split.test)
    grid: list[dict[str, Any]] = []

    def ndcg(weights: SearchWeights, personal: bool) -> float:
        res = evaluate_rows(scorer, val_split.test, weights, personal, config.rerank_n,
                            chunk=config.chunk, seed=seed)["all"]
        grid.append({**weights.__dict__, "personal_on": personal, **res})
        say(f"  {weights} personal={personal}: NDCG@10 {res['ndcg@10']:.4f}")
        return float(res["ndcg@10"])

    base = SearchWeights(lexical=1.0, personal=0.0, popularity=0.0)
    dense = max(DENSE_GRID, key=lambda d: ndcg(replace(base, dense=d), False))
    personal = max(PERSONAL_GRID, key=lambda p: ndcg(replace(base, dense=dense, personal=p),
                                                     True))
    pop = max(POPULARITY_GRID, key=lambda q: ndcg(replace(base, dense=dense, popularity=q),
                                                  False))
    return {"dense": dense, "personal": personal, "popularity": pop, "grid": grid,
            "stats": val_split.stats}


def weights_from(values: Sequence[float]) -> SearchWeights:
    """``SearchWeights(lexical, dense, personal)`` from three numbers (CLI helper)."""
    lexical, dense, personal = (float(v) for v in values)
    return SearchWeights(lexical=lexical, dense=dense, personal=personal)
