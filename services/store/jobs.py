"""Work that takes seconds (a metric pass over every head, at 4,096 tokens), run in a thread of this
process, with its progress for the page and a Cancel.

``memory().jobs`` (a ``JobRegistry``) starts the work under a random job id (32 hex digits) that the page
keeps; the work calls ``step(done, total)`` after each piece, which records the progress and raises
``Cancelled`` once the job is cancelled, so work stops between two pieces (heads, layers) and returns
nothing. One job a key (what it computes): asking again for a key that is under way joins it.

Several processes (gunicorn workers): the poll of a job's progress, or its Cancel, may reach a worker
that does not run it. So the progress and the cancel flag are also written to the SHARED cache
(``cache.publish``, connected by ``services.store.cache``: the private cache folder, which every worker on one host shares, or Redis across
hosts), as small JSON texts, never pickles; ``status`` and ``cancel`` read and write them there when the
job is not in this process. With no shared cache (``ATTN_CACHE_TYPE=null``) only the worker that runs a
job knows it: a poll reaching another worker is answered "unknown" and the page stops polling.

The registry is bounded (``MAX_JOBS``, finished jobs forgotten first; at most ``MAX_RUNNING`` under way at
once) and holds no person's data: a job names what it computes, not who asked.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from ..errors import Cancelled

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_JOBS = 64
MAX_RUNNING = 4
STATES = ("running", "done", "cancelled", "failed")


class Busy(RuntimeError):
    """Too many jobs are under way in this process."""


class _Shared:
    """How jobs reach the shared cache: ``services.store.cache`` connects its ``publish``, ``read_published``
    and ``make_key`` when it is imported (so this module does not import it: no circle); unconnected,
    nothing is shared."""

    publish: Callable[[str, str], bool] = staticmethod(lambda key, text: False)
    read: Callable[[str], str | None] = staticmethod(lambda key: None)
    make_key: Callable[..., str] = staticmethod(lambda *parts: ":".join(parts))


_shared = _Shared()


def connect(publish: Callable[[str, str], bool], read: Callable[[str], str | None], make_key: Callable[..., str]) -> None:
    _shared.publish, _shared.read, _shared.make_key = publish, read, make_key


def _shared_key(kind: str, job_id: str) -> str:
    return _shared.make_key("job", kind, job_id)


class Job:
    """One piece of work under way or finished: its id, what it computes (``key``), its progress."""

    def __init__(self, key: Hashable, job_id: str | None = None) -> None:
        self.id = job_id or secrets.token_hex(16)
        self.key = key
        self.done = 0
        self.total = 0
        self.state = "running"
        self.error = ""
        self._cancel = threading.Event()
        self.thread: threading.Thread | None = None

    # --- from the work
    def step(self, done: int, total: int) -> None:
        """Records ``done`` of ``total``; raises ``Cancelled`` when the job was cancelled (here or, read
        from the shared cache, in another process)."""
        self.done, self.total = int(done), int(total)
        self.publish()  # a small write a step (a head: 0.1 s or more at the lengths that run here)
        if self.cancelled():
            raise Cancelled

    def cancelled(self) -> bool:
        if not self._cancel.is_set() and _shared.read(_shared_key("cancel", self.id)) == "1":
            self._cancel.set()
        return self._cancel.is_set()

    # --- from the page
    def cancel(self) -> None:
        self._cancel.set()

    def status(self) -> dict[str, Any]:
        """``{"state", "done", "total"}``; a running job asked to stop is "cancelled" at once (it stops at
        its next step and keeps nothing), so a poll answered meanwhile never says it still measures."""
        state = "cancelled" if self.state == "running" and self._cancel.is_set() else self.state
        return {"state": state, "done": self.done, "total": self.total}

    def publish(self) -> None:
        _shared.publish(_shared_key("status", self.id), json.dumps(self.status()))


def parse_status(text: object) -> dict[str, Any] | None:
    """A published status read back (untrusted bytes from a shared cache): ``{"state", "done", "total"}``
    with a known state and whole numbers 0 <= done <= total <= 10^7, else None."""
    try:
        value = json.loads(text) if isinstance(text, str) and len(text) < 512 else None
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("state") not in STATES:
        return None
    done, total = value.get("done"), value.get("total")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (done, total)) \
            or not 0 <= done <= total <= 10_000_000:
        return None
    return {"state": value["state"], "done": done, "total": total}


class JobRegistry:
    """This process's jobs, by id (see the module's docstring)."""

    def __init__(self, limit: int = MAX_JOBS, running: int = MAX_RUNNING) -> None:
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._limit = limit
        self._running = running

    def start(self, key: Hashable, work: Callable[[Callable[[int, int], None]], None]) -> Job:
        """Runs ``work(step)`` in a thread as a new job for ``key``, or returns the job under way for it.
        ``work`` keeps what it computes itself (a cache); the job only tells how far it is. Raises ``Busy``
        when ``MAX_RUNNING`` jobs are under way."""
        with self._lock:
            for job in self._jobs.values():
                if job.key == key and job.state == "running":
                    return job
            if sum(job.state == "running" for job in self._jobs.values()) >= self._running:
                raise Busy("too many measurements are under way")
            job = Job(key)
            self._jobs[job.id] = job
            self._trim()
        job.publish()
        job.thread = threading.Thread(target=self._run, args=(job, work), name=f"job-{job.id[:8]}", daemon=True)
        job.thread.start()
        return job

    def _run(self, job: Job, work) -> None:
        try:
            work(job.step)
        except Cancelled:
            job.state = "cancelled"
        except Exception as exc:  # noqa: BLE001 - the page is told; the log keeps the details
            log.exception("a job failed")
            job.state, job.error = "failed", str(exc)
        else:
            job.state = "done"
        job.publish()

    def _trim(self) -> None:
        while len(self._jobs) > self._limit:
            finished = next((i for i, j in self._jobs.items() if j.state != "running"), None)
            if finished is None:
                break
            del self._jobs[finished]

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def last_for(self, key: Hashable) -> Job | None:
        """The latest job for ``key`` in this process (running or finished), or None."""
        with self._lock:
            return next((j for j in reversed(self._jobs.values()) if j.key == key), None)

    def status(self, job_id: str) -> dict[str, Any] | None:
        """A job's ``{"state", "done", "total"}``: this process's own, else what its worker published
        (None when no process knows it). ``job_id`` must be parsed already (``JOB_ID``)."""
        job = self.get(job_id)
        if job is not None:
            return job.status()
        status = parse_status(_shared.read(_shared_key("status", job_id)))
        if status is not None and status["state"] == "running" and _shared.read(_shared_key("cancel", job_id)) == "1":
            status["state"] = "cancelled"  # asked to stop: its worker stops at the next step
        return status

    def cancel(self, job_id: str) -> bool:
        """Asks the job to stop at its next step (here, and through the shared cache for another worker).
        True when a process knows the job."""
        job = self.get(job_id)
        if job is not None:
            job.cancel()
        shared = _shared.publish(_shared_key("cancel", job_id), "1")
        return job is not None or shared

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)
