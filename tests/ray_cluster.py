"""A private two-node Ray cluster on 127.0.0.1 for the tests: a head and a worker, each started
with ``ray start --block`` as a process (group) the tests own, and stopped by pid at the end.

Never ``ray stop``: it stops every Ray on the machine, someone else's included. Every port the
nodes listen on is a free one picked here (Ray's fixed defaults, such as the dashboard agent's
52365, would collide with another cluster on the machine), and the temporary folder is a short
private one under ``/tmp`` (Ray's Unix sockets live there; their paths must stay short).

Ray's token authentication with a token of the cluster's own (:data:`CLUSTER_ENV`, also set in
the tests' process by :func:`join`): nothing else on the machine can use the cluster, and a
token another Ray left in ``~/.ray`` does not get in the way. Ray itself announces the node by
the machine's outward IP; the nodes are started with ``--node-ip-address=127.0.0.1``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# A token of the cluster's own (Ray's token authentication), so that neither a token left in
# ~/.ray (which a local `ray.init()` creates) nor another process on the machine gets in
CLUSTER_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
               "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def join(mp: pytest.MonkeyPatch) -> None:
    """Let this process's Ray connect to the cluster (its token, no usage statistics)."""
    for name, value in CLUSTER_ENV.items():
        mp.setenv(name, value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_ports() -> list[str]:
    return [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}"]


@dataclass
class RayCluster:
    """Two Ray nodes (1 CPU each) this process started; ``address`` is the head's."""

    address: str
    temp_dir: Path
    log_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def start(cls, log_dir: Path, object_store_mb: int = 200,
              timeout_s: float = 120.0) -> RayCluster:
        """Start the head, then the worker; return when ``ray.nodes()`` shows both alive.

        Raises:
            RuntimeError: a node exited, or the two were not up within ``timeout_s``.
        """
        temp = Path(tempfile.mkdtemp(prefix="kr-", dir="/tmp"))
        port = free_port()
        cluster = cls(f"127.0.0.1:{port}", temp, log_dir)
        ray_bin = str(Path(sys.executable).with_name("ray"))
        common = ["--num-cpus=1", f"--object-store-memory={object_store_mb * 2**20}",
                  "--disable-usage-stats", "--block"]
        env = dict(os.environ, **CLUSTER_ENV)
        try:
            cluster._spawn("head", [ray_bin, "start", "--head", "--node-ip-address=127.0.0.1",
                                    f"--port={port}", f"--temp-dir={temp}",
                                    "--include-dashboard=false",
                                    f"--dashboard-port={free_port()}", *_node_ports(), *common],
                           env)
            cluster._wait(1, timeout_s)
            cluster._spawn("worker", [ray_bin, "start", f"--address={cluster.address}",
                                      "--node-ip-address=127.0.0.1", *_node_ports(), *common],
                           env)
            cluster._wait(2, timeout_s)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with (self.log_dir / f"ray-{name}.log").open("wb") as log:  # the child keeps its copy
            self.processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                   env=env, start_new_session=True))

    def _wait(self, nodes: int, timeout_s: float) -> None:
        probe = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
                 "print(sum(n['Alive'] for n in ray.nodes()))")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for p in self.processes:
                if p.poll() is not None:
                    raise RuntimeError(f"a Ray node exited with {p.returncode}; see "
                                       f"{self.log_dir}/ray-*.log")
            try:
                out = subprocess.run([sys.executable, "-c", probe, self.address],
                                     capture_output=True, text=True, timeout=30,
                                     env=dict(os.environ, **CLUSTER_ENV))
            except subprocess.TimeoutExpired:
                continue
            if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(nodes)]:
                return
            time.sleep(1.0)
        raise RuntimeError(f"{nodes} Ray node(s) not alive after {timeout_s:.0f}s; see "
                           f"{self.log_dir}/ray-*.log")

    def stop(self) -> None:
        """Stop exactly the processes this object started: each node's process group (worker
        first), then any descendant of theirs still alive (Ray's worker processes run in
        sessions of their own)."""
        ours = self.descendants()
        for p in reversed(self.processes):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10  # Ray drains for up to 30 s; nothing here to drain
        for p in reversed(self.processes):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        for pid in ours:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def descendants(self) -> list[int]:
        """Pids of every live process below the nodes this object started."""
        children: dict[int, list[int]] = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(proc.name))
        found, todo = [], [p.pid for p in self.processes]
        while todo:
            kids = children.get(todo.pop(), [])
            found += kids
            todo += kids
        return found
