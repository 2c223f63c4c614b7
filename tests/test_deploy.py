"""Shared-lab deployment with real servers on 127.0.0.1 (random ports), always stopped afterwards.

Redis as the shared cache (round trip, killed mid-test, restarted), the file-system cache shared by
processes and bounded, a real Celery worker returning the same attention as in-process, /healthz,
the model allow-list through the API and through the Dash endpoint, and gunicorn with its config.
redis-server must be installed: without it these tests FAIL (``make install-test`` installs it).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from flask import Flask

from attention_explorer.services import (
    AttentionExplorerError,
    ModelLoadError,
    ModelNotAllowedError,
    config,
    extract_attention,
    extraction,
)
from attention_explorer.services.config import Settings
from attention_explorer.services.model import forward
from attention_explorer.services.model import loading as models
from attention_explorer.services.store import cache
from tests.servers import (
    PROJECT_ROOT,
    REDIS_MISSING,
    CeleryWorker,
    Gunicorn,
    RedisServer,
    child_env,
    free_port,
)

pytestmark = pytest.mark.servers

SENTENCE = "The cat sat on the mat because it was tired."
UNLISTED = "someone/not-offered-model"
OFFERED = "not one of the models this server offers"


# --------------------------------------------------------------------------------------------- fixtures


def _require_redis() -> None:
    import shutil

    if shutil.which("redis-server") is None:
        pytest.fail(REDIS_MISSING, pytrace=False)


@pytest.fixture
def redis_factory(tmp_path, request):
    """Starts ``redis-server``s (optionally on a given port); every one is stopped at teardown."""
    _require_redis()
    started: list[RedisServer] = []

    def start(port: int | None = None, name: str = "redis") -> RedisServer:
        server = RedisServer(tmp_path / name, port=port)
        started.append(server)
        return server.start()

    def stop_all() -> None:
        for server in started:
            server.stop()

    request.addfinalizer(stop_all)
    return start


@pytest.fixture
def redis_server(redis_factory) -> RedisServer:
    return redis_factory()


def _bind(**changes) -> Settings:
    """Reconfigures the process (the ``settings`` fixture restores it) and rebinds the cache."""
    settings = config.configure(**changes)
    cache.init_cache(Flask("test-deploy"), settings)
    return settings


@pytest.fixture
def redis_cache(settings, redis_server, monkeypatch):
    """The settings with a Redis cache on a fresh server, and a short breaker delay."""
    monkeypatch.setattr(cache, "RETRY_AFTER_S", 0.5)
    _bind(cache_type="redis", redis_url=redis_server.url)
    return redis_server


def _redis_keys(server: RedisServer, db: int = 0) -> list[bytes]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=server.port, db=db, socket_timeout=2)
    try:
        return list(client.scan_iter(match="attention-explorer:*"))
    finally:
        client.close()


def _same_result(a, b) -> None:
    assert a.tokens == b.tokens
    assert a.attentions.dtype == b.attentions.dtype and a.attentions.shape == b.attentions.shape
    np.testing.assert_array_equal(a.attentions, b.attentions)
    for name in ("model_id", "truncated", "word_ids", "segment_ids", "is_causal", "unknown_count",
                 "token_count_before_truncation", "token_limit", "text", "text_pair", "offsets"):
        assert getattr(a, name) == getattr(b, name), name
    np.testing.assert_array_equal(a.special_mask, b.special_mask)


# --------------------------------------------------------------------------------------------- Redis cache


def test_redis_cache_round_trip_skips_the_model(redis_cache, tiny_models, compute_calls):
    first = extract_attention(SENTENCE, tiny_models["bert"])
    key = extraction.cache_key(tiny_models["bert"], SENTENCE, None)
    # stored in Redis, not only in this process: the result and the recipe to compute it again
    assert sorted(_redis_keys(redis_cache)) == sorted(f"attention-explorer:{k}".encode() for k in (key, "recipe-" + key))
    cache.clear_local()
    second = extract_attention(SENTENCE, tiny_models["bert"])
    assert compute_calls == [SENTENCE]
    assert second is not first  # it came back from Redis (decoded by services.codec), not from the memo
    _same_result(first, second)
    assert cache.status() == {"type": "redis", "reachable": True}


def test_redis_killed_mid_test_then_restarted(redis_cache, redis_factory, tiny_models, compute_calls, caplog):
    bert = tiny_models["bert"]
    extract_attention("the cat sat", bert)
    assert compute_calls == ["the cat sat"]

    redis_cache.kill()  # as a crash: SIGKILL, no shutdown
    redis_cache.wait_closed()
    cache.clear_local()
    with caplog.at_level(logging.WARNING, logger="attention_explorer.services.store.cache"):
        started = time.monotonic()
        down = extract_attention("the cat sat", bert)  # cached before, but the cache is gone: computed
        other = extract_attention("the dog ran in the park", bert)
        elapsed = time.monotonic() - started
    assert down.seq_len == 5 and other.seq_len == 8
    assert compute_calls == ["the cat sat", "the cat sat", "the dog ran in the park"]
    assert "computing instead" in caplog.text
    assert elapsed < 5, f"a down Redis cost {elapsed:.1f} s"
    assert cache.status()["reachable"] is False

    restarted = redis_factory(port=redis_cache.port, name="redis-restarted")  # same port, empty
    assert restarted.url == redis_cache.url
    time.sleep(cache.RETRY_AFTER_S + 0.1)  # the breaker's retry delay
    with caplog.at_level(logging.INFO, logger="attention_explorer.services.store.cache"):
        extract_attention("a dog and a cat", bert)
    assert "reachable again" in caplog.text
    assert len(_redis_keys(restarted)) == 2  # the new result (and its recipe) went to the restarted Redis
    cache.clear_local()
    again = extract_attention("a dog and a cat", bert)
    assert compute_calls.count("a dog and a cat") == 1  # ... and came back from it
    assert again.seq_len == 7
    assert cache.status() == {"type": "redis", "reachable": True}


def test_redis_url_from_the_environment_selects_redis(monkeypatch):
    monkeypatch.setenv("ATTN_REDIS_URL", "redis://127.0.0.1:6390/3")
    monkeypatch.delenv("ATTN_CACHE_TYPE", raising=False)
    settings = Settings.from_env()
    assert settings.cache_type == "redis"
    conf = cache.cache_config(settings)
    # flask-caching's Redis cache with the safe codec instead of pickle (issue 9)
    assert conf["CACHE_TYPE"] == "attention_explorer.services.store.backends.SafeRedisCache"
    assert conf["CACHE_REDIS_URL"] == "redis://127.0.0.1:6390/3"


# --------------------------------------------------------------------------------------------- file-system cache

_CHILD = textwrap.dedent("""
    import json, sys
    from attention_explorer.services import extract_attention
    from attention_explorer.services.model import forward

    def refuse(*args, **kwargs):
        raise RuntimeError("the model ran in the child process")

    forward.compute = refuse  # a hit must come from the shared cache directory
    result = extract_attention(sys.argv[1], sys.argv[2])
    print(json.dumps({"tokens": result.tokens, "attentions": result.attentions.astype("float32").tolist()}))
""")


def _run_child(env: dict[str, str], text: str, model: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _CHILD, text, model], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_filesystem_cache_is_shared_by_processes(settings, tiny_models, tmp_path):
    cache_dir = tmp_path / "shared-cache"
    _bind(cache_type="filesystem", cache_dir=str(cache_dir))
    ours = extract_attention(SENTENCE, tiny_models["bert"])
    env = child_env(ATTN_CACHE_TYPE="filesystem", ATTN_CACHE_DIR=str(cache_dir),
                    ATTN_MODELS=",".join(settings.models))

    hit = _run_child(env, SENTENCE, tiny_models["bert"])
    assert hit.returncode == 0, hit.stderr[-2000:]
    theirs = json.loads(hit.stdout.strip().splitlines()[-1])
    assert theirs["tokens"] == ours.tokens
    np.testing.assert_array_equal(np.asarray(theirs["attentions"], dtype=np.float32),
                                  ours.attentions.astype(np.float32))

    miss = _run_child(env, "a text nobody analysed", tiny_models["bert"])  # the control: no hit, so it fails
    assert miss.returncode != 0 and "the model ran in the child process" in miss.stderr


def test_filesystem_cache_is_bounded(settings, tiny_models, tmp_path, compute_calls):
    threshold = 4
    cache_dir = tmp_path / "bounded-cache"
    _bind(cache_type="filesystem", cache_dir=str(cache_dir), cache_threshold=threshold)
    texts = [f"the cat sat {'and the dog ran ' * i}" for i in range(10)]
    for text in texts:
        extract_attention(text, tiny_models["bert"])
    cache.flush()
    entries = list(cache_dir.glob("*.aec"))  # results and their recipes; no count file
    # pruned after each write, oldest first: never more than the threshold
    assert 1 <= len(entries) <= threshold
    assert not [p for p in cache_dir.iterdir() if not p.name.endswith(".aec")]
    assert len(compute_calls) == len(texts)
    kept = [t for t in texts if cache.cache.get(extraction.cache_key(tiny_models["bert"], t, None)) is not None]
    assert 1 <= len(kept) <= threshold  # the rest was pruned
    assert kept[-1] == texts[-1]  # the newest is kept
    cache.clear_local()
    extract_attention(kept[-1], tiny_models["bert"])  # what is kept is used
    assert len(compute_calls) == len(texts)


# --------------------------------------------------------------------------------------------- Celery


@pytest.fixture(scope="module")
def celery_stack(tiny_models, tmp_path_factory, request):
    """A Redis broker and one real worker (``--pool=solo``) offering the tiny BERT and GPT-2 only."""
    import torch

    _require_redis()
    workdir = tmp_path_factory.mktemp("celery")
    redis_server = RedisServer(workdir / "redis")
    request.addfinalizer(redis_server.stop)
    redis_server.start()
    broker = redis_server.db_url(1)
    env = child_env(
        ATTN_CELERY_BROKER_URL=broker,
        ATTN_MODELS=f"{tiny_models['bert']},{tiny_models['gpt2']}",
        ATTN_CACHE_TYPE="null",
        # the same intra-op thread count as this process: the same floating-point summation order
        ATTN_TORCH_THREADS=str(torch.get_num_threads()),
    )
    worker = CeleryWorker(workdir, env, broker)
    request.addfinalizer(worker.stop)
    worker.start()
    return {"redis": redis_server, "broker": broker, "worker": worker}


@pytest.fixture
def via_celery(settings, celery_stack):
    """This process sends forward passes to the worker; a forward pass here fails the test."""
    _bind(celery_broker_url=celery_stack["broker"], cache_type="simple")
    return celery_stack


def _local(text, model, pair=None):
    """The in-process path, whatever the settings say."""
    return forward.run_local(text, model, pair)


@pytest.mark.parametrize("kind,pair", [("bert", None), ("bert", "The dog ran in the park."), ("gpt2", None)])
def test_celery_worker_returns_the_same_attention(via_celery, tiny_models, monkeypatch, kind, pair):
    model = tiny_models[kind]
    expected = _local(SENTENCE, model, pair)
    monkeypatch.setattr(forward, "compute", lambda *a, **k: pytest.fail("the model ran in the web process"))
    remote = extract_attention(SENTENCE, model, pair)
    _same_result(remote, expected)
    worker = via_celery["worker"]
    deadline = time.monotonic() + 10  # the worker logs the task after it has stored the result
    while "succeeded" not in worker.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "succeeded" in worker.log_text()


def test_celery_from_many_threads(via_celery, tiny_models):
    texts = ["the cat sat", "the dog ran", "a cat and a dog", "hello there world", "the cat sat"]
    with ThreadPoolExecutor(5) as pool:
        remote = list(pool.map(lambda t: extract_attention(t, tiny_models["gpt2"]), texts))
    for text, result in zip(texts, remote):
        _same_result(result, _local(text, tiny_models["gpt2"]))


def test_celery_worker_errors_come_back_readable(via_celery, tiny_models):
    # This web process offers the Chinese model; the worker's configuration does not.
    with pytest.raises(ModelNotAllowedError, match=OFFERED) as info:
        extract_attention("猫坐在垫子上", tiny_models["chinese"])
    assert "Traceback" not in str(info.value)


def test_celery_without_worker_times_out_readably(settings, celery_stack, tiny_models, monkeypatch):
    # Another database of the same Redis: a queue no worker listens to.
    _bind(celery_broker_url=celery_stack["redis"].db_url(2), cache_type="simple")
    monkeypatch.setenv("ATTN_CELERY_TIMEOUT", "2")
    started = time.monotonic()
    with pytest.raises(AttentionExplorerError, match="No attention worker (answered within 2 seconds|is running)"):
        extract_attention("nobody will compute this", tiny_models["bert"])
    assert time.monotonic() - started < 10


def test_celery_broker_down_is_readable(settings, tiny_models, monkeypatch):
    _bind(celery_broker_url=f"redis://127.0.0.1:{free_port()}/0", cache_type="simple")
    monkeypatch.setenv("ATTN_CELERY_TIMEOUT", "5")
    started = time.monotonic()
    with pytest.raises(AttentionExplorerError, match="cannot be reached") as info:
        extract_attention("the broker is down", tiny_models["bert"])
    assert "Traceback" not in str(info.value)
    assert time.monotonic() - started < 20


def test_celery_recovers_when_its_redis_restarts(settings, redis_factory, tiny_models, tmp_path, monkeypatch):
    import torch

    redis_server = redis_factory(name="broker")
    broker = redis_server.db_url(1)
    env = child_env(ATTN_CELERY_BROKER_URL=broker, ATTN_MODELS=tiny_models["bert"], ATTN_CACHE_TYPE="null",
                    ATTN_TORCH_THREADS=str(torch.get_num_threads()))
    worker = CeleryWorker(tmp_path / "worker", env, broker)
    expected = _local("the dog ran", tiny_models["bert"])
    try:
        worker.start()
        _bind(celery_broker_url=broker, cache_type="simple")
        monkeypatch.setenv("ATTN_CELERY_TIMEOUT", "20")
        monkeypatch.setattr(forward, "compute", lambda *a, **k: pytest.fail("the model ran in the web process"))
        assert extract_attention("the cat sat", tiny_models["bert"]).seq_len == 5

        redis_server.kill()
        redis_server.wait_closed()
        started = time.monotonic()
        with pytest.raises(AttentionExplorerError, match="cannot be reached|connection .* was lost"):
            extract_attention("the dog ran", tiny_models["bert"])
        assert time.monotonic() - started < 10

        redis_factory(port=redis_server.port, name="broker-restarted")
        deadline = time.monotonic() + 60  # the worker reconnects on its own (Celery retries every few s)
        while "Connected to redis" not in worker.log_text().split("Trying to re-establish")[-1]:
            assert worker.alive() and time.monotonic() < deadline, worker.log_text()
            time.sleep(0.2)
        _same_result(extract_attention("the dog ran", tiny_models["bert"]), expected)
    finally:
        worker.stop()


# A dead worker loses nothing and freezes no one (issue 19, item 4). Before: tasks were acknowledged when
# taken, so a task whose worker was killed was lost, and a web request waited ATTN_CELERY_TIMEOUT (120 s)
# for it, holding its thread, even when no worker was left.


def _slow_workers(tmp_path, tiny_models, broker: str, count: int, timeout: str) -> list[CeleryWorker]:
    import torch

    env = child_env(ATTN_CELERY_BROKER_URL=broker, ATTN_MODELS=tiny_models["bert"], ATTN_DEFAULT_MODEL=tiny_models["bert"],
                    ATTN_CACHE_TYPE="null", ATTN_CELERY_TIMEOUT=timeout, ATTN_TEST_SLOW_S="4",
                    ATTN_TORCH_THREADS=str(torch.get_num_threads()))
    return [CeleryWorker(tmp_path / f"worker-{i}", env, broker, hostname=f"slow-{i}-{free_port()}@%h",
                         app="tests.slow_worker") for i in range(count)]


def _started_in(workers: list[CeleryWorker], within: float = 60.0) -> CeleryWorker:
    """The worker that started the slow task (it says so in its log)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for worker in workers:
            if "slow task started" in worker.log_text():
                return worker
        time.sleep(0.05)
    raise AssertionError("no worker started the task:\n" + "\n".join(w.log_text()[-1500:] for w in workers))


def _ask_while_the_worker_dies(text: str, model: str, worker: CeleryWorker, within: float) -> None:
    """Asks for ``text`` from another thread, kills the only worker once it started the task, and checks
    the person is told no worker runs (within ``within`` seconds)."""
    with ThreadPoolExecutor(1) as pool:
        asked = pool.submit(extract_attention, text, model)
        _started_in([worker])
        worker.kill()
        with pytest.raises(AttentionExplorerError, match="No attention worker is running"):
            asked.result(timeout=within)


def test_a_killed_workers_task_runs_again_on_another(settings, redis_factory, tiny_models, tmp_path, monkeypatch):
    broker = redis_factory(name="broker").db_url(1)
    # ATTN_CELERY_TIMEOUT 60: tasks may run 30 s; a task not acknowledged within 40 s goes back to the queue
    workers = _slow_workers(tmp_path, tiny_models, broker, 2, "60")
    try:
        for worker in workers:
            worker.start()
        text = "slowly the cat sat on the mat"
        expected = _local(text, tiny_models["bert"])
        _bind(celery_broker_url=broker, cache_type="simple")
        monkeypatch.setenv("ATTN_CELERY_TIMEOUT", "60")
        monkeypatch.setattr(forward, "compute", lambda *a, **k: pytest.fail("the model ran in the web process"))
        with ThreadPoolExecutor(1) as pool:
            asked = pool.submit(extract_attention, text, tiny_models["bert"])
            first = _started_in(workers)
            first.kill()  # SIGKILL in the middle of the task: nothing acknowledged, nothing answered
            other = next(w for w in workers if w is not first)
            result = asked.result(timeout=120)
        _same_result(result, expected)
        assert "slow task started" in other.log_text() and "succeeded" in other.log_text(), other.log_text()[-2000:]
    finally:
        for worker in workers:
            worker.stop()


def test_no_worker_alive_is_said_at_once(settings, redis_factory, tiny_models, tmp_path, monkeypatch):
    from attention_explorer.services.store import tasks

    redis_server = redis_factory(name="broker")
    broker = redis_server.db_url(1)
    (worker,) = _slow_workers(tmp_path, tiny_models, broker, 1, "120")
    try:
        worker.start()
        _bind(celery_broker_url=broker, cache_type="simple")
        monkeypatch.setenv("ATTN_CELERY_TIMEOUT", "120")
        tasks.workers.forget()
        assert tasks.status() == {"workers_alive": 1, "recent_timeouts": 0}
        # given up once the worker's heartbeat is stale (STALE_S), not after ATTN_CELERY_TIMEOUT: the
        # message says no worker runs, not that none answered within 120 seconds
        _ask_while_the_worker_dies("slowly a text the only worker dies on", tiny_models["bert"], worker, 110)
        assert tasks.status() == {"workers_alive": 0, "recent_timeouts": 1}
        queued = _queue_length(redis_server)
        with pytest.raises(AttentionExplorerError, match="No attention worker is running") as info:
            extract_attention("a new text while no worker runs", tiny_models["bert"])
        assert _queue_length(redis_server) == queued  # refused before sending: nothing waits in the queue
        assert "Traceback" not in str(info.value)
    finally:
        worker.stop()


def test_a_task_given_up_on_is_not_computed_when_a_worker_comes_back(settings, redis_factory, tiny_models, tmp_path,
                                                                      monkeypatch):
    from attention_explorer.services.store import tasks

    broker = redis_factory(name="broker").db_url(1)
    # ATTN_CELERY_TIMEOUT 40: tasks may run 20 s; a task not acknowledged within 30 s goes back to the queue,
    # before it expires (40 s): without the web's mark, the worker that comes back would compute it
    first, second = _slow_workers(tmp_path, tiny_models, broker, 2, "40")
    try:
        first.start()
        _bind(celery_broker_url=broker, cache_type="simple")
        monkeypatch.setenv("ATTN_CELERY_TIMEOUT", "40")
        tasks.workers.forget()
        _ask_while_the_worker_dies("slowly a text nobody waits for in the end", tiny_models["bert"], first, 60)
        second.start()  # back: the killed worker's task returns to the queue after the visibility timeout
        deadline = time.monotonic() + 90
        while "received" not in second.log_text():
            assert time.monotonic() < deadline, second.log_text()[-2000:]
            time.sleep(0.2)
        deadline = time.monotonic() + 30
        while "skipped: the web process gave up on it" not in second.log_text():
            assert time.monotonic() < deadline, second.log_text()[-2000:]
            time.sleep(0.2)
        assert "slow task started" not in second.log_text()  # no forward pass for nobody
    finally:
        first.stop()
        second.stop()


def _queue_length(server: RedisServer) -> int:
    import redis

    from attention_explorer.services.store.tasks import QUEUE

    client = redis.Redis(host="127.0.0.1", port=server.port, db=1, socket_timeout=2)
    try:
        return int(client.llen(QUEUE))
    finally:
        client.close()


def test_without_broker_the_default_stays_in_process(settings, tiny_models, compute_calls):
    assert settings.celery_broker_url == ""
    extract_attention("in this process", tiny_models["bert"])
    assert compute_calls == ["in this process"]
    assert Settings().celery_broker_url == ""


# --------------------------------------------------------------------------------------------- /healthz and allow-list


def test_healthz_with_redis_up_and_down(redis_cache, make_app, tiny_models):
    client = make_app(cache_type="redis", redis_url=redis_cache.url).server.test_client()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.is_json
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["cache"] == {"type": "redis", "reachable": True}
    assert isinstance(body["models_loaded"], list)
    assert body["extraction"]["mode"] == "in-process"

    extract_attention(SENTENCE, tiny_models["bert"])
    assert tiny_models["bert"] in client.get("/healthz").get_json()["models_loaded"]

    redis_cache.kill()
    started = time.monotonic()
    response = client.get("/healthz")
    assert time.monotonic() - started < 3
    assert response.status_code == 200  # the app still serves: it computes instead
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["cache"]["type"] == "redis" and body["cache"]["reachable"] is False
    assert "Traceback" not in response.get_data(as_text=True)


def test_healthz_reports_a_down_celery_broker(make_app):
    client = make_app(cache_type="simple", celery_broker_url=f"redis://127.0.0.1:{free_port()}/1").server.test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["extraction"]["mode"] == "celery" and body["extraction"]["broker_reachable"] is False


def test_model_outside_the_allow_list_is_refused(settings, tiny_models, monkeypatch):
    monkeypatch.setattr(models, "_load", lambda *_: pytest.fail("an unlisted model was loaded"))
    with pytest.raises(ModelNotAllowedError, match=OFFERED) as info:
        extract_attention(SENTENCE, UNLISTED)
    # the offer is listed by the models' names: a local folder by its name, not its path on the server
    assert UNLISTED in str(info.value) and "tiny-bert" in str(info.value) and tiny_models["bert"] not in str(info.value)
    # Free-form ids only when the configuration says so (then it is not on this machine: offline, answered at once).
    monkeypatch.undo()
    config.configure(allow_any_model=True)
    with pytest.raises(ModelLoadError, match="is not downloaded on this machine"):
        extract_attention(SENTENCE, UNLISTED)


def _dash_call(client, changed: dict[str, object], values: dict[str, object], match_input: str,
               match_output: str) -> dict:
    """POSTs to /_dash-update-component like the browser does, for the callback with ``match_input``
    among its inputs and ``match_output`` among its outputs, found in /_dash-dependencies."""
    deps = client.get("/_dash-dependencies").get_json()
    spec = next(d for d in deps
                if any(i["id"] == match_input for i in d["inputs"]) and f"{match_output}." in d["output"])
    output = spec["output"]
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    outputs = [dict(zip(("id", "property"), part.rsplit(".", 1))) for part in parts]

    def items(kind):
        return [{"id": i["id"], "property": i["property"], "value": values.get(i["id"])} for i in spec[kind]]

    body = {
        "output": output,
        "outputs": outputs if output.startswith("..") else outputs[0],
        "inputs": items("inputs"),
        "state": items("state"),
        "changedPropIds": [f"{cid}.{prop}" for cid, prop in changed.items()],
    }
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code in (200, 204), response.get_data(as_text=True)[:500]
    raw = response.get_data(as_text=True)
    assert "Traceback" not in raw
    # Dash escapes "/" and "<" in its JSON: compare against the decoded response
    text = json.dumps(response.get_json(), ensure_ascii=False) if raw else ""
    return {"status": response.status_code, "text": text}


def test_dash_endpoint_refuses_an_unlisted_model(make_app, tiny_models, monkeypatch):
    from attention_explorer.components import ids

    client = make_app().server.test_client()
    values = {ids.TEXT: SENTENCE, ids.TEXT_PAIR: None, ids.ANALYZE: 1, ids.LAYER: 0, ids.HEAD: ids.HEAD_ALL}

    allowed = _dash_call(client, {ids.ANALYZE: "n_clicks"}, {**values, ids.MODEL: tiny_models["bert"]},
                         ids.MODEL, ids.STATUS)
    assert tiny_models["bert"] in allowed["text"] and "tokens" in allowed["text"]  # the control: it ran

    monkeypatch.setattr(models, "_load", lambda *_: pytest.fail("an unlisted model was loaded"))
    refused = _dash_call(client, {ids.MODEL: "value"}, {**values, ids.MODEL: UNLISTED}, ids.MODEL, ids.STATUS)
    assert OFFERED in refused["text"] and UNLISTED in refused["text"]


# --------------------------------------------------------------------------------------------- gunicorn


@pytest.fixture
def gunicorn_app(tiny_models, tmp_path, request):
    env = child_env(
        ATTN_DEFAULT_MODEL=tiny_models["bert"],
        ATTN_MODELS=tiny_models["gpt2"],
        ATTN_CACHE_DIR=str(tmp_path / "gunicorn-cache"),
    )
    server = Gunicorn(tmp_path, env, workers=1, threads=2)
    request.addfinalizer(server.stop)
    return server.start()


def test_gunicorn_config_serves_the_app(gunicorn_app, tiny_models):
    import psutil
    import requests

    health = requests.get(gunicorn_app.url + "/healthz", timeout=10)
    assert health.status_code == 200
    body = health.json()
    assert body["cache"] == {"type": "filesystem", "reachable": True}
    assert tiny_models["bert"] in body["models_loaded"]  # warmed up before taking requests

    master = psutil.Process(gunicorn_app.pid)
    assert not any("libtorch" in m.path for m in master.memory_maps())  # no preload_app: torch is in workers only
    assert len(gunicorn_app.worker_pids()) == 1

    page = requests.get(gunicorn_app.url + "/", timeout=10)
    assert page.status_code == 200 and "Attention Explorer" in page.text
    broken = requests.post(gunicorn_app.url + "/_dash-update-component", data="{not json",
                           headers={"Content-Type": "application/json"}, timeout=10)
    assert broken.status_code >= 400 and "Traceback" not in broken.text


_HOOKS = textwrap.dedent("""
    import json, os, runpy
    conf = runpy.run_path("gunicorn.conf.py")
    import torch
    before = torch.get_num_threads()
    conf["post_fork"](None, None)
    from attention_explorer.services.config import Settings
    print(json.dumps({"before": before, "after": torch.get_num_threads(), "preload": conf["preload_app"],
                      "workers": conf["workers"], "threads": conf["threads"], "timeout": conf["timeout"],
                      "worker_class": conf["worker_class"], "setting": Settings.from_env().torch_threads,
                      "omp": os.environ["OMP_NUM_THREADS"], "web_threads": os.environ["ATTN_WEB_THREADS"]}))
""")


@pytest.mark.parametrize("env,threads", [({}, 1), ({"ATTN_TORCH_THREADS": "2", "ATTN_WORKERS": "3"}, 2)])
def test_gunicorn_conf_sets_torch_threads_per_worker(env, threads):
    done = subprocess.run([sys.executable, "-c", _HOOKS], cwd=PROJECT_ROOT, env=child_env(**env),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    conf = json.loads(done.stdout.strip().splitlines()[-1])
    assert conf["after"] == threads and conf["setting"] == threads and conf["omp"] == str(threads)
    assert conf["preload"] is False and conf["worker_class"] == "gthread" and conf["timeout"] >= 60
    assert conf["workers"] == int(env.get("ATTN_WORKERS", 2)) and conf["threads"] >= 1
    assert conf["web_threads"] == str(conf["threads"])  # each worker knows its threads (services/store/tasks.py)
