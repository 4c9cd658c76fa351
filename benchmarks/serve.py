"""Latency and throughput of ``kgrec serve`` on Amazon Industrial & Scientific, over loopback.

Starts ``kgrec serve`` as a subprocess on a free 127.0.0.1 port (a random bearer token), drives
it with a bounded load generator (a thread pool of keep-alive ``httpx`` clients: at most
``--requests`` requests and ``--time-cap`` seconds per scenario), and prints p50/p99 latency,
throughput and the ratio of p99 to its target; then reloads the model three times (twice
``POST /reload``, once ``SIGHUP``) while 8 clients keep calling ``/recommend``, and counts failed
requests (target: zero).

The model: ``--model-dir`` and ``--store`` reuse a trained one; without them the script ingests
Amazon into a temporary embedded store and trains ``kgrec train --encoder hashing --epochs 3``
(hashing text vectors: the serving path is the same as with BERT, and a new SKU's text then
costs no BERT forward pass; see SERVE.md).

    PYTHONPATH=. .venv/bin/python benchmarks/serve.py [--model-dir M --store embedded:S]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, shared_data  # noqa: E402

TARGET_P99_MS = {"/recommend": 50.0, "/rank-new-items": 300.0}
KGREC = [sys.executable, "-c", "import sys; from kgrec.cli import main; sys.exit(main())"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train(work: Path) -> tuple[str, str]:
    store, model = f"embedded:{work / 'store'}", str(work / "model")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KGREC_SHARED_DATA": str(shared_data())}
    subprocess.run(KGREC + ["ingest", "--dataset", "amazon", "--store", store, "--rejects",
                            str(work / "rejects.csv")], check=True, env=env)
    subprocess.run(KGREC + ["train", "--store", store, "--model-dir", model, "--encoder",
                            "hashing", "--epochs", "3", "--threads", "1"], check=True, env=env)
    return store, model


def _start(model: str, store: str, token: str, threads: int, workers: int, log: Path,
           extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KGREC_SERVE_TOKEN": token}
    proc = subprocess.Popen(KGREC + ["serve", "--model-dir", model, "--store", store, "--port",
                                     str(port), "--threads", str(threads), "--workers",
                                     str(workers), *extra],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"kgrec serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.5)
    proc.kill()
    sys.exit("kgrec serve did not start within 300 s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of process ``pid`` and its live descendants (Linux
    ``/proc``; with ``--workers`` the workers are the supervisor's children): the server's
    own cost per request, which the machine's other load does not inflate the way it does
    latency."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except FileNotFoundError:
            continue  # exited meanwhile
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in tasks:
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except FileNotFoundError:
                continue  # this thread exited meanwhile
    return total


def drive(url: str, token: str, path: str, make_body: Callable[[int], dict[str, object]], *,
          concurrency: int, requests: int, time_cap: float) -> dict[str, float]:
    """Send up to ``requests`` POSTs (``concurrency`` at a time, ``time_cap`` seconds at most);
    latencies of the successful ones, the count of failed ones (non-200 or transport) and the
    load generator's own CPU per request.

    Why the standard library's ``http.client`` and not ``httpx``: the generator shares the 2
    cores (and, in one process, one interpreter) with nothing but the server, so its own cost
    shows in the latencies; ``httpx`` spent 0.55 ms of client CPU per ``/recommend`` at 1
    client and 1.5 ms at 8, ``http.client`` 0.2 ms (``benchmarks/SERVE.md``, 2026-12-02).
    """
    parts = urlsplit(url)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    lock = threading.Lock()
    issued = [0]
    lat: list[float] = []
    failed = [0]
    deadline = time.monotonic() + time_cap

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if issued[0] >= requests:
                        return
                    n = issued[0]
                    issued[0] += 1
                body = json.dumps(make_body(n)).encode()
                t0 = time.perf_counter()
                try:
                    conn.request("POST", path, body, headers)
                    resp = conn.getresponse()
                    resp.read()
                    ok = resp.status == 200
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()  # reconnects on the next request
                dt = time.perf_counter() - t0
                with lock:
                    (lat.append(dt) if ok else failed.__setitem__(0, failed[0] + 1))
        finally:
            conn.close()

    start, cpu0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    ms = np.asarray(lat) * 1000
    return {"n": len(lat), "failed": failed[0], "wall_s": wall,
            "p50": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
            "p99": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
            "rps": len(lat) / wall,
            "client_cpu_ms": 1000 * cpu / max(len(lat) + failed[0], 1)}


def main() -> None:
    import pandas as pd

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir")
    p.add_argument("--store")
    p.add_argument("--threads", type=int, default=1, help="kgrec serve --threads")
    p.add_argument("--workers", type=int, default=1,
                   help="kgrec serve --workers (the reload check runs with 1 only)")
    p.add_argument("--requests", type=int, default=400, help="per /recommend scenario")
    p.add_argument("--new-requests", type=int, default=60, help="per /rank-new-items scenario")
    p.add_argument("--time-cap", type=float, default=60.0, help="seconds per scenario")
    p.add_argument("--no-batching", action="store_true",
                   help="kgrec serve --no-batching (score each /recommend on its own)")
    args = p.parse_args()

    from kgrec.graph.adapters import load_dataset

    work = Path(tempfile.mkdtemp(prefix="kgrec-serve-bench-"))
    store, model = ((args.store, args.model_dir) if args.model_dir and args.store
                    else _train(work))
    tables = load_dataset(shared_data() / "amazon-industrial-scientific")
    assert tables.interactions is not None and tables.items is not None
    raw_users = tables.interactions.frame["user_id"].astype(str).unique().tolist()
    cols = [c for c in ("title", "description", "brand", "category", "price")
            if c in tables.items.frame.columns]
    items = tables.items.frame[cols].head(10)
    new_skus = [{k: (None if pd.isna(v) else v) for k, v in row.items()}
                for row in items.to_dict(orient="records")]
    for n, row in enumerate(new_skus):
        row["item_id"] = f"bench-new-{n}"
        row["description"] = str(row.get("description") or "")[:1000]
        if row.get("price") not in (None, ""):
            row["price"] = float(row["price"])  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    users = rng.choice(raw_users, size=5000)
    token = secrets.token_urlsafe(32)
    proc, url = _start(model, store, token, args.threads, args.workers,
                       work / "serve.log", ["--no-batching"] if args.no_batching else [])
    print(f"kgrec serve on {url}; model {model}; store {store}; torch threads {args.threads}; "
          f"workers {args.workers}; /recommend micro-batching "
          f"{'off' if args.no_batching else 'on'}; load average {os.getloadavg()[0]:.1f}")

    def rec_body(n: int) -> dict[str, object]:
        return {"user_ids": [str(users[n % len(users)])], "k": 20}

    def new_body(n: int) -> dict[str, object]:
        return {"items": new_skus, "user_ids": [str(users[n % len(users)])], "k": 10}

    try:
        drive(url, token, "/recommend", rec_body, concurrency=2, requests=20, time_cap=30)
        drive(url, token, "/rank-new-items", new_body, concurrency=1, requests=3, time_cap=30)
        print("\n| endpoint | concurrency | requests | failed | p50 ms | p99 ms | req/s | "
              "server CPU ms/req | client CPU ms/req | target p99 | p99 / target |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")
        for path, body, n in (("/recommend", rec_body, args.requests),
                              ("/rank-new-items", new_body, args.new_requests)):
            for conc in (1, 8):
                cpu0 = cpu_seconds(proc.pid)
                r = drive(url, token, path, body, concurrency=conc, requests=n,
                          time_cap=args.time_cap)
                cpu_ms = 1000 * (cpu_seconds(proc.pid) - cpu0) / max(r["n"] + r["failed"], 1)
                target = TARGET_P99_MS[path]
                print(f"| `{path}` | {conc} | {r['n']} | {r['failed']} | {r['p50']:.1f} | "
                      f"{r['p99']:.1f} | {r['rps']:.1f} | {cpu_ms:.1f} | "
                      f"{r['client_cpu_ms']:.1f} | {target:.0f} ms | "
                      f"{r['p99'] / target:.2f} |", flush=True)
        print(f"\nload average {os.getloadavg()[0]:.1f}")
        if args.workers == 1:
            _reload_under_load(url, token, proc, rec_body, model)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)   # the temporary store, model and server log


def _reload_under_load(url: str, token: str, proc: subprocess.Popen[bytes],
                       body: Callable[[int], dict[str, object]], model: str) -> None:
    """8 clients on /recommend while the model is reloaded 3 times (2x POST, 1x SIGHUP)."""
    import httpx

    out: dict[str, float] = {}
    reloads: list[float] = []

    def load() -> None:
        out.update(drive(url, token, "/recommend", body, concurrency=8, requests=100_000,
                         time_cap=25))

    t = threading.Thread(target=load)
    t.start()
    time.sleep(3)
    auth = {"Authorization": f"Bearer {token}"}
    for how in ("POST", "SIGHUP", "POST"):
        before = httpx.get(url + "/health").json()["reloads"]
        t0 = time.perf_counter()
        if how == "POST":
            assert httpx.post(url + "/reload", headers=auth, timeout=120).status_code == 200
        else:
            proc.send_signal(signal.SIGHUP)
            while httpx.get(url + "/health").json()["reloads"] == before:
                time.sleep(0.1)
        reloads.append(time.perf_counter() - t0)
        time.sleep(3)
    t.join()
    done = httpx.get(url + "/health").json()["reloads"]
    print(f"\nreload under load (8 clients on /recommend, 25 s): {out['n']:.0f} requests, "
          f"{out['failed']:.0f} failed; p50 {out['p50']:.1f} ms, p99 {out['p99']:.1f} ms; "
          f"{done} reloads (POST, SIGHUP, POST), each "
          f"{', '.join(f'{s:.1f}' for s in reloads)} s")


if __name__ == "__main__":
    main()
