"""Callback bodies called directly, as plain functions, against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from dash import no_update
from dash.exceptions import PreventUpdate

from callbacks import analyze, arcs, head_grid, head_heatmap, inputs, navigation
from components import ids
from components.layout import EXAMPLES
from services import extract_attention, extraction, forward
from tests.test_figures import decode

SENTENCE = "The cat sat on the mat because it was tired."


def _alert_text(component) -> str:
    return " ".join(str(getattr(c, "children", c)) for c in component.children)


def run_analyze(text, model_id=None, pair=None, layer=0, head=ids.HEAD_ALL):
    return analyze.analyze(1, model_id, text, pair, layer, head)


def test_analyze_default_model(settings, default_model):
    request, status, layer_max, marks, layer, options, head, focus = run_analyze(SENTENCE, layer=9, head="3")
    assert request == {"text": SENTENCE, "text_pair": None, "model_id": "all-MiniLM-L6-v2"}
    assert layer_max == 5 and list(marks) == list(range(6)) and layer == 5
    assert [o["value"] for o in options] == [ids.HEAD_ALL, ids.HEAD_MEAN] + [str(h) for h in range(12)]
    assert head == "3" and focus is None
    assert "13 tokens" in str(status)


def test_analyze_adapts_controls_to_the_model(settings, tiny_models):
    _, _, layer_max, marks, layer, options, head, _ = run_analyze(SENTENCE, tiny_models["gpt2"], layer=4, head="9")
    assert layer_max == 1 and layer == 1 and len(options) == 2 + 4
    assert head == ids.HEAD_ALL  # head 9 does not exist in a 4-head model


@pytest.mark.parametrize("text, words", [("", "empty"), ("   \n", "empty"), ("x" * 6000, "limit is 5,000")])
def test_analyze_bad_text_gives_an_alert(settings, text, words):
    request, status, *rest = run_analyze(text)
    assert request is None
    assert words in _alert_text(status)
    assert "Traceback" not in str(status)
    assert rest[:5] == [no_update] * 5


def test_analyze_unknown_model_gives_an_alert_and_default_still_works(settings, default_model):
    from services import config

    config.configure(models=settings.models + ("gpt2",))
    request, status, *_ = run_analyze(SENTENCE, "gpt2")  # offered but not on this machine
    assert request is None and "could not be loaded" in _alert_text(status)
    request, status, *_ = run_analyze(SENTENCE, "evil/not-offered")
    assert request is None and "not one of the models" in _alert_text(status)
    request, *_ = run_analyze(SENTENCE)
    assert request["model_id"] == "all-MiniLM-L6-v2"


def test_analyze_unexpected_error_is_plain(settings, monkeypatch):
    monkeypatch.setattr(analyze, "extract_attention", lambda *a: 1 / 0)
    request, status, *_ = run_analyze(SENTENCE)
    assert request is None and "unexpectedly" in _alert_text(status) and "ZeroDivision" not in str(status)


def test_warnings_for_unknown_tokens_and_truncation(settings, default_model, tiny_models):
    _, status, *_ = run_analyze("猫坐在垫子上因为它累了。")
    text = str(status)
    assert "unknown to this model" in text and "[UNK]" in text
    _, status, *_ = run_analyze(" ".join(["cat"] * 100), tiny_models["bert"])
    assert "cut to 64 tokens" in str(status) and "has 102" in str(status)


def test_grid_slices_the_cache_and_never_reruns_the_model(settings, default_model, monkeypatch):
    request, *_ = run_analyze(SENTENCE)
    monkeypatch.setattr(forward, "compute", lambda *a, **k: pytest.fail("model ran on a layer change"))
    result = extract_attention(SENTENCE)
    for layer in (0, 4):
        fig = head_grid.render_grid(request, layer, ids.HEAD_ALL, "raw", [], ids.TAB_GRID)
        assert len(fig["data"]) == 12
        assert f"Layer {layer}" in fig["layout"]["title"]["text"]
        z = decode(fig["data"][7]["z"]) / 255.0
        assert np.abs(z - result.attentions[layer, 7].astype(np.float32)).max() <= 0.5 / 255 + 1e-3
        assert fig["layout"]["meta"]["tokens"][8] == "it"
    with pytest.raises(PreventUpdate):
        head_grid.render_grid(request, 0, ids.HEAD_ALL, "raw", [], ids.TAB_ARCS)


def test_grid_click_selects_head_and_opens_heatmap():
    click = {"points": [{"curveNumber": 7, "x": 1, "y": 2}]}
    assert navigation.from_grid(click, "raw") == (no_update, "7", ids.TAB_HEATMAP)
    assert navigation.from_grid(click, "rollout") == (7, no_update, ids.TAB_HEATMAP)  # tiles are layers
    assert navigation.from_grid(None, "raw") == navigation.NOTHING


def test_heatmap_head_and_mean(settings, default_model):
    request, *_ = run_analyze(SENTENCE)
    result = extract_attention(SENTENCE)
    fig = head_heatmap.render_heatmap(request, 2, "5", "raw", [], ids.TAB_HEATMAP)
    np.testing.assert_allclose(decode(fig["data"][0]["z"]), result.attentions[2, 5].astype(np.float32))
    assert fig["layout"]["title"]["text"] == "Layer 2 · Head 5"
    fig = head_heatmap.render_heatmap(request, 2, ids.HEAD_MEAN, "raw", [], ids.TAB_HEATMAP)
    mean = np.mean([result.attentions[2, h].astype(np.float64) for h in range(12)], axis=0)
    np.testing.assert_allclose(decode(fig["data"][0]["z"]), mean, atol=1e-5)
    assert fig["layout"]["title"]["text"] == "Layer 2 · Mean of heads"


def test_causal_heatmap_says_so(settings, tiny_models):
    request, *_ = run_analyze(SENTENCE, tiny_models["gpt2"])
    fig = head_heatmap.render_heatmap(request, 0, "1", "raw", [], ids.TAB_HEATMAP)
    assert "causal" in fig["layout"]["title"]["text"]
    z = decode(fig["data"][0]["z"])
    assert np.all(np.triu(z, 1) == 0)


def test_arcs_focus_and_release(settings, default_model):
    request, *_ = run_analyze(SENTENCE)
    fig, hint = arcs.render_arcs(request, 5, "0", 3, 0.0, None, None, "raw", [], ids.TAB_ARCS)
    assert fig["layout"]["meta"]["arcs"] == 13 * 3
    click = {"points": [{"curveNumber": 0, "pointIndex": 8}]}
    focus = arcs.toggle_focus(click, None)
    assert focus == 8
    fig, hint = arcs.render_arcs(request, 5, "0", 3, 0.0, focus, None, "raw", [], ids.TAB_ARCS)
    assert fig["layout"]["meta"]["arcs"] == 3 and "“it”" in hint
    assert arcs.toggle_focus(click, 8) is None  # clicking again releases
    hover = {"points": [{"curveNumber": 0, "pointIndex": 2}]}
    fig, hint = arcs.render_arcs(request, 5, "0", 3, 0.0, None, hover, "raw", [], ids.TAB_ARCS)
    assert "“cat”" in hint
    with pytest.raises(PreventUpdate):
        arcs.toggle_focus({"points": [{"curveNumber": 3, "pointIndex": 2}]}, None)  # a click on an arc


def test_arcs_all_heads_legend(settings, default_model):
    request, *_ = run_analyze(SENTENCE)
    fig, _ = arcs.render_arcs(request, 0, ids.HEAD_ALL, 1, 0.0, None, None, "raw", [], ids.TAB_ARCS)
    legend = {t["name"] for t in fig["data"][1:] if t["showlegend"]}
    assert legend == {str(h) for h in range(12)}
    assert fig["layout"]["meta"]["arcs"] == 12 * 13


def test_views_survive_a_missing_request_and_errors(settings, monkeypatch):
    assert head_heatmap.render_heatmap(None, 0, "0", "raw", [], ids.TAB_HEATMAP)["data"] == []
    bad = {"text": "", "text_pair": None, "model_id": None}
    fig = head_grid.render_grid(bad, 0, "0", "raw", [], ids.TAB_GRID)
    assert "empty" in fig["layout"]["annotations"][0]["text"]


def test_examples_fill_the_boxes():
    text, pair, is_open = inputs.fill_example(1)
    assert (text, pair, is_open) == (EXAMPLES[1]["text"], EXAMPLES[1]["pair"], True)
    assert inputs.fill_example(2)[0] == "猫坐在垫子上因为它累了。"
    assert inputs.toggle_pair(1, False) is True and inputs.toggle_pair(2, True) is False
