"""Callback bodies called directly, as plain functions, against independent computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dash import no_update

from attention_explorer.callbacks import analyze, head_heatmap, registry, router
from attention_explorer.callbacks.boundary import Handle
from attention_explorer.components import ids
from attention_explorer.components.figures import HEAD_COLORS
from attention_explorer.components.layout import EXAMPLES
from attention_explorer.services import extract_attention
from attention_explorer.services.model import forward
from tests.components.test_figures import decode, heatmap_levels, tile_of

SENTENCE = "The cat sat on the mat because it was tired."
ALL_INPUTS = frozenset(router.INPUTS)


def _alert_text(status) -> str:
    return str(status)


def run_analyze(text, model_id=None, pair=None, layer=0, head=ids.HEAD_ALL, current=None, example=None):
    # as the page gets it in the end: a long text's background run (tests/callbacks/test_analyze_progress.py)
    # ends with this same call, its result cached
    return analyze.analyze({"text": text, "model": model_id, "pair": pair, "layer": layer, "head": head,
                            "current": current, "synchronous": True}, example)


def view(handle, tab, triggered=ALL_INPUTS, **values):
    """The router's outputs for ``tab`` with the analysis ``handle`` and other values by input name."""
    return router.route({"handle": handle, "tab": tab, "layer": 0, "head": ids.HEAD_ALL, "mode": "raw",
                         "switches": [], **values}, frozenset(triggered))


def test_analyze_default_model(settings, default_model):
    out = run_analyze(SENTENCE, layer=9, head="3")
    handle = Handle.parse(out["handle"])
    assert handle.model_id == "all-MiniLM-L6-v2" and (handle.layers, handle.heads, handle.tokens) == (6, 12, 13)
    plain = {k: v for k, v in out["handle"].items() if k != "recipe"}
    assert plain == {"key": handle.key, "model": "all-MiniLM-L6-v2", "layers": 6, "heads": 12, "tokens": 13}
    assert not any(word in json.dumps(plain) for word in ("cat", "tired", "text"))  # never the text in the open
    # the text only inside the recipe that the server signed (services.store.recipes): what recomputes it
    assert handle.recipe.text == SENTENCE and handle.recipe.model_id == "all-MiniLM-L6-v2"
    assert len(out["handle"]["recipe"]) < 4 * len(SENTENCE)  # small for a short text
    assert out["layer_max"] == 5 and list(out["layer_marks"]) == list(range(6)) and out["layer"] == 5
    assert [o["value"] for o in out["head_options"]] == [ids.HEAD_ALL, ids.HEAD_MEAN] + [str(h) for h in range(12)]
    assert out["head"] == "3" and out["arc_focus"] is None and out["token"] is None
    assert "13 tokens" in str(out["status"])
    assert out["text"] is no_update  # the box keeps what the person typed


def test_analyze_adapts_controls_to_the_model(settings, tiny_models):
    out = run_analyze(SENTENCE, tiny_models["gpt2"], layer=4, head="9")
    assert out["layer_max"] == 1 and out["layer"] == 1 and len(out["head_options"]) == 2 + 4
    assert out["head"] == ids.HEAD_ALL  # head 9 does not exist in a 4-head model
    assert run_analyze(SENTENCE, tiny_models["gpt2"], head="4")["head"] == ids.HEAD_ALL  # == the head count
    assert run_analyze(SENTENCE, tiny_models["gpt2"], head="3")["head"] == "3"


@pytest.mark.parametrize("text, words", [("", "empty"), ("   \n", "empty"), (12, "plain text"),
                                         ({"a": 1}, "plain text"), ("x" * 200_001, "far too long")])
def test_analyze_bad_text_gives_an_alert_and_keeps_the_page(settings, default_model, text, words):
    current = run_analyze(SENTENCE)["handle"]
    out = run_analyze(text, current=current)
    assert words in _alert_text(out["status"])
    assert "Traceback" not in str(out["status"])
    assert "previous analysis" in str(out["status"])  # nothing is lost: the views keep the last analysis
    assert all(out[name] is no_update for name in out if name != "status")


def test_a_text_over_the_limit_is_cut_and_the_page_says_so(settings, tiny_models):
    """Issue 19: 12,000 characters with ATTN_MAX_CHARS 5,000 are analysed (their first 5,000), not refused;
    the status says so. The absolute bound (100,000: junk) is still a refusal (test above)."""
    from attention_explorer.services import config

    config.configure(max_chars=5000)  # as the issue found it
    words = "the cat sat on the mat because it was tired . "
    text = (words * 300)[:12_000]
    out = run_analyze(text, tiny_models["bert"])
    handle = Handle.parse(out["handle"])
    assert handle is not None and out["text"] is no_update  # analysed; the box keeps all of it
    from attention_explorer.services.extraction import analyse

    key, expected = analyse(text[:5000], tiny_models["bert"])
    assert handle.key == key and handle.tokens == expected.seq_len
    from attention_explorer.services.store import share

    assert share.load_text(out["share"]["id"])["text"] == text[:5000]  # the link names what was analysed
    status = _alert_text(out["status"])
    assert "12,000 characters" in status and "at most 5,000" in status and "first 5,000 were analysed" in status
    pair = run_analyze("the cat", tiny_models["bert"], pair="b" * 6000)
    assert "second sentence has 6,000 characters" in _alert_text(pair["status"])


def test_a_cut_is_said_in_chinese(settings, tiny_models):
    from flask import Flask

    from attention_explorer.services import config

    config.configure(max_chars=5000)
    with Flask("zh").test_request_context("/?lang=zh"):
        out = run_analyze("the cat sat . " * 500, tiny_models["bert"])
    status = _alert_text(out["status"])
    assert Handle.parse(out["handle"]) is not None  # analysed, not refused
    assert "文本有 7,000 个字符" in status and "只分析了前 5,000 个" in status and "characters" not in status


def test_analyze_unknown_model_gives_an_alert_and_default_still_works(settings, default_model):
    from attention_explorer.services import config

    config.configure(models=settings.models + ("gpt2",))
    out = run_analyze(SENTENCE, "gpt2")  # offered but not on this machine
    assert out["handle"] is no_update and "could not be loaded" in _alert_text(out["status"])
    out = run_analyze(SENTENCE, "evil/not-offered")
    assert out["handle"] is no_update and "not one of the models" in _alert_text(out["status"])
    for junk in (None, 7, ["x"], "m" * 400):  # a model value that is not a model: the default is used
        assert Handle.parse(run_analyze(SENTENCE, junk)["handle"]).model_id == "all-MiniLM-L6-v2"


def test_analyze_unexpected_error_is_plain(settings, monkeypatch):
    monkeypatch.setattr(analyze, "analyse", lambda *a, **k: 1 / 0)
    out = run_analyze(SENTENCE)
    assert "unexpectedly" in _alert_text(out["status"]) and "ZeroDivision" not in str(out["status"])


def test_a_failure_after_the_analysis_is_explained_too(settings, default_model, monkeypatch):
    """What the page shows of a result (controls, status, link) is inside the same guard as the analysis."""
    monkeypatch.setattr(analyze, "summarise", lambda *a, **k: 1 / 0)
    out = run_analyze(SENTENCE)
    assert out["handle"] is no_update and "unexpectedly" in _alert_text(out["status"])


def test_examples_fill_the_boxes_and_analyze(settings, default_model, tiny_models):
    out = run_analyze("ignored", example=1)
    assert (out["text"], out["pair"], out["pair_open"]) == (EXAMPLES[1]["text"], EXAMPLES[1]["pair"], True)
    assert Handle.parse(out["handle"]).tokens == len(extract_attention(EXAMPLES[1]["text"],
                                                                       text_pair=EXAMPLES[1]["pair"]).tokens)
    assert run_analyze("", example=2)["text"] == "猫坐在垫子上因为它累了。"
    for junk in (99, -1, 1.5, "x", float("nan"), {"index": 1}, True):  # an index no button has: nothing happens
        out = run_analyze("", example=junk)
        assert all(v is no_update for v in out.values()), junk


def test_the_status_names_a_local_model_without_its_path(settings, tiny_models):
    out = run_analyze(SENTENCE, tiny_models["gpt2"])
    assert "tiny-gpt2" in str(out["status"]) and tiny_models["gpt2"] not in str(out["status"])
    assert Handle.parse(out["handle"]).model_id == tiny_models["gpt2"]  # the id itself is unchanged


def test_examples_open_the_view_they_are_about(settings, default_model, tiny_models):
    """Issue 19: the pronoun and agreement examples follow their word in Token focus, the sentence pair
    opens the heatmap on where sentence B looks in A, the comparison opens Compare."""
    tokens = extract_attention(EXAMPLES[0]["text"]).tokens
    out = run_analyze("", example=0)
    assert out["tab"] == ids.TAB_FOCUS and tokens[out["token"]] == "it"
    out = run_analyze("", example=3)
    assert out["tab"] == ids.TAB_FOCUS and extract_attention(EXAMPLES[3]["text"]).tokens[out["token"]] == "are"
    out = run_analyze("", example=1)
    assert out["tab"] == ids.TAB_HEATMAP and out["pair_filter"] == "B→A"
    out = run_analyze("", tiny_models["chinese"], example=2)  # a model that knows 它
    chinese = extract_attention(EXAMPLES[2]["text"], tiny_models["chinese"]).tokens
    assert out["tab"] == ids.TAB_FOCUS and chinese[out["token"]] == "它"
    out = run_analyze("", example=2)  # the bundled English model reads 它 as [UNK]: Token focus picks a token
    assert out["tab"] == ids.TAB_FOCUS and out["token"] is None
    assert run_analyze("", example=4)["tab"] == ids.TAB_COMPARE
    # the view the example opened follows its word ("are" is no pronoun: Token focus alone would pick "the")
    out = run_analyze("", example=3)
    focus = view(out["handle"], ids.TAB_FOCUS, token=out["token"])
    assert "“are”" in focus["focus_figure"]["layout"]["title"]["text"]


def test_warnings_for_unknown_tokens_and_truncation(settings, default_model, tiny_models):
    status = run_analyze("猫坐在垫子上因为它累了。")["status"]
    text = str(status)
    assert "unknown to this model" in text and "[UNK]" in text
    status = run_analyze(" ".join(["cat"] * 100), tiny_models["bert"])["status"]
    assert "cut to 64 tokens" in str(status) and "has 102" in str(status)


def test_grid_slices_the_cache_and_never_reruns_the_model(settings, default_model, monkeypatch):
    handle = run_analyze(SENTENCE)["handle"]
    monkeypatch.setattr(forward, "compute", lambda *a, **k: pytest.fail("model ran on a layer change"))
    monkeypatch.setattr("attention_explorer.services.model.inputs.validate_text", lambda *a, **k: pytest.fail("text re-validated"))
    monkeypatch.setattr("attention_explorer.services.extraction.fingerprint", lambda *a, **k: pytest.fail("model files stat-ed"))
    from attention_explorer.services.extraction import result_by_key

    result = result_by_key(handle["key"])[1]
    for layer in (0, 4):
        fig = view(handle, ids.TAB_GRID, layer=layer)["grid"]
        assert fig["data"][0]["type"] == "image"
        assert f"Layer {layer}" in fig["layout"]["title"]["text"]
        z = tile_of(fig, 7) / 254.0
        assert np.abs(z - result.attentions[layer, 7].astype(np.float32)).max() <= 0.5 / 254 + 1e-3
        assert fig["layout"]["meta"]["tokens"][8] == "it"


def test_each_tab_renders_only_while_open(settings, default_model):
    handle = run_analyze(SENTENCE)["handle"]
    outputs_of = {spec.tab: set(spec.outputs) for spec in registry.VIEWS}
    for tab in registry.TABS:
        out = view(handle, tab)
        drawn = {name for name, value in out.items() if value is not no_update}
        optional = {"notice", "token", "focus_options", "arc_start", "arc_start_max", "arc_start_wrap"}
        assert drawn - optional == outputs_of[tab] - optional
        assert drawn <= outputs_of[tab] | {"notice"}  # nothing of a closed tab
    # a change that the open view does not depend on draws nothing (e.g. a token picked while the grid is open)
    assert all(v is no_update for v in view(handle, ids.TAB_GRID, triggered={"token"}).values())
    assert all(v is no_update for v in view(handle, ids.TAB_ATLAS, triggered={"switches", "top_k"}).values())


def test_grid_carries_every_layer_for_the_browser(settings, default_model):
    """With no switch on, the grid holds every layer's picture and title, so the browser changes layer
    without a request; each picture is the one the server draws for that layer."""
    handle = run_analyze(SENTENCE)["handle"]
    meta = view(handle, ids.TAB_GRID, layer=2, head="4")["grid"]["layout"]["meta"]
    assert meta["key"] == handle["key"] and len(meta["sources"]) == len(meta["titles"]) == 6
    for layer in (0, 5):
        fig = view(handle, ids.TAB_GRID, layer=layer)["grid"]
        assert meta["sources"][layer] == fig["data"][0]["source"]
        assert meta["titles"][layer] == fig["layout"]["title"]["text"]
    assert meta["tile_names"][4] == "head 4" and meta["highlight"] == "#e4572e"
    # with a switch on the pictures differ from the stored ones: the server draws every change
    hidden = view(handle, ids.TAB_GRID, layer=2, switches=["hide"])["grid"]["layout"]["meta"]
    assert "sources" not in hidden and "rollout" not in str(hidden)


def test_view_requests_name_what_changed():
    assert router.changed_names({"changed": ["layer-slider.value", "view-tabs.active_tab"], "n": 3}) == {"layer", "tab"}
    everything = frozenset(router.INPUTS)
    for junk in (None, "x", {"changed": "layer-slider.value"}, {"changed": []}, {"changed": [5, None]},
                 {"changed": ["nope.value"]}, [1]):
        assert router.changed_names(junk) == everything  # unknown: draw as if all changed


def test_heatmap_head_and_mean(settings, default_model):
    handle = run_analyze(SENTENCE)["handle"]
    result = extract_attention(SENTENCE)
    fig = view(handle, ids.TAB_HEATMAP, layer=2, head="5")["heatmap"]
    assert np.abs(heatmap_levels(fig) / 254 - result.attentions[2, 5].astype(np.float32)).max() \
        <= 0.5 / 254 + 1e-6
    assert fig["layout"]["title"]["text"] == "Layer 2 · Head 5"
    # one head of the layer's grid picture: the browser shows the others by moving it
    assert fig["data"][0]["source"] == view(handle, ids.TAB_GRID, layer=2)["grid"]["data"][0]["source"]
    assert fig["layout"]["meta"]["titles"][7] == "Layer 2 · Head 7" and fig["layout"]["meta"]["head"] == 5
    fig = view(handle, ids.TAB_HEATMAP, layer=2, head=ids.HEAD_MEAN)["heatmap"]
    mean = np.mean([result.attentions[2, h].astype(np.float64) for h in range(12)], axis=0)
    assert np.abs(heatmap_levels(fig) / 254 - mean).max() <= 0.5 / 254 + 1e-5
    assert fig["layout"]["title"]["text"] == "Layer 2 · Mean of heads"
    assert fig["layout"]["meta"]["token_index"] == list(range(13))


def test_causal_heatmap_says_so(settings, tiny_models):
    handle = run_analyze(SENTENCE, tiny_models["gpt2"])["handle"]
    fig = view(handle, ids.TAB_HEATMAP, head="1")["heatmap"]
    assert "causal" in fig["layout"]["title"]["text"]
    assert "every arc bends back" in str(view(handle, ids.TAB_ARCS, head="1")["arc_hint"])
    z = heatmap_levels(fig)
    assert np.all(np.triu(z, 1) == 0)


def test_arcs_focus_and_hint(settings, default_model):
    handle = run_analyze(SENTENCE)["handle"]
    out = view(handle, ids.TAB_ARCS, layer=5, head="0", top_k=3, min_weight=0.0)
    assert out["arcs"]["layout"]["meta"]["arcs"] == 13 * 3
    assert "Arcs above: attends to a later token" in str(out["arc_hint"])
    out = view(handle, ids.TAB_ARCS, layer=5, head="0", top_k=3, min_weight=0.0, arc_focus=8)
    assert out["arcs"]["layout"]["meta"]["arcs"] == 3 and "“it”" in str(out["arc_hint"])
    assert out["arcs"]["layout"]["meta"]["focus"] == 8
    # with special tokens hidden, raw token 8 ("it") is the 8th unit shown (index 7)
    out = view(handle, ids.TAB_ARCS, layer=5, head="0", top_k=3, min_weight=0.0, arc_focus=8, switches=["hide"])
    assert out["arcs"]["layout"]["meta"]["focus"] == 7 and out["arcs"]["layout"]["meta"]["token_index"][7] == 8


def test_arcs_all_heads_one_trace_a_head_and_a_legend(settings, default_model):
    handle = run_analyze(SENTENCE)["handle"]
    out = view(handle, ids.TAB_ARCS, top_k=1, min_weight=0.0)
    fig = out["arcs"]
    lines = fig["layout"]["meta"]["lines"]
    assert [t["name"] for t in lines] == [str(h) for h in range(12)] == [str(t["head"]) for t in lines]
    assert [t["color"] for t in lines] == [_rgba(HEAD_COLORS[h], 0.6) for h in range(12)]
    assert fig["layout"]["meta"]["arcs"] == 12 * 13 and fig["layout"]["meta"]["heads"] == 12
    chips = [c for c in out["arc_legend"] if getattr(c, "style", None)]
    assert [c.children for c in chips] == [str(h) for h in range(12)]
    assert [getattr(c, "data-head") for c in chips] == [str(h) for h in range(12)]  # the browser hides / solos by it
    assert chips[5].style == {"borderColor": HEAD_COLORS[5]}  # framed in its arcs' colour, the text dark (contrast)
    one = view(handle, ids.TAB_ARCS, head="3", top_k=1, min_weight=0.0)
    assert one["arc_legend"] == [] and len(one["arcs"]["layout"]["meta"]["lines"]) <= 4 and len(one["arcs"]["data"]) == 1
    assert one["arcs"]["layout"]["meta"]["heads"] == 0


def _rgba(color: str, alpha: float) -> str:
    return "rgba({},{},{},{:g})".format(*(int(color[i:i + 2], 16) for i in (1, 3, 5)), alpha)


def test_views_without_an_analysis_say_what_to_do(settings, default_model, monkeypatch):
    assert "press analyze" in str(view(None, ids.TAB_HEATMAP)["heatmap"]).lower()
    for junk in ({"key": "nope"}, {"key": "attn-v1:" + "0" * 64, "model": "m"}, "x", [1], {"key": 5}):
        out = view(junk, ids.TAB_GRID)
        assert "Press Analyze" in str(out["grid"]), junk
    # a well-formed handle whose result and recipe are gone: "analyse again", in plain words
    gone = {"key": "attn-v1:" + "ab" * 32, "model": "all-MiniLM-L6-v2", "layers": 6, "heads": 12, "tokens": 13}
    assert "no longer on the server" in str(view(gone, ids.TAB_ARCS)["arcs"])


def test_an_evicted_result_is_computed_again_from_the_recipe(settings, default_model):
    from attention_explorer.services.store import cache

    handle = run_analyze(SENTENCE)["handle"]
    cache.clear_local()
    cache.cache.delete(handle["key"])  # the big result is evicted; the small recipe is still there
    out = view(handle, ids.TAB_HEATMAP, head="2")
    result = extract_attention(SENTENCE)
    assert np.abs(heatmap_levels(out["heatmap"]) / 254 - result.attentions[0, 2].astype(np.float32)
                  ).max() <= 0.5 / 254 + 1e-6
    assert out["handle"] is no_update  # same model files: same key


def test_a_view_failure_is_explained_not_raised(settings, default_model, monkeypatch):
    handle = run_analyze(SENTENCE)["handle"]
    monkeypatch.setattr(head_heatmap, "heatmap_figure", lambda *a, **k: 1 / 0)
    fig = view(handle, ids.TAB_HEATMAP)["heatmap"]
    assert "could not be drawn" in str(fig) and "ZeroDivision" not in str(fig)


def test_out_of_range_values_are_clamped_with_a_notice(settings, default_model):
    handle = run_analyze(SENTENCE)["handle"]
    out = view(handle, ids.TAB_HEATMAP, layer=99, head="12")
    assert out["heatmap"]["layout"]["title"]["text"] == "Layer 5 · Mean of heads"
    assert "no layer 99" in str(out["notice"]) and "no head 12" in str(out["notice"])
    assert view(handle, ids.TAB_HEATMAP, layer=1)["notice"] == ""


def test_first_page_embeds_the_first_analysis(settings, default_model):
    page = analyze.first_page(settings)
    assert Handle.parse(page["handle"]).tokens == 13 and "13 tokens" in str(page["status"])
    assert page["grid"]["layout"]["meta"]["tokens"][8] == "it"
    assert page["layer_max"] == 5 and page["head"] == ids.HEAD_ALL


def test_decode_helper_reads_typed_arrays():
    from attention_explorer.components.figures import typed_array

    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(decode(typed_array(a)), a)


def test_too_many_new_analyses_are_refused_in_plain_words(settings, default_model):
    from attention_explorer.services import config
    from attention_explorer.services.web import ratelimit

    ratelimit.reset()
    config.configure(rate_limit="1/minute")
    try:
        first = run_analyze("The dog ran in the park.")
        assert Handle.parse(first["handle"]) is not None
        refused = run_analyze("A new text the server has not seen.", current=first["handle"])
        status = str(refused["status"])
        assert refused["handle"] is no_update and "Too many new analyses" in status and " s " in status
        assert "previous analysis" in status  # the page keeps what it shows
        again = run_analyze("The dog ran in the park.")  # cached: costs no forward pass, never limited
        assert again["handle"] == first["handle"]
    finally:
        config.configure(rate_limit="")
        ratelimit.reset()


def test_a_long_text_b_is_cut_and_compare_says_so(settings, tiny_models):
    from attention_explorer.callbacks.compare import analyse_b
    from attention_explorer.services import config

    config.configure(max_chars=5000)
    a = run_analyze("the cat sat", tiny_models["bert"])["handle"]
    handle, status, link = analyse_b({"text_b": "the dog ran . " * 500, "model_b": None, "handle": a})
    assert Handle.parse(handle).model_id == tiny_models["bert"]
    assert "text B has 6,999 characters" in str(status)  # (text B is stripped first) and len(link["text"]) == 5000
