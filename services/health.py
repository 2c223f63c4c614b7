"""The health report behind ``/healthz``: plain data, no web framework."""

from __future__ import annotations

from typing import Any

from . import cache
from .config import get_settings
from .models import loaded_models


def health_report() -> dict[str, Any]:
    """Status ``ok`` while the app can serve (a down cache only degrades it: results are computed)."""
    settings = get_settings()
    cache_info = cache.status()
    return {
        "status": "ok" if cache_info.get("reachable") or settings.cache_type == "null" else "degraded",
        "models_loaded": loaded_models(),
        "models_offered": list(settings.models),
        "default_model": settings.default_model,
        "cache": cache_info,
    }
