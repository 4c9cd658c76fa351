"""score-run on toy ranked/truth files, and its documented errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kgrec.cli import main
from kgrec.errors import ValidationError
from kgrec.evaluation.scorerun import score_files, score_ranked

RANKED = pd.DataFrame({
    "user_id": ["u1"] * 4 + ["u2"] * 3,
    "item_id": ["a", "b", "c", "d", "c", "a", "b"],
    "rank": [1, 2, 3, 4, 1, 2, 3],
    "score": [0.9, 0.5, 0.3, 0.1, 0.8, 0.4, 0.2],
})
TRUTH = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u3"], "item_id": ["b", "z", "b", "a"]})


def test_metrics_by_hand() -> None:
    r = score_ranked(RANKED, TRUTH, ks=(1, 2, 3))
    # u1: b at rank 2, z never ranked (2 positives); u2: b at rank 3; u3: no ranking at all
    assert r["users"] == 3
    assert r["recall@2"] == pytest.approx((0.5 + 0 + 0) / 3)
    assert r["recall@3"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert r["hit_rate@1"] == 0.0
    assert r["mrr"] == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    # AUC u1: b beats c, d (2 of 3 negatives); z ranks last -> (2 + 0) / (2 * 3); u2: 0 / 2
    assert r["gauc"] == pytest.approx((2 / 6 + 0.0) / 2)
    assert r["catalog_coverage@1"] == pytest.approx(2 / 4)   # a (u1) and c (u2) of a, b, c, d


def test_errors() -> None:
    bad = RANKED.assign(rank=[1, 2, 3, 0, 1, 2, 3])
    with pytest.raises(ValidationError, match="positive integer"):
        score_ranked(bad, TRUTH)
    dup = pd.concat([RANKED, RANKED.iloc[:1]])
    with pytest.raises(ValidationError, match="more than once"):
        score_ranked(dup, TRUTH)


def test_cli_writes_metrics(tmp_path: Path) -> None:
    RANKED.to_csv(tmp_path / "ranked.csv", index=False)
    TRUTH.to_csv(tmp_path / "truth.csv", index=False)
    out = tmp_path / "m" / "metrics.json"
    assert main(["score-run", "--ranked", str(tmp_path / "ranked.csv"), "--truth",
                 str(tmp_path / "truth.csv"), "--k", "1", "3", "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["recall@3"] == pytest.approx(0.5)


def test_cli_missing_column_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    RANKED.drop(columns="rank").to_csv(tmp_path / "ranked.csv", index=False)
    TRUTH.to_csv(tmp_path / "truth.csv", index=False)
    assert main(["score-run", "--ranked", str(tmp_path / "ranked.csv"), "--truth",
                 str(tmp_path / "truth.csv")]) == 1
    assert "ValidationError" in capsys.readouterr().err
    with pytest.raises(Exception, match="cannot read"):
        score_files(tmp_path / "missing.csv", tmp_path / "truth.csv")
