"""``kgrec update`` and the drift report on the two-segment shop (hashing encoder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec.cli import main
from kgrec.evaluation.drift import psi
from kgrec.graph.ingest import ingest_tables
from kgrec.graph.open import open_store
from tests.shops import RUNNERS, new_items, shop_tables


def test_psi_is_zero_for_the_same_scores_and_large_for_shifted_ones() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random(5_000)
    assert psi(scores, scores) == pytest.approx(0.0, abs=1e-12)
    assert psi(scores, np.clip(scores + 0.5, 0, 1)) > 0.25


def test_update_folds_new_skus_in_and_reports_drift(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KGREC_PSEUDONYM_KEY", "unit-test-key-0123456789")
    spec, model = f"embedded:{tmp_path / 'store'}", str(tmp_path / "model")
    store, pseudo = open_store(spec)
    ingest_tables(shop_tables(with_new_items=False), store, pseudo)
    assert main(["train", "--store", spec, "--model-dir", model, "--epochs", "3",
                 "--encoder", "hashing", "--threads", "1"]) == 0
    new_items().to_csv(tmp_path / "items.csv", index=False)
    clicks = pd.DataFrame({"user_id": RUNNERS[:6], "item_id": "shoe-new", "event": "click",
                           "ts": 100})
    clicks.to_csv(tmp_path / "inter.csv", index=False)
    report = tmp_path / "drift.json"
    assert main(["update", "--model-dir", model, "--store", spec, "--items",
                 str(tmp_path / "items.csv"), "--interactions", str(tmp_path / "inter.csv"),
                 "--rejects", str(tmp_path / "rejects.csv"), "--report", str(report),
                 "--threads", "1"]) == 0
    drift = json.loads(report.read_text())
    assert drift["new_items"] == 2 and drift["new_users"] == 0
    assert drift["new_interactions"] == 6 and drift["new_sku_share"] == 1.0
    assert drift["retrain_recommended"] is True
    assert any("never trained on" in r for r in drift["reasons"])
    assert 0 <= drift["recall_at_20"] <= 1 and drift["psi"] >= 0
    assert "RETRAIN RECOMMENDED" in capsys.readouterr().out
    # the folded-in SKU is now a known item of the saved model: a runner who has not clicked it
    out = tmp_path / "r.csv"
    assert main(["recommend", "--model-dir", model, "--store", spec, "--user", RUNNERS[7],
                 "--candidates", str(tmp_path / "items.csv"), "--k", "2", "--out",
                 str(out)]) == 0
    assert set(pd.read_csv(out)["item_id"]) == {"shoe-new", "mug-new"}
