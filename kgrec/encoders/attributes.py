"""Attribute encoders: item/user columns -> GNN input features, fitted on training data only.

Why our own (not sklearn's OneHotEncoder): the GNN needs index 0 reserved for "unknown or
missing" (an embedding row every cold item can use), ``|``-joined multi-values as
EmbeddingBag input, and a save format without pickle (JSON + ``.npy``) that can be inspected.

The scikit-learn contract applies: the constructor stores arguments, ``fit`` validates and
returns ``self``, fitted state ends in ``_``, ``transform`` before ``fit`` raises
:class:`~kgrec.errors.NotFittedError`.

Values are normalised the same way in ``fit`` and ``transform``: ``None``/NaN/``pd.NA`` and blank
strings are missing; other non-strings are turned into ``str``; surrounding whitespace is
stripped (and case folded with ``lowercase=True``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from kgrec.encoders._io import atomic_write_bytes, atomic_write_json
from kgrec.errors import DataError, EncoderError, NotFittedError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_STATE_FILE = "encoder.json"
_ARRAY_FILE = "arrays.npy"


def _as_series(values: Any, what: str) -> pd.Series:
    if isinstance(values, pd.DataFrame):
        raise DataError(f"{what} expects one column (a Series or 1-D sequence), got a DataFrame "
                        f"with columns {list(values.columns)}; select one column")
    if isinstance(values, str | bytes):
        raise DataError(f"{what} expects a sequence of values, not a single string")
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise DataError(f"{what} expects 1-D values, got shape {arr.shape}")
    return pd.Series(arr, dtype=object)


def _normalise(values: pd.Series, lowercase: bool) -> pd.Series:
    """Strings with ``""`` for missing values."""
    obj = values.astype(object)
    na = pd.isna(obj).to_numpy(dtype=bool) if len(obj) else np.zeros(0, dtype=bool)
    out = pd.Series(np.where(na, "", obj), dtype=object).astype(str).str.strip()
    return out.str.lower() if lowercase else out


class _AttributeEncoder:
    """Shared parts: fitted check, params, save/load (JSON + .npy, no pickle)."""

    _params: ClassVar[tuple[str, ...]] = ()
    _registry: ClassVar[dict[str, type[_AttributeEncoder]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _AttributeEncoder._registry[cls.__name__] = cls

    def get_params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self._params}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_features_out_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            name = type(self).__name__
            raise NotFittedError(
                f"This {name} is not fitted yet. Call fit() on the training data first, or "
                f"restore a fitted one with {name}.load(directory).")

    def _state(self) -> tuple[dict[str, Any], np.ndarray]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any], array: np.ndarray) -> None:
        raise NotImplementedError

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``encoder.json`` and ``arrays.npy`` into ``directory`` (atomically each).

        Raises:
            NotFittedError: the encoder is not fitted.
            EncoderError: the directory cannot be written.
        """
        self._check_fitted()
        path = Path(directory)
        state, array = self._state()
        doc = {"type": type(self).__name__, "format_version": FORMAT_VERSION,
               "params": self.get_params(), "state": state}
        try:
            import io

            buf = io.BytesIO()
            np.save(buf, array, allow_pickle=False)
            atomic_write_bytes(path / _ARRAY_FILE, buf.getvalue())
            atomic_write_json(path / _STATE_FILE, doc)
        except OSError as e:
            raise EncoderError(f"Cannot save {type(self).__name__} to {str(path)!r}: {e}") from e
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Any:
        """Restore an encoder written by :meth:`save` (any subclass when called on the base).

        Raises:
            EncoderError: files are missing or unreadable, of another encoder type, or of
                another format version (the message names the directory).
        """
        path = Path(directory)
        try:
            doc = json.loads((path / _STATE_FILE).read_text(encoding="utf-8"))
            array = np.load(path / _ARRAY_FILE, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise EncoderError(f"No readable saved encoder in {str(path)!r} ({e}); save one "
                               "with encoder.save(directory) first") from e
        kind = doc.get("type") if isinstance(doc, dict) else None
        target = _AttributeEncoder._registry.get(str(kind))
        if target is None or not issubclass(target, cls):
            raise EncoderError(f"{str(path)!r} holds a {kind!r}, not a {cls.__name__}")
        if doc.get("format_version") != FORMAT_VERSION:
            raise EncoderError(f"{str(path)!r} has format_version {doc.get('format_version')!r};"
                               f" this kgrec reads {FORMAT_VERSION}. Re-fit and save it again.")
        try:
            obj = target(**doc["params"])
            obj._set_state(doc["state"], array)
        except (KeyError, TypeError, ValueError) as e:
            raise EncoderError(f"Saved encoder in {str(path)!r} is damaged: {e!r}") from e
        return obj


class CategoricalEncoder(_AttributeEncoder):
    """One value per row -> an index; 0 is "unknown or missing".

    Args:
        min_frequency: Values seen fewer times in ``fit`` go to the unknown bucket (default 1).
        max_categories: Keep at most this many most frequent values (default: all).
        lowercase: Fold case before matching (default False).

    Shapes:
        ``transform(values)``: ``(n,)`` int64 in ``[0, n_features_out_)``.
    """

    _params: ClassVar[tuple[str, ...]] = ("min_frequency", "max_categories", "lowercase")

    def __init__(self, min_frequency: int = 1, max_categories: int | None = None,
                 lowercase: bool = False) -> None:
        self.min_frequency = min_frequency
        self.max_categories = max_categories
        self.lowercase = lowercase

    def _check_params(self) -> None:
        if self.min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {self.min_frequency}")
        if self.max_categories is not None and self.max_categories < 1:
            raise ValueError(f"max_categories must be >= 1 or None, got {self.max_categories}")

    def _tokens(self, values: Any) -> pd.Series:
        return _normalise(_as_series(values, type(self).__name__), self.lowercase)

    def fit(self, values: Any) -> CategoricalEncoder:
        """Learn the vocabulary from training values.

        Raises:
            DataError: ``values`` is not 1-D.
            ValueError: ``min_frequency`` or ``max_categories`` < 1.
        """
        self._check_params()
        counts = self._count(self._tokens(values))
        self._set_state({"vocabulary": counts.index.tolist()}, counts.to_numpy(dtype=np.int64))
        return self

    def _count(self, tokens: pd.Series) -> pd.Series:
        counts = tokens[tokens != ""].value_counts()
        counts = counts[counts >= self.min_frequency]
        order = sorted(zip(-counts.to_numpy(), counts.index.tolist(), strict=True))  # stable
        counts = pd.Series([-c for c, _ in order], index=[v for _, v in order], dtype=np.int64)
        if self.max_categories is not None:
            counts = counts.iloc[: self.max_categories]
        return counts

    def _state(self) -> tuple[dict[str, Any], np.ndarray]:
        return {"vocabulary": list(self.vocabulary_)}, self.counts_

    def _set_state(self, state: dict[str, Any], array: np.ndarray) -> None:
        vocab = [str(v) for v in state["vocabulary"]]
        if len(array) != len(vocab):
            raise ValueError("vocabulary and counts differ in length")
        self.vocabulary_ = vocab
        self.counts_ = np.asarray(array, dtype=np.int64)
        self.index_ = {v: i + 1 for i, v in enumerate(vocab)}
        self.n_features_out_ = len(vocab) + 1

    def transform(self, values: Any) -> np.ndarray:
        """Indices of ``values`` (0 for unknown or missing).

        Raises:
            NotFittedError: called before ``fit``/``load``.
            DataError: ``values`` is not 1-D.
        """
        self._check_fitted()
        mapped = self._tokens(values).map(self.index_)
        return mapped.fillna(0).to_numpy(dtype=np.int64)

    def fit_transform(self, values: Any) -> np.ndarray:
        return self.fit(values).transform(values)

    def inverse_transform(self, indices: Sequence[int] | np.ndarray) -> list[str | None]:
        """Values of ``indices`` (``None`` for 0).

        Raises:
            NotFittedError: called before ``fit``/``load``.
            DataError: an index is outside ``[0, n_features_out_)``.
        """
        self._check_fitted()
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= self.n_features_out_):
            raise DataError(f"indices must lie in [0, {self.n_features_out_}), got "
                            f"{int(idx.min())}..{int(idx.max())}")
        return [None if i == 0 else self.vocabulary_[i - 1] for i in idx.tolist()]


class MultiValueEncoder(CategoricalEncoder):
    """Several values per row, joined by ``sep`` (default ``|``) -> multi-hot or index lists.

    Args:
        sep: Separator between values (default ``"|"``, the canonical ``MULTI_SEP``).
        min_frequency, max_categories, lowercase: As for :class:`CategoricalEncoder`, counted
            over single values.

    Shapes:
        ``transform(values)``: ``(n, n_features_out_)`` float32 multi-hot; column 0 is set
        when a row is missing or holds an unknown value.
        ``transform_indices(values)``: ``(indices, offsets)`` int64, the input format of
        ``torch.nn.EmbeddingBag``; a row without known values contributes ``[0]``.
    """

    _params: ClassVar[tuple[str, ...]] = ("sep", "min_frequency", "max_categories", "lowercase")

    def __init__(self, sep: str = "|", min_frequency: int = 1, max_categories: int | None = None,
                 lowercase: bool = False) -> None:
        super().__init__(min_frequency=min_frequency, max_categories=max_categories,
                         lowercase=lowercase)
        self.sep = sep

    def _exploded(self, values: Any) -> pd.Series:
        """One row per (input row, distinct value), index = input row; missing rows -> ""."""
        if not self.sep:
            raise ValueError("sep must be a non-empty string")
        tokens = self._tokens(values)
        parts = tokens.str.split(self.sep, regex=False).explode().astype(str).str.strip()
        return parts[~parts.reset_index().duplicated().to_numpy()]

    def fit(self, values: Any) -> MultiValueEncoder:
        """Learn the vocabulary of single values.

        Raises:
            DataError: ``values`` is not 1-D.
            ValueError: ``min_frequency`` or ``max_categories`` < 1, or ``sep`` is empty.
        """
        self._check_params()
        counts = self._count(self._exploded(values))
        self._set_state({"vocabulary": counts.index.tolist()}, counts.to_numpy(dtype=np.int64))
        return self

    def _row_indices(self, values: Any) -> tuple[np.ndarray, np.ndarray, int]:
        parts = self._exploded(values)
        n = len(self._tokens(values))
        rows = parts.index.to_numpy(dtype=np.int64)
        idx = parts.map(self.index_).fillna(0).to_numpy(dtype=np.int64)
        return rows, idx, n

    def transform(self, values: Any) -> np.ndarray:
        """Multi-hot rows (see Shapes).

        Raises:
            NotFittedError: called before ``fit``/``load``.
            DataError: ``values`` is not 1-D.
        """
        self._check_fitted()
        rows, idx, n = self._row_indices(values)
        out = np.zeros((n, self.n_features_out_), dtype=np.float32)
        out[rows, idx] = 1.0
        return out

    def transform_indices(self, values: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, offsets)`` for ``torch.nn.EmbeddingBag`` (see Shapes).

        Known values of a row come first in input order; unknown/missing values map to 0,
        which is kept only when the row has no known value.

        Raises:
            NotFittedError: called before ``fit``/``load``.
            DataError: ``values`` is not 1-D.
        """
        self._check_fitted()
        rows, idx, n = self._row_indices(values)
        frame = pd.DataFrame({"row": rows, "idx": idx})
        known = frame[frame["idx"] > 0]
        empty = np.setdiff1d(np.arange(n), known["row"].to_numpy())
        frame = pd.concat([known, pd.DataFrame({"row": empty, "idx": 0})], ignore_index=True)
        frame = frame.sort_values("row", kind="stable")
        counts = np.bincount(frame["row"].to_numpy(dtype=np.int64), minlength=n)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return frame["idx"].to_numpy(dtype=np.int64), offsets


class NumericEncoder(_AttributeEncoder):
    """Robust scaling: ``clip((x - median) / IQR, -clip, clip)``, missing -> 0 plus a flag.

    Values that are missing, non-numeric (``"abc"``) or infinite count as missing. When the
    training IQR is 0 the standard deviation is used, and when that is 0 too, 1.

    Args:
        clip: Bound of the scaled value (default 5.0).
        missing_flag: Add a second column that is 1.0 where the value was missing (default True).

    Shapes:
        ``transform(values)``: ``(n, 2)`` float32 ``[scaled, missing]`` (``(n, 1)`` without the
        flag).
    """

    _params: ClassVar[tuple[str, ...]] = ("clip", "missing_flag")

    def __init__(self, clip: float = 5.0, missing_flag: bool = True) -> None:
        self.clip = clip
        self.missing_flag = missing_flag

    @staticmethod
    def _numbers(values: Any) -> np.ndarray:
        s = _as_series(values, "NumericEncoder")
        x = pd.to_numeric(s.astype(object), errors="coerce").to_numpy(dtype=np.float64, copy=True,
                                                                        na_value=np.nan)
        x[~np.isfinite(x)] = np.nan
        return x

    def fit(self, values: Any) -> NumericEncoder:
        """Learn median and scale from training values.

        Raises:
            DataError: ``values`` is not 1-D.
            ValueError: ``clip`` <= 0.
        """
        if not self.clip > 0:
            raise ValueError(f"clip must be > 0, got {self.clip}")
        x = self._numbers(values)
        x = x[~np.isnan(x)]
        if len(x) == 0:
            logger.warning("NumericEncoder.fit got no numeric values; every value will encode "
                           "as missing (median 0, scale 1)")
            median, scale = 0.0, 1.0
        else:
            q25, median, q75 = np.percentile(x, [25, 50, 75])
            scale = float(q75 - q25) or float(np.std(x)) or 1.0
        self._set_state({}, np.array([median, scale, len(x)], dtype=np.float64))
        return self

    def _state(self) -> tuple[dict[str, Any], np.ndarray]:
        return {"median": self.median_, "scale": self.scale_}, np.array(
            [self.median_, self.scale_, self.n_seen_], dtype=np.float64)

    def _set_state(self, state: dict[str, Any], array: np.ndarray) -> None:
        arr = np.asarray(array, dtype=np.float64)
        if arr.shape != (3,) or not np.isfinite(arr).all() or arr[1] <= 0:
            raise ValueError(f"numeric state must be finite [median, scale>0, n], got {arr}")
        self.median_, self.scale_, self.n_seen_ = float(arr[0]), float(arr[1]), int(arr[2])
        self.n_features_out_ = 2 if self.missing_flag else 1

    def transform(self, values: Any) -> np.ndarray:
        """Scaled values and the missing flag (see Shapes).

        Raises:
            NotFittedError: called before ``fit``/``load``.
            DataError: ``values`` is not 1-D.
        """
        self._check_fitted()
        x = self._numbers(values)
        missing = np.isnan(x)
        scaled = np.clip((x - self.median_) / self.scale_, -self.clip, self.clip)
        scaled[missing] = 0.0
        cols = [scaled, missing.astype(np.float64)] if self.missing_flag else [scaled]
        return np.stack(cols, axis=1).astype(np.float32)

    def fit_transform(self, values: Any) -> np.ndarray:
        return self.fit(values).transform(values)


_KINDS: dict[str, type[_AttributeEncoder]] = {
    "categorical": CategoricalEncoder, "multi": MultiValueEncoder, "numeric": NumericEncoder,
}


class TableEncoder:
    """Per-column attribute encoders for a DataFrame.

    Args:
        columns: Column name -> ``"categorical"``, ``"multi"``, ``"numeric"`` or an unfitted
            encoder instance (to set its options).

    ``transform`` returns ``{column: array}`` with each encoder's output shape.
    """

    def __init__(self, columns: Mapping[str, str | _AttributeEncoder]) -> None:
        self.columns = columns

    def __repr__(self) -> str:
        return f"TableEncoder({dict(self.columns)!r})"

    def _check_frame(self, frame: Any) -> pd.DataFrame:
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"TableEncoder expects a DataFrame, got {type(frame).__name__}")
        absent = [c for c in self.columns if c not in frame.columns]
        if absent:
            raise DataError(f"columns {absent} are not in the table (has {list(frame.columns)})")
        return frame

    def fit(self, frame: pd.DataFrame) -> TableEncoder:
        """Fit one encoder per column on the training table.

        Raises:
            DataError: ``frame`` is not a DataFrame or lacks a column.
            ValueError: a column's kind is not categorical/multi/numeric.
        """
        frame = self._check_frame(frame)
        encoders: dict[str, _AttributeEncoder] = {}
        for col, spec in self.columns.items():
            if isinstance(spec, _AttributeEncoder):
                enc = type(spec)(**spec.get_params())
            elif spec in _KINDS:
                enc = _KINDS[spec]()
            else:
                raise ValueError(f"column {col!r}: kind must be one of {sorted(_KINDS)} or an "
                                 f"encoder, got {spec!r}")
            encoders[col] = enc.fit(frame[col])  # type: ignore[attr-defined]
        self.encoders_ = encoders
        return self

    def transform(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """``{column: encoded array}``.

        Raises:
            NotFittedError: called before ``fit``/``load``.
            DataError: ``frame`` is not a DataFrame or lacks a column.
        """
        if not hasattr(self, "encoders_"):
            raise NotFittedError("This TableEncoder is not fitted yet. Call fit(train_table) "
                                 "first, or TableEncoder.load(directory).")
        frame = self._check_frame(frame)
        return {c: e.transform(frame[c]) for c, e in self.encoders_.items()}  # type: ignore

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``table.json`` and one sub-folder per column.

        Raises:
            NotFittedError: not fitted. EncoderError: the directory cannot be written.
        """
        if not hasattr(self, "encoders_"):
            raise NotFittedError("This TableEncoder is not fitted yet; fit it before save().")
        path = Path(directory)
        names = list(self.encoders_)
        for i, col in enumerate(names):
            self.encoders_[col].save(path / f"col{i:03d}")
        try:
            atomic_write_json(path / "table.json",
                              {"format_version": FORMAT_VERSION, "columns": names})
        except OSError as e:
            raise EncoderError(f"Cannot save TableEncoder to {str(path)!r}: {e}") from e
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> TableEncoder:
        """Restore a table encoder written by :meth:`save`.

        Raises:
            EncoderError: files are missing, unreadable or of another format version.
        """
        path = Path(directory)
        try:
            doc = json.loads((path / "table.json").read_text(encoding="utf-8"))
            names = [str(c) for c in doc["columns"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise EncoderError(f"No readable saved TableEncoder in {str(path)!r} ({e!r})") from e
        if doc.get("format_version") != FORMAT_VERSION:
            raise EncoderError(f"{str(path)!r} has format_version {doc.get('format_version')!r};"
                               f" this kgrec reads {FORMAT_VERSION}")
        encoders = {c: _AttributeEncoder.load(path / f"col{i:03d}") for i, c in enumerate(names)}
        obj = cls(dict(encoders))
        obj.encoders_ = encoders
        return obj
