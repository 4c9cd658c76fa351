import numpy as np
import pytest

from kgrec.encoders import HashingEncoder
from kgrec.errors import EncoderError


def test_shape_dtype_and_unit_norm() -> None:
    v = HashingEncoder(dim=32).encode(["red drill", "blue saw blade", "drill"])
    assert v.shape == (3, 32) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)


def test_deterministic_across_instances() -> None:
    a = HashingEncoder().encode(["stainless steel drill"])
    b = HashingEncoder().encode(["stainless steel drill"])
    np.testing.assert_array_equal(a, b)


def test_shared_words_are_closer_than_unrelated() -> None:
    v = HashingEncoder(dim=256).encode([
        "stainless steel cordless drill 18V",
        "cordless drill, stainless steel",
        "organic green tea bags",
    ])
    assert v[0] @ v[1] > 0.5
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_empty_and_punctuation_only_text_give_zero_vector() -> None:
    v = HashingEncoder().encode(["", "!!! ..."])
    np.testing.assert_array_equal(v, 0.0)


def test_empty_list_gives_empty_array() -> None:
    assert HashingEncoder(dim=8).encode([]).shape == (0, 8)


def test_unicode_and_emoji_do_not_crash() -> None:
    v = HashingEncoder().encode(["чай 🍵 茶 tea", "\ud800 broken surrogate"])
    assert np.isfinite(v).all()


def test_identity_has_cache_fields() -> None:
    ident = HashingEncoder(dim=16).identity()
    assert {"name", "files_hash", "pooling", "max_length", "dim"} <= set(ident)
    assert ident["dim"] == 16


@pytest.mark.parametrize("kwargs,match", [({"dim": 1}, "dim"), ({"ngram_max": 0}, "ngram_max")])
def test_bad_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        HashingEncoder(**kwargs)


def test_non_str_text_raises() -> None:
    with pytest.raises(EncoderError, match="not str"):
        HashingEncoder().encode(["ok", 5])  # type: ignore[list-item]
