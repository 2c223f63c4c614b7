"""Transforms on hand-made matrices with known answers, and word grouping on the tiny models."""

from __future__ import annotations

import re

import numpy as np
import pytest

from attention_explorer.services import extract_attention
from attention_explorer.services.analyses import measures as analysis
from attention_explorer.services.analyses.matrices import (
    attended_by,
    hide_rectangular,
    hide_special,
    merge_subwords,
    rollout,
)
from attention_explorer.services.analyses.tokens import display_token, word_groups
from attention_explorer.services.result import as_float32

SENTENCE = "The cat sat on the mat because it was tired."

# "[CLS] play ##ing [SEP]": rows are queries and sum to 1.
PLAYING = np.array([
    [0.40, 0.30, 0.20, 0.10],
    [0.10, 0.20, 0.30, 0.40],
    [0.25, 0.25, 0.25, 0.25],
    [0.00, 0.50, 0.50, 0.00],
])
PLAYING_GROUPS = [[0], [1, 2], [3]]


def _random_rows(rng: np.random.Generator, shape: tuple[int, ...], causal: bool = False) -> np.ndarray:
    att = rng.random(shape) ** 3
    if causal:
        att = np.tril(att)
    return att / att.sum(axis=-1, keepdims=True)


# --- display_token -------------------------------------------------------------------------------

@pytest.mark.parametrize(("token", "shown"), [
    ("Ġcat", "cat"),
    ("cat", "cat"),
    ("Ġ.", "."),
    ("Ċ", "↵"),
    ("ĊĊ", "↵↵"),
    ("▁play", "play"),
    ("▁New▁York", "New York"),
    ("##ing", "##ing"),
    ("[CLS]", "[CLS]"),
    ("<|endoftext|>", "<|endoftext|>"),
    ("猫", "猫"),
    ("ĠcafÃ©", "café"),  # byte-level pieces of non-ASCII text
    ("é", "é"),  # not byte-level text: unchanged
    ("<0x0A>", "↵"),  # SentencePiece byte fallback
    ("Ġ", "␣"),  # a space and nothing else: shown
    ("ĠĠ", "␣␣"),
    ("▁", "␣"),
    (" ", "␣"),
    ("\u200b", "\u200b"),  # would read as nothing: raw
])
def test_display_token(token, shown):
    assert display_token(token) == shown


# --- word_groups ---------------------------------------------------------------------------------

def test_word_groups_from_word_ids():
    tokens = ["[CLS]", "play", "##ing", "cat", "##s", "[SEP]", "the", "dog", "[SEP]"]
    word_ids = [None, 0, 0, 1, 1, None, 0, 1, None]
    segments = [None, 0, 0, 0, 0, None, 1, 1, None]
    special = [True, False, False, False, False, True, False, False, True]
    groups, labels = word_groups(tokens, word_ids, segments, special)
    # word 0 of the second sentence is not word 0 of the first
    assert groups == [[0], [1, 2], [3, 4], [5], [6], [7], [8]]
    assert labels == ["[CLS]", "playing", "cats", "[SEP]", "the", "dog", "[SEP]"]


def test_word_groups_unaligned_tokens_stand_alone():
    tokens = ["<s>", "Ġplay", "ing", "?", "</s>"]
    groups, labels = word_groups(tokens, [None, 0, 0, None, None], [None, 0, 0, 0, None],
                                 [True, False, False, False, True])
    assert groups == [[0], [1, 2], [3], [4]]
    assert labels == ["<s>", "playing", "?", "</s>"]


@pytest.mark.parametrize(("tokens", "special", "groups", "labels"), [
    (["[CLS]", "play", "##ing", "cat", "##s", ".", "[SEP]"], [1, 0, 0, 0, 0, 0, 1],
     [[0], [1, 2], [3, 4], [5], [6]], ["[CLS]", "playing", "cats", ".", "[SEP]"]),
    (["The", "Ġplay", "ing", "Ġcat", "'s", "Ġ", "mat", ".", "Ċ", "Hi"], [0] * 10,
     [[0], [1, 2], [3, 4], [5, 6], [7], [8], [9]], ["The", "playing", "cat's", "mat", ".", "↵", "Hi"]),
    (["<s>", "▁play", "ing", "▁cats", "</s>"], [1, 0, 0, 0, 1],
     [[0], [1, 2], [3], [4]], ["<s>", "playing", "cats", "</s>"]),
    (["[CLS]", "猫", "坐", "[SEP]"], [1, 0, 0, 1], [[0], [1], [2], [3]], ["[CLS]", "猫", "坐", "[SEP]"]),
])
def test_word_groups_without_word_ids(tokens, special, groups, labels):
    n = len(tokens)
    segments = [None if s else 0 for s in special]
    assert word_groups(tokens, [None] * n, segments, [bool(s) for s in special]) == (groups, labels)


def test_word_groups_checks_lengths():
    with pytest.raises(ValueError):
        word_groups(["a", "b"], [0], [0, 0], [False, False])


def test_word_groups_tiny_bert(settings, tiny_models):
    result = extract_attention("playing cats", tiny_models["bert"])
    assert result.tokens == ["[CLS]", "play", "##ing", "cat", "##s", "[SEP]"]
    groups, labels = word_groups(result.tokens, result.word_ids, result.segment_ids, result.special_mask)
    assert groups == [[0], [1, 2], [3, 4], [5]]
    assert labels == ["[CLS]", "playing", "cats", "[SEP]"]
    unaligned = word_groups(result.tokens, [None] * 6, result.segment_ids, result.special_mask)
    assert unaligned == (groups, labels)


@pytest.mark.parametrize("text", ["The cat sat on the mat because it was tired", SENTENCE,
                                  "The dog ran in the park and it was happy."])
def test_word_groups_tiny_gpt2(settings, tiny_models, text):
    result = extract_attention(text, tiny_models["gpt2"])
    assert len(result.tokens) > len(text.split())  # some words are split into pieces
    groups, labels = word_groups(result.tokens, result.word_ids, result.segment_ids, result.special_mask)
    assert labels == re.findall(r"\w+|[^\w\s]", text)
    assert [i for group in groups for i in group] == list(range(len(result.tokens)))
    unaligned = word_groups(result.tokens, [None] * len(result.tokens), result.segment_ids, result.special_mask)
    assert unaligned == (groups, labels)


# --- merge_subwords ------------------------------------------------------------------------------

def test_merge_subwords_hand_example():
    merged = merge_subwords(PLAYING, PLAYING_GROUPS)
    expected = np.array([
        [0.40, 0.50, 0.10],    # [CLS]: columns play + ##ing summed
        [0.175, 0.50, 0.325],  # playing: the mean of the rows of play and ##ing
        [0.00, 1.00, 0.00],    # [SEP]
    ])
    assert merged.dtype == np.float32
    np.testing.assert_allclose(merged, expected, atol=1e-7)


def test_merge_subwords_keeps_rows_summing_to_one_on_stacks():
    rng = np.random.default_rng(0)
    att = _random_rows(rng, (2, 3, 7, 7)).astype(np.float16)
    groups = [[0], [1, 2, 3], [4], [5, 6]]
    merged = merge_subwords(att, groups)
    assert merged.shape == (2, 3, 4, 4)
    assert analysis.normalisation_error(merged) < 1e-3
    np.testing.assert_allclose(merged[1, 2], merge_subwords(att[1, 2], groups))


@pytest.mark.parametrize("groups", [[[0], [1, 2]], [[0], [1, 2], [2, 3]], [[0], [], [1, 2, 3]], [[0, 1, 2, 3, 4]]])
def test_merge_subwords_refuses_groups_that_do_not_split_the_tokens(groups):
    with pytest.raises(ValueError):
        merge_subwords(PLAYING, groups)


# --- hide_special --------------------------------------------------------------------------------

def test_hide_special_hand_example():
    hidden, kept = hide_special(PLAYING, [True, False, False, True])
    assert kept.tolist() == [1, 2]
    np.testing.assert_allclose(hidden, [[0.4, 0.6], [0.5, 0.5]], atol=1e-7)


def test_hide_special_rows_sum_to_one_on_stacks():
    rng = np.random.default_rng(1)
    att = _random_rows(rng, (2, 3, 6, 6)).astype(np.float16)
    special = np.array([True, False, False, True, False, True])
    hidden, kept = hide_special(att, special)
    assert kept.tolist() == [1, 2, 4]
    assert hidden.shape == (2, 3, 3, 3)
    assert analysis.normalisation_error(hidden) < 1e-6
    expected = att.astype(np.float32)[..., [1, 2, 4], :][..., [1, 2, 4]]
    np.testing.assert_allclose(hidden, expected / expected.sum(axis=-1, keepdims=True), rtol=1e-6)


def test_hide_special_row_without_mass_becomes_uniform():
    att = np.array([
        [0.2, 0.3, 0.3, 0.2],
        [0.5, 0.0, 0.0, 0.5],  # all on the special tokens
        [0.1, 0.2, 0.3, 0.4],
        [0.25, 0.25, 0.25, 0.25],
    ])
    hidden, kept = hide_special(att, [True, False, False, True])
    assert kept.tolist() == [1, 2]
    np.testing.assert_allclose(hidden, [[0.5, 0.5], [0.4, 0.6]], atol=1e-7)


def test_hide_special_causal_row_without_mass_sees_only_earlier_keys():
    att = np.array([
        [1.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0],  # all on the special token: becomes all on itself
        [0.5, 0.25, 0.25, 0.0],
        [0.7, 0.0, 0.2, 0.1],
    ])
    hidden, kept = hide_special(att, [True, False, False, False])
    assert kept.tolist() == [1, 2, 3]
    np.testing.assert_allclose(hidden, [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 2 / 3, 1 / 3]], atol=1e-7)


def test_hide_rectangular_renormalises_each_row_over_the_kept_keys():
    """Cross-attention with special tokens hidden (target rows, source columns, different counts): each
    kept row is divided by its own mass on the kept keys, so rows sum to 1 (columns need not)."""
    rng = np.random.default_rng(4)
    att = _random_rows(rng, (2, 3, 5, 7)).astype(np.float16)
    att[1, 2, 3] = [0.5, 0, 0, 0.5, 0, 0, 0]  # all on hidden keys: spreads evenly over the kept ones
    rows, cols = np.array([0, 2, 3]), np.array([1, 2, 4, 6])
    got = hide_rectangular(att, rows, cols)
    raw = att.astype(np.float64)
    expected = np.zeros((2, 3, len(rows), len(cols)))
    for layer in range(2):
        for head in range(3):
            for r, i in enumerate(rows):
                mass = sum(raw[layer, head, i, j] for j in cols)
                for c, j in enumerate(cols):
                    expected[layer, head, r, c] = raw[layer, head, i, j] / mass if mass else 1 / len(cols)
    assert got.shape == (2, 3, 3, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=-1), 1, atol=1e-6)
    assert np.abs(got.sum(axis=-2) - 1).max() > 0.1  # the columns are not what is normalised


def test_hide_special_checks_the_mask():
    with pytest.raises(ValueError):
        hide_special(PLAYING, [True, False])


# --- rollout -------------------------------------------------------------------------------------

@pytest.mark.parametrize("residual", [0.0, 0.5, 0.9])
def test_rollout_of_identity_is_identity(residual):
    att = np.broadcast_to(np.eye(5, dtype=np.float16), (3, 2, 5, 5))
    rolled = rollout(att, residual)
    assert rolled.dtype == np.float32
    assert rolled.shape == (3, 5, 5)
    for layer in rolled:
        np.testing.assert_array_equal(layer, np.eye(5))


def test_rollout_hand_computed_two_layers():
    first = np.array([[[0.5, 0.5, 0.0], [0.2, 0.2, 0.6], [1.0, 0.0, 0.0]],
                      [[0.1, 0.8, 0.1], [0.0, 0.0, 1.0], [0.3, 0.3, 0.4]]])
    second = np.array([[[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [0.2, 0.3, 0.5]],
                       [[0.6, 0.2, 0.2], [0.1, 0.1, 0.8], [0.0, 0.5, 0.5]]])
    residual = 0.3

    def mixed(layer: np.ndarray) -> np.ndarray:
        a = residual * np.eye(3) + (1 - residual) * layer.mean(axis=0)
        return a / a.sum(axis=1, keepdims=True)

    r0 = mixed(first)
    # heads averaged: row 0 is [0.3, 0.65, 0.05]; 0.3 * I + 0.7 * that
    np.testing.assert_allclose(r0[0], [0.3 + 0.7 * 0.3, 0.7 * 0.65, 0.7 * 0.05])
    expected = np.stack([r0, mixed(second) @ r0])
    np.testing.assert_allclose(rollout(np.stack([first, second]), residual), expected, atol=1e-6)


def test_rollout_of_causal_attention_stays_lower_triangular():
    rng = np.random.default_rng(2)
    att = _random_rows(rng, (4, 3, 6, 6), causal=True).astype(np.float16)
    rolled = rollout(att)
    assert np.all(np.triu(rolled, k=1) == 0)
    assert np.all(np.diagonal(rolled, axis1=-2, axis2=-1) > 0)
    assert analysis.normalisation_error(rolled) < 1e-5


def test_rollout_checks_its_input():
    with pytest.raises(ValueError):
        rollout(np.eye(3))
    with pytest.raises(ValueError):
        rollout(np.ones((1, 1, 2, 2)) / 2, residual=1.5)


# --- attended_by ---------------------------------------------------------------------------------

def _attended_by_loop(att: np.ndarray, token: int, k: int) -> list[list[tuple[int, float]]]:
    layers, heads, seq, _ = att.shape
    result = []
    for layer in range(layers):
        weights = []
        for query in range(seq):
            total = 0.0
            for head in range(heads):
                total += float(att[layer, head, query, token])
            weights.append((-(total / heads), query))
        result.append([(query, -negative) for negative, query in sorted(weights)[:k]])
    return result


@pytest.mark.parametrize(("token", "k"), [(0, 3), (2, 5), (11, 1)])
def test_attended_by_default_model_against_a_loop(settings, default_model, token, k):
    result = extract_attention(SENTENCE)
    assert result.num_layers == 6 and result.num_heads == 12
    got = attended_by(result.attentions, token, k)
    expected = _attended_by_loop(result.attentions, token, k)
    assert len(got) == 6
    for got_layer, expected_layer in zip(got, expected):
        assert [q for q, _ in got_layer] == [q for q, _ in expected_layer]
        np.testing.assert_allclose([w for _, w in got_layer], [w for _, w in expected_layer], atol=1e-6)


def test_attended_by_ties_and_top_attended_on_the_transpose():
    att = np.zeros((1, 2, 4, 4))
    att[0, :, :, 1] = [0.5, 0.2, 0.5, 0.2]  # ties: the earlier query first
    att[0, :, :, 0] = 1 - att[0, :, :, 1]
    assert attended_by(att, 1, k=3) == [[(0, 0.5), (2, 0.5), (1, pytest.approx(0.2))]]
    rng = np.random.default_rng(3)
    square = _random_rows(rng, (3, 2, 5, 5)).astype(np.float32)
    assert attended_by(square, 4, k=5) == analysis.top_attended(square.swapaxes(-1, -2), 4, k=5)
    with pytest.raises(IndexError):
        attended_by(att, 4)


def test_as_float32_matches_astype_for_every_float16():
    every = np.arange(1 << 16, dtype=np.uint16).view(np.float16).reshape(256, 256)
    np.testing.assert_array_equal(as_float32(every), every.astype(np.float32))
    np.testing.assert_array_equal(as_float32(every[:, ::3]), every[:, ::3].astype(np.float32))
