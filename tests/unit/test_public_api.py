"""Guards the public surface: everything in ``kgrec.__all__`` exists and nothing is missing."""

from __future__ import annotations

import kgrec
from kgrec import errors


def test_all_names_exist_and_are_sorted_uniquely() -> None:
    for name in kgrec.__all__:
        assert hasattr(kgrec, name), name
    assert len(set(kgrec.__all__)) == len(kgrec.__all__)


def test_every_error_is_exported_and_rooted_at_kgrec_error() -> None:
    exported = set(kgrec.__all__)
    for name in dir(errors):
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, errors.KgrecError):
            assert name in exported, name
    assert issubclass(errors.UnknownIdError, KeyError)
    assert issubclass(errors.NotFittedError, ValueError)
    assert "ColdStartWarning" in exported


def test_unknown_id_error_lists_ids() -> None:
    err = errors.UnknownIdError("Item", [f"sku-{i}" for i in range(7)], hint="check the SKU")
    text = str(err)
    assert "7 unknown Item id(s)" in text and "'sku-0'" in text and "(and 2 more)" in text
    assert text.endswith("check the SKU")
    assert err.ids[0] == "sku-0"


def test_lazy_exports_match_all() -> None:
    assert set(kgrec.__all__) == set(kgrec._EXPORTS) | {"__version__"}
