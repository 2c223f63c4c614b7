"""The health report behind ``/healthz``: plain data, no web framework.

``status`` is ``ok`` when everything answers and ``degraded`` when the shared cache (results are then
computed, only slower) or the Celery broker (then only cached texts can be shown) does not. The route
answers 200 in both cases: the process can serve, so a load balancer should keep it.

Anyone may ask, so by default the report is only ``{"status": ...}``; the details (models, cache,
extraction) are for signed-in users and direct loopback clients (``services.security``). Making the
report writes nothing (a Redis PING, a look at the cache folder), and its error texts name no host.
"""

from __future__ import annotations

import logging
from typing import Any

from ..config import get_settings
from ..model.loading import loaded_models
from ..store import cache


def extraction_status() -> dict[str, Any]:
    """Where forward passes run; with Celery, whether its broker answers (a 0.5 s Redis PING)."""
    settings = get_settings()
    if not settings.celery_broker_url:
        return {"mode": "in-process", "max_concurrent_forward": settings.max_concurrent_forward}
    info: dict[str, Any] = {"mode": "celery"}
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(settings.celery_broker_url, socket_connect_timeout=0.5, socket_timeout=0.5,
                                      retry=Retry(NoBackoff(), 0))
        try:
            info["broker_reachable"] = bool(client.ping())
        finally:
            client.close()
        _broker_failing[0] = False
    except Exception as exc:  # noqa: BLE001 - a health check reports, it never raises
        if not _broker_failing[0]:  # once per outage, not once per load-balancer poll
            logging.getLogger(__name__).warning("health check: the Celery broker does not answer (%r)", exc)
        _broker_failing[0] = True
        info["broker_reachable"] = False
        info["error"] = "the task queue does not answer"
    return info


_broker_failing = [False]


def health_report(detailed: bool = True) -> dict[str, Any]:
    """Status ``ok`` while the app can serve everything, ``degraded`` when a backend is down; with
    ``detailed``, which models, cache and extraction mode are in use."""
    settings = get_settings()
    cache_info = cache.status()
    extraction = extraction_status()
    cache_ok = bool(cache_info.get("reachable")) or settings.cache_type == "null"
    broker_ok = extraction.get("broker_reachable", True)
    status = "ok" if cache_ok and broker_ok else "degraded"
    if not detailed:
        return {"status": status}
    return {
        "status": status,
        "models_loaded": loaded_models(),
        "models_offered": list(settings.models),
        "default_model": settings.default_model,
        "cache": cache_info,
        "extraction": extraction,
    }
