"""A long analysis sent to a Celery worker (issue 18 item 4): the worker publishes its progress layer by
layer and the web's job shows it; Cancel stops the worker's pass between two layers, and the worker lives
on and takes the next task. Real Redis and a real worker (``tests.held_worker``: a pass of a text that
starts with "held" waits after its first layer until the test lets it go): no timing decides the test."""

from __future__ import annotations

import pytest
from flask import Flask

from attention_explorer.services import config, extract_attention
from attention_explorer.services.model import forward
from attention_explorer.services.model.progress import layer_steps
from attention_explorer.services.store import cache, tasks
from attention_explorer.services.store.memory import memory
from tests.held_worker import HOLD
from tests.helpers import wait_for
from tests.servers import REDIS_MISSING, CeleryWorker, RedisServer, child_env

pytestmark = pytest.mark.servers


@pytest.fixture
def held_worker(settings, llama, tmp_path, monkeypatch):
    import shutil

    import torch

    if shutil.which("redis-server") is None:
        pytest.fail(REDIS_MISSING, pytrace=False)
    redis_server = RedisServer(tmp_path / "redis").start()
    broker = redis_server.db_url(1)
    env = child_env(ATTN_CELERY_BROKER_URL=broker, ATTN_MODELS=llama, ATTN_DEFAULT_MODEL=llama, ATTN_CACHE_TYPE="null",
                    ATTN_TORCH_THREADS=str(torch.get_num_threads()))
    worker = CeleryWorker(tmp_path / "worker", env, broker, app="tests.held_worker")
    try:
        worker.start()
        config.configure(models=settings.models + (llama,), celery_broker_url=broker, cache_type="simple")
        cache.init_cache(Flask("test-worker-progress"), config.get_settings())
        tasks.workers.forget()
        monkeypatch.setattr(forward, "compute", lambda *a, **k: pytest.fail("the model ran in the web process"))
        yield {"worker": worker, "redis": redis_server, "model": llama}
    finally:
        worker.stop()
        redis_server.stop()


def _release(redis_server: RedisServer) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.db_url(1))
    try:
        client.set(HOLD + "release", b"1", ex=300)
    finally:
        client.close()


def test_the_workers_layers_show_and_cancel_stops_its_pass(held_worker):
    worker, model = held_worker["worker"], held_worker["model"]

    def work(step) -> None:  # as callbacks.analyze runs a long analysis in the background
        step(0, 0)
        with layer_steps(step):
            extract_attention("held while the test looks at its progress", model)

    job = memory().jobs.start(("worker progress test",), work)
    # the worker's first layer shows in the job the page polls (1 of the tiny Llama's 2 layers)
    wait_for(lambda: memory().jobs.status(job.id) == {"state": "running", "done": 1, "total": 2}, "the worker's layer")
    assert "held after layer 1 of 2" in worker.log_text()
    memory().jobs.cancel(job.id)
    job.thread.join(60)
    assert job.state == "cancelled"  # the page stops waiting at once ...
    _release(held_worker["redis"])
    # ... and the worker stops its pass at the next layer, without finishing it
    wait_for(lambda: "cancelled: stopped between two layers" in worker.log_text(), "the worker to stop")
    assert worker.alive()  # the worker lives on and takes the next task
    result = extract_attention("a short text after the cancel", model)
    assert result.num_layers == 2 and result.seq_len > 3
