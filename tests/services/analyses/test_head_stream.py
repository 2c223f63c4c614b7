"""Head metrics measured head by head (issue 18 item 3): the attention-sink score, the induction score
on a repeated random-token probe, and the streamed pass, against independent numpy on synthetic heads
with known answers and on tiny models."""

from __future__ import annotations

import numpy as np
import pytest

from attention_explorer.services.analyses import heads
from attention_explorer.services.analyses.heads import (
    Cancelled,
    head_chunks,
    head_labels,
    head_metrics,
    induction_pattern,
    induction_score,
    induction_scores,
    measure_head,
    stream_head_metrics,
)

from .test_heads import _metrics_loop


def _chunks_of(att: np.ndarray, chunk: int):
    """``head_rows`` over a held ``(layers, heads, n, n)`` array, ``chunk`` rows at a time."""
    return lambda layer, head: head_chunks(lambda q0, q1: att[layer, head, q0:q1].astype(np.float32),
                                           att.shape[-1], chunk)


def _causal_heads(layers: int, heads_: int, seq: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    att = np.tril(rng.random((layers, heads_, seq, seq)) ** 3)
    return (att / att.sum(axis=-1, keepdims=True)).astype(np.float32)


# --- the attention-sink score ----------------------------------------------------------------------

def test_a_pure_sink_head_scores_one_and_is_named_sink():
    seq = 16
    sink = np.zeros((seq, seq), np.float32)
    sink[:, 0] = 1.0  # every query puts all its attention on the first token
    metrics = head_metrics(sink[None, None], np.zeros(seq, bool), causal=True)
    assert metrics["sink"][0, 0] == pytest.approx(1.0)
    assert head_labels(metrics)[0, 0] == "sink"


@pytest.mark.parametrize("causal", [True, False])
def test_sink_score_is_the_mean_weight_on_the_first_token(causal):
    """A head putting a known, different weight on the first token from each query: the score is their
    mean over the queries that can see another token (a decoder's query 0 cannot: left out)."""
    seq = 12
    weights = np.linspace(0.2, 0.9, seq)
    att = np.zeros((seq, seq))
    for q in range(seq):
        visible = q + 1 if causal else seq
        if visible == 1:
            att[q, 0] = 1.0
            continue
        att[q, 0] = weights[q]
        att[q, 1:visible] = (1 - weights[q]) / (visible - 1)
    expected = weights[1:].mean() if causal else weights.mean()
    dense = head_metrics(att[None, None].astype(np.float32), np.zeros(seq, bool), causal=causal)
    streamed = stream_head_metrics(_chunks_of(att[None, None], 5), 1, 1, seq, np.zeros(seq, bool), causal=causal)
    assert dense["sink"][0, 0] == pytest.approx(expected, abs=1e-6)
    assert streamed["sink"][0, 0] == pytest.approx(expected, abs=1e-6)
    assert head_labels(dense)[0, 0] == "sink"  # 0.55 on average: more than half


def test_a_previous_token_head_is_not_a_sink():
    seq = 10
    prev = np.eye(seq, k=-1)
    prev[0, 0] = 1
    metrics = head_metrics(prev[None, None].astype(np.float32), np.zeros(seq, bool), causal=True)
    assert metrics["sink"][0, 0] == pytest.approx(1 / 9)  # only query 1, whose previous token is the first
    assert head_labels(metrics)[0, 0] == "previous-token"


# --- streamed == dense == a per-query loop -------------------------------------------------------------

@pytest.mark.parametrize(("window", "chunk", "causal"), [(3, 7, True), (0, 64, True), (1, 5, False), (8, 1, True)])
def test_streamed_metrics_match_the_dense_ones_and_a_loop(window, chunk, causal):
    seq = 40
    att = _causal_heads(2, 3, seq, seed=window)
    if not causal:
        rng = np.random.default_rng(9)
        att = rng.random((2, 3, seq, seq)).astype(np.float32) ** 4
        att /= att.sum(axis=-1, keepdims=True)
    delimiters = np.random.default_rng(2).random(seq) < 0.2
    got = stream_head_metrics(_chunks_of(att, chunk), 2, 3, seq, delimiters, window=window, causal=causal)
    dense = head_metrics(att, delimiters, window=window, causal=causal)
    loop = _metrics_loop(att, delimiters, window, causal)
    for name in heads.METRICS:
        np.testing.assert_allclose(got[name], loop[name], rtol=0, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(dense[name], loop[name], rtol=0, atol=1e-5, err_msg=name)
    assert np.ptp(got["sink"]) > 0.01  # the heads differ: the comparison says something


def test_streaming_reports_each_head_and_stops_when_cancelled():
    att = _causal_heads(2, 3, 8, seed=1)
    read = []

    def head_rows(layer, head):
        read.append((layer, head))
        return _chunks_of(att, 4)(layer, head)

    steps = []

    def step(done, total):
        steps.append((done, total))
        if done == 4:
            raise Cancelled

    with pytest.raises(Cancelled):
        stream_head_metrics(head_rows, 2, 3, 8, np.zeros(8, bool), step=step)
    assert steps == [(1, 6), (2, 6), (3, 6), (4, 6)]
    assert read == [(0, 0), (0, 1), (0, 2), (1, 0)]  # stopped between heads: nothing more was read


def test_measure_head_refuses_chunks_that_miss_rows():
    att = _causal_heads(1, 1, 6, seed=0)
    with pytest.raises(ValueError):
        measure_head(iter([(0, att[0, 0, :4])]), 6, np.zeros(6, bool))


# --- the induction score -----------------------------------------------------------------------------

def _transformer_lens_pattern(ids: np.ndarray) -> np.ndarray:
    """transformer_lens.head_detector.get_induction_head_detection_pattern, line by line in numpy."""
    n = len(ids)
    token_pattern = np.tile(ids, (n, 1))
    eq_mask = np.equal(token_pattern, token_pattern.T).astype(int)
    np.fill_diagonal(eq_mask, 0)
    duplicate = np.tril(eq_mask.astype(float))
    shifted = np.roll(duplicate, shift=1, axis=1)
    result = np.concatenate([np.zeros((n, 1)), shifted[:, 1:]], axis=1)
    return np.tril(result)


def _transformer_lens_mul_score(att: np.ndarray, pattern: np.ndarray) -> float:
    """compute_head_attention_similarity_score(error_measure="mul"): sum(A * P) / sum(A)."""
    return float((att * pattern).sum() / att.sum())


def _probe(half: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    random = rng.choice(np.arange(10, 1000), size=half, replace=False)
    return np.concatenate([[1], random, random])  # a BOS, then the random tokens twice


def _induction_head(ids: np.ndarray) -> np.ndarray:
    """By hand: in the second half each query puts all its weight on the token after its first
    occurrence; every other query rests on the first token (BOS)."""
    n = len(ids)
    half = (n - 1) // 2
    att = np.zeros((n, n))
    att[:, 0] = 1.0
    for q in range(1 + half, n):
        att[q] = 0.0
        att[q, q - half + 1] = 1.0
    return att


@pytest.mark.parametrize("ids", [_probe(6), _probe(20, seed=3), np.array([5, 7, 5, 7, 9, 5, 7]), np.array([4, 4, 4])])
def test_induction_pattern_is_transformer_lens_pattern(ids):
    np.testing.assert_array_equal(induction_pattern(ids), _transformer_lens_pattern(ids))


def test_a_pure_induction_head_scores_one_and_transformer_lens_half():
    ids = _probe(25)
    att = _induction_head(ids)
    pattern = induction_pattern(ids)
    assert pattern[1 + 25 + 3, 1 + 3 + 1] == 1  # the 4th repeated token looks after the 4th token's first time
    assert induction_score(att, pattern) == pytest.approx(1.0)
    relevant = pattern.any(axis=1)
    assert relevant.sum() == 25 and relevant[26:].all()  # the second half, exactly
    # TransformerLens's "mul" score divides the same mass by every query: 25 / 51 here
    assert _transformer_lens_mul_score(att, _transformer_lens_pattern(ids)) == pytest.approx(25 / 51)
    assert induction_score(att, pattern) * relevant.sum() / len(ids) == pytest.approx(
        _transformer_lens_mul_score(att, _transformer_lens_pattern(ids)))
    metrics = {**head_metrics(att[None, None].astype(np.float32), np.zeros(len(ids), bool), causal=True),
               "induction": np.array([[1.0]])}
    assert head_labels(metrics)[0, 0] == "induction"  # although half its queries rest on the first token


def test_induction_scores_of_other_heads():
    ids = _probe(10)
    n = len(ids)
    previous = np.eye(n, k=-1)
    previous[0, 0] = 1
    uniform = np.tril(np.ones((n, n)))
    uniform /= uniform.sum(axis=1, keepdims=True)
    half_induction = 0.5 * _induction_head(ids) + 0.5 * previous
    scores = induction_scores([np.stack([previous, uniform, half_induction])], ids)
    assert scores.shape == (1, 3)
    assert scores[0, 0] == pytest.approx(0.0)
    expected_uniform = np.mean([1 / (q + 1) for q in range(11, 21)])  # one key in q + 1 is the right one
    assert scores[0, 1] == pytest.approx(expected_uniform)
    assert scores[0, 2] == pytest.approx(0.5)


# --- on tiny models ------------------------------------------------------------------------------------

@pytest.fixture
def offered_llama(settings, llama):
    from attention_explorer.services import config

    return config.configure(models=settings.models + (llama,))


def test_streamed_metrics_on_demand_match_the_dense_ones_on_a_gqa_llama(offered_llama, llama, monkeypatch):
    """A recorded result read on demand, chunk by chunk (as at 4,096 tokens), gives the metrics the whole
    array gives."""
    from attention_explorer.services import extract_attention
    from attention_explorer.services import result as result_module
    from tests import tiny_models as tm

    result = extract_attention(" ".join(tm.long_text(200).split()[:200]), llama)
    assert result.recorded and result.num_kv_heads == 2 and result.seq_len > 200
    delimiters = heads.delimiter_mask(result.tokens, result.special_mask)
    dense = head_metrics(result.attentions, delimiters, causal=True)
    monkeypatch.setattr(result_module, "DENSE_CELLS", 0)  # from here on, every map is computed when asked
    assert not result.dense
    asked = []
    original_rows = type(result).rows

    def rows(self, layer, head, queries):
        asked.append(len(queries))
        return original_rows(self, layer, head, queries)

    monkeypatch.setattr(type(result), "rows", rows)
    streamed = stream_head_metrics(heads.head_rows_of(result, chunk=64, by_rows=True), result.num_layers,
                                   result.num_heads, result.seq_len, delimiters, causal=True)
    assert asked and max(asked) == 64  # never more than a chunk of rows at once
    by_head = stream_head_metrics(heads.head_rows_of(result), result.num_layers, result.num_heads,
                                  result.seq_len, delimiters, causal=True)
    for name in heads.METRICS:
        np.testing.assert_allclose(streamed[name], dense[name], rtol=0, atol=2e-3, err_msg=name)
        np.testing.assert_allclose(by_head[name], streamed[name], rtol=0, atol=1e-5, err_msg=name)
    assert np.ptp(streamed["sink"]) > 0.01


def _eager_maps(path: str, ids: list[int]) -> list[np.ndarray]:
    """The model's own eager attention on ``ids``, from a fresh copy (no hooks, no recording)."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_attentions=True)
    return [a[0].numpy() for a in out.attentions]


def test_the_induction_probe_of_a_tiny_llama(offered_llama, llama):
    from transformers import AutoTokenizer

    from attention_explorer.services.extraction import induction_scores as model_scores
    from attention_explorer.services.model.probe import PROBE_HALF, probe_ids, run_probe

    tokenizer = AutoTokenizer.from_pretrained(llama)
    ids, first = probe_ids(tokenizer)
    assert (ids, first) == probe_ids(tokenizer)  # seeded
    body = ids[first:first + 2 * PROBE_HALF]
    assert body[:PROBE_HALF] == body[PROBE_HALF:] and len(set(body)) == PROBE_HALF  # random tokens, twice
    assert not set(body) & set(tokenizer.all_special_ids)  # no special token inside
    ran_ids, maps = run_probe(llama)
    assert ran_ids == ids
    eager = _eager_maps(llama, ids)
    for mine, theirs in zip(maps, eager):
        np.testing.assert_allclose(mine, theirs, atol=1e-4)
    # the score, independently: TransformerLens's pattern, the mass on it over the rows it names
    pattern = _transformer_lens_pattern(np.array(ids))
    relevant = pattern.any(axis=1)
    expected = np.array([[float((m[relevant] * pattern[relevant]).sum(axis=1).mean()) for m in layer]
                         for layer in eager])
    got = model_scores(llama)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert got.shape == (2, 4) and np.ptp(got) > 0.001
    assert model_scores(llama) is got  # remembered per model


def test_induction_probe_of_tiny_bert_and_gpt2(settings, tiny_models):
    from attention_explorer.services.extraction import induction_scores as model_scores

    for name in ("bert", "gpt2"):
        got = model_scores(tiny_models[name])
        assert got is not None and got.ndim == 2 and np.isfinite(got).all() and (got >= 0).all() and (got <= 1).all()


def test_held_maps_layer_by_layer_match_the_whole_array_pass():
    att = _causal_heads(3, 2, 30, seed=5).astype(np.float16)
    delimiters = np.random.default_rng(4).random(30) < 0.3
    steps = []
    got = heads.held_head_metrics(att, delimiters, window=2, causal=True, step=lambda d, t: steps.append((d, t)))
    whole = head_metrics(att, delimiters, window=2, causal=True)
    for name in heads.METRICS:
        np.testing.assert_allclose(got[name], whole[name], rtol=0, atol=1e-9, err_msg=name)
    assert steps == [(2, 6), (4, 6), (6, 6)]  # after each layer's heads
