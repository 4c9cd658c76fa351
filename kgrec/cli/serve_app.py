"""The FastAPI app of ``kgrec serve``: one loaded ``Recommender`` behind an HTTP front end.

Why it looks like this:

- **One model, swapped whole.** :class:`ModelHolder` loads a complete new ``Recommender``
  before it replaces the reference under a lock; each request reads the reference once, so a
  request in flight during a reload finishes on the model it started with and none is dropped.
- **One model call at a time, in arrival order.** Scoring is CPU-bound torch/numpy/pandas;
  every model call runs in one worker thread (a single-thread executor, first in first out),
  which keeps the event loop free to accept connections. Calls interleaved in several threads
  of one interpreter only contend: at 8 concurrent ``/rank-new-items`` the server's CPU per
  request rose from 40 to 95 ms (``benchmarks/SERVE.md``). More cores: ``--workers``. Torch
  uses the thread count set once at start (``kgrec serve --threads``). Concurrent
  ``/recommend`` requests are micro-batched into one call (:mod:`kgrec.cli.serve_batch`; same
  answers as one by one).
- **Same errors as the Python API.** A ``KgrecError`` becomes ``{"error": type, "message":
  str(e)}`` with a 4xx status (:data:`STATUS`); a bad body is a 422 naming the field. Input
  never produces a 500.
- **No raw user id in logs.** Uvicorn's access log (which prints query strings) is off; this
  app logs method, path, status and duration only, and error types, never messages (an
  ``UnknownIdError`` message lists the raw ids the caller sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kgrec._version import __version__
from kgrec.cli.serve_batch import DEFAULT_WINDOW_S, RecommendBatcher
from kgrec.cli.serve_schemas import (
    ErrorBody,
    ExplainRequest,
    ExplainResponse,
    Health,
    NewUserRequest,
    NewUserResponse,
    RankedRow,
    RankNewItemsRequest,
    RankNewItemsResponse,
    RecommendRequest,
    RecommendResponse,
    ScoredItem,
    ScoreRequest,
    ScoreResponse,
    UserItems,
)
from kgrec.errors import (
    ConfigError,
    DataError,
    KgrecError,
    NotFittedError,
    StoreUnavailableError,
    UnknownIdError,
)
from kgrec.graph.schema import NodeLabel, RelType

if TYPE_CHECKING:
    from kgrec.ranking.recommender import Recommender

logger = logging.getLogger("kgrec.serve")
access_log = logging.getLogger("kgrec.serve.access")

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024

# KgrecError type -> HTTP status; the first match along the class's MRO wins.
STATUS: dict[type[BaseException], int] = {
    UnknownIdError: 404,
    DataError: 422,            # ValidationError, FileFormatError
    ConfigError: 400,
    NotFittedError: 503,
    StoreUnavailableError: 503,
    ValueError: 422,           # e.g. score() with lists of different lengths
}


def status_of(exc: BaseException) -> int:
    """The HTTP status of an exception raised by the Python API (500 for anything else)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


@dataclass(frozen=True)
class Loaded:
    """A loaded model and what ``/health`` says about it."""

    rec: Recommender
    version: str
    loaded_at: str
    counts: dict[str, int]


def graph_counts(rec: Recommender) -> dict[str, int]:
    """Node count per label plus the number of interactions of the model's graph."""
    counts = {label: len(ids) for label, ids in rec.graph_.node_ids.items()}
    key = (NodeLabel.USER.value, RelType.INTERACTED.value, NodeLabel.ITEM.value)
    store = rec.graph_.data[key]
    counts["interactions"] = int(store.edge_index.shape[1]) if "edge_index" in store else 0
    return counts


class ModelHolder:
    """The one model the service answers from; :meth:`reload` swaps in a new one atomically.

    Args:
        loader: Builds a fully loaded ``Recommender`` (opens the store, loads the model folder);
            called once now and again on every reload.
    """

    def __init__(self, loader: Callable[[], Recommender]) -> None:
        self._loader = loader
        self._swap = threading.Lock()
        self._reloading = threading.Lock()   # one reload at a time
        self.reloads = 0
        self._current = self._load()

    def _load(self) -> Loaded:
        rec = self._loader()
        return Loaded(rec, rec.model_version_, datetime.now(UTC).isoformat(timespec="seconds"),
                      graph_counts(rec))

    @property
    def current(self) -> Loaded:
        with self._swap:
            return self._current

    def reload(self) -> tuple[str, str]:
        """Load the model again (model folder and store) and swap it in; ``(old, new)``
        versions. On failure the running model stays and the error propagates."""
        with self._reloading:
            new = self._load()
            with self._swap:
                old, self._current = self._current, new
                self.reloads += 1
        logger.info("model reloaded: %s -> %s", old.version, new.version)
        return old.version, new.version


class _Unauthorized(Exception):
    pass


def _error(status: int, error: str, message: str,
           headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status,
                        headers=headers)


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413 — at once when its
    ``Content-Length`` says so, else as soon as the streamed (chunked) body passes the limit,
    so an oversized body is never read whole into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body over {self.max_bytes:,} bytes (the service's limit)"
        for name, value in scope["headers"]:
            if name == b"content-length":
                size = int(value) if value.isdigit() else -1
                if size < 0 or size > self.max_bytes:
                    status, msg = (413, too_large) if size > 0 else (400, "bad Content-Length")
                    await _error(status, "RequestError", msg)(scope, receive, send)
                    return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, too_large)
            return message

        await self.app(scope, limited, send)


class AccessLog:
    """ASGI middleware: one access line per request (method, path, status, duration).

    The path only: query strings (``GET /explain``) carry raw user ids. Plain ASGI rather than
    ``@app.middleware("http")``, whose request/response wrapping (Starlette's
    ``BaseHTTPMiddleware``) is a measurable share of a few-millisecond request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            access_log.info("%s %s %d %.1fms", scope["method"], scope["path"], status,
                            1000 * (time.perf_counter() - start))


def create_app(holder: ModelHolder, *, token: str | None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               batch_window_s: float | None = DEFAULT_WINDOW_S) -> FastAPI:
    """The service over ``holder``'s model.

    Args:
        holder: The loaded model (see :class:`ModelHolder`).
        token: Bearer token every endpoint but ``/health`` and the docs requires; None turns
            auth off (``kgrec serve --no-auth``, loopback only).
        max_body_bytes: Largest request body accepted.
        batch_window_s: How long a ``/recommend`` request waits for others to be scored with
            (:class:`~kgrec.cli.serve_batch.RecommendBatcher`), default 2 ms; None scores each
            request on its own.
    """
    model_thread = ThreadPoolExecutor(1, thread_name_prefix="kgrec-model")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        model_thread.shutdown(wait=False, cancel_futures=True)  # queued calls are not run

    app = FastAPI(title="kgrec", version=__version__, lifespan=lifespan,
                  description="Knowledge-graph cold-start recommendations over one loaded "
                              "model. Errors are `{\"error\": type, \"message\": text}`.")
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(AccessLog)

    async def on_model(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in the model thread, after the calls queued before it."""
        return await asyncio.get_running_loop().run_in_executor(
            model_thread, functools.partial(fn, *args, **kwargs))

    batcher = None if batch_window_s is None else RecommendBatcher(batch_window_s,
                                                                   executor=model_thread)
    app.state.batcher = batcher
    expected = token.encode() if token else None
    errors: dict[int | str, dict[str, Any]] = {
        s: {"model": ErrorBody} for s in (401, 404, 413, 422)}

    def authorized(request: Request) -> None:
        if expected is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 expected):
            raise _Unauthorized

    auth = [Depends(authorized)]

    @app.exception_handler(_Unauthorized)
    async def _unauthorized(request: Request, exc: _Unauthorized) -> JSONResponse:
        return _error(401, "AuthError", "missing or wrong bearer token (Authorization: Bearer "
                      "<KGREC_SERVE_TOKEN>)", {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(KgrecError)
    @app.exception_handler(ValueError)
    async def _api_error(request: Request, exc: Exception) -> JSONResponse:
        status = status_of(exc)
        # type only: messages may hold the raw ids the caller sent
        logger.info("%s %s -> %d %s", request.method, request.url.path, status,
                    type(exc).__name__)
        return _error(status, type(exc).__name__, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
                 for e in exc.errors()]
        return _error(422, "ValidationError", "; ".join(parts) or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, "RequestError", str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # the traceback without the message (which may quote input)
        logger.error("unexpected %s on %s %s\n%s", type(exc).__name__, request.method,
                     request.url.path, "".join(traceback.format_tb(exc.__traceback__)))
        return _error(500, "InternalError", "internal error; the server log has the traceback")

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> Health:
        """Liveness, model version and graph counts (no auth: holds no user data)."""
        cur = holder.current
        return Health(model_version=cur.version, kgrec_version=__version__,
                      loaded_at=cur.loaded_at, reloads=holder.reloads, graph=cur.counts)

    @app.post("/reload", dependencies=auth, responses=errors, tags=["service"])
    def reload() -> dict[str, str]:
        """Load the model folder and store again and swap the model in atomically; requests
        in flight finish on the old one. A failed load keeps the running model (409)."""
        try:
            old, new = holder.reload()
        except KgrecError as e:
            logger.warning("reload failed (%s); still serving %s", type(e).__name__,
                           holder.current.version)
            raise HTTPException(409, f"reload failed, still serving "
                                     f"{holder.current.version}: {type(e).__name__}: {e}"
                                ) from e
        return {"previous_version": old, "model_version": new}

    @app.post("/recommend", response_model=RecommendResponse, dependencies=auth,
              responses=errors, tags=["recommend"])
    async def recommend(body: RecommendRequest) -> RecommendResponse:
        """Top-k items per known user (``Recommender.recommend``)."""
        cur = holder.current
        if batcher is None:
            ids, scores = await on_model(
                cur.rec.recommend, body.user_ids, k=body.k, candidates=body.candidates,
                exclude_seen=body.exclude_seen)
        else:
            ids, scores = await batcher.recommend(cur.rec, body.user_ids, k=body.k,
                                                  candidates=body.candidates,
                                                  exclude_seen=body.exclude_seen)
        return RecommendResponse(model_version=cur.version, results=[
            UserItems(user_id=u, items=_scored(ids[n], scores[n]))
            for n, u in enumerate(body.user_ids)])

    @app.post("/rank-new-items", response_model=RankNewItemsResponse, dependencies=auth,
              responses=errors, tags=["recommend"])
    async def rank_new_items(body: RankNewItemsRequest) -> Response:
        """Rank SKUs not in the graph, no retraining (``Recommender.rank_new_items``)."""
        return await on_model(_rank_new_items, holder.current, body)  # type: ignore[no-any-return]

    @app.post("/recommend-new-user", response_model=NewUserResponse, dependencies=auth,
              responses=errors, tags=["recommend"])
    async def recommend_new_user(body: NewUserRequest) -> Response:
        """Top-k items for a user not in the graph (``Recommender.recommend_for_new_users``)."""
        return await on_model(_new_user, holder.current, body)  # type: ignore[no-any-return]

    @app.post("/score", response_model=ScoreResponse, dependencies=auth, responses=errors,
              tags=["recommend"])
    async def score(body: ScoreRequest) -> Response:
        """Calibrated click probabilities of (user, item) pairs (``Recommender.score``)."""
        return await on_model(_score, holder.current, body)  # type: ignore[no-any-return]

    @app.get("/explain", response_model=ExplainResponse, dependencies=auth, responses=errors,
             tags=["explain"])
    async def explain_get(user_id: str = Query(min_length=1, max_length=256),
                          item_id: str = Query(min_length=1, max_length=256),
                          max_paths: int = Query(3, ge=1, le=20)) -> Response:
        """Weighted graph paths behind an item for a user (``Recommender.explain``). The raw
        user id travels in the query string; proxies may log it: prefer ``POST /explain``."""
        req = ExplainRequest(user_id=user_id, item_id=item_id, max_paths=max_paths)
        return await on_model(_explain, holder.current, req)  # type: ignore[no-any-return]

    @app.post("/explain", response_model=ExplainResponse, dependencies=auth,
              responses=errors, tags=["explain"])
    async def explain_post(body: ExplainRequest) -> Response:
        """As ``GET /explain``, with the ids in the body (kept out of URLs and proxy logs)."""
        return await on_model(_explain, holder.current, body)  # type: ignore[no-any-return]

    return app


# The model-thread bodies of the endpoints: the call, the response model and its JSON, all off
# the event loop (a /rank-new-items for every user is ~200k rows: ~0.8 s to build and dump).
def _json(body: BaseModel) -> Response:
    return Response(body.model_dump_json(), media_type="application/json")


def _rank_new_items(cur: Loaded, body: RankNewItemsRequest) -> Response:
    result = cur.rec.rank_new_items(_items_frame(body), user_ids=body.user_ids, k=body.k)
    frame = result.by_user if body.by == "user" else result.by_item
    rows = [RankedRow(user_id=str(u), item_id=str(i), rank=int(r), score=float(s))
            for u, i, r, s in zip(frame["user_id"], frame["item_id"], frame["rank"],
                                  frame["score"], strict=True)]
    return _json(RankNewItemsResponse(model_version=cur.version, by=body.by, rows=rows,
                                      cold_items=[str(c) for c in result.cold_items]))


def _new_user(cur: Loaded, body: NewUserRequest) -> Response:
    users = pd.DataFrame([{"user_id": "new-user", **body.profile}])
    clicks = pd.DataFrame({"user_id": ["new-user"] * len(body.clicks), "item_id": body.clicks})
    ranking = cur.rec.recommend_for_new_users(users, clicks, k=body.k,
                                              exclude_seen=body.exclude_seen)
    frame = ranking.by_user
    return _json(NewUserResponse(model_version=cur.version, cold=bool(ranking.cold_users),
                                 items=_scored(frame["item_id"].to_numpy(object),
                                               frame["score"].to_numpy(np.float64))))


def _score(cur: Loaded, body: ScoreRequest) -> Response:
    p = cur.rec.score(body.user_ids, body.item_ids)
    return _json(ScoreResponse(model_version=cur.version, scores=[float(v) for v in p]))


def _explain(cur: Loaded, req: ExplainRequest) -> Response:
    exp = cur.rec.explain(req.user_id, req.item_id, max_paths=req.max_paths)
    return _json(ExplainResponse(model_version=cur.version, user_id=exp.user_id,
                                 item_id=exp.item_id, score=float(exp.score),
                                 paths=[p.to_dict() for p in exp.paths]))


def _scored(ids: np.ndarray, scores: np.ndarray) -> list[ScoredItem]:
    """Items of one ranked row, dropping the ``None`` padding of short rankings."""
    return [ScoredItem(item_id=str(i), score=float(s))
            for i, s in zip(ids, scores, strict=True) if i is not None]


def _items_frame(body: RankNewItemsRequest) -> pd.DataFrame:
    """The request's SKUs as the canonical item table the Python API takes."""
    rows = [{**{k: v for k, v in item.model_dump(exclude={"attributes"}).items()},
             **item.attributes} for item in body.items]
    frame = pd.DataFrame(rows)
    for col in frame.columns:
        if col != "price":
            frame[col] = frame[col].astype("string")
    return frame
