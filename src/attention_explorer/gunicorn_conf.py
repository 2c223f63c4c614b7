"""gunicorn settings for Attention Explorer with PyTorch:

    gunicorn -c python:attention_explorer.gunicorn_conf attention_explorer.app:server
    gunicorn -c gunicorn.conf.py app:server      # the same, from a checkout (both files are shims)


Every value can be changed with an environment variable (below) or on the command line (``-b``,
``--workers``, ``--threads`` ... win over this file). docs/deployment.md explains the sizing.

- Each worker process loads its own copy of each model it serves (lazily; the default model is
  loaded before the worker takes requests), so memory grows with ``workers`` and barely with
  ``threads``. Threads share the model; the forward passes they run at once are bounded by
  ``ATTN_MAX_CONCURRENT_FORWARD``.
- ``preload_app`` stays off: torch's thread pools do not survive ``fork()``, and a model loaded in
  the master would be copied page by page into every worker anyway.
- Torch gets ``ATTN_TORCH_THREADS`` threads per worker (default 1): with several workers and
  threads, one intra-op thread each keeps the cores busy without oversubscribing them.
- A shared server's limits (docs/security.md): request lines, header counts and sizes are bounded
  here (bodies by the app, ``ATTN_MAX_REQUEST_KB``), and each person may start ``ATTN_RATE_LIMIT``
  analyses of new texts and ``ATTN_EXPORT_RATE_LIMIT`` downloads (default here 30 a minute each; ``make
  run`` has no limit). The ``Server`` header
  names no server software or version.
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


# Torch reads these when it is first imported, in each worker (the master never imports it).
torch_threads = max(1, _int("ATTN_TORCH_THREADS", 1))
os.environ["ATTN_TORCH_THREADS"] = str(torch_threads)  # services.config reads it in the workers
os.environ.setdefault("OMP_NUM_THREADS", str(torch_threads))
os.environ.setdefault("MKL_NUM_THREADS", str(torch_threads))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A shared server limits analyses of new texts per person; ATTN_RATE_LIMIT=off turns it off.
os.environ.setdefault("ATTN_RATE_LIMIT", "30/minute")
# and downloads (CSV, JSON, HTML: each streams up to ATTN_MAX_EXPORT_MB) per person; ATTN_EXPORT_RATE_LIMIT=off
os.environ.setdefault("ATTN_EXPORT_RATE_LIMIT", "30/minute")
# The workers sign what a page keeps of its analysis with one secret, so that each can read every page's
# handle: ATTN_SECRET_KEY, else a file in the private cache folder, else this one, made here in the master
# for this run (services/store/secret.py).
if not os.environ.get("ATTN_SECRET_KEY", "").strip():
    import secrets

    os.environ.setdefault("ATTN_RUN_SECRET", secrets.token_urlsafe(48))

bind = os.environ.get("ATTN_BIND", "127.0.0.1:8050")
workers = _int("ATTN_WORKERS", 2)
worker_class = "gthread"
threads = _int("ATTN_THREADS", 8)
preload_app = False
# Loading a model and a first long text take seconds; a big model on a slow disk, more.
timeout = _int("ATTN_WORKER_TIMEOUT", 120)
graceful_timeout = 30
keepalive = 5
# Recycling a worker reloads its models (seconds), so it is off unless asked for.
max_requests = _int("ATTN_MAX_REQUESTS", 0)
max_requests_jitter = max(1, max_requests // 10) if max_requests else 0
# Anyone who can reach the port may send any bytes: bounded request lines and headers (414 / 431).
limit_request_line = _int("ATTN_LIMIT_REQUEST_LINE", 4094)
limit_request_fields = _int("ATTN_LIMIT_REQUEST_FIELDS", 50)
limit_request_field_size = _int("ATTN_LIMIT_REQUEST_FIELD_SIZE", 8190)
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # the heartbeat file: never block on a slow disk

# Logs: access log on stdout when ATTN_ACCESS_LOG=1, everything else (the app's warnings too) on stderr.
accesslog = "-" if os.environ.get("ATTN_ACCESS_LOG", "").strip().lower() in {"1", "true", "yes", "on"} else None
errorlog = "-"
loglevel = os.environ.get("ATTN_LOG_LEVEL", "info")
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["stderr"] if accesslog else [], "propagate": False},
        "attention_explorer": {"level": loglevel.upper(), "handlers": ["stderr"], "propagate": False},
    },
    "root": {"level": "WARNING", "handlers": ["stderr"]},
}


def _hide_server_banner() -> None:
    """gunicorn sends ``Server: gunicorn``; the app's after_request cannot remove it (the app does the
    same in each worker, services.web.security.hide_server_banner, for gunicorns started without this file)."""
    import gunicorn.http.wsgi

    gunicorn.http.wsgi.SERVER = "attention-explorer"


_hide_server_banner()


def post_fork(server, worker):
    """In each new worker, before the app is imported: torch's thread counts, and the worker's threads
    (with Celery, all but two may wait for a forward pass: services/store/tasks.py)."""
    os.environ["ATTN_WEB_THREADS"] = str(getattr(getattr(worker, "cfg", None), "threads", threads))
    import torch

    torch.set_num_threads(torch_threads)
    try:
        torch.set_num_interop_threads(torch_threads)
    except RuntimeError:  # already set, or parallel work already started
        pass


def post_worker_init(worker):
    """Loads the default model before the worker takes requests (ATTN_WARMUP=0 to skip)."""
    if os.environ.get("ATTN_WARMUP", "1").strip().lower() in {"0", "false", "no", "off"}:
        return
    from .services import get_settings
    from .services.model.loading import get_model

    settings = get_settings()
    if settings.celery_broker_url:
        return  # the workers run the models, not the web processes
    try:
        get_model(settings.default_model)
    except Exception as exc:  # noqa: BLE001 - a model that fails to load never takes a worker down
        worker.log.warning("warm-up: the default model could not be loaded: %s", exc)
