"""Run a real Neo4j Community 5.26 LTS server on loopback, assembled from Maven Central.

Why: tests and local users need a real Neo4j without a system install.
``neo4j-launcher/pom.xml`` pulls the engine (``org.neo4j:neo4j``) and its Bolt extension
(``org.neo4j:neo4j-bolt``) from Maven Central; ``neo4j-launcher/src/.../Launcher.java`` starts it
embedded with Bolt on 127.0.0.1. An embedded engine reads no ``neo4j.conf``, so the JVM flags the
server script would pass are passed here.

The password comes from ``NEO4J_PASSWORD``; without it one is generated once and kept in
``<home>/password`` (owner-only). It is never logged or put on a command line, and the launcher
sets it while Bolt is still off. The JVM gets a minimal environment (``JVM_ENV`` plus the password),
never the caller's secrets (``KGREC_PSEUDONYM_KEY``, cloud credentials, ...). A pid file is
trusted only when ``/proc/<pid>/cmdline`` shows this launcher on this home's data folder;
otherwise it is stale and removed, and no signal is sent.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from kgrec.errors import Neo4jServerError

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parents[2] / "neo4j-launcher"
JAR = "target/kgrec-neo4j-launcher-1.0.jar"
CLASSPATH_FILE = "target/classpath.txt"
MAIN_CLASS = "kgrec.neo4j.Launcher"
JVM_FLAGS = (
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "-Dlog4j2.disable.jmx=true",
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
)
# The only variables the JVM inherits (plus KGREC_NEO4J_PASSWORD).
JVM_ENV = ("PATH", "JAVA_HOME", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


def jvm_environment(password: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The JVM's environment: ``JVM_ENV`` from ``environ`` and the password, nothing else."""
    environ = dict(os.environ) if environ is None else environ
    return {**{k: environ[k] for k in JVM_ENV if k in environ},
            "KGREC_NEO4J_PASSWORD": password}


def process_cmdline(pid: int) -> list[str] | None:
    """The argv of process ``pid`` (Linux ``/proc``), or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


@dataclass
class Neo4jServer:
    """A local Neo4j server process.

    Args:
        home: folder for data, logs, pid and password files.
        host: Bolt address (loopback only by default).
        port: Bolt port.
        heap_mb: JVM heap (-Xms/-Xmx).
        page_cache_mb: Neo4j page cache.
        password_env: the variable holding the password (default ``NEO4J_PASSWORD``); ``None``
            always uses the one generated in ``<home>/password`` (throwaway test servers, which
            must not reuse the password of a user's own server).
    """

    home: Path = Path(".neo4j")
    host: str = "127.0.0.1"
    port: int = 7687
    heap_mb: int = 1024
    page_cache_mb: int = 512
    password_env: str | None = "NEO4J_PASSWORD"
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()

    @property
    def uri(self) -> str:
        return f"bolt://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "neo4j.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "neo4j.log"

    # -- build --------------------------------------------------------------------------------
    def build(self) -> None:
        """Fetch the engine from Maven Central and compile the launcher (skipped when built)."""
        jar, classpath = PROJECT_DIR / JAR, PROJECT_DIR / CLASSPATH_FILE
        sources = [PROJECT_DIR / "pom.xml", *PROJECT_DIR.glob("src/**/*.java")]
        if jar.exists() and classpath.exists() and \
                jar.stat().st_mtime >= max(p.stat().st_mtime for p in sources):
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise Neo4jServerError("Maven (`mvn`) is not installed; install it (Debian: "
                                   "`apt-get install maven`) and Java 17")
        for goal in (["package", "-DskipTests"],
                     ["dependency:build-classpath", f"-Dmdep.outputFile={CLASSPATH_FILE}"]):
            proc = subprocess.run([mvn, "-B", "-q", *goal], cwd=PROJECT_DIR, capture_output=True,
                                  text=True, check=False)
            if proc.returncode != 0:
                raise Neo4jServerError(
                    f"building the Neo4j launcher failed (mvn {' '.join(goal)}):\n"
                    f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")

    # -- lifecycle ----------------------------------------------------------------------------
    def password(self) -> str:
        """``$password_env``, or the generated one kept in ``<home>/password``.

        Raises:
            Neo4jServerError: the password in the environment is shorter than 8 characters.
        """
        env = os.environ.get(self.password_env) if self.password_env else None
        if env:
            if len(env) < 8:
                raise Neo4jServerError(f"{self.password_env} must be at least 8 characters for "
                                       f"the local Neo4j server; choose a longer password")
            return env
        path = self.home / "password"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(18))
        return path.read_text().strip()

    def pid(self) -> int | None:
        """The server's pid when it is running, else None.

        The pid file is believed only when that process is this launcher on this home's data
        folder; a stale file (the server died, the pid was reused) is removed.
        """
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        if self._is_our_server(pid):
            return pid
        logger.warning("removing stale Neo4j pid file %s (pid %d is not this server)",
                       self.pid_file, pid)
        self.pid_file.unlink(missing_ok=True)
        return None

    def _is_our_server(self, pid: int) -> bool:
        argv = process_cmdline(pid)
        for _ in range(20):  # empty while a process is being exec'd (or is a zombie)
            if argv != []:
                break
            time.sleep(0.05)
            argv = process_cmdline(pid)
        if argv is None or MAIN_CLASS not in argv:
            return False
        i = argv.index(MAIN_CLASS)
        return len(argv) > i + 1 and argv[i + 1] == str(self.home / "data")

    def bolt_open(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex((self.host, self.port)) == 0

    def start(self, timeout: float = 180.0) -> Neo4jServer:
        """Start the server (no-op when already running) and wait until Bolt answers.

        Raises:
            Neo4jServerError: Java is missing, the port is taken by another process, or the
                server did not become ready within ``timeout`` (its log tail is included).
        """
        if self.pid() is not None:
            return self
        if self.bolt_open():
            raise Neo4jServerError(f"port {self.port} is already in use by another process; "
                                   f"stop it or pick another port (--port)")
        java = shutil.which("java")
        if java is None:
            raise Neo4jServerError("Java 17+ is not installed (Debian: `apt-get install "
                                   "openjdk-17-jre-headless`)")
        self.build()
        self.home.mkdir(parents=True, exist_ok=True)
        classpath = (PROJECT_DIR / JAR).as_posix() + os.pathsep + \
            (PROJECT_DIR / CLASSPATH_FILE).read_text().strip()
        cmd = [java, f"-Xms{self.heap_mb}m", f"-Xmx{self.heap_mb}m", *JVM_FLAGS, "-cp", classpath,
               MAIN_CLASS, str(self.home / "data"), self.host, str(self.port),
               str(self.page_cache_mb)]
        env = jvm_environment(self.password())
        with open(self.log_file, "wb") as log:  # one log per run
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True, cwd=self.home)
        self._proc = proc  # keep the handle: the server outlives this call, not this object
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None or "KGREC_NEO4J_FAILED" in self._log_tail(100_000):
                self.stop(kill=True)
                raise Neo4jServerError(f"Neo4j failed while starting; log tail:\n"
                                       f"{self._log_tail()}")
            if self._ready_since_start() and self.bolt_open():
                logger.info("Neo4j is answering on %s (pid %d)", self.uri, proc.pid)
                return self
            time.sleep(0.5)
        self.stop()
        raise Neo4jServerError(f"Neo4j did not answer on {self.uri} within {timeout:.0f}s; "
                               f"log tail:\n{self._log_tail()}")

    def stop(self, timeout: float = 60.0, *, kill: bool = False) -> None:
        """Stop cleanly (SIGTERM: the engine checkpoints and closes), or SIGKILL with ``kill``."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            if self._proc is not None:  # our child already exited: reap it
                self._proc.wait(timeout=timeout)
                self._proc = None
            return
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
            except ChildProcessError:  # not our child: poll instead
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
            time.sleep(0.2)
        else:
            if self._is_our_server(pid):
                os.kill(pid, signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait(timeout=timeout)
            self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> dict[str, object]:
        pid = self.pid()
        return {"running": pid is not None, "pid": pid, "uri": self.uri,
                "bolt_open": self.bolt_open(), "home": str(self.home)}

    def _ready_since_start(self) -> bool:
        return "KGREC_NEO4J_READY" in self._log_tail(100_000)

    def _log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_file.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"
