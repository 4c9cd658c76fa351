"""The UniSRec split loader on a tiny hand-written RecBole set with known counts and regimes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kgrec.errors import ConfigError, DataError, FileFormatError
from kgrec.evaluation.runner import EvalConfig, EvalResults, export, interaction_frame
from kgrec.evaluation.unisrec import (
    PUBLISHED,
    comparison_table,
    load_unisrec,
    resolve_unisrec_folder,
    unisrec_regimes,
)

HEAD = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
# Full sequences (item tokens): user 0: 0 1 2 3 4; user 1: 2 5 2 0 1 (re-buys 2 in training);
# user 2: 5 3 1 5 (re-buys 5 as its test item). The last item is test, the one before valid.
TRAIN = "0\t0 1\t2\n0\t0\t1\n1\t2 5\t2\n1\t2\t5\n2\t5\t3\n"
VALID = "0\t0 1 2\t3\n1\t2 5 2\t0\n2\t5 3\t1\n"
TEST = "0\t0 1 2 3\t4\n1\t2 5 2 0\t1\n2\t5 3 1\t5\n"
TEXT = ("item_id:token\ttext:token_seq\n"
        "A0\tSanding Roll 80 Grit. Abrasives Sanding Rolls. PORTER-CABLE. \n"
        "A1\tGlue, 8 oz. Bottle. Adhesives Urethane. Gorilla. \n"
        "A2\tStaples. Fasteners Staples. B&C Eagle. \n"
        "A3\tJack. Material Handling Jacks. Qualcraft. \n"
        "A4\tOnly a title. \n"
        "A5\tSheets. Abrasives Sanding Sheets. 3M. \n")


def _write(folder: Path, **override: str) -> Path:
    files = {"train.inter": HEAD + TRAIN, "valid.inter": HEAD + VALID,
             "test.inter": HEAD + TEST, "text": TEXT,
             "item2index": "".join(f"A{i}\t{i}\n" for i in range(6)),
             "user2index": "".join(f"U{u}\t{u}\n" for u in range(3))}
    files.update({k.replace("_", "."): v for k, v in override.items()})
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"Tiny.{name}").write_text(text, encoding="utf-8")
    return folder


def test_loader_known_counts_and_sequences(tmp_path: Path) -> None:
    split = load_unisrec(_write(tmp_path / "ds" / "alt_unisrec_format").parent)
    assert split.stats == {"users": 3, "items": 6, "train_rows": 5, "train_pairs": 7,
                           "train_repeats_dropped": 1, "test_users": 3,
                           "test_item_in_history": 1, "items_without_training": 1}
    inter = split.tables.interactions
    assert inter[["user_id", "item_id", "ts"]].sort_values(["user_id", "ts"]).values.tolist() == [
        ["U0", "A0", 0], ["U0", "A1", 1], ["U0", "A2", 2], ["U1", "A2", 0], ["U1", "A5", 1],
        ["U2", "A5", 0], ["U2", "A3", 1]]
    assert sorted(map(tuple, split.test.values.tolist())) == [
        ("U0", "A4"), ("U1", "A1"), ("U2", "A5")]
    assert sorted(map(tuple, split.valid.values.tolist())) == [
        ("U0", "A3"), ("U1", "A0"), ("U2", "A1")]
    items = split.tables.items.set_index("item_id")
    assert items.loc["A1", ["title", "category", "brand"]].tolist() == [
        "Glue, 8 oz. Bottle", "Adhesives Urethane", "Gorilla"]  # rsplit keeps the title's ". "
    assert items.loc["A4", "title"] == "Only a title" and items.loc["A4"].isna()["brand"]


def test_held_out_items_never_in_training_graph(tmp_path: Path) -> None:
    split = load_unisrec(_write(tmp_path))
    graph = export(split.tables)
    edges = set(map(tuple, interaction_frame(graph).values.tolist()))
    assert edges == {("U0", "A0"), ("U0", "A1"), ("U0", "A2"), ("U1", "A2"), ("U1", "A5"),
                     ("U2", "A5"), ("U2", "A3")}
    held = {("U0", "A4"), ("U1", "A1"), ("U0", "A3"), ("U1", "A0"), ("U2", "A1")}
    assert not edges & held  # only U2's re-bought A5 was also bought in training
    assert set(graph.node_ids["Item"]) == {f"A{i}" for i in range(6)}  # A4: text only


def test_regimes_mask_the_input_sequence_but_never_a_positive(tmp_path: Path) -> None:
    split = load_unisrec(_write(tmp_path))
    graph = export(split.tables)
    regimes = {r.name: r for r in unisrec_regimes(split, graph, with_valid=True)}
    items, users = graph.node_ids["Item"], graph.node_ids["User"]

    def masked(name: str) -> set[tuple[str, str]]:
        r = regimes[name]
        return {(users[r.users[p]], items[c]) for p, c in r.exclude.T}

    assert masked("test") == {("U0", "A0"), ("U0", "A1"), ("U0", "A2"), ("U0", "A3"),
                              ("U1", "A2"), ("U1", "A5"), ("U1", "A0"),
                              ("U2", "A3"), ("U2", "A1")}  # U2's test item A5 stays rankable
    assert masked("valid") == {("U0", "A0"), ("U0", "A1"), ("U0", "A2"), ("U1", "A2"),
                               ("U1", "A5"), ("U2", "A5"), ("U2", "A3")}
    assert masked("test_unmasked") == set()
    r = regimes["test"]
    assert len(r.candidates) == 6 and r.truth.shape == (2, 3)
    truth, valid = r.block(0, 3)
    assert (truth & valid).sum() == 3


@pytest.mark.parametrize(("override", "error", "match"), [
    ({"train_inter": "a\tb\tc\n0\t0\t1\n"}, FileFormatError, "expected RecBole columns"),
    ({"train_inter": HEAD + "0\t0 1\t2\n0\t0\t3\n"}, FileFormatError,
     "not the previous row's history plus its target"),
    ({"test_inter": HEAD + "0\t0 1 2 3\t9\n"}, DataError, r"item token\(s\) \['9'\]"),
    ({"test_inter": HEAD + "0\t0 1 2 4\t3\n1\t2 5 2 0\t1\n2\t5 3 1\t5\n"}, DataError,
     "do not end with the validation items"),
])
def test_bad_files(tmp_path: Path, override: dict[str, str], error: type[Exception],
                   match: str) -> None:
    with pytest.raises(error, match=match):
        load_unisrec(_write(tmp_path, **override))


def test_folder_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"no <Name>\.train\.inter"):
        resolve_unisrec_folder(tmp_path)
    monkeypatch.delenv("KGREC_SHARED_DATA", raising=False)
    with pytest.raises(ConfigError, match="needs KGREC_SHARED_DATA"):
        resolve_unisrec_folder("amazon")
    _write(tmp_path / "amazon-industrial-scientific" / "alt_unisrec_format")
    monkeypatch.setenv("KGREC_SHARED_DATA", str(tmp_path))
    assert resolve_unisrec_folder("amazon").name == "alt_unisrec_format"
    (tmp_path / "amazon-industrial-scientific" / "alt_unisrec_format" / "Tiny.text").unlink()
    with pytest.raises(ConfigError, match=r"Tiny\.text: missing"):
        load_unisrec("amazon")


def test_comparison_table_puts_masked_and_unmasked_beside_published() -> None:
    res = EvalResults(dataset="tiny", config=EvalConfig(seeds=(0,)))
    for regime, r10 in (("test", 0.2), ("test_unmasked", 0.1)):
        res.records.append({"seed": 0, "regime": regime, "model": "kgrec", "recall@10": r10,
                            "recall@50": 0.5, "ndcg@10": 0.05, "ndcg@50": 0.07})
    lines = comparison_table(res).splitlines()
    assert lines[2].split(" | ")[1:] == ["0.2000", "0.5000", "0.0500", "0.0700", "0.1000",
                                         "0.5000", "0.0500", "0.0700 |"]
    assert [line.split(" | ")[0] for line in lines[3:]] == [f"| {n}" for n in PUBLISHED]
    assert "0.2394" in lines[-1] and np.isclose(PUBLISHED["SASRec (published)"]["ndcg@10"],
                                                0.0553)


def test_shared_scoring_scores_each_block_once_and_matches_separate_runs(tmp_path: Path) -> None:
    from kgrec.evaluation.metrics import MetricAccumulator
    from kgrec.evaluation.runner import score_regime
    from kgrec.evaluation.unisrec import score_shared

    split = load_unisrec(_write(tmp_path))
    regimes = unisrec_regimes(split, export(split.tables), with_valid=True)
    rng = np.random.default_rng(0)
    table = rng.random((3, 6))
    calls: list[str] = []

    def scorer(regime: object, pos: np.ndarray, items: np.ndarray) -> np.ndarray:
        calls.append(getattr(regime, "name", ""))
        return table[np.ix_(regime.users[pos], items)]  # type: ignore[attr-defined]

    shared = [MetricAccumulator(ks=(1, 3), n_items=6) for _ in regimes]
    score_shared(regimes, scorer, shared, proba=False, chunk_users=2)
    assert len(calls) == 2  # two blocks of users, all three regimes share users + candidates
    for regime, acc in zip(regimes, shared, strict=True):
        alone = MetricAccumulator(ks=(1, 3), n_items=6)
        score_regime(regime, scorer, alone, proba=False, chunk_users=2)
        np.testing.assert_equal(acc.result(), alone.result())
    masked, unmasked = shared[0].result(), shared[1].result()
    assert masked["recall@3"] >= unmasked["recall@3"]  # masking only removes competitors


def test_test_tables_time_each_validation_item_after_the_training_sequence(
        tmp_path: Path) -> None:
    split = load_unisrec(_write(tmp_path))
    inter = split.test_tables().interactions
    assert len(inter) == len(split.tables.interactions) + 3
    assert inter[["user_id", "item_id", "ts"]].sort_values(["user_id", "ts"]).values.tolist() == [
        ["U0", "A0", 0], ["U0", "A1", 1], ["U0", "A2", 2], ["U0", "A3", 3],
        ["U1", "A2", 0], ["U1", "A5", 1], ["U1", "A0", 2],
        ["U2", "A5", 0], ["U2", "A3", 1], ["U2", "A1", 2]]
    assert len(split.tables.interactions) == 7  # the training tables are left as they were


def test_folded_regimes_read_the_validation_item_last(tmp_path: Path) -> None:
    split = load_unisrec(_write(tmp_path))
    graph = export(split.tables)
    test_graph = export(split.test_tables())
    regimes = {r.name: r for r in unisrec_regimes(split, graph, with_valid=True,
                                                  test_graph=test_graph)}
    items, users = graph.node_ids["Item"], graph.node_ids["User"]
    for name in ("test", "test_unmasked"):
        r = regimes[name]
        assert r.graph is test_graph and r.histories is not None
        assert {users[u]: [items[i] for i in h] for u, h in zip(r.users, r.histories,
                                                                strict=True)} == {
            "U0": ["A0", "A1", "A2", "A3"], "U1": ["A2", "A5", "A0"], "U2": ["A5", "A3", "A1"]}
    assert regimes["test"].histories is regimes["test_unmasked"].histories  # scored once
    assert regimes["valid"].graph is None and regimes["valid"].histories is None
    edges = set(map(tuple, interaction_frame(test_graph).values.tolist()))
    assert {("U0", "A3"), ("U1", "A0"), ("U2", "A1")} <= edges
    plain = {r.name: r for r in unisrec_regimes(split, graph)}
    assert plain["test"].graph is None and plain["test"].histories is None


def test_folded_histories_reach_a_history_baseline(tmp_path: Path) -> None:
    import pandas as pd

    from kgrec.coldstart.features import interaction_pairs
    from kgrec.evaluation.baselines import TrainData
    from kgrec.evaluation.baselines_cf import ItemKNN
    from kgrec.evaluation.runner import baseline_scorer

    split = load_unisrec(_write(tmp_path))
    graph = export(split.tables)
    train = TrainData(items=graph.items, users=pd.DataFrame({"user_id": graph.node_ids["User"]}),
                      pairs=interaction_pairs(graph)[0])
    knn = ItemKNN(neighbours=None).fit(train, np.zeros((6, 2)))
    folded = unisrec_regimes(split, graph, test_graph=export(split.test_tables()))[0]
    pos = np.arange(len(folded.users))
    with_valid = baseline_scorer(knn)(folded, pos, folded.candidates)
    training_only = knn.score(folded.users, folded.candidates)
    items, users = list(graph.node_ids["Item"]), list(graph.node_ids["User"])
    u0 = int(np.flatnonzero(folded.users == users.index("U0"))[0])
    delta = with_valid - training_only
    # U0's validation item A3 was bought with A5 by U2 only: cosine 1 / sqrt(1 * 2)
    assert np.isclose(delta[u0, items.index("A5")], 1 / np.sqrt(2))
    assert np.allclose(np.delete(delta[u0], items.index("A5")), 0.0)


def test_shared_scoring_keeps_folded_and_plain_inputs_apart(tmp_path: Path) -> None:
    from kgrec.evaluation.metrics import MetricAccumulator
    from kgrec.evaluation.unisrec import score_shared

    split = load_unisrec(_write(tmp_path))
    graph = export(split.tables)
    regimes = unisrec_regimes(split, graph, with_valid=True,
                              test_graph=export(split.test_tables()))
    seen: list[tuple[str, bool]] = []

    def scorer(regime: object, pos: np.ndarray, items: np.ndarray) -> np.ndarray:
        seen.append((getattr(regime, "name", ""), getattr(regime, "graph", None) is not None))
        return np.zeros((len(pos), len(items)))

    accs = [MetricAccumulator(ks=(1,), n_items=6) for _ in regimes]
    score_shared(regimes, scorer, accs, proba=False, chunk_users=3)
    assert seen == [("test", True), ("valid", False)]  # test + test_unmasked scored once
