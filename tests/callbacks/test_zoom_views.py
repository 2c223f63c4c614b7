"""Issue 18 item 1, beyond the heatmap: a box zoom of the head grid (one region in every head's tile), of
Compare (both panels when A and B line up, else the panel zoomed) and of the overview (that head's heatmap,
zoomed), each exact: pooled finer while large, single tokens with their names at the end.

Every number is checked against a plain numpy softmax of the result's kept queries and keys
(``by_hand`` of tests/callbacks/test_long_views.py), never against ``services.ondemand``.
"""

from __future__ import annotations

import numpy as np
import pytest

from attention_explorer.callbacks import registry
from attention_explorer.callbacks.boundary import Dims, Handle, ViewState, Zoom
from attention_explorer.callbacks.router import handle_of
from attention_explorer.components import ids
from attention_explorer.services import config
from attention_explorer.components.figures import safe_label
from attention_explorer.services.analyses.views import View, ViewOptions
from attention_explorer.services.extraction import analyse
from tests import tiny_models as tm
from tests.callbacks.test_callbacks import run_analyze, view
from tests.callbacks.test_long_views import N, _result, by_hand, long_handle  # noqa: F401 (a fixture)
from tests.components.test_figures import decode


def grid_values(fig: dict) -> np.ndarray:
    meta = fig["layout"]["meta"]
    cx, cy = meta["cells_x"], meta["cells_y"]
    return decode(meta["values"]).reshape(len(meta["tiles"]), cy, cx)


def test_a_box_zoom_in_one_grid_tile_draws_that_region_exact_in_every_tile(long_handle):
    """The zoom (token ranges, as assets/29-zoom.js sends them for a box in any tile) gives every head the
    same 20 x 24 region, one cell a token, each weight the numpy softmax's, the queries named beside the
    tiles and the region said in the title; the grid stays zoomable."""
    key, result = _result(long_handle)
    zoom = {"key": key, "view": "grid", "x": [1999.5, 2023.5], "y": [3000.4, 3019.5]}
    fig = view(long_handle, ids.TAB_GRID, layer=1, head="2", zoom=zoom)["grid"]
    meta, layout = fig["layout"]["meta"], fig["layout"]
    assert meta["block"] == 1 and (meta["cells_y"], meta["cells_x"]) == (20, 24)
    assert {k: meta["zoom"][k] for k in ("r0", "r1", "c0", "c1", "zoomed")} == {
        "r0": 3000, "r1": 3020, "c0": 2000, "c1": 2024, "zoomed": True}
    values = grid_values(fig)
    for head in range(result.num_heads):
        expected = by_hand(result, 1, head)[3000:3020, 2000:2024]
        assert np.abs(values[head] - expected).max() < 1e-6
    labels = fig["data"][3]["text"]  # the tokens beside each row of tiles: the region's queries
    assert labels[:20] == meta["tokens"][3000:3020] and len(meta["tokens"]) == N
    assert "exact tile: tokens 3000–3019 → 2000–2023" in layout["title"]["text"]
    assert layout["dragmode"] == "zoom" and not layout["xaxis"]["fixedrange"]


def test_a_wide_grid_zoom_is_pooled_finer_and_kept_on_a_layer_change(long_handle):
    """1,024 x 512 tokens: pooled in 8 x 8 blocks (at most 128 cells a side), each cell the block's exact max;
    another layer (and head) keeps the region (the person is comparing that part across layers)."""
    key, result = _result(long_handle)
    zoom = {"key": key, "view": "grid", "x": [511.5, 1023.5], "y": [1023.5, 2047.5]}
    for layer, head in ((0, "0"), (1, "3")):
        fig = view(long_handle, ids.TAB_GRID, layer=layer, head=head, zoom=zoom)["grid"]
        meta = fig["layout"]["meta"]
        assert meta["block"] == 8 and (meta["cells_y"], meta["cells_x"]) == (128, 64)
        assert "tokens 1024–2047 → 512–1023" in fig["layout"]["title"]["text"]
        values = grid_values(fig)
        for h in (0, 3):
            expected = by_hand(result, layer, h)[1024:2048, 512:1024].reshape(128, 8, 64, 8).max(axis=(1, 3))
            assert np.abs(values[h] - expected).max() < 1e-6


def test_a_zoom_belongs_to_the_figure_it_was_made_on(long_handle):
    """One zoom at a time: the grid's zoom leaves the heatmap whole and the heatmap's the grid; a zoom of
    another analysis (an old store) zooms nothing; a double click (the store without ranges) is the whole map."""
    key, result = _result(long_handle)
    grid_zoom = {"key": key, "view": "grid", "x": [9.5, 19.5], "y": [9.5, 19.5]}
    assert view(long_handle, ids.TAB_HEATMAP, layer=1, head="3", zoom=grid_zoom)["heatmap"]["layout"]["meta"][
        "exact"]["block"] == 16
    heat_zoom = {**grid_zoom, "view": "heatmap"}
    whole = view(long_handle, ids.TAB_GRID, layer=1, zoom=heat_zoom)["grid"]["layout"]["meta"]
    assert whole["block"] == 32 and whole["zoom"]["zoomed"] is False
    for zoom in ({**grid_zoom, "key": "x:" + "0" * 64}, {"key": key, "view": "grid"}):
        assert view(long_handle, ids.TAB_GRID, layer=1, zoom=zoom)["grid"]["layout"]["meta"]["block"] == 32


def test_the_heatmaps_old_zoom_store_still_reads_as_the_heatmaps(long_handle):
    """A store from before (no "view"): the heatmap's zoom."""
    key, result = _result(long_handle)
    fig = view(long_handle, ids.TAB_HEATMAP, layer=1, head="3", zoom={"key": key, "x": [99.5, 139.5],
                                                                      "y": [99.5, 139.5]})["heatmap"]
    assert fig["layout"]["meta"]["exact"]["block"] == 1


def test_zoom_fields_are_bounded_at_the_boundary():
    key = "m:" + "a" * 64
    assert Zoom.parse({"key": key, "view": "grid", "x": [9.5, 19.5], "y": [0, 4.4]}, 100) == Zoom(
        key, 0, 5, 10, 20, "grid")
    assert Zoom.parse({"key": key, "view": "compare", "panel": "b", "x": [0, 5], "y": [0, 5]}, 100).panel == "b"
    assert Zoom.parse({"key": key, "view": "grid", "panel": "b", "x": [0, 5], "y": [0, 5]}, 100).panel is None
    for junk in ({"key": key, "view": "overview", "x": [1, 3], "y": [1, 2]},  # the overview opens the heatmap
                 {"key": key, "view": ["grid"], "x": [1, 3], "y": [1, 2]}, {"key": key, "view": None, "x": [1, 3], "y": [1, 2]},
                 {"key": key, "view": "compare", "panel": "c", "x": [1, 3], "y": [1, 2]},
                 {"key": key, "view": "compare", "panel": {}, "x": [1, 3], "y": [1, 2]},
                 {"key": key, "view": "grid", "x": [1e308, float("inf")], "y": [1, 2]},
                 {"key": key, "view": "grid", "x": [-5, -3], "y": [1, 2]}):
        assert Zoom.parse(junk, 100) is None, junk
    # a rectangular map (cross-attention: 40 queries, 100 keys): each axis clamped to its own tokens
    zoom = Zoom.parse({"key": key, "view": "grid", "x": [60, 99.5], "y": [50, 99.5]}, 100)
    assert zoom.region(40, 100) == (39, 40, 60, 100)
    state = ViewState.parse({"zoom": {"key": key, "view": "grid", "x": [1, 2], "y": [1, 2]}}, Dims(2, 4, 100),
                            registry.TABS)
    assert state.zoom.of(key, "grid") is state.zoom and state.zoom.of(key, "heatmap") is None


@pytest.fixture
def second_llama(tmp_path_factory) -> str:
    return str(tm.build("llama", tmp_path_factory.mktemp("llama-b") / "llama-b", seed=7))


def test_compare_zooms_both_panels_to_one_region_when_they_line_up(settings, llama, second_llama, long_handle):
    """The same 4,096-token text on two models: a box zoom on either panel gives A, B and A − B of the same
    region, exact (A and B each their own model's softmax), down to single tokens with their names."""
    config.configure(models=settings.models + (llama, second_llama))
    key, result = _result(long_handle)
    found = analyse(tm.long_text(3400), second_llama)
    key_b, result_b = found
    b = handle_of(key_b, result_b, found.recipe).to_client()
    zoom = {"key": key, "view": "compare", "x": [99.5, 139.5], "y": [2999.5, 3019.5]}
    fig = view(long_handle, ids.TAB_COMPARE, layer=1, head="2", compare_handle=b, zoom=zoom)["compare_heads"]
    meta = fig["layout"]["meta"]
    assert meta["zoom"]["lined_up"] and meta["zoom"]["a"] == meta["zoom"]["b"] == {
        "r0": 3000, "r1": 3020, "c0": 100, "c1": 140, "block": 1, "rows": 20, "cols": 40}
    wa, wb = by_hand(result, 1, 2)[3000:3020, 100:140], by_hand(result_b, 1, 2)[3000:3020, 100:140]
    za, zb, zd = (decode(fig["data"][i]["z"]).reshape(20, 40) for i in range(3))
    assert np.abs(za - wa).max() < 1e-6 and np.abs(zb - wb).max() < 1e-6 and np.abs(zd - (wa - wb)).max() < 1e-6
    assert np.abs(wa - wb).max() > 1e-3  # two models: the panels differ
    labels = View(result, ViewOptions(), key).labels
    # the tokens of the region name the cells (A's, and B's after " | " where the models' tokens differ)
    assert [x.rstrip("\u200b").split(" | ")[0] for x in fig["data"][0]["x"]] == [safe_label(t) for t in labels[100:140]]
    assert [y.rstrip("\u200b").split(" | ")[0] for y in fig["data"][0]["y"]] == [safe_label(t) for t in labels[3000:3020]]
    assert "exact tile: tokens 3000–3019 → 100–139" in fig["layout"]["title"]["text"]
    # a wide zoom: pooled finer (at most 128 cells a side), the difference the largest in each block
    wide = view(long_handle, ids.TAB_COMPARE, layer=1, head="2", compare_handle=b,
                zoom={**zoom, "x": [-0.5, 511.5], "y": [511.5, 1023.5]})["compare_heads"]
    wa, wb = by_hand(result, 1, 2)[512:1024, 0:512], by_hand(result_b, 1, 2)[512:1024, 0:512]
    za = decode(wide["data"][0]["z"]).reshape(128, 128)
    assert np.abs(za - wa.reshape(128, 4, 128, 4).max(axis=(1, 3))).max() < 1e-6
    d = (wa - wb).reshape(128, 4, 128, 4).transpose(0, 2, 1, 3).reshape(128, 128, 16)
    expected = np.take_along_axis(d, np.abs(d).argmax(axis=-1)[..., None], -1)[..., 0]
    assert np.abs(decode(wide["data"][2]["z"]).reshape(128, 128) - expected).max() < 1e-6


def test_compare_of_texts_that_do_not_line_up_zooms_the_panel_zoomed(settings, llama, long_handle):
    """A (4,096 tokens) beside B (another text, 3,044 tokens): token numbers of two texts name other words, so
    the zoom made on B's panel zooms B alone; A stays whole, pooled as before."""
    config.configure(models=settings.models + (llama,))
    key, result = _result(long_handle)
    found = analyse(tm.long_text(900, seed=5), llama)
    key_b, result_b = found
    b = handle_of(key_b, result_b, found.recipe).to_client()
    zoom = {"key": key, "view": "compare", "panel": "b", "x": [9.5, 29.5], "y": [199.5, 219.5]}
    fig = view(long_handle, ids.TAB_COMPARE, layer=0, head="1", compare_handle=b, zoom=zoom)["compare_heads"]
    meta = fig["layout"]["meta"]["zoom"]
    assert not meta["lined_up"] and len(fig["data"]) == 2
    assert (meta["b"]["r0"], meta["b"]["r1"], meta["b"]["c0"], meta["b"]["c1"], meta["b"]["block"]) == (200, 220, 10, 30, 1)
    assert (meta["a"]["r0"], meta["a"]["r1"], meta["a"]["block"]) == (0, N, 32)
    assert np.abs(decode(fig["data"][1]["z"]).reshape(20, 20) - by_hand(result_b, 0, 1)[200:220, 10:30]).max() < 1e-6
    assert "B: exact tile: tokens 200–219 → 10–29" in fig["layout"]["title"]["text"]
    # the same zoom on A's panel (no panel named: not a zoom of two texts that do not line up) zooms nothing
    plain = view(long_handle, ids.TAB_COMPARE, layer=0, head="1", compare_handle=b,
                 zoom={**zoom, "panel": None})["compare_heads"]
    assert plain["layout"]["meta"]["zoom"]["zoomed"] is False


def test_a_long_overview_is_zoomable_and_names_its_analysis(long_handle):
    """The overview lets a box be drawn (it opens that head's heatmap zoomed: assets/29-zoom.js) and says
    which analysis it shows; the heatmap then draws the store that zoom writes (view "heatmap")."""
    key, result = _result(long_handle)
    fig = view(long_handle, ids.TAB_OVERVIEW)["overview"]
    assert fig["layout"]["meta"]["zoom"] == {"key": key} and fig["layout"]["dragmode"] == "zoom"


@pytest.fixture
def bart(settings, tmp_path_factory) -> str:
    """A tiny random BART of 1,024 positions (tests/tiny_models.py), offered."""
    path = str(tm.build("bart", tmp_path_factory.mktemp("bart") / "bart"))
    config.configure(models=settings.models + (path,), max_new_tokens=6)
    return path


def test_a_rectangular_cross_attention_grid_zooms_to_a_region_of_targets_x_sources(bart):
    """Cross-attention of a tiny BART (a few target tokens x 300-odd source tokens: the grid is pooled, so
    zoomable): a box zoom gives every head that region of target rows x source columns, exact (the stored
    maps of transformers' own attention), each axis clamped to its own tokens."""
    from tests.services.test_seq2seq import SOURCE, TARGET

    from attention_explorer.callbacks import analyze

    out = analyze.analyze({"text": " ".join([SOURCE] * 30), "model": bart, "target": TARGET, "pair": None,
                           "layer": 0, "head": ids.HEAD_ALL, "current": None, "synchronous": True})
    key, result = _result(out["handle"])
    cross = result.cross_attentions.astype(np.float32)
    n_t, n_s = cross.shape[-2:]
    assert n_s > 128 > n_t > 20
    whole = view(out["handle"], ids.TAB_GRID, kind="cross", layer=1)["grid"]
    assert whole["layout"]["meta"]["zoom"]["zoomed"] is False and whole["layout"]["dragmode"] == "zoom"
    zoom = {"key": key, "view": "grid", "x": [99.5, 119.5], "y": [3.5, 19.5]}  # 16 target rows, 20 sources
    fig = view(out["handle"], ids.TAB_GRID, kind="cross", layer=1, zoom=zoom)["grid"]
    meta = fig["layout"]["meta"]
    assert (meta["zoom"]["r0"], meta["zoom"]["r1"], meta["zoom"]["c0"], meta["zoom"]["c1"]) == (4, 20, 100, 120)
    assert meta["block"] == 1 and (meta["cells_y"], meta["cells_x"]) == (16, 20)
    values = grid_values(fig)
    assert np.abs(values - cross[1][:, 4:20, 100:120]).max() < 1e-3  # the stored maps are float16
    assert fig["data"][3]["text"][:16] == meta["tokens"][4:20] and len(meta["key_tokens"]) == n_s
    # rows past the target's end: clamped to its own tokens (the zoom is bounded by the longer side)
    low = view(out["handle"], ids.TAB_GRID, kind="cross", layer=1, zoom={**zoom, "y": [19.5, 400.5]})["grid"]
    assert (low["layout"]["meta"]["zoom"]["r0"], low["layout"]["meta"]["zoom"]["r1"]) == (20, n_t)


def test_a_zoomed_heatmap_has_a_minimap_of_the_whole_map_with_the_part_on_screen(long_handle):
    """Beside the zoomed heatmap: the whole map pooled in 64 x 64 blocks (each the block's max, as the numpy
    softmax gives it, at the palette's steps), not zoomable, no hover, and the region outlined."""
    from attention_explorer.components import images
    from tests.components.test_figures import decode_image

    key, result = _result(long_handle)
    zoom = {"key": key, "view": "heatmap", "x": [1999.5, 2039.5], "y": [3000.4, 3040.5]}
    fig = view(long_handle, ids.TAB_HEATMAP, layer=1, head="3", zoom=zoom)["heatmap"]
    mini = [t for t in fig["data"] if t.get("name") == "minimap"]
    assert len(mini) == 1 and mini[0]["xaxis"] == "x3" and mini[0]["hoverinfo"] == "skip"
    assert fig["data"][0]["name"] == "attention"  # the tooltip reads trace 0: still the heatmap
    assert fig["layout"]["meta"]["minimap"] == {"block": 64, "rows": 64, "cols": 64}
    expected = images.to_levels(by_hand(result, 1, 3).reshape(64, 64, 64, 64).max(axis=(1, 3)))
    assert np.abs(decode_image(mini[0]["source"]).astype(int) - expected).max() <= 1
    assert fig["layout"]["xaxis3"]["fixedrange"] and fig["layout"]["yaxis3"]["fixedrange"]
    outline = [s for s in fig["layout"]["shapes"] if s.get("xref") == "x3"][-1]
    # 40 tokens of 4,096 are under a pixel there: outlined 4 % of the map wide, around the region's centre
    least = 0.04 * N
    assert (outline["x0"] + outline["x1"]) / 2 == pytest.approx(2019.5) and outline["x1"] - outline["x0"] == pytest.approx(least)
    assert (outline["y0"] + outline["y1"]) / 2 == pytest.approx(3020.0) and outline["y1"] - outline["y0"] == pytest.approx(least)
    wide = view(long_handle, ids.TAB_HEATMAP, layer=1, head="3", zoom={**zoom, "x": [-0.5, 1023.5]})["heatmap"]
    outline = [s for s in wide["layout"]["shapes"] if s.get("xref") == "x3"][-1]
    assert (outline["x0"], outline["x1"]) == (-0.5, 1023.5)  # wide enough: the region itself
    whole = view(long_handle, ids.TAB_HEATMAP, layer=1, head="3")["heatmap"]
    assert not [t for t in whole["data"] if t.get("name") == "minimap"]  # not zoomed: no minimap
