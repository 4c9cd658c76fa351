"""Every documented error of ``kgrec.distributed`` that fires before Ray is reached (no cluster
needed): bad worker or shard counts, nothing to write, a bad model folder, a bad store spec,
Ray missing, and ``--init-from`` with ``--ray``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kgrec.cli import main
from kgrec.distributed import StoreSpec, ray_candidates
from kgrec.distributed.cluster import check_workers, require_ray
from kgrec.errors import ConfigError, ModelError


@pytest.mark.parametrize("workers", [0, -1, True, 1.5])
def test_bad_worker_counts(workers: object) -> None:
    with pytest.raises(ConfigError, match="workers must be an integer >= 1"):
        check_workers(workers)  # type: ignore[arg-type]


def test_candidates_need_somewhere_to_write(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to write"):
        ray_candidates(tmp_path, StoreSpec.from_environment(str(tmp_path)))


def test_candidates_bad_shards_and_workers(tmp_path: Path) -> None:
    spec = StoreSpec.from_environment(str(tmp_path))
    with pytest.raises(ConfigError, match="shards must be an integer >= 1"):
        ray_candidates(tmp_path, spec, parquet=tmp_path / "c", shards=0)
    with pytest.raises(ConfigError, match="workers must be"):
        ray_candidates(tmp_path, spec, parquet=tmp_path / "c", workers=0)


def test_candidates_bad_model_folder_fails_before_ray(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="recommender.json is missing"):
        ray_candidates(tmp_path / "nope", StoreSpec.from_environment(str(tmp_path)),
                       parquet=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_store_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert StoreSpec.from_environment("embedded:rel").spec == f"embedded:{tmp_path / 'rel'}"
    assert StoreSpec.from_environment("rel").spec == f"embedded:{tmp_path / 'rel'}"
    with pytest.raises(ConfigError, match="unknown store 'mongo:x'"):
        StoreSpec.from_environment("mongo:x")
    monkeypatch.setenv("NEO4J_PASSWORD", "s3cret")
    monkeypatch.delenv("NEO4J_URI", raising=False)
    spec = StoreSpec.from_environment("neo4j")
    assert "s3cret" not in repr(spec)
    with pytest.raises(ConfigError, match="set NEO4J_URI"):
        spec.open()


def test_ray_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what Python does when ray is absent
    with pytest.raises(ConfigError, match=r"pip install 'kgrec\[ray\]'"):
        require_ray()


def test_train_init_from_with_ray_is_refused(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--store", f"embedded:{tmp_path}", "--model-dir", str(tmp_path / "m"),
                 "--init-from", str(tmp_path / "old"), "--ray", "127.0.0.1:1"])
    assert code == 1
    assert "--init-from is not supported with --ray" in capsys.readouterr().err


def test_candidates_store_settings_fail_before_ray(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "recommender.json").write_text('{"model_version": "v"}')
    monkeypatch.delenv("NEO4J_URI", raising=False)
    with pytest.raises(ConfigError, match="set NEO4J_URI"):
        ray_candidates(tmp_path / "model", StoreSpec.from_environment("neo4j"),
                       parquet=tmp_path / "c")
