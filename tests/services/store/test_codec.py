"""services.store.codec: the safe, versioned format of everything that leaves the process (issue 9).

Each test fails on the code before issue 9, which had no codec (values were pickles).
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import struct

import numpy as np
import pytest

from attention_explorer.services import extract_attention
from attention_explorer.services.result import AttentionResult
from attention_explorer.services.store import codec

SENTENCE = "The cat sat on the mat because it was tired."


def assert_same(a: AttentionResult, b: AttentionResult) -> None:
    """Every dataclass field equal, with the same Python and numpy types."""
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert type(x) is type(y) and x == y, f.name
            if isinstance(x, list):
                assert [type(v) for v in x] == [type(v) for v in y], f.name


@pytest.mark.parametrize("kind,pair", [("bert", None), ("bert", "The dog ran in the park."), ("gpt2", None),
                                       ("chinese", None)])
def test_round_trip_of_every_field(settings, tiny_models, kind, pair):
    text = SENTENCE if kind != "chinese" else "猫坐在垫子上因为它累了。"
    result = extract_attention(text, tiny_models[kind], pair)
    back = codec.decode(codec.encode(result))
    assert back is not result
    assert_same(result, back)
    assert back.attentions.dtype == np.float16 and back.attentions.flags.writeable
    assert back.offsets and isinstance(back.offsets[0], tuple)  # tuples stay tuples
    if kind != "gpt2":  # GPT-2 adds no special tokens: every token has a word and a segment
        assert None in back.word_ids and None in back.segment_ids
    assert back.special_mask.dtype == np.bool_
    if pair:
        assert 1 in back.segment_ids


def test_odd_values_round_trip():
    result = AttentionResult(
        tokens=["[CLS]", "\ud800lone", "猫", "e\u0301", "[SEP]"], attentions=np.full((1, 2, 5, 5), 0.2, np.float16),
        model_id="m", truncated=True, special_mask=np.array([1, 0, 0, 0, 1], bool), word_ids=[None, 0, 1, 2, None],
        segment_ids=[None, 0, 0, 0, None], is_causal=True, unknown_share=float("nan"), unknown_count=np.int64(2),
        token_count_before_truncation=7, token_limit=5, text="x", text_pair="", offsets=[], unk_token="")
    back = codec.decode(codec.encode(result))
    assert back.tokens == result.tokens and back.text_pair == ""
    assert np.isnan(back.unknown_share)
    assert type(back.unknown_count) is np.int64 and back.unknown_count == 2
    assert codec.decode(codec.encode("recipe \ud800 猫 {json}")) == "recipe \ud800 猫 {json}"


def test_new_fields_travel_without_changing_the_codec(monkeypatch):
    """Issues will add value_norms, decoder_attentions, cross_attentions, target_tokens: the codec
    carries any numpy or JSON-able field of the dataclass, found with dataclasses.fields (the one field
    table of services.serial); tuples come back as tuples where the annotation says so."""
    extended = dataclasses.make_dataclass(
        "AttentionResult",
        [("value_norms", object, None), ("decoder_attentions", object, None), ("cross_attentions", object, None),
         ("target_tokens", object, None), ("extra", "dict[str, tuple] | None", None)],
        bases=(AttentionResult,), frozen=True, eq=False, namespace={"__module__": AttentionResult.__module__})
    monkeypatch.setattr(codec, "AttentionResult", extended)
    base = dict(tokens=["a", "b"], maps=np.eye(2, dtype=np.float16).reshape(1, 1, 2, 2), model_id="m",
                truncated=False, special_mask=np.zeros(2, bool), word_ids=[0, 1], segment_ids=[0, 0],
                is_causal=False, unknown_share=0.0, unknown_count=0, token_count_before_truncation=2,
                token_limit=8, text="a b")
    result = extended(**base, value_norms=np.arange(2, dtype=np.float32).reshape(1, 1, 2),
                      decoder_attentions=np.ones((2, 1, 3, 3), np.float16),
                      cross_attentions=np.ones((2, 1, 3, 2), np.float16),
                      target_tokens=["<s>", "x", "</s>"], extra={"k": (1, 2.5, None, [True])})
    back = codec.decode(codec.encode(result))
    assert isinstance(back, extended)
    assert_same(result, back)
    # An old reader (the plain dataclass) ignores the fields it does not know.
    monkeypatch.setattr(codec, "AttentionResult", AttentionResult)
    old = codec.decode(codec.encode(result))
    assert type(old) is AttentionResult and old.tokens == ["a", "b"]


class _Plant:
    """Unpickling this creates ``marker``: proof that a pickle was run."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_and_junk_are_refused_never_run(tmp_path):
    marker = tmp_path / "pwned"
    planted = pickle.dumps(_Plant(str(marker)))
    good = codec.encode("fine")
    for junk in (planted, b"!" + planted, struct.pack("I", 0) + planted, b"", b"AEXC", good[:5],
                 codec.MAGIC + bytes([codec.VERSION + 1]) + b"s" + b"future", codec.MAGIC + b"\x01x"):
        with pytest.raises(codec.DecodeError):
            codec.decode(junk)
    assert not marker.exists()
    with pytest.raises(codec.DecodeError):
        codec.from_json_payload({"format": "attention-explorer", "data": "not base64!"})
    with pytest.raises(codec.DecodeError):
        codec.from_json_payload({"format": "pickle", "data": ""})
    with pytest.raises(TypeError):
        codec.encode(_Plant(str(marker)))  # only results and text are written


def _forge(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    start = 4 + 1 + 1 + 4 + len(raw)
    pad = (-start) % 64
    return codec.MAGIC + bytes([codec.VERSION]) + b"r" + struct.pack("<I", len(raw)) + raw + b"\0" * pad + data


def test_forged_headers_are_refused(settings, tiny_models):
    fields = {"tokens": ["a"], "maps": {"__array__": 0}, "model_id": "m", "truncated": False,
              "special_mask": {"__array__": 1}, "word_ids": [0], "segment_ids": [0],
              "is_causal": False, "unknown_share": 0.0, "unknown_count": 0, "token_count_before_truncation": 1,
              "token_limit": 1, "text": "a"}
    ok = [{"dtype": "<f2", "shape": [1, 1, 1, 1], "offset": 0, "nbytes": 2},
          {"dtype": "|b1", "shape": [1], "offset": 64, "nbytes": 1}]
    data = b"\0" * 65
    assert codec.decode(_forge({"type": "AttentionResult", "fields": fields, "arrays": ok}, data)).tokens == ["a"]
    bad_tables = [
        [{**ok[0], "dtype": "|O"}, ok[1]],  # object arrays would unpickle
        [{**ok[0], "shape": [1, 1, 100, 100], "nbytes": 20000}, ok[1]],  # larger than the data
        [{**ok[0], "offset": -64}, ok[1]],
        [{**ok[0], "nbytes": 3}, ok[1]],  # size does not match the shape
    ]
    for table in bad_tables:
        with pytest.raises(codec.DecodeError):
            codec.decode(_forge({"type": "AttentionResult", "fields": fields, "arrays": table}, data))
    for broken in ({**fields, "tokens": ["a", "b"]}, {k: v for k, v in fields.items() if k != "text"},
                   {**fields, "word_ids": {"__array__": 9}}, {**fields, "word_ids": [0, 1, 2]}):
        with pytest.raises(codec.DecodeError):
            codec.decode(_forge({"type": "AttentionResult", "fields": broken, "arrays": ok}, data))
    # a header nested too deep for json: a DecodeError (a miss), not a RecursionError that escapes
    deep = b"[" * 200_000 + b"]" * 200_000
    nested = codec.MAGIC + bytes([codec.VERSION]) + b"r" + struct.pack("<I", len(deep)) + deep
    with pytest.raises(codec.DecodeError):
        codec.decode(nested)
