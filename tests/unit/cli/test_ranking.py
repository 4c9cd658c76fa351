"""CLI commands through kgrec.cli.main on a tiny embedded store (hashing encoder)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from kgrec.cli import main
from kgrec.graph.ingest import ingest_tables
from kgrec.graph.open import open_store
from tests.shops import HOMERS, RUNNERS, new_items, shop_tables


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    import os

    os.environ.setdefault("KGREC_PSEUDONYM_KEY", "unit-test-key-0123456789")
    root = tmp_path_factory.mktemp("cli")
    spec = f"embedded:{root / 'store'}"
    store, pseudo = open_store(spec)
    ingest_tables(shop_tables(with_new_items=False), store, pseudo)
    model = str(root / "model")
    assert main(["train", "--store", spec, "--model-dir", model, "--epochs", "3",
                 "--encoder", "hashing", "--threads", "1"]) == 0
    return spec, model


def test_help_of_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("train", "recommend", "rank-new", "explain", "candidates", "demo"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
    assert "--model-dir" in capsys.readouterr().out


def test_recommend_writes_csv(trained: tuple[str, str], tmp_path) -> None:
    spec, model = trained
    out = tmp_path / "r.csv"
    assert main(["recommend", "--model-dir", model, "--store", spec, "--user", RUNNERS[0],
                 HOMERS[0], "--k", "2", "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["user_id", "item_id", "rank", "score"]
    assert set(frame["user_id"]) == {RUNNERS[0], HOMERS[0]} and len(frame) == 4


def test_recommend_from_files(trained: tuple[str, str], tmp_path) -> None:
    spec, model = trained
    (tmp_path / "u.txt").write_text(f"{RUNNERS[1]}\n{HOMERS[1]}\n")
    pd.DataFrame({"item_id": ["mug-1", "shoe-1"]}).to_csv(tmp_path / "c.csv", index=False)
    out = tmp_path / "r.parquet"
    assert main(["recommend", "--model-dir", model, "--store", spec, "--users",
                 str(tmp_path / "u.txt"), "--candidates", str(tmp_path / "c.csv"), "--k", "5",
                 "--include-seen", "--out", str(out)]) == 0
    assert set(pd.read_parquet(out)["item_id"]) == {"mug-1", "shoe-1"}


def test_unknown_user_exits_1(trained: tuple[str, str],
                              capsys: pytest.CaptureFixture[str]) -> None:
    spec, model = trained
    assert main(["recommend", "--model-dir", model, "--store", spec, "--user", "ghost"]) == 1
    assert "UnknownIdError: 1 unknown User id(s): 'ghost'" in capsys.readouterr().err


def test_rank_new_explain_candidates(trained: tuple[str, str], tmp_path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    spec, model = trained
    new_items().to_json(tmp_path / "new.jsonl", orient="records", lines=True)
    out = tmp_path / "new.csv"
    assert main(["rank-new", "--model-dir", model, "--store", spec, "--items",
                 str(tmp_path / "new.jsonl"), "--k", "1", "--out", str(out)]) == 0
    assert set(pd.read_csv(out)["item_id"]) <= {"shoe-new", "mug-new"}
    capsys.readouterr()
    assert main(["explain", "--model-dir", model, "--store", spec, "--user", RUNNERS[0],
                 "--item", "shoe-5", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["item_id"] == "shoe-5" and "paths" in printed
    cand = tmp_path / "cand.parquet"
    assert main(["candidates", "--model-dir", model, "--store", spec, "--k", "2", "--to",
                 f"parquet:{cand}", "--to", "store", "--explain",
                 str(tmp_path / "paths.jsonl")]) == 0
    assert len(pd.read_parquet(cand)) == 2 * len(RUNNERS + HOMERS)
    store, _ = open_store(spec)
    from kgrec.graph.schema import RelType
    assert len(store.edges(RelType.CANDIDATE)) == 2 * len(RUNNERS + HOMERS)


def test_train_init_from_fine_tunes_with_the_recipe(trained: tuple[str, str], tmp_path) -> None:
    """``--init-from`` starts from the model's settings with ``ModelConfig.fine_tune``'s recipe;
    a flag given on the command line wins over the recipe."""
    from kgrec.coldstart.config import FINE_TUNE
    from kgrec.ranking.recommender import Recommender

    spec, model = trained
    tuned = tmp_path / "tuned"
    assert main(["train", "--store", spec, "--model-dir", str(tuned), "--init-from", model,
                 "--epochs", "2", "--threads", "1"]) == 0
    store, pseudo = open_store(spec)
    first = Recommender.load(model, store, pseudonymizer=pseudo).model_.config_
    config = Recommender.load(str(tuned), store, pseudonymizer=pseudo).model_.config_
    assert config.epochs == 2  # the flag
    recipe = ("patience", "refit_steps", "calibration_negatives")
    assert {k: getattr(config, k) for k in recipe} == {k: FINE_TUNE[k] for k in recipe}
    assert first.calibration_negatives == 100 and config.hidden_dim == first.hidden_dim
