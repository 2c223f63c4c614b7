"""Issue 17: today's models through the app, attention computed on demand from the kept queries and keys.

Tiny random models of each family (tests/tiny_models.py: Llama with grouped-query attention, Qwen3 with
q/k norms and a sliding layer, Mistral with a sliding window, Gemma2 with soft-capping and
query_pre_attn_scalar, GPT-NeoX with partial rotary, gpt-oss with learned sinks, GPT-2, BERT), with
locally trained tokenizers and q/k projections scaled up so rows are peaky. Every expected map comes
from a separately loaded copy of the model running transformers' EAGER attention with
``output_attentions=True``: the reference the issue names.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch

from attention_explorer.services import config, extract_attention, generate_steps, inside_head, ondemand
from attention_explorer.services import result as result_module
from attention_explorer.services.model.loading import get_model
from attention_explorer.services.result import AttentionTooLarge
from tests import tiny_models as tm

DECODERS = ["llama", "qwen3", "mistral", "gemma2", "gpt_neox", "gpt_oss", "gpt2"]
FAMILIES = DECODERS + ["bert"]
WINDOWED = ["mistral", "qwen3", "gemma2", "gpt_oss"]  # a sliding window of 16 on some layers
ROTARY = ["llama", "qwen3", "mistral", "gemma2", "gpt_neox", "gpt_oss"]
TOL = 1e-3
WINDOW = 16


@pytest.fixture(scope="session")
def llms(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("llms")
    return {family: str(tm.build(family, root / family)) for family in FAMILIES}


@pytest.fixture
def offered(settings, llms):
    return config.configure(models=settings.models + tuple(llms.values()))


def _text(n_words: int) -> str:
    """The first ``n_words`` words of a generated text (about 1.5 tokens a word with these tokenizers)."""
    return " ".join(tm.long_text(n_words).split()[:n_words])


@functools.lru_cache(maxsize=None)
def _eager(path: str, family: str, text: str):
    """The model's own eager maps ``[(heads, n, n)]`` and its tokens, from a fresh copy (no hooks)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    enc = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        out = model(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}, output_attentions=True)
    return [a[0].numpy() for a in out.attentions], tokenizer.convert_ids_to_tokens(enc["input_ids"][0])


def _peaky(maps) -> None:
    """The comparisons mean something only when rows are far from uniform (a uniform row's largest weight
    is 1/n; these rows' typical largest weight is 50 times that or more)."""
    n = maps[-1].shape[-1]
    assert float(np.median(maps[-1].max(axis=-1))) > 50 / n


@pytest.mark.parametrize("family", FAMILIES)
def test_head_rows_tile_and_layer_equal_eager_at_a_thousand_tokens(offered, llms, family, monkeypatch):
    text = _text(640)
    result = extract_attention(text, model_id=llms[family])
    eager, tokens = _eager(llms[family], family, text)
    assert result.tokens == tokens and result.recorded and 900 <= result.seq_len <= 1500
    _peaky(eager)
    n = result.seq_len
    for layer in range(result.num_layers):
        want = eager[layer]
        np.testing.assert_allclose(result.layer(layer), want, atol=TOL)  # as held (float16)
        for head in (0, result.num_heads - 1):
            exact = ondemand.head(result.recipe(layer), head)
            np.testing.assert_allclose(exact, want[head], atol=1e-4)  # computed on demand, float32
            np.testing.assert_allclose(result.rows(layer, head, [0, n // 2, n - 1]), want[head][[0, n // 2, n - 1]],
                                       atol=TOL)
            np.testing.assert_allclose(result.tile(layer, head, 500, 540, 470, 530), want[head][500:540, 470:530],
                                       atol=TOL)
    # Beyond the size bound nothing holds every map: the same numbers come from the queries and keys.
    monkeypatch.setattr(result_module, "DENSE_CELLS", 1000)
    long = dataclasses.replace(result)  # the same fields, nothing built yet
    assert not long.dense
    with pytest.raises(AttentionTooLarge) as refused:
        long.attentions
    assert all(name in str(refused.value) for name in ("head(", "layer(", "tile(", "rows("))
    layer = long.num_layers - 1
    np.testing.assert_allclose(long.head(layer, 1), eager[layer][1], atol=1e-4)
    np.testing.assert_allclose(long.rows(layer, 2, [7, n - 1]), eager[layer][2][[7, n - 1]], atol=1e-4)
    tile = long.tile(layer, 3, n - 40, n, 0, 64)  # the softmax over the whole row, not renormalised over the tile
    np.testing.assert_allclose(tile, eager[layer][3][n - 40:, :64], atol=1e-4)
    assert tile.sum(axis=1).max() < 0.999
    pooled = long.pooled(layer, 0, 32)
    np.testing.assert_allclose(pooled, result_module.pool(eager[layer][0], 32), atol=1e-4)


@pytest.mark.parametrize("family", WINDOWED)
@pytest.mark.parametrize("words", [15, 16, 17, 30])
def test_the_sliding_window_edge(offered, llms, family, words):
    text = _text(words)
    result = extract_attention(text, model_id=llms[family])
    eager, _ = _eager(llms[family], family, text)
    windows = result.windows.tolist()
    assert WINDOW in windows  # the model has sliding layers, and the result says which
    n = result.seq_len
    edge = [q for q in (WINDOW - 2, WINDOW - 1, WINDOW, WINDOW + 1, n - 1) if 0 <= q < n]
    for layer in range(result.num_layers):
        for head in range(result.num_heads):
            exact = ondemand.rows(result.recipe(layer), head, edge)
            np.testing.assert_allclose(exact, eager[layer][head][edge], atol=1e-4)
            for q in edge:
                tile = ondemand.tile(result.recipe(layer), head, q, q + 1, max(0, q - WINDOW), q + 1)
                np.testing.assert_allclose(tile[0], eager[layer][head][q, max(0, q - WINDOW):q + 1], atol=1e-4)
            if windows[layer] and n > WINDOW + 1:  # the key just outside the window gets nothing
                assert exact[-1][n - 1 - WINDOW] == 0 and eager[layer][head][n - 1, n - 1 - WINDOW] == 0


def test_learned_sinks_leave_rows_summing_below_one(offered, llms):
    text = _text(60)
    result = extract_attention(text, model_id=llms["gpt_oss"])
    eager, _ = _eager(llms["gpt_oss"], "gpt_oss", text)
    assert result.sinks is not None and result.sinks.shape == (result.num_layers, result.num_heads)
    for layer in range(result.num_layers):
        got = np.stack([ondemand.head(result.recipe(layer), h) for h in range(result.num_heads)])
        np.testing.assert_allclose(got.sum(-1), eager[layer].sum(-1), atol=1e-4)
        assert got.sum(-1).min() < 0.9  # the sinks take visible mass
    assert not extract_attention(text, model_id=llms["gpt_oss"]).dense or True


@pytest.mark.parametrize("family", ["llama", "qwen3", "gemma2", "gpt_oss", "gpt_neox", "gpt2", "bert"])
def test_value_norms_of_grouped_heads_equal_the_definition(offered, llms, family):
    """f_h(x_j) = v_{kv(h)}(x_j) · W_O[:, h·d:(h+1)·d]ᵀ, from a fresh copy's value projection (hooked) and
    its output projection's weights, head by head."""
    from transformers import AutoModel, AutoTokenizer

    text = _text(80)
    result = extract_attention(text, model_id=llms[family])
    model = AutoModel.from_pretrained(llms[family], attn_implementation="eager").eval()
    enc = AutoTokenizer.from_pretrained(llms[family])(text, return_tensors="pt")
    if family == "gpt2":
        sites = [(b.attn.c_attn, b.attn.c_proj.weight.T, "fused3") for b in model.h]
    elif family == "bert":
        sites = [(lay.attention.self.value, lay.attention.output.dense.weight, "plain") for lay in model.encoder.layer]
    elif family == "gpt_neox":
        sites = [(lay.attention.query_key_value, lay.attention.dense.weight, "neox") for lay in model.layers]
    else:
        sites = [(lay.self_attn.v_proj, lay.self_attn.o_proj.weight, "plain") for lay in model.layers]
    values = []
    handles = [module.register_forward_hook(lambda m, a, o: values.append(o[0].detach().double()))
               for module, _w, _k in sites]
    with torch.no_grad():
        model(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")})
    for handle in handles:
        handle.remove()
    heads, kv_heads = result.num_heads, result.num_kv_heads
    for layer, (v, (_m, w_o, layout)) in enumerate(zip(values, sites)):
        n = v.shape[0]
        d = w_o.shape[1] // heads
        if layout == "fused3":
            v = v[:, 2 * heads * d:]
        elif layout == "neox":
            v = v.view(n, heads, 3 * d)[:, :, 2 * d:].reshape(n, heads * d)
        per_kv = v.view(n, kv_heads, d)
        want = np.stack([(per_kv[:, h // (heads // kv_heads)] @ w_o.detach().double()[:, h * d:(h + 1) * d].T).norm(dim=-1)
                         .numpy() for h in range(heads)])
        np.testing.assert_allclose(result.value_norms[layer], want, rtol=1e-4, atol=1e-5)
        assert want.std() > 1e-3
    if family in ("llama", "qwen3", "gemma2", "gpt_oss"):
        assert kv_heads < heads and result.kv_head(heads - 1) == kv_heads - 1


@pytest.mark.parametrize("family", ROTARY)
def test_inside_a_head_of_a_rotary_model_checks_every_step(offered, llms, family):
    text = _text(12)
    result = extract_attention(text, model_id=llms[family])
    eager, _ = _eager(llms[family], family, text)
    n = result.seq_len
    loaded = get_model(llms[family])
    for layer, head, query in ((result.num_layers - 1, result.num_heads - 1, n - 1), (0, 1, min(n - 1, WINDOW + 2))):
        got = inside_head(text, layer, head, query, model_id=llms[family])
        assert got.available and got.rotary, got.reason
        assert got.rotation_difference < 1e-5 and got.output_difference < 1e-4
        np.testing.assert_allclose(got.weights, eager[layer][head][query], atol=1e-4)
        np.testing.assert_allclose(got.raw_scores, got.key_vectors @ got.query_vector, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(got.scaled_scores, got.raw_scores * got.scale, rtol=1e-6, atol=1e-6)
        module = next(m for name, m in loaded.model.named_modules() if name.endswith(f"layers.{layer}.self_attn")
                      or name.endswith(f"layers.{layer}.attention"))
        assert got.scale == pytest.approx(module.scaling)
        if family == "gemma2":
            assert got.softcap == loaded.model.config.attn_logit_softcapping
            assert got.scale == pytest.approx(loaded.model.config.query_pre_attn_scalar ** -0.5)
            visible = ~got.masked
            np.testing.assert_allclose(got.scores[visible], got.softcap * np.tanh(got.scaled_scores[visible] / got.softcap),
                                       rtol=1e-5, atol=1e-5)
        if family == "gpt_neox":  # partial rotary: only the first quarter of each vector turns
            quarter = got.query_vector.shape[0] // 4
            np.testing.assert_array_equal(got.query_before[quarter:], got.query_vector[quarter:])
            assert np.abs(got.query_before[:quarter] - got.query_vector[:quarter]).max() > 1e-3 or query == 0
        if family == "gpt_oss":
            assert got.sink is not None and got.weights.sum() < 1
        group = result.num_heads // result.num_kv_heads
        assert got.kv_head == head // group and got.sharing == tuple(range(got.kv_head * group, (got.kv_head + 1) * group))
        if got.window:
            assert got.masked[query - got.window] or query - got.window < 0


def test_a_continuation_of_a_grouped_query_model(offered, llms):
    """Generation steps of a Llama with grouped-query attention: each step the last row of a pass over
    its prefix (a fresh copy's eager attention)."""
    from transformers import AutoModel

    path = llms["llama"]
    g = generate_steps("the quick dar", 4, model_id=path)
    assert g.recorded and g.generation_steps >= 1
    base = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    ids = get_model(path).tokenizer.convert_tokens_to_ids(g.tokens)
    p = g.prompt_length
    for t in range(1, g.generation_steps + 1):
        with torch.no_grad():
            out = base(input_ids=torch.tensor([ids[:p + t]]), output_attentions=True)
        last = torch.stack([a[0, :, -1, :] for a in out.attentions]).numpy()
        assert np.abs(g.step_attention(t)[..., :p + t] - last).max() < TOL


def test_long_inputs_are_read_up_to_the_models_own_limit(offered, llms):
    """ATTN_MAX_TOKENS (unset: 4,096 on the CPU) within the model's own limit, not 512; the stored result
    is the queries and keys, far smaller than every map."""
    text = _text(2600)
    result = extract_attention(text, model_id=llms["llama"])
    assert result.token_limit == 4096 and result.seq_len > 3000 and result.recorded
    assert result.stored_nbytes < 0.1 * result.dense_cells * 2
    assert float(np.nanmax(result.self_check)) < 1e-4  # the recipe reproduced the model's own outputs
    row = result.rows(1, 3, [result.seq_len - 1])[0]
    assert row.sum() == pytest.approx(1, abs=1e-4) and row[: result.seq_len].min() >= 0
    config.configure(max_tokens=1000)
    try:
        cut = extract_attention(text, model_id=llms["llama"])
        assert cut.seq_len == 1000 and cut.truncated and cut.token_limit == 1000
    finally:
        config.configure(max_tokens=0)
    bert = extract_attention(text, model_id=llms["bert"])
    assert bert.seq_len == 1024 and bert.truncated  # BERT's own limit: its 1,024 positions
