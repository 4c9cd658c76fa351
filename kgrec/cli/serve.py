"""``kgrec serve``: the HTTP service (FastAPI + uvicorn, the optional extra ``serve``).

Safe by default: it binds 127.0.0.1, needs a bearer token from ``KGREC_SERVE_TOKEN`` (or an
explicit ``--no-auth``, which is refused on any non-loopback address), and never logs the
token or a raw user id. ``SIGHUP`` (or ``POST /reload``) loads the model folder again and
swaps it in without dropping requests; with ``--workers N > 1`` uvicorn's supervisor answers
``SIGHUP`` by replacing the workers one at a time, each loading the model anew.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from kgrec.cli._common import Commands, store_arg

if TYPE_CHECKING:
    from fastapi import FastAPI

    from kgrec.ranking.recommender import Recommender

logger = logging.getLogger("kgrec.serve")

TOKEN_ENV = "KGREC_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16
# settings handed to uvicorn's worker processes (--workers > 1) through the environment
ENV_MODEL_DIR, ENV_STORE = "KGREC_SERVE_MODEL_DIR", "KGREC_SERVE_STORE"
ENV_THREADS, ENV_MAX_BODY = "KGREC_SERVE_THREADS", "KGREC_SERVE_MAX_BODY_BYTES"
ENV_NO_AUTH, ENV_BATCH = "KGREC_SERVE_NO_AUTH", "KGREC_SERVE_BATCH_WINDOW_MS"
ENV_RERANK = "KGREC_SERVE_RERANK_N"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_auth(token: str | None, no_auth: bool, host: str) -> str | None:
    """The token to require, or None with ``--no-auth`` on loopback.

    Raises:
        ConfigError: no token without ``--no-auth``; no token on a non-loopback host; a token
            shorter than 16 characters.
    """
    from kgrec.errors import ConfigError

    if not token:
        if not is_loopback(host):
            raise ConfigError(f"refusing to serve on {host} without a token: set {TOKEN_ENV} "
                              "(--no-auth is for 127.0.0.1 only)")
        if not no_auth:
            raise ConfigError(f"set {TOKEN_ENV} to a secret bearer token (at least "
                              f"{MIN_TOKEN_CHARS} characters), or pass --no-auth to serve "
                              "127.0.0.1 without one")
        return None
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{TOKEN_ENV} is shorter than {MIN_TOKEN_CHARS} characters; use a "
                          "long random secret (e.g. `python -c 'import secrets; "
                          "print(secrets.token_urlsafe(32))'`)")
    return token


def model_loader(model_dir: str, store: str, rerank_n: int | None = None) -> Any:
    """A function that opens ``store`` and loads ``model_dir`` fully (called on every reload,
    so a reload also sees the store's current graph), including the graph tensors new SKUs are
    appended to, so the first ``/rank-new-items`` after a (re)load is not the slow one.
    ``rerank_n``: overrides the saved ``Recommender.rerank_n`` (None keeps it)."""

    def load() -> Recommender:
        from kgrec.graph.open import open_store
        from kgrec.ranking.foldin import warm_new_items
        from kgrec.ranking.recommender import Recommender

        graph, pseudonymizer = open_store(store)
        rec = Recommender.load(model_dir, graph, pseudonymizer=pseudonymizer)
        if rerank_n is not None:
            rec.set_params(rerank_n=rerank_n)
        warm_new_items(rec)
        return rec

    return load


M_ARENA_MAX = -8   # glibc's mallopt parameter number


def single_malloc_arena() -> bool:
    """Make every thread allocate from glibc's main arena (as ``MALLOC_ARENA_MAX=1``).

    Why: scoring runs in a worker thread, and with glibc's per-thread arenas one
    ``recommend`` call on Amazon measured ~16 ms in a pool thread against ~10.5 ms in the main
    thread (the same in both with one arena). Must run before the pool's threads exist; does
    nothing where libc is not glibc or ``MALLOC_ARENA_MAX`` is set. True when applied.
    """
    import ctypes
    import ctypes.util

    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, 1))
    except (OSError, AttributeError):   # not glibc
        return False


def build_app(model_dir: str, store: str, *, token: str | None, threads: int,
              max_body_bytes: int, batch_window_ms: float | None = 2.0,
              rerank_n: int | None = None) -> FastAPI:
    """Set torch's threads and one malloc arena, load the model and build the app (raises the
    loader's errors). ``batch_window_ms``: micro-batching of ``/recommend`` (None: off)."""
    import torch

    from kgrec.cli.serve_app import ModelHolder, create_app

    single_malloc_arena()
    torch.set_num_threads(threads)
    holder = ModelHolder(model_loader(model_dir, store, rerank_n))
    app = create_app(holder, token=token, max_body_bytes=max_body_bytes,
                     batch_window_s=None if batch_window_ms is None else batch_window_ms / 1000)
    app.state.holder = holder
    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory for worker processes (``--workers > 1``): settings from the
    environment the parent set, the token from ``KGREC_SERVE_TOKEN``."""
    token = None if os.environ.get(ENV_NO_AUTH) == "1" else os.environ.get(TOKEN_ENV)
    window = os.environ.get(ENV_BATCH, "2")
    return build_app(os.environ[ENV_MODEL_DIR], os.environ[ENV_STORE], token=token,
                     threads=int(os.environ.get(ENV_THREADS, "1")),
                     rerank_n=int(os.environ[ENV_RERANK]) if os.environ.get(ENV_RERANK) else None,
                     max_body_bytes=int(os.environ[ENV_MAX_BODY]),
                     batch_window_ms=None if window == "off" else float(window))


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", required=True, help="folder written by `kgrec train`")
    store_arg(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default %(default)s; any other needs a token)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1,
                   help="processes, each with its own copy of the model (default 1)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per process (default 1: requests run in parallel "
                        "threads instead)")
    p.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024,
                   help="largest request body (default %(default)s)")
    p.add_argument("--batch-window-ms", type=float, default=2.0,
                   help="how long a /recommend request waits for concurrent ones to be scored "
                        "with it in one call (default %(default)s; 0: no wait, still batching "
                        "requests that queued meanwhile)")
    p.add_argument("--rerank-n", type=int, default=None,
                   help="items the CTR head re-ranks per user after dot-product retrieval "
                        "(default: the model's, 2000; fewer is faster and may rank worse, "
                        "benchmarks/SERVE.md)")
    p.add_argument("--no-batching", action="store_true",
                   help="score every /recommend request on its own")
    p.add_argument("--no-auth", action="store_true",
                   help=f"serve without a token (127.0.0.1 only); default: {TOKEN_ENV} is "
                        "required")
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError as e:
        from kgrec.errors import ConfigError

        raise ConfigError("kgrec serve needs the serve extra: pip install 'kgrec[serve]'") from e
    token = check_auth(os.environ.get(TOKEN_ENV), args.no_auth, args.host)
    if not args.batch_window_ms >= 0:
        from kgrec.errors import ConfigError

        raise ConfigError(f"--batch-window-ms must be >= 0 (got {args.batch_window_ms}); use "
                          "--no-batching to score every request on its own")
    # kgrec's own INFO lines (reloads, access lines without query strings) are wanted here
    logging.getLogger("kgrec.serve").setLevel(logging.INFO)
    common: dict[str, Any] = dict(host=args.host, port=args.port, access_log=False,
                                  log_level="info", timeout_graceful_shutdown=30)
    if args.workers > 1:
        os.environ.update({ENV_MODEL_DIR: args.model_dir, ENV_STORE: args.store,
                           ENV_THREADS: str(args.threads),
                           ENV_MAX_BODY: str(args.max_body_bytes),
                           ENV_BATCH: "off" if args.no_batching else str(args.batch_window_ms),
                           ENV_NO_AUTH: "1" if token is None else "0",
                           ENV_RERANK: "" if args.rerank_n is None else str(args.rerank_n)})
        uvicorn.run("kgrec.cli.serve:app_from_env", factory=True, workers=args.workers,
                    **common)
        return 0
    app = build_app(args.model_dir, args.store, token=token, threads=args.threads,
                    max_body_bytes=args.max_body_bytes,
                    batch_window_ms=None if args.no_batching else args.batch_window_ms,
                    rerank_n=args.rerank_n)
    holder = app.state.holder

    def reload_in_background(signum: int, frame: object) -> None:
        def run() -> None:
            try:
                holder.reload()
            except Exception as e:  # keep serving the old model; say why
                logger.error("reload on SIGHUP failed (%s); still serving %s",
                             type(e).__name__, holder.current.version)

        threading.Thread(target=run, name="kgrec-reload", daemon=True).start()

    signal.signal(signal.SIGHUP, reload_in_background)
    print(f"kgrec serve: model {holder.current.version} on http://{args.host}:{args.port} "
          f"(docs at /docs; auth {'off' if token is None else 'on'})", flush=True)
    uvicorn.run(app, **common)
    return 0


COMMANDS: Commands = {
    "serve": (_serve_args, "HTTP service over one loaded model (FastAPI + uvicorn)"),
}
