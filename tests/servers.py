"""Real servers for tests and benchmarks: Redis, a Celery worker, gunicorn, on loopback, random ports.

Each server is a subprocess in its own process group, with bounded waits to start and to stop. Use
them as context managers, or call ``stop()`` from a fixture's finalizer: nothing is left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"

REDIS_MISSING = (
    "redis-server is not installed, so the shared-cache and Celery tests cannot run. "
    "Install it with `make install-test` (it runs `apt-get install redis-server`)."
)


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def venv_bin(name: str) -> str:
    """An executable of the interpreter running us (the project's venv), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise ServerError(f"{name} is not installed in {Path(sys.executable).parent} nor on PATH")
    return found


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


class _Process:
    """A subprocess in its own session (so it and its children stop together), output to a log file."""

    name = "server"

    def __init__(self, log_path: Path) -> None:
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen | None = None

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path = PROJECT_ROOT) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.proc = subprocess.Popen(
            argv, cwd=str(cwd), env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return _tail(self.log_path)

    def _fail(self, why: str) -> ServerError:
        return ServerError(f"{self.name} {why}. Last output ({self.log_path}):\n{self.log_text()}")

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """Stops the process group: ``sig`` first, SIGKILL after ``timeout`` seconds. Idempotent."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        else:  # the leader exited; make sure no child of its group is left behind
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc = None
        log = getattr(self, "_log", None)
        if log is not None:
            log.close()

    def kill(self) -> None:
        """Stops at once, as a crash would (SIGKILL, no shutdown)."""
        self.stop(timeout=5.0, sig=signal.SIGKILL)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class RedisServer(_Process):
    """``redis-server`` on 127.0.0.1, no persistence, no password (tests only)."""

    name = "redis-server"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(Path(workdir) / "redis.log")
        self.workdir = Path(workdir)
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def db_url(self, db: int) -> str:
        return f"redis://{LOOPBACK}:{self.port}/{db}"

    def start(self, wait: float = 15.0) -> "RedisServer":
        exe = shutil.which("redis-server")
        if exe is None:
            raise ServerError(REDIS_MISSING)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._spawn([
            exe, "--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no",
            "--dir", str(self.workdir), "--daemonize", "no", "--protected-mode", "yes",
        ])
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not self.alive():
                raise self._fail("exited while starting")
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise self._fail(f"did not answer PING within {wait:.0f} s")

    def ping(self) -> bool:
        import redis

        try:
            client = redis.Redis(host=LOOPBACK, port=self.port, socket_connect_timeout=0.3, socket_timeout=0.5)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # noqa: BLE001
            return False

    def wait_closed(self, wait: float = 5.0) -> None:
        deadline = time.monotonic() + wait
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)


class CeleryWorker(_Process):
    """``celery -A attention_explorer.services.store.tasks worker --pool=solo`` with the given environment."""

    name = "celery worker"

    def __init__(self, workdir: Path, env: dict[str, str], broker_url: str, hostname: str | None = None) -> None:
        super().__init__(Path(workdir) / "celery-worker.log")
        self.env = env
        self.broker_url = broker_url
        self.hostname = hostname or f"attn-test-{os.getpid()}-{free_port()}@%h"

    def start(self, wait: float = 90.0) -> "CeleryWorker":
        argv = [venv_bin("celery"), "-A", "attention_explorer.services.store.tasks", "worker", "--pool=solo", "--loglevel=INFO",
                "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", self.hostname]
        self._spawn(argv, env=self.env)
        from celery import Celery

        probe = Celery("attn-test-probe", broker=self.broker_url, backend=self.broker_url, set_as_current=False)
        try:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self.alive():
                    raise self._fail("exited while starting")
                try:
                    if probe.control.ping(timeout=0.5):
                        return self
                except Exception:  # noqa: BLE001 - broker not ready yet
                    pass
                time.sleep(0.2)
        finally:
            probe.close()
        self.stop()
        raise self._fail(f"did not answer a ping within {wait:.0f} s")


class Gunicorn(_Process):
    """``gunicorn -c gunicorn.conf.py app:server`` on a random loopback port."""

    name = "gunicorn"

    def __init__(self, workdir: Path, env: dict[str, str], workers: int = 1, threads: int = 4,
                 port: int | None = None, extra: list[str] | None = None) -> None:
        super().__init__(Path(workdir) / "gunicorn.log")
        self.env = env
        self.port = port or free_port()
        self.workers = workers
        self.threads = threads
        self.extra = extra or []

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, wait: float = 120.0, ready_path: str = "/healthz") -> "Gunicorn":
        import urllib.request

        argv = [venv_bin("gunicorn"), "-c", str(PROJECT_ROOT / "gunicorn.conf.py"), "-b", f"{LOOPBACK}:{self.port}",
                "--workers", str(self.workers), "--threads", str(self.threads), *_no_control_socket(),
                *self.extra, "app:server"]
        self._spawn(argv, env=self.env)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not self.alive():
                raise self._fail("exited while starting")
            try:
                with urllib.request.urlopen(self.url + ready_path, timeout=5) as response:
                    if response.status == 200:
                        return self
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            time.sleep(0.25)
        self.stop()
        raise self._fail(f"did not answer {ready_path} within {wait:.0f} s")

    def worker_pids(self) -> list[int]:
        """The gunicorn worker processes (children of the master)."""
        import psutil

        if not self.alive():
            return []
        return [c.pid for c in psutil.Process(self.proc.pid).children()]


def _no_control_socket() -> list[str]:
    """gunicorn >= 25.1 opens a control socket at one path per user: test servers must not share it."""
    import gunicorn

    return ["--no-control-socket"] if tuple(gunicorn.version_info[:2]) >= (25, 1) else []


def child_env(**overrides: str) -> dict[str, str]:
    """This process's environment without ``ATTN_*`` variables, offline, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTN_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                "PYTHONUNBUFFERED": "1"})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(overrides)
    return env
