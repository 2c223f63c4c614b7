"""Scale-out: the forward pass in Celery workers, with Redis as broker and result store.

Off by default: the web process runs the model itself. With ``ATTN_CELERY_BROKER_URL`` set (e.g.
``redis://redis-host:6379/1``), ``extract_attention`` still checks the cache and deduplicates
identical requests in the web process, but the forward pass of a new text runs in a worker::

    ATTN_CELERY_BROKER_URL=redis://127.0.0.1:6379/1 celery -A attention_explorer.services.store.tasks worker --pool=solo

Workers and web processes must share the same ``ATTN_*`` settings (models, limits) and the same model
files. Nothing travels as a pickle: task arguments are JSON, and the result (an ``AttentionResult``
with its numpy array) comes back as JSON holding ``services.codec``'s bytes in base64; both sides
accept only JSON content, so a value planted in the broker or the result store is refused, never run.
The Redis used here should still be private to the lab's servers (it holds people's texts).

``ATTN_CELERY_TIMEOUT`` (seconds, default 120) bounds the wait for a worker; on expiry the person sees
a readable ``AttentionExplorerError`` instead of a hanging page.

A worker that dies loses nothing and freezes no one:

- tasks are acknowledged late (``task_acks_late``, ``task_reject_on_worker_lost``): a task whose worker
  was killed mid-way goes back to the queue and runs on another worker. With Redis as broker it comes
  back once the visibility timeout has passed, ``task_limit() + 10`` seconds after it was handed out,
  checked every ``RESTORE_EVERY_S`` seconds: within the web's wait. ``task_limit()`` (half of
  ``ATTN_CELERY_TIMEOUT``) is the task time limit, enforced by the prefork pool (``--pool=solo`` cannot
  stop a task: one that runs longer than the visibility timeout may then run twice);
- each worker writes a heartbeat to the broker's Redis every ``HEARTBEAT_S`` seconds (a thread, so a busy
  ``--pool=solo`` worker still beats). A web process sends a task only while some worker beat in the
  last ``STALE_S`` seconds, and while waiting it looks again (at most once every ``ALIVE_CACHE_S``
  seconds per process): with no worker alive the person is told so at once, instead of waiting
  ``ATTN_CELERY_TIMEOUT``; the thread is free again for the cached views. ``status()`` reports the
  workers alive and recent timeouts (``/healthz``).

A long analysis run in the background (``callbacks.analyze``: a progress bar and Cancel) shows the worker's
layers: the worker publishes ``{"done", "total"}`` after each layer to the broker's Redis (``PROGRESS`` + the
task id) and the web thread waiting for the task reads it every ``PROGRESS_SLICE_S`` seconds into its job.
Cancel marks the task abandoned (``ABANDONED`` + the task id), which the worker reads at each layer: it stops
between two layers and takes the next task (the worker process lives on; nothing is killed).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown

from ..config import MAX_NEW_TOKENS_CAP, Settings, get_settings
from ..errors import N_, AttentionExplorerError, Cancelled
from ..model.forward import run_local
from ..model.inputs import check_steps, checked_inputs
from ..model.progress import current_step, layer_steps
from ..result import AttentionResult
from . import codec

log = logging.getLogger(__name__)

TASK_NAME = "attention_explorer.extract"
QUEUE = "attention-explorer"
DEFAULT_TIMEOUT_S = 120.0
# A down queue should cost a request about a second, not Celery's default of retrying for long.
_FAIL_FAST = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
RESTORE_EVERY_S = 5  # how often workers hand back the tasks of a dead worker (kombu's Redis transport)
HEARTBEAT_S = 1.5  # a worker's heartbeat period
STALE_S = 6.0  # a worker not heard from for this long is taken for dead
ALIVE_CACHE_S = 2.0  # a web process asks Redis about the workers at most this often
WAIT_SLICE_S = 2.0  # while waiting for a task, the workers are looked at again this often
RECENT_S = 300.0  # task timeouts this recent make /healthz say "degraded"
HEARTBEATS = "attention-explorer:workers"  # a sorted set in the broker's Redis: worker name -> last beat
ABANDONED = "attention-explorer:abandoned:"  # + a task id: the web gave up on it (or Cancel), a worker skips or stops it
PROGRESS = "attention-explorer:progress:"  # + a task id: {"done", "total"} layers, written by its worker
PROGRESS_SLICE_S = 0.3  # while a job waits for its task, the worker's progress is read this often


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


def task_limit() -> int:
    """Seconds a task may run (the task time limit): half of the web's wait, so that a task lost with its
    worker can run again on another within it."""
    return max(5, int(task_timeout() / 2))


def make_celery(broker_url: str) -> Celery:
    """A Celery app for ``broker_url`` (broker and result backend), with the extraction task registered."""
    celery = Celery("attention_explorer", broker=broker_url or None, backend=broker_url or None,
                    set_as_current=False)
    timeout = task_timeout()
    limit = task_limit()
    celery.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],  # what a worker accepts from the queue: never pickle
        result_serializer="json",  # the AttentionResult as services.codec bytes in base64 (codec.to_json_payload)
        result_accept_content=["json"],  # what the web process accepts from the result store: never pickle
        result_expires=max(600, int(timeout * 5)),  # answers nobody waited for do not pile up
        task_time_limit=limit,  # prefork pool only: a stuck forward pass is killed
        # A task is acknowledged when it is done, not when it is taken: if its worker dies (killed, out of
        # memory, the machine lost) the task goes back to the queue and another worker runs it.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # long CPU-bound tasks: take one at a time (and hold no others)
        worker_hijack_root_logger=True,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3.0,
        broker_transport_options={
            "socket_connect_timeout": 2.0,
            # a taken task not acknowledged within this is handed to another worker: longer than a task may run
            "visibility_timeout": limit + 10,
            "unacked_restore_interval": RESTORE_EVERY_S,
            "unacked_restore_throttle": 1,
        },
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
    if _abandoned():
        return {}  # nobody waits for it any more (the web gave up while no worker ran): no forward pass
    settings = get_settings()
    model_id, text, text_pair, target = checked_inputs(model_id, text, text_pair, target, settings.char_limit)
    bound = settings.max_new_tokens
    if max_new_tokens is not None:
        max_new_tokens = check_steps(max_new_tokens, MAX_NEW_TOKENS_CAP)
    if steps is not None:
        steps = check_steps(steps, max_new_tokens or bound)
    task_id = _current_task_id()
    redis_client = _redis_for(settings.celery_broker_url) if task_id else None
    try:
        with layer_steps(_WorkerSteps(redis_client, task_id) if redis_client is not None else None):
            result = run_local(text, model_id, text_pair, target, max_new_tokens, steps)
    except Cancelled:
        log.info("task %s cancelled: stopped between two layers", task_id)
        return {}  # nobody reads it: the web process stopped waiting when it asked to stop
    finally:
        if redis_client is not None:
            redis_client.close()
    return codec.to_json_payload(result)


def _current_task_id() -> str | None:
    from celery import current_task

    return getattr(getattr(current_task, "request", None), "id", None)


class _WorkerSteps:
    """A worker's per-layer step (``services.model.progress``): publishes ``{"done", "total"}`` to the
    broker's Redis (``PROGRESS`` + the task id), where the web process that waits for the task reads it,
    and raises ``Cancelled`` once the web process gave up on the task or its person pressed Cancel
    (``ABANDONED`` + the task id): the pass stops between two layers and the worker takes the next task."""

    def __init__(self, client, task_id: str) -> None:
        self.client, self.task_id = client, task_id

    def __call__(self, done: int, total: int) -> None:
        try:
            pipe = self.client.pipeline()
            pipe.set(PROGRESS + self.task_id, json.dumps({"done": int(done), "total": int(total)}),
                     ex=max(60, int(2 * task_timeout())))
            pipe.exists(ABANDONED + self.task_id)
            stop = pipe.execute()[1]
        except Exception as exc:  # noqa: BLE001 - the broker's Redis failing: the pass goes on, unseen
            log.debug("progress not written: %r", exc)
            return
        if stop:
            raise Cancelled


def _read_progress(broker_url: str, task_id: str) -> tuple[int, int] | None:
    """What the task's worker published of its progress (untrusted: whole numbers 0 <= done <= total
    <= 10^6), or None."""
    client = _redis_for(broker_url)
    if client is None:
        return None
    try:
        raw = client.get(PROGRESS + task_id)
    except Exception:  # noqa: BLE001 - unseen progress: the bar waits
        return None
    finally:
        client.close()
    try:
        value = json.loads(raw) if isinstance(raw, bytes) and len(raw) < 200 else None
        done, total = value["done"], value["total"]
    except (ValueError, TypeError, KeyError):
        return None
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (done, total)) or not 0 <= done <= total <= 10**6:
        return None
    return done, total


def _abandoned() -> bool:
    """Whether the web process gave up on the task being run (``_abandon``): tasks queued while no worker
    ran, or taken by a worker that was then killed, would otherwise be computed for nobody when a worker
    comes back, ahead of the texts people are waiting for."""
    task_id = _current_task_id()
    client = _redis_for(get_settings().celery_broker_url) if task_id else None
    if client is None:
        return False
    try:
        if client.exists(ABANDONED + task_id):
            log.info("task %s skipped: the web process gave up on it", task_id)
            return True
    except Exception:  # noqa: BLE001 - the broker's Redis failing: run it
        pass
    finally:
        client.close()
    return False


def _abandon(task_id: str, broker_url: str, timeout: float) -> None:
    """Marks a task nobody waits for any more, so that a worker skips it (``_abandoned``)."""
    client = _redis_for(broker_url)
    if client is None:
        return
    try:
        client.set(ABANDONED + task_id, b"1", ex=max(60, int(4 * timeout)))
    except Exception:  # noqa: BLE001 - best effort: at worst the task is computed for nobody
        pass
    finally:
        client.close()


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


# The app that `celery -A attention_explorer.services.store.tasks worker` runs, configured from the environment.
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


# --------------------------------------------------------------------------------------------- liveness


def _redis_for(broker_url: str):
    """A Redis client for the broker with short timeouts; None for a broker that is not Redis."""
    if not broker_url.startswith(("redis://", "rediss://", "unix://")):
        return None
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(broker_url, socket_connect_timeout=0.5, socket_timeout=1.0,
                                retry=Retry(NoBackoff(), 0))


class Heartbeat:
    """A worker's heartbeat: its name and the time, every ``HEARTBEAT_S`` seconds, in a sorted set of the
    broker's Redis; removed when the worker stops. A thread, so that a worker busy with a forward pass
    (``--pool=solo``) still beats."""

    def __init__(self, broker_url: str, name: str) -> None:
        self.client = _redis_for(broker_url)
        self.name = name
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="attention-heartbeat", daemon=True)

    def start(self) -> "Heartbeat":
        if self.client is not None:
            self.beat()
            self.thread.start()
        return self

    def beat(self) -> None:
        now = time.time()
        try:
            pipe = self.client.pipeline()
            pipe.zadd(HEARTBEATS, {self.name: now})
            pipe.zremrangebyscore(HEARTBEATS, "-inf", now - 6 * STALE_S)  # workers long gone
            pipe.expire(HEARTBEATS, int(6 * STALE_S))
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - the broker is down: the worker reconnects on its own
            log.debug("heartbeat not written: %r", exc)

    def _run(self) -> None:
        while not self.stopped.wait(HEARTBEAT_S):
            self.beat()

    def stop(self) -> None:
        self.stopped.set()
        if self.client is not None:
            try:
                self.client.zrem(HEARTBEATS, self.name)
            except Exception:  # noqa: BLE001
                pass


_heartbeat: list[Heartbeat] = []


def _warm_up() -> None:
    """Loads the default model before the worker takes tasks (``ATTN_WARMUP=0`` skips it), as gunicorn's
    workers do: a restarted worker is ready when it says it is."""
    if os.environ.get("ATTN_WARMUP", "1").strip().lower() in {"0", "false", "no", "off"}:
        return
    from ..model.loading import get_model

    try:
        get_model(get_settings().default_model)
    except Exception as exc:  # noqa: BLE001 - a model that fails to load never stops the worker
        log.warning("warm-up: the default model could not be loaded: %s", exc)


@worker_process_init.connect
def _warm_up_child(**_: Any) -> None:
    _warm_up()  # each process of a prefork pool


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    if "prefork" not in type(getattr(sender, "pool", None)).__module__:
        _warm_up()  # --pool=solo (or threads): the tasks run in this process
    name = getattr(sender, "hostname", None) or f"worker-{os.getpid()}"
    _heartbeat.append(Heartbeat(get_settings().celery_broker_url, f"{name}:{os.getpid()}").start())


@worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    while _heartbeat:
        _heartbeat.pop().stop()


class Workers:
    """What a web process knows of the workers: how many beat lately (asked at most every
    ``ALIVE_CACHE_S`` seconds), and when tasks timed out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: tuple[float, str, int | None] = (float("-inf"), "", None)
        self.timeouts: deque[float] = deque(maxlen=64)

    def alive(self, broker_url: str) -> int | None:
        """Workers heard from in the last ``STALE_S`` seconds; None when that cannot be known (a broker
        that is not Redis, or one that does not answer: sending the task then says why)."""
        now = time.monotonic()
        with self._lock:
            at, url, count = self._seen
            if url == broker_url and now - at < ALIVE_CACHE_S:
                return count
        client = _redis_for(broker_url)
        count = None
        if client is not None:
            try:
                count = int(client.zcount(HEARTBEATS, time.time() - STALE_S, "+inf"))
            except Exception as exc:  # noqa: BLE001
                log.debug("could not count the workers: %r", exc)
            finally:
                client.close()
        with self._lock:
            self._seen = (now, broker_url, count)
        return count

    def timed_out(self) -> None:
        with self._lock:
            self.timeouts.append(time.monotonic())

    def recent_timeouts(self) -> int:
        cutoff = time.monotonic() - RECENT_S
        with self._lock:
            return sum(1 for at in self.timeouts if at >= cutoff)

    def forget(self) -> None:
        with self._lock:
            self._seen = (float("-inf"), "", None)
            self.timeouts.clear()


workers = Workers()

class WorkersUnavailable(AttentionExplorerError):
    """No worker can take a new text now (none alive, or this process's waiting threads are all taken)."""

    title = N_("Analysis workers unavailable")


BUSY = N_("The server is busy analysing other new texts right now. Try again in a moment (texts analysed before "
          "can still be shown).")


class Waiting:
    """How many of this web process's threads may wait for a worker at once: all but two of gunicorn's
    threads (``ATTN_WEB_THREADS``, set by gunicorn.conf.py in each worker), so that views of analysed
    texts always find a thread, whatever the workers do; unbounded outside gunicorn."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: tuple[int, threading.BoundedSemaphore] | None = None

    def slots(self) -> threading.BoundedSemaphore | None:
        raw = os.environ.get("ATTN_WEB_THREADS", "").strip()
        if not raw.isdigit():
            return None
        limit = max(1, int(raw) - 2)
        with self._lock:
            if self._slots is None or self._slots[0] != limit:
                self._slots = (limit, threading.BoundedSemaphore(limit))
            return self._slots[1]


waiting = Waiting()

NO_WORKER = N_("No attention worker is running right now, so new texts cannot be analysed (texts analysed "
               "before can still be shown). Try again in a minute; if it persists, tell the server's administrator.")


def status() -> dict[str, Any]:
    """The workers for ``/healthz``: how many beat lately (None: unknown) and the task timeouts of this
    process in the last ``RECENT_S`` seconds."""
    return {"workers_alive": workers.alive(get_settings().celery_broker_url),
            "recent_timeouts": workers.recent_timeouts()}


def run_in_worker(text: str, model_id: str, text_pair: str | None, timeout: float | None = None, *,
                  target: str | None = None, max_new_tokens: int | None = None, steps: int | None = None):
    """Sends one extraction to the workers and waits for it. Errors are ``AttentionExplorerError``s.

    The worker's own errors (a model it cannot load, a text it refuses) come back as the same
    exception types the in-process path raises. Refused at once when no worker is alive (``NO_WORKER``).
    """
    broker_url = get_settings().celery_broker_url
    timeout = task_timeout() if timeout is None else timeout
    if workers.alive(broker_url) == 0:
        log.warning("extraction not sent: no attention worker has been heard from in %.0f s", STALE_S)
        raise WorkersUnavailable(NO_WORKER)
    slots = waiting.slots()
    if slots is not None and not slots.acquire(blocking=False):
        log.warning("extraction not sent: every thread this process lends to waiting for workers is waiting")
        raise WorkersUnavailable(BUSY)
    try:
        return _send_and_wait(text, model_id, text_pair, target, max_new_tokens, steps, broker_url, timeout)
    finally:
        if slots is not None:
            slots.release()


def _send_and_wait(text, model_id, text_pair, target, max_new_tokens, steps, broker_url: str, timeout: float):
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
        payload = _wait(pending, broker_url, timeout)
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


def _wait(pending, broker_url: str, timeout: float):
    """The task's answer, waiting at most ``timeout`` seconds, and less when no worker is alive any more
    (looked at every ``WAIT_SLICE_S`` seconds): a killed worker's task runs again on another one while
    any is alive (acknowledged late), so only a queue without workers is given up early."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    deadline = time.monotonic() + timeout
    step = current_step()  # a background analysis's (callbacks.analyze): it shows the worker's layers
    seen = (0, 0)
    while True:
        left = deadline - time.monotonic()
        try:
            return pending.get(timeout=max(0.05, min(PROGRESS_SLICE_S if step else WAIT_SLICE_S, left)),
                               propagate=True)
        except CeleryTimeout as exc:
            if step is not None:
                seen = _read_progress(broker_url, pending.id) or seen
                try:
                    step(*seen)  # records the progress; raises Cancelled once the person pressed Cancel
                except Cancelled:
                    log.info("extraction %s: cancelled, its worker stops at its next layer", pending.id)
                    _abandon(pending.id, broker_url, timeout)
                    raise
            if time.monotonic() >= deadline:
                workers.timed_out()
                log.warning("extraction %s: no worker answered within %.0f s", pending.id, timeout)
                _abandon(pending.id, broker_url, timeout)
                _quietly(pending.revoke)
                raise AttentionExplorerError(N_(
                    "No attention worker answered within {seconds} seconds: the workers are busy or stopped. "
                    "Try again in a minute; if it persists, tell the server's administrator."),
                    seconds=f"{timeout:.0f}") from exc
            if workers.alive(broker_url) == 0:
                workers.timed_out()
                log.warning("extraction %s: given up, no attention worker is alive", pending.id)
                _abandon(pending.id, broker_url, timeout)
                _quietly(pending.revoke)
                raise WorkersUnavailable(NO_WORKER) from exc


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
