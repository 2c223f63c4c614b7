"""Scale-out: the forward pass in Celery workers, with Redis as broker and result store.

Off by default: the web process runs the model itself. With ``ATTN_CELERY_BROKER_URL`` set (e.g.
``redis://redis-host:6379/1``), ``extract_attention`` still checks the cache and deduplicates
identical requests in the web process, but the forward pass of a new text runs in a worker::

    ATTN_CELERY_BROKER_URL=redis://127.0.0.1:6379/1 celery -A services.tasks worker --pool=solo

Workers and web processes must share the same ``ATTN_*`` settings (models, limits) and the same model
files. Nothing travels as a pickle: task arguments are JSON, and the result (an ``AttentionResult``
with its numpy array) comes back as JSON holding ``services.codec``'s bytes in base64; both sides
accept only JSON content, so a value planted in the broker or the result store is refused, never run.
The Redis used here should still be private to the lab's servers (it holds people's texts).

``ATTN_CELERY_TIMEOUT`` (seconds, default 120) bounds the wait for a worker; on expiry the person sees
a readable ``AttentionExplorerError`` instead of a hanging page.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_init

from ..config import MAX_NEW_TOKENS_CAP, Settings, get_settings
from ..errors import N_, AttentionExplorerError
from ..model.forward import run_local
from ..model.inputs import check_steps, checked_inputs
from ..result import AttentionResult
from . import codec

log = logging.getLogger(__name__)

TASK_NAME = "attention_explorer.extract"
QUEUE = "attention-explorer"
DEFAULT_TIMEOUT_S = 120.0
# A down queue should cost a request about a second, not Celery's default of retrying for long.
_FAIL_FAST = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def task_timeout() -> float:
    """Seconds the web process waits for a worker's answer (``ATTN_CELERY_TIMEOUT``)."""
    raw = os.environ.get("ATTN_CELERY_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"ATTN_CELERY_TIMEOUT must be a number of seconds, got {raw!r}") from exc
    if value <= 0:
        raise ValueError("ATTN_CELERY_TIMEOUT must be more than 0 seconds")
    return value


def make_celery(broker_url: str) -> Celery:
    """A Celery app for ``broker_url`` (broker and result backend), with the extraction task registered."""
    celery = Celery("attention_explorer", broker=broker_url or None, backend=broker_url or None,
                    set_as_current=False)
    timeout = task_timeout()
    celery.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],  # what a worker accepts from the queue: never pickle
        result_serializer="json",  # the AttentionResult as services.codec bytes in base64 (codec.to_json_payload)
        result_accept_content=["json"],  # what the web process accepts from the result store: never pickle
        result_expires=max(600, int(timeout * 5)),  # answers nobody waited for do not pile up
        task_time_limit=int(timeout + 60),  # prefork pool only: a stuck forward pass is killed
        worker_prefetch_multiplier=1,  # long CPU-bound tasks: take one at a time
        worker_hijack_root_logger=True,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3.0,
        broker_transport_options={"socket_connect_timeout": 2.0},
        redis_socket_connect_timeout=2.0,
        redis_socket_timeout=30.0,
        redis_socket_keepalive=True,
        task_publish_retry_policy=_FAIL_FAST,
        result_backend_transport_options={"retry_policy": _FAIL_FAST},
    )
    celery.task(name=TASK_NAME)(extract_task)
    return celery


def extract_task(text: str, model_id: str, text_pair: str | None = None, target: str | None = None,
                 max_new_tokens: int | None = None, steps: int | None = None) -> dict[str, str]:
    """The worker side: the same checks as the web process, then the in-process forward pass; the
    result as a JSON-safe payload (``services.codec``). ``target``, ``max_new_tokens`` and ``steps``
    are what the web process put in the cache key (an encoder-decoder model's target, the bound on
    what a model writes, a decoder-only continuation), so the worker computes the same thing."""
    settings = get_settings()
    model_id, text, text_pair, target = checked_inputs(model_id, text, text_pair, target, settings.char_limit)
    bound = settings.max_new_tokens
    if max_new_tokens is not None:
        max_new_tokens = check_steps(max_new_tokens, MAX_NEW_TOKENS_CAP)
    if steps is not None:
        steps = check_steps(steps, max_new_tokens or bound)
    return codec.to_json_payload(run_local(text, model_id, text_pair, target, max_new_tokens, steps))


def decode_payload(payload: Any):
    """The ``AttentionResult`` a worker sent; a readable error for anything else (never executed)."""
    try:
        result = codec.from_json_payload(payload)
    except codec.DecodeError as exc:
        log.warning("refused a worker's answer that is not an attention result (%s)", exc)
        raise AttentionExplorerError(N_(
            "The attention worker's answer could not be read (the workers may run another version of "
            "Attention Explorer). Try again; if it persists, tell the server's administrator.")) from exc
    if not isinstance(result, AttentionResult):
        raise AttentionExplorerError(N_("The attention worker's answer could not be read. Try again."))
    return result


# The app that `celery -A services.tasks worker` runs, configured from the environment.
app = make_celery(Settings.from_env().celery_broker_url)

_clients: dict[str, Celery] = {}
_clients_lock = threading.Lock()


def client(broker_url: str) -> Celery:
    """The Celery app this web process sends tasks through, one per broker URL, built on first use."""
    with _clients_lock:
        celery = _clients.get(broker_url)
        if celery is None:
            celery = _clients[broker_url] = make_celery(broker_url)
        return celery


def _discard(broker_url: str, celery: Celery) -> None:
    """Forgets a client whose connections failed: Celery's Redis result consumer does not always
    recover from a lost connection ("the Celery application must be restarted"), a new client does."""
    with _clients_lock:
        if _clients.get(broker_url) is celery:
            del _clients[broker_url]
    _quietly(celery.close)


@worker_init.connect
def _require_broker(sender: Any = None, **_: Any) -> None:
    if not get_settings().celery_broker_url:
        raise RuntimeError("Set ATTN_CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/1) before starting a worker.")


def run_in_worker(text: str, model_id: str, text_pair: str | None, timeout: float | None = None, *,
                  target: str | None = None, max_new_tokens: int | None = None, steps: int | None = None):
    """Sends one extraction to the workers and waits for it. Errors are ``AttentionExplorerError``s.

    The worker's own errors (a model it cannot load, a text it refuses) come back as the same
    exception types the in-process path raises.
    """
    from celery.exceptions import TimeoutError as CeleryTimeout

    broker_url = get_settings().celery_broker_url
    timeout = task_timeout() if timeout is None else timeout
    celery = client(broker_url)
    try:
        pending = celery.send_task(TASK_NAME, args=[text, model_id, text_pair, target, max_new_tokens, steps],
                                   expires=timeout)
    except Exception as exc:  # noqa: BLE001 - the queue is down or unreachable
        log.warning("could not queue an extraction on %s: %r", _safe_url(broker_url), exc)
        _discard(broker_url, celery)
        raise AttentionExplorerError(N_(
            "The attention workers cannot be reached right now (the task queue is down). "
            "Try again in a minute; if it persists, tell the server's administrator.")) from exc
    try:
        payload = pending.get(timeout=timeout, propagate=True)
    except CeleryTimeout as exc:
        log.warning("extraction %s: no worker answered within %.0f s", pending.id, timeout)
        _quietly(pending.revoke)
        raise AttentionExplorerError(N_(
            "No attention worker answered within {seconds} seconds: the workers are busy or stopped. "
            "Try again in a minute; if it persists, tell the server's administrator."), seconds=f"{timeout:.0f}") from exc
    except AttentionExplorerError:
        raise
    except Exception as exc:
        if _is_refused_content(exc):
            log.warning("extraction %s: refused the result store's answer: %r", pending.id, exc)
            raise AttentionExplorerError(N_(
                "The attention worker's answer could not be read. Try again; if it persists, tell the "
                "server's administrator.")) from exc
        if not _is_connection_error(exc):
            raise  # the worker's own failure, re-raised as it was raised there
        log.warning("extraction %s: lost the connection to the result store: %r", pending.id, exc)
        _discard(broker_url, celery)
        raise AttentionExplorerError(N_(
            "The connection to the attention workers was lost while waiting for the result. Try again.")) from exc
    finally:
        _quietly(pending.forget)
    return decode_payload(payload)


def _is_refused_content(exc: BaseException) -> bool:
    """A result that is not JSON, or of a content type this process does not accept (e.g. pickle)."""
    from kombu.exceptions import ContentDisallowed, DecodeError

    return isinstance(exc, (ContentDisallowed, DecodeError))


def _is_connection_error(exc: BaseException) -> bool:
    try:
        from kombu.exceptions import OperationalError
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeout
    except ImportError:  # pragma: no cover
        return False
    if isinstance(exc, RuntimeError) and "result store" in str(exc):  # Celery gave up reconnecting
        return True
    return isinstance(exc, (OperationalError, RedisConnectionError, RedisTimeout, ConnectionError))


def _quietly(fn) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - best effort clean-up
        pass


def _safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
