"""The server's secret: the key that signs what a page keeps of an analysis (``services.store.recipes``).

Every web process that may answer a page must use the same secret, or it cannot read the page's
handle. Where it comes from, the first found:

1. ``ATTN_SECRET_KEY`` (at least 32 characters, e.g. ``python -c "import secrets; print(secrets.token_urlsafe(48))"``).
   **Required** when the shared cache is a Redis on another machine (``ATTN_REDIS_URL`` with a host that is
   not this one): several web hosts then serve the same pages and must share it; the app refuses to
   start without it (``check_settings``).
2. ``secret-key`` in the private cache folder (``ATTN_CACHE_DIR``, checked as the cache checks it: ours,
   0700): made on first use (48 random bytes, mode 0600, written whole before it appears), then read by
   every process of the host that uses the folder, and kept across restarts.
3. ``ATTN_RUN_SECRET``, which ``gunicorn.conf.py`` sets in the gunicorn master for its workers when
   ``ATTN_SECRET_KEY`` is not set: the workers of one gunicorn share it even when the cache folder is
   refused (until gunicorn restarts: pages opened before then must be analysed again).
4. Random, for this process only (logged once): right for ``python app.py`` and notebooks; several
   processes would not read each other's handles.

Never sent to a browser, never logged, never written outside the private folder.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import stat
import tempfile
import threading
from urllib.parse import urlsplit

from ..config import Settings, get_settings
from .backends import private_dir_problem

log = logging.getLogger(__name__)

FILE_NAME = "secret-key"
MIN_LENGTH = 32
RUN_SECRET = "ATTN_RUN_SECRET"
_SIZE = 48

_lock = threading.Lock()
_cached: dict[tuple, bytes] = {}


class SecretKeyError(ValueError):
    """The configuration needs ``ATTN_SECRET_KEY`` (several hosts), or the one given is too short."""


def _is_local_host(host: str | None) -> bool:
    if not host or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def needs_shared_secret(settings: Settings) -> bool:
    """Whether several hosts may serve the same pages: a Redis cache that is not on this machine."""
    if settings.cache_type != "redis" or not settings.redis_url:
        return False
    url = urlsplit(settings.redis_url)
    return url.scheme not in ("unix", "redis+unix") and not _is_local_host(url.hostname)


def check_settings(settings: Settings) -> None:
    """Raises ``SecretKeyError`` (for the person starting the server) when the settings cannot work:
    ``ATTN_SECRET_KEY`` too short, or missing while several hosts share the cache."""
    configured = settings.secret_key
    if configured and len(configured) < MIN_LENGTH:
        raise SecretKeyError(f"ATTN_SECRET_KEY must be at least {MIN_LENGTH} characters long")
    if not configured and needs_shared_secret(settings):
        raise SecretKeyError(
            "ATTN_SECRET_KEY is required when the cache is a Redis on another machine (ATTN_REDIS_URL): every "
            "web host must sign pages with the same secret. Set the same long random value on every host "
            "(python -c \"import secrets; print(secrets.token_urlsafe(48))\").")


def server_secret(settings: Settings | None = None) -> bytes:
    """The secret (see the module's docstring). Raises ``SecretKeyError`` only as ``check_settings`` does."""
    settings = settings or get_settings()
    check_settings(settings)
    if settings.secret_key:
        return settings.secret_key.encode("utf-8")
    where = (settings.cache_type, settings.cache_dir)
    with _lock:
        found = _cached.get(where)
        if found is None:
            found = _cached[where] = _from_folder(settings.cache_dir) or _from_run() or _random()
        return found


def _from_folder(folder: str) -> bytes | None:
    """The secret kept in the private folder, made there if it has none; None when the folder cannot be used."""
    problem = private_dir_problem(folder)
    if problem:
        return None
    path = os.path.join(os.path.expanduser(folder), FILE_NAME)
    found = _read(path)
    if found is not None:
        return found
    made = secrets.token_bytes(_SIZE)
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-secret-")  # 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(made)
            os.link(tmp, path)  # appears whole, and never replaces one another process made meanwhile
        except FileExistsError:
            pass
        finally:
            os.remove(tmp)
    except OSError as exc:
        log.warning("could not keep the server's secret in the cache folder (%s)", exc.strerror or exc)
        return None
    return _read(path)


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("the server's secret in the cache folder cannot be read (%s)", exc.strerror or exc)
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            log.warning("ignored the server's secret file in the cache folder: not a private file of ours")
            return None
        data = handle.read(4 * _SIZE)
    return data if len(data) == _SIZE else None


def _from_run() -> bytes | None:
    value = os.environ.get(RUN_SECRET, "")
    return value.encode("utf-8") if len(value) >= MIN_LENGTH else None


def _random() -> bytes:
    log.warning("no ATTN_SECRET_KEY and no usable cache folder: this process signs pages with a secret of its "
                "own, which other processes cannot read (set ATTN_SECRET_KEY when several serve the app)")
    return secrets.token_bytes(_SIZE)


def forget() -> None:
    """Forgets the secrets read (tests; a new configuration)."""
    with _lock:
        _cached.clear()
