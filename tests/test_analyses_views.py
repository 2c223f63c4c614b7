"""Issue 4 in the dashboard: views with the switches, token focus, atlas and overview, vs independent numpy."""

from __future__ import annotations

import numpy as np
import pytest

from callbacks import atlas, navigation, overview, token_focus
from components import ids
from services import extract_attention
from services.views import View, ViewOptions
from tests.test_callbacks import SENTENCE, run_analyze
from tests.test_figures import decode


@pytest.fixture
def request_(settings, default_model):
    request, *_ = run_analyze(SENTENCE)
    return request


def test_view_switches_keep_rows_summing_to_one(settings, tiny_models):
    result = extract_attention("playing cats sat", tiny_models["bert"], text_pair="the dog")
    for rollout in (False, True):
        for hide in (False, True):
            for merge in (False, True):
                view = View(result, ViewOptions(rollout=rollout, hide_special=hide, merge_words=merge))
                matrix, title = view.matrix(1, 2)
                assert matrix.shape == (len(view.labels),) * 2
                np.testing.assert_allclose(matrix.sum(-1), 1.0, atol=2e-3)
                assert ("Rollout" in title) == rollout
    view = View(result, ViewOptions(hide_special=True, merge_words=True))
    assert view.labels == ["playing", "cats", "sat", "the", "dog"]
    assert view.token_index == [1, 3, 5, 7, 8]
    assert view.unit_of(4) == 1 and view.unit_of(0) is None  # "##s" belongs to "cats"; [CLS] is hidden
    assert "renormalised" in view.options.note


def test_hidden_special_tokens_renormalise_by_hand(settings, tiny_models):
    result = extract_attention("the cat sat", tiny_models["bert"])
    raw = result.head(0, 1).astype(np.float64)
    keep = [1, 2, 3]
    expected = raw[np.ix_(keep, keep)]
    expected /= expected.sum(-1, keepdims=True)
    got, _ = View(result, ViewOptions(hide_special=True)).matrix(0, 1)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_rollout_by_hand(settings, default_model):
    result = extract_attention(SENTENCE)
    att = result.attentions.astype(np.float64).mean(axis=1)
    eye = np.eye(result.seq_len)
    rolled = None
    for layer in range(result.num_layers):
        step = 0.5 * att[layer] + 0.5 * eye
        step /= step.sum(-1, keepdims=True)
        rolled = step if rolled is None else step @ rolled
        got, _ = View(result, ViewOptions(rollout=True)).matrix(layer, None)
        np.testing.assert_allclose(got, rolled, atol=1e-4)


def test_token_focus_top_k_matches_independent_loop(request_):
    result = extract_attention(SENTENCE)
    it = result.tokens.index("it")
    options, value = token_focus.token_options(request_, "raw", [], None)
    assert value == it and options[it]["label"] == "it (#8)"  # the pronoun is picked by default
    assert token_focus.token_options(request_, "raw", [], 2)[1] == 2  # a chosen token is kept
    figure, tables = token_focus.render_focus(request_, it, 3, "raw", [], ids.TAB_FOCUS)
    att = result.attentions.astype(np.float64)
    for layer in range(result.num_layers):
        row = np.mean([att[layer, h, it] for h in range(result.num_heads)], axis=0)
        top = sorted(range(result.seq_len), key=lambda j: (-row[j], j))[:3]
        cells = tables[0].children[1].children[1].children[layer].children[1:]
        assert [c.children for c in cells] == [f"{result.tokens[j]} ({row[j]:.2f})" for j in top]
        np.testing.assert_allclose(decode(figure["data"][0]["z"])[layer], row, atol=1e-4)
        column = att[layer, :, :, it].mean(axis=0)
        who = sorted(range(result.seq_len), key=lambda q: (-column[q], q))[:3]
        cells = tables[1].children[1].children[1].children[layer].children[1:]
        assert [c.children for c in cells] == [f"{result.tokens[q]} ({column[q]:.2f})" for q in who]
    assert "Where “it” looks" in figure["layout"]["title"]["text"]


def test_token_focus_follows_clicks(request_):
    # a click on token 8 in the arc view, or on row 8 of the head heatmap
    assert token_focus.focus_from_click(8, None, request_, "raw", []) == 8
    click = {"points": [{"pointNumber": [5, 2], "x": "cat", "y": "the\u200b"}]}
    assert token_focus.focus_from_click(None, click, request_, "raw", []) == 5
    # with special tokens hidden, unit 0 is "the" (token 1)
    assert token_focus.focus_from_click(0, None, request_, "raw", ["hide"]) == 1


def test_atlas_rows_labels_and_legend(request_):
    figure, rows, legend = atlas.render_atlas(request_, "previous", 3, 0, "2", ids.TAB_ATLAS)
    assert len(rows) == 72 and {"layer", "head", "label", "entropy", "previous", "id"} <= set(rows[0])
    result = extract_attention(SENTENCE)
    att = result.attentions.astype(np.float64)
    z = decode(figure["data"][0]["z"])
    for layer, head in [(0, 2), (3, 7)]:
        previous = np.mean([att[layer, head, q, q - 1] for q in range(1, result.seq_len)])
        assert z[layer, head] == pytest.approx(previous, abs=1e-4)
        row = next(r for r in rows if r["id"] == f"{layer}-{head}")
        assert row["previous"] == pytest.approx(previous, abs=1e-3)
    counts = sum(int(str(li.children[0].children).split("(")[1].split()[0]) for li in legend)
    assert counts == 72
    assert figure["layout"]["shapes"][0]["x0"] == 2 - 0.5  # the selected head is outlined


def test_overview_one_trace_and_click_opens_the_head(request_):
    figure = overview.render_overview(request_, 1, "4", [], ids.TAB_OVERVIEW)
    assert len(figure["data"]) == 1
    meta = figure["layout"]["meta"]
    assert meta["layers"] == 6 and meta["heads"] == 12 and meta["stride"] == 14
    z = decode(figure["data"][0]["z"])
    result = extract_attention(SENTENCE)
    tile = z[3 * 14:3 * 14 + 13, 5 * 14:5 * 14 + 13]
    expected = np.maximum(np.rint(result.attentions[3, 5].astype(np.float64) * 255), 1)
    assert np.abs(tile.astype(int) - expected).max() <= 1
    click = {"points": [{"x": 5 * 14 + 3, "y": 3 * 14 + 7}]}
    assert navigation.from_overview(click, request_, []) == (3, "5", ids.TAB_HEATMAP)
    gap = {"points": [{"x": 5 * 14 + 3, "y": 6 * 14 + 40}]}
    assert navigation.from_overview(gap, request_, []) == navigation.NOTHING


def test_atlas_navigation():
    assert navigation.from_atlas_map({"points": [{"x": 7, "y": 2}]}) == (2, "7", ids.TAB_HEATMAP)
    assert navigation.from_atlas_table({"row": 0, "column": 1, "row_id": "4-11"}) == (4, "11", ids.TAB_HEATMAP)
    assert navigation.from_atlas_table(None) == navigation.NOTHING
