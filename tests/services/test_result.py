"""``services.result``: the checks a result read back must pass (the cache's codec, Celery, a JSON file)."""

from __future__ import annotations

import numpy as np
import pytest

from attention_explorer.services.result import AttentionResult, check_result
from attention_explorer.services.serial import ExchangeError
from attention_explorer.services.store import codec


def _self_attention(queries: int, keys: int) -> AttentionResult:
    """A self-attention result of ``queries`` tokens whose attention has ``keys`` columns (rows sum to 1)."""
    tokens = ["[CLS]", "cat", "[SEP]"][:queries]
    return AttentionResult(
        tokens=tokens, attentions=np.full((2, 2, queries, keys), 1 / keys, np.float16), model_id="m",
        truncated=False, special_mask=np.array([t.startswith("[") for t in tokens]), word_ids=[None, 0, None],
        segment_ids=[None, 0, None], is_causal=False, unknown_share=0.0, unknown_count=0,
        token_count_before_truncation=queries, token_limit=8, text="cat")


def test_self_attention_that_is_not_square_is_refused_by_every_reader():
    """One query row per token but four key columns for three tokens: every other field agrees with the
    three tokens, so only the (seq, seq) rule can tell. check_result, the codec (cache and Celery) and
    the JSON reader all refuse it, while its square twin reads back."""
    square = _self_attention(3, 3)
    check_result(square)
    assert codec.decode(codec.encode(square)).attentions.shape == (2, 2, 3, 3)
    assert AttentionResult.from_json(square.to_json()).attentions.shape == (2, 2, 3, 3)

    wide = _self_attention(3, 4)
    assert wide.attentions.shape[2] == len(wide.tokens) != wide.attentions.shape[3]
    with pytest.raises(ValueError, match=r"\(layers, heads, seq, seq\)"):
        check_result(wide)
    with pytest.raises(codec.DecodeError, match=r"\(layers, heads, seq, seq\)"):
        codec.decode(codec.encode(wide))
    with pytest.raises(codec.DecodeError, match=r"\(layers, heads, seq, seq\)"):
        codec.from_json_payload(codec.to_json_payload(wide))
    with pytest.raises(ExchangeError, match=r"\(layers, heads, seq, seq\)"):
        AttentionResult.from_json(wide.to_json())
