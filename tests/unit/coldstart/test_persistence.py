"""Save/load round trip and the incompatibility checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kgrec.coldstart import ColdStartModel
from kgrec.encoders import HashingEncoder
from kgrec.errors import IncompatibleModelError, ModelError
from kgrec.graph.export import ExportedGraph


def test_round_trip_gives_identical_scores(fitted: ColdStartModel, graph: ExportedGraph,
                                           tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "m")
    assert {p.name for p in path.iterdir()} == {"config.json", "vocab.json",
                                                "weights.safetensors", "manifest.json"}
    assert not list(path.parent.glob(".*kgrec-tmp"))  # the temp folder was renamed away
    loaded = ColdStartModel.load(path, num_threads=1)
    a = fitted.score_matrix(fitted.transform(graph))
    b = loaded.score_matrix(loaded.transform(graph))
    np.testing.assert_array_equal(a, b)
    assert loaded.config_ == fitted.config_
    assert loaded.vocabs_["Brand"].ids == fitted.vocabs_["Brand"].ids


def test_other_encoder_is_incompatible(fitted: ColdStartModel, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "m")
    with pytest.raises(IncompatibleModelError, match=r"hashing-64.*hashing-32"):
        ColdStartModel.load(path, text_encoder=HashingEncoder(dim=32))


def test_other_kgrec_version_is_incompatible(fitted: ColdStartModel, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from kgrec.coldstart import persistence

    with monkeypatch.context() as m:  # a model saved by another kgrec version
        m.setattr(persistence, "__version__", "9.7.0")
        path = fitted.save(tmp_path / "m")
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


def _first_score(model: ColdStartModel, graph: ExportedGraph) -> float:
    return float(model.score_matrix(model.transform(graph))[0, 0])


@pytest.mark.parametrize("name", ["weights.safetensors", "config.json", "vocab.json"])
def test_truncated_file_is_a_model_error_naming_it(fitted: ColdStartModel, tmp_path: Path,
                                                    name: str) -> None:
    path = fitted.save(tmp_path / "m")
    data = (path / name).read_bytes()
    (path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=rf"{name} is truncated .*re-save the model"):
        ColdStartModel.load(path)


def test_altered_weights_are_a_model_error(fitted: ColdStartModel, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "m")
    data = bytearray((path / "weights.safetensors").read_bytes())
    data[-1] ^= 0xFF  # same size, one weight byte flipped: safetensors alone would load it
    (path / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"weights\.safetensors was changed .*SHA-256"):
        ColdStartModel.load(path)


def test_truncated_weights_without_manifest_still_a_model_error(fitted: ColdStartModel,
                                                                tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "m")
    (path / "manifest.json").unlink()  # as saved by an older kgrec
    data = (path / "weights.safetensors").read_bytes()
    (path / "weights.safetensors").write_bytes(data[:100])
    with pytest.raises(ModelError, match=r"cannot read .*weights\.safetensors"):
        ColdStartModel.load(path)


def test_save_replaces_an_existing_model_whole(fitted: ColdStartModel, graph: ExportedGraph,
                                               tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "m")
    (path / "stray.txt").write_text("from the old folder")
    fitted.save(path)
    assert not (path / "stray.txt").exists()
    assert not list(tmp_path.glob(".*kgrec-tmp"))
    loaded = ColdStartModel.load(path, num_threads=1)
    assert _first_score(loaded, graph) == _first_score(fitted, graph)


def test_save_refuses_a_folder_that_is_not_a_model(fitted: ColdStartModel,
                                                   tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match="not a kgrec model folder"):
        fitted.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_failed_save_leaves_the_old_model(fitted: ColdStartModel, graph: ExportedGraph,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          ) -> None:
    from kgrec.coldstart import persistence

    path = fitted.save(tmp_path / "m")
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(persistence, "save_file", disk_full)
    with pytest.raises(ModelError, match="No space left"):
        fitted.save(path)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert not list(tmp_path.glob(".*kgrec-tmp"))


def test_warm_start_copies_weights_and_grown_vocabulary_rows(fitted: ColdStartModel,
                                                             graph: ExportedGraph) -> None:
    from kgrec.coldstart import ModelConfig
    from kgrec.encoders import HashingEncoder
    from tests.shops import shop_graph

    grown = shop_graph(extra_items=[("lamp-1", "Nova desk lamp", "LED lamp", "Nova",
                                     "Home > Lighting", 30.0)])
    config = fitted.config_.replace(epochs=1)
    tuned = ColdStartModel(config, text_encoder=fitted.text_.encoder, num_threads=1)
    tuned.fit(grown, init_from=fitted)
    assert len(tuned.vocabs_["Brand"]) == len(fitted.vocabs_["Brand"]) + 1  # Nova is new
    # one epoch of fine-tuning moves the weights away from the start, but not far
    old = fitted.encoder_.item_in.weight.detach()
    new = tuned.encoder_.item_in.weight.detach()
    assert 0 < float((new - old).norm()) < float(old.norm())
    with pytest.raises(IncompatibleModelError, match="init_from"):
        ColdStartModel(ModelConfig(), text_encoder=HashingEncoder(dim=16)).fit(
            grown, init_from=fitted)


def test_warm_start_leaves_the_refit_split_off(fitted: ColdStartModel) -> None:
    import copy

    from kgrec.coldstart.persistence import warm_start

    init = copy.deepcopy(fitted)
    init.head_.split_parts()  # as the refit leaves it (this tiny shop holds no items out)
    flags = [n for n in init.head_.state_dict() if n.endswith("_split")]
    assert flags and all(bool(init.head_.state_dict()[n]) for n in flags)
    fresh = ColdStartModel(fitted.config_, text_encoder=fitted.text_.encoder, num_threads=1)
    fresh.config_, fresh.vocabs_ = fitted.config_, fitted.vocabs_
    fresh._build_modules(fitted.text_dim_, fitted.edge_types_)
    warm_start(fresh, init)
    state = fresh.head_.state_dict()
    assert not any(bool(state[n]) for n in flags)  # fine-tuning trains one part, as a fresh fit
    torch.testing.assert_close(state["wide.0.weight"], fitted.head_.state_dict()["wide.0.weight"])
