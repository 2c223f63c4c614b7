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
    """``celery -A attention_explorer.services.store.tasks worker --pool=solo`` with the given environment
    (``app``: another module holding the Celery app, e.g. ``tests.slow_worker``)."""

    name = "celery worker"

    def __init__(self, workdir: Path, env: dict[str, str], broker_url: str, hostname: str | None = None,
                 app: str = "attention_explorer.services.store.tasks") -> None:
        super().__init__(Path(workdir) / "celery-worker.log")
        self.env = env
        self.broker_url = broker_url
        self.hostname = hostname or f"attn-test-{os.getpid()}-{free_port()}@%h"
        self.app = app

    def start(self, wait: float = 90.0) -> "CeleryWorker":
        argv = [venv_bin("celery"), "-A", self.app, "worker", "--pool=solo", "--loglevel=INFO",
                "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", self.hostname]
        self._spawn(argv, env=self.env)
        from celery import Celery

        from celery.utils.nodenames import host_format

        probe = Celery("attn-test-probe", broker=self.broker_url, backend=self.broker_url, set_as_current=False)
        name = host_format(self.hostname)  # this worker's answer, not another's on the same broker
        try:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self.alive():
                    raise self._fail("exited while starting")
                try:
                    if probe.control.ping(destination=[name], timeout=0.5):
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


# ============================================================================ nginx in front (docs/nginx)

NGINX_SITE = PROJECT_ROOT / "docs" / "nginx" / "attention-explorer.conf"
NGINX_MISSING = (
    "nginx is not installed, so the reverse-proxy tests cannot run. "
    "Install it with `make install-test` (it runs `apt-get install nginx-light`)."
)
OPENSSL_MISSING = "openssl is not installed (the proxy tests make a TLS certificate with it): `make install-test`."


def render_nginx_site(text: str, *, http_port: int, https_port: int, upstream: str, certificate: Path,
                      key: Path, htpasswd: Path, secret_file: Path) -> str:
    """The documented site file with its machine-specific values replaced (each found exactly once, so
    the test runs the documented configuration, not a copy that could drift)."""
    replacements = {
        "server 127.0.0.1:8050;": f"server {upstream};",
        "listen 80;": f"listen {LOOPBACK}:{http_port};",
        "listen 443 ssl;": f"listen {LOOPBACK}:{https_port} ssl;",
        "/etc/ssl/certs/attention.lab.example.pem;": f"{certificate};",
        "/etc/ssl/private/attention.lab.example.key;": f"{key};",
        "/etc/nginx/attention-explorer.htpasswd;": f"{htpasswd};",
        "/etc/nginx/attention-explorer-secret.conf;": f"{secret_file};",
    }
    for old, new in replacements.items():
        count = text.count(old)
        if count != 1:
            raise ServerError(f"{NGINX_SITE.name}: expected {old!r} once, found it {count} times")
        text = text.replace(old, new)
    return text


def make_certificate(folder: Path, name: str = "attention.lab.example") -> tuple[Path, Path]:
    """A self-signed certificate and its key (openssl), for a TLS listener in tests."""
    exe = shutil.which("openssl")
    if exe is None:
        raise ServerError(OPENSSL_MISSING)
    folder.mkdir(parents=True, exist_ok=True)
    certificate, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([exe, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name},IP:{LOOPBACK}",
                    "-keyout", str(key), "-out", str(certificate)], check=True, capture_output=True, timeout=60)
    return certificate, key


def htpasswd_line(name: str, password: str) -> str:
    """``name:hash`` for nginx's auth_basic_user_file, as docs/deployment.md makes it (``openssl passwd -6``)."""
    exe = shutil.which("openssl")
    if exe is None:
        raise ServerError(OPENSSL_MISSING)
    done = subprocess.run([exe, "passwd", "-6", "-stdin"], input=password + "\n", capture_output=True, text=True,
                          check=True, timeout=30)
    return f"{name}:{done.stdout.strip()}\n"


class Nginx(_Process):
    """nginx (in the foreground, its own prefix, pid, logs and temp folders) serving the documented site
    file on two random loopback ports, in front of ``upstream``."""

    name = "nginx"

    def __init__(self, workdir: Path, upstream: str, users: dict[str, str], secret: str) -> None:
        super().__init__(Path(workdir) / "nginx-run.log")
        self.workdir = Path(workdir)
        self.certificate: Path | None = None
        self.upstream = upstream
        self.users = users
        self.secret = secret
        self.http_port = free_port()
        self.https_port = free_port()

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.https_port}"

    def error_log(self) -> str:
        return _tail(self.workdir / "error.log", 6000)

    def access_log(self) -> str:
        return _tail(self.workdir / "access.log", 10**7)

    def _write_config(self) -> Path:
        work = self.workdir
        certificate, key = make_certificate(work / "tls")
        self.certificate = certificate
        htpasswd = work / "htpasswd"
        htpasswd.write_text("".join(htpasswd_line(n, p) for n, p in self.users.items()))
        secret_file = work / "secret.conf"
        secret_file.write_text(f'set $attention_proxy_secret "{self.secret}";\n')
        for path in (htpasswd, secret_file, key):
            path.chmod(0o600)
        site = work / "attention-explorer.conf"
        site.write_text(render_nginx_site(NGINX_SITE.read_text(), http_port=self.http_port,
                                          https_port=self.https_port, upstream=self.upstream,
                                          certificate=certificate, key=key, htpasswd=htpasswd,
                                          secret_file=secret_file))
        temp = {name: work / "temp" / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for folder in temp.values():
            folder.mkdir(parents=True, exist_ok=True)
        # What Debian's /etc/nginx/nginx.conf provides around a site file, in this test's folder. As root,
        # the workers run as root too: they must read the test's private files (a real host uses www-data).
        main = work / "nginx.conf"
        main.write_text("\n".join([
            "daemon off;", "worker_processes 1;", f"pid {work / 'nginx.pid'};", f"error_log {work / 'error.log'} info;",
            "user root;" if os.geteuid() == 0 else "",
            "events { worker_connections 512; }",
            "http {",
            f"    access_log {work / 'access.log'};",
            f"    client_body_temp_path {temp['body']};", f"    proxy_temp_path {temp['proxy']};",
            f"    fastcgi_temp_path {temp['fastcgi']};", f"    uwsgi_temp_path {temp['uwsgi']};",
            f"    scgi_temp_path {temp['scgi']};",
            f"    include {site};",
            "}", ""]))
        return main

    def start(self, wait: float = 30.0) -> "Nginx":
        exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if exe is None:
            raise ServerError(NGINX_MISSING)
        main = self._write_config()
        check = subprocess.run([exe, "-t", "-p", str(self.workdir), "-e", str(self.workdir / "error.log"),
                                "-c", str(main)], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise ServerError(f"nginx refused the configuration:\n{check.stderr}")
        self._spawn([exe, "-p", str(self.workdir), "-e", str(self.workdir / "error.log"), "-c", str(main)])
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not self.alive():
                raise self._fail("exited while starting")
            if port_open(self.https_port) and port_open(self.http_port):
                return self
            time.sleep(0.05)
        self.stop()
        raise self._fail(f"did not listen within {wait:.0f} s")
