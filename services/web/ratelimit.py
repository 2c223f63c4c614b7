"""A per-person limit on analyses of new texts, for shared servers (off unless ``ATTN_RATE_LIMIT`` is set).

Only a text that is not cached costs a forward pass, so only those are counted: pass
``new_analysis_guard(client_id())`` as ``before_compute`` to ``services.extraction.analyse``, which
calls it once, right before the model runs. Over the limit it raises ``RateLimitedError`` with the
seconds to wait. Counting uses the ``limits`` library (the one flask-limiter is built on), with a
moving window, in memory (per process) or in Redis (shared by every worker and host).

``client_id()`` says who is asking: the signed-in user when there is one, else the client's address
(the proxy's ``X-Forwarded-For`` is believed only with ``ATTN_TRUSTED_PROXIES``, see services.security).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from ..config import Settings, get_settings
from ..errors import RateLimitedError

log = logging.getLogger(__name__)

_lock = threading.Lock()
_limiters: dict[str, object] = {}


def storage_uri(settings: Settings) -> str:
    """Where counts live: ``rate_limit_storage``, else the Redis cache's URL, else this process's memory."""
    if settings.rate_limit_storage:
        return settings.rate_limit_storage
    if settings.cache_type == "redis" and settings.redis_url:
        return settings.redis_url
    return "memory://"


def _limiter(uri: str):
    """One moving-window limiter per storage URI, built on first use."""
    with _lock:
        limiter = _limiters.get(uri)
        if limiter is None:
            from limits.storage import storage_from_string
            from limits.strategies import MovingWindowRateLimiter

            options = {"socket_connect_timeout": 0.5, "socket_timeout": 1.0} if uri.startswith("redis") else {}
            limiter = _limiters[uri] = MovingWindowRateLimiter(storage_from_string(uri, **options))
        return limiter


def reset() -> None:
    """Forgets every count and limiter (tests; a new configuration)."""
    with _lock:
        limiters = list(_limiters.values())
        _limiters.clear()
    for limiter in limiters:
        try:
            limiter.storage.reset()
        except Exception:  # noqa: BLE001 - best effort
            pass


def check(limit: str, scope: str, who: str, uri: str, *, cost: int = 1) -> int:
    """Counts one event of ``scope`` for ``who``; 0 when allowed, else the seconds to wait.

    A storage that fails (Redis down) lets the event through and logs: a limit never stops the app.
    """
    return _wait(limit, scope, who, uri, lambda limiter, item: limiter.hit(item, scope, who, cost=cost))


def peek(limit: str, scope: str, who: str, uri: str) -> int:
    """0 when one more event of ``scope`` for ``who`` would be allowed, else the seconds to wait
    (counts nothing)."""
    return _wait(limit, scope, who, uri, lambda limiter, item: limiter.test(item, scope, who))


def _wait(limit: str, scope: str, who: str, uri: str, allowed) -> int:
    """The seconds to wait for the longest of ``limit``'s windows where ``allowed(limiter, item)`` is
    false; 0 when none, or when the storage fails (logged)."""
    from limits import parse_many

    wait = 0
    try:
        limiter = _limiter(uri)
        for item in parse_many(limit):
            if not allowed(limiter, item):
                stats = limiter.get_window_stats(item, scope, who)
                wait = max(wait, 1, math.ceil(stats.reset_time - time.time()))
    except Exception as exc:  # noqa: BLE001
        log.warning("rate limit storage failed (%r): not limiting", exc)
        return 0
    return wait


def new_analysis_guard(who: str, settings: Settings | None = None) -> Callable[[], None]:
    """A callable for ``analyse(..., before_compute=...)``: counts one new analysis for ``who`` and
    raises ``RateLimitedError`` over ``ATTN_RATE_LIMIT``. A no-op when the limit is off."""
    settings = settings or get_settings()
    if not settings.rate_limit:
        return _allow

    def guard() -> None:
        wait = check(settings.rate_limit, "new-analysis", who or "anonymous", storage_uri(settings))
        if wait:
            log.info("rate limit: %s must wait %d s for a new analysis", who, wait)
            raise RateLimitedError(wait)

    return guard


def _allow() -> None:
    return None


def client_id() -> str:
    """Who is asking, for per-person limits: ``user:NAME`` when signed in, else ``addr:ADDRESS``;
    ``local`` outside a web request (a notebook). Never raises."""
    try:
        from flask import g, has_request_context, request
    except ImportError:  # pragma: no cover
        return "local"
    if not has_request_context():
        return "local"
    user = getattr(g, "attn_user", None)
    if user:
        return f"user:{user}"
    return f"addr:{request.remote_addr or 'unknown'}"
