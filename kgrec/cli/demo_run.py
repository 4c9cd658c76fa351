"""The end-to-end demo: ingest -> encode -> train -> cold-start candidates -> report.

Runs on a fresh machine with the embedded store and no server. By default it generates a shop
(:func:`kgrec.graph.synthetic.generate_catalog`, somewhat smaller than its defaults so the real
BERT encoder and training fit in a few minutes on two CPU cores); with ``data`` it reads a
dataset folder (a known adapter's layout, or canonical ``items``/``users``/``interactions``
files) and holds out 5% of the items as "new SKUs".

The report (``report.md`` + PNG plots) shows the training curve, the score distribution of new
SKUs, a reliability diagram on held-out interactions, a table of cold-start candidates with
their explanation paths, and a sanity check against the truth: for a generated shop the mean
true affinity of recommended new SKUs vs random new SKUs; for a dataset the hit rate of held-out
interactions with new SKUs vs random.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kgrec.coldstart.config import ModelConfig
from kgrec.errors import ConfigError
from kgrec.graph.pseudonym import Pseudonymizer
from kgrec.graph.store import GraphStore
from kgrec.graph.tables import POSITIVE_EVENTS, CatalogTables

logger = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    """Demo settings (defaults: a generated shop that runs in a few minutes on 2 cores)."""

    out: Path = Path("kgrec-demo")
    data: str | None = None
    store: str | None = None
    encoder: str = "bert"
    n_users: int = 1_000
    n_items: int = 800
    n_interactions: int = 20_000
    n_new_items: int = 100
    n_new_users: int = 60
    epochs: int = 15
    k: int = 5
    seed: int = 0
    threads: int | None = None
    reset_store: bool = False


@dataclass
class DemoResult:
    """Where the demo put things, and its headline figures."""

    out: Path
    report: Path
    plots: list[Path] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def demo_model_config(cfg: DemoConfig) -> ModelConfig:
    """The default model with the demo's shorter training (``cfg.epochs``, patience as long)."""
    return ModelConfig(epochs=cfg.epochs, patience=cfg.epochs, seed=cfg.seed)


HELD_OUT_SHARE = 0.2  # of each user's latest interactions, for the calibration check
NEW_SKU_SHARE = 0.05  # of a dataset's items, held apart as new SKUs


def demo_split(tables: CatalogTables, seed: int, new_sku_share: float
               ) -> tuple[CatalogTables, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The evaluation's split (:func:`kgrec.evaluation.splits.make_split`) for the demo.

    Returns ``(training tables, new SKU rows, their held-out interactions, held-out latest
    interactions of the other items)``: the ``new_sku_share`` cold items leave the catalogue
    (the demo ranks them as SKUs listed today); the warm tails check calibration.
    """
    from kgrec.evaluation.splits import make_split

    split = make_split(tables, seed=seed, item_share=new_sku_share, user_share=0.0,
                       warm_share=HELD_OUT_SHARE, reveal=(0,))
    items = split.train.items
    is_new = items["item_id"].astype(str).isin(set(split.cold_items)).to_numpy()
    train = replace(split.train, items=items[~is_new].reset_index(drop=True))
    # the calibration check is about clicks: held-out pairs with a positive event only
    inter = tables.interactions
    positive = inter.loc[inter["event"].isin(POSITIVE_EVENTS), ["user_id", "item_id"]]
    held = split.warm_truth.merge(positive.astype(str).drop_duplicates(),
                                  on=["user_id", "item_id"])
    return train, items[is_new].reset_index(drop=True), split.item_cold_truth, held


def run_demo(cfg: DemoConfig, echo: Callable[[str], Any] = logger.info) -> DemoResult:
    """Run the demo; returns where the report and files are."""
    import matplotlib

    matplotlib.use("Agg")

    from kgrec.graph.open import open_store

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    res = DemoResult(out=out, report=out / "report.md")
    t0 = time.perf_counter()

    # 1. data ----------------------------------------------------------------------------------
    truth_aff = None
    new_users = new_clicks = segments = None
    if cfg.data:
        from kgrec.graph.adapters import load_tables

        train, new_items, truth_hits, held = demo_split(load_tables(cfg.data), cfg.seed,
                                                        NEW_SKU_SHARE)
        source = f"dataset {cfg.data}"
    else:
        from kgrec.graph.synthetic import generate_catalog

        cat = generate_catalog(cfg.n_users, cfg.n_items, cfg.n_interactions,
                               n_new_items=cfg.n_new_items, n_new_users=cfg.n_new_users,
                               seed=cfg.seed)
        train, _, _, held = demo_split(cat.tables, cfg.seed, 0.0)
        new_items = cat.new_items
        truth_aff, truth_hits = cat.affinity, None
        new_users, new_clicks, segments = cat.new_users, cat.new_user_clicks, cat.segments
        source = (f"generated shop ({cfg.n_users:,} users, {cfg.n_items:,} items, "
                  f"{cfg.n_interactions:,} draws, seed {cfg.seed})")
    store_spec = cfg.store or f"embedded:{out / 'store'}"
    # no key check: the demo never adds to existing data (it refuses a non-empty named store
    # unless --reset-store, and clears before it ingests), so another key cannot mix users
    store, pseudo = open_store(store_spec, verify_key=False)
    try:
        return _run_on_store(cfg, res, out, store, pseudo, store_spec, source, train, held,
                             new_items, truth_aff, truth_hits, new_users, new_clicks, segments,
                             t0, echo)
    finally:
        driver = getattr(store, "driver", None)  # a Neo4j driver opened here: close it
        if driver is not None:
            driver.close()


def _run_on_store(cfg: DemoConfig, res: DemoResult, out: Path, store: GraphStore,
                  pseudo: Pseudonymizer, store_spec: str, source: str, train: CatalogTables,
                  held: pd.DataFrame, new_items: pd.DataFrame, truth_aff: pd.DataFrame | None,
                  truth_hits: pd.DataFrame | None, new_users: pd.DataFrame,
                  new_clicks: pd.DataFrame, segments: pd.Series | None, t0: float,
                  echo: Callable[[str], Any]) -> DemoResult:
    """The demo's steps on an opened store (split out so the caller can close the store)."""
    from kgrec.encoders import make_text_encoder
    from kgrec.graph.ingest import ingest_tables
    from kgrec.ranking.candidates import now_iso, write_to_store
    from kgrec.ranking.recommender import Recommender

    # The demo's own folder (the default) is reset freely; a store the user named is not.
    # Any kgrec node of the store's graph counts (users without items too); clear() only ever
    # touches that graph, never other data in a shared database.
    existing = store.node_count() if cfg.store is not None else 0
    if existing and not cfg.reset_store:
        raise ConfigError(
            f"the demo needs an empty store, but {store_spec} already holds {existing:,} kgrec "
            f"nodes; use another store (e.g. --store neo4j/demo for another graph name, or the "
            f"default embedded store) or pass --reset-store to delete that graph's nodes first")
    store.clear()
    echo(f"[1/5] ingesting {source} into {store_spec} ...")
    report = ingest_tables(train, store, pseudo)
    res.seconds["ingest"] = time.perf_counter() - t0

    # 2-3. encode + train ---------------------------------------------------------------------
    t1 = time.perf_counter()
    cache = out / "text-cache"
    enc = make_text_encoder(cfg.encoder, cache_dir=cache)
    model_config = demo_model_config(cfg)
    echo(f"[2/5] encoding item text ({cfg.encoder}; cache {cache}) and training: "
         f"{model_config.describe()} (epochs shortened from the default "
         f"{ModelConfig().epochs} so the demo runs in about a minute, no early stopping) ...")
    rec = Recommender(model_config, pseudonymizer=pseudo, text_encoder=enc,
                      num_threads=cfg.threads, show_progress=True)
    rec.fit(store)
    rec.save(out / "model")
    res.seconds["encode+train"] = time.perf_counter() - t1

    # 4. cold start ---------------------------------------------------------------------------
    t2 = time.perf_counter()
    echo(f"[3/5] ranking {len(new_items)} new SKUs for every user (no retraining) ...")
    ranking = rec.rank_new_items(new_items, k=cfg.k)
    created = now_iso()
    by_user = ranking.by_user.assign(model_version=rec.model_version_, created_at=created)
    res.files["new_sku_candidates"] = out / "candidates_new_skus.parquet"
    by_user.to_parquet(res.files["new_sku_candidates"], index=False)
    nu_rank = None
    if new_users is not None and new_clicks is not None:
        echo(f"[4/5] recommending for {len(new_users)} new users (profile + first clicks) ...")
        nu_rank = rec.recommend_for_new_users(new_users, new_clicks, k=cfg.k)
        res.files["new_user_candidates"] = out / "candidates_new_users.parquet"
        nu_rank.by_user.assign(model_version=rec.model_version_, created_at=created) \
            .to_parquet(res.files["new_user_candidates"], index=False)
    # the new SKUs (and new users) join the catalogue; their candidates go to the store
    ingest_tables(CatalogTables(items=new_items), store, pseudo)
    n_edges = 0
    for users, frame in _chunks(by_user, 500):
        n_edges += write_to_store(store, frame, users, rec.model_version_, created)
    if new_users is not None and nu_rank is not None:
        ingest_tables(CatalogTables(users=new_users, interactions=new_clicks), store, pseudo)
        fr = nu_rank.by_user.copy()
        fr["user_id"] = pseudo.pseudonymize(fr["user_id"])
        for users, frame in _chunks(fr, 500):
            n_edges += write_to_store(store, frame, users, rec.model_version_, created)
    res.figures["candidate_edges"] = float(n_edges)
    res.seconds["cold-start"] = time.perf_counter() - t2

    # 5. report -------------------------------------------------------------------------------
    echo("[5/5] explanations, sanity check and report ...")
    sanity = _sanity(ranking.by_user, new_items, truth_aff, truth_hits, pseudo, cfg.k)
    if nu_rank is not None and segments is not None and new_users is not None:
        sanity.update(_segment_sanity(nu_rank.by_user, train, segments, cfg.k, cfg.seed))
    res.figures.update(sanity)
    rel = _reliability(rec, held, pseudo)
    res.plots = _plots(out, rec, ranking.by_user, rel)
    lines = _report(cfg, source, report.summary(), rec, ranking, nu_rank, sanity, res, rel,
                    store_spec, n_edges)
    res.report.write_text("\n".join(lines), encoding="utf-8")
    res.seconds["total"] = time.perf_counter() - t0
    with res.report.open("a", encoding="utf-8") as fh:
        fh.write(f"\nTotal demo time: {res.seconds['total']:.0f} s "
                 f"({', '.join(f'{k} {v:.0f} s' for k, v in res.seconds.items())}).\n")
    echo(f"done in {res.seconds['total']:.0f} s. Report: {res.report}; model: {out / 'model'}; "
         f"candidates: {', '.join(str(p) for p in res.files.values())}")
    return res


def _chunks(frame: pd.DataFrame, n: int) -> list[tuple[list[str], pd.DataFrame]]:
    users = frame["user_id"].astype(str).unique().tolist()
    return [(users[s:s + n], frame[frame["user_id"].astype(str).isin(users[s:s + n])])
            for s in range(0, len(users), n)]


def _sanity(by_user: pd.DataFrame, new_items: pd.DataFrame, aff: pd.DataFrame | None,
            hits: pd.DataFrame | None, pseudo: Any, k: int) -> dict[str, float]:
    if aff is not None:
        a = aff.assign(user_id=pseudo.pseudonymize(aff["user_id"]))
        rec = by_user.merge(a, on=["user_id", "item_id"])
        return {"affinity_recommended": float(rec["affinity"].mean()),
                "affinity_random": float(a[a["user_id"].isin(by_user["user_id"])]
                                         ["affinity"].mean())}
    assert hits is not None
    h = hits.assign(user_id=pseudo.pseudonymize(hits["user_id"]))
    got = by_user.merge(h, on=["user_id", "item_id"])
    users = h["user_id"].nunique()
    return {"new_sku_hit_rate": len(got) / max(len(h), 1),
            "new_sku_hit_rate_random": min(1.0, k / max(len(new_items), 1)),
            "users_with_new_sku_interactions": float(users)}


def _segment_sanity(by_user: pd.DataFrame, train: CatalogTables, segments: pd.Series, k: int,
                    seed: int) -> dict[str, float]:
    """Share of a recommended item's buyers in the new user's own taste segment vs random."""
    inter = train.interactions[["user_id", "item_id"]].drop_duplicates()
    inter = inter.assign(seg=segments.reindex(inter["user_id"]).to_numpy())
    share = pd.crosstab(inter["item_id"], inter["seg"], normalize="index")
    stacked = share.stack().rename("share").reset_index()
    stacked.columns = ["item_id", "seg", "share"]
    rec = by_user.assign(seg=segments.reindex(by_user["user_id"]).to_numpy())
    got = rec.merge(stacked, on=["item_id", "seg"], how="left")["share"].fillna(0).mean()
    rng = np.random.default_rng(seed)
    rand_items = rng.choice(share.index.to_numpy(object), len(rec))
    rnd = pd.DataFrame({"item_id": rand_items, "seg": rec["seg"].to_numpy()}).merge(
        stacked, on=["item_id", "seg"], how="left")["share"].fillna(0).mean()
    return {"new_user_same_segment_share": float(got),
            "new_user_same_segment_share_random": float(rnd)}


def _reliability(rec: Any, held: pd.DataFrame, pseudo: Any) -> pd.DataFrame:
    """Predicted vs observed click rate on held-out latest interactions (all unseen items), on
    the evaluation's log-spaced bins (:func:`kgrec.evaluation.plots.bins_frame`)."""
    from kgrec.coldstart.calibration import calibration_bins
    from kgrec.evaluation.metrics import RELIABILITY_EDGES
    from kgrec.evaluation.plots import bins_frame

    users = pd.Series(pseudo.pseudonymize(held["user_id"].astype(str)), dtype=object)
    known = users.isin(rec.emb_.user_ids) & held["item_id"].isin(rec.emb_.item_ids)
    users, items = users[known].to_numpy(object), held["item_id"][known].to_numpy(object)
    if not len(users):
        return bins_frame({})
    urows, row_of = np.unique(pd.Index(rec.emb_.user_ids).get_indexer(users),
                              return_inverse=True)
    p = rec.model_.score_matrix(rec.emb_, urows)
    y = np.zeros_like(p, dtype=bool)
    y[row_of, pd.Index(rec.emb_.item_ids).get_indexer(items)] = True
    pos, seen = rec.seen_.gather(urows)
    unseen = np.ones_like(y)
    unseen[pos, seen] = False
    n, sy, sp = calibration_bins(y[unseen], p[unseen], RELIABILITY_EDGES)
    return bins_frame({"held-out last interactions": [
        {"count": n.tolist(), "sum_label": sy.tolist(), "sum_proba": sp.tolist()}]})


def _plots(out: Path, rec: Any, by_user: pd.DataFrame, rel: pd.DataFrame) -> list[Path]:
    """Training curves and the reliability diagram with the evaluation's plotters, and the
    score histogram of the new-SKU candidates."""
    import matplotlib.pyplot as plt

    from kgrec.evaluation.plots import plot_learning_curves, plot_reliability

    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    if rec.model_.history_:
        plot_learning_curves(rec.model_.history_, axes, title="kgrec")
    fig.tight_layout()
    paths.append(out / "training_curves.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(by_user["score"], bins=40, color="tab:green")
    ax.set_xlabel("calibrated click probability")
    ax.set_ylabel("(user, new SKU) candidates")
    ax.set_title("Scores of top new-SKU candidates")
    fig.tight_layout()
    paths.append(out / "new_sku_scores.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4.5))
    plot_reliability(rel, ax=ax, title="Calibration on held-out last interactions")
    fig.tight_layout()
    paths.append(out / "reliability.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def _report(cfg: DemoConfig, source: str, ingest_summary: str, rec: Any, ranking: Any,
            nu_rank: Any, sanity: dict[str, float], res: DemoResult, rel: pd.DataFrame,
            store_spec: str, n_edges: int) -> list[str]:
    cal = rec.model_.calibration_
    lines = ["# kgrec demo report", "",
             f"- Data: {source}", f"- Store: `{store_spec}`; ingest: {ingest_summary}",
             f"- Model settings: `{rec.model_.config_.describe()}` (epochs shortened from the "
             f"default {ModelConfig().epochs} for the demo, no early stopping)",
             f"- Text encoder: {cfg.encoder}; model `{rec.model_version_}` "
             f"({len(rec.model_.history_)} epochs), saved in `{res.out / 'model'}`",
             f"- Calibration (held out): ECE {cal.get('ece', float('nan')):.4f}, "
             f"log-loss {cal.get('log_loss', float('nan')):.4f}",
             f"- {n_edges:,} `(:User)-[:CANDIDATE]->(:Item)` relationships written to the store",
             "", "## Sanity check against the truth", ""]
    if "affinity_recommended" in sanity:
        better = sanity["affinity_recommended"] > sanity["affinity_random"]
        lines += ["| new SKUs | mean true affinity |", "|---|---|",
                  f"| top-{cfg.k} recommended per user | {sanity['affinity_recommended']:.3f} |",
                  f"| random (all new SKUs) | {sanity['affinity_random']:.3f} |", "",
                  "Recommended new SKUs are " + ("clearly better than random." if better
                                                 else "NOT better than random."), ""]
    if "new_sku_hit_rate" in sanity:
        lines += [f"Held-out interactions with new SKUs found in the top-{cfg.k}: "
                  f"{sanity['new_sku_hit_rate']:.3f} (random: "
                  f"{sanity['new_sku_hit_rate_random']:.3f}).", ""]
    if "new_user_same_segment_share" in sanity:
        lines += [f"New users: share of a recommended item's buyers in the user's own taste "
                  f"segment {sanity['new_user_same_segment_share']:.3f} vs random items "
                  f"{sanity['new_user_same_segment_share_random']:.3f}.", ""]
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in res.plots] + [""]
    if len(rel):
        lines += ["Reliability on held-out last interactions (all unseen items per user; "
                  "the evaluation's log-spaced bins, non-empty ones):", "",
                  "| mean predicted | observed | pairs |", "|---|---|---|"]
        lines += [f"| {r.mean_proba:.6f} | {r.positive_rate:.6f} | {int(r.count):,} |"
                  for r in rel.itertuples()] + [""]
    lines += ["## Cold-start candidates: new SKUs", "",
              "| user | new SKU | rank | score | top explanation paths (weight) |",
              "|---|---|---|---|---|"]
    top = ranking.by_user[ranking.by_user["rank"] == 1].head(6)
    for r in top.itertuples():
        exp = ranking.explain(r.user_id, r.item_id)
        lines.append(f"| `{r.user_id}` | `{r.item_id}` | {r.rank} | {r.score:.4f} | "
                     + "<br>".join(f"{p.weight:.3f} {p.short()}" for p in exp.paths) + " |")
    if nu_rank is not None:
        lines += ["", "## Cold-start candidates: new users", "",
                  "| new user | item | rank | score | top explanation paths (weight) |",
                  "|---|---|---|---|---|"]
        for r in nu_rank.by_user[nu_rank.by_user["rank"] == 1].head(6).itertuples():
            exp = nu_rank.explain(r.user_id, r.item_id)
            lines.append(f"| `{r.user_id}` | `{r.item_id}` | {r.rank} | {r.score:.4f} | "
                         + "<br>".join(f"{p.weight:.3f} {p.short()}" for p in exp.paths) + " |")
    lines += ["", "Files: " + ", ".join(f"`{p}`" for p in res.files.values()), ""]
    return lines
