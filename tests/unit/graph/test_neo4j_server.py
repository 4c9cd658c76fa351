"""The launcher's process safety, without Java: pid files and the JVM's environment."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kgrec.graph.neo4j_server import MAIN_CLASS, Neo4jServer, jvm_environment, process_cmdline

SLEEP = "import time; time.sleep(120)"


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process whose pid a stale pid file could name."""
    proc = subprocess.Popen([sys.executable, "-c", SLEEP])
    wait_exec(proc)
    yield proc
    proc.kill()
    proc.wait()


def test_stale_pid_file_naming_another_process_is_removed_not_signalled(
        tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    server = Neo4jServer(home=tmp_path)
    server.pid_file.write_text(str(sleeper.pid))
    assert server.pid() is None
    assert not server.pid_file.exists()
    server.pid_file.write_text(str(sleeper.pid))
    server.stop(timeout=1)
    assert sleeper.poll() is None  # still running: never signalled
    assert not server.pid_file.exists()


def wait_exec(proc: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        if process_cmdline(proc.pid):
            return
        time.sleep(0.02)


def test_pid_of_a_launcher_on_another_home_is_not_ours(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", SLEEP, MAIN_CLASS,
                              str(tmp_path / "elsewhere" / "data")])
    wait_exec(other)
    try:
        server = Neo4jServer(home=tmp_path / "mine")
        server.home.mkdir()
        server.pid_file.write_text(str(other.pid))
        server.stop(timeout=1)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_pid_of_this_homes_launcher_is_stopped(tmp_path: Path) -> None:
    server = Neo4jServer(home=tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", SLEEP, MAIN_CLASS, str(server.home / "data")])
    try:
        server.pid_file.write_text(str(proc.pid))
        assert server.pid() == proc.pid
        server.stop(timeout=10)
        proc.wait(timeout=10)  # it would sleep 120 s: the SIGTERM reached it
        assert process_cmdline(proc.pid) is None
        assert not server.pid_file.exists()
    finally:
        proc.kill()
        proc.wait()


def test_dead_pid_is_stale(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    server = Neo4jServer(home=tmp_path)
    server.pid_file.write_text(str(proc.pid))
    assert server.status()["running"] is False
    assert not server.pid_file.exists()


def test_jvm_gets_a_minimal_environment() -> None:
    env = jvm_environment("s3cret-pass", {
        "PATH": "/usr/bin", "HOME": "/home/x", "LANG": "C.UTF-8", "JAVA_HOME": "/jdk",
        "KGREC_PSEUDONYM_KEY": "never-pass-this", "AWS_SECRET_ACCESS_KEY": "nor-this",
        "NEO4J_PASSWORD": "s3cret-pass", "LD_PRELOAD": "/evil.so"})
    assert env == {"PATH": "/usr/bin", "HOME": "/home/x", "LANG": "C.UTF-8",
                   "JAVA_HOME": "/jdk", "KGREC_NEO4J_PASSWORD": "s3cret-pass"}


def test_throwaway_server_never_reuses_the_users_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kgrec.errors import Neo4jServerError
    monkeypatch.setenv("NEO4J_PASSWORD", "the-users-production-password")
    private = Neo4jServer(home=tmp_path / "private", password_env=None)
    assert private.password() != "the-users-production-password"
    assert private.password() == private.password()  # generated once, kept
    assert (private.home / "password").stat().st_mode & 0o077 == 0
    assert Neo4jServer(home=tmp_path / "local").password() == "the-users-production-password"
    monkeypatch.setenv("NEO4J_PASSWORD", "short")
    with pytest.raises(Neo4jServerError, match="at least 8 characters"):
        Neo4jServer(home=tmp_path / "local").password()
