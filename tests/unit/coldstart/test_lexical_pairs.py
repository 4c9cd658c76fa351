"""TF-IDF pair features (``lex_mean``, ``lex_max``): hand-computed values on the tiny shop of
``test_pairs``, and the same values through every path (per pair, matrix, item tables, with
users/items appended, selected rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from kgrec.coldstart.item_tables import item_tables
from kgrec.coldstart.pairs import (
    build_pair_inputs,
    feature_names,
    pair_feature_matrix,
    pair_features,
    stable_keys,
)
from kgrec.encoders.lexical import LexicalEncoder
from tests.unit.coldstart.test_pairs import BRAND, tiny_tensors

KEYS = {"Item": stable_keys("Item", np.array(["i0", "i1", "i2"])),
        "Brand": stable_keys("Brand", np.array(["A", "B"]))}
# unit TF-IDF rows over 2 terms: item 0 = (1, 0), item 1 = (0.6, 0.8), item 2 = (0, 1)
LEX = sp.csr_matrix(np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32))
NAMES = feature_names([BRAND], lexical=True)
LEX_MEAN, LEX_MAX = NAMES.index("lex_mean"), NAMES.index("lex_max")


def lex_inputs(history: torch.Tensor, lex: sp.csr_matrix = LEX, tables: bool = False):  # type: ignore[no-untyped-def]
    tab = item_tables(tiny_tensors(), [BRAND], KEYS, text_dim=2, lex=lex) if tables else None
    return build_pair_inputs(tiny_tensors(), history, [BRAND], KEYS, text_dim=2, lex=lex,
                             tables=tab)


def test_lexical_columns_hold_the_mean_and_max_tfidf_cosine() -> None:
    inp = lex_inputs(torch.tensor([[0, 0], [0, 2]]))  # user 0 took items 0 and 2
    f = pair_features(inp, torch.tensor([0, 1]), torch.tensor([1, 1]))
    assert f.shape[1] == len(NAMES) == inp.n_features
    # cos(item1, item0) = 0.6, cos(item1, item2) = 0.8
    assert float(f[0, LEX_MEAN]) == pytest.approx(0.7)
    assert float(f[0, LEX_MAX]) == pytest.approx(0.8)
    assert float(f[1, LEX_MEAN]) == float(f[1, LEX_MAX]) == 0.0  # user 1 has no history


@pytest.mark.parametrize("tables", [False, True])
def test_every_path_gives_the_same_lexical_features(tables: bool) -> None:
    history = torch.tensor([[0, 0, 1], [0, 2, 1]])
    inp = lex_inputs(history, tables=tables)
    users, items = torch.tensor([1, 0]), torch.tensor([2, 0, 1])
    mat = pair_feature_matrix(inp, users, items)
    flat = pair_features(inp, users.repeat_interleave(3), items.repeat(2)).reshape(2, 3, -1)
    torch.testing.assert_close(mat, flat)
    torch.testing.assert_close(flat, pair_features(lex_inputs(history), users.repeat_interleave(
        3), items.repeat(2)).reshape(2, 3, -1))  # tables or not: the same numbers
    more = inp.with_items(lex_inputs(history))
    torch.testing.assert_close(pair_features(more, torch.tensor([0]), torch.tensor([4])),
                               pair_features(inp, torch.tensor([0]), torch.tensor([1])))
    sub = inp.select(torch.tensor([0]), torch.tensor([1]))
    torch.testing.assert_close(pair_features(sub, torch.tensor([0]), torch.tensor([0])),
                               pair_features(inp, torch.tensor([0]), torch.tensor([1])))
    other = lex_inputs(torch.tensor([[1], [2]]))  # a second transform: user 1 took item 2
    both = inp.with_users(other)
    user_side = [i for i, n in enumerate(NAMES) if n not in ("item_log_degree",
                                                             "item_has_history")]
    torch.testing.assert_close(  # the item side (degree) is inp's items'
        pair_features(both, torch.tensor([3]), torch.tensor([1]))[:, user_side],
        pair_features(other, torch.tensor([1]), torch.tensor([1]))[:, user_side])


def test_texts_through_the_encoder_give_word_overlap_cosines() -> None:
    enc = LexicalEncoder().fit(["steel hex bolt", "steel hex nut", "blue paint", "red paint"])
    lex = enc.transform(["steel hex bolt", "steel hex nut", "blue paint"])
    inp = lex_inputs(torch.tensor([[0], [2]]), lex=lex)  # user 0 took the paint
    f = pair_features(inp, torch.tensor([0, 0]), torch.tensor([0, 1]))
    # "bolt" is in one text only (min_df 2 drops it): the bolt and the nut are the same words
    assert float(f[1, LEX_MAX]) == 0.0  # candidate 1 (nut) shares no word with the paint
    assert float(f[0, LEX_MAX]) == 0.0
    inp = lex_inputs(torch.tensor([[0], [0]]), lex=lex)  # user 0 took the bolt
    f = pair_features(inp, torch.tensor([0]), torch.tensor([1]))
    assert float(f[0, LEX_MAX]) == pytest.approx(1.0, abs=1e-6)


def test_a_model_with_lexical_features_saves_and_loads_them(tmp_path: Path) -> None:
    from kgrec.coldstart import ColdStartModel
    from tests.shops import shop_graph, small_model

    graph = shop_graph()
    model = small_model(lexical_features=True, epochs=5).fit(graph)
    assert model.lexical_ is not None and "mug" in model.lexical_.terms_.tolist()
    assert model.head_.n_pair == len(feature_names(
        model.pair_attr_types_, bool(model.pair_profile_types_),
        cooc=model.config_.cooc_features, lexical=True, history=model.config_.history_features,
        recency=model.config_.recency_features))
    loaded = ColdStartModel.load(model.save(tmp_path / "m"), num_threads=1)
    assert loaded.lexical_ is not None
    np.testing.assert_array_equal(loaded.lexical_.terms_, model.lexical_.terms_)
    np.testing.assert_array_equal(loaded.score_matrix(loaded.transform(graph)),
                                  model.score_matrix(model.transform(graph)))


def test_a_model_dir_without_its_tfidf_vocabulary_is_a_model_error(tmp_path: Path) -> None:
    import json

    from kgrec.coldstart import ColdStartModel
    from kgrec.errors import ModelError
    from tests.shops import shop_graph, small_model

    path = small_model(lexical_features=True, epochs=2).fit(shop_graph()).save(tmp_path / "m")
    vocab = json.loads((path / "vocab.json").read_text())
    del vocab["lexical.terms"]
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "manifest.json").unlink()  # an older layout without checksums
    with pytest.raises(ModelError, match="no TF-IDF vocabulary"):
        ColdStartModel.load(path, num_threads=1)
