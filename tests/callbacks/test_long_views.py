"""Issue 18 item 1-4: every view of a 4,096-token text whose maps are not held (``dense`` is False), with
pooled pictures, exact zoom and exact hover values, the switches on long texts, "leave out the first
token", and the sentence-pair line and blanks.

A tiny random Llama with grouped-query attention (tests/tiny_models.py: 2 layers x 4 heads, 2 KV heads)
reads a 4,096-token text through the app's own Analyze; every number a view shows is checked against
the map computed here by hand from the result's kept queries and keys (a plain numpy softmax: not
``services.ondemand``), and the queries and keys themselves were checked against the model's eager
attention in tests/services/model/test_record.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from attention_explorer.callbacks import registry, router
from attention_explorer.callbacks.boundary import Handle, ViewState, Zoom
from attention_explorer.components import ids
from attention_explorer.services import config
from attention_explorer.services.analyses.views import View, ViewOptions, dense_limit
from attention_explorer.services.extraction import result_by_key
from attention_explorer.services.result import pool
from tests import tiny_models as tm
from tests.callbacks.test_callbacks import run_analyze, view
from tests.components.test_figures import decode

N = 4096


@pytest.fixture
def long_handle(settings, llama):
    config.configure(models=settings.models + (llama,))
    out = run_analyze(tm.long_text(3400), llama)
    handle = Handle.parse(out["handle"])
    assert handle is not None and handle.tokens == N
    return out["handle"]


def _result(handle):
    key, result = result_by_key(Handle.parse(handle).key, Handle.parse(handle).recipe)
    return key, result


def by_hand(result, layer: int, head: int) -> np.ndarray:
    """One head's whole map, float64, from the kept queries and keys: scores, causal mask, softmax."""
    q = result.queries[layer, head].astype(np.float64)
    k = result.keys[layer, result.kv_head(head)].astype(np.float64)
    s = q @ k.T * float(result.scaling[layer])
    s[np.triu_indices(len(s), 1)] = -np.inf
    s -= s.max(axis=1, keepdims=True)
    w = np.exp(s)
    return w / w.sum(axis=1, keepdims=True)


def renormalised_without_first(w: np.ndarray) -> np.ndarray:
    w = w.copy()
    w[:, 0] = 0
    mass = w.sum(axis=1, keepdims=True)
    return np.where(mass > 0, w / np.where(mass > 0, mass, 1), 0)


def test_every_view_draws_a_long_text_without_an_error(long_handle):
    """Each tab of the registry, and the switches that cannot scale, answer with a figure or a plain
    message naming the length they work up to: never "could not be drawn"."""
    key, result = _result(long_handle)
    assert not result.dense
    failures = []
    for spec in registry.VIEWS:
        for values in ({}, {"mode": "value"}, {"switches": ["hide", "first"]}, {"head": "1"}, {"head": "mean"}):
            out = view(long_handle, spec.tab, **values)
            text = str(out)
            if "could not be drawn" in text or "Something went wrong" in text:
                failures.append((spec.name, values))
    assert failures == []
    limit = dense_limit(result.num_layers, result.num_heads)
    rolled = view(long_handle, ids.TAB_GRID, mode="rollout")["grid"]
    assert f"{limit:,} tokens" in str(rolled) and "Rollout" in str(rolled)
    merged = view(long_handle, ids.TAB_HEATMAP, switches=["merge"])["heatmap"]
    assert f"{limit:,} tokens" in str(merged)


def test_pooled_grid_holds_each_blocks_exact_max(long_handle):
    """The grid pools each head in 32 x 32 blocks; meta.values (what the hover reads) is each block's
    maximum of the map computed by hand, and the title says what a cell is."""
    key, result = _result(long_handle)
    fig = view(long_handle, ids.TAB_GRID, layer=1)["grid"]
    meta = fig["layout"]["meta"]
    assert meta["block"] == 32 and meta["cells"] == 128 and "max over 32×32 tokens" in fig["layout"]["title"]["text"]
    values = decode(meta["values"]).reshape(result.num_heads, 128, 128)
    for head in (0, 3):
        expected = by_hand(result, 1, head).reshape(128, 32, 128, 32).max(axis=(1, 3))
        assert np.abs(values[head] - expected).max() < 1e-5


def test_pooled_mean_of_a_block(long_handle):
    key, result = _result(long_handle)
    fig = view(long_handle, ids.TAB_HEATMAP, layer=0, head="2", switches=["mean"])["heatmap"]
    exact = fig["layout"]["meta"]["exact"]
    assert exact["block"] == 16 and exact["how"] == "mean"
    assert "mean over 16 × 16 tokens" in fig["layout"]["title"]["text"]
    expected = by_hand(result, 0, 2).reshape(256, 16, 256, 16).mean(axis=(1, 3))
    assert np.abs(decode(exact["values"]).reshape(256, 256) - expected).max() < 1e-6


def test_box_zoom_draws_the_exact_tile_with_token_labels(long_handle):
    """A box zoom's axis ranges (in tokens) reach the router as the zoom store; the heatmap then holds the
    exact weights of that part, one cell a token, with the tokens as tick labels."""
    key, result = _result(long_handle)
    zoom = {"key": key, "x": [1999.5, 2039.5], "y": [3000.4, 3040.5]}
    fig = view(long_handle, ids.TAB_HEATMAP, layer=1, head="3", zoom=zoom)["heatmap"]
    exact, layout = fig["layout"]["meta"]["exact"], fig["layout"]
    assert (exact["block"], exact["r0"], exact["c0"], exact["rows"], exact["cols"]) == (1, 3000, 2000, 41, 40)
    expected = by_hand(result, 1, 3)[3000:3041, 2000:2040]
    assert np.abs(decode(exact["values"]).reshape(41, 40) - expected).max() < 1e-6
    assert layout["xaxis"]["range"] == [1999.5, 2039.5] and layout["yaxis"]["range"] == [3040.5, 2999.5]
    assert layout["xaxis"]["ticktext"][0] == fig["layout"]["meta"]["keys"][2000]
    assert len(layout["yaxis"]["ticktext"]) == 41 and "exact tile" in layout["title"]["text"]
    # a zoom of another analysis (an old store) is not this one's: the whole picture
    other = view(long_handle, ids.TAB_HEATMAP, layer=1, head="3", zoom={**zoom, "key": "x:" + "0" * 64})["heatmap"]
    assert other["layout"]["meta"]["exact"]["block"] == 16


def test_a_wide_zoom_is_pooled_finer(long_handle):
    key, result = _result(long_handle)
    fig = view(long_handle, ids.TAB_HEATMAP, layer=0, head="0", zoom={"key": key, "x": [-0.5, 1023.5],
                                                                       "y": [1023.5, 2047.5]})["heatmap"]
    exact = fig["layout"]["meta"]["exact"]
    assert (exact["block"], exact["r0"], exact["c0"], exact["rows"]) == (4, 1024, 0, 256)
    expected = by_hand(result, 0, 0)[1024:2048, 0:1024].reshape(256, 4, 256, 4).max(axis=(1, 3))
    assert np.abs(decode(exact["values"]).reshape(256, 256) - expected).max() < 1e-6


def test_leave_out_the_first_token_on_a_long_text(long_handle):
    """Every row renormalised without the first key, exact on the zoomed tile, the mean of heads and
    Token focus."""
    key, result = _result(long_handle)
    zoom = {"key": key, "x": [-0.5, 30.5], "y": [99.5, 130.5]}
    fig = view(long_handle, ids.TAB_HEATMAP, layer=1, head="0", switches=["first"], zoom=zoom)["heatmap"]
    got = decode(fig["layout"]["meta"]["exact"]["values"]).reshape(31, 31)
    expected = renormalised_without_first(by_hand(result, 1, 0))[100:131, 0:31]
    assert np.abs(got - expected).max() < 1e-6 and np.all(got[:, 0] == 0)
    mean = view(long_handle, ids.TAB_HEATMAP, layer=1, head="mean", switches=["first"], zoom=zoom)["heatmap"]
    expected_mean = np.mean([renormalised_without_first(by_hand(result, 1, h))[100:131, 0:31] for h in range(4)], axis=0)
    assert np.abs(decode(mean["layout"]["meta"]["exact"]["values"]).reshape(31, 31) - expected_mean).max() < 1e-6


def test_token_focus_of_a_long_text_reads_rows(long_handle):
    key, result = _result(long_handle)
    out = view(long_handle, ids.TAB_FOCUS, token=4000, switches=["first"])
    z = decode(out["focus_figure"]["data"][0]["z"])
    expected = np.stack([np.mean([renormalised_without_first(by_hand(result, l, h)[3999:4001])[1] for h in range(4)],
                                 axis=0) for l in range(2)])
    assert z.shape == (2, N) and np.abs(z - expected).max() < 1e-6
    assert "up to" in str(out["focus_tables"])  # "who looks at it": said plainly, with the length it works up to


def test_hidden_special_tokens_on_a_long_text(long_handle):
    """The long path hides special tokens as the short path does: rows and columns gone, rows renormalised."""
    key, result = _result(long_handle)
    special = np.asarray(result.special_mask)
    kept = np.flatnonzero(~special)
    v = View(result, ViewOptions(hide_special=True), None)
    assert v.long and list(v.rows.kept) == list(kept)
    w = by_hand(result, 0, 1)[np.ix_(kept, kept)]
    w = w / w.sum(axis=1, keepdims=True)
    assert np.abs(v.picture(0, 1, 1, region=(500, 540, 10, 60)) - w[500:540, 10:60]).max() < 1e-6


def test_pooled_picture_of_a_medium_text_equals_numpy_on_the_full_map(settings, llama):
    """A dense (medium) text: ``View.picture`` (max and mean) equals numpy's pooling of the whole map the
    result holds, with and without the first token."""
    from attention_explorer.services import extract_attention

    config.configure(models=settings.models + (llama,))
    result = extract_attention(" ".join(tm.long_text(400).split()[:400]), model_id=llama)
    assert result.dense and 400 < result.seq_len < 1000
    full = result.attentions[1, 2].astype(np.float64)
    for options, matrix in ((ViewOptions(), full), (ViewOptions(drop_first=True), renormalised_without_first(full))):
        v = View(result, options, None)
        for how in ("max", "mean"):
            assert np.abs(v.picture(1, 2, 7, how) - pool(matrix, 7, how)).max() < 1e-6
        assert np.abs(v.picture(1, 2, 1) - v.matrix(1, 2)[0]).max() < 1e-6


def test_zoom_is_parsed_and_bounded_at_the_boundary():
    key = "m:" + "a" * 64
    assert Zoom.parse({"key": key, "x": [9.5, 19.5], "y": ["0", 4.4]}, 100) == Zoom(key, 0, 5, 10, 20)
    assert Zoom.parse({"key": key, "x": [-1e300, 1e300], "y": [50.2, 50.3]}, 100) == Zoom(key, 50, 51, 0, 100)
    for junk in (None, [], {"key": key}, {"key": key, "x": [1], "y": [1, 2]}, {"key": key, "x": ["nan", 3], "y": [1, 2]},
                 {"key": "no", "x": [1, 3], "y": [1, 2]}, {"key": key, "x": [200, 300], "y": [1, 2]},
                 {"key": key, "x": [[1], 3], "y": [1, 2]}):
        assert Zoom.parse(junk, 100) is None
    state = ViewState.parse({"switches": ["first", "mean", "bogus"]}, router.Dims(2, 4, 100), registry.TABS)
    assert state.drop_first and state.pool == "mean" and state.switches == ["first", "mean"]


def test_a_sentence_pair_marks_where_a_ends_and_draws_what_a_filter_leaves_out_grey(settings, tiny_models):
    """Issue 18 item 6 (first half): a dotted line where sentence A ends, across the rows and the columns;
    under a filter, the rows and columns it leaves out covered light grey (not drawn as zero)."""
    from attention_explorer.components.pooled import BLANK

    out = run_analyze("the cat sat on the mat", tiny_models["bert"], pair="it was tired")
    key, result = _result(out["handle"])
    segments = list(result.segment_ids)
    first_b = segments.index(1)
    plain = view(out["handle"], ids.TAB_HEATMAP, layer=1, head="2")["heatmap"]["layout"]["shapes"]
    lines = [s for s in plain if s["type"] == "line"]
    assert sorted((s["x0"], s["x1"], s["y0"], s["y1"]) for s in lines) == sorted(
        [(-0.5, len(segments) - 0.5, first_b - 0.5, first_b - 0.5), (first_b - 0.5, first_b - 0.5, -0.5, len(segments) - 0.5)])
    assert not [s for s in plain if s["type"] == "rect"]
    shapes = view(out["handle"], ids.TAB_HEATMAP, layer=1, head="2", pair="A→B")["heatmap"]["layout"]["shapes"]
    grey = [s for s in shapes if s["type"] == "rect" and s["fillcolor"] == BLANK]
    # every cell outside the block of A's rows and B's columns is under a grey rectangle, and none inside it
    n = len(segments)
    covered = np.zeros((n, n), bool)
    for s in grey:
        rows = slice(int(s["y0"] + 0.5), int(s["y1"] + 0.5))
        cols = slice(int(s["x0"] + 0.5), int(s["x1"] + 0.5))
        covered[rows, cols] = True
    inside = np.array([[segments[i] == 0 and segments[j] == 1 for j in range(n)] for i in range(n)])
    assert np.array_equal(covered, ~inside)


def test_a_long_pair_blanks_what_the_filter_leaves_out(settings, llama):
    """A long sentence pair: blocks the filter leaves out wholly are NaN in the exact values (the hover says
    "left out"), the others exact."""
    config.configure(models=settings.models + (llama,))
    words = tm.long_text(3400).split()
    out = run_analyze(" ".join(words[:1500]), llama, pair=" ".join(words[1500:]))
    key, result = _result(out["handle"])
    assert not result.dense
    segments = np.array([s if s is not None else -1 for s in result.segment_ids])
    first_b = int(np.flatnonzero(segments == 1)[0])
    fig = view(out["handle"], ids.TAB_HEATMAP, layer=0, head="1", pair="B→A")["heatmap"]
    exact = fig["layout"]["meta"]["exact"]
    values = decode(exact["values"]).reshape(exact["rows"], exact["cols"])
    b = exact["block"]
    row_block = first_b // b + 1  # a block of rows wholly in sentence B
    assert (values[: first_b // b] == -1).all()  # rows of sentence A: left out (NaN sent as -1)
    w = by_hand(result, 0, 1)
    keep = (segments[:, None] == 1) & (segments[None, :] == 0)
    expected = np.where(keep, w, 0)[row_block * b:(row_block + 1) * b, 0:b].max()
    assert values[row_block, 0] == pytest.approx(expected, abs=1e-6)
    assert any(s["type"] == "line" for s in fig["layout"]["shapes"])


def test_the_url_carries_drop_first_and_pool():
    from attention_explorer.callbacks import urlstate

    state = urlstate.parse("?text=hi&drop_first=1&pool=mean&hide_special=0")
    assert state.controls["switches"] == ["first", "mean"]
    assert urlstate.parse("?text=hi&drop_first=0&pool=max").controls["switches"] == []
    assert "switches" not in urlstate.parse("?text=hi&pool=median").controls


def test_a_decoder_only_models_pair_filter_keeps_its_block(settings, tiny_models):
    """A GPT-2 sentence pair: B→A keeps sentence B's rows on sentence A's keys (the views read the
    result's own sentences; they used to see one sentence and draw every filter but A→A empty)."""
    from tests.components.test_figures import heatmap_levels

    out = run_analyze("the cat sat on the mat", tiny_models["gpt2"], pair="it was tired")
    key, result = _result(out["handle"])
    segments = np.array([s if s is not None else -1 for s in result.segment_ids])
    att = result.attentions[1, 2].astype(np.float32)
    expected = np.where((segments[:, None] == 1) & (segments[None, :] == 0), att, 0.0)
    assert expected.max() > 0.05
    levels = heatmap_levels(view(out["handle"], ids.TAB_HEATMAP, pair="B→A", layer=1, head="2")["heatmap"])
    assert np.abs(levels / 254 - expected).max() <= 0.5 / 254 + 2e-3
