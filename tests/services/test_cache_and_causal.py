"""Behaviours of the cache and the forward pass that nothing else guards: the data-based causal check,
the key's token limit, the memo's LRU order and byte limit, and the breaker, on an injected clock."""

from __future__ import annotations

import numpy as np

from attention_explorer.services import config, extract_attention, extraction
from attention_explorer.services.model import forward
from attention_explorer.services.model import loading as models
from attention_explorer.services.result import looks_causal
from attention_explorer.services.store import cache
from attention_explorer.services.store.memory import ByteLRU

SENTENCE = "The cat sat on the mat because it was tired."


def test_decide_causal_on_the_data():
    lower = np.tril(np.ones((2, 3, 5, 5), dtype=np.float16))
    full = np.ones((2, 3, 5, 5), dtype=np.float16)
    assert looks_causal(lower) and not looks_causal(full)
    one_head_peeks = lower.copy()
    one_head_peeks[1, 2, 3, 4] = 0.01  # a single later key seen anywhere: not causal
    assert not looks_causal(one_head_peeks)
    assert not looks_causal(np.ones((1, 1, 1, 1)))  # one token says nothing
    assert forward.decide_causal(True, full) and forward.decide_causal(False, lower)
    assert not forward.decide_causal(False, full)


def test_a_decoder_whose_config_does_not_say_so_is_found_causal(settings, tiny_models, monkeypatch):
    monkeypatch.setattr(models, "_detect_causal", lambda config: False)
    models.unload_all()
    try:
        loaded = models.get_model(tiny_models["gpt2"])
        assert loaded.is_causal is False  # the configuration is not trusted to say it
        result = extract_attention(SENTENCE, tiny_models["gpt2"])
        assert result.is_causal  # the attention itself shows it
        assert not extract_attention(SENTENCE, tiny_models["bert"]).is_causal
    finally:
        models.unload_all()


def test_the_cache_key_changes_with_the_token_limit(settings, tiny_models):
    before = extraction.cache_key(tiny_models["bert"], SENTENCE, None)
    config.configure(max_tokens=16)
    limited = extraction.cache_key(tiny_models["bert"], SENTENCE, None)
    config.configure(max_tokens=0)
    assert limited != before and extraction.cache_key(tiny_models["bert"], SENTENCE, None) == before
    config.configure(max_tokens=8)
    try:
        short = extract_attention(" ".join(["cat"] * 20), tiny_models["bert"])
        assert short.seq_len == 8 and short.truncated
    finally:
        config.configure(max_tokens=0)
    assert extract_attention(" ".join(["cat"] * 20), tiny_models["bert"]).seq_len == 22


def test_memo_drops_the_least_recently_used_first():
    memo = ByteLRU(30)
    for name in "abc":
        memo.put(name, name.upper(), 10)
    assert memo.get("a") == "A"  # a is now the most recent; b the least
    memo.put("d", "D", 10)
    assert memo.get("b") is None and [memo.get(k) for k in "acd"] == ["A", "C", "D"]


def test_memo_is_bounded_in_bytes():
    memo = ByteLRU(30)
    memo.put("big", 1, 25)
    memo.put("small", 2, 10)  # 35 bytes > 30: the oldest goes
    assert memo.get("big") is None and memo.get("small") == 2
    memo.put("huge", 3, 31)  # larger than the whole memo: never kept
    assert memo.get("huge") is None and memo.get("small") == 2
    memo.put("small", 4, 20)  # replacing an item counts its new size once
    memo.put("other", 5, 10)
    assert memo.get("small") == 4 and memo.get("other") == 5
    assert memo.nbytes == 30


def test_breaker_opens_on_failure_and_closes_after_the_delay(monkeypatch):
    now = [1000.0]
    breaker = cache._Breaker(clock=lambda: now[0])
    monkeypatch.setattr(cache, "RETRY_AFTER_S", 5.0)
    assert not breaker.is_open()
    breaker.trip("read", ConnectionError("down"))
    assert breaker.is_open() and breaker.failing and "down" in breaker.last_error
    now[0] += 4.9
    assert breaker.is_open()
    now[0] += 0.2
    assert not breaker.is_open()  # tried again after RETRY_AFTER_S
    breaker.succeeded()
    assert not breaker.failing


def test_an_open_breaker_skips_the_backend(settings, tiny_models, monkeypatch):
    calls = []

    class Broken:
        def get(self, key):
            calls.append(key)
            raise ConnectionError("cache down")

        def set(self, *args, **kwargs):
            calls.append("set")
            raise ConnectionError("cache down")

    now = [0.0]
    monkeypatch.setattr(cache, "_breaker", cache._Breaker(clock=lambda: now[0]))
    monkeypatch.setattr(cache, "_backend", lambda: Broken())
    assert cache.lookup("k1") is None and calls == ["k1"]  # the failure opens the breaker
    assert cache.lookup("k2") is None and calls == ["k1"]  # skipped while open
    now[0] += cache.RETRY_AFTER_S + 0.1
    assert cache.lookup("k3") is None and calls == ["k1", "k3"]  # tried again after the delay
