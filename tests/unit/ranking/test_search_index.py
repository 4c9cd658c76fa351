"""Tokeniser (any script), the BM25 + dense index, filters and adding SKUs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kgrec.encoders import HashingEncoder
from kgrec.errors import ConfigError, DataError, UnknownIdError, ValidationError
from kgrec.ranking.search_index import SearchFilters, SearchIndex, cjk_segmenter, tokenize

SEGMENTERS = ["bigram", "jieba"]


def test_tokenize_english_lowercases_and_drops_stop_words() -> None:
    assert tokenize("The 3D Printing Filament, for PLA!") == ["3d", "printing", "filament",
                                                              "pla"]


@pytest.mark.parametrize("seg", SEGMENTERS)
def test_tokenize_chinese_and_mixed_scripts(seg: str) -> None:
    toks = tokenize("Apple 无线蓝牙耳机 Pro", segmenter=seg)
    assert toks[0] == "apple" and toks[-1] == "pro"
    assert {"蓝牙", "耳机"} <= set(toks)
    if seg == "bigram":
        assert toks[1:-1] == ["无线", "线蓝", "蓝牙", "牙耳", "耳机"]


def test_default_segmenter_is_jieba_when_installed() -> None:
    assert cjk_segmenter() == "jieba"  # the search extra is installed in dev/CI


def test_unknown_segmenter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="segmenter must be"):
        tokenize("x", segmenter="mecab")


def _items(rows: list[tuple[str, str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item_id", "title", "brand", "category", "price"])


def _index(items: pd.DataFrame, **kw: object) -> SearchIndex:
    enc = HashingEncoder(dim=64)
    texts = (items["title"] + " " + items["brand"] + " " + items["category"]).tolist()
    return SearchIndex(**kw).fit(items, enc.encode(texts), enc)  # type: ignore[arg-type]


SHOP = _items([
    ("a", "red running shoe", "Acme", "Sports > Shoes", 60.0),
    ("b", "blue running shoe", "Acme", "Sports > Shoes", 70.0),
    ("c", "red coffee mug", "Zeta", "Home > Kitchen", 9.0),
    ("d", "garden hose", "Zeta", "Sports > ShoesX", float("nan")),
])


def test_bm25_matches_the_lucene_formula() -> None:
    idx = _index(SHOP)
    scores = idx.lexical_scores(["hose"])[0]
    n, df, k1, b = 4, 1, 1.2, 0.75
    lengths = [len(t) for t in idx._tokens]
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    # Lucene >= 8 drops BM25's constant (k1 + 1) numerator (same ranking)
    want = idf * 1 / (1 + k1 * (1 - b + b * lengths[3] / np.mean(lengths)))
    assert scores[3] == pytest.approx(want, rel=1e-5)
    assert (scores[:3] == 0).all()


def test_dense_scores_are_cosines() -> None:
    idx = _index(SHOP)
    d = idx.dense_scores(["red running shoe Acme Sports > Shoes"])[0]
    assert d.argmax() == 0 and d[0] == pytest.approx(1.0, abs=1e-5)


def test_filters_brand_category_subtree_price() -> None:
    idx = _index(SHOP)
    ids = lambda m: idx.item_ids_[m].tolist()  # noqa: E731
    assert ids(idx.mask(filters=SearchFilters(brands=("Zeta",)))) == ["c", "d"]
    # "Sports > Shoes" is a subtree: "Sports > ShoesX" is not in it
    assert ids(idx.mask(filters=SearchFilters(category="Sports > Shoes"))) == ["a", "b"]
    assert ids(idx.mask(filters=SearchFilters(category="Sports"))) == ["a", "b", "d"]
    assert ids(idx.mask(filters=SearchFilters(min_price=10, max_price=65))) == ["a"]
    assert ids(idx.mask(["b", "c"], SearchFilters(brands=("Acme",)))) == ["b"]
    with pytest.raises(UnknownIdError, match="'zz'"):
        idx.mask(["zz"])


def test_filter_dict_errors_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="use brands, category"):
        SearchFilters.coerce({"colour": "red"})
    with pytest.raises(ConfigError, match="swap them"):
        SearchFilters.coerce({"min_price": 5, "max_price": 1})
    assert SearchFilters.coerce({"brands": "Acme"}).brands == ("Acme",)


def test_add_items_makes_a_new_sku_findable_by_its_title() -> None:
    idx = _index(SHOP)
    new = _items([("n", "Trailblazer X9 waterproof shoe", "Acme", "Sports > Shoes", 80.0)])
    enc = idx.encoder_
    idx.add_items(new, enc.encode(["Trailblazer X9 waterproof shoe Acme Sports > Shoes"]))
    assert idx.item_ids_.tolist() == ["a", "b", "c", "d", "n"]
    lex = idx.lexical_scores(["Trailblazer X9 waterproof shoe"])[0]
    assert lex.argmax() == 4
    assert idx.matched_terms("trailblazer shoe", 4) == {"title": ("trailblazer", "shoe")}
    with pytest.raises(DataError, match="already in the search index"):
        idx.add_items(new, enc.encode(["x"]))


def test_fit_rejects_misaligned_vectors() -> None:
    with pytest.raises(ValidationError, match="one row per item"):
        SearchIndex().fit(SHOP, np.zeros((2, 8)), HashingEncoder(dim=8))


def _chinese_catalogue() -> pd.DataFrame:
    """A generated Chinese catalogue: brand x product x colour, one category per product."""
    products = {"蓝牙耳机": "数码 > 耳机", "机械键盘": "数码 > 键盘", "保温杯": "家居 > 水杯",
                "跑步鞋": "运动 > 鞋"}
    brands, colours = ["小米", "华为", "联想"], ["黑色", "白色", "红色"]
    rows = []
    for p, (prod, cat) in enumerate(products.items()):
        for bi, brand in enumerate(brands):
            for ci, colour in enumerate(colours):
                rows.append((f"sku-{p}{bi}{ci}", f"{brand}{colour}{prod}", brand, cat,
                             float(10 + p)))
    return _items(rows)


@pytest.mark.parametrize("seg", SEGMENTERS)
def test_chinese_catalogue_search(seg: str) -> None:
    items = _chinese_catalogue()
    idx = _index(items, segmenter=seg)
    lex = idx.lexical_scores(["华为蓝牙耳机"])[0]
    top = idx.item_ids_[np.argsort(-lex, kind="stable")[:3]].tolist()
    # the three Huawei earphones (any colour) beat every other product and brand
    assert set(top) == {"sku-010", "sku-011", "sku-012"}
    # an exact title is the unique best match
    for row in (0, 17, 35):
        assert idx.lexical_scores([items["title"][row]])[0].argmax() == row
    assert "title" in idx.matched_terms("白色保温杯", 19)
