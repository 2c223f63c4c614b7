"""Issue 4 in the dashboard: views with the switches, token focus, atlas and overview, vs independent numpy."""

from __future__ import annotations

import numpy as np
import pytest
from dash import no_update

from attention_explorer.components import ids
from attention_explorer.services import extract_attention
from attention_explorer.services.analyses.views import View, ViewOptions
from tests.callbacks.test_callbacks import SENTENCE, run_analyze, view
from tests.components.test_figures import decode, decode_image, tile_of


@pytest.fixture
def handle(settings, default_model):
    return run_analyze(SENTENCE)["handle"]


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


def test_token_focus_top_k_matches_independent_loop(handle):
    result = extract_attention(SENTENCE)
    it = result.tokens.index("it")
    out = view(handle, ids.TAB_FOCUS, focus_k=3)
    assert out["token"] == it and out["focus_value"] == it  # the pronoun by default, stored and shown
    assert out["focus_options"][it]["label"] == "it (#8)"
    chosen = view(handle, ids.TAB_FOCUS, token=2)
    assert chosen["token"] is no_update and chosen["focus_value"] == 2
    assert "“cat”" in chosen["focus_figure"]["layout"]["title"]["text"]
    out = view(handle, ids.TAB_FOCUS, token=it, focus_k=3)
    figure, tables = out["focus_figure"], out["focus_tables"]
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


def test_token_focus_with_switches_against_the_full_transform(handle):
    """The focus rows and columns (sliced before transforming when no switch is on) equal slicing the
    fully transformed model, with switches on and off."""
    result = extract_attention(SENTENCE)
    for switches in ([], ["hide"], ["merge"], ["hide", "merge"]):
        v = View(result, ViewOptions(hide_special="hide" in switches, merge_words="merge" in switches))
        unit = v.unit_of(8)
        looks, looked_at = v.focus(unit)
        full = v.apply(result.attentions.astype(np.float32))
        np.testing.assert_allclose(looks, full[:, :, unit, :].mean(axis=1), atol=1e-5)
        np.testing.assert_allclose(looked_at, full[:, :, :, unit].mean(axis=1), atol=1e-5)
        out = view(handle, ids.TAB_FOCUS, token=8, switches=switches)
        np.testing.assert_allclose(decode(out["focus_figure"]["data"][0]["z"]), looks, atol=1e-5)
    hidden = view(handle, ids.TAB_FOCUS, token=0, switches=["hide"])  # [CLS] is hidden: the pronoun is picked
    assert hidden["token"] == 8 and hidden["focus_value"] == 8


def test_atlas_rows_labels_and_legend(handle):
    out = view(handle, ids.TAB_ATLAS, metric="previous", window=3, head="2")
    figure, rows, legend = out["atlas_map"], out["atlas_table"].data, out["atlas_legend"]
    assert out["atlas_table"].id == ids.ATLAS_TABLE
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
    # another metric or head: the map changes, the table and legend (same measurements) are not sent again
    assert out["atlas_table_for"] == f"{handle['key']}:3:raw:encoder"
    again = view(handle, ids.TAB_ATLAS, triggered={"metric"}, metric="entropy", window=3,
                 atlas_table_for=out["atlas_table_for"])
    assert again["atlas_table"] is no_update and again["atlas_legend"] is no_update
    assert "entropy" in again["atlas_map"]["layout"]["title"]["text"]
    reopened = view(handle, ids.TAB_ATLAS, triggered={"tab"}, window=3, atlas_table_for=out["atlas_table_for"])
    assert reopened["atlas_table"] is no_update  # the table in the page is still right: not re-sent
    other_window = view(handle, ids.TAB_ATLAS, triggered={"window"}, window=5, atlas_table_for=out["atlas_table_for"])
    assert other_window["atlas_table_for"] == f"{handle['key']}:5:raw:encoder" and other_window["atlas_table"].data != rows


def test_overview_one_image_and_geometry(handle):
    out = view(handle, ids.TAB_OVERVIEW, layer=1, head="4")
    figure = out["overview"]
    assert [t["type"] for t in figure["data"]] == ["image", "heatmap", "scatter", "scatter"]  # + head, layer numbers
    assert figure["data"][2]["text"] == [str(h) for h in range(12)] and figure["data"][3]["text"] == [str(l) for l in range(6)]
    meta = figure["layout"]["meta"]
    assert meta["layers"] == 6 and meta["heads"] == 12 and meta["stride"] == 14 and meta["cells"] == 13
    image = decode_image(figure["data"][0]["source"])
    result = extract_attention(SENTENCE)
    tile = image[3 * 14:3 * 14 + 13, 5 * 14:5 * 14 + 13]
    expected = np.rint(result.attentions[3, 5].astype(np.float64) * 254)
    assert np.abs(tile.astype(int) - expected).max() <= 1
    assert (image[13, :] == 255).all() and (image[:, 13] == 255).all()  # gaps between tiles
    assert figure["layout"]["shapes"][0]["x0"] == 4 * 14 - 0.5 and figure["layout"]["shapes"][0]["y0"] == 14 - 0.5


def test_overview_pools_long_texts_from_float16(settings, default_model):
    text = " ".join(["the cat sat on the mat"] * 20)
    handle = run_analyze(text)["handle"]
    result = extract_attention(text)
    figure = view(handle, ids.TAB_OVERVIEW)["overview"]
    meta = figure["layout"]["meta"]
    seq = result.seq_len
    block = -(-seq // 32)
    assert meta["block"] == block and meta["cells"] == -(-seq // block)
    image = decode_image(figure["data"][0]["source"])
    padded = np.zeros((meta["cells"] * block,) * 2)
    padded[:seq, :seq] = result.attentions[2, 7].astype(np.float64)
    expected = padded.reshape(meta["cells"], block, meta["cells"], block).max(axis=(1, 3))
    s = meta["stride"]
    tile = image[2 * s:2 * s + meta["cells"], 7 * s:7 * s + meta["cells"]]
    assert np.abs(tile / 254 - expected).max() <= 0.5 / 254 + 1e-3


def test_value_norm_mode_in_every_view(handle):
    """Weighted by value norm: α_ij ‖f(x_j)‖, rows renormalised, computed here by hand from the stored
    attention and norms; the views follow it and the heatmap's hover gets each row's sum."""
    from tests.components.test_figures import heatmap_levels

    result = extract_attention(SENTENCE)
    att = result.attentions.astype(np.float64)
    norms = result.value_norms.astype(np.float64)
    weighted = att * norms[:, :, None, :]
    shown = weighted / weighted.sum(-1, keepdims=True)
    out = view(handle, ids.TAB_HEATMAP, layer=3, head="5", mode="value")
    fig = out["heatmap"]
    assert np.abs(heatmap_levels(fig) / 254 - shown[3, 5]).max() <= 0.5 / 254 + 1e-4
    np.testing.assert_allclose(fig["layout"]["meta"]["row_scale"], weighted[3, 5].sum(-1), rtol=1e-4)
    assert "weighted by value norm" in fig["layout"]["title"]["text"]
    # [CLS] and [SEP] hand on small vectors: they lose weight against the raw attention (Kobayashi et al.)
    special = np.flatnonzero(result.special_mask)
    assert shown[:, :, :, special].sum(-1).mean() < att[:, :, :, special].sum(-1).mean()
    grid = view(handle, ids.TAB_GRID, layer=3, mode="value")["grid"]
    assert "sources" not in grid["layout"]["meta"]  # the stored pictures are raw: the server draws
    assert np.abs(tile_of(grid, 5) / 254 - shown[3, 5]).max() <= 0.5 / 254 + 1e-4
    focus = view(handle, ids.TAB_FOCUS, token=8, mode="value")["focus_figure"]
    np.testing.assert_allclose(decode(focus["data"][0]["z"]), shown[:, :, 8, :].mean(axis=1), atol=1e-5)
    atlas = view(handle, ids.TAB_ATLAS, mode="value", metric="delimiter")
    raw_atlas = view(handle, ids.TAB_ATLAS, mode="raw", metric="delimiter")
    assert atlas["atlas_table_for"].endswith(":value:encoder")
    assert decode(atlas["atlas_map"]["data"][0]["z"]).mean() < decode(raw_atlas["atlas_map"]["data"][0]["z"]).mean()
    arcs = view(handle, ids.TAB_ARCS, head="5", mode="value", top_k=1, min_weight=0.0)["arcs"]
    assert arcs["layout"]["meta"]["arcs"] == 13


def test_value_norm_mode_says_when_a_model_has_none(handle, monkeypatch):
    import dataclasses

    from attention_explorer.callbacks import router
    from attention_explorer.services.extraction import result_by_key

    key, result = result_by_key(handle["key"])
    bare = dataclasses.replace(result, value_norms=None, value_norms_reason="its attention layout is unknown")
    monkeypatch.setattr(router, "result_by_key", lambda k, *args, **kwargs: (key, bare))
    out = view(handle, ids.TAB_HEATMAP, head="1", mode="value")
    assert "not available for this model: its attention layout is unknown" in str(out["heatmap"])
    assert view(handle, ids.TAB_HEATMAP, head="1", mode="raw")["heatmap"]["data"]  # the other modes still work


def test_inside_a_head_tab(handle):
    result = extract_attention(SENTENCE)
    out = view(handle, ids.TAB_INSIDE, layer=2, head="5")
    assert out["token"] == 8 and out["inside_value"] == 8  # "it", as Token focus opens on it
    assert out["inside_options"][8] == {"label": "it (#8)", "value": 8}
    bars = {t["name"]: t for t in out["inside_weights"]["data"] if t["type"] == "bar"}
    np.testing.assert_allclose(bars["5. weight"]["x"], result.attentions[2, 5, 8].astype(np.float32), atol=1e-3)
    np.testing.assert_allclose(bars["6. ‖f(x)‖"]["x"], result.value_norms[2, 5], rtol=1e-5)
    np.testing.assert_allclose(bars["7. weight × ‖f(x)‖"]["x"], np.asarray(bars["5. weight"]["x"]) * result.value_norms[2, 5],
                               rtol=1e-4)
    vectors = out["inside_vectors"]["data"]
    q, keys, products = (decode(t["z"]) for t in vectors)
    np.testing.assert_allclose(products, keys * q, rtol=1e-5, atol=1e-6)
    scores = np.asarray(bars["4. score q·k × scale"]["x"])
    np.testing.assert_allclose(scores, (keys @ q[0]) / np.sqrt(keys.shape[1]), rtol=1e-4, atol=1e-4)
    status = str(out["inside_status"])
    assert "q·k × 1/√d" in status and "the model's own attention output for this token within" in status
    chosen = view(handle, ids.TAB_INSIDE, layer=2, head=ids.HEAD_ALL, token=3)
    assert chosen["token"] is no_update and "query “sat”" in str(chosen["inside_status"])
    assert "Showing head 0" in str(chosen["inside_status"])


def test_inside_a_head_says_exactly_rather_than_within_0():
    from flask import Flask

    from attention_explorer.callbacks.inside import agreement

    assert agreement(0.0) == "exactly" and agreement(3.2e-8) == "within 3e-08"
    with Flask("zh").test_request_context("/?lang=zh"):
        assert agreement(0.0) == "完全一致" and agreement(3.2e-8) == "相差不超过 3e-08"


def test_inside_a_causal_head_marks_the_masked_keys(settings, tiny_models):
    handle = run_analyze(SENTENCE, tiny_models["gpt2"])["handle"]
    out = view(handle, ids.TAB_INSIDE, layer=1, head="2", token=3)
    masked = [t for t in out["inside_weights"]["data"] if t["type"] == "scatter" and t.get("text", [""])[0] == "masked"]
    assert masked and masked[0]["y"] == list(range(4, handle["tokens"]))  # the keys after the query
    bars = {t["name"]: t for t in out["inside_weights"]["data"] if t["type"] == "bar"}
    assert all(w == 0 for w in bars["5. weight"]["x"][4:]) and all(s == 0 for s in bars["4. score q·k × scale"]["x"][4:])


def test_compares_status_line_quotes_long_texts_short():
    """A 4,096-token text is quoted by its start in Compare's status line (the pictures stay near the top),
    and the words where the texts differ are named up to a dozen, then counted."""
    from flask import Flask

    from attention_explorer.callbacks.compare import quoted, word_list

    long = "The cat sat on the mat because it was tired. " * 400
    shown = quoted(long)
    assert len(shown) <= 80 and shown.endswith("…") and long.startswith(shown[:-1])
    assert quoted("  a\n b  ") == "a b"
    words = [f"w{i}" for i in range(20)]
    assert word_list(words) == ", ".join(words[:12]) + " and 8 more"
    assert word_list(words[:3]) == "w0, w1, w2"
    with Flask("zh").test_request_context("/?lang=zh"):
        assert word_list(words).endswith("，另有 8 处")
