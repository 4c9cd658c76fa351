"""``kgrec evaluate --protocol unisrec`` end to end on a generated shop written in the UniSRec /
RecBole format (hashing encoder, 1 seed, 2 epochs): the report, both test variants for every
model, and masking that can only help (the test item itself is never masked).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kgrec.cli import main
from kgrec.evaluation.unisrec import PUBLISHED
from kgrec.graph.synthetic import generate_catalog

pytestmark = pytest.mark.integration

HEAD = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
MAX_LEN = 50


def _write_unisrec(folder: Path, n_users: int = 300, n_items: int = 200) -> None:
    """Leave-one-out RecBole files of a generated shop's time-ordered sequences."""
    cat = generate_catalog(n_users=n_users, n_items=n_items, n_interactions=5000,
                           n_new_items=0, n_new_users=0, seed=0)
    inter = cat.tables.interactions.sort_values(["user_id", "ts"], kind="stable")
    seqs = inter.drop_duplicates(["user_id", "item_id"]).groupby("user_id")["item_id"] \
        .agg(list)
    seqs = seqs[seqs.map(len) >= 4]  # at least one training row
    items = cat.tables.items.reset_index(drop=True)
    tok = {iid: str(i) for i, iid in enumerate(items["item_id"])}
    train, valid, test = [], [], []
    for u, (_, seq) in enumerate(seqs.items()):
        s = [tok[i] for i in seq]

        def hist(t: int, s: list[str] = s) -> str:
            return " ".join(s[max(0, t - MAX_LEN):t])

        train += [f"{u}\t{hist(t)}\t{s[t]}\n" for t in range(len(s) - 3, 0, -1)]
        valid.append(f"{u}\t{hist(len(s) - 2)}\t{s[-2]}\n")
        test.append(f"{u}\t{hist(len(s) - 1)}\t{s[-1]}\n")
    folder.mkdir(parents=True)
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"Shop.{name}.inter").write_text(HEAD + "".join(rows))
    text = items["title"].astype(str) + ". " + items["category"].astype(str) + ". " \
        + items["brand"].astype(str) + ". "
    pd.DataFrame({"item_id:token": items["item_id"], "text:token_seq": text}).to_csv(
        folder / "Shop.text", sep="\t", index=False)
    (folder / "Shop.item2index").write_text("".join(f"{i}\t{t}\n" for i, t in tok.items()))
    (folder / "Shop.user2index").write_text("".join(f"{uid}\t{u}\n"
                                                    for u, uid in enumerate(seqs.index)))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("shop") / "alt_unisrec_format"
    _write_unisrec(data)
    out = tmp_path_factory.mktemp("eval")
    rc = main(["evaluate", "--protocol", "unisrec", "--data", str(data.parent), "--seeds", "0",
               "--encoder", "hashing", "--epochs", "2", "--steps-per-epoch", "2",
               "--hidden-dim", "16", "--baselines", "random", "popularity", "content_knn",
               "--out", str(out)])
    assert rc == 0
    return out


def test_both_variants_for_every_model(run: Path) -> None:
    summary = pd.read_csv(run / "results.csv")
    for model in ("kgrec", "random", "popularity", "content_knn"):
        rows = summary[summary["model"] == model].set_index("regime")
        assert set(rows.index) == {"test", "test_unmasked"}, model
        for k in (10, 20, 50):  # masking removes competitors only: never worse
            assert rows.loc["test", f"recall@{k}_mean"] >= \
                rows.loc["test_unmasked", f"recall@{k}_mean"], (model, k)
        assert rows["users_mean"].nunique() == 1
    assert (summary.loc[summary["model"] == "kgrec", "ece_mean"].notna()).all()


def test_report_beside_published_figures(run: Path) -> None:
    report = (run / "report.md").read_text()
    assert "## Beside the published figures" in report and "| kgrec |" in report
    for name in PUBLISHED:
        assert f"| {name} |" in report
    payload = json.loads((run / "results.json").read_text())
    assert payload["protocol"] == "unisrec" and payload["split_stats"][0]["test_users"] > 200
