"""Save/load round trip and the incompatibility checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kgrec.coldstart import ColdStartModel
from kgrec.encoders import HashingEncoder
from kgrec.errors import IncompatibleModelError, ModelError
from kgrec.graph.export import ExportedGraph


def test_round_trip_gives_identical_scores(fitted: ColdStartModel, graph: ExportedGraph,
                                           tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "m")
    assert {p.name for p in path.iterdir()} == {"config.json", "vocab.json",
                                                "weights.safetensors"}
    loaded = ColdStartModel.load(path)
    a = fitted.score_matrix(fitted.transform(graph))
    b = loaded.score_matrix(loaded.transform(graph))
    np.testing.assert_array_equal(a, b)
    assert loaded.config_ == fitted.config_
    assert loaded.vocabs_["Brand"].ids == fitted.vocabs_["Brand"].ids


def test_other_encoder_is_incompatible(fitted: ColdStartModel, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "m")
    with pytest.raises(IncompatibleModelError, match=r"hashing-64.*hashing-32"):
        ColdStartModel.load(path, text_encoder=HashingEncoder(dim=32))


def test_other_kgrec_version_is_incompatible(fitted: ColdStartModel, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    config["kgrec_version"] = "9.7.0"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(IncompatibleModelError, match=r"kgrec 9\.7\.0.*this is kgrec"):
        ColdStartModel.load(path)


def test_missing_files_raise_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="missing config.json"):
        ColdStartModel.load(tmp_path)


def test_no_pickle_in_model_dir(fitted: ColdStartModel, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    assert config["encoder_identity"]["name"] == "hashing-64"
    assert config["kgrec_version"]
    assert not list(path.glob("*.pt")) and not list(path.glob("*.pkl"))
