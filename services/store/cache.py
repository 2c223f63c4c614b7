"""The attention cache: a shared ``flask_caching.Cache`` behind a small in-process memo.

- ``cache`` is created at import and bound with ``init_cache(app, settings)`` in the app factory
  (outside an app, e.g. in a notebook, it binds itself to a private Flask app on first use).
- The shared backend is a file-system cache by default (shared by every process on one host, in a
  private folder, bounded by ``cache_max_mb`` megabytes and ``cache_threshold`` entries), Redis when
  ``ATTN_REDIS_URL`` is set (several hosts), and a simple or null cache in tests.
- Values are written and read by ``services.store.codec`` through the backends of
  ``services.store.backends``: never a pickle. A value that cannot be decoded is a miss (logged).
- A cache folder that cannot be created, or that is not private (another owner, or writable by
  others), is refused with one log line: the app starts and computes without a shared cache.
- In front of it, the process's memory of recent results (``services.store.memory``, bounded in
  megabytes) makes a layer or head change on cached text cost no deserialisation.
- A backend that fails to read or write is logged and skipped for a few seconds; the result is
  computed instead, and the backend is used again once it answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

from flask import Flask
from flask_caching import Cache

from ..config import Settings, get_settings
from . import jobs
from .backends import private_dir_problem
from .memory import memory, size_of

log = logging.getLogger(__name__)

KEY_VERSION = "attn-v4"  # v4: recorded results (codec 3); v3: one field table; v1 entries were pickles
# Seconds a failing backend is skipped before it is tried again (tests patch it or set the variable).
RETRY_AFTER_S = float(os.environ.get("ATTN_CACHE_RETRY_S", "") or 5.0)

cache = Cache()


_BACKENDS = __name__.rsplit(".", 1)[0] + ".backends"  # attention_explorer.services.store.backends
REFUSED_TYPE = "NullCache"
# Why the configured file-system cache is not used (None: it is), set when the cache is bound.
_refused: str | None = None


def cache_config(settings: Settings, check_dir: bool = False) -> dict[str, Any]:
    """flask-caching's configuration for ``settings``. With ``check_dir``, the file-system cache's folder
    is created and checked first; a folder that cannot be used gives a null cache (and is logged)."""
    common = {"CACHE_DEFAULT_TIMEOUT": settings.cache_timeout, "CACHE_KEY_PREFIX": "attention-explorer:"}
    if settings.cache_type == "filesystem":
        if check_dir:
            problem = private_dir_problem(settings.cache_dir)
            if problem:
                log.warning("attention cache: not using the folder %s: %s. Analyses are computed without a shared "
                            "cache; set ATTN_CACHE_DIR to a private folder (see docs/security.md).",
                            settings.cache_dir, problem)
                return {**common, "CACHE_TYPE": REFUSED_TYPE, "ATTN_REFUSED": problem}
        return {**common, "CACHE_TYPE": f"{_BACKENDS}.SafeFileSystemCache", "CACHE_DIR": settings.cache_dir,
                "CACHE_THRESHOLD": settings.cache_threshold, "ATTN_CACHE_MAX_BYTES": settings.cache_max_mb * 1024 * 1024}
    if settings.cache_type == "redis":
        return {**common, "CACHE_TYPE": f"{_BACKENDS}.SafeRedisCache",
                "CACHE_REDIS_URL": settings.redis_url or "redis://127.0.0.1:6379/0", "CACHE_OPTIONS": redis_options()}
    if settings.cache_type == "simple":
        return {**common, "CACHE_TYPE": f"{_BACKENDS}.SafeSimpleCache", "CACHE_THRESHOLD": 64}
    return {**common, "CACHE_TYPE": "NullCache"}


def _bind(app: Flask, settings: Settings) -> None:
    global _refused, _bound_settings
    config = cache_config(settings, check_dir=True)
    _refused = config.pop("ATTN_REFUSED", None)
    cache.init_app(app, config=config)
    _bound_settings = settings


def redis_options() -> dict[str, Any]:
    """Client options for the Redis cache: fail fast when Redis is down, reconnect when it is back.

    redis-py's default retries a failed command 10 times with back-off (seconds per request while
    Redis is down); one immediate retry is enough to replace a connection that a Redis restart
    closed. The breaker below then skips Redis until ``RETRY_AFTER_S`` has passed.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {
        "socket_connect_timeout": 0.5,
        "socket_timeout": 5.0,  # per socket read or write: a large entry streams in many of them
        "socket_keepalive": True,
        "health_check_interval": 30,
        "retry": Retry(NoBackoff(), 1),
    }


def failure_in_words(what: str, exc: BaseException) -> str:
    """A cache failure as /healthz says it: plain words, no path, host or exception text."""
    import errno

    doing = "writing to the cache fails" if what == "write" else "reading from the cache fails"
    number = getattr(exc, "errno", None)
    if number in (errno.ENOSPC, errno.EDQUOT):
        return f"{doing}: its disk is full"
    if number in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{doing}: its folder is read-only or its permissions changed"
    if number == errno.ENOENT:
        return f"{doing}: its folder is missing"
    if type(exc).__module__.startswith("redis") or isinstance(exc, (ConnectionError, TimeoutError)):
        return f"{doing}: Redis does not answer"
    return doing


class _Breaker:
    """Skips a failing backend for ``RETRY_AFTER_S`` seconds, so a down cache costs one timeout, not one per
    call; remembers the last failure (for /healthz) until an operation succeeds again."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock  # tests inject a fake clock
        self.down_until = 0.0
        self.last_error = ""
        self.failing = False
        self.failure = ""  # the last failure in plain words (failure_in_words)
        self.unreachable = False
        self.failed_at = float("-inf")

    def is_open(self) -> bool:
        return self.clock() < self.down_until

    def trip(self, what: str, exc: BaseException) -> None:
        if not self.is_open():
            log.warning("attention cache %s failed (%s); computing instead, retrying in %.0f s",
                        what, exc, RETRY_AFTER_S)
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.failure = failure_in_words(what, exc)
        self.unreachable = self.failure.endswith("Redis does not answer")  # a PING that answers settles it
        self.failed_at = self.clock()
        self.failing = True
        self.down_until = self.clock() + RETRY_AFTER_S

    def recent_failure(self, within: float) -> str | None:
        """The last failure in plain words while nothing succeeded since and it is at most ``within``
        seconds old; None otherwise."""
        if self.failing and self.clock() - self.failed_at <= within:
            return self.failure
        return None

    def succeeded(self) -> None:
        if self.failing:
            self.failing = False
            log.info("attention cache is reachable again; using it")

    def reset(self) -> None:
        self.down_until = 0.0

    def clear(self) -> None:
        """Forgets everything (a new binding): no wait, no failure."""
        self.reset()
        self.failing = False
        self.failure = ""
        self.failed_at = float("-inf")


BACKGROUND_WRITE_BYTES = 4 * 1024 * 1024
_writes_lock = threading.Lock()
_pending: set = set()
_write_pool: ThreadPoolExecutor | None = None

_breaker = _Breaker()
_bind_lock = threading.Lock()
_bound_settings: Settings | None = None


def init_cache(app: Flask, settings: Settings | None = None) -> None:
    """Binds the shared cache to ``app`` with the backend the settings name. Never raises for a
    cache folder that cannot be used (it is logged and the app computes without it)."""
    settings = settings or get_settings()
    with _bind_lock:
        app.extensions.get("cache", {}).pop(cache, None)
        _bind(app, settings)
        _breaker.clear()
        _new_writer()
    memory().configure(0 if settings.cache_type == "null" else settings.local_cache_mb)
    memory().reset()


def _backend():
    if getattr(cache, "app", None) is None:
        with _bind_lock:
            if getattr(cache, "app", None) is None:
                _bind(Flask("attention-explorer-services"), get_settings())
    return cache.cache


def make_key(*parts: Any) -> str:
    payload = json.dumps([KEY_VERSION, *parts], ensure_ascii=False, separators=(",", ":"))
    return KEY_VERSION + ":" + hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def lookup(key: str) -> Any | None:
    """The cached value, or ``None`` on a miss or when the backend fails (logged)."""
    value = memory().results.get(key)
    if value is not None:
        return value
    if _breaker.is_open():
        return None
    try:
        value = _backend().get(key)
    except Exception as exc:  # noqa: BLE001 - a broken cache must never break a request
        _breaker.trip("read", exc)
        return None
    _breaker.succeeded()
    if value is not None:
        memory().results.put(key, value, size_of(value))
    return value


def store(key: str, value: Any, size: int | None = None) -> bool:
    """Stores ``value`` in this process's memo at once and in the shared backend.

    Values of ``BACKGROUND_WRITE_BYTES`` or more (long texts: tens of MB) go to the shared backend in a
    background thread, so the person does not wait for the write; ``flush()`` waits for it. Returns
    False (and logs) when the shared backend fails, True when the write was handed to the thread.
    """
    size = size if size is not None else size_of(value)
    memory().results.put(key, value, size)
    if _breaker.is_open():
        return False
    if size >= BACKGROUND_WRITE_BYTES:
        future = _writer().submit(_write_shared, key, value)
        with _writes_lock:
            _pending.add(future)
        future.add_done_callback(_forget)
        return True
    return _write_shared(key, value)


def flush(timeout: float = 30.0) -> None:
    """Waits for background writes to the shared backend (tests, shutdown)."""
    with _writes_lock:
        pending = list(_pending)
    futures_wait(pending, timeout=timeout)


def _forget(future) -> None:
    with _writes_lock:
        _pending.discard(future)


def _new_writer() -> None:
    """A new binding writes through a writer thread of its own: a write to the backend bound before (one
    that hangs, or a backlog of large ones) never delays this binding's writes or ``flush``."""
    global _write_pool
    with _writes_lock:
        old, _write_pool = _write_pool, None
        _pending.clear()
    if old is not None:
        old.shutdown(wait=False, cancel_futures=True)  # its queued writes were for the binding before


def _writer() -> ThreadPoolExecutor:
    global _write_pool
    if _write_pool is None:
        _write_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="attention-cache-write")
    return _write_pool


def _write_shared(key: str, value: Any) -> bool:
    try:
        ok = _backend().set(key, value)
    except Exception as exc:  # noqa: BLE001
        _breaker.trip("write", exc)
        return False
    _breaker.succeeded()
    return bool(ok) or ok is None


_health_failing = [False]
# Reads or writes that failed this recently, with none succeeding since, make /healthz say "degraded".
RECENT_FAILURE_S = 300.0


def status() -> dict[str, Any]:
    """Which backend is in use, whether it answers right now and whether reads or writes failed lately
    (for /healthz): ``reachable``, and ``error`` (why not) or ``failing`` (the last failure, when nothing
    succeeded since; e.g. a full or read-only disk, where the folder still looks fine). Writes nothing: a
    Redis PING, or a look at the cache folder. The texts name no host, path or exception."""
    settings = _bound_settings or get_settings()
    info: dict[str, Any] = {"type": settings.cache_type}
    if settings.cache_type == "null":
        info["reachable"] = True
        return info
    try:
        backend = _backend()
        if _refused:
            info["reachable"] = False
            info["error"] = "the cache folder is not usable (not private, or cannot be created): see the server log"
            return info
        check = getattr(backend, "problem", None)
        problem = check() if check is not None else None
    except Exception as exc:  # noqa: BLE001 - a health check reports, it never raises
        if not _health_failing[0]:  # once per outage, not once per load-balancer poll
            log.warning("health check: the attention cache does not answer (%r)", exc)
        problem = "Redis does not answer" if settings.cache_type == "redis" else "the cache does not answer"
    _health_failing[0] = problem is not None
    info["reachable"] = problem is None
    if problem is None:
        _breaker.reset()  # it answers: the next request tries it again (a success clears the failure)
        if _breaker.unreachable:
            _breaker.succeeded()  # Redis answered a PING: it is back (a full disk needs a write that succeeds)
    else:
        info["error"] = problem
    failure = _breaker.recent_failure(RECENT_FAILURE_S)
    if failure and problem is None:
        info["failing"] = failure
    return info


def clear_local() -> None:
    """Empties this process's memory of analyses (``services.store.memory``: tests, a changed model)."""
    memory().reset()


def publish(key: str, text: str, timeout: int = 900) -> bool:
    """Writes a small text (a job's progress, a flag) straight to the shared backend, NOT to this process's
    memo, so that every worker reading ``read_published`` sees the latest. False when there is no shared
    backend (a null cache) or it fails (logged by the breaker)."""
    if _breaker.is_open():
        return False
    try:
        ok = _backend().set(key, text, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - progress must never break the work it reports
        _breaker.trip("write", exc)
        return False
    return bool(ok) or ok is None


def read_published(key: str) -> str | None:
    """The text ``publish`` wrote under ``key`` (read from the shared backend every time), or None."""
    if _breaker.is_open():
        return None
    try:
        value = _backend().get(key)
    except Exception as exc:  # noqa: BLE001
        _breaker.trip("read", exc)
        return None
    return value if isinstance(value, str) else None


jobs.connect(publish, read_published, make_key)  # background jobs share their progress through this cache
