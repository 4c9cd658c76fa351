"""``kgrec serve``'s app through FastAPI's test client, on a real saved model of the shop.

No mock of kgrec: the app loads the model folder from an embedded store exactly as
``kgrec serve`` does, and every error body is compared with what the Python API raises.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from kgrec.cli import main  # noqa: E402
from kgrec.cli.serve import (  # noqa: E402
    check_auth,
    is_loopback,
    model_loader,
    single_malloc_arena,
)
from kgrec.cli.serve_app import ModelHolder, create_app  # noqa: E402
from kgrec.cli.serve_schemas import MAX_K, MAX_USERS  # noqa: E402
from kgrec.errors import (  # noqa: E402
    ColdStartWarning,
    ConfigError,
    DataError,
    UnknownIdError,
    ValidationError,
)
from tests.serving import TOKEN, saved_shop_model  # noqa: E402
from tests.shops import HOMERS, MUGS, NEW_MUG, NEW_SHOE, RUNNERS, SHOES, new_items  # noqa: E402

AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, ModelHolder]:
    spec, model_dir = saved_shop_model(tmp_path_factory.mktemp("serve"))
    return spec, model_dir, ModelHolder(model_loader(model_dir, spec))


@pytest.fixture()
def client(served: tuple[str, str, ModelHolder]) -> Iterator[TestClient]:
    app = create_app(served[2], token=TOKEN, max_body_bytes=LIMIT)
    with TestClient(app, headers=AUTH, raise_server_exceptions=False) as c:
        yield c


def _api_error(fn, *args, **kw) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The body the service must send for what the Python API raises on the same input."""
    with pytest.raises(Exception) as e:
        fn(*args, **kw)
    return {"error": type(e.value).__name__, "message": str(e.value)}


def _new_item_rows() -> list[dict[str, object]]:
    frame = new_items()
    return [{k: (None if v != v else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


# -- health, auth, docs ----------------------------------------------------------------------
def test_health_says_model_version_and_graph_counts(client: TestClient,
                                                    served: tuple[str, str, ModelHolder]
                                                    ) -> None:
    r = client.get("/health", headers={"Authorization": ""})   # no token needed
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == served[2].current.rec.model_version_
    assert body["graph"]["User"] == len(RUNNERS) + len(HOMERS)
    assert body["graph"]["Item"] == len(SHOES) + len(MUGS)
    assert body["graph"]["interactions"] == 5 * (len(RUNNERS) + len(HOMERS))


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}",
                                    TOKEN])
def test_every_model_endpoint_needs_the_token(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header or ""}
    for method, path, body in [("post", "/recommend", {"user_ids": [RUNNERS[0]]}),
                               ("post", "/score", {"user_ids": [RUNNERS[0]],
                                                   "item_ids": [SHOES[0]]}),
                               ("post", "/reload", None),
                               ("get", f"/explain?user_id={RUNNERS[0]}&item_id={SHOES[0]}",
                                None)]:
        r = client.request(method, path, json=body, headers=headers)
        assert r.status_code == 401, path
        assert r.json()["error"] == "AuthError"
        assert r.headers["www-authenticate"] == "Bearer"


def test_openapi_lists_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/rank-new-items", "/recommend-new-user", "/score", "/explain",
            "/health", "/reload"} <= set(paths)
    assert client.get("/docs").status_code == 200


# -- recommend -------------------------------------------------------------------------------
def test_recommend_gives_runners_shoes_and_homers_mugs(client: TestClient) -> None:
    r = client.post("/recommend", json={"user_ids": [RUNNERS[0], HOMERS[0]], "k": 2})
    assert r.status_code == 200
    runner, homer = r.json()["results"]
    assert runner["user_id"] == RUNNERS[0] and homer["user_id"] == HOMERS[0]  # as sent
    assert [i["item_id"][:4] for i in runner["items"]] == ["shoe", "shoe"]
    assert [i["item_id"][:3] for i in homer["items"]] == ["mug", "mug"]


def test_recommend_equals_the_python_api(client: TestClient,
                                         served: tuple[str, str, ModelHolder]) -> None:
    rec = served[2].current.rec
    ids, scores = rec.recommend([RUNNERS[1]], k=5, candidates=SHOES + MUGS[:2],
                                exclude_seen=False)
    r = client.post("/recommend", json={"user_ids": [RUNNERS[1]], "k": 5,
                                        "candidates": SHOES + MUGS[:2], "exclude_seen": False})
    got = r.json()["results"][0]["items"]
    assert [i["item_id"] for i in got] == list(ids[0])
    assert [i["score"] for i in got] == pytest.approx(list(scores[0]))


def test_unknown_ids_are_404_with_the_api_message(client: TestClient,
                                                  served: tuple[str, str, ModelHolder]) -> None:
    rec = served[2].current.rec
    r = client.post("/recommend", json={"user_ids": ["nobody@example.com", RUNNERS[0]]})
    assert r.status_code == 404
    assert r.json() == _api_error(rec.recommend, ["nobody@example.com", RUNNERS[0]])
    r = client.post("/recommend", json={"user_ids": [RUNNERS[0]], "candidates": ["no-sku"]})
    assert r.status_code == 404
    assert r.json() == _api_error(rec.recommend, [RUNNERS[0]], candidates=["no-sku"])
    assert r.json()["error"] == UnknownIdError.__name__


@pytest.mark.parametrize(("body", "field"), [
    ({"user_ids": [RUNNERS[0]], "k": 0}, "body.k"),
    ({"user_ids": [RUNNERS[0]], "k": MAX_K + 1}, "body.k"),
    ({"user_ids": []}, "body.user_ids"),
    ({"user_ids": ["u"] * (MAX_USERS + 1)}, "body.user_ids"),
    ({"user_ids": ["x" * 257]}, "body.user_ids.0"),
    ({"user_ids": [RUNNERS[0]], "surprise": 1}, "body.surprise"),
    ({"user_ids": RUNNERS[0]}, "body.user_ids"),
    ({}, "body.user_ids"),
])
def test_bad_bodies_are_422_naming_the_field(client: TestClient, body: dict[str, object],
                                             field: str) -> None:
    r = client.post("/recommend", json=body)
    assert r.status_code == 422
    assert r.json()["error"] == "ValidationError"
    assert r.json()["message"].startswith(field + ":")


def test_malformed_json_is_422_not_500(client: TestClient) -> None:
    r = client.post("/recommend", content=b'{"user_ids": [', headers={
        "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "ValidationError"


# -- new SKUs, new users, score, explain -------------------------------------------------------
def test_rank_new_items_puts_the_new_shoe_first_for_runners(client: TestClient) -> None:
    r = client.post("/rank-new-items", json={"items": _new_item_rows(),
                                             "user_ids": RUNNERS[:3] + HOMERS[:3], "k": 1})
    assert r.status_code == 200, r.text
    top = {row["user_id"]: row["item_id"] for row in r.json()["rows"]}
    assert top == {**{u: NEW_SHOE for u in RUNNERS[:3]}, **{u: NEW_MUG for u in HOMERS[:3]}}
    by_item = client.post("/rank-new-items", json={"items": _new_item_rows(), "k": 3,
                                                   "by": "item"}).json()
    assert {row["item_id"] for row in by_item["rows"]} == {NEW_SHOE, NEW_MUG}
    assert all(row["user_id"].startswith("u_") for row in by_item["rows"])  # pseudonyms


def test_rank_new_items_errors_match_the_api(client: TestClient,
                                             served: tuple[str, str, ModelHolder]) -> None:
    rec = served[2].current.rec
    dup = _new_item_rows()[:1] * 2
    r = client.post("/rank-new-items", json={"items": dup, "user_ids": [RUNNERS[0]]})
    assert r.status_code == 422
    frame = new_items().iloc[[0, 0]]
    assert r.json() == _api_error(rec.rank_new_items, frame, user_ids=[RUNNERS[0]])
    assert r.json()["error"] == ValidationError.__name__
    known = [{"item_id": SHOES[0], "title": "again"}]
    r = client.post("/rank-new-items", json={"items": known})
    assert r.status_code == 422 and r.json()["error"] == DataError.__name__
    assert "already in the graph" in r.json()["message"]
    r = client.post("/rank-new-items", json={"items": [{"item_id": "x", "attributes": {
        "brand": "Acme"}}]})
    assert r.status_code == 422 and "item fields" in r.json()["message"]


def test_rank_new_items_reports_cold_skus(client: TestClient) -> None:
    with pytest.warns(ColdStartWarning):
        r = client.post("/rank-new-items", json={"items": [{"item_id": "bare"}],
                                                 "user_ids": [RUNNERS[0]]})
    assert r.status_code == 200 and r.json()["cold_items"] == ["bare"]


def test_new_user_from_a_click_gets_that_segment(client: TestClient,
                                                 served: tuple[str, str, ModelHolder]) -> None:
    r = client.post("/recommend-new-user", json={"profile": {"segment": "runner"},
                                                 "clicks": [SHOES[0]], "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["cold"]
    assert [i["item_id"][:4] for i in body["items"]] == ["shoe"] * 3
    assert SHOES[0] not in [i["item_id"] for i in body["items"]]   # seen excluded
    rec = served[2].current.rec
    r = client.post("/recommend-new-user", json={"clicks": ["no-sku"]})
    assert r.status_code == 404
    assert r.json() == _api_error(rec.recommend_for_new_user, {}, clicks=["no-sku"])
    r = client.post("/recommend-new-user", json={"profile": {"user_id": "x"}})
    assert r.status_code == 422 and "not a profile value" in r.json()["message"]
    with pytest.warns(ColdStartWarning):
        r = client.post("/recommend-new-user", json={"profile": {}, "k": 2})
    assert r.status_code == 200 and r.json()["cold"] is True


def test_score_equals_the_api_and_broadcasts(client: TestClient,
                                             served: tuple[str, str, ModelHolder]) -> None:
    rec = served[2].current.rec
    r = client.post("/score", json={"user_ids": [RUNNERS[0]], "item_ids": [SHOES[1], MUGS[1]]})
    assert r.status_code == 200
    assert r.json()["scores"] == pytest.approx(
        rec.score(RUNNERS[0], [SHOES[1], MUGS[1]]).tolist())
    bad = {"user_ids": RUNNERS[:2], "item_ids": SHOES[:3]}
    r = client.post("/score", json=bad)
    assert r.status_code == 422
    assert r.json() == _api_error(rec.score, RUNNERS[:2], SHOES[:3])


def test_explain_get_and_post_agree_and_show_the_pseudonym(client: TestClient) -> None:
    got = client.get("/explain", params={"user_id": RUNNERS[0], "item_id": SHOES[5],
                                         "max_paths": 2})
    assert got.status_code == 200, got.text
    posted = client.post("/explain", json={"user_id": RUNNERS[0], "item_id": SHOES[5],
                                           "max_paths": 2})
    assert got.json() == posted.json()
    body = got.json()
    assert body["user_id"].startswith("u_") and body["user_id"] != RUNNERS[0]
    assert 1 <= len(body["paths"]) <= 2
    r = client.get("/explain", params={"user_id": RUNNERS[0], "item_id": "no-sku"})
    assert r.status_code == 404 and r.json()["error"] == "UnknownIdError"


# -- limits, logs ------------------------------------------------------------------------------
def test_body_over_the_limit_is_413(client: TestClient) -> None:
    big = {"user_ids": [RUNNERS[0]], "candidates": ["x" * 200] * 400}   # ~ 80 KB > 64 KiB
    r = client.post("/recommend", json=big)
    assert r.status_code == 413 and r.json()["error"] == "RequestError"

    def chunks() -> Iterator[bytes]:   # no Content-Length: the streamed body is counted
        yield b'{"user_ids": ["' + b"a" * 40_000
        yield b"b" * 40_000 + b'"]}'

    r = client.post("/recommend", content=chunks(), headers={"content-type":
                                                             "application/json"})
    assert r.status_code == 413


def test_no_raw_user_id_or_token_in_logs(client: TestClient,
                                         caplog: pytest.LogCaptureFixture) -> None:
    raw = "alice.private@example.com"
    with caplog.at_level(logging.DEBUG):
        client.post("/recommend", json={"user_ids": [raw]})
        client.get("/explain", params={"user_id": raw, "item_id": SHOES[0]})
        client.post("/recommend", json={"user_ids": [RUNNERS[0]], "k": 1})
    assert "POST /recommend 404" in caplog.text and "GET /explain 404" in caplog.text
    assert raw not in caplog.text and RUNNERS[0] not in caplog.text
    assert TOKEN not in caplog.text


# -- reload ------------------------------------------------------------------------------------
def test_reload_swaps_in_a_new_model_and_a_failed_one_keeps_serving(
        tmp_path: Path) -> None:
    spec, model_dir = saved_shop_model(tmp_path, seed=0)
    holder = ModelHolder(model_loader(model_dir, spec))
    app = create_app(holder, token=TOKEN)
    with TestClient(app, headers=AUTH, raise_server_exceptions=False) as c:
        first = c.get("/health").json()["model_version"]
        saved_shop_model(tmp_path, seed=1)          # `kgrec train` writes a new version
        r = c.post("/reload")
        assert r.status_code == 200
        assert r.json() == {"previous_version": first,
                            "model_version": holder.current.rec.model_version_}
        second = r.json()["model_version"]
        assert second != first
        assert c.get("/health").json()["reloads"] == 1
        shutil.rmtree(model_dir)                    # the next load fails
        r = c.post("/reload")
        assert r.status_code == 409 and "still serving" in r.json()["message"]
        assert c.get("/health").json()["model_version"] == second
        assert c.post("/recommend", json={"user_ids": [RUNNERS[0]]}).status_code == 200


# -- the command -------------------------------------------------------------------------------
def test_loopback_check() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    assert not is_loopback("example.com")


def test_auth_rules() -> None:
    assert check_auth(TOKEN, False, "0.0.0.0") == TOKEN
    assert check_auth(None, True, "127.0.0.1") is None
    with pytest.raises(ConfigError, match="KGREC_SERVE_TOKEN"):
        check_auth(None, False, "127.0.0.1")
    with pytest.raises(ConfigError, match="without a token"):
        check_auth(None, True, "0.0.0.0")
    with pytest.raises(ConfigError, match="shorter than 16"):
        check_auth("short", False, "127.0.0.1")


def test_one_malloc_arena_unless_the_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert single_malloc_arena() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert single_malloc_arena() is True


def test_serve_refuses_to_start_without_a_token(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KGREC_SERVE_TOKEN", raising=False)
    assert main(["serve", "--model-dir", "m", "--store", "embedded:s"]) == 1
    assert "ConfigError: set KGREC_SERVE_TOKEN" in capsys.readouterr().err
    assert main(["serve", "--model-dir", "m", "--host", "0.0.0.0", "--no-auth"]) == 1
    assert "refusing to serve on 0.0.0.0" in capsys.readouterr().err


# -- never a 500 -------------------------------------------------------------------------------
def _fuzz_values():  # type: ignore[no-untyped-def]
    from hypothesis import strategies as st

    ids = st.sampled_from(RUNNERS[:2] + SHOES[:2] + ["", "nobody", "u_0", "a|b", "\x00",
                                                     "x" * 300, "shoe-new"])
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 2000),
                        st.floats(allow_nan=True), ids, st.text(max_size=5))
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(
            ["user_ids", "item_ids", "k", "candidates", "exclude_seen", "items", "item_id",
             "title", "brand", "price", "attributes", "profile", "clicks", "by", "user_id",
             "max_paths", "category", "segment"]), inner, max_size=6)), max_leaves=12)


@pytest.mark.parametrize("path", ["/recommend", "/rank-new-items", "/recommend-new-user",
                                  "/score", "/explain"])
def test_random_bodies_never_get_a_500(client: TestClient, path: str) -> None:
    import warnings

    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=_fuzz_values())
    def check(body: object) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ColdStartWarning)
            # NaN/Infinity literals too (Python's json writes them; strict clients do not)
            r = client.post(path, content=json.dumps(body).encode(),
                            headers={"content-type": "application/json"})
        assert r.status_code < 500, (body, r.text)
        assert set(r.json()) >= ({"error", "message"} if r.status_code >= 400 else set())

    check()


def test_well_formed_bodies_with_odd_values_never_get_a_500(client: TestClient) -> None:
    import warnings

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    text = st.text(max_size=20)
    keys = st.one_of(st.sampled_from(["user_id", "item_id", "segment", "event", "ts", "id",
                                      "colour", "kgrec_graph", "price"]),
                     st.text(min_size=1, max_size=8))
    ids = st.one_of(st.sampled_from(RUNNERS[:2] + SHOES[:2] + MUGS[:1]),
                    st.text(min_size=1, max_size=12))
    item = st.fixed_dictionaries({"item_id": ids}, optional={
        "title": text, "description": text, "brand": text, "category": text,
        "price": st.floats(0, 1e9), "attributes": st.dictionaries(keys, text, max_size=3)})
    bodies = st.one_of(
        st.tuples(st.just("/rank-new-items"), st.fixed_dictionaries(
            {"items": st.lists(item, min_size=1, max_size=3)},
            optional={"user_ids": st.lists(ids, min_size=1, max_size=3),
                      "k": st.integers(1, 5), "by": st.sampled_from(["user", "item"])})),
        st.tuples(st.just("/recommend-new-user"), st.fixed_dictionaries(
            {"profile": st.dictionaries(keys, text, max_size=3),
             "clicks": st.lists(ids, max_size=3)}, optional={"k": st.integers(1, 30)})),
        st.tuples(st.just("/recommend"), st.fixed_dictionaries(
            {"user_ids": st.lists(ids, min_size=1, max_size=3)},
            optional={"candidates": st.lists(ids, min_size=1, max_size=3),
                      "k": st.integers(1, 30), "exclude_seen": st.booleans()})),
        st.tuples(st.just("/score"), st.fixed_dictionaries(
            {"user_ids": st.lists(ids, min_size=1, max_size=3),
             "item_ids": st.lists(ids, min_size=1, max_size=3)})),
        st.tuples(st.just("/explain"), st.fixed_dictionaries(
            {"user_id": ids, "item_id": ids}, optional={"max_paths": st.integers(1, 5)})))

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(case=bodies)
    def check(case: tuple[str, dict[str, object]]) -> None:
        path, body = case
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ColdStartWarning)
            r = client.post(path, json=body)
        assert r.status_code < 500, (path, body, r.text)

    check()


def test_rerank_n_overrides_the_saved_setting(served: tuple[str, str, ModelHolder]) -> None:
    from kgrec.ranking.recommender import DEFAULT_RERANK_N

    spec, model_dir, holder = served
    assert holder.current.rec.rerank_n == DEFAULT_RERANK_N  # what the saved model holds
    assert model_loader(model_dir, spec, rerank_n=3)().rerank_n == 3
