"""extract_attention on tiny random models and on the packaged real model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from attention_explorer.services import (
    InputError,
    ModelLoadError,
    ModelNotAllowedError,
    extract_attention,
    extraction,
)
from attention_explorer.services.analyses import measures as analysis
from attention_explorer.services.config import DEFAULT_MODEL_ID
from attention_explorer.services.model import forward
from attention_explorer.services.model import loading as models

SENTENCE = "The cat sat on the mat because it was tired."


def _direct_attention(path: str, text: str, pair: str | None = None) -> tuple[list[str], np.ndarray]:
    """An independent forward pass with plain transformers."""
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    enc = tok(text, pair, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    return tok.convert_ids_to_tokens(enc["input_ids"][0]), torch.stack(out.attentions)[:, 0].numpy()


@pytest.mark.parametrize("kind", ["bert", "gpt2", "chinese"])
def test_shapes_rows_and_direct_forward_pass(settings, tiny_models, kind):
    text = SENTENCE if kind != "chinese" else "猫坐在垫子上因为它累了。"
    result = extract_attention(text, tiny_models[kind])
    tokens, direct = _direct_attention(tiny_models[kind], text)
    assert result.tokens == tokens
    assert result.attentions.dtype == np.float16
    assert result.attentions.shape == (2, 4, len(tokens), len(tokens))
    assert analysis.normalisation_error(result.attentions) < 1e-3
    assert np.abs(result.attentions.astype(np.float32) - direct).max() < 1e-3
    # The tiny models' attention is not uniform, so the comparison above is not trivially true.
    assert direct.max() > 2.0 / len(tokens)


def test_causal_model_upper_triangle_is_zero(settings, tiny_models):
    result = extract_attention(SENTENCE, tiny_models["gpt2"])
    assert result.is_causal
    upper = np.triu(np.ones(result.seq_len, dtype=bool), k=1)
    assert np.all(result.attentions[:, :, upper] == 0)
    encoder = extract_attention(SENTENCE, tiny_models["bert"])
    assert not encoder.is_causal
    later = encoder.attentions[:, :, np.triu(np.ones(encoder.seq_len, dtype=bool), k=1)].astype(np.float32)
    assert later.sum(axis=-1).min() > 0.5  # an encoder looks ahead in every head


def test_second_call_does_not_run_the_model(settings, tiny_models, monkeypatch):
    calls = []
    real = forward.compute

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(forward, "compute", counting)
    first = extract_attention("The dog ran in the park.", tiny_models["bert"])
    second = extract_attention("The dog ran in the park.", tiny_models["bert"])
    assert len(calls) == 1
    np.testing.assert_array_equal(first.attentions, second.attentions)
    extract_attention("The dog ran.", tiny_models["bert"])
    assert len(calls) == 2


def test_shared_cache_hit_without_local_memo(settings, tiny_models, monkeypatch):
    """A hit in the shared backend (another process's work) also skips the model."""
    from attention_explorer.services.store import cache

    extract_attention("a cat and a dog", tiny_models["bert"])
    cache.clear_local()
    monkeypatch.setattr(forward, "compute", lambda *a, **k: pytest.fail("model ran on a cache hit"))
    assert extract_attention("a cat and a dog", tiny_models["bert"]).tokens[1] == "a"


def test_changed_model_files_change_the_cache_key(settings, tiny_models, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_models["bert"], copy)
    key_before = extraction.cache_key(str(copy), SENTENCE, None)
    (copy / "config.json").write_text((copy / "config.json").read_text() + "\n")
    assert extraction.cache_key(str(copy), SENTENCE, None) != key_before
    assert extraction.cache_key(tiny_models["bert"], SENTENCE, None) != extraction.cache_key(tiny_models["bert"], SENTENCE, "x")


def test_sentence_pair_segment_ids(settings, tiny_models):
    result = extract_attention("the cat sat", tiny_models["bert"], text_pair="it was tired")
    assert result.tokens == ["[CLS]", "the", "cat", "sat", "[SEP]", "it", "was", "tired", "[SEP]"]
    assert result.segment_ids == [None, 0, 0, 0, None, 1, 1, 1, None]
    assert result.special_mask.tolist() == [True, False, False, False, True, False, False, False, True]
    tokens, direct = _direct_attention(tiny_models["bert"], "the cat sat", "it was tired")
    assert np.abs(result.attentions.astype(np.float32) - direct).max() < 1e-3


def test_word_ids_group_sub_words(settings, tiny_models):
    result = extract_attention("playing cats", tiny_models["bert"])
    assert result.tokens == ["[CLS]", "play", "##ing", "cat", "##s", "[SEP]"]
    assert result.word_ids == [None, 0, 0, 1, 1, None]


def test_truncation_is_flagged(settings, tiny_models):
    long_text = " ".join(["the cat sat on the mat"] * 30)  # 180 words, the tiny model takes 64 tokens
    result = extract_attention(long_text, tiny_models["bert"])
    assert result.truncated
    assert result.seq_len == 64 == result.token_limit
    assert result.token_count_before_truncation == 182
    assert result.tokens[-1] == "[SEP]"
    assert analysis.normalisation_error(result.attentions) < 1e-3
    assert not extract_attention("the cat sat", tiny_models["bert"]).truncated


def test_configured_token_limit_applies(settings, tiny_models):
    from attention_explorer.services import config

    config.configure(max_tokens=10)
    result = extract_attention(" ".join(["cat"] * 20), tiny_models["bert"])
    assert result.truncated and result.seq_len == 10


def test_chinese_one_token_per_character(settings, tiny_models):
    result = extract_attention("猫坐在垫子上因为它累了。", tiny_models["chinese"])
    assert result.tokens[1:-1] == list("猫坐在垫子上因为它累了。")
    assert result.unknown_share == 0.0


def test_chinese_on_english_default_has_high_unknown_share(settings, default_model):
    result = extract_attention("猫坐在垫子上因为它累了。")
    assert result.model_id == DEFAULT_MODEL_ID
    assert result.unknown_count == result.tokens.count("[UNK]") >= 6
    assert result.unknown_share == pytest.approx(result.unknown_count / (len(result.tokens) - 2))
    assert result.unknown_share > 0.5
    assert extract_attention(SENTENCE).unknown_share == 0.0


def test_default_model_real_weights(settings, default_model):
    result = extract_attention(SENTENCE)
    assert len(result.tokens) == 13
    assert result.attentions.shape == (6, 12, 13, 13)
    assert result.tokens[8] == "it"
    tokens, direct = _direct_attention(str(models.bundled_model_dir()), SENTENCE)
    assert np.abs(result.attentions.astype(np.float32) - direct).max() < 1e-3
    assert analysis.normalisation_error(result.attentions) < 1e-3


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \n", None, "\x00\x01\x02"])
def test_empty_text_is_refused_before_the_model_runs(settings, tiny_models, monkeypatch, text):
    monkeypatch.setattr(forward, "get_model", lambda *_: pytest.fail("model loaded"))
    with pytest.raises(InputError, match="empty"):
        extract_attention(text, tiny_models["bert"])


def test_over_long_text_is_refused(settings, tiny_models, monkeypatch):
    monkeypatch.setattr(forward, "get_model", lambda *_: pytest.fail("model loaded"))
    limit = settings.char_limit  # ATTN_MAX_CHARS unset: 12 characters a token of the token limit
    assert limit == 12 * settings.token_cap
    with pytest.raises(InputError, match=f"{limit + 1:,} characters; the limit is {limit:,}"):
        extract_attention("a" * (limit + 1), tiny_models["bert"])
    with pytest.raises(InputError, match="second sentence"):
        extract_attention("fine", tiny_models["bert"], text_pair="b" * (limit + 1000))


def test_control_characters_are_removed(settings, tiny_models):
    dirty = extract_attention("the\x00 cat\x07 sat\x1b", tiny_models["bert"])
    clean = extract_attention("the cat sat", tiny_models["bert"])
    assert dirty.tokens == clean.tokens
    assert dirty.text == "the cat sat"
    kept = extract_attention("the\tcat\nsat", tiny_models["bert"])
    assert kept.text == "the\tcat\nsat"


def test_html_and_odd_unicode_are_plain_text(settings, tiny_models):
    result = extract_attention("<script>alert(1)</script> 🐈 e\u0301 \u200d", tiny_models["bert"])
    assert "<" in result.tokens and "script" in result.tokens
    assert analysis.normalisation_error(result.attentions) < 1e-3


def test_unknown_model_is_refused_before_loading(settings, monkeypatch):
    monkeypatch.setattr(models, "_load", lambda *_: pytest.fail("model loaded"))
    with pytest.raises(ModelNotAllowedError, match="not one of the models this server offers"):
        extract_attention(SENTENCE, "someone/unknown-model")


def test_broken_model_gives_a_readable_error_and_others_keep_working(settings, tiny_models, tmp_path):
    from attention_explorer.services import config

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    config.configure(models=config.get_settings().models + (str(broken), "gpt2"))
    with pytest.raises(ModelLoadError, match=r"could not be loaded") as info:
        extract_attention(SENTENCE, str(broken))
    assert "“broken”" in str(info.value) and str(tmp_path) not in str(info.value)  # its name, not its path
    assert "Traceback" not in str(info.value)
    with pytest.raises(ModelLoadError, match="“gpt2” is not downloaded on this machine"):
        extract_attention(SENTENCE, "gpt2")  # offline: not on this machine, answered at once
    assert extract_attention(SENTENCE, tiny_models["bert"]).seq_len > 0


def test_missing_folder_is_named(settings):
    """The folder the person typed is named; whether it exists is not said (issue 9: no existence oracle)."""
    from attention_explorer.services import config

    config.configure(allow_any_model=True)
    with pytest.raises(ModelLoadError, match="is not a model folder this server can read") as info:
        extract_attention(SENTENCE, "/nowhere/at/all")
    assert "“/nowhere/at/all”" in str(info.value) and "does not exist" not in str(info.value)


def test_model_is_loaded_once_across_threads(settings, tiny_models, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    models.unload_all()
    loads = []
    real = models._load
    monkeypatch.setattr(models, "_load", lambda *a: loads.append(1) or real(*a))
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda _: models.get_model(tiny_models["gpt2"]), range(6)))
    assert len(loads) == 1
    assert all(g is got[0] for g in got)
    assert got[0].model.training is False


def test_same_new_text_from_many_threads_runs_the_model_once(settings, tiny_models, monkeypatch):
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    models.get_model(tiny_models["bert"])
    calls = []
    real = forward.compute
    lock = threading.Lock()

    def slow(*args, **kwargs):
        with lock:
            calls.append(1)
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(forward, "compute", slow)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: extract_attention("the cat ran", tiny_models["bert"]), range(8)))
    assert len(calls) == 1
    assert all(r.tokens == results[0].tokens for r in results)


def test_broken_cache_falls_back_to_computing(settings, tiny_models, monkeypatch, caplog):
    from attention_explorer.services.store import cache

    class Broken:
        def get(self, key):
            raise ConnectionError("cache is down")

        def set(self, *a, **k):
            raise ConnectionError("cache is down")

    monkeypatch.setattr(cache, "_backend", lambda: Broken())
    cache._breaker.reset()
    with caplog.at_level("WARNING"):
        result = extract_attention("the cat sat on the mat", tiny_models["bert"])
    assert result.seq_len == 8
    assert "computing instead" in caplog.text


def test_large_results_reach_the_shared_cache_in_the_background(settings, tiny_models, monkeypatch):
    from attention_explorer.services.store import cache

    monkeypatch.setattr(cache, "BACKGROUND_WRITE_BYTES", 1)  # every result counts as large
    extract_attention("the cat sat on a mat", tiny_models["bert"])
    cache.flush(timeout=600)  # a busy machine: never a timing assumption (30 s missed once under load 14)
    cache.clear_local()
    monkeypatch.setattr(forward, "compute", lambda *a, **k: pytest.fail("model ran on a cache hit"))
    assert extract_attention("the cat sat on a mat", tiny_models["bert"]).seq_len == 8


def test_a_waiter_is_not_refused_for_the_leaders_rate_limit(settings, tiny_models, compute_calls):
    """Two people ask for the same new text at once; the one whose request runs it is over their limit.
    The other is not: their own turn runs (checked against their own limit), never the leader's refusal."""
    from concurrent.futures import Future

    from attention_explorer.services.errors import RateLimitedError
    from attention_explorer.services.store.memory import memory

    key = extraction.cache_key(tiny_models["bert"], SENTENCE, None)
    refused = Future()  # the leader's flight, ended by its limit, as a waiter finds it
    refused.set_exception(RateLimitedError(30))
    memory().flight._calls[key] = refused
    try:
        checked = []
        got, result = extraction.analyse(SENTENCE, tiny_models["bert"], before_compute=lambda: checked.append(1))
    finally:
        memory().flight._calls.pop(key, None)
    assert got == key and result.tokens[:3] == ["[CLS]", "the", "cat"]
    assert checked == [1] and compute_calls == [SENTENCE]  # this person's own limit was asked, once

    def over_the_limit():
        raise RateLimitedError(5)

    with pytest.raises(RateLimitedError):  # the person over their limit is still refused
        extraction.analyse("the dog ran", tiny_models["bert"], before_compute=over_the_limit)
