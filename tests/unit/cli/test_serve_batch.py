"""Micro-batched ``/recommend``: every request gets exactly what it would get alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np
import pytest

pytest.importorskip("starlette")

from kgrec.cli.serve_batch import RecommendBatcher  # noqa: E402
from kgrec.errors import UnknownIdError  # noqa: E402
from kgrec.ranking.recommender import Recommender  # noqa: E402
from tests.shops import HOMERS, MUGS, RUNNERS, SHOES, make_recommender, shop_graph  # noqa: E402


@pytest.fixture(scope="module")
def rec() -> Recommender:
    return make_recommender(epochs=20).fit(shop_graph(with_new_items=False))


def _gather(batcher: RecommendBatcher, rec: Recommender,
            requests: Sequence[tuple[list[str], dict[str, object]]]) -> list[object]:
    async def run() -> list[object]:
        return await asyncio.gather(*[batcher.recommend(rec, users, **kw)  # type: ignore[arg-type]
                                      for users, kw in requests], return_exceptions=True)
    return asyncio.run(run())


PLAIN: dict[str, object] = {"k": 5, "candidates": None, "exclude_seen": True}


@pytest.mark.parametrize("window_s", [0.002, 0.0])
def test_batched_answers_equal_single_answers(rec: Recommender, window_s: float) -> None:
    requests = [([u], PLAIN) for u in RUNNERS + HOMERS] + [([RUNNERS[0], HOMERS[1]], PLAIN)]
    batcher = RecommendBatcher(window_s=window_s)
    answers = _gather(batcher, rec, requests)
    for (users, kw), (ids, scores) in zip(requests, answers, strict=True):  # type: ignore[misc]
        want_ids, want_scores = rec.recommend(users, **kw)  # type: ignore[arg-type]
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
    assert batcher.requests == len(requests)
    assert batcher.calls < len(requests)   # they were batched


def test_requests_with_other_settings_are_scored_apart(rec: Recommender) -> None:
    requests = [([RUNNERS[0]], PLAIN),
                ([RUNNERS[0]], {"k": 2, "candidates": None, "exclude_seen": True}),
                ([HOMERS[0]], {"k": 5, "candidates": None, "exclude_seen": False}),
                ([HOMERS[1]], {"k": 3, "candidates": SHOES[:2] + MUGS[:2],
                               "exclude_seen": True})]
    batcher = RecommendBatcher()
    answers = _gather(batcher, rec, requests)
    for (users, kw), (ids, scores) in zip(requests, answers, strict=True):  # type: ignore[misc]
        want_ids, want_scores = rec.recommend(users, **kw)  # type: ignore[arg-type]
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
    assert batcher.calls == len(requests)


def test_an_unknown_id_fails_only_its_own_request(rec: Recommender) -> None:
    requests = [([RUNNERS[0]], PLAIN), (["ghost-1"], PLAIN), ([HOMERS[0]], PLAIN)]
    answers = _gather(RecommendBatcher(), rec, requests)
    assert isinstance(answers[1], UnknownIdError)
    with pytest.raises(UnknownIdError) as e:
        rec.recommend(["ghost-1"], k=5)
    assert str(answers[1]) == str(e.value)
    for n in (0, 2):
        ids, _ = answers[n]  # type: ignore[misc]
        np.testing.assert_array_equal(ids, rec.recommend(requests[n][0], k=5)[0])


def test_a_lone_request_does_not_wait_for_the_window(rec: Recommender) -> None:
    batcher = RecommendBatcher(window_s=1.0)

    async def one_by_one() -> float:
        start = time.perf_counter()
        for u in RUNNERS[:3]:
            await batcher.recommend(rec, [u], **PLAIN)  # type: ignore[arg-type]
        return time.perf_counter() - start

    assert asyncio.run(one_by_one()) < 1.0   # three requests, not one window each
    assert batcher.calls == 3


def test_a_negative_window_is_refused(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from kgrec.cli import main

    monkeypatch.setenv("KGREC_SERVE_TOKEN", "t" * 32)
    assert main(["serve", "--model-dir", "m", "--store", "embedded:s",
                 "--batch-window-ms", "-1"]) == 1
    assert "ConfigError: --batch-window-ms must be >= 0" in capsys.readouterr().err
