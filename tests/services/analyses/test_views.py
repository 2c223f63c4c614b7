"""``View``: the switches applied to one kind of attention, checked against loops over a hand-made result."""

from __future__ import annotations

import numpy as np

from attention_explorer.services.analyses.views import View, ViewOptions
from attention_explorer.services.result import AttentionResult

# A translation pair with the same number of tokens on each side but different words: the source's
# words come from the tokenizer's word ids, the target's (which has none) from its SentencePiece pieces.
SOURCE = ["▁un", "believ", "able", "▁cats", "▁sleep", "</s>"]
SOURCE_WORDS = [[0, 1, 2], [3], [4], [5]]
TARGET = ["</s>", "▁los", "▁gat", "os", "▁duer", "men"]
TARGET_WORDS = [[0], [1], [2, 3], [4, 5]]


def _rows(rng: np.random.Generator, shape: tuple[int, ...], causal: bool = False) -> np.ndarray:
    att = rng.random(shape) ** 3
    if causal:
        att = np.tril(att)
    return (att / att.sum(axis=-1, keepdims=True)).astype(np.float16)


def translation() -> AttentionResult:
    rng = np.random.default_rng(7)
    src, tgt, layers, heads = len(SOURCE), len(TARGET), 2, 3
    return AttentionResult(
        tokens=SOURCE, attentions=_rows(rng, (layers, heads, src, src)), model_id="tiny-marian", truncated=False,
        special_mask=np.array([t == "</s>" for t in SOURCE]), word_ids=[0, 0, 0, 1, 2, None],
        segment_ids=[0, 0, 0, 0, 0, None], is_causal=False, unknown_share=0.0, unknown_count=0,
        token_count_before_truncation=src, token_limit=64, text="unbelievable cats sleep",
        is_encoder_decoder=True, target_text="los gatos duermen", target_tokens=TARGET,
        target_ids=list(range(tgt)), decoder_attentions=_rows(rng, (layers, heads, tgt, tgt), causal=True),
        cross_attentions=_rows(rng, (layers, heads, tgt, src)),
        target_special_mask=np.array([t == "</s>" for t in TARGET]))


def test_cross_attention_merges_target_words_on_rows_and_source_words_on_columns():
    """Merged sub-words in cross-attention: a row is a target word (the mean of its pieces' rows), a
    column a source word (the sum of its pieces' columns), each side grouped by its own tokens."""
    result = translation()
    view = View(result, ViewOptions(merge_words=True), kind="cross")
    assert view.labels == ["</s>", "los", "gatos", "duermen"]
    assert view.col_labels == ["unbelievable", "cats", "sleep", "</s>"]
    raw = result.cross_attentions.astype(np.float64)
    layers, heads = raw.shape[:2]
    expected = np.zeros((layers, heads, len(TARGET_WORDS), len(SOURCE_WORDS)))
    for layer in range(layers):
        for head in range(heads):
            for r, pieces in enumerate(TARGET_WORDS):
                for c, keys in enumerate(SOURCE_WORDS):
                    total = sum(raw[layer, head, i, j] for i in pieces for j in keys)
                    expected[layer, head, r, c] = total / len(pieces)
    np.testing.assert_allclose(view.all_layers(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(view.matrix(1, 2)[0], expected[1, 2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(view.all_layers().sum(-1), 1, atol=2e-3)  # a target word's row still sums to 1
