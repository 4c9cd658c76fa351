"""The demo runs end to end with the real text encoder and writes its report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kgrec.ranking.demo import DemoConfig, run_demo

pytestmark = pytest.mark.integration


def test_demo_small_real_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGREC_PSEUDONYM_KEY", "demo-test-key-0123456789")
    res = run_demo(DemoConfig(out=tmp_path / "demo", encoder="bert", n_users=300, n_items=250,
                              n_interactions=5_000, n_new_items=40, n_new_users=20, epochs=4,
                              threads=2))
    text = res.report.read_text()
    assert "Cold-start candidates: new SKUs" in text and "-INTERACTED->" in text
    assert "Cold-start candidates: new users" in text
    for p in res.plots:
        assert p.is_file() and p.stat().st_size > 1000
    cands = pd.read_parquet(res.files["new_sku_candidates"])
    assert {"user_id", "item_id", "rank", "score", "model_version"} <= set(cands.columns)
    assert res.figures["affinity_recommended"] > res.figures["affinity_random"]
    assert (tmp_path / "demo" / "text-cache").is_dir()
