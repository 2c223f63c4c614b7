"""Head metrics and labels on synthetic heads with known answers, and on the real default model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attention_explorer.services import extract_attention
from attention_explorer.services.analyses import measures as analysis
from attention_explorer.services.analyses.heads import (
    LABEL_HELP,
    LABELS,
    METRICS,
    THRESHOLDS,
    delimiter_mask,
    head_labels,
    head_metrics,
    metric_table,
)

N = 8
IDENTITY = np.eye(N)
PREVIOUS = np.eye(N, k=-1)
PREVIOUS[0, 0] = 1.0  # the first token has no previous one: it attends to itself
NEXT = np.eye(N, k=1)
NEXT[-1, -1] = 1.0  # the last token has no next one
UNIFORM = np.full((N, N), 1.0 / N)
DELIMITER = 4  # the "." in the synthetic sentence
NO_DELIMITERS = np.zeros(N, dtype=bool)
SENTENCE = "The cat sat on the mat because it was tired."
LONG_TEXT = ("Attention lets each token weigh every other token, and each head learns its own pattern: "
             "some look at the previous word, some at punctuation, some everywhere. ") * 3


def _sink(weight: float = 0.9) -> np.ndarray:
    """Every query puts ``weight`` on the delimiter column and spreads the rest over the others."""
    att = np.full((N, N), (1.0 - weight) / (N - 1))
    att[:, DELIMITER] = weight
    return att


def _model(*heads: np.ndarray, dtype=np.float16) -> np.ndarray:
    """One layer holding the given heads: ``(1, heads, seq, seq)``."""
    return np.stack(heads)[None].astype(dtype)


def _one_head(att: np.ndarray, delimiters: np.ndarray = NO_DELIMITERS, causal: bool = False) -> dict[str, float]:
    metrics = head_metrics(_model(att, dtype=np.float32), delimiters, causal=causal)
    label = head_labels(metrics)[0, 0]
    return {"label": label, **{name: float(value[0, 0]) for name, value in metrics.items()}}


# --- synthetic heads -----------------------------------------------------------------------------

def test_identity_is_self():
    head = _one_head(IDENTITY)
    assert head["label"] == "self"
    assert head["self"] == pytest.approx(1.0)
    assert head["entropy"] == pytest.approx(0.0, abs=1e-7)
    assert head["distance"] == pytest.approx(0.0, abs=1e-7)
    assert head["previous"] == head["next"] == 0.0


def test_previous_token():
    head = _one_head(PREVIOUS)
    assert head["label"] == "previous-token"
    assert head["previous"] == pytest.approx(1.0)
    assert head["entropy"] == pytest.approx(0.0, abs=1e-7)
    assert head["distance"] == pytest.approx((N - 1) / N, abs=1e-7)
    assert head["self"] == pytest.approx(1 / N)
    assert head["next"] == 0.0


def test_next_token():
    head = _one_head(NEXT)
    assert head["label"] == "next-token"
    assert head["next"] == pytest.approx(1.0)
    assert head["previous"] == 0.0
    assert head["entropy"] == pytest.approx(0.0, abs=1e-7)
    assert head["distance"] == pytest.approx((N - 1) / N, abs=1e-7)


def test_uniform_is_broad():
    head = _one_head(UNIFORM)
    assert head["label"] == "broad"
    assert head["entropy"] == pytest.approx(1.0, abs=1e-6)
    # local with the default window of 3: query q sees min(q, 3) + min(N-1-q, 3) + 1 keys within it
    assert head["local"] == pytest.approx(np.mean([(min(q, 3) + min(N - 1 - q, 3) + 1) / N for q in range(N)]))
    assert head["self"] == pytest.approx(1 / N)


def test_causal_uniform_is_broad_only_when_normalised_for_causality():
    causal_uniform = np.tril(np.ones((N, N)))
    causal_uniform /= causal_uniform.sum(axis=1, keepdims=True)
    assert _one_head(causal_uniform, causal=True)["entropy"] == pytest.approx((N - 1) / N, abs=1e-6)  # row 0: 0
    assert _one_head(causal_uniform, causal=False)["entropy"] < 0.7


def test_delimiter_sink():
    delimiters = np.zeros(N, dtype=bool)
    delimiters[DELIMITER] = True
    head = _one_head(_sink(0.9), delimiters)
    assert head["label"] == "delimiter sink"
    assert head["delimiter"] == pytest.approx(0.9, abs=1e-6)
    assert _one_head(_sink(0.9), NO_DELIMITERS)["delimiter"] == 0.0
    assert _one_head(_sink(0.3), delimiters)["label"] != "delimiter sink"


def test_local_window():
    band = np.tril(np.triu(np.ones((N, N)), k=-2), k=2)  # up to 2 tokens either side
    band /= band.sum(axis=1, keepdims=True)
    metrics = head_metrics(_model(band), NO_DELIMITERS, window=2)
    assert metrics["local"][0, 0] == pytest.approx(1.0, abs=1e-3)
    assert head_metrics(_model(band), NO_DELIMITERS, window=0)["local"][0, 0] == pytest.approx(
        metrics["self"][0, 0], abs=1e-6)
    with pytest.raises(ValueError):
        head_metrics(_model(band), NO_DELIMITERS, window=-1)


def test_heads_of_a_stack_are_measured_separately():
    att = np.stack([_model(IDENTITY, PREVIOUS, UNIFORM)[0], _model(NEXT, IDENTITY, PREVIOUS)[0]])
    metrics = head_metrics(att, NO_DELIMITERS)
    assert set(metrics) == set(METRICS)
    assert all(value.shape == (2, 3) for value in metrics.values())
    assert head_labels(metrics).tolist() == [["self", "previous-token", "broad"],
                                             ["next-token", "self", "previous-token"]]


def test_float16_and_float32_give_the_same_metrics():
    rng = np.random.default_rng(0)
    att = rng.random((2, 3, 20, 20)) ** 4
    att = (att / att.sum(axis=-1, keepdims=True)).astype(np.float16)
    delimiters = rng.random(20) < 0.2
    fast = head_metrics(att, delimiters, causal=True)
    plain = head_metrics(att.astype(np.float32), delimiters, causal=True)
    for name in METRICS:
        np.testing.assert_allclose(fast[name], plain[name], atol=1e-6, err_msg=name)


def test_single_token():
    metrics = head_metrics(np.ones((2, 2, 1, 1), dtype=np.float16), np.array([False]))
    assert metrics["self"].tolist() == [[1.0, 1.0]] * 2
    assert metrics["previous"].tolist() == metrics["next"].tolist() == metrics["entropy"].tolist() == [[0.0, 0.0]] * 2


def test_head_metrics_checks_its_input():
    with pytest.raises(ValueError):
        head_metrics(np.ones((2, 3, 3)), np.zeros(3, dtype=bool))
    with pytest.raises(ValueError):
        head_metrics(np.ones((1, 1, 3, 3)) / 3, np.zeros(4, dtype=bool))


# --- against independent computations --------------------------------------------------------------

def _metrics_loop(att: np.ndarray, delimiters: np.ndarray, window: int, causal: bool) -> dict[str, np.ndarray]:
    """Every metric of every head, one head and one query at a time, in float64."""
    layers, heads, seq, _ = att.shape
    out = {name: np.zeros((layers, heads)) for name in METRICS}
    for layer in range(layers):
        for head in range(heads):
            a = att[layer, head].astype(np.float64)
            rows = {name: [] for name in METRICS}
            for q in range(seq):
                row = a[q]
                visible = q + 1 if causal else seq
                h = -sum(p * math.log(p) for p in row if p > 0)
                rows["entropy"].append(h / math.log(visible) if visible > 1 else 0.0)
                rows["distance"].append(sum(p * abs(q - k) for k, p in enumerate(row)))
                rows["local"].append(sum(p for k, p in enumerate(row) if abs(q - k) <= window))
                rows["self"].append(row[q])
                if q >= 1:
                    rows["previous"].append(row[q - 1])
                if q <= seq - 2:
                    rows["next"].append(row[q + 1])
                rows["delimiter"].append(sum(p for k, p in enumerate(row) if delimiters[k]))
                if not causal or q >= 1 or seq == 1:  # query 0 of a decoder sees only the first token
                    rows["sink"].append(row[0])
            for name in METRICS:
                out[name][layer, head] = sum(rows[name]) / len(rows[name]) if rows[name] else 0.0
    return out


@pytest.mark.parametrize(("text", "window"), [(SENTENCE, 3), (LONG_TEXT, 1)])
def test_default_model_against_a_per_head_loop(settings, default_model, text, window):
    result = extract_attention(text)
    assert result.num_layers == 6 and result.num_heads == 12
    delimiters = delimiter_mask(result.tokens, result.special_mask)
    assert delimiters.sum() >= 3
    got = head_metrics(result.attentions, delimiters, window=window, causal=result.is_causal)
    expected = _metrics_loop(result.attentions, delimiters, window, result.is_causal)
    for name in METRICS:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-5, err_msg=name)
    assert np.ptp(got["entropy"]) > 0.3  # real heads differ, so the comparison above says something
    np.testing.assert_allclose(got["entropy"], analysis.entropy(result.attentions, normalise=True), atol=1e-5)
    np.testing.assert_allclose(got["distance"], analysis.mean_distance(result.attentions), atol=1e-5)
    np.testing.assert_allclose(got["local"], analysis.local_ratio(result.attentions, window), atol=1e-5)


def test_long_causal_heads_against_a_per_head_loop():
    """At 512 tokens, distances reach ~170: float32 sums must not drift."""
    rng = np.random.default_rng(1)
    seq = 512
    att = np.tril(rng.random((1, 2, seq, seq)) ** 4)
    att = (att / att.sum(axis=-1, keepdims=True)).astype(np.float16)
    att[0, 1] = (np.ones((seq, seq)) / seq).astype(np.float16)
    delimiters = rng.random(seq) < 0.1
    got = head_metrics(att, delimiters, causal=True)
    expected = _metrics_loop(att, delimiters, 3, causal=True)
    assert expected["distance"][0, 1] > 150
    for name in METRICS:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-5, err_msg=name)


def test_causal_tiny_gpt2_entropy_matches_analysis(settings, tiny_models):
    result = extract_attention(SENTENCE, tiny_models["gpt2"])
    assert result.is_causal
    got = head_metrics(result.attentions, delimiter_mask(result.tokens, result.special_mask), causal=True)
    np.testing.assert_allclose(got["entropy"], analysis.entropy(result.attentions, True, causal=True), atol=1e-5)
    assert not np.allclose(got["entropy"], analysis.entropy(result.attentions, True, causal=False), atol=1e-3)


# --- delimiters, labels, table -------------------------------------------------------------------

def test_delimiter_mask():
    tokens = ["[CLS]", "the", "cat", ".", "Ġ,", "。", "!", "?", ";", ":", "«", "...", "##s", "don't", "$",
              "Ġ", "[SEP]"]
    special = [t in ("[CLS]", "[SEP]") for t in tokens]
    expected = [True, False, False, True, True, True, True, True, True, True, True, True, False, False, False,
                False, True]
    assert delimiter_mask(tokens, special).tolist() == expected
    with pytest.raises(ValueError):
        delimiter_mask(tokens, special[:-1])


def _metrics(**values: float) -> dict[str, np.ndarray]:
    """One head whose metrics are 0 except those given."""
    return {name: np.array([[values.get(name, 0.0)]]) for name in (*METRICS, "induction")}


@pytest.mark.parametrize(("values", "label"), [
    ({"previous": 0.5, "self": 0.5}, "previous-token"),
    ({"next": 0.6, "delimiter": 0.4}, "next-token"),
    ({"self": 0.5, "delimiter": 0.5}, "self"),
    ({"delimiter": 0.7, "entropy": 0.9, "local": 0.9}, "delimiter sink"),
    ({"entropy": 0.85, "local": 0.95}, "broad"),
    ({"entropy": 0.79, "local": 0.7}, "local"),
    ({"previous": 0.49, "next": 0.49, "local": 0.69, "entropy": 0.79, "delimiter": 0.49}, "mixed"),
    ({"sink": 0.5, "delimiter": 0.9, "entropy": 0.9}, "sink"),
    ({"sink": 0.6, "self": 0.5}, "self"),
    ({"induction": 0.4, "previous": 0.6, "sink": 0.9}, "induction"),
    ({"induction": 0.39, "sink": 0.5}, "sink"),
    ({"induction": float("nan"), "sink": 0.49, "delimiter": 0.5}, "delimiter sink"),
])
def test_label_rules_in_order(values, label):
    assert head_labels(_metrics(**values)).tolist() == [[label]]


def test_thresholds_and_help_cover_every_label():
    assert set(THRESHOLDS) <= set(METRICS) | {"induction"}
    assert set(LABEL_HELP) == set(LABELS) == {"previous-token", "next-token", "self", "local", "delimiter sink",
                                              "broad", "mixed", "sink", "induction"}
    assert all(text.endswith(".") and len(text.split()) >= 5 for text in LABEL_HELP.values())


def test_metric_table():
    metrics = head_metrics(_model(IDENTITY, PREVIOUS, UNIFORM), NO_DELIMITERS)
    rows = metric_table(metrics, head_labels(metrics))
    assert [(row["layer"], row["head"], row["label"]) for row in rows] == [
        (0, 0, "self"), (0, 1, "previous-token"), (0, 2, "broad")]
    assert list(rows[1]) == ["layer", "head", "label", *METRICS]
    assert rows[1]["distance"] == round((N - 1) / N, 3) == 0.875
    assert rows[2]["self"] == 0.125
    assert all(isinstance(row[name], float) and row[name] == round(row[name], 3) for row in rows for name in METRICS)
