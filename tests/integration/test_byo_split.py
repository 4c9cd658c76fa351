"""Bring your own split: an external script makes the split, kgrec trains and ranks, and
``kgrec score-run`` scores the ranked file against the truth; no state is shared.

Uses a 400-user slice of the real Amazon data (skipped when it is not there) and the hashing
encoder, so it runs in about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec.cli import main

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("KGREC_SHARED_DATA", ROOT.parent / "shared" / "data"))
K = 50


def test_external_split_train_recommend_score(tmp_path: Path) -> None:
    amazon = DATA / "amazon-industrial-scientific"
    if not amazon.is_dir():
        pytest.skip(f"Amazon data not found under {DATA}; set KGREC_SHARED_DATA")
    split = tmp_path / "split"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_external_split.py"),
                    "--data", str(amazon), "--out", str(split), "--max-users", "400",
                    "--seed", "0"], check=True)
    store = f"embedded:{tmp_path / 'store'}"
    assert main(["ingest", "--items", str(split / "items.csv"), "--users",
                 str(split / "users.csv"), "--interactions", str(split / "interactions.csv"),
                 "--default-event", "purchase", "--rejects", str(tmp_path / "rejects.csv"),
                 "--store", store]) == 0
    model = tmp_path / "model"
    assert main(["train", "--store", store, "--model-dir", str(model), "--encoder", "hashing",
                 "--epochs", "15", "--threads", "1"]) == 0
    ranked = tmp_path / "ranked.csv"
    assert main(["recommend", "--model-dir", str(model), "--store", store, "--users",
                 str(split / "test_users.csv"), "--candidates", str(split / "candidates.csv"),
                 "--k", str(K), "--out", str(ranked)]) == 0
    metrics_file = tmp_path / "metrics.json"
    assert main(["score-run", "--ranked", str(ranked), "--truth", str(split / "truth.csv"),
                 "--k", "10", "20", str(K), "--out", str(metrics_file)]) == 0
    metrics = json.loads(metrics_file.read_text())
    assert metrics_file.is_file() and metrics["users"] > 0

    # the same candidates ranked at random, scored by the same command
    users = pd.read_csv(split / "test_users.csv", dtype=str)["user_id"].to_numpy()
    cands = pd.read_csv(split / "candidates.csv", dtype=str)["item_id"].to_numpy()
    rng = np.random.default_rng(0)
    random_recall = []
    for rep in range(5):
        rows = [(u, i, r + 1) for u in users
                for r, i in enumerate(rng.permutation(cands)[:K])]
        path = tmp_path / f"random{rep}.csv"
        pd.DataFrame(rows, columns=["user_id", "item_id", "rank"]).to_csv(path, index=False)
        out = tmp_path / f"random{rep}.json"
        assert main(["score-run", "--ranked", str(path), "--truth",
                     str(split / "truth.csv"), "--k", str(K), "--out", str(out)]) == 0
        random_recall.append(json.loads(out.read_text())[f"recall@{K}"])
    print(f"kgrec Recall@{K} {metrics[f'recall@{K}']:.4f} vs random "
          f"{np.mean(random_recall):.4f}")
    assert metrics[f"recall@{K}"] > max(random_recall)
