"""The UniSRec leave-one-out split (Hou et al., KDD 2022) as a second ``kgrec evaluate`` protocol.

Why: the cold-start protocol is ours; this one is somebody else's, with published figures, so it
checks kgrec against the literature on exactly the split the papers used. The folder
(``amazon-industrial-scientific/alt_unisrec_format``) holds RecBole ``.inter`` files
(``user_id:token  item_id_list:token_seq  item_id:token``; tokens are the indices of
``<Name>.item2index``/``<Name>.user2index``, history truncated to the last 50 items) and
``<Name>.text`` (``ASIN \\t "title. category path. brand. "``).

* Training: each user's training sequence, rebuilt from the augmented ``train`` rows (every row
  is a prefix and its next item; the rows of a user run from the longest to the shortest, which
  the loader checks: each row's history must end with the previous row's target), as unique
  user-item ``purchase`` pairs with ``ts`` = the 0-based position of the first occurrence.
  Every item of ``item2index`` is in the graph (items never trained on keep their text, brand
  and category); every user has an empty profile.
* ``valid`` (each user's second-to-last item) is *not* used to train or to stop: kgrec carves
  its own validation slice from the training pairs, as in the cold-start protocol. It can be
  scored as its own regime for reference (``with_valid``).
* At test time it is folded into the input (``fold_valid``, default), as the published models
  read it: kgrec on :meth:`UnisrecSplit.test_tables`' graph, history baselines on the same
  history, LightFM/ALS on their training factors (:func:`unisrec_regimes`, ``NO_FOLD_IN``).
* Test: each user's last item, ranked against **all** items. Two variants: ``test`` masks the
  user's input sequence (training items and the validation item) -- the usual full-ranking
  convention in kgrec's protocol; ``test_unmasked`` masks nothing, as the published UniSRec /
  SASRec figures do. The test item itself is never masked: a user who re-buys an item (50
  users) can still hit it.
* Models: kgrec (``ColdStartModel`` fitted on the training graph) and every requested baseline
  whose :attr:`~kgrec.evaluation.baselines.Baseline.regimes` include ``warm`` (all test users
  are warm users).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.encoders import make_text_encoder
from kgrec.errors import ConfigError, DataError, FileFormatError
from kgrec.evaluation.baselines import TrainData, available_baselines, group_by_row
from kgrec.evaluation.metrics import MetricAccumulator
from kgrec.evaluation.runner import (
    ITEM,
    USER,
    EvalConfig,
    EvalResults,
    KgrecScorer,
    Regime,
    Scorer,
    baseline_scorer,
    check_same_nodes,
    export,
    pairs_to_positions,
)
from kgrec.graph.export import ExportedGraph
from kgrec.graph.tables import CatalogTables

logger = logging.getLogger(__name__)

UNISREC_FOLDER = "alt_unisrec_format"
INTER_COLUMNS: tuple[str, ...] = ("user_id", "item_id_list", "item_id")
# Baselines that cannot fold an interaction into a trained user (LightFM drops its identity).
NO_FOLD_IN: frozenset[str] = frozenset({"lightfm", "als"})
# Table 2 of the UniSRec paper for "Scientific", as transcribed by a third-party summary (not
# checked against the paper). Full ranking over all items, history NOT masked.
PUBLISHED: dict[str, dict[str, float]] = {
    "SASRec (published)": {"recall@10": 0.1080, "ndcg@10": 0.0553},
    "UniSRec text-only, inductive (published)": {"recall@10": 0.1188, "ndcg@10": 0.0641,
                                                 "recall@50": 0.2394},
}


@dataclass
class UnisrecSplit:
    """The split as canonical tables plus held-out pairs (external ids: ASIN, reviewer id).

    Attributes:
        tables: Training catalogue: every item, every user, the training interactions only.
        valid: ``user_id, item_id`` of each user's validation item.
        test: ``user_id, item_id`` of each user's test item.
        history: ``user_id, item_id`` of each user's test input sequence (training items and
            the validation item; what ``test`` masks).
        stats: Counts (users, items, training pairs, repeats ...).
    """

    tables: CatalogTables
    valid: pd.DataFrame
    test: pd.DataFrame
    history: pd.DataFrame
    stats: dict[str, int] = field(default_factory=dict)

    def test_tables(self) -> CatalogTables:
        """Training tables plus each user's validation interaction, timed after the user's
        latest training item (the test-time input sequence of the published protocol)."""
        inter = self.tables.interactions
        last = inter.groupby("user_id", sort=False)["ts"].max()
        ts = last.reindex(self.valid["user_id"]).fillna(-1).to_numpy() + 1
        extra = pd.DataFrame({"user_id": self.valid["user_id"].to_numpy(),
                              "item_id": self.valid["item_id"].to_numpy(),
                              "event": "purchase", "ts": ts.astype(inter["ts"].dtype)})
        return dataclasses.replace(self.tables, interactions=pd.concat(
            [inter, extra.reindex(columns=inter.columns)], ignore_index=True))


def resolve_unisrec_folder(data: str | Path) -> Path:
    """The split folder: ``amazon`` (under ``$KGREC_SHARED_DATA``), a dataset folder holding
    ``alt_unisrec_format/``, or the split folder itself.

    Raises:
        ConfigError: no ``<Name>.train.inter`` there.
    """
    from kgrec.graph.adapters import DATA_ROOT_ENV, DEFAULT_FOLDERS

    if str(data) == "amazon":
        root = os.environ.get(DATA_ROOT_ENV)
        if not root:
            raise ConfigError(f"--data amazon needs {DATA_ROOT_ENV}; set it or pass the "
                              f"{UNISREC_FOLDER} folder")
        data = Path(root) / DEFAULT_FOLDERS["amazon"]
    for cand in (Path(data) / UNISREC_FOLDER, Path(data)):
        if cand.is_dir() and any(cand.glob("*.train.inter")):
            return cand
    raise ConfigError(f"{data}: no <Name>.train.inter here or in {UNISREC_FOLDER}/; pass the "
                      "UniSRec-format folder (train/valid/test .inter, .text, .item2index, "
                      ".user2index)")


def _read(path: Path, names: list[str] | None) -> pd.DataFrame:
    if not path.is_file():
        raise ConfigError(f"{path}: missing; the UniSRec folder needs <Name>.train/valid/test."
                          "inter, <Name>.text, <Name>.item2index and <Name>.user2index")
    try:
        frame = pd.read_csv(path, sep="\t", header=None if names else 0, names=names, dtype=str,
                            keep_default_na=False, quoting=3)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise FileFormatError(f"{path}: not tab-separated text ({e})") from e
    return frame


def _read_inter(path: Path) -> pd.DataFrame:
    frame = _read(path, None)
    cols = [c.split(":")[0] for c in frame.columns]
    if tuple(cols) != INTER_COLUMNS:
        raise FileFormatError(f"{path}: expected RecBole columns user_id:token, "
                              f"item_id_list:token_seq, item_id:token; found {list(frame.columns)}")
    frame.columns = list(INTER_COLUMNS)
    return frame


def _index_map(path: Path) -> pd.Series:
    """token (the ``.inter`` index) -> external id."""
    m = _read(path, ["id", "index"])
    if m["index"].duplicated().any() or m["id"].duplicated().any():
        raise FileFormatError(f"{path}: ids and indices must be unique (ASIN/reviewer \\t index)")
    return pd.Series(m["id"].to_numpy(), index=m["index"].to_numpy())


def _map(tokens: pd.Series, index: pd.Series, what: str, path: Path) -> np.ndarray:
    out = index.reindex(tokens.to_numpy())
    if out.isna().any():
        bad = tokens[out.isna().to_numpy()].unique()[:5].tolist()
        raise DataError(f"{path}: {what} token(s) {bad} not in the {what}2index file")
    return out.to_numpy(dtype=object)


def _train_sequences(train: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``user, item, pos`` of every user's training sequence (tokens), oldest first."""
    t = train.iloc[::-1].reset_index(drop=True)  # a user's rows: shortest (oldest) first
    order = np.argsort(t["user_id"].to_numpy(), kind="stable")
    t = t.iloc[order].reset_index(drop=True)
    lists = t["item_id_list"].str.split(" ")
    first = ~t["user_id"].duplicated()
    prev_target = t["item_id"].shift(1)
    bad = ~first & (lists.str[-1] != prev_target)
    if bad.any():
        raise FileFormatError(f"{path}: {int(bad.sum())} rows are not the previous row's "
                              "history plus its target; expected RecBole's augmented "
                              "leave-one-out rows (longest history first per user)")
    head = lists[first]
    head_len = head.str.len().to_numpy()
    seq_head = pd.DataFrame({"user": np.repeat(t.loc[first, "user_id"].to_numpy(), head_len),
                             "item": np.concatenate(head.to_numpy()),
                             "pos": np.arange(head_len.sum())
                             - np.repeat(np.cumsum(head_len) - head_len, head_len)})
    step = t.groupby("user_id", sort=False).cumcount().to_numpy()
    offset = pd.Series(head_len, index=t.loc[first, "user_id"].to_numpy())
    seq_tail = pd.DataFrame({"user": t["user_id"].to_numpy(), "item": t["item_id"].to_numpy(),
                             "pos": offset.reindex(t["user_id"].to_numpy()).to_numpy() + step})
    return pd.concat([seq_head, seq_tail], ignore_index=True)


def _parse_text(text: pd.DataFrame) -> pd.DataFrame:
    """``item_id, title, category, brand`` from ``"title. category path. brand. "``."""
    body = text.iloc[:, 1].str.strip().str.removesuffix(".")
    parts = body.str.rsplit(". ", n=2, expand=True).reindex(columns=[0, 1, 2])
    three = parts[2].notna()
    out = pd.DataFrame({"item_id": text.iloc[:, 0].to_numpy(),
                        "title": parts[0].where(three, body).to_numpy(dtype=object),
                        "category": parts[1].where(three).to_numpy(dtype=object),
                        "brand": parts[2].where(three).to_numpy(dtype=object)})
    return out


def load_unisrec(folder: str | Path) -> UnisrecSplit:
    """Read the UniSRec-format split (module docstring) into canonical tables.

    Raises:
        ConfigError: the folder or one of its files is missing.
        FileFormatError: a file is not in the RecBole/UniSRec format.
        DataError: a token is not in its index file, or the files disagree.
    """
    from kgrec.graph.readers import RawCatalog, RawTable
    from kgrec.graph.validate import validate_catalog

    root = resolve_unisrec_folder(folder)
    name = next(iter(sorted(root.glob("*.train.inter")))).name.removesuffix(".train.inter")
    paths = {k: root / f"{name}.{k}" for k in ("train.inter", "valid.inter", "test.inter",
                                               "text", "item2index", "user2index")}
    train, valid, test = (_read_inter(paths[f"{k}.inter"]) for k in ("train", "valid", "test"))
    items_of, users_of = _index_map(paths["item2index"]), _index_map(paths["user2index"])
    seq = _train_sequences(train, paths["train.inter"])
    seq = seq.assign(user=_map(seq["user"], users_of, "user", paths["train.inter"]),
                     item=_map(seq["item"], items_of, "item", paths["train.inter"]))
    pairs = seq.sort_values(["user", "pos"], kind="stable").drop_duplicates(["user", "item"])

    held: dict[str, pd.DataFrame] = {}
    for key, frame in (("valid", valid), ("test", test)):
        p = paths[f"{key}.inter"]
        held[key] = pd.DataFrame({"user_id": _map(frame["user_id"], users_of, "user", p),
                                  "item_id": _map(frame["item_id"], items_of, "item", p)})
        if held[key]["user_id"].duplicated().any():
            raise DataError(f"{p}: a user has more than one {key} row; expected leave-one-out")
    lists = test["item_id_list"].str.split(" ")
    last = lists.str[-1].to_numpy()
    if not np.array_equal(_map(pd.Series(last), items_of, "item", paths["test.inter"]),
                          held["valid"].set_index("user_id")["item_id"]
                          .reindex(held["test"]["user_id"]).to_numpy()):
        raise DataError(f"{paths['test.inter']}: the test histories do not end with the "
                        "validation items; valid and test files are from different splits")
    hist = pd.DataFrame({
        "user_id": np.repeat(held["test"]["user_id"].to_numpy(), lists.str.len().to_numpy()),
        "item_id": _map(pd.Series(np.concatenate(lists.to_numpy())), items_of, "item",
                        paths["test.inter"])})
    history = pd.concat([hist, pairs.rename(columns={"user": "user_id", "item": "item_id"})[
        ["user_id", "item_id"]]]).drop_duplicates(ignore_index=True)

    text = _read(paths["text"], None)
    items = _parse_text(text)
    items = items[items["item_id"].isin(items_of.to_numpy())]
    missing = np.setdiff1d(items_of.to_numpy(dtype=str), items["item_id"].to_numpy(dtype=str))
    if len(missing):
        logger.warning("unisrec: %d items have no text in %s", len(missing), paths["text"])
        items = pd.concat([items, pd.DataFrame({"item_id": missing})], ignore_index=True)
    inter = pd.DataFrame({"user_id": pairs["user"].to_numpy(), "item_id": pairs["item"]
                          .to_numpy(), "event": "purchase", "ts": pairs["pos"].astype(str)
                          .to_numpy()})
    users = pd.DataFrame({"user_id": users_of.to_numpy(dtype=object)})
    res = validate_catalog(RawCatalog(
        items=RawTable.from_frame(items, "items", source=str(paths["text"])),
        users=RawTable.from_frame(users, "users", source=str(paths["user2index"])),
        interactions=RawTable.from_frame(inter, "interactions",
                                         source=str(paths["train.inter"]))))
    if not res.rejects.empty:
        raise DataError(f"{root}: {len(res.rejects)} rows rejected by validation, e.g. "
                        f"{res.rejects.iloc[0].to_dict()}")
    test_pairs = held["test"].merge(history, on=["user_id", "item_id"])
    stats = {"users": len(users), "items": len(items), "train_rows": len(train),
             "train_pairs": len(inter), "train_repeats_dropped": len(seq) - len(pairs),
             "test_users": len(held["test"]),
             "test_item_in_history": len(test_pairs),
             "items_without_training": int((~items["item_id"].isin(inter["item_id"])).sum())}
    return UnisrecSplit(tables=res.tables, valid=held["valid"], test=held["test"],
                        history=history, stats=stats)


def unisrec_regimes(split: UnisrecSplit, graph: ExportedGraph, *, with_valid: bool = False,
                    test_graph: ExportedGraph | None = None) -> list[Regime]:
    """``test`` (input sequence masked), ``test_unmasked`` and, when asked, ``valid`` (training
    items masked; off by default: it costs a third more scoring and decides nothing here).

    ``test_graph`` (``export(split.test_tables())``) folds the validation item into the test
    input: kgrec embeds users on it; ``histories`` (training items, then the validation item)
    replace the baselines' training histories.
    A positive is never masked (a user who re-buys an item can still hit it).

    Raises:
        DataError: ``test_graph`` holds other users or items than ``graph``.
    """
    if test_graph is not None:
        check_same_nodes(test_graph, graph)
    all_items = np.arange(len(graph.node_ids[ITEM]))
    train = split.tables.interactions.sort_values(["user_id", "ts"], kind="stable")[
        ["user_id", "item_id"]].astype(object)
    specs: list[tuple[str, pd.DataFrame, pd.DataFrame | None, bool]] = [
        ("test", split.test, split.history, True), ("test_unmasked", split.test, None, True)]
    if with_valid:
        specs.append(("valid", split.valid, train, False))
    folded = pd.concat([train, split.valid.astype(object)], ignore_index=True)
    histories: dict[bytes, list[np.ndarray]] = {}  # one list per user set, shared by regimes
    out = []
    for name, truth, mask, is_test in specs:
        users = np.unique(graph.index_of(USER, truth["user_id"].to_numpy(dtype=object)))
        t = pairs_to_positions(graph, truth, users, all_items)
        excl = np.zeros((2, 0), dtype=np.int64) if mask is None else \
            pairs_to_positions(graph, mask, users, all_items)
        n = len(all_items)
        keep = ~np.isin(excl[0] * n + excl[1], t[0] * n + t[1])
        regime = Regime(name, users, all_items, t, excl[:, keep])
        if is_test and test_graph is not None:
            regime.graph = test_graph
            key = users.tobytes()
            if key not in histories:
                histories[key] = group_by_row(
                    pairs_to_positions(graph, folded, users, all_items), len(users))
            regime.histories = histories[key]
        out.append(regime)
    return out


def score_shared(regimes: list[Regime], scorer: Scorer, accs: list[MetricAccumulator], *,
                 proba: bool, chunk_users: int) -> None:
    """Like :func:`~kgrec.evaluation.runner.score_regime` for several regimes at once: each
    block of users is scored once per group of regimes with the same users, candidates and
    inputs (``test`` and ``test_unmasked`` differ only in their masks)."""
    groups: dict[tuple[bytes, bytes, int, int], list[int]] = {}
    for j, r in enumerate(regimes):
        key = (r.users.tobytes(), r.candidates.tobytes(), id(r.graph), id(r.histories))
        groups.setdefault(key, []).append(j)
    for members in groups.values():
        first = regimes[members[0]]
        for start in range(0, len(first.users), chunk_users):
            stop = min(start + chunk_users, len(first.users))
            blocks = [regimes[j].block(start, stop) for j in members]
            if not any(truth.any() for truth, _ in blocks):
                continue
            scores = scorer(first, np.arange(start, stop), first.candidates)
            for j, (truth, valid) in zip(members, blocks, strict=True):
                if truth.any():
                    accs[j].add(scores, truth, valid, columns=first.candidates, proba=proba)


def run_unisrec(split: UnisrecSplit, config: EvalConfig, *, dataset: str = "unisrec",
                log: Callable[[str], None] | None = None,
                with_valid: bool = False, fold_valid: bool = True) -> EvalResults:
    """Train kgrec and the warm-applicable baselines on the training graph; score every regime.

    Args:
        split: From :func:`load_unisrec`.
        config: Seeds, cut-offs, encoder, model parameters, baselines (ablations are ignored).
        dataset: A name for the report.
        log: Called with one-line progress messages.
        with_valid: Also score the ``valid`` regime.
        fold_valid: Fold each user's validation item into the test input (module docstring);
            False scores from the training sequences only.

    Raises:
        DataError: the split has no training interactions.
        ConfigError: an unknown baseline name.
    """
    from kgrec.coldstart import ColdStartModel
    from kgrec.coldstart.features import TextFeaturizer, interaction_pairs

    say = log or (lambda msg: logger.info("%s", msg))
    res = EvalResults(dataset=dataset, config=config)
    t_all = time.perf_counter()
    res.timings["load_average_start"] = os.getloadavg()[0]
    res.split_stats.append({"seed": -1, **split.stats})
    res.notes += [
        "protocol: UniSRec leave-one-out (Hou et al., KDD 2022); full ranking over all "
        f"{split.stats['items']:,} items; `test` masks each user's input sequence (training "
        "items + validation item), `test_unmasked` masks nothing (as the published figures)",
        "the validation items are not used to train or to early-stop (kgrec carves its own "
        "validation slice from the training pairs)",
        "test input: training sequence + validation item (kgrec: a test-time graph with the "
        "validation interactions; EASE, item-kNN and the content kNNs: the same history; "
        f"{', '.join(sorted(NO_FOLD_IN))}: training factors, no fold-in)" if fold_valid else
        "test input: the training sequence only (the validation item is not folded in)",
    ]
    if not len(split.tables.interactions):
        raise DataError("the UniSRec split has no training interactions")
    graph = export(split.tables)
    train_pairs = interaction_pairs(graph)[0]
    users = split.tables.users.astype({"user_id": str}).set_index("user_id") \
        .reindex(graph.node_ids[USER]).rename_axis("user_id").reset_index()
    train = TrainData(items=graph.items, users=users, pairs=train_pairs)
    encoder = make_text_encoder(config.encoder, cache_dir=config.cache_dir,
                                num_threads=config.threads)
    t0 = time.perf_counter()
    vectors = TextFeaturizer(encoder).item_vectors(graph.items)
    res.timings["encode_seconds"] = time.perf_counter() - t0
    regimes = unisrec_regimes(split, graph, with_valid=with_valid,
                              test_graph=export(split.test_tables()) if fold_valid else None)
    # LightFM and ALS cannot fold in: the same regimes scored from their training factors
    plain = [dataclasses.replace(r, histories=None, graph=None) for r in regimes]
    popularity = train.item_counts()
    cold = np.flatnonzero(popularity == 0)
    say(f"unisrec: {split.stats}; text encoded in {res.timings['encode_seconds']:.0f} s")

    def accumulate(model_name: str, scorer: Scorer, proba: bool, seed: int,
                   regimes: list[Regime] = regimes) -> None:
        accs = [MetricAccumulator(ks=config.ks, n_items=len(popularity), cold_items=cold,
                                  candidate_items=r.candidates, popularity=popularity, seed=seed)
                for r in regimes]
        t0 = time.perf_counter()
        score_shared(regimes, scorer, accs, proba=proba, chunk_users=config.chunk_users)
        for regime, acc in zip(regimes, accs, strict=True):
            res.records.append({"seed": seed, "regime": regime.name, "model": model_name,
                                **acc.result(), "score_seconds": time.perf_counter() - t0})

    for seed in config.seeds:
        t0 = time.perf_counter()
        model = ColdStartModel(config.model.replace(seed=seed), text_encoder=encoder,
                               num_threads=config.threads)
        model.fit(graph)
        fit_s = time.perf_counter() - t0
        res.timings[f"fit_seconds/kgrec/seed{seed}"] = fit_s
        res.timings[f"epochs/kgrec/seed{seed}"] = float(len(model.history_))
        say(f"seed {seed}: kgrec fitted in {fit_s:.0f} s ({len(model.history_)} epochs)")
        accumulate("kgrec", KgrecScorer(model, graph, lambda g: g), True, seed)
        for baseline in available_baselines(config.baselines, seed=seed):
            if "warm" not in baseline.regimes:
                continue
            t0 = time.perf_counter()
            baseline.fit(train, vectors)
            res.timings[f"fit_seconds/{baseline.name}/seed{seed}"] = time.perf_counter() - t0
            accumulate(baseline.name, baseline_scorer(baseline), False, seed,
                       plain if baseline.name in NO_FOLD_IN else regimes)
            say(f"seed {seed}: {baseline.name} done")
    res.timings["total_seconds"] = time.perf_counter() - t_all
    res.timings["load_average_end"] = os.getloadavg()[0]
    return res


def comparison_table(results: EvalResults) -> str:
    """Markdown: R@10, R@50, N@10, N@50 per model, masked and unmasked, beside the published."""
    summary = results.summary()
    metrics = ("recall@10", "recall@50", "ndcg@10", "ndcg@50")
    head = ("| model | " + " | ".join(f"{m} masked" for m in metrics) + " | "
            + " | ".join(f"{m} unmasked" for m in metrics) + " |")
    lines = [head, "|" + "---|" * (1 + 2 * len(metrics))]

    def cell(row: pd.DataFrame, m: str) -> str:
        if row.empty or f"{m}_mean" not in row:
            return "–"
        mean, std = float(row[f"{m}_mean"].iloc[0]), float(row[f"{m}_std"].iloc[0])
        return f"{mean:.4f}" if not np.isfinite(std) else f"{mean:.4f} ± {std:.4f}"

    for model in summary["model"].unique() if not summary.empty else []:
        rows = {r: summary[(summary["model"] == model) & (summary["regime"] == r)]
                for r in ("test", "test_unmasked")}
        lines.append(f"| {model} | " + " | ".join(cell(rows["test"], m) for m in metrics)
                     + " | " + " | ".join(cell(rows["test_unmasked"], m) for m in metrics)
                     + " |")
    for name, fig in PUBLISHED.items():
        lines.append(f"| {name} | " + " | ".join("–" for _ in metrics) + " | "
                     + " | ".join(f"{fig[m]:.4f}" if m in fig else "–" for m in metrics)
                     + " |")
    return "\n".join(lines) + "\n"


def write_unisrec_report(results: EvalResults, out_dir: str | Path, *,
                         command: str = "") -> Path:
    """``report.md`` (comparison table + every metric), ``results.json``/``.csv``."""
    import json

    from kgrec.evaluation.report import _jsonable, results_table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = results.summary()
    summary.to_csv(out / "results.csv", index=False)
    results.frame().to_csv(out / "results_per_seed.csv", index=False)
    payload = {"dataset": results.dataset, "protocol": "unisrec",
               "config": {**results.config.__dict__, "model": results.config.model.to_dict()},
               "timings": results.timings,
               "notes": results.notes, "split_stats": results.split_stats,
               "records": results.records, "published": PUBLISHED}
    (out / "results.json").write_text(json.dumps(_jsonable(payload), indent=1))
    cfg = results.config
    lines = [f"# kgrec evaluation: UniSRec split ({results.dataset})", ""]
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    lines += [
        f"Seeds: {list(cfg.seeds)}; encoder: {cfg.encoder}; model: {cfg.model.describe()}; wall "
        f"time {results.timings.get('total_seconds', float('nan')):.0f} s.", "",
        "## Beside the published figures", "",
        "Published rows: Table 2 of the UniSRec paper as transcribed by a third-party summary, "
        "not checked against the paper; they do not mask history, so compare them with the "
        "unmasked columns.", "", comparison_table(results), "",
        "## Every metric", "", results_table(results), "", "## Split", "",
        ", ".join(f"{k}={v}" for k, v in results.split_stats[0].items() if k != "seed")
        if results.split_stats else "", "", "## Notes", "",
    ] + [f"- {n}" for n in results.notes]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
