"""Issue 13, the services: encoder-decoder models (encoder, decoder and cross-attention), decoder-only
generation step by step, sentence-pair filters and which analysis is defined for which kind.

The models are tiny random BART, T5 and Marian models (``conftest.tiny_seq2seq_models``: tokenizers
trained locally, no hub) and the tiny GPT-2 of ``conftest.tiny_models``. Every expected value is
computed here independently, with transformers loaded directly (not through ``services.models``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attention_explorer.services import (
    InputError,
    attention_of,
    config,
    extract_attention,
    extraction,
    generate_steps,
    inside,
    inside_head,
    kinds_available,
)
from attention_explorer.services.analyses import kinds
from attention_explorer.services.analyses.measures import entropy
from attention_explorer.services.model import forward
from attention_explorer.services.model import loading as models
from attention_explorer.services.store import cache, codec
from attention_explorer.services.store.tasks import decode_payload, extract_task
from tests.services.store.test_codec import assert_same

SOURCE = "The cat sat on the mat because it was tired."
TARGET = "Le chat était assis sur le tapis."
PROMPT = "The cat sat on the"
TOL = 1e-3  # float16 storage rounds weights <= 1 by at most 2.5e-4
SEQ2SEQ = ("bart", "t5", "marian")



_direct_cache: dict[str, tuple] = {}


def direct(path: str):
    """The model and tokenizer loaded with transformers directly (once per path): the reference."""
    if path not in _direct_cache:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        model = AutoModelForSeq2SeqLM.from_pretrained(path, attn_implementation="eager").eval()
        _direct_cache[path] = (model, AutoTokenizer.from_pretrained(path))
    return _direct_cache[path]


def direct_forward(path: str, source: str, decoder_ids: list[int]):
    model, tokenizer = direct(path)
    enc = tokenizer(source, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                    decoder_input_ids=torch.tensor([decoder_ids]), output_attentions=True, use_cache=False)
    stack = lambda atts: torch.stack([a[0] for a in atts]).numpy()  # noqa: E731
    return stack(out.encoder_attentions), stack(out.decoder_attentions), stack(out.cross_attentions)


def rows_sum_to_one(att: np.ndarray) -> bool:
    return bool(np.abs(att.astype(np.float32).sum(axis=-1) - 1.0).max() < 5e-3)


# ----------------------------------------------------------------------------------- tiny models


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_the_tiny_models_load_back_with_auto_classes(tiny_seq2seq_models, name):
    from transformers import AutoConfig, AutoTokenizer

    path = tiny_seq2seq_models[name]
    tokenizer = AutoTokenizer.from_pretrained(path)
    cfg = AutoConfig.from_pretrained(path)
    assert cfg.is_encoder_decoder and cfg.decoder_start_token_id is not None
    ids = tokenizer(SOURCE)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id and tokenizer.unk_token_id not in ids


def test_seq2seq_models_load_with_their_head_and_decoders_with_theirs(s2s, tiny_models):
    from transformers import GPT2LMHeadModel, GPT2Model

    bart = models.get_model(s2s["bart"])
    assert bart.is_encoder_decoder and bart.generator is bart.model and not bart.generation_reason
    assert type(bart.model).__name__ == "BartForConditionalGeneration"
    gpt2 = models.get_model(tiny_models["gpt2"])
    assert isinstance(gpt2.model, GPT2Model) and isinstance(gpt2.generator, GPT2LMHeadModel)
    assert gpt2.generator.transformer is gpt2.model  # the same modules, not a copy
    bert = models.get_model(tiny_models["bert"])
    assert bert.generator is None and "encoder" in bert.generation_reason


# ----------------------------------------------------------------------------------- the three kinds


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_a_given_target_gives_three_kinds_equal_to_a_direct_forward_pass(s2s, name):
    path = s2s[name]
    result = extract_attention(SOURCE, model_id=path, target=TARGET)
    model, tokenizer = direct(path)
    expected_ids = [model.config.decoder_start_token_id] + tokenizer(text_target=TARGET)["input_ids"]
    assert result.target_ids == expected_ids
    assert result.target_tokens == tokenizer.convert_ids_to_tokens(expected_ids)
    assert result.target_tokens[0] == tokenizer.convert_ids_to_tokens(model.config.decoder_start_token_id)
    assert result.tokens == tokenizer.convert_ids_to_tokens(tokenizer(SOURCE)["input_ids"])
    assert result.is_encoder_decoder and not result.generated and result.target_text == TARGET
    assert result.max_new_tokens is None
    enc, dec, cross = direct_forward(path, SOURCE, expected_ids)
    src, tgt = len(result.tokens), len(expected_ids)
    assert result.attentions.shape == enc.shape and enc.shape[2:] == (src, src)
    assert result.decoder_attentions.shape == dec.shape and dec.shape[2:] == (tgt, tgt)
    assert result.cross_attentions.shape == cross.shape and cross.shape[2:] == (tgt, src)
    for stored in (result.attentions, result.decoder_attentions, result.cross_attentions):
        assert stored.dtype == np.float16 and rows_sum_to_one(stored)
    assert np.abs(result.attentions.astype(np.float32) - enc).max() < TOL
    assert np.abs(result.decoder_attentions.astype(np.float32) - dec).max() < TOL
    assert np.abs(result.cross_attentions.astype(np.float32) - cross).max() < TOL
    # The decoder is causal: nothing above the diagonal; the encoder is not.
    assert not np.triu(result.decoder_attentions.astype(np.float32), k=1).any()
    assert not result.is_causal and np.triu(result.attentions.astype(np.float32), k=1).any()
    special = set(tokenizer.all_special_ids)
    assert result.target_special_mask.tolist() == [i in special for i in expected_ids]


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_without_a_target_the_model_writes_one_greedily(s2s, name):
    path = s2s[name]
    result = extract_attention(SOURCE, model_id=path)
    model, tokenizer = direct(path)
    enc = tokenizer(SOURCE, return_tensors="pt")
    with torch.no_grad():
        expected = model.generate(**enc, do_sample=False, num_beams=1, max_new_tokens=6)[0].tolist()
    assert result.target_ids == expected and len(expected) <= 1 + 6
    assert result.target_ids[0] == model.config.decoder_start_token_id
    assert result.generated and result.max_new_tokens == 6
    assert result.target_text == tokenizer.decode(expected, skip_special_tokens=True)
    assert result.ended == (tokenizer.eos_token_id in expected[1:])
    enc_att, dec, cross = direct_forward(path, SOURCE, expected)
    assert np.abs(result.decoder_attentions.astype(np.float32) - dec).max() < TOL
    assert np.abs(result.cross_attentions.astype(np.float32) - cross).max() < TOL
    assert np.abs(result.attentions.astype(np.float32) - enc_att).max() < TOL
    assert rows_sum_to_one(result.decoder_attentions) and rows_sum_to_one(result.cross_attentions)
    assert not np.triu(result.decoder_attentions.astype(np.float32), k=1).any()


def test_target_given_and_target_written_share_the_source_side(s2s):
    path = s2s["marian"]
    given = extract_attention(SOURCE, model_id=path, target=TARGET)
    written = extract_attention(SOURCE, model_id=path)
    assert written.generated and not given.generated
    assert given.target_ids != written.target_ids and given.target_ids[0] == written.target_ids[0]
    np.testing.assert_array_equal(given.attentions, written.attentions)  # the encoder does not see the target
    assert given.tokens == written.tokens
    # A blank target means "write one".
    assert extract_attention(SOURCE, model_id=path, target="   ").target_ids == written.target_ids


def test_the_bound_on_written_tokens_is_the_setting(s2s):
    path = s2s["bart"]  # the tiny random BART never writes its end token: it always uses the whole bound
    config.configure(max_new_tokens=3)
    short = extract_attention(SOURCE, model_id=path)
    config.configure(max_new_tokens=9)
    longer = extract_attention(SOURCE, model_id=path)
    assert (len(short.target_ids), len(longer.target_ids)) == (4, 10)
    assert short.max_new_tokens == 3 and longer.max_new_tokens == 9 and not longer.ended
    assert longer.target_ids[:4] == short.target_ids  # greedy: the same start


def test_a_long_target_is_cut_to_the_models_limit(s2s):
    path = s2s["bart"]  # 64 positions
    result = extract_attention("The cat.", model_id=path, target="le chat " * 60)
    assert result.target_truncated and len(result.target_ids) == 64
    assert result.decoder_attentions.shape[2:] == (64, 64) and rows_sum_to_one(result.decoder_attentions)


def test_a_target_that_tokenizes_to_nothing_is_refused_plainly(s2s):
    from types import SimpleNamespace

    real = models.get_model(s2s["t5"])

    class OnlySpecials:  # a tokenizer that keeps nothing of the target but its end token
        all_special_ids = real.tokenizer.all_special_ids

        def __call__(self, text_target, **kwargs):
            return {"input_ids": [real.tokenizer.eos_token_id]}

    fake = SimpleNamespace(tokenizer=OnlySpecials(), model=real.model, model_id="tiny-t5")
    with pytest.raises(InputError, match="Nothing is left of the target"):
        forward.target_ids_for(fake, "\u200b", 64)
    assert forward.target_ids_for(real, TARGET, 64)[0][0] == real.model.config.decoder_start_token_id


def test_other_models_have_no_decoder_side_and_refuse_a_target(settings, tiny_models):
    result = extract_attention(SOURCE, tiny_models["bert"], None)  # positional, as before issue 13
    for name in ("target_tokens", "target_ids", "decoder_attentions", "cross_attentions", "target_special_mask",
                 "decoder_value_norms", "cross_value_norms", "target_text", "prompt_length", "generated_mask"):
        assert getattr(result, name) is None, name
    assert not result.is_encoder_decoder and not result.generated
    for model in (tiny_models["bert"], tiny_models["gpt2"]):
        with pytest.raises(InputError, match="A target text is for encoder-decoder models"):
            extract_attention(SOURCE, model_id=model, target=TARGET)


def test_a_source_pair_goes_through_the_encoder(s2s):
    result = extract_attention("The cat sat.", model_id=s2s["bart"], text_pair="It was tired.", target=TARGET)
    assert set(result.segment_ids) == {0, 1, None}
    assert kinds.pair_filters_available(result) == list(kinds.PAIR_FILTERS)
    assert kinds.pair_filters_available(result, "cross") == []


# ----------------------------------------------------------------------------------- value norms and inside


def _independent_norms(model, modules: list[tuple], run) -> list[np.ndarray]:
    """Per attention module ``(module, v, out, heads)``: ‖v_j^h W_O^h‖ from a plain torch hook on its value
    projection during ``run()``, ``(heads, keys)`` each."""
    captured: dict[int, torch.Tensor] = {}
    handles = [v.register_forward_hook(lambda mod, args, out, i=i: captured.__setitem__(i, out[0].detach()))
               for i, (_, v, _, _) in enumerate(modules)]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    norms = []
    for i, (_, _, out, heads) in enumerate(modules):
        values = captured[i]  # (keys, heads * d)
        d = values.shape[-1] // heads
        per_head = []
        for h in range(heads):
            w_o = out.weight[:, h * d:(h + 1) * d]  # (hidden, d): the head's columns of the output projection
            per_head.append(torch.linalg.vector_norm(values[:, h * d:(h + 1) * d] @ w_o.T, dim=-1))
        norms.append(torch.stack(per_head).detach().numpy())
    return norms


def _attention_modules(model, name: str) -> dict[str, list[tuple]]:
    if name == "t5":
        enc = [(b.layer[0].SelfAttention,) for b in model.encoder.block]
        dec = [(b.layer[0].SelfAttention,) for b in model.decoder.block]
        cross = [(b.layer[1].EncDecAttention,) for b in model.decoder.block]
        pick = lambda m: (m, m.v, m.o, m.n_heads)  # noqa: E731
    else:
        enc = [(layer.self_attn,) for layer in model.model.encoder.layers]
        dec = [(layer.self_attn,) for layer in model.model.decoder.layers]
        cross = [(layer.encoder_attn,) for layer in model.model.decoder.layers]
        pick = lambda m: (m, m.v_proj, m.out_proj, m.num_heads)  # noqa: E731
    return {kind: [pick(m[0]) for m in group] for kind, group in (("encoder", enc), ("decoder", dec), ("cross", cross))}


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_value_norms_of_each_kind_equal_a_hooked_direct_pass(s2s, name):
    path = s2s[name]
    result = extract_attention(SOURCE, model_id=path, target=TARGET)
    model, tokenizer = direct(path)
    enc = tokenizer(SOURCE, return_tensors="pt")
    modules = _attention_modules(model, name)
    every = modules["encoder"] + modules["decoder"] + modules["cross"]

    def run():
        with torch.no_grad():
            model(**enc, decoder_input_ids=torch.tensor([result.target_ids]), use_cache=False)

    norms = _independent_norms(model, every, run)
    n_enc, n_dec = len(modules["encoder"]), len(modules["decoder"])
    expected = {"encoder": np.stack(norms[:n_enc]), "decoder": np.stack(norms[n_enc:n_enc + n_dec]),
                "cross": np.stack(norms[n_enc + n_dec:])}
    src, tgt = len(result.tokens), len(result.target_ids)
    for kind, keys in (("encoder", src), ("decoder", tgt), ("cross", src)):
        got, reason = kinds.value_norms_for(result, kind)
        assert got is not None and reason == "", (kind, reason)
        assert got.shape == expected[kind].shape and got.shape[-1] == keys
        np.testing.assert_allclose(got, expected[kind], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ("bart", "marian"))
def test_inside_a_head_of_each_kind_reproduces_the_models_weights(s2s, name):
    path = s2s[name]
    inside.clear_vectors()
    result = extract_attention(SOURCE, model_id=path, target=TARGET)
    for kind, layer, head, query in (("encoder", 1, 2, 3), ("decoder", 1, 1, 4), ("cross", 0, 1, 2)):
        view = attention_of(result, kind)
        got = inside_head(SOURCE, layer, head, query, model_id=path, target=TARGET, kind=kind)
        assert got.available, got.reason
        assert got.kind == kind and got.tokens == view.key_tokens and got.query_token == view.query_tokens[query]
        row = view.attentions[layer, head, query].astype(np.float32)
        assert got.weights.shape == row.shape and np.abs(got.weights - row).max() < TOL
        if kind == "decoder":
            assert got.masked.tolist() == [k > query for k in range(len(row))]
        else:
            assert not got.masked.any()
        norms, _ = kinds.value_norms_for(result, kind)
        np.testing.assert_allclose(got.value_norms, norms[layer, head], rtol=1e-6)


def test_inside_a_t5_head_says_why_not(s2s):
    got = inside_head(SOURCE, 0, 0, 1, model_id=s2s["t5"], target=TARGET, kind="cross")
    assert not got.available and "relative position" in got.reason and got.weights is None
    assert got.value_norms is not None  # T5's value norms are known
    with pytest.raises(InputError, match="must be one of"):
        inside_head(SOURCE, 0, 0, 1, model_id=s2s["t5"], kind="nope")


def test_inside_a_head_refuses_a_kind_the_model_lacks(settings, tiny_models):
    with pytest.raises(InputError, match="no cross-attention"):
        inside_head(SOURCE, 0, 0, 1, model_id=tiny_models["bert"], kind="cross")


# ----------------------------------------------------------------------------------- cache, codec, recipe


def test_the_cache_key_covers_target_and_generation_settings(s2s):
    path = s2s["bart"]
    plain = extraction.cache_key(path, SOURCE, None)
    assert plain == extraction.cache_key(path, SOURCE, None, None)
    keys = {plain, extraction.cache_key(path, SOURCE, None, TARGET),
            extraction.cache_key(path, SOURCE, None, TARGET + "!"),
            extraction.cache_key(path, SOURCE, None, max_new_tokens=7),
            extraction.cache_key(path, SOURCE, None, steps=3),
            extraction.cache_key(path, SOURCE, None, steps=4)}
    assert len(keys) == 6
    config.configure(max_new_tokens=7)
    assert extraction.cache_key(path, SOURCE, None) == extraction.cache_key(path, SOURCE, None, max_new_tokens=7)
    key_given, _ = extraction.analyse(SOURCE, path, None, TARGET)
    key_written, _ = extraction.analyse(SOURCE, path)
    assert key_given != key_written and extraction.is_result_key(key_given)


def test_the_new_fields_round_trip_through_the_codec(s2s, tiny_models):
    given = extract_attention(SOURCE, model_id=s2s["bart"], target=TARGET)
    written = extract_attention(SOURCE, model_id=s2s["t5"])
    steps = generate_steps(PROMPT, 3, model_id=tiny_models["gpt2"])
    for result in (given, written, steps):
        back = codec.decode(codec.encode(result))
        assert_same(result, back)
        assert back.target_ids is None or all(isinstance(i, int) for i in back.target_ids)
    back = codec.from_json_payload(codec.to_json_payload(written))
    assert back.decoder_attentions.dtype == np.float16 and back.target_special_mask.dtype == bool
    assert back.generated and back.decoder_value_norms.dtype == np.float32


def test_the_codec_refuses_a_decoder_side_that_does_not_fit(s2s):
    import dataclasses

    good = extract_attention(SOURCE, model_id=s2s["bart"], target=TARGET)
    src = len(good.tokens)
    for bad in (dataclasses.replace(good, cross_attentions=good.cross_attentions[:, :, :, :src - 1]),
                dataclasses.replace(good, decoder_attentions=good.decoder_attentions[:, :, 1:, 1:]),
                dataclasses.replace(good, target_special_mask=good.target_special_mask[1:]),
                dataclasses.replace(good, target_tokens=good.target_tokens[1:])):
        with pytest.raises(codec.DecodeError):
            codec.decode(codec.encode(bad))


@pytest.mark.parametrize("how", ("target", "written", "steps"))
def test_an_evicted_result_is_computed_again_from_its_recipe(s2s, tiny_models, monkeypatch, how):
    if how == "steps":
        key, first = extraction.analyse(PROMPT, tiny_models["gpt2"], steps=4)
    else:
        key, first = extraction.analyse(SOURCE, s2s["marian"], None, TARGET if how == "target" else None)
    cache.cache.delete(key)
    cache.clear_local()
    runs = []
    original = extraction.run_extraction
    monkeypatch.setattr(extraction, "run_extraction", lambda *a, **k: runs.append((a, k)) or original(*a, **k))
    again_key, again = extraction.result_by_key(key)
    assert again_key == key and again is not first and len(runs) == 1
    assert_same(first, again)


def test_a_celery_worker_computes_what_the_key_says(s2s, tiny_models):
    """The task's arguments carry target, bound and steps (called directly: no queue here)."""
    path = s2s["marian"]
    payload = extract_task(SOURCE, path, None, TARGET, 6, None)
    assert_same(decode_payload(payload), forward.run_local(SOURCE, path, None, TARGET, 6))
    written = decode_payload(extract_task(SOURCE, path, None, None, 2, None))
    assert written.generated and len(written.target_ids) <= 3 and written.max_new_tokens == 2
    steps = decode_payload(extract_task(PROMPT, tiny_models["gpt2"], None, None, 6, 2))
    assert steps.generation_steps == 2
    with pytest.raises(InputError):
        extract_task(PROMPT, tiny_models["gpt2"], None, None, 6, 99)


def test_the_bound_is_a_setting_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("ATTN_MAX_NEW_TOKENS", "12")
    assert config.Settings.from_env().max_new_tokens == 12
    monkeypatch.delenv("ATTN_MAX_NEW_TOKENS")
    assert config.Settings.from_env().max_new_tokens == 40
    for bad in (0, -1, config.MAX_NEW_TOKENS_CAP + 1):
        with pytest.raises(ValueError, match="max_new_tokens"):
            config.Settings(max_new_tokens=bad)


# ----------------------------------------------------------------------------------- decoder-only generation


def _gpt2_reference(path: str):
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    lm = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    base = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    return tokenizer, lm, base


def test_generation_writes_greedily_and_step_t_is_the_last_row_of_a_pass_over_its_prefix(settings, tiny_models):
    path = tiny_models["gpt2"]
    n = 5
    result = generate_steps(PROMPT, n, model_id=path)
    tokenizer, lm, base = _gpt2_reference(path)
    prompt = tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        expected = lm.generate(**prompt, do_sample=False, num_beams=1, max_new_tokens=n,
                               pad_token_id=tokenizer.eos_token_id)[0].tolist()
    p = prompt["input_ids"].shape[1]
    assert result.prompt_length == p and result.tokens == tokenizer.convert_ids_to_tokens(expected)
    assert result.generation_steps == len(expected) - p and 1 <= result.generation_steps <= n
    assert result.generated_mask.tolist() == [False] * p + [True] * result.generation_steps
    assert result.generated and result.max_new_tokens == n and result.is_causal
    assert result.generated_text == tokenizer.decode(expected[p:], skip_special_tokens=True)
    assert result.text == PROMPT and rows_sum_to_one(result.attentions)
    stacked = result.step_attentions()
    steps = result.generation_steps
    assert stacked.shape == (steps, result.num_layers, result.num_heads, len(expected)) and stacked.dtype == np.float16
    for t in range(1, steps + 1):
        with torch.no_grad():  # generated token t read with everything before it: the first p + t tokens
            out = base(input_ids=torch.tensor([expected[:p + t]]), output_attentions=True)
        last = torch.stack([a[0, :, -1, :] for a in out.attentions]).numpy()  # (layers, heads, p + t)
        got = result.step_attention(t)
        assert got.shape == (result.num_layers, result.num_heads, len(expected))
        assert np.abs(got[..., :p + t] - last).max() < TOL
        assert not got[..., p + t:].any() and not stacked[t - 1, ..., p + t:].any()
        np.testing.assert_array_equal(stacked[t - 1], got.astype(np.float16))  # the same rows, stored as float16
        # The row whose prediction token t was: the last row of a pass over the first p + t - 1 tokens.
        with torch.no_grad():
            before = base(input_ids=torch.tensor([expected[:p + t - 1]]), output_attentions=True)
        producing = result.step_attention(t, producing=True)
        assert np.abs(producing[..., :p + t - 1]
                      - torch.stack([a[0, :, -1, :] for a in before.attentions]).numpy()).max() < TOL
        assert not producing[..., p + t - 1:].any()
    for bad in (0, steps + 1, True, 1.5):
        with pytest.raises(ValueError):
            result.step_attention(bad)


def test_generation_is_cached_and_the_key_covers_the_number_of_tokens(settings, tiny_models, monkeypatch):
    path = tiny_models["gpt2"]
    key3, three = extraction.analyse(PROMPT, path, steps=3)
    runs = []
    monkeypatch.setattr(extraction, "run_extraction", lambda *a, **k: runs.append(1) or pytest.fail("ran again"))
    assert extraction.analyse(PROMPT, path, steps=3) == (key3, three)
    assert generate_steps(PROMPT, 3, model_id=path) is three and not runs
    plain_key = extraction.cache_key(path, PROMPT, None)
    assert key3 not in (plain_key, extraction.cache_key(path, PROMPT, None, steps=2))


def test_generation_asks_for_a_bounded_whole_number_of_tokens(settings, tiny_models):
    path = tiny_models["gpt2"]
    config.configure(max_new_tokens=4)
    for bad in (0, 5, -1, True, 2.0, "3", None):
        if bad is None:
            continue
        with pytest.raises(InputError, match="number of tokens to write"):
            generate_steps(PROMPT, bad, model_id=path)
    with pytest.raises(InputError, match="one text"):
        extraction.analyse(PROMPT, path, "a pair", steps=2)


def test_a_model_that_cannot_generate_says_why(s2s, tiny_models, tmp_path):
    with pytest.raises(InputError, match="cannot continue a text: it is an encoder"):
        generate_steps(PROMPT, 3, model_id=tiny_models["bert"])
    with pytest.raises(InputError, match="encoder-decoder model: it writes a target"):
        generate_steps(PROMPT, 3, model_id=s2s["bart"])
    # A GPT-2 saved without its language-model head (and not tied to its embeddings): it cannot write.
    from transformers import GPT2Config, GPT2Model

    from tests.conftest import _build_gpt2

    source = _build_gpt2(tmp_path / "gpt2-src", seed=1)
    cfg = GPT2Config.from_pretrained(source)
    cfg.tie_word_embeddings = False
    headless = tmp_path / "gpt2-headless"
    GPT2Model.from_pretrained(source, config=cfg).save_pretrained(headless)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).exists():
            (headless / name).write_bytes((source / name).read_bytes())
    config.configure(models=config.get_settings().models + (str(headless),))
    loaded = models.get_model(str(headless))
    assert loaded.generator is None and "no language-model head" in loaded.generation_reason
    with pytest.raises(InputError, match="cannot continue a text: its files hold no language-model head"):
        generate_steps(PROMPT, 2, model_id=str(headless))
    assert extract_attention(PROMPT, model_id=str(headless)).is_causal  # its attention still works


def test_inside_a_head_of_a_continuation(settings, tiny_models):
    key, result = extraction.analyse(PROMPT, tiny_models["gpt2"], steps=3)
    last = result.seq_len - 1
    got = inside.inside_head_for(key, result, 1, 2, last)
    assert got.available and got.kind == "decoder"
    assert np.abs(got.weights - result.head(1, 2)[last]).max() < TOL


# ----------------------------------------------------------------------------------- kinds and analyses


def test_kinds_available_and_attention_of(s2s, tiny_models):
    bert = extract_attention(SOURCE, model_id=tiny_models["bert"])
    gpt2 = extract_attention(SOURCE, model_id=tiny_models["gpt2"])
    seq = extract_attention(SOURCE, model_id=s2s["bart"], target=TARGET)
    assert kinds_available(bert) == ["encoder"] and kinds_available(gpt2) == ["decoder"]
    assert kinds_available(seq) == ["encoder", "decoder", "cross"]
    att, q_tokens, k_tokens, q_special, k_special, causal = attention_of(seq, "cross")
    assert att is seq.cross_attentions and q_tokens == seq.target_tokens and k_tokens == seq.tokens
    assert q_special.tolist() == seq.target_special_mask.tolist() and k_special.tolist() == seq.special_mask.tolist()
    assert causal is False
    decoder = attention_of(seq, "decoder")
    assert decoder.attentions is seq.decoder_attentions and decoder.causal is True
    assert decoder.query_tokens == decoder.key_tokens == seq.target_tokens
    assert attention_of(seq, "encoder").attentions is seq.attentions and attention_of(seq).key_tokens == seq.tokens
    assert attention_of(gpt2).causal is True and attention_of(bert, "encoder").attentions is bert.attentions
    with pytest.raises(ValueError, match="no cross-attention"):
        attention_of(bert, "cross")
    with pytest.raises(ValueError, match="one kind is “decoder”"):
        attention_of(gpt2, "encoder")
    with pytest.raises(ValueError, match="must be one of"):
        attention_of(seq, "both")


def test_which_analysis_is_defined_for_which_kind():
    assert kinds.analysis_defined("rollout", "encoder") == (True, "")
    assert kinds.analysis_defined("rollout", "decoder") == (True, "")
    defined, why = kinds.analysis_defined("rollout", "cross")
    assert not defined and "square" in why and "target tokens to source tokens" in why
    assert kinds.analysis_defined("pair_filters", "cross")[0] is False
    assert all(kinds.analysis_defined(a, k)[0] for a in ("grid", "heatmap", "arcs", "focus") for k in kinds.KINDS)
    assert kinds.atlas_metrics("cross") == ("entropy", "delimiter")
    assert kinds.atlas_metrics("decoder") == kinds.atlas_metrics("encoder") == kinds.ALL_METRICS
    assert "different texts" in kinds.metric_reason("previous", "cross") and kinds.metric_reason("entropy", "cross") == ""
    with pytest.raises(ValueError):
        kinds.analysis_defined("nope", "encoder")


def test_rectangular_metrics_agree_with_the_square_ones_and_by_hand(s2s):
    seq = extract_attention(SOURCE, model_id=s2s["marian"], target=TARGET)
    enc = seq.attentions
    got = kinds.rectangular_metrics(enc, np.zeros(enc.shape[-1], bool))
    np.testing.assert_allclose(got["entropy"], entropy(enc, normalise=True), rtol=1e-4, atol=1e-6)
    cross = seq.cross_attentions.astype(np.float64)
    delimiters = np.asarray(seq.special_mask, bool)
    got = kinds.rectangular_metrics(seq.cross_attentions, delimiters)
    layer, head = 1, 2
    by_hand = np.mean([-(row[row > 0] * np.log(row[row > 0])).sum() / np.log(len(row)) for row in cross[layer, head]])
    assert got["entropy"].shape == cross.shape[:2] and abs(got["entropy"][layer, head] - by_hand) < 1e-4
    assert abs(got["delimiter"][layer, head] - cross[layer, head][:, delimiters].sum(axis=1).mean()) < 1e-6


# ----------------------------------------------------------------------------------- sentence-pair filters


def test_pair_filters_give_exactly_the_sub_blocks(settings, tiny_models):
    result = extract_attention("the cat sat on the mat", model_id=tiny_models["bert"], text_pair="it was tired")
    seg = result.segment_ids
    a = [i for i, s in enumerate(seg) if s == 0]
    b = [i for i, s in enumerate(seg) if s == 1]
    assert a and b and result.tokens[0] == "[CLS]"  # [CLS] and [SEP] belong to neither sentence
    assert kinds.pair_filters_available(result) == ["A→A", "A→B", "B→A", "B→B"]
    att = result.attentions
    for name, (rows_expected, cols_expected) in {"A→A": (a, a), "A→B": (a, b), "B→A": (b, a), "B→B": (b, b)}.items():
        block, rows, cols = kinds.pair_block(att, seg, name)
        assert rows.tolist() == rows_expected and cols.tolist() == cols_expected
        by_hand = att[:, :, rows_expected, :][:, :, :, cols_expected]
        assert block.dtype == att.dtype
        np.testing.assert_array_equal(block, by_hand)
        # one layer, one head, and the result helper give the same block
        np.testing.assert_array_equal(kinds.pair_block(att[1], seg, name)[0], by_hand[1])
        np.testing.assert_array_equal(kinds.pair_block(att[1, 2], seg, name)[0], by_hand[1, 2])
        np.testing.assert_array_equal(kinds.pair_block_of(result, name, layer=1, head=2)[0], by_hand[1, 2])
    # spellings
    for spelling in ("A->B", "ab", "a→b", (0, 1)):
        np.testing.assert_array_equal(kinds.pair_block(att, seg, spelling)[0], kinds.pair_block(att, seg, "A→B")[0])
    # The four blocks and the special tokens' rows and columns cover the matrix exactly once.
    total = sum(float(kinds.pair_block(att[0, 0].astype(np.float64), seg, n)[0].sum()) for n in kinds.PAIR_FILTERS)
    special = np.asarray(result.special_mask)
    m = att[0, 0].astype(np.float64)
    assert abs(total + m[special].sum() + m[~special][:, special].sum() - m.sum()) < 1e-9


def test_pair_filters_refuse_a_single_text_and_bad_names(settings, tiny_models):
    single = extract_attention("the cat sat", model_id=tiny_models["bert"])
    assert kinds.pair_filters_available(single) == []
    with pytest.raises(ValueError, match="not a sentence pair"):
        kinds.pair_block(single.attentions, single.segment_ids, "A→B")
    pair = extract_attention("the cat", model_id=tiny_models["bert"], text_pair="it ran")
    for bad in ("A→C", "", (2, 0)):
        with pytest.raises(ValueError, match="pair filter must be one of"):
            kinds.pair_block(pair.attentions, pair.segment_ids, bad)
    with pytest.raises(ValueError, match="one segment id per token"):
        kinds.pair_block(pair.attentions, pair.segment_ids[:-1], "A→B")
