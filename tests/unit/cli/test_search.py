"""``kgrec search`` through kgrec.cli.main on a tiny embedded store (hashing encoder)."""

from __future__ import annotations

import json
import os

import pytest

from kgrec.cli import main
from kgrec.graph.ingest import ingest_tables
from kgrec.graph.open import open_store
from tests.shops import HOMERS, RUNNERS, shop_tables


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    os.environ.setdefault("KGREC_PSEUDONYM_KEY", "unit-test-key-0123456789")
    root = tmp_path_factory.mktemp("cli-search")
    spec = f"embedded:{root / 'store'}"
    store, pseudo = open_store(spec)
    ingest_tables(shop_tables(with_new_items=False), store, pseudo)
    model = str(root / "model")
    assert main(["train", "--store", spec, "--model-dir", model, "--epochs", "20",
                 "--encoder", "hashing", "--threads", "1"]) == 0
    return spec, model


def _run(trained: tuple[str, str], capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:
    spec, model = trained
    capsys.readouterr()
    assert main(["search", "--model-dir", model, "--store", spec, "--json", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_search_raw_user_ids_are_pseudonymised(trained: tuple[str, str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    anon = _run(trained, capsys, "--query", "red", "--k", "2")
    assert len(anon) == 2 and all(r["personal"] is None for r in anon)
    runner = _run(trained, capsys, "--query", "red", "--user", RUNNERS[0], "--k", "2",
                  "--explain")
    assert runner[0]["personal"] is not None and runner[0]["matched"] == {"title": ["red"]}
    assert runner[0]["paths"] and RUNNERS[0] not in json.dumps(runner)  # pseudonyms only
    home = _run(trained, capsys, "--query", "red", "--user", HOMERS[0], "--k", "12")
    runner = _run(trained, capsys, "--query", "red", "--user", RUNNERS[0], "--k", "12")
    p_home = {r["item_id"]: r["personal"] for r in home}
    p_runner = {r["item_id"]: r["personal"] for r in runner}
    # the raw ids reached the right users: each prefers their own segment's item
    assert p_runner["shoe-0"] > p_home["shoe-0"] and p_home["mug-0"] > p_runner["mug-0"]


def test_search_filters_and_table_output(trained: tuple[str, str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    rows = _run(trained, capsys, "--query", "mug", "--brand", "Zeta", "--max-price", "10")
    assert sorted(r["item_id"] for r in rows) == ["mug-0", "mug-1"]
    spec, model = trained
    assert main(["search", "--model-dir", model, "--store", spec, "--query", "coffee mug",
                 "--category", "Home", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "not personalised" in out and "title: coffee mug" in out


def test_empty_query_exits_1(trained: tuple[str, str],
                             capsys: pytest.CaptureFixture[str]) -> None:
    spec, model = trained
    assert main(["search", "--model-dir", model, "--store", spec, "--query", " "]) == 1
    assert "ValidationError: the query is empty" in capsys.readouterr().err
