import numpy as np
import pytest

from kgrec.encoders import (
    BertTextEncoder,
    CachedTextEncoder,
    EmbeddingCache,
    HashingEncoder,
    TextEncoder,
)
from kgrec.encoders.text import check_texts, dedupe, identity_key, l2_normalize
from kgrec.errors import EncoderError


def _fake_model_dir(tmp):
    # Python 3.11's runtime-checkable isinstance() reads properties, so ``dim`` needs a config
    (tmp / "config.json").write_text('{"hidden_size": 4}')
    (tmp / "model.safetensors").write_bytes(b"")
    (tmp / "vocab.txt").write_text("[PAD]\n")
    return tmp


@pytest.mark.parametrize("factory", [
    lambda tmp: HashingEncoder(),
    lambda tmp: BertTextEncoder(model_dir=_fake_model_dir(tmp)),
    lambda tmp: CachedTextEncoder(HashingEncoder(), EmbeddingCache(tmp)),
])
def test_implementations_satisfy_protocol(factory, tmp_path) -> None:
    assert isinstance(factory(tmp_path), TextEncoder)


def test_check_texts_rejects_single_string() -> None:
    with pytest.raises(EncoderError, match="not one string"):
        check_texts("abc")


def test_check_texts_names_position_of_non_str() -> None:
    with pytest.raises(EncoderError, match=r"first at position 1 .*compose_item_texts"):
        check_texts(["a", None, 3])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_check_texts_rejects_bad_batch_size(bad) -> None:
    with pytest.raises(EncoderError, match="batch_size"):
        check_texts(["a"], bad)


def test_dedupe_inverse_rebuilds_input() -> None:
    texts = ["b", "a", "b", "c", "a"]
    unique, inverse = dedupe(texts)
    assert unique == ["b", "a", "c"]
    assert [unique[i] for i in inverse] == texts


def test_identity_key_is_order_insensitive_and_value_sensitive() -> None:
    a = {"name": "m", "dim": 3}
    assert identity_key(a) == identity_key({"dim": 3, "name": "m"})
    assert identity_key(a) != identity_key({"name": "m", "dim": 4})
    assert len(identity_key(a)) == 16


def test_l2_normalize_keeps_zero_rows() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    out = l2_normalize(x)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
