"""Settings, read from environment variables with defaults.

Every setting has an ``ATTN_*`` environment variable; the README's configuration table lists them.
``Settings.from_env()`` reads them; ``Settings(...)`` or ``settings.replace(...)`` builds one in code
(tests, notebooks). Nothing here is per-user: one ``Settings`` serves a whole process.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field

DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"
# Offered in the model picker. The bundled default always works; the others load for users who have
# them (in the Hugging Face cache, or with network access to the hub).
# The bundled encoder, then hub models offered (marked "not downloaded" until `make models` fetches them):
# a Chinese BERT, GPT-2, and two of today's decoders (rotary positions, grouped-query attention).
DEFAULT_MODELS = (DEFAULT_MODEL_ID, "bert-base-chinese", "gpt2", "HuggingFaceTB/SmolLM2-135M", "Qwen/Qwen2.5-0.5B")
CACHE_TYPES = ("filesystem", "redis", "simple", "null")
AUTH_MODES = ("", "basic", "proxy")
CACHE_DIR_NAME = "attention-explorer"
MIN_PROXY_SECRET_CHARS = 24
MAX_NEW_TOKENS_CAP = 512  # ATTN_MAX_NEW_TOKENS above this is refused: generation is one forward pass a token
DEVICES = ("cpu", "cuda", "auto")
DTYPES = ("auto", "float32", "float16", "bfloat16")
# Tokens read when ATTN_MAX_TOKENS is not set (always within the model's own limit): a text's attention
# is computed on demand from its queries and keys, so length is bounded by time and memory, not by n^2.
DEFAULT_TOKEN_CAP = {"cpu": 4096, "cuda": 32768}
CHARS_PER_TOKEN = 12  # ATTN_MAX_CHARS, when not set, follows the token limit: 12 characters a token
# One CSP source expression: 'self', a scheme (vscode-webview:), or [scheme://]host[:port] with * wildcards.
_FRAME_SOURCE = re.compile(r"'self'|[a-z][a-z0-9+.-]*:|([a-z][a-z0-9+.-]*://)?(\*\.)?[A-Za-z0-9.-]+(:(\d{1,5}|\*))?")


def default_cache_dir() -> str:
    """The private cache folder: systemd's ``$CACHE_DIRECTORY`` (a unit with ``CacheDirectory=``), else
    ``$XDG_CACHE_HOME/attention-explorer``, else ``~/.cache/attention-explorer``. Never ``/tmp``."""
    systemd = os.environ.get("CACHE_DIRECTORY", "").strip()
    if systemd:
        return systemd.split(":")[0]
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, CACHE_DIR_NAME)
    return os.path.join(os.path.expanduser("~"), ".cache", CACHE_DIR_NAME)


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


def _off_is_empty(raw: str) -> str:
    raw = raw.strip()
    return "" if raw.lower() in {"off", "0", "none", "no"} else raw


_MODEL_NAME = re.compile(r"^[^\s/\\=,][^/\\=,]{0,99}$")


def _named(entry: str) -> tuple[str, str | None]:
    """An ``ATTN_MODELS`` entry: ``name=path`` (a local folder offered under a name, the path never
    shown) gives (name, path); anything else (a hub id, a folder) is itself, with no path."""
    name, sep, path = entry.partition("=")
    if not sep:
        return entry.strip(), None
    name, path = name.strip(), path.strip()
    if not _MODEL_NAME.match(name) or not path:
        raise ValueError(f"a named model is written name=path (a name without / \\ = or commas), got {entry!r}")
    return name, path


@dataclass(frozen=True)
class Settings:
    default_model: str = DEFAULT_MODEL_ID
    # Hub ids, local folders, or ``name=path`` (a folder offered under that name: the name is the model's
    # id in the page, its links and messages; the path stays on the server, in ``model_paths``).
    models: tuple[str, ...] = DEFAULT_MODELS
    allow_any_model: bool = False
    cache_type: str = "filesystem"
    cache_dir: str = field(default_factory=default_cache_dir)
    cache_timeout: int = 24 * 3600
    cache_threshold: int = 2000  # most entries kept by the file-system cache
    cache_max_mb: int = 2048  # most megabytes kept by the file-system cache, oldest entries dropped first
    redis_url: str = ""
    local_cache_mb: int = 512  # in-process memo in front of the shared cache
    max_chars: int = 0  # characters read of a text (longer ones are cut); 0: follows the token limit
    max_tokens: int = 0  # 0: the model's own limit, at most DEFAULT_TOKEN_CAP for the device
    device: str = "cpu"  # where models run: cpu, cuda, or auto (cuda when there is one)
    dtype: str = "auto"  # the models' weights: auto (float32 on the CPU, float16 or bfloat16 on a GPU), or one
    max_new_tokens: int = 40  # most tokens a model writes: a seq2seq target, or a decoder's continuation
    max_concurrent_forward: int = 2
    torch_threads: int = 0  # 0: leave torch's default
    celery_broker_url: str = ""  # set to run extraction in Celery workers
    # Limits and sign-in for a shared server (docs/security.md)
    max_request_kb: int = 1024  # largest request body accepted; larger ones are answered 413
    rate_limit: str = ""  # e.g. "30/minute": analyses of new texts per person; "" is off
    rate_limit_storage: str = ""  # "memory://" or a Redis URL; "" means the Redis cache's URL, else memory
    export_rate_limit: str = ""  # e.g. "30/minute": downloads (CSV, JSON, HTML) per person; "" is off
    max_export_mb: int = 256  # the largest download (a whole analysis as JSON) the server writes
    auth: str = ""  # "" (no sign-in), "basic" (users file) or "proxy" (a reverse proxy's user header)
    users_file: str = ""  # "name:hash" lines for auth "basic" (python -m services.users add NAME)
    auth_header: str = "X-Forwarded-User"  # the proxy's authenticated-user header, for auth "proxy"
    auth_proxy_from: tuple[str, ...] = ("127.0.0.1", "::1")  # addresses allowed to send that header ("unix": a Unix socket)
    # Proof that a request came through the proxy (auth "proxy" needs it, or ATTN_AUTH_PROXY_FROM=unix):
    # the proxy sends this secret in proxy_secret_header; a request without it is never signed in.
    proxy_secret: str = field(default="", repr=False)
    proxy_secret_header: str = "X-Attention-Proxy-Secret"
    trusted_proxies: int = 0  # reverse proxies in front whose X-Forwarded-For / -Proto are believed
    signin_failures: str = "10/minute"  # failed sign-ins allowed per user name before 429 (for that name only)
    signin_failures_per_address: str = "30/minute"  # failed sign-ins allowed per client address, whatever the names
    # Pages that may show the app in a frame (CSP frame-ancestors sources); none by default. A notebook's
    # show_dashboard() allows the local notebook servers (components.notebook.NOTEBOOK_FRAME_ANCESTORS).
    frame_ancestors: tuple[str, ...] = ()
    # Signs the recipe a page keeps of its analysis (services.store.secret says where it comes from when
    # empty); never shown (repr=False).
    secret_key: str = field(default="", repr=False)
    model_paths: tuple[tuple[str, str], ...] = ()  # (name, folder) of the models offered as name=path

    def __post_init__(self) -> None:
        if self.cache_type not in CACHE_TYPES:
            raise ValueError(f"cache type must be one of {', '.join(CACHE_TYPES)}, got {self.cache_type!r}")
        if self.max_chars < 0:
            raise ValueError("max_chars must be 0 (follows the token limit) or more")
        if self.max_tokens < 0:
            raise ValueError("max_tokens must be 0 (the model's limit) or more")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS_CAP:
            raise ValueError(f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS_CAP}")
        if self.max_concurrent_forward < 1:
            raise ValueError("max_concurrent_forward must be at least 1")
        if self.cache_max_mb < 1:
            raise ValueError("cache_max_mb must be at least 1")
        if self.max_export_mb < 1:
            raise ValueError("max_export_mb must be at least 1")
        if self.max_request_kb < 16:
            raise ValueError("max_request_kb must be at least 16")
        if self.trusted_proxies < 0:
            raise ValueError("trusted_proxies must be 0 or more")
        if self.auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of basic, proxy or empty (off), got {self.auth!r}")
        if self.auth == "basic" and not self.users_file:
            raise ValueError("auth 'basic' needs a users file (ATTN_USERS_FILE)")
        if self.auth == "proxy" and not self.auth_header.strip():
            raise ValueError("auth 'proxy' needs the name of the proxy's user header (ATTN_AUTH_HEADER)")
        if self.proxy_secret and len(self.proxy_secret) < MIN_PROXY_SECRET_CHARS:
            raise ValueError(f"the proxy secret (ATTN_PROXY_SECRET) must have at least {MIN_PROXY_SECRET_CHARS} "
                             "characters: make one with  python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
        if self.proxy_secret and not (self.proxy_secret.isascii() and self.proxy_secret.isprintable()):
            raise ValueError("the proxy secret (ATTN_PROXY_SECRET) must be printable ASCII (it travels in a header)")
        if self.auth == "proxy" and not self.proxy_secret and "unix" not in self.auth_proxy_from:
            raise ValueError("auth 'proxy' needs proof that a request came through the proxy, since every account "
                             "on this machine can reach 127.0.0.1: set ATTN_PROXY_SECRET to a long random string "
                             "the proxy sends in the X-Attention-Proxy-Secret header, or serve gunicorn on a Unix "
                             "socket only the proxy can reach and set ATTN_AUTH_PROXY_FROM=unix (docs/security.md)")
        for name in ("rate_limit", "export_rate_limit", "signin_failures", "signin_failures_per_address"):
            value = getattr(self, name)
            if value:
                from limits import parse_many

                try:
                    parse_many(value)
                except ValueError as exc:
                    raise ValueError(f"{name} must look like '30/minute', got {value!r}") from exc
        for source in self.frame_ancestors:
            if not isinstance(source, str) or not _FRAME_SOURCE.fullmatch(source) or source == "'none'":
                raise ValueError(f"frame_ancestors: {source!r} is not a CSP source such as 'self', "
                                 "https://notebooks.example.org or http://localhost:*")
        paths = dict(self.model_paths)
        ids = []
        for entry in (self.default_model, *self.models):
            name, path = _named(entry)
            if path is not None:
                if paths.get(name, path) != path:
                    raise ValueError(f"the model name {name!r} is given two folders")
                paths[name] = path
            ids.append(name)
        object.__setattr__(self, "default_model", ids[0])
        object.__setattr__(self, "models", tuple(dict.fromkeys(ids)))
        object.__setattr__(self, "model_paths", tuple(paths.items()))

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
            max_chars=_env_int("ATTN_MAX_CHARS", 0),
            max_tokens=_env_int("ATTN_MAX_TOKENS", 0),
            device=os.environ.get("ATTN_DEVICE", "").strip().lower() or "cpu",
            dtype=os.environ.get("ATTN_DTYPE", "").strip().lower() or "auto",
            max_new_tokens=_env_int("ATTN_MAX_NEW_TOKENS", 40),
            max_concurrent_forward=_env_int("ATTN_MAX_CONCURRENT_FORWARD", 2),
            torch_threads=_env_int("ATTN_TORCH_THREADS", 0),
            celery_broker_url=os.environ.get("ATTN_CELERY_BROKER_URL", "").strip(),
            cache_max_mb=_env_int("ATTN_CACHE_MAX_MB", 2048),
            max_request_kb=_env_int("ATTN_MAX_REQUEST_KB", 1024),
            rate_limit=_off_is_empty(os.environ.get("ATTN_RATE_LIMIT", "")),
            rate_limit_storage=os.environ.get("ATTN_RATE_LIMIT_STORAGE", "").strip(),
            export_rate_limit=_off_is_empty(os.environ.get("ATTN_EXPORT_RATE_LIMIT", "")),
            max_export_mb=_env_int("ATTN_MAX_EXPORT_MB", 256),
            auth=os.environ.get("ATTN_AUTH", "").strip().lower(),
            users_file=os.environ.get("ATTN_USERS_FILE", "").strip(),
            auth_header=os.environ.get("ATTN_AUTH_HEADER", "").strip() or "X-Forwarded-User",
            auth_proxy_from=_env_list("ATTN_AUTH_PROXY_FROM", ("127.0.0.1", "::1")),
            proxy_secret=os.environ.get("ATTN_PROXY_SECRET", "").strip(),
            proxy_secret_header=os.environ.get("ATTN_PROXY_SECRET_HEADER", "").strip() or "X-Attention-Proxy-Secret",
            trusted_proxies=_env_int("ATTN_TRUSTED_PROXIES", 0),
            signin_failures=os.environ.get("ATTN_SIGNIN_FAILURES", "").strip() or "10/minute",
            signin_failures_per_address=os.environ.get("ATTN_SIGNIN_FAILURES_PER_ADDRESS", "").strip() or "30/minute",
            frame_ancestors=_env_list("ATTN_FRAME_ANCESTORS", ()),
            secret_key=os.environ.get("ATTN_SECRET_KEY", "").strip(),
        )
        cache_dir = os.environ.get("ATTN_CACHE_DIR", "").strip()
        if cache_dir:
            kwargs["cache_dir"] = cache_dir
        return cls(**kwargs)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    @property
    def resolved_device(self) -> str:
        """``cpu`` or ``cuda``: ``auto`` is cuda when torch sees a GPU (asked only when auto is set)."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def token_cap(self) -> int:
        """Most tokens of a text read by any model: ATTN_MAX_TOKENS, else the device's default."""
        return self.max_tokens or DEFAULT_TOKEN_CAP[self.resolved_device if self.device != "cpu" else "cpu"]

    @property
    def char_limit(self) -> int:
        """Most characters of a text read (longer ones are cut): ATTN_MAX_CHARS, else 12 a token."""
        return self.max_chars or max(5000, CHARS_PER_TOKEN * self.token_cap)


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
