"""Nothing read back from the file-system cache, Redis or a Celery result store is unpickled (issue 9).

Each test plants a pickle that, if it were loaded, would create a marker file (``_Plant``), where the
app would read it, then uses the app as a person would (an analysis, ``GET /healthz``) and asserts
that the marker never appears and the app answers normally: the planted value is a miss, computed
again. Before issue 9 every one of them created the marker: cachelib's FileSystemCache unpickled
the entry and its count file (on every write, and ``/healthz`` wrote), RedisCache unpickled values
starting with ``!``, and Celery results were pickles.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import struct
import uuid

import pytest
from flask import Flask

from attention_explorer.services import config, extract_attention, extraction
from attention_explorer.services.store import cache
from tests.services.store.test_codec import _Plant

pytestmark = pytest.mark.servers

SENTENCE = "The cat sat on the mat because it was tired."


def _planted(marker) -> bytes:
    payload = pickle.dumps(_Plant(str(marker)))
    assert not marker.exists()
    return payload


def _plant_file(cache_dir, name: str, payload: bytes) -> None:
    expiry = struct.pack("I", 0)
    for file_name, data in ((hashlib.sha256(name.encode()).hexdigest(), expiry + payload),
                            (hashlib.md5(name.encode()).hexdigest(), expiry + payload),
                            (hashlib.sha256(name.encode()).hexdigest() + ".aec", payload)):
        (cache_dir / file_name).write_bytes(data)
        (cache_dir / file_name).chmod(0o600)


def _app(settings_changes: dict):
    base = config.get_settings()  # importing app builds its module-level app from the environment: keep ours
    from attention_explorer import app as app_module

    return app_module.create_app(base.replace(**settings_changes))


def test_pickles_planted_in_the_file_system_cache_never_run(settings, tiny_models, tmp_path, compute_calls, caplog):
    cache_dir = tmp_path / "fs-cache"
    cache_dir.mkdir(mode=0o700)
    marker = tmp_path / "pwned-fs"
    payload = _planted(marker)
    key = extraction.cache_key(tiny_models["bert"], SENTENCE, None)
    # Where flask-caching's FileSystemCache looks (sha256 of the key, or md5 for cachelib's own default;
    # a 4-byte expiry, then the pickle), its count file (unpickled on every write), and where this
    # version looks (sha256 + ".aec").
    for name in (key, "recipe-" + key, "__wz_cache_count"):
        _plant_file(cache_dir, name, payload)

    client = _app(dict(cache_type="filesystem", cache_dir=str(cache_dir))).server.test_client()
    assert client.get("/healthz").status_code == 200
    with caplog.at_level(logging.WARNING, logger="attention_explorer.services.store.backends"):
        result = extract_attention(SENTENCE, tiny_models["bert"])
    health = client.get("/healthz")
    cache.flush()

    assert not marker.exists(), "a planted pickle was run"
    assert result.tokens[:3] == ["[CLS]", "the", "cat"] and compute_calls == [SENTENCE]  # a miss, computed
    assert "treated as a miss" in caplog.text
    assert health.status_code == 200 and health.get_json()["status"] == "ok"
    cache.clear_local()
    again = extract_attention(SENTENCE, tiny_models["bert"])  # the computed result replaced the plant
    assert compute_calls == [SENTENCE] and again.tokens == result.tokens
    assert not marker.exists()


def test_pickles_planted_in_redis_never_run(settings, tiny_models, redis_server, tmp_path, compute_calls,
                                            monkeypatch, caplog):
    import redis

    monkeypatch.setattr(cache, "RETRY_AFTER_S", 0.5)
    client = _app(dict(cache_type="redis", redis_url=redis_server.url)).server.test_client()
    marker = tmp_path / "pwned-redis"
    payload = _planted(marker)
    key = extraction.cache_key(tiny_models["bert"], SENTENCE, None)
    other = extraction.cache_key(tiny_models["bert"], "the dog ran", None)
    raw = redis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        # cachelib's RedisCache unpickles values that start with "!"; plant both forms, for a result,
        # its recipe, and a key the views fetch by (result_by_key).
        raw.set(f"attention-explorer:{key}", b"!" + payload)
        raw.set(f"attention-explorer:recipe-{key}", b"!" + payload)
        raw.set(f"attention-explorer:{other}", payload)
        with caplog.at_level(logging.WARNING, logger="attention_explorer.services.store.backends"):
            result = extract_attention(SENTENCE, tiny_models["bert"])
            assert extraction.result_by_key(other) is None  # a plant is a miss; no recipe to compute from
        health = client.get("/healthz")
        cache.flush()
        assert not marker.exists(), "a planted pickle was run"
        assert result.seq_len == 13 and compute_calls == [SENTENCE]
        assert "treated as a miss" in caplog.text
        assert health.status_code == 200 and health.get_json()["status"] == "ok"
        stored = raw.get(f"attention-explorer:{key}")
        assert stored.startswith(b"AEXC")  # the computed result replaced the plant, in the safe format
        cache.clear_local()
        assert extract_attention(SENTENCE, tiny_models["bert"]).tokens == result.tokens
        assert compute_calls == [SENTENCE]
    finally:
        raw.close()


def test_pickled_celery_result_is_refused(settings, redis_server, tmp_path):
    """A result planted in Celery's result store as a pickle: the web process refuses the content."""
    import redis

    from attention_explorer.services.store import tasks

    marker = tmp_path / "pwned-celery"
    payload = _planted(marker)
    celery = tasks.make_celery(redis_server.db_url(1))
    assert "pickle" not in celery.conf.accept_content and "pickle" not in celery.conf.result_accept_content
    assert celery.conf.result_serializer == "json" and celery.conf.task_serializer == "json"
    task_id = str(uuid.uuid4())
    raw = redis.Redis(host="127.0.0.1", port=redis_server.port, db=1)
    try:
        raw.set(f"celery-task-meta-{task_id}", payload)
        with pytest.raises(Exception) as info:  # what AsyncResult.get() reads, without its pub/sub wait
            celery.backend.get_task_meta(task_id)
        assert tasks._is_refused_content(info.value)  # run_in_worker turns it into a readable message
        assert not marker.exists(), "a planted pickle was run"
        # A well-formed JSON answer that is not an attention result is refused readably.
        with pytest.raises(tasks.AttentionExplorerError, match="could not be read"):
            tasks.decode_payload({"format": "attention-explorer", "data": "AAAA"})
    finally:
        raw.close()
        celery.close()


def test_a_count_file_planted_while_the_app_runs_is_never_unpickled(settings, tmp_path):
    """cachelib rewrites its count file when it starts, then unpickles it on every write: plant it after."""
    cache_dir = tmp_path / "fs-count"
    cache_dir.mkdir(mode=0o700)
    marker = tmp_path / "pwned-count"
    cache.init_cache(Flask("plant"), config.configure(cache_type="filesystem", cache_dir=str(cache_dir)))
    cache.store("k0", "value 0")
    _plant_file(cache_dir, "__wz_cache_count", _planted(marker))
    for i in range(1, 4):
        cache.store(f"k{i}", f"value {i}")
    cache.clear_local()
    assert cache.lookup("k3") == "value 3"
    assert not marker.exists(), "a planted pickle was run"
