"""Issue 13 in the page: encoder-decoder models (tiny random BART, T5, Marian), decoder-only
continuations (tiny GPT-2) and sentence-pair filters, through the analyze and router callbacks, with the
numbers shown checked against a direct transformers pass or the stored attention sliced by hand."""

from __future__ import annotations

import numpy as np
import pytest
from dash import no_update

from attention_explorer.callbacks import analyze, exports, registry, router, urlstate
from attention_explorer.callbacks.boundary import Handle
from attention_explorer.components import ids
from attention_explorer.components.figures import decoded_arc_lines
from attention_explorer.services.extraction import result_by_key
from tests.components.test_figures import decode, heatmap_levels, tile_of
from tests.services.test_seq2seq import SEQ2SEQ, SOURCE, TARGET, direct_forward

ALL = frozenset(router.INPUTS)
TABS = (ids.TAB_GRID, ids.TAB_HEATMAP, ids.TAB_ARCS, ids.TAB_OVERVIEW, ids.TAB_ATLAS, ids.TAB_FOCUS, ids.TAB_INSIDE)
FAILED = ("could not be drawn", "Traceback")



def run(text, model, **values):
    base = {"text": text, "model": model, "pair": None, "layer": 0, "head": ids.HEAD_ALL, "current": None}
    return analyze.analyze({**base, **values})


def view(handle, tab, triggered=ALL, **values):
    return router.route({"handle": handle, "tab": tab, "layer": 0, "head": ids.HEAD_ALL, "mode": "raw",
                         "switches": [], **values}, frozenset(triggered))


def shown_text(out) -> str:
    return str({k: v for k, v in out.items() if v is not no_update})


def test_an_encoder_decoder_model_gets_a_target_box_and_three_kinds(s2s):
    out = run(SOURCE, s2s["bart"], target=TARGET)
    assert out["target_wrap"] == {} and out["kind_wrap"] == {} and out["continue_wrap"] == {"display": "none"}
    assert [o["value"] for o in out["kind_options"]] == ["encoder", "decoder", "cross"] and out["kind"] == "encoder"
    assert out["gen_tab"] == {"display": "none"} and out["pair_wrap"] == {"display": "none"}
    key = Handle.parse(out["handle"]).key
    _key, result = result_by_key(key)
    assert result.target_text == TARGET and not result.generated
    assert out["share"]["target"] == TARGET  # the link carries the target
    kept = run(SOURCE, s2s["bart"], target=TARGET, kind="cross")
    assert kept["kind"] == "cross"  # a kind the model has stays chosen


def test_the_target_a_model_wrote_is_shown_as_text(s2s):
    """Issue 19: without a target, BART writes its own; the status shows it as text (decoded here again
    from its token ids with the model's tokenizer), not only as a count of tokens. A given target is in
    its box already: not repeated."""
    from attention_explorer.services.model.loading import get_model

    out = run(SOURCE, s2s["bart"], target="")
    _key, result = result_by_key(Handle.parse(out["handle"]).key)
    assert result.generated
    written = get_model(s2s["bart"]).tokenizer.decode(list(result.target_ids), skip_special_tokens=True)
    assert written.strip() and "The model wrote:" in str(out["status"]) and f"“{written}”" in str(out["status"])
    given = run(SOURCE, s2s["bart"], target=TARGET)
    assert "The model wrote" not in str(given["status"])


def test_the_layer_slider_and_heads_follow_the_kind_of_attention(s2s):
    """Issue 19: the tiny BART's encoder has 2 layers of 4 heads, its decoder (and cross-attention) 3
    layers of 2 heads: the slider and head selector fit the kind chosen, and the page gets every kind's
    dimensions for the browser to fit them when the kind changes."""
    encoder = run(SOURCE, s2s["bart"], target=TARGET, layer=2, head="3", kind="encoder")
    assert (encoder["layer_max"], encoder["layer"], list(encoder["layer_marks"])) == (1, 1, [0, 1])
    assert [o["value"] for o in encoder["head_options"]][2:] == ["0", "1", "2", "3"] and encoder["head"] == "3"
    decoder = run(SOURCE, s2s["bart"], target=TARGET, layer=2, head="3", kind="decoder")
    assert (decoder["layer_max"], decoder["layer"]) == (2, 2)
    assert [o["value"] for o in decoder["head_options"]][2:] == ["0", "1"] and decoder["head"] == ids.HEAD_ALL
    dims = decoder["kind_dims"]
    assert {k: (d["layers"], d["heads"], len(d["head_options"])) for k, d in dims.items()} == {
        "encoder": (2, 4, 6), "decoder": (3, 2, 4), "cross": (3, 2, 4)}
    assert decoder["kind_dims"] == encoder["kind_dims"]
    from urllib.parse import urlencode

    search = "?" + urlencode({"text": SOURCE, "model": s2s["bart"], "target": TARGET, "kind": "encoder", "layer": 2,
                              "head": 3})
    url = analyze.from_url({"url": {"search": search}})
    assert (url["kind"], url["layer_max"], url["layer"], url["head"]) == ("encoder", 1, 1, "3")


def test_a_model_with_one_kind_needs_no_dimensions_by_kind(settings, tiny_models):
    assert run(SOURCE, tiny_models["bert"])["kind_dims"] is None


def test_other_models_hide_the_target_and_ignore_a_stale_one(settings, tiny_models):
    out = run(SOURCE, tiny_models["bert"], target="left from another model", kind="cross")
    assert Handle.parse(out["handle"]) is not None  # not refused: the hidden box is not read
    assert out["target_wrap"] == {"display": "none"} and out["kind_wrap"] == {"display": "none"}
    assert out["kind"] == "encoder" and [o["value"] for o in out["kind_options"]] == ["encoder"]
    gpt = run(SOURCE, tiny_models["gpt2"])
    assert gpt["kind"] == "decoder" and gpt["continue_wrap"] == {} and gpt["target_wrap"] == {"display": "none"}


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_every_view_draws_every_kind(s2s, name):
    out = run(SOURCE, s2s[name])  # no target: the model writes one
    handle = out["handle"]
    for kind in ("encoder", "decoder", "cross"):
        for tab in TABS:
            for head in (ids.HEAD_ALL, "1", ids.HEAD_MEAN):
                drawn = view(handle, tab, kind=kind, head=head, layer=1)
                text = shown_text(drawn)
                assert not any(f in text for f in FAILED), (kind, tab, head, text[:300])
                figure = drawn[registry.BY_TAB[tab].main]  # the tab's main figure, drawn (not left as it was)
                assert figure is not no_update and figure.get("data"), (kind, tab, head, text[:300])


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_the_cross_attention_heatmap_is_rectangular_and_equals_a_direct_pass(s2s, name):
    out = run(SOURCE, s2s[name], target=TARGET)
    key, result = result_by_key(Handle.parse(out["handle"]).key)
    _enc, dec, cross = direct_forward(s2s[name], SOURCE, result.target_ids)
    tgt, src = len(result.target_tokens), len(result.tokens)
    assert cross.shape[2:] == (tgt, src) and tgt != src
    for layer, head in ((0, 0), (1, 1)):
        fig = view(out["handle"], ids.TAB_HEATMAP, kind="cross", layer=layer, head=str(head))["heatmap"]
        meta = fig["layout"]["meta"]
        assert len(meta["queries"]) == tgt and len(meta["keys"]) == src  # target on y, source on x
        levels = heatmap_levels(fig)
        assert levels.shape == (tgt, src)
        assert np.abs(levels / 254 - cross[layer, head]).max() <= 0.5 / 254 + 2e-3
        decoder = heatmap_levels(view(out["handle"], ids.TAB_HEATMAP, kind="decoder", layer=layer,
                                      head=str(head))["heatmap"])
        assert decoder.shape == (tgt, tgt) and np.abs(decoder / 254 - dec[layer, head]).max() <= 0.5 / 254 + 2e-3
        assert np.triu(decoder, 1).max() == 0  # causal
    # the grid of a layer: every head's tile rectangular and equal to the direct pass
    grid = view(out["handle"], ids.TAB_GRID, kind="cross", layer=1)["grid"]
    meta = grid["layout"]["meta"]
    assert (meta["cells_y"], meta["cells_x"]) == (tgt, src) and meta["attention_kind"] == "cross"
    assert len(meta["sources"]) == cross.shape[0]  # the decoder's layers (BART here has more than its encoder)
    for h in range(cross.shape[1]):
        assert np.abs(tile_of(grid, h) / 254 - cross[1, h]).max() <= 0.5 / 254 + 2e-3


def test_cross_arcs_join_two_rows_and_follow_the_top_weights(s2s):
    out = run(SOURCE, s2s["marian"], target=TARGET)
    _key, result = result_by_key(Handle.parse(out["handle"]).key)
    fig = view(out["handle"], ids.TAB_ARCS, kind="cross", head="1", layer=1, top_k=1, min_weight=0.0)["arcs"]
    targets, sources = fig["data"][0], fig["data"][1]
    assert len(targets["text"]) == len(result.target_tokens) and len(sources["text"]) == len(result.tokens)
    assert set(decode(targets["y"]).tolist()) == {1.0} and set(decode(sources["y"]).tolist()) == {0.0}
    xq, xk = decode(targets["x"]), decode(sources["x"])
    # one line a target token (top 1), from its x to the x of its heaviest source token
    lines = decoded_arc_lines(fig)  # drawn on the page's canvas
    expected = np.argmax(result.cross_attentions[1, 1].astype(np.float32), axis=-1)
    seen = {}
    for trace in lines:
        xs = trace["x"].reshape(-1, trace["points"])
        for q, k, row in zip(trace["queries"], trace["keys"], xs):
            assert k == expected[q]
            seen[q] = (row[0], row[-2])
    assert sorted(seen) == list(range(len(result.target_tokens)))
    for q, (start, end) in seen.items():
        assert start == pytest.approx(xq[q]) and end == pytest.approx(xk[expected[q]])


def test_what_is_not_defined_for_cross_attention_says_why(s2s):
    out = run(SOURCE, s2s["bart"], target=TARGET)
    rolled = view(out["handle"], ids.TAB_GRID, kind="cross", mode="rollout")["grid"]
    assert "Rollout is not defined for cross-attention" in str(rolled)
    # a tab that draws raw attention whatever the mode is not stopped by it, nor is the whole analysis's export
    inside = view(out["handle"], ids.TAB_INSIDE, kind="cross", mode="rollout", head="1", layer=1)
    assert "Rollout is not defined" not in shown_text(inside) and inside["inside_weights"]["data"]
    assert "the mode and switches do not apply to this tab" in str(inside["inside_status"])
    whole, status, _picture = exports.export("json", {"handle": out["handle"], "tab": ids.TAB_GRID, "kind": "cross",
                                            "mode": "rollout", "layer": 0, "head": ids.HEAD_ALL, "switches": []})
    assert status == "" and whole["filename"].endswith("_analysis.json")
    distance = view(out["handle"], ids.TAB_ATLAS, kind="cross", metric="distance")
    assert "positions cannot be compared" in str(distance["atlas_map"])
    entropy = view(out["handle"], ids.TAB_ATLAS, kind="cross", metric="entropy")
    assert entropy["atlas_map"]["data"][0]["type"] == "heatmap"
    rows = entropy["atlas_table"].data
    cross = result_by_key(Handle.parse(out["handle"]).key)[1].cross_attentions
    assert len(rows) == cross.shape[0] * cross.shape[1]
    assert all(r["distance"] is None and r["entropy"] is not None for r in rows)
    focus = view(out["handle"], ids.TAB_FOCUS, kind="cross")
    assert "no “who looks at it” table" in str(focus["focus_tables"])
    # weighted by value norm: the cross-attention times the source tokens' value norms, rows renormalised
    _key, result = result_by_key(Handle.parse(out["handle"]).key)
    valued = heatmap_levels(view(out["handle"], ids.TAB_HEATMAP, kind="cross", mode="value", head="1")["heatmap"])
    weighted = result.cross_attentions[0, 1].astype(np.float64) * result.cross_value_norms[0, 1][None, :]
    assert np.abs(valued / 254 - weighted / weighted.sum(-1, keepdims=True)).max() <= 0.5 / 254 + 2e-3


def test_cross_attention_entropy_in_the_atlas_is_by_hand(s2s):
    out = run(SOURCE, s2s["bart"], target=TARGET)
    _key, result = result_by_key(Handle.parse(out["handle"]).key)
    rows = view(out["handle"], ids.TAB_ATLAS, kind="cross")["atlas_table"].data
    att = result.cross_attentions.astype(np.float64)
    by_hand = (-(att * np.log(np.where(att > 0, att, 1))).sum(-1) / np.log(att.shape[-1])).mean(-1)
    assert len(rows) == att.shape[0] * att.shape[1]
    for row in rows:
        assert row["entropy"] == pytest.approx(by_hand[row["layer"], row["head"]], abs=2e-3)


def test_a_continuation_opens_generation_and_step_t_is_its_row(settings, tiny_models):
    from attention_explorer.services import config as cfg

    cfg.configure(max_new_tokens=8)
    prompt = "The cat sat on the"
    out = run(prompt, tiny_models["gpt2"], **{"continue": 4})
    assert out["tab"] == ids.TAB_GENERATION and out["gen_tab"] == {} and out["share"]["continue"] == 4
    key, result = result_by_key(Handle.parse(out["handle"]).key)
    steps = result.generation_steps
    assert out["step_max"] == steps and 1 <= steps <= 4
    p = result.prompt_length
    for step in range(1, steps + 1):
        drawn = view(out["handle"], ids.TAB_GENERATION, step=step, layer=1)
        heads = drawn["gen_heads"]
        z = decode(heads["data"][0]["z"])
        assert z.shape == (result.num_heads, p + step)
        np.testing.assert_allclose(z, result.attentions[1, :, p + step - 1, :p + step].astype(np.float32), atol=1e-6)
        layers = decode(drawn["gen_layers"]["data"][0]["z"])
        np.testing.assert_allclose(layers, result.attentions[:, :, p + step - 1, :p + step].astype(np.float32)
                                   .mean(axis=1), atol=1e-6)
        assert heads["layout"]["meta"]["generated_from"] == p
    too_far = view(out["handle"], ids.TAB_GENERATION, step=999)  # clamped to the last step, no error
    assert decode(too_far["gen_heads"]["data"][0]["z"]).shape[1] == p + steps
    plain = run(prompt, tiny_models["gpt2"])
    assert plain["gen_tab"] == {"display": "none"}
    assert "no generated tokens" in str(view(plain["handle"], ids.TAB_GENERATION)["gen_heads"])


def test_pair_filters_keep_exactly_the_sub_block_in_every_view(settings, tiny_models):
    out = run("the cat sat on the mat", tiny_models["bert"], pair="it was tired")
    assert out["pair_wrap"] == {}
    _key, result = result_by_key(Handle.parse(out["handle"]).key)
    segments = np.array([s if s is not None else -1 for s in result.segment_ids])
    att = result.attentions[1, 2].astype(np.float32)
    for name, (qs, ks) in {"A→A": (0, 0), "A→B": (0, 1), "B→A": (1, 0), "B→B": (1, 1)}.items():
        expected = np.where((segments[:, None] == qs) & (segments[None, :] == ks), att, 0.0)
        levels = heatmap_levels(view(out["handle"], ids.TAB_HEATMAP, pair=name, layer=1, head="2")["heatmap"])
        assert np.abs(levels / 254 - expected).max() <= 0.5 / 254 + 2e-3, name
        for tab in TABS:
            drawn = view(out["handle"], tab, pair=name)
            assert not any(f in shown_text(drawn) for f in FAILED)
            assert drawn[registry.BY_TAB[tab].main] is not no_update, (name, tab)
    share = view(out["handle"], ids.TAB_ATLAS, pair="A→B")["atlas_map"]
    z = decode(share["data"][0]["z"])
    a, b = segments == 0, segments == 1
    by_hand = result.attentions.astype(np.float64)[:, :, a][:, :, :, b].sum(-1).mean(-1)
    np.testing.assert_allclose(z, by_hand, atol=1e-4)


def test_the_url_carries_target_continuation_kind_filter_and_step():
    state = urlstate.parse("?text=hi&target=salut&kind=cross&filter=AB&step=3&continue=5&view=generation")
    assert state.target == "salut" and state.steps == 5
    assert state.controls["kind"] == "cross" and state.controls["pair"] == "A→B" and state.controls["step"] == "3"
    assert state.controls["tab"] == ids.TAB_GENERATION
    junk = urlstate.parse("?text=hi&kind=sideways&filter=ZZ&continue=-4")
    assert "kind" not in junk.controls and "pair" not in junk.controls and junk.steps is None


def test_a_url_opens_a_seq2seq_analysis_on_cross_attention(s2s):
    search = "?" + __import__("urllib.parse").parse.urlencode(
        {"text": SOURCE, "model": s2s["bart"], "target": TARGET, "kind": "cross", "view": "heatmap", "head": "1"})
    out = analyze.from_url({"url": {"search": search}, "current": None, "shared": None})
    assert out["target"] == TARGET and out["kind"] == "cross" and out["tab"] == ids.TAB_HEATMAP
    _key, result = result_by_key(Handle.parse(out["handle"]).key)
    assert result.target_text == TARGET
