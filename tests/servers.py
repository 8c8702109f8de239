"""Real servers for the tests, each a separate process on a free loopback port.

``RedisServer`` (redis-server), ``GunicornServer`` (the service as the Procfile starts it) and
``DaskCluster`` (a scheduler and its workers), each with a context manager that always stops it.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from automl.config import NUMBERS

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# The service's own settings: never inherited from the shell running the tests, only given.
SERVICE_VARIABLES = ("PORT", "REDIS_URL", "VCAP_SERVICES", "AUTOML_MODEL_DIR", "AUTOML_SECRET_KEY",
                     "AUTOML_RUN_JOBS", "DASK_SCHEDULER_ADDRESS", "WEB_CONCURRENCY",
                     "GUNICORN_WORKER_CONNECTIONS", "GUNICORN_TIMEOUT", "MAX_UPLOAD_MB",
                     "AUTOML_API_KEYS", "AUTOML_API_KEYS_FILE", "AUTOML_RATE_LIMIT",
                     "AUTOML_RATE_LIMIT_STORAGE", *NUMBERS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on port {port} after {seconds} s")


def stop_process_group(process: subprocess.Popen | None, grace_s: float = 10) -> None:
    """SIGTERM the group ``process`` leads, then SIGKILL whatever of it is left after ``grace_s``."""
    if process is None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # the whole group is gone already
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if process.poll() is not None and not group_members(process.pid):
                return
            time.sleep(0.1)
    process.poll()


def group_members(pgid: int) -> list[int]:
    """Live pids of process group ``pgid`` (zombies excluded)."""
    found = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [pid for pid in map(int, found.split()) if _alive(pid)]


def pids_matching(pattern: str) -> list[int]:
    """Live pids whose full command line matches ``pattern`` (``pgrep -f``)."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [pid for pid in map(int, found.split()) if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return "(no log)"


class RedisServer:
    """``redis-server`` in ``workdir``; ``stop``/``start`` keep its port. Without ``persist``
    it keeps nothing on disk (a restart comes back empty); with it, an append-only file."""

    def __init__(self, workdir: Path, persist: bool = False):
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.executable = executable
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.persist = persist
        self.process = None

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.persist else "no", "--appendfsync", "always",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def flush(self) -> None:
        import redis

        redis.Redis.from_url(self.url).flushdb()


@contextmanager
def redis_server(workdir: Path, persist: bool = False):
    server = RedisServer(workdir, persist).start()
    try:
        yield server
    finally:
        server.stop()


def procfile_web_command() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise AssertionError("Procfile has no web: line")


class GunicornServer:
    """The service started exactly as Cloud Foundry starts it: the Procfile's ``web:`` line run
    by a shell with ``$PORT`` set, in a process group of its own.

    ``env`` adds the service's settings (``AUTOML_MODEL_DIR``, ``REDIS_URL``...); those of the
    shell running the tests are not inherited. ``restart`` and a ``start`` after ``kill9`` keep
    the port, so clients and ``url`` stay valid. Output goes to ``log``, appended across starts.
    """

    def __init__(self, log: Path, env: dict[str, str] | None = None, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
        self.env = {**inherited,
                    "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                    **(env or {}), "PORT": str(self.port)}
        self.log = Path(log)
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> "GunicornServer":
        import requests

        with self.log.open("ab") as log:
            self.process = subprocess.Popen(procfile_web_command(), shell=True, cwd=ROOT,
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.process.returncode}:\n"
                                     f"{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).ok:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # still booting
                pass
            time.sleep(0.2)
        self.kill9()
        raise AssertionError(f"gunicorn did not answer within {timeout_s} s:\n{self.log_tail()}")

    def stop(self, grace_s: float = 30) -> None:
        """SIGTERM to the master's process group (gunicorn's graceful shutdown), then SIGKILL."""
        if self.process is not None:
            stop_process_group(self.process, grace_s)

    def restart(self) -> "GunicornServer":
        self.stop()
        return self.start()

    def kill9(self) -> None:
        """SIGKILL to the master and its workers at once: no shutdown code runs anywhere."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        deadline = time.monotonic() + 10
        while group_members(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pids(self) -> list[int]:
        """The shell, the gunicorn master and its workers (not the training processes, which
        run in process groups of their own)."""
        return group_members(self.process.pid) if self.running else []

    def log_tail(self, chars: int = 3000) -> str:
        return _tail(self.log, chars)

    def __enter__(self) -> "GunicornServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class DaskCluster:
    """``dask scheduler`` and ``dask worker`` processes on loopback, each in its own process
    group; ``address`` is what ``DASK_SCHEDULER_ADDRESS`` takes."""

    def __init__(self, workdir: Path, nworkers: int = 2, nthreads: int = 1):
        self.workdir = Path(workdir)
        self.nworkers = nworkers
        self.nthreads = nthreads
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler: subprocess.Popen | None = None
        self.workers: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> "DaskCluster":
        dask = str(VENV_BIN / "dask")
        try:
            self.scheduler = self._spawn("scheduler", [dask, "scheduler", "--host", "127.0.0.1",
                                                       "--port", str(self.port), "--no-dashboard"])
            wait_for_port(self.port, self.scheduler, timeout_s)
            self.workers = self._spawn("workers", [
                dask, "worker", self.address, "--nworkers", str(self.nworkers),
                "--nthreads", str(self.nthreads), "--no-dashboard", "--host", "127.0.0.1"])
            from distributed import Client

            with Client(self.address, timeout=timeout_s) as client:
                client.wait_for_workers(self.nworkers, timeout=timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process_group(self.workers)
        stop_process_group(self.scheduler)

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {name}.log\n{_tail(self.workdir / f'{name}.log', chars)}"
                         for name in ("scheduler", "workers"))

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with (self.workdir / f"{name}.log").open("ab") as log:
            return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)


@contextmanager
def dask_cluster(workdir: Path, nworkers: int = 2, nthreads: int = 1):
    cluster = DaskCluster(workdir, nworkers, nthreads).start()
    try:
        yield cluster
    finally:
        cluster.stop()
