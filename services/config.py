"""Settings, read from environment variables with defaults.

Every setting has an ``ATTN_*`` environment variable; the README's configuration table lists them.
``Settings.from_env()`` reads them; ``Settings(...)`` or ``settings.replace(...)`` builds one in code
(tests, notebooks). Nothing here is per-user: one ``Settings`` serves a whole process.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass, field

DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"
# Offered in the model picker. The bundled default always works; the others load for users who have
# them (in the Hugging Face cache, or with network access to the hub).
DEFAULT_MODELS = (DEFAULT_MODEL_ID, "bert-base-chinese", "gpt2")
CACHE_TYPES = ("filesystem", "redis", "simple", "null")


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from exc


def _env_list(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    default_model: str = DEFAULT_MODEL_ID
    models: tuple[str, ...] = DEFAULT_MODELS
    allow_any_model: bool = False
    cache_type: str = "filesystem"
    cache_dir: str = field(default_factory=lambda: os.path.join(tempfile.gettempdir(), "attention-explorer-cache"))
    cache_timeout: int = 24 * 3600
    cache_threshold: int = 2000  # most entries kept by the file-system cache
    redis_url: str = ""
    local_cache_mb: int = 512  # in-process memo in front of the shared cache
    max_chars: int = 5000
    max_tokens: int = 0  # 0: the model's own limit, at most 512
    max_concurrent_forward: int = 2
    torch_threads: int = 0  # 0: leave torch's default
    celery_broker_url: str = ""  # set to run extraction in Celery workers

    def __post_init__(self) -> None:
        if self.cache_type not in CACHE_TYPES:
            raise ValueError(f"cache type must be one of {', '.join(CACHE_TYPES)}, got {self.cache_type!r}")
        if self.max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        if self.max_tokens < 0:
            raise ValueError("max_tokens must be 0 (the model's limit) or more")
        if self.max_concurrent_forward < 1:
            raise ValueError("max_concurrent_forward must be at least 1")
        models = tuple(dict.fromkeys((self.default_model, *self.models)))
        object.__setattr__(self, "models", models)

    @classmethod
    def from_env(cls) -> "Settings":
        redis_url = os.environ.get("ATTN_REDIS_URL", "").strip()
        cache_type = os.environ.get("ATTN_CACHE_TYPE", "").strip().lower() or ("redis" if redis_url else "filesystem")
        kwargs = dict(
            default_model=os.environ.get("ATTN_DEFAULT_MODEL", "").strip() or DEFAULT_MODEL_ID,
            models=_env_list("ATTN_MODELS", DEFAULT_MODELS),
            allow_any_model=_env_bool("ATTN_ALLOW_ANY_MODEL", False),
            cache_type=cache_type,
            cache_timeout=_env_int("ATTN_CACHE_TIMEOUT", 24 * 3600),
            cache_threshold=_env_int("ATTN_CACHE_THRESHOLD", 2000),
            redis_url=redis_url,
            local_cache_mb=_env_int("ATTN_LOCAL_CACHE_MB", 512),
            max_chars=_env_int("ATTN_MAX_CHARS", 5000),
            max_tokens=_env_int("ATTN_MAX_TOKENS", 0),
            max_concurrent_forward=_env_int("ATTN_MAX_CONCURRENT_FORWARD", 2),
            torch_threads=_env_int("ATTN_TORCH_THREADS", 0),
            celery_broker_url=os.environ.get("ATTN_CELERY_BROKER_URL", "").strip(),
        )
        cache_dir = os.environ.get("ATTN_CACHE_DIR", "").strip()
        if cache_dir:
            kwargs["cache_dir"] = cache_dir
        return cls(**kwargs)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


_settings: Settings | None = None


def get_settings() -> Settings:
    """The process's settings: those given to ``configure()``, else read from the environment once."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def configure(settings: Settings | None = None, **changes) -> Settings:
    """Set the process's settings (the app factory calls this). Returns the settings in force."""
    global _settings
    base = settings if settings is not None else get_settings()
    _settings = base.replace(**changes) if changes else base
    return _settings
