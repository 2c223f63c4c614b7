"""The health report behind ``/healthz``: plain data, no web framework.

``status`` is ``ok`` when everything answers and ``degraded`` when the shared cache (results are then
computed, only slower) or the Celery broker (then only cached texts can be shown) does not. The route
answers 200 in both cases: the process can serve, so a load balancer should keep it.
"""

from __future__ import annotations

from typing import Any

from . import cache
from .config import get_settings
from .models import loaded_models


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
    except Exception as exc:  # noqa: BLE001 - a health check reports, it never raises
        info["broker_reachable"] = False
        info["error"] = f"{type(exc).__name__}: {exc}"[:200]
    return info


def health_report() -> dict[str, Any]:
    """Status ``ok`` while the app can serve everything, ``degraded`` when a backend is down."""
    settings = get_settings()
    cache_info = cache.status()
    extraction = extraction_status()
    cache_ok = bool(cache_info.get("reachable")) or settings.cache_type == "null"
    broker_ok = extraction.get("broker_reachable", True)
    return {
        "status": "ok" if cache_ok and broker_ok else "degraded",
        "models_loaded": loaded_models(),
        "models_offered": list(settings.models),
        "default_model": settings.default_model,
        "cache": cache_info,
        "extraction": extraction,
    }
