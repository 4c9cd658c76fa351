"""The TF-IDF item encoder: fitted vocabulary, unit rows, saved state, memo."""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.encoders.lexical import LexicalEncoder, row_dots

TEXTS = ["red hex bolt m8", "blue hex bolt m6", "red paint can", "paint brush blue"]


def test_rows_are_unit_tfidf_over_the_fitted_vocabulary() -> None:
    enc = LexicalEncoder().fit(TEXTS)
    assert enc.terms_.tolist() == ["blue", "bolt", "hex", "paint", "red"]  # in >= 2 texts
    rows = enc.transform(["red hex bolt m8", "zzz unknown words"]).toarray()
    assert np.linalg.norm(rows[0]) == pytest.approx(1.0)
    assert not rows[1].any()  # no known term: a zero row, not an error
    assert rows[0][[0, 3]].tolist() == [0.0, 0.0]  # neither "blue" nor "paint"


def test_saved_state_maps_texts_exactly_as_the_fitted_encoder() -> None:
    enc = LexicalEncoder().fit(TEXTS)
    again = LexicalEncoder.from_state(enc.terms_.tolist(), enc.idf_)
    new = ["red bolt", "blue paint brush"]
    np.testing.assert_array_equal(again.transform(new).toarray(), enc.transform(new).toarray())


def test_each_text_is_vectorised_once_and_order_is_kept() -> None:
    enc = LexicalEncoder().fit(TEXTS)
    first = enc.transform(TEXTS).toarray()
    np.testing.assert_array_equal(enc.transform(TEXTS[::-1]).toarray(), first[::-1])
    assert len(enc._memo) == len(TEXTS)


def test_a_catalogue_without_shared_words_gives_zero_rows() -> None:
    enc = LexicalEncoder().fit(["alpha", "beta"])
    assert len(enc.terms_) == 0
    assert enc.transform(["alpha"]).nnz == 0


def test_unfitted_encoder_raises_with_the_fix() -> None:
    with pytest.raises(ValueError, match="call fit"):
        LexicalEncoder().transform(["x"])


def test_row_dots_are_cosines_of_the_chosen_rows() -> None:
    rows = LexicalEncoder().fit(TEXTS).transform(TEXTS)
    dots = row_dots(rows, np.array([0, 0, 2]), rows, np.array([0, 1, 3]))
    full = (rows @ rows.T).toarray()
    np.testing.assert_allclose(dots, [full[0, 0], full[0, 1], full[2, 3]], rtol=1e-6)
