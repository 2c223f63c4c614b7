"""A gunicorn worker lends all but two of its threads to waiting for Celery workers (issue 19, item 4):
when workers are slow or dead, new texts are refused in plain words instead of taking every thread, so
views of analysed texts always find one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from attention_explorer.services import config
from attention_explorer.services.store import tasks


def test_threads_beyond_the_waiting_slots_are_refused_not_held(settings, monkeypatch):
    config.configure(celery_broker_url="redis://127.0.0.1:1/1")
    monkeypatch.setenv("ATTN_WEB_THREADS", "4")  # gunicorn --threads 4: two may wait for workers
    monkeypatch.setattr(tasks.workers, "alive", lambda url: 1)
    release, waiting = threading.Event(), []

    def slow_worker(*args):
        waiting.append(1)
        release.wait(30)
        return "an answer"

    monkeypatch.setattr(tasks, "_send_and_wait", slow_worker)
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(tasks.run_in_worker, f"text {i}", "m", None) for i in range(2)]
        while len(waiting) < 2:
            threading.Event().wait(0.01)
        with pytest.raises(tasks.WorkersUnavailable, match="busy analysing other new texts"):
            tasks.run_in_worker("a third text", "m", None)
        release.set()
        assert [f.result(timeout=30) for f in held] == ["an answer", "an answer"]
    assert tasks.run_in_worker("a slot is free again", "m", None) == "an answer"


def test_outside_gunicorn_nothing_is_refused_for_threads(settings, monkeypatch):
    monkeypatch.delenv("ATTN_WEB_THREADS", raising=False)
    assert tasks.waiting.slots() is None
