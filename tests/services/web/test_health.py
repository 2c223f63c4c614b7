"""/healthz says "degraded", with the reason in plain words, when a shared part fails (issue 19, item 3).

Before: it said "ok" through a full or read-only cache disk (the folder still looked fine, and the
health check itself cleared the record of failed writes) and through dead Celery workers (only the
broker was asked). The reasons are for loopback and signed-in viewers; others see only the status.
"""

from __future__ import annotations

import errno
import json

import pytest

from attention_explorer.services import extract_attention
from attention_explorer.services.store import cache, tasks
from attention_explorer.services.store.backends import SafeFileSystemCache

REMOTE = {"REMOTE_ADDR": "203.0.113.7"}


@pytest.fixture
def filesystem_app(make_app, tmp_path):
    app = make_app(cache_type="filesystem", cache_dir=str(tmp_path / "cache"))
    return app.server.test_client()


def _health(client, **kwargs) -> dict:
    response = client.get("/healthz", **kwargs)
    assert response.status_code == 200  # the process still serves: a load balancer keeps it
    return response.get_json()


def _failing_writes(monkeypatch, number: int) -> None:
    def fail(self, key, header, data):
        raise OSError(number, "simulated")

    monkeypatch.setattr(SafeFileSystemCache, "_write", fail)


@pytest.mark.parametrize("number, words", [(errno.ENOSPC, "its disk is full"),
                                           (errno.EROFS, "its folder is read-only or its permissions changed"),
                                           (errno.EACCES, "its folder is read-only or its permissions changed")])
def test_failing_cache_writes_are_degraded_until_a_write_succeeds(filesystem_app, tiny_models, monkeypatch,
                                                                  number, words):
    assert _health(filesystem_app)["status"] == "ok"
    _failing_writes(monkeypatch, number)
    extract_attention("the cat sat on the mat", tiny_models["bert"])  # computed; its write fails
    body = _health(filesystem_app)
    assert body["status"] == "degraded", body
    assert body["cache"]["reachable"] is True  # the folder looks fine: only the writes tell
    assert body["cache"]["failing"] == f"writing to the cache fails: {words}" and body["reasons"] == [body["cache"]["failing"]]
    assert "simulated" not in json.dumps(body) and "/" not in body["cache"]["failing"]  # no exception text, no path
    assert _health(filesystem_app, environ_base=REMOTE) == {"status": "degraded"}  # the reason only for the admin
    assert _health(filesystem_app)["status"] == "degraded"  # asking again does not clear it
    monkeypatch.undo()  # room again
    extract_attention("the dog ran in the park", tiny_models["bert"])  # a write that succeeds
    body = _health(filesystem_app)
    assert body["status"] == "ok" and "reasons" not in body and "failing" not in body["cache"], body


def test_a_missing_cache_folder_is_said(filesystem_app, tmp_path):
    import shutil

    shutil.rmtree(tmp_path / "cache")
    body = _health(filesystem_app)
    assert body["status"] == "degraded" and body["cache"] == {"type": "filesystem", "reachable": False,
                                                               "error": "the cache folder is missing"}


def test_a_failure_long_ago_no_longer_counts(filesystem_app, tiny_models, monkeypatch):
    _failing_writes(monkeypatch, errno.ENOSPC)
    extract_attention("the cat sat on the mat", tiny_models["bert"])
    assert _health(filesystem_app)["status"] == "degraded"
    monkeypatch.setattr(cache._breaker, "failed_at", cache._breaker.failed_at - cache.RECENT_FAILURE_S - 1)
    assert _health(filesystem_app)["status"] == "ok"


@pytest.fixture
def celery_app(make_app, redis_server, monkeypatch):
    """An app sending forward passes to a Celery broker on a real Redis, where no worker runs."""
    tasks.workers.forget()
    monkeypatch.setattr(tasks, "ALIVE_CACHE_S", 0.0)
    yield make_app(cache_type="simple", celery_broker_url=redis_server.db_url(1)).server.test_client(), redis_server
    tasks.workers.forget()


def test_no_celery_worker_alive_is_degraded(celery_app):
    client, redis_server = celery_app
    body = _health(client)
    assert body["extraction"]["broker_reachable"] is True and body["extraction"]["workers_alive"] == 0
    assert body["status"] == "degraded" and body["reasons"] == ["no attention worker has been heard from in the last 6 s"]
    heartbeat = tasks.Heartbeat(redis_server.db_url(1), "a-worker@host:1").start()  # a worker beats
    try:
        body = _health(client)
        assert body["status"] == "ok" and body["extraction"]["workers_alive"] == 1, body
    finally:
        heartbeat.stop()
    assert _health(client)["extraction"]["workers_alive"] == 0  # a worker that stops says so at once


def test_recent_task_timeouts_are_degraded(celery_app):
    client, redis_server = celery_app
    heartbeat = tasks.Heartbeat(redis_server.db_url(1), "a-worker@host:1").start()
    try:
        assert _health(client)["status"] == "ok"
        tasks.workers.timed_out()  # a web request gave up waiting for a worker
        body = _health(client)
        assert body["status"] == "degraded" and body["extraction"]["recent_timeouts"] == 1
        assert body["reasons"] == ["1 task(s) given up in the last 5 minutes (no worker answered in time)"]
    finally:
        heartbeat.stop()
