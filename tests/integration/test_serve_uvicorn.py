"""``kgrec serve`` as a real uvicorn process on 127.0.0.1: auth, answers, and a model reload
(SIGHUP, then ``POST /reload``) under concurrent load with zero failed requests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from tests.serving import PSEUDONYM_KEY, TOKEN, saved_shop_model  # noqa: E402
from tests.shops import RUNNERS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, object]]:
    root = tmp_path_factory.mktemp("serve-uvicorn")
    spec, model_dir = saved_shop_model(root)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KGREC_SERVE_TOKEN": TOKEN,
           "KGREC_PSEUDONYM_KEY": PSEUDONYM_KEY}
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from kgrec.cli import main; sys.exit(main())",
         "serve", "--model-dir", model_dir, "--store", spec, "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, (root / "server.log").read_text()
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("kgrec serve did not answer within 120 s")
    yield url, root, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    log.close()


def test_answers_with_the_token_only(server: tuple[str, Path, object]) -> None:
    url = server[0]
    r = httpx.post(url + "/recommend", json={"user_ids": [RUNNERS[0]], "k": 2}, headers=AUTH)
    assert r.status_code == 200
    assert [i["item_id"][:4] for i in r.json()["results"][0]["items"]] == ["shoe", "shoe"]
    assert httpx.post(url + "/recommend", json={"user_ids": [RUNNERS[0]]}).status_code == 401
    r = httpx.post(url + "/recommend", json={"user_ids": ["nobody"]}, headers=AUTH)
    assert r.status_code == 404 and r.json()["error"] == "UnknownIdError"


def _load(url: str, stop: threading.Event, out: list[tuple[int, str]]) -> None:
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        while not stop.is_set():
            try:
                r = client.post("/recommend", json={"user_ids": [RUNNERS[1]], "k": 3})
                out.append((r.status_code, r.json().get("model_version", "")))
            except httpx.HTTPError as e:  # a dropped connection counts as a failure
                out.append((-1, type(e).__name__))


def _until_version_changes(url: str, old: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        version = httpx.get(url + "/health").json()["model_version"]
        if version != old:
            return str(version)
        time.sleep(0.2)
    pytest.fail(f"the model version stayed {old}")


def test_reload_under_load_drops_no_request(server: tuple[str, Path, object]) -> None:
    url, root, proc = server
    first = httpx.get(url + "/health").json()["model_version"]
    stop, results = threading.Event(), []  # type: ignore[var-annotated]
    threads = [threading.Thread(target=_load, args=(url, stop, results)) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        saved_shop_model(root, seed=1)              # a new model version in the same folder
        proc.send_signal(signal.SIGHUP)              # type: ignore[attr-defined]
        second = _until_version_changes(url, first)
        time.sleep(1.0)
        saved_shop_model(root, seed=2)
        r = httpx.post(url + "/reload", headers=AUTH, timeout=120)
        assert r.status_code == 200 and r.json()["previous_version"] == second
        third = r.json()["model_version"]
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    statuses = Counter(status for status, _ in results)
    versions = Counter(version for _, version in results)
    assert statuses == {200: len(results)}, statuses
    assert {first, second, third} <= set(versions), versions
    assert len({first, second, third}) == 3


def test_sigterm_stops_it_and_the_log_holds_no_raw_id_or_token(
        server: tuple[str, Path, object]) -> None:
    url, root, proc = server
    httpx.get(url + "/explain", params={"user_id": RUNNERS[2], "item_id": "shoe-1"},
              headers=AUTH)
    proc.send_signal(signal.SIGTERM)                # type: ignore[attr-defined]
    # uvicorn shuts down gracefully, then re-raises the signal (exit status -SIGTERM)
    assert proc.wait(60) in (0, -signal.SIGTERM)    # type: ignore[attr-defined]
    log = (root / "server.log").read_text()
    assert "Finished server process" in log
    assert "GET /explain 200" in log and "model reloaded" in log
    assert TOKEN not in log
    assert not any(u in log for u in RUNNERS), "a raw user id reached the log"
