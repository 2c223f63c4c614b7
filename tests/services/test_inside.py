"""Inside a head (issue 10): query and key vectors, scores and softmax, value norms.

Every expected value here is computed independently of ``services.hooks``: from a separately loaded copy
of the model (no hooks on it), its ``output_hidden_states`` and ``output_attentions``, and plain tensor
operations on its parameters (layer norms written out, projections as matrix products).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from attention_explorer.services import InputError, config, extract_attention, extraction, inside, inside_head
from attention_explorer.services.analyses.matrices import weighted_by_value_norm
from attention_explorer.services.model import hooks
from attention_explorer.services.model.loading import get_model
from attention_explorer.services.store import cache
from tests.conftest import ENGLISH_WORDS

TEXT = "The cat sat on the mat because it was tired."
TOL = 1e-3
NOT_AVAILABLE = "not available for this model, because"


# ----------------------------------------------------------------------------------- models


def _tokenizer_from(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _save(model, tokenizer, path):
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def more_models(tiny_models, tmp_path_factory):
    """Tiny random models of further families, built from configs with the conftest tokenizers."""
    from transformers import (
        AlbertConfig,
        AlbertModel,
        BloomConfig,
        BloomModel,
        DistilBertConfig,
        DistilBertModel,
        GPT2Config,
        GPT2Model,
        LlamaConfig,
        LlamaModel,
    )

    root = tmp_path_factory.mktemp("inside-models")
    bert_tok = _tokenizer_from(tiny_models["bert"])
    gpt_tok = _tokenizer_from(tiny_models["gpt2"])
    ids = {"bos_token_id": gpt_tok.bos_token_id, "eos_token_id": gpt_tok.eos_token_id}
    torch.manual_seed(3)
    built = {
        "distilbert": (DistilBertModel(DistilBertConfig(
            vocab_size=len(bert_tok), dim=32, n_layers=2, n_heads=4, hidden_dim=48, max_position_embeddings=64,
            initializer_range=0.4)), bert_tok),
        "albert": (AlbertModel(AlbertConfig(  # one layer's weights shared by all 3 layers
            vocab_size=len(bert_tok), embedding_size=16, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
            intermediate_size=48, max_position_embeddings=64, initializer_range=0.4)), bert_tok),
        "gpt2-layer-scaled": (GPT2Model(GPT2Config(
            vocab_size=len(gpt_tok), n_positions=64, n_embd=32, n_layer=3, n_head=4, initializer_range=0.4,
            scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True, **ids)), gpt_tok),
        "gpt2-unscaled": (GPT2Model(GPT2Config(
            vocab_size=len(gpt_tok), n_positions=64, n_embd=32, n_layer=2, n_head=4, initializer_range=0.2,
            scale_attn_weights=False, **ids)), gpt_tok),
        "llama": (LlamaModel(LlamaConfig(  # rotary position embeddings inside the attention module
            vocab_size=len(gpt_tok), hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=64, initializer_range=0.4, **ids)), gpt_tok),
        "bloom": (BloomModel(BloomConfig(  # fused query_key_value and ALiBi: a layout the app does not know
            vocab_size=len(gpt_tok), hidden_size=32, n_layer=2, n_head=4, initializer_range=0.4, **ids)), gpt_tok),
    }
    return {name: _save(model, tok, root / name) for name, (model, tok) in built.items()}


@pytest.fixture
def offered(settings, more_models):
    """The settings fixture, with the further tiny models offered too."""
    return config.configure(models=settings.models + tuple(more_models.values()))


# ----------------------------------------------------------------------------------- reference


def _fresh(path):
    """A separate copy of the model: no hooks on it, nothing shared with the services."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(path, attn_implementation="eager")
    model.eval()
    return model


def _rms_norm(x, module):
    eps = getattr(module, "variance_epsilon", None) or getattr(module, "eps")
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * module.weight.double()


@torch.no_grad()
def reference(path, family, text=TEXT):
    """Per layer: q, k, v ``(heads, seq, d)`` float64, the output projection's rows ``(heads*d, hidden)``,
    and the model's own attention ``(heads, seq, seq)``, from plain tensor operations on a fresh copy."""
    model = _fresh(path)
    tokenizer = _tokenizer_from(path)
    enc = tokenizer(text, return_tensors="pt")
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    out = model(**inputs, output_hidden_states=True, output_attentions=True)
    cfg = model.config
    heads = cfg.num_attention_heads
    layers = []
    for index, att in enumerate(out.attentions):
        hs = out.hidden_states[index][0].double()
        linear = lambda x, lin: x @ lin.weight.double().T + (lin.bias.double() if lin.bias is not None else 0)  # noqa: E731
        if family in ("bert", "default"):
            block = model.encoder.layer[index].attention
            q, k, v = (linear(hs, getattr(block.self, n)) for n in ("query", "key", "value"))
            out_rows = block.output.dense.weight.double().T
        elif family == "distilbert":
            block = model.transformer.layer[index].attention
            q, k, v = (linear(hs, getattr(block, n)) for n in ("q_lin", "k_lin", "v_lin"))
            out_rows = block.out_lin.weight.double().T
        elif family == "albert":
            block = model.encoder.albert_layer_groups[0].albert_layers[0].attention
            if hs.shape[-1] != cfg.hidden_size:  # the embeddings before their mapping to hidden size
                hs = linear(hs, model.encoder.embedding_hidden_mapping_in)
            q, k, v = (linear(hs, getattr(block, n)) for n in ("query", "key", "value"))
            out_rows = block.dense.weight.double().T
        elif family.startswith("gpt2"):
            block = model.h[index]
            x = torch.nn.functional.layer_norm(hs, (cfg.hidden_size,), block.ln_1.weight.double(),
                                               block.ln_1.bias.double(), cfg.layer_norm_epsilon)
            qkv = x @ block.attn.c_attn.weight.double() + block.attn.c_attn.bias.double()  # Conv1D: x W + b
            q, k, v = qkv.split(cfg.hidden_size, dim=-1)
            out_rows = block.attn.c_proj.weight.double()
        elif family == "llama":
            block = model.layers[index]
            x = _rms_norm(hs, block.input_layernorm)
            q, k, v = (linear(x, getattr(block.self_attn, n)) for n in ("q_proj", "k_proj", "v_proj"))
            out_rows = block.self_attn.o_proj.weight.double().T
        else:
            raise ValueError(family)
        split = lambda t: t.reshape(t.shape[0], heads, -1).transpose(0, 1)  # noqa: E731
        layers.append({"q": split(q), "k": split(k), "v": split(v), "out_rows": out_rows,
                       "attention": att[0].double()})
    return layers


@torch.no_grad()
def reference_value_norms(layer) -> np.ndarray:
    """``‖(x W_V + b_V)^h W_O^h‖`` per head and token, ``(heads, seq)``, straight from the definition."""
    v, rows = layer["v"], layer["out_rows"]
    heads, _, d = v.shape
    return np.stack([(v[h] @ rows[h * d:(h + 1) * d]).norm(dim=-1).numpy() for h in range(heads)])


def _path(name, tiny_models, more_models):
    if name == "default":
        return config.DEFAULT_MODEL_ID
    return tiny_models.get(name) or more_models[name]


def _source(name, tiny_models, more_models):
    path = _path(name, tiny_models, more_models)
    return get_model(path).source if name == "default" else path


FAMILIES = ["bert", "gpt2", "distilbert", "albert", "gpt2-layer-scaled", "gpt2-unscaled", "default"]


# ----------------------------------------------------------------------------------- inside_head


@pytest.mark.parametrize("family", FAMILIES)
def test_inside_head_reproduces_the_models_rows(offered, tiny_models, more_models, family):
    path = _path(family, tiny_models, more_models)
    ref = reference(_source(family, tiny_models, more_models), family)
    seq = ref[0]["q"].shape[1]
    picks = {(0, 0, 0), (0, 1, seq - 1), (len(ref) - 1, 3, seq // 2), (len(ref) - 1, 2, 1), (len(ref) // 2, 1, 3)}
    for layer, head, query in sorted(picks):
        got = inside_head(TEXT, layer, head, query, model_id=path)
        assert got.available, got.reason
        want = ref[layer]
        q, k = want["q"][head, query].numpy(), want["k"][head].numpy()
        d = q.shape[0]
        assert got.d_head == d and got.query_vector.shape == (d,) and got.key_vectors.shape == (seq, d)
        np.testing.assert_allclose(got.query_vector, q, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got.key_vectors, k, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got.products, got.key_vectors * got.query_vector, rtol=1e-6)
        # The scale the model uses: 1/√d, unless GPT-2's flags say otherwise.
        scale = 1.0 if family == "gpt2-unscaled" else d ** -0.5
        if family == "gpt2-layer-scaled":
            scale /= layer + 1
        assert got.scale == pytest.approx(scale)
        visible = ~got.masked
        np.testing.assert_allclose(got.scores[visible], (k @ q * scale)[visible], rtol=1e-4, atol=1e-4)
        # softmax(scores), computed here, is the model's own row (fresh copy, float32) ...
        scores = got.scores.astype(np.float64)
        soft = np.exp(scores - scores[visible].max())
        soft /= soft.sum()
        model_row = want["attention"][head, query].numpy()
        assert np.abs(soft - model_row).max() < TOL
        assert np.abs(got.weights - model_row).max() < TOL
        # ... and what the heatmaps show.
        assert np.abs(got.weights - got.model_weights).max() < TOL
        assert got.max_difference < TOL
        np.testing.assert_allclose(got.value_norms, reference_value_norms(want)[head], rtol=TOL)
        np.testing.assert_allclose(got.weighted, got.weights * got.value_norms, rtol=1e-6)
        assert got.tokens == extract_attention(TEXT, model_id=path).tokens
        assert (got.layer, got.head, got.query) == (layer, head, query)


def test_attention_is_not_uniform_in_the_tiny_models(offered, tiny_models, more_models):
    """The comparisons above mean something only when the rows are far from uniform."""
    for family in ("bert", "gpt2", "distilbert", "albert"):
        att = extract_attention(TEXT, model_id=_path(family, tiny_models, more_models)).attentions.astype(np.float32)
        assert att.max() > 0.5, family


def test_causal_mask_hides_later_keys(settings, tiny_models):
    seq = len(extract_attention(TEXT, model_id=tiny_models["gpt2"]).tokens)
    for query in (0, 3, seq - 1):
        got = inside_head(TEXT, 1, 2, query, model_id=tiny_models["gpt2"])
        later = np.arange(seq) > query
        assert got.available, got.reason
        np.testing.assert_array_equal(got.masked, later)
        assert np.all(np.isneginf(got.scores[later])) and np.all(np.isfinite(got.scores[~later]))
        assert np.all(got.weights[later] == 0) and got.weights.sum() == pytest.approx(1, abs=1e-5)
        assert np.all(got.products[later] != 0)  # the vectors exist; only the mask hides them
    assert inside_head(TEXT, 0, 0, 0, model_id=tiny_models["gpt2"]).weights[0] == pytest.approx(1)


def test_encoder_masks_nothing(settings, tiny_models):
    got = inside_head(TEXT, 1, 0, 2, model_id=tiny_models["bert"])
    assert not got.masked.any() and np.all(np.isfinite(got.scores)) and np.all(got.weights > 0)


def test_sentence_pair(settings, tiny_models):
    pair = "It was happy."
    result = extract_attention(TEXT, model_id=tiny_models["bert"], text_pair=pair)
    got = inside_head(TEXT, 1, 3, len(result.tokens) - 2, model_id=tiny_models["bert"], text_pair=pair)
    assert got.available and got.tokens == result.tokens
    assert np.abs(got.weights - result.head(1, 3)[-2]).max() < TOL


def test_the_pass_before_rotation_runs_once_per_layer_and_stops_after_it(settings, tiny_models, monkeypatch):
    """Inside a head of a recorded result needs one more pass for a layer's vectors before rotation and its
    attention output: once per (text, layer), kept for every head and query, and stopped after that layer."""
    from attention_explorer.services.model import record

    calls, layers_run = [], []
    original_before, original_record = inside._record_before, record.record

    def counting_record(*args, **kwargs):
        recording, outputs = original_record(*args, **kwargs)
        layers_run.append(len(recording.layers))
        return recording, outputs

    model = tiny_models["bert"]
    extract_attention(TEXT, model_id=model)  # the analysis itself, before counting
    monkeypatch.setattr(inside, "_record_before", lambda *a: calls.append(a[1]) or original_before(*a))
    monkeypatch.setattr(record, "record", counting_record)
    inside.clear_vectors()
    first = inside_head(TEXT, 0, 0, 1, model_id=model)
    for head, query in ((3, 5), (1, 0), (2, 2)):
        inside_head(TEXT, 0, head, query, model_id=model)
    assert calls == [0] and layers_run == [1]  # layer 0 of 2: the pass stopped after it
    inside_head(TEXT, 1, 2, 3, model_id=model)
    assert calls == [0, 1] and layers_run == [1, 2]
    again = inside_head(TEXT, 0, 0, 1, model_id=model)
    np.testing.assert_array_equal(again.weights, first.weights)
    assert calls == [0, 1]
    inside.clear_vectors()
    inside_head(TEXT, 0, 0, 1, model_id=model)
    assert calls == [0, 1, 0]


def test_out_of_range_indices_are_refused(settings, tiny_models):
    model = tiny_models["bert"]
    seq = len(extract_attention(TEXT, model_id=model).tokens)
    for layer, head, query in ((2, 0, 0), (-1, 0, 0), (0, 4, 0), (0, 0, seq), (0, 0, "3"), (True, 0, 0)):
        with pytest.raises(InputError):
            inside_head(TEXT, layer, head, query, model_id=model)
    assert inside_head(TEXT, np.int64(1), 0, 0, model_id=model).available


# ----------------------------------------------------------------------------------- not available


def _rotate(x, positions, base):
    """Rotary positions written out (Su et al.; transformers' rotate_half layout): pairs (i, i + d/2)."""
    d = x.shape[-1]
    inv = 1.0 / (base ** (np.arange(0, d, 2, dtype=np.float64) / d))
    angles = np.outer(positions, inv)
    cos, sin = np.cos(np.concatenate([angles, angles], -1)), np.sin(np.concatenate([angles, angles], -1))
    half = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos + half * sin


def test_a_rotary_model_shows_its_vectors_before_and_after_rotation(offered, more_models):
    """Llama (rotary positions in the attention module): the query and keys before rotation are the
    projections' outputs, after rotation what the scores use; checked against plain tensor operations on a
    fresh copy of the model, the rotation written out here, and its own eager attention."""
    path = more_models["llama"]
    result = extract_attention(TEXT, model_id=path)
    assert result.recorded and result.is_causal and result.num_kv_heads == 4
    ref = reference(path, "llama")
    base = _fresh(path).config.rope_parameters["rope_theta"]
    seq = result.seq_len
    for layer, head, query in ((1, 2, 4), (0, 0, seq - 1)):
        got = inside_head(TEXT, layer, head, query, model_id=path)
        assert got.available and got.rotary, got.reason
        q_before, k_before = ref[layer]["q"][head].numpy(), ref[layer]["k"][head].numpy()
        np.testing.assert_allclose(got.query_before, q_before[query], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got.keys_before, k_before, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got.query_vector, _rotate(q_before[query], [query], base)[0], atol=1e-4)
        np.testing.assert_allclose(got.key_vectors, _rotate(k_before, np.arange(seq), base), atol=1e-4)
        assert not np.allclose(got.query_before, got.query_vector, atol=1e-3) or query == 0  # the rotation moved it
        assert got.rotation_difference < 1e-5 and got.output_difference < 1e-4
        assert np.abs(got.weights - ref[layer]["attention"][head, query].numpy()).max() < TOL
        np.testing.assert_array_equal(got.masked, np.arange(seq) > query)
        assert got.kv_head == head and got.sharing == (head,)
    # Value norms do not involve queries and keys: rotary positions leave them right.
    for layer in range(2):
        np.testing.assert_allclose(result.value_norms[layer], reference_value_norms(ref[layer]), rtol=TOL)


@torch.no_grad()
def test_a_causal_head_without_vectors_masks_only_the_keys_after_its_query(offered, more_models):
    """A causal head whose vectors cannot be shown (Bloom: ALiBi folded into its mask, so it runs eagerly
    and its fused layout is not one the hooks know) still names the keys its query cannot see: those after
    it, never the query itself. Checked against a fresh copy of the model (no hooks): the keys it gives no
    weight in any head of the layer."""
    path = more_models["bloom"]
    result = extract_attention(TEXT, model_id=path)
    assert not result.recorded
    tokenizer = _tokenizer_from(path)
    enc = tokenizer(TEXT, return_tensors="pt")
    assert tokenizer.convert_ids_to_tokens(enc["input_ids"][0]) == result.tokens
    own = _fresh(path)(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                       output_attentions=True).attentions
    layer, seq = 1, result.seq_len
    for query in (0, 1, 4, seq - 1):
        got = inside_head(TEXT, layer, 2, query, model_id=path)
        assert not got.available and got.scores is None  # the fallback: no vectors, masks from the rule
        unseen = (own[layer][0, :, query, :] == 0).all(dim=0).numpy()
        assert not unseen[query] and unseen.sum() == seq - 1 - query
        np.testing.assert_array_equal(got.masked, unseen)


def test_unknown_layout_says_why_and_the_rest_works(offered, more_models):
    path = more_models["bloom"]
    result = extract_attention(TEXT, model_id=path)
    assert result.attentions.shape[:2] == (2, 4)
    assert result.value_norms is None
    assert result.value_norms_reason.startswith(NOT_AVAILABLE) and "layout this app knows" in result.value_norms_reason
    got = inside_head(TEXT, 0, 1, 2, model_id=path)
    assert not got.available and got.reason.startswith(NOT_AVAILABLE) and "ALiBi" in got.reason
    assert got.value_norms is None and got.weighted is None and got.weights is None
    np.testing.assert_array_equal(got.model_weights, result.head(0, 1)[2])


def test_a_head_that_does_not_match_is_not_shown(settings, tiny_models):
    """When the recipe does not reproduce the model's own attention output, the head says so (simulated
    here with a wrong scale for layer 0: the check against the model's output must catch it)."""
    from dataclasses import replace

    from attention_explorer.services.extraction import analyse

    key, result = analyse(TEXT, tiny_models["bert"])
    wrong = replace(result, scaling=result.scaling * np.array([3.0, 1.0]))
    inside.clear_vectors()
    try:
        got = inside.inside_head_for(key, wrong, 0, 1, 2)
        assert not got.available and got.weights is None
        assert got.reason.startswith("not available for this head, because") and "reproduce" in got.reason
        assert got.output_difference > TOL
        assert inside.inside_head_for(key, wrong, 1, 1, 2).available  # layer 1 is untouched
        assert inside.inside_head_for(key, result, 0, 1, 2).available
    finally:
        inside.clear_vectors()


# ----------------------------------------------------------------------------------- value norms


@pytest.mark.parametrize("family", FAMILIES)
def test_value_norms_equal_the_definition(offered, tiny_models, more_models, family):
    path = _path(family, tiny_models, more_models)
    result = extract_attention(TEXT, model_id=path)
    assert result.value_norms is not None, result.value_norms_reason
    assert result.value_norms_reason == ""
    assert result.value_norms.dtype == np.float32
    assert result.value_norms.shape == (result.num_layers, result.num_heads, result.seq_len)
    ref = reference(_source(family, tiny_models, more_models), family)
    for layer in range(result.num_layers):
        want = reference_value_norms(ref[layer])
        assert want.min() > 0
        np.testing.assert_allclose(result.value_norms[layer], want, rtol=TOL)


def test_value_norms_of_the_default_model_shrink_cls_and_sep(settings, default_model):
    """Kobayashi et al.'s observation on a real model: [CLS] and [SEP] hand on small vectors."""
    result = extract_attention(TEXT)
    norms = result.value_norms.mean(axis=(0, 1))  # layers and heads averaged
    content = norms[~result.special_mask]
    assert norms[0] < 0.5 * np.median(content) and norms[-1] < np.median(content)


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_zeroed_value_weights_give_zero_norms(settings, tiny_models, tmp_path, family):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_models[family], attn_implementation="eager")
    head, d = 2, 8
    with torch.no_grad():
        for index in range(2):
            if family == "bert":
                value = model.encoder.layer[index].attention.self.value
                value.weight[head * d:(head + 1) * d] = 0
                value.bias[head * d:(head + 1) * d] = 0
            else:
                c_attn = model.h[index].attn.c_attn  # q | k | v side by side in the output columns
                cols = slice(2 * 32 + head * d, 2 * 32 + (head + 1) * d)
                c_attn.weight[:, cols] = 0
                c_attn.bias[cols] = 0
    path = _save(model, _tokenizer_from(tiny_models[family]), tmp_path / f"zeroed-{family}")
    config.configure(models=config.get_settings().models + (path,))
    result = extract_attention(TEXT, model_id=path)
    assert np.all(result.value_norms[:, head] == 0)
    others = np.delete(result.value_norms, head, axis=1)
    assert others.min() > 0
    got = inside_head(TEXT, 1, head, 3, model_id=path)
    assert got.available and np.all(got.value_norms == 0) and np.all(got.weighted == 0)
    raw, shown = weighted_by_value_norm(result.attentions[1], result.value_norms[1])
    assert np.all(raw[head] == 0) and np.all(shown[head] == 0)
    np.testing.assert_allclose(np.delete(shown, head, axis=0).sum(-1), 1, rtol=1e-5)


def test_value_norms_survive_the_cache_round_trip(settings, tiny_models, monkeypatch):
    first = extract_attention(TEXT, model_id=tiny_models["gpt2"])
    cache.flush()
    cache.clear_local()  # the next lookup reads the shared (simple, in-memory) cache

    def must_not_run(*args):
        raise AssertionError("the cached result was computed again")

    monkeypatch.setattr(extraction, "run_extraction", must_not_run)
    again = extract_attention(TEXT, model_id=tiny_models["gpt2"])
    assert again is not first
    assert again.value_norms.dtype == np.float32
    np.testing.assert_array_equal(again.value_norms, first.value_norms)
    assert again.value_norms_reason == first.value_norms_reason == ""


def test_weighted_by_value_norm_is_alpha_times_norm():
    rng = np.random.default_rng(0)
    att = rng.random((2, 3, 4, 4)).astype(np.float16)
    norms = rng.random((2, 3, 4)).astype(np.float32)
    norms[0, 1] = 0  # one head carries nothing
    raw, shown = weighted_by_value_norm(att, norms)
    assert raw.dtype == shown.dtype == np.float32 and raw.shape == shown.shape == att.shape
    for layer, head, i, j in np.ndindex(att.shape):
        assert raw[layer, head, i, j] == pytest.approx(float(att[layer, head, i, j]) * norms[layer, head, j], rel=1e-6)
    np.testing.assert_array_equal(shown[0, 1], 0)
    keep = np.ones((2, 3), bool)
    keep[0, 1] = False
    np.testing.assert_allclose(shown[keep].sum(-1), 1, rtol=1e-5)
    np.testing.assert_allclose(shown[1, 2, 3], raw[1, 2, 3] / raw[1, 2, 3].sum(), rtol=1e-6)
    with pytest.raises(ValueError):
        weighted_by_value_norm(att, norms[..., :3])


# ----------------------------------------------------------------------------------- hooks


def test_hooks_record_only_their_own_thread(settings, tiny_models):
    loaded = get_model(tiny_models["bert"])
    enc = loaded.tokenizer(TEXT, return_tensors="pt")
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def run():
        with torch.inference_mode():
            loaded.model(**inputs, output_attentions=True)

    with hooks.recording(loaded.model) as recorder:
        other = threading.Thread(target=run)
        other.start()
        other.join()
        assert recorder.calls == []  # another thread's forward pass, outside any recording there
        run()
        assert len(recorder.calls) == 2 and all("v" in captured for _, captured in recorder.calls)
        assert all("q" not in captured for _, captured in recorder.calls)  # only asked for values
    run()  # after the recording: nothing more is kept
    assert len(recorder.calls) == 2


def test_layout_of_each_family(offered, tiny_models, more_models):
    families = {"bert": "bert", "gpt2": "gpt2", "distilbert": "distilbert", "albert": "bert", "llama": "projections"}
    for name, family in families.items():
        layout = hooks.install(get_model(_path(name, tiny_models, more_models)).model)
        assert {lay.family for lay in layout.layouts} == {family}, name
    assert len(hooks.install(get_model(more_models["albert"]).model).layouts) == 1  # shared by its 3 layers
    assert hooks.install(get_model(more_models["bloom"]).model).layouts == []


def test_the_tiny_bert_knows_the_words_of_the_text(settings, tiny_models):
    assert all(w in ENGLISH_WORDS for w in ("the", "cat", "sat", "mat", "tired"))
    assert "[UNK]" not in extract_attention(TEXT, model_id=tiny_models["bert"]).tokens


def test_value_norms_from_the_hooked_pass_when_the_result_has_none(settings, tiny_models):
    """A result cached before value norms existed (or from a codec that dropped them): inside_head
    computes them in its own pass, equal to what the analysis computes."""
    from dataclasses import replace

    from attention_explorer.services.extraction import analyse

    key, result = analyse(TEXT, tiny_models["gpt2"])
    inside.clear_vectors()
    got = inside.inside_head_for(key, replace(result, value_norms=None, value_norms_reason=""), 1, 3, 6)
    assert got.available
    np.testing.assert_allclose(got.value_norms, result.value_norms[1, 3], rtol=1e-6)
    np.testing.assert_allclose(got.weighted, got.weights * result.value_norms[1, 3], rtol=1e-5)


def test_the_steps_as_csv_and_for_a_head_that_cannot_show_them(s2s):
    """``inside_csv``: every step for a head it can explain (BART), only the model's own weights, value
    norms and what they carry for one it cannot (T5 adds a position bias to its scores)."""
    import csv
    import io

    source = "The cat sat on the mat."
    bart = inside_head(source, 1, 0, 2, model_id=s2s["bart"])
    rows = list(csv.DictReader(io.StringIO(inside.inside_csv(bart))))
    steps = [r["step"] for r in rows]
    order = list(dict.fromkeys(steps))
    assert bart.available and order == [s for s in inside.INSIDE_STEPS if s in order]  # in the view's order
    assert {"query", "key", "product", "scale", "score", "weight", "model_weight"} <= set(order)
    assert steps.count("query") == bart.d_head and steps.count("key") == len(bart.tokens) * bart.d_head
    t5 = inside_head(source, 0, 0, 1, model_id=s2s["t5"])
    assert not t5.available
    kept = {r["step"] for r in csv.DictReader(io.StringIO(inside.inside_csv(t5)))}
    assert "model_weight" in kept and not kept & {"query", "key", "product", "score", "weight", "scale"}
    with pytest.raises(Exception, match="rows"):
        inside.inside_csv(bart, max_rows=10)


def test_the_steps_of_a_rotary_head_as_csv(offered, more_models):
    """Llama: the CSV also holds the query and keys before rotation, and q·k before and after scaling,
    each equal to the head's own numbers (services.inside_head, checked against the model above)."""
    import csv
    import io

    got = inside_head(TEXT, 1, 2, 4, model_id=more_models["llama"])
    rows = list(csv.DictReader(io.StringIO(inside.inside_csv(got))))
    by_step: dict[str, list[str]] = {}
    for row in rows:
        by_step.setdefault(row["step"], []).append(row["value"])
    assert list(by_step)[:3] == ["query_before_rotation", "key_before_rotation", "query"]
    np.testing.assert_allclose(np.array(by_step["query_before_rotation"], float), got.query_before, rtol=1e-6)
    np.testing.assert_allclose(np.array(by_step["key_before_rotation"], float).reshape(got.keys_before.shape),
                               got.keys_before, rtol=1e-6)
    seen = ~got.masked
    raw = np.array(by_step["raw_score"], float)
    np.testing.assert_allclose(raw[seen], (got.key_vectors @ got.query_vector)[seen], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.array(by_step["scaled_score"], float)[seen], raw[seen] * got.scale, rtol=1e-4, atol=1e-5)
    assert by_step["score"][-1] == "-inf"  # the keys after the query are masked
