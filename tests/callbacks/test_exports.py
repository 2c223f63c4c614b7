"""The Export menu's server side (callbacks/exports.py), called directly: named files, the numbers of
the open view (checked against the stored attention), bounds, and plain messages instead of errors."""

from __future__ import annotations

import base64
import csv
import io

import numpy as np
import pytest
from dash import no_update

from attention_explorer.callbacks import exports
from attention_explorer.callbacks.boundary import Handle
from attention_explorer.components import ids
from attention_explorer.services.extraction import analyse, result_by_key

SENTENCE = "The cat sat on the mat because it was tired."


def values(handle, tab, **extra):
    return {"handle": handle, "tab": tab, "layer": 0, "head": ids.HEAD_ALL, "mode": "raw", "switches": [], **extra}


def rows_of(download) -> list[dict]:
    return list(csv.DictReader(io.StringIO(download["content"])))


@pytest.fixture
def bert(settings, tiny_models):
    from attention_explorer.callbacks.router import handle_of

    key, result = analyse(SENTENCE, tiny_models["bert"])
    return handle_of(key, result).to_client(), result


def test_csv_of_each_view_is_named_and_holds_its_numbers(bert):
    handle, result = bert
    seq, heads = result.seq_len, result.num_heads
    grid, status, _picture = exports.export("csv", values(handle, ids.TAB_GRID, layer=1))
    assert status == "" and grid["filename"].endswith("_layer1_allheads_grid.csv")
    assert len(rows_of(grid)) == heads * seq * seq
    heat, _, _picture = exports.export("csv", values(handle, ids.TAB_HEATMAP, layer=1, head="2"))
    assert heat["filename"].endswith("_layer1_head2_heatmap.csv")
    assert len(rows_of(heat)) == seq * seq
    for row in rows_of(heat):
        assert float(row["weight"]) == pytest.approx(
            float(result.attentions[1, 2, int(row["query_index"]), int(row["key_index"])]), abs=1e-6)
    inside, _, _picture = exports.export("csv", values(handle, ids.TAB_INSIDE, token=8))  # no head chosen: head 0
    assert inside["filename"].endswith("_layer0_head0_inside.csv"), inside["filename"]
    assert {r["head"] for r in rows_of(inside)} == {"0"} and len(rows_of(inside)) == seq * seq
    focus, _, _picture = exports.export("csv", values(handle, ids.TAB_FOCUS, token=8))
    focus_rows = rows_of(focus)
    assert {r["query_token"] for r in focus_rows} == {"it"} and len(focus_rows) == result.num_layers * seq
    expected = result.attentions[:, :, 8, :].astype(np.float32).mean(axis=1)
    for row in focus_rows:
        assert float(row["weight"]) == pytest.approx(float(expected[int(row["layer"]), int(row["key_index"])]), abs=1e-5)
    atlas, _, _picture = exports.export("csv", values(handle, ids.TAB_ATLAS))
    assert atlas["filename"].endswith("_atlas.csv") and len(rows_of(atlas)) == result.num_layers * heads
    page, _, _picture = exports.export("html", values(handle, ids.TAB_ARCS))
    assert page["base64"] is True
    html_text = base64.b64decode(page["content"]).decode("utf-8")
    assert page["filename"].endswith("_layer0_allheads_arcs.html") and "<script src" not in html_text
    assert "Plotly.newPlot" in html_text and "Layer 0 · all heads" in html_text
    whole, _, _picture = exports.export("json", values(handle, ids.TAB_GRID))
    assert whole["filename"].endswith("_analysis.json") and type(result).from_json(whole["content"]).tokens == result.tokens


def test_a_too_large_csv_is_refused_with_a_message(bert, monkeypatch):
    handle, _result = bert
    monkeypatch.setattr(exports, "MAX_CSV_ROWS", 100)
    download, status, _picture = exports.export("csv", values(handle, ids.TAB_OVERVIEW))
    assert download is no_update and "Too many numbers" in status and "JSON" in status


@pytest.mark.parametrize("handle", [None, {"key": "nope"}, "x" * 500, 7])
def test_junk_handles_give_a_message_not_an_error(settings, handle):
    download, status, _picture = exports.export("csv", values(handle, ids.TAB_HEATMAP))
    assert download is no_update and status and "Traceback" not in status


def test_cross_attention_and_a_generation_step_export(seq2seq_settings, tiny_seq2seq_models, tiny_models):
    from attention_explorer.callbacks.router import handle_of

    key, result = analyse(SENTENCE, tiny_seq2seq_models["bart"], target="Le chat était assis.")
    handle = handle_of(key, result).to_client()
    cross, _, _picture = exports.export("csv", values(handle, ids.TAB_HEATMAP, kind="cross", layer=1, head="1"))
    assert cross["filename"].endswith("_layer1_head1_heatmap_cross.csv")
    rows = rows_of(cross)
    assert len(rows) == result.target_len * result.seq_len
    assert {r["key_token"] for r in rows} >= {"cat", "tired"}  # the source tokens, as the tokenizer spells them
    for row in rows:
        assert float(row["weight"]) == pytest.approx(
            float(result.cross_attentions[1, 1, int(row["query_index"]), int(row["key_index"])]), abs=1e-6)
    key, steps = analyse("The cat sat on the", tiny_models["gpt2"], steps=3)
    generated = handle_of(key, steps).to_client()
    step, _, _picture = exports.export("csv", values(generated, ids.TAB_GENERATION, step=2))
    rows = rows_of(step)
    row = steps.prompt_length + 1
    assert step["filename"].endswith("_generation_step2.csv") and len(rows) == steps.num_layers * steps.num_heads * (row + 1)
    for r in rows:
        assert int(r["query_index"]) == row and float(r["weight"]) == pytest.approx(
            float(steps.attentions[int(r["layer"]), int(r["head"]), row, int(r["key_index"])]), abs=1e-6)
    assert result_by_key(Handle.parse(generated).key) is not None


def test_compare_exports_a_b_and_their_difference(bert, tiny_models):
    """On the Compare tab the CSV holds A, B and A − B of the chosen head, each checked against the
    stored attention of its own analysis; the HTML page is the comparison figure."""
    from attention_explorer.callbacks.router import handle_of

    handle, a = bert
    key_b, b = analyse(SENTENCE.replace("cat", "dog"), tiny_models["bert"])
    compared = values(handle, ids.TAB_COMPARE, layer=1, head="3", compare_handle=handle_of(key_b, b).to_client())
    download, status, _picture = exports.export("csv", compared)
    assert status == "" and download["filename"].endswith("_layer1_head3_compare.csv")
    rows = rows_of(download)
    assert len(rows) == a.seq_len * a.seq_len
    assert {r["query_token"] for r in rows} >= {"cat | dog", "tired"}
    for row in rows:
        q, k = int(row["query_index"]), int(row["key_index"])
        wa, wb = float(a.attentions[1, 3, q, k]), float(b.attentions[1, 3, q, k])
        assert float(row["weight_a"]) == pytest.approx(wa, abs=1e-6)
        assert float(row["weight_b"]) == pytest.approx(wb, abs=1e-6)
        assert float(row["a_minus_b"]) == pytest.approx(wa - wb, abs=1e-6)
    assert any(abs(float(r["a_minus_b"])) > 1e-4 for r in rows)  # the texts differ, so do some weights
    page, _, _picture = exports.export("html", compared)
    assert page["filename"].endswith("_layer1_head3_compare.html")
    assert "A − B" in base64.b64decode(page["content"]).decode("utf-8")
    nothing, message, _picture = exports.export("csv", values(handle, ids.TAB_COMPARE))
    assert nothing is no_update and "Compare" in message
