from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec.encoders import CategoricalEncoder, MultiValueEncoder, NumericEncoder, TableEncoder
from kgrec.errors import DataError, EncoderError, NotFittedError


# -- categorical ---------------------------------------------------------------------------
def test_categorical_fit_transform_unknown_and_missing() -> None:
    enc = CategoricalEncoder().fit(["b", "a", "b", None, " a "])
    assert enc.vocabulary_ == ["a", "b"] or enc.vocabulary_ == ["b", "a"]
    assert enc.vocabulary_[0] in {"a", "b"} and enc.n_features_out_ == 3
    out = enc.transform(["a", "b", "zzz", None, np.nan, pd.NA, ""])
    assert out.dtype == np.int64
    assert out[:2].tolist() == [enc.index_["a"], enc.index_["b"]]
    assert out[2:].tolist() == [0, 0, 0, 0, 0]


def test_categorical_orders_by_frequency_then_value() -> None:
    enc = CategoricalEncoder().fit(["c", "b", "b", "a", "c", "c"])
    assert enc.vocabulary_ == ["c", "b", "a"]
    assert enc.counts_.tolist() == [3, 2, 1]


def test_categorical_min_frequency_and_max_categories() -> None:
    values = ["a"] * 5 + ["b"] * 3 + ["c"]
    assert CategoricalEncoder(min_frequency=2).fit(values).vocabulary_ == ["a", "b"]
    assert CategoricalEncoder(max_categories=1).fit(values).vocabulary_ == ["a"]
    assert CategoricalEncoder(min_frequency=2).fit(values).transform(["c"]).tolist() == [0]


def test_categorical_lowercase_and_non_str() -> None:
    enc = CategoricalEncoder(lowercase=True).fit(["Bosch", 7])
    assert enc.transform(["BOSCH", "7", 7]).tolist() == [enc.index_["bosch"], enc.index_["7"],
                                                         enc.index_["7"]]


def test_categorical_inverse_transform() -> None:
    enc = CategoricalEncoder().fit(["x", "y"])
    assert enc.inverse_transform(enc.transform(["y", "q"])) == ["y", None]
    with pytest.raises(DataError, match=r"indices must lie in \[0, 3\)"):
        enc.inverse_transform([5])


def test_categorical_series_index_is_ignored() -> None:
    s = pd.Series(["a", "b"], index=[10, 20])
    assert CategoricalEncoder().fit(s).transform(s).shape == (2,)


@pytest.mark.parametrize("kwargs", [{"min_frequency": 0}, {"max_categories": 0}])
def test_categorical_bad_params_raise_in_fit(kwargs) -> None:
    enc = CategoricalEncoder(**kwargs)  # constructor only stores
    with pytest.raises(ValueError, match="must be >= 1"):
        enc.fit(["a"])


@pytest.mark.parametrize("bad,match", [
    (pd.DataFrame({"a": [1]}), "got a DataFrame"),
    ("abc", "not a single string"),
    (np.zeros((2, 2)), "1-D"),
])
def test_bad_value_containers_raise(bad, match) -> None:
    with pytest.raises(DataError, match=match):
        CategoricalEncoder().fit(bad)


# -- multi-value -----------------------------------------------------------------------------
def test_multi_value_multi_hot_with_unknown_bucket() -> None:
    enc = MultiValueEncoder().fit(["steel|plastic", "steel", "wood | steel", None])
    assert enc.vocabulary_ == ["steel", "plastic", "wood"]
    out = enc.transform(["steel|wood", "glass", None, "plastic|glass|plastic"])
    assert out.dtype == np.float32 and out.shape == (4, 4)
    assert out.tolist() == [[0, 1, 0, 1], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0]]


def test_multi_value_indices_for_embedding_bag() -> None:
    enc = MultiValueEncoder().fit(["a|b", "b"])
    idx, offsets = enc.transform_indices(["a|b", "zz", None, "b|zz"])
    b, a = enc.index_["b"], enc.index_["a"]
    assert offsets.tolist() == [0, 2, 3, 4]
    assert idx.tolist() == [a, b, 0, 0, b]


def test_multi_value_custom_separator_and_empty_separator() -> None:
    assert MultiValueEncoder(sep=";").fit(["a;b"]).vocabulary_ == ["a", "b"]
    with pytest.raises(ValueError, match="sep"):
        MultiValueEncoder(sep="").fit(["a"])


# -- numeric -----------------------------------------------------------------------------------
def test_numeric_robust_scaling_clip_and_missing_flag() -> None:
    enc = NumericEncoder(clip=3.0).fit([1, 2, 3, 4, 5, None, "n/a", np.inf])
    assert enc.median_ == 3.0 and enc.scale_ == 2.0
    out = enc.transform([3, 5, 1000, -1000, None, "abc", np.nan, -np.inf])
    assert out.dtype == np.float32 and out.shape == (8, 2)
    assert out[:, 0].tolist() == [0.0, 1.0, 3.0, -3.0, 0.0, 0.0, 0.0, 0.0]
    assert out[:, 1].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_numeric_zero_iqr_falls_back_to_std_then_one() -> None:
    assert NumericEncoder().fit([1, 1, 1, 1, 9]).scale_ == pytest.approx(np.std([1, 1, 1, 1, 9]))
    assert NumericEncoder().fit([2, 2]).scale_ == 1.0


def test_numeric_all_missing_warns_and_encodes_missing(caplog) -> None:
    enc = NumericEncoder().fit([None, np.nan])
    assert "no numeric values" in caplog.text
    assert enc.transform([5.0]).tolist() == [[5.0, 0.0]]


def test_numeric_without_flag() -> None:
    assert NumericEncoder(missing_flag=False).fit([1, 2]).transform([None]).shape == (1, 1)


def test_numeric_bad_clip() -> None:
    with pytest.raises(ValueError, match="clip"):
        NumericEncoder(clip=0).fit([1])


# -- contract: not fitted, save/load ---------------------------------------------------------
@pytest.mark.parametrize("enc", [CategoricalEncoder(), MultiValueEncoder(), NumericEncoder()])
def test_transform_before_fit_raises_with_fix(enc) -> None:
    with pytest.raises(NotFittedError, match=r"not fitted yet\. Call fit\(\)"):
        enc.transform(["a"])
    with pytest.raises(NotFittedError, match="not fitted"):
        enc.save("/nonexistent")


@pytest.mark.parametrize("enc,values", [
    (CategoricalEncoder(min_frequency=1, lowercase=True), ["A", "b", "b", None, "é ü 🍵"]),
    (MultiValueEncoder(sep="|"), ["x|y", "y", None, "z|x"]),
    (NumericEncoder(clip=2.5), [1.0, 2.0, None, 10.0]),
])
def test_save_load_round_trip(tmp_path: Path, enc, values) -> None:
    enc.fit(values)
    enc.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"encoder.json", "arrays.npy"}
    loaded = type(enc).load(tmp_path)
    assert loaded.get_params() == enc.get_params()
    np.testing.assert_array_equal(loaded.transform(values + ["new"]),
                                  enc.transform(values + ["new"]))


def test_load_via_base_class_dispatches(tmp_path: Path) -> None:
    from kgrec.encoders.attributes import _AttributeEncoder

    NumericEncoder().fit([1, 2]).save(tmp_path)
    assert isinstance(_AttributeEncoder.load(tmp_path), NumericEncoder)


def test_load_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="No readable saved encoder"):
        CategoricalEncoder.load(tmp_path / "nothing")


def test_load_wrong_type_raises(tmp_path: Path) -> None:
    NumericEncoder().fit([1]).save(tmp_path)
    with pytest.raises(EncoderError, match="holds a 'NumericEncoder', not a CategoricalEncoder"):
        CategoricalEncoder.load(tmp_path)


def test_load_other_format_version_raises(tmp_path: Path) -> None:
    CategoricalEncoder().fit(["a"]).save(tmp_path)
    doc = (tmp_path / "encoder.json").read_text().replace('"format_version": 1',
                                                           '"format_version": 99')
    (tmp_path / "encoder.json").write_text(doc)
    with pytest.raises(EncoderError, match="format_version 99"):
        CategoricalEncoder.load(tmp_path)


def test_load_damaged_state_raises(tmp_path: Path) -> None:
    CategoricalEncoder().fit(["a", "b"]).save(tmp_path)
    np.save(tmp_path / "arrays.npy", np.array([1]))
    with pytest.raises(EncoderError, match="damaged"):
        CategoricalEncoder.load(tmp_path)


def test_saved_arrays_need_no_pickle(tmp_path: Path) -> None:
    CategoricalEncoder().fit(["a"]).save(tmp_path)
    np.load(tmp_path / "arrays.npy", allow_pickle=False)


# -- table -------------------------------------------------------------------------------------
def _table() -> pd.DataFrame:
    return pd.DataFrame({"brand": ["Bosch", "Makita", "Bosch"], "price": [10.0, None, 30.0],
                         "material": ["steel|plastic", "steel", None]})


def test_table_encoder_fit_transform_save_load(tmp_path: Path) -> None:
    enc = TableEncoder({"brand": "categorical", "price": "numeric",
                        "material": MultiValueEncoder(min_frequency=2)}).fit(_table())
    out = enc.transform(_table())
    assert set(out) == {"brand", "price", "material"}
    assert out["brand"].tolist() == [1, 2, 1]
    assert out["material"].shape == (3, 2)  # only "steel" reaches min_frequency
    enc.save(tmp_path)
    loaded = TableEncoder.load(tmp_path)
    for col, arr in loaded.transform(_table()).items():
        np.testing.assert_array_equal(arr, out[col])


def test_table_encoder_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError, match="TableEncoder is not fitted"):
        TableEncoder({"brand": "categorical"}).transform(_table())
    with pytest.raises(NotFittedError, match="fit it before save"):
        TableEncoder({"brand": "categorical"}).save(tmp_path)
    with pytest.raises(DataError, match=r"columns \['colour'\] are not in the table"):
        TableEncoder({"colour": "categorical"}).fit(_table())
    with pytest.raises(DataError, match="expects a DataFrame"):
        TableEncoder({"brand": "categorical"}).fit([1, 2])
    with pytest.raises(ValueError, match="kind must be one of"):
        TableEncoder({"brand": "embedding"}).fit(_table())
    with pytest.raises(EncoderError, match="No readable saved TableEncoder"):
        TableEncoder.load(tmp_path / "none")
