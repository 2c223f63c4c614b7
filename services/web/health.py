"""The health report behind ``/healthz``: plain data, no web framework.

``status`` is ``ok`` when everything answers and ``degraded`` when a shared part fails: the shared cache
does not answer, or its reads or writes failed lately (a full or read-only disk, a refused folder, Redis
down: results are then computed again from the pages' recipes, only slower); or, with Celery, the broker
does not answer, no worker beat in the last seconds, or tasks timed out lately (then new texts are
refused, analysed ones still shown). ``reasons`` says which, in plain words. The route answers 200 in
every case: the process can serve, so a load balancer should keep it.

Anyone may ask, so by default the report is only ``{"status": ...}``; the details (models, cache,
extraction) are for signed-in users and direct loopback clients (``services.security``). Making the
report writes nothing (a Redis PING, a look at the cache folder), and its error texts name no host.
"""

from __future__ import annotations

import logging
from typing import Any

from ..config import get_settings
from ..model.loading import loaded_models
from ..store import cache, tasks


def extraction_status() -> dict[str, Any]:
    """Where forward passes run; with Celery, whether its broker answers (a 0.5 s Redis PING), how many
    workers beat lately and how many tasks this process gave up on lately (``services.store.tasks``)."""
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
    info.update(tasks.status())
    if info["workers_alive"] == 0:
        info["error"] = f"no attention worker has been heard from in the last {tasks.STALE_S:.0f} s"
    elif info["recent_timeouts"]:
        info["error"] = (f"{info['recent_timeouts']} task(s) given up in the last {tasks.RECENT_S / 60:.0f} minutes "
                         "(no worker answered in time)")
    return info


_broker_failing = [False]


def health_report(detailed: bool = True) -> dict[str, Any]:
    """Status ``ok`` while the app can serve everything, ``degraded`` when a backend is down; with
    ``detailed``, which models, cache and extraction mode are in use."""
    settings = get_settings()
    cache_info = cache.status()
    extraction = extraction_status()
    reasons = [text for text in (cache_info.get("error"), cache_info.get("failing"), extraction.get("error")) if text]
    status = "degraded" if reasons else "ok"
    if not detailed:
        return {"status": status}
    report: dict[str, Any] = {"status": status}
    if reasons:
        report["reasons"] = reasons
    return {
        **report,
        "models_loaded": loaded_models(),
        "models_offered": list(settings.models),
        "default_model": settings.default_model,
        "cache": cache_info,
        "extraction": extraction,
    }
