from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from kgrec.encoders import CachedTextEncoder, EmbeddingCache, HashingEncoder, _io
from kgrec.errors import EncoderError
from tests.fakes import CountingEncoder

TEXTS = ["red drill", "blue saw", "green tea", "red drill"]


def _shards(cache: EmbeddingCache, enc: CountingEncoder) -> list[Path]:
    return sorted(cache.folder(enc.identity()).glob("shard-*.npz"))


def test_second_run_is_all_hits_and_identical(tmp_path: Path, counting: CountingEncoder) -> None:
    first = CachedTextEncoder(counting, EmbeddingCache(tmp_path)).encode(TEXTS)
    assert counting.encoded == ["red drill", "blue saw", "green tea"]  # duplicates once
    again = CachedTextEncoder(counting, EmbeddingCache(tmp_path))  # fresh cache object: disk
    out = again.encode(TEXTS)
    assert (again.last_hits, again.last_misses) == (3, 0)
    assert len(counting.calls) == 1
    np.testing.assert_array_equal(out, first)
    np.testing.assert_array_equal(out, counting.inner.encode(TEXTS))


def test_only_new_texts_are_encoded(tmp_path: Path, counting: CountingEncoder) -> None:
    cached = CachedTextEncoder(counting, EmbeddingCache(tmp_path))
    cached.encode(["a b", "c d"])
    out = cached.encode(["c d", "e f", "a b"])
    assert counting.calls[-1] == ["e f"]
    assert (cached.last_hits, cached.last_misses) == (2, 1)
    np.testing.assert_array_equal(out, counting.inner.encode(["c d", "e f", "a b"]))


def test_other_identity_does_not_share_vectors(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    CachedTextEncoder(HashingEncoder(dim=8), cache).encode(["x"])
    other = CachedTextEncoder(HashingEncoder(dim=16), cache)
    assert other.encode(["x"]).shape == (1, 16)
    assert other.last_misses == 1


def test_lookup_reports_found_mask(tmp_path: Path) -> None:
    enc = HashingEncoder(dim=8)
    cache = EmbeddingCache(tmp_path)
    cache.store(enc.identity(), ["a"], enc.encode(["a"]))
    vecs, found = cache.lookup(enc.identity(), ["b", "a"])
    assert found.tolist() == [False, True]
    np.testing.assert_array_equal(vecs[0], 0.0)
    assert cache.count(enc.identity()) == 1


def test_corrupt_shard_is_rebuilt_with_warning(tmp_path: Path, counting: CountingEncoder,
                                               caplog: pytest.LogCaptureFixture) -> None:
    cache = EmbeddingCache(tmp_path)
    CachedTextEncoder(counting, cache).encode(TEXTS)
    (shard,) = _shards(cache, counting)
    data = bytearray(shard.read_bytes())
    data[-200] ^= 0xFF  # flip a byte inside the vectors
    shard.write_bytes(bytes(data))
    fresh = CachedTextEncoder(counting, EmbeddingCache(tmp_path))
    with caplog.at_level(logging.WARNING, logger="kgrec.encoders.cache"):
        out = fresh.encode(TEXTS)
    assert "corrupt" in caplog.text and str(shard) in caplog.text
    assert fresh.last_misses == 3 and len(counting.calls) == 2
    np.testing.assert_array_equal(out, counting.inner.encode(TEXTS))
    assert not shard.exists() and len(_shards(cache, counting)) == 1


@pytest.mark.parametrize("damage", [
    lambda b: b[: len(b) // 2],  # truncated
    lambda b: b"",  # empty
    lambda b: b"not a zip file at all",  # garbage
])
def test_truncated_or_garbage_shard_is_never_trusted(tmp_path: Path, counting: CountingEncoder,
                                                     damage, caplog) -> None:
    CachedTextEncoder(counting, EmbeddingCache(tmp_path)).encode(TEXTS)
    (shard,) = _shards(EmbeddingCache(tmp_path), counting)
    shard.write_bytes(damage(shard.read_bytes()))
    fresh = CachedTextEncoder(counting, EmbeddingCache(tmp_path))
    with caplog.at_level(logging.WARNING):
        fresh.encode(TEXTS)
    assert fresh.last_misses == 3 and "corrupt" in caplog.text


def test_shard_with_wrong_dim_is_rejected(tmp_path: Path, counting: CountingEncoder,
                                          caplog) -> None:
    ident = counting.identity()
    cache = EmbeddingCache(tmp_path)
    cache.store(ident, ["a"], counting.inner.encode(["a"]))
    (shard,) = _shards(cache, counting)
    with np.load(shard) as z:
        keys, vecs = z["keys"], z["vectors"]
    bad = vecs[:, :4].copy()  # consistent checksum, wrong shape
    from kgrec.encoders.cache import _checksum

    shard.write_bytes(_io.npz_bytes(keys=keys, vectors=bad,
                                    checksum=np.array([_checksum(keys, bad)], dtype="S64")))
    with caplog.at_level(logging.WARNING):
        _, found = EmbeddingCache(tmp_path).lookup(ident, ["a"])
    assert not found.any() and "shape" in caplog.text


def test_crash_mid_write_leaves_no_visible_shard(tmp_path: Path, counting: CountingEncoder,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cache = EmbeddingCache(tmp_path)
    CachedTextEncoder(counting, cache).encode(["kept"])

    def crash(src: str, dst: str) -> None:
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        CachedTextEncoder(counting, cache).encode(["lost"])
    monkeypatch.undo()
    folder = cache.folder(counting.identity())
    assert not list(folder.glob(_io.TMP_PREFIX + "*"))  # the temp file was removed
    fresh = CachedTextEncoder(counting, EmbeddingCache(tmp_path))
    fresh.encode(["kept", "lost"])
    assert (fresh.last_hits, fresh.last_misses) == (1, 1)


def test_leftover_temp_files_are_ignored_and_compacted_away(tmp_path: Path,
                                                            counting: CountingEncoder) -> None:
    cache = EmbeddingCache(tmp_path)
    CachedTextEncoder(counting, cache).encode(["a"])
    folder = cache.folder(counting.identity())
    leftover = folder / f"{_io.TMP_PREFIX}abc.npz"
    leftover.write_bytes(b"half a shard")  # as a killed process would leave it
    fresh = CachedTextEncoder(counting, EmbeddingCache(tmp_path))
    fresh.encode(["a"])
    assert fresh.last_hits == 1
    EmbeddingCache(tmp_path).compact(counting.identity())
    assert not leftover.exists()


def test_shards_are_merged_past_max_shards(tmp_path: Path, counting: CountingEncoder) -> None:
    cache = EmbeddingCache(tmp_path, max_shards=3)
    cached = CachedTextEncoder(counting, cache)
    for i in range(5):
        cached.encode([f"text {i}"])
    assert len(_shards(cache, counting)) <= 3
    fresh = CachedTextEncoder(counting, EmbeddingCache(tmp_path))
    fresh.encode([f"text {i}" for i in range(5)])
    assert fresh.last_misses == 0


def test_identity_json_mismatch_discards_shards(tmp_path: Path, counting: CountingEncoder,
                                                caplog) -> None:
    cache = EmbeddingCache(tmp_path)
    CachedTextEncoder(counting, cache).encode(["a"])
    (cache.folder(counting.identity()) / "identity.json").write_text('{"name": "other"}')
    with caplog.at_level(logging.WARNING):
        _, found = EmbeddingCache(tmp_path).lookup(counting.identity(), ["a"])
    assert not found.any() and "another encoder" in caplog.text


def test_store_rejects_wrong_shape(tmp_path: Path) -> None:
    enc = HashingEncoder(dim=8)
    with pytest.raises(EncoderError, match=r"shape \(2, 8\).*expected \(1, 8\)"):
        EmbeddingCache(tmp_path).store(enc.identity(), ["a"], np.zeros((2, 8)))


def test_store_rejects_non_finite(tmp_path: Path) -> None:
    enc = HashingEncoder(dim=2)
    with pytest.raises(EncoderError, match="non-finite"):
        EmbeddingCache(tmp_path).store(enc.identity(), ["a"], np.array([[np.nan, 1.0]]))


def test_identity_without_dim_raises(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="positive int 'dim'"):
        EmbeddingCache(tmp_path).lookup({"name": "x"}, ["a"])


def test_unwritable_directory_raises_encoder_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    enc = HashingEncoder(dim=4)
    with pytest.raises(EncoderError, match="Cannot write the embedding cache"):
        EmbeddingCache(blocker).store(enc.identity(), ["a"], enc.encode(["a"]))


def test_fully_cached_run_never_calls_encoder(tmp_path: Path) -> None:
    class Exploding(CountingEncoder):
        def encode(self, texts, *, batch_size=64, show_progress=False):  # type: ignore[override]
            raise AssertionError("model used although everything was cached")

    warm = CountingEncoder()
    CachedTextEncoder(warm, EmbeddingCache(tmp_path)).encode(TEXTS)
    out = CachedTextEncoder(Exploding(), EmbeddingCache(tmp_path)).encode(TEXTS)
    assert out.shape == (4, 16)


def test_lone_surrogate_text_can_be_cached(tmp_path: Path) -> None:
    cached = CachedTextEncoder(HashingEncoder(dim=4), EmbeddingCache(tmp_path))
    cached.encode(["bad \ud800 text"])
    cached.encode(["bad \ud800 text"])
    assert cached.last_hits == 1
