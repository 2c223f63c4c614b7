"""Figure builders, checked against independent numpy computations."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from attention_explorer.components import figures, images


def decode(spec: dict) -> np.ndarray:
    dtype = {"u1": np.uint8, "f4": np.float32, "i4": np.int32, "f8": np.float64}[spec["dtype"]]
    array = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=dtype)
    if "shape" in spec:
        array = array.reshape([int(n) for n in spec["shape"].split(",")])
    return array


def decode_image(uri: str) -> np.ndarray:
    """The palette indices of a ``data:image/png`` URI, read with Pillow (not the code that wrote it)."""
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert image.mode == "P"
    return np.asarray(image)


def heatmap_levels(fig: dict) -> np.ndarray:
    """The palette levels a heatmap figure shows on its axes: its own picture, or the tile of a grid
    picture its image is moved to (``x0``, ``y0``)."""
    trace, meta = fig["data"][0], fig["layout"]["meta"]
    image = decode_image(trace["source"])
    rows, cols = len(meta["queries"]), len(meta["keys"])
    top, left = -int(trace.get("y0", 0)), -int(trace.get("x0", 0))
    return image[top:top + rows, left:left + cols]


def random_attention(heads: int, seq: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(heads, seq, seq)) * 3
    att = np.exp(logits)
    return (att / att.sum(-1, keepdims=True)).astype(np.float32)


def test_typed_array_round_trip():
    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    spec = figures.typed_array(a)
    assert spec["shape"] == "3, 4" and spec["dtype"] == "f4"
    np.testing.assert_array_equal(decode(spec), a)


def tile_of(fig: dict, index: int) -> np.ndarray:
    """The palette levels of grid tile ``index``, cut out of the figure's image by its ``meta``."""
    meta = fig["layout"]["meta"]
    image = decode_image(fig["data"][0]["source"])
    r, c = divmod(index, meta["columns"])
    top, left = r * meta["stride_y"] + meta["band"], c * meta["stride_x"]
    return image[top:top + meta.get("cells_y", meta["cells"]), left:left + meta.get("cells_x", meta["cells"])]


def test_palette_png_round_trips_levels_and_colours():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    uri = images.png_data_uri(levels)
    assert uri.startswith("data:image/png;base64,")
    np.testing.assert_array_equal(decode_image(uri), levels)
    rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))
    palette = images.viridis_palette()
    np.testing.assert_array_equal(rgb[0, 0], palette[0])
    assert tuple(rgb[15, 15]) == images.BACKGROUND_RGB  # level 255 is the gap colour
    assert len({tuple(c) for c in palette[:images.LEVELS]}) == images.LEVELS  # a colour names its level
    # Viridis ends: dark purple at 0, yellow at 1, as plotly draws its colour bar
    assert tuple(palette[0]) == (68, 1, 84) and tuple(palette[images.LEVELS - 1]) == (253, 231, 37)


def test_to_levels_quantises_within_half_a_step():
    weights = np.random.default_rng(3).random((50, 50)).astype(np.float32)
    levels = images.to_levels(weights)
    assert levels.max() <= images.LEVELS - 1
    assert np.abs(levels / (images.LEVELS - 1) - weights).max() <= 0.5 / (images.LEVELS - 1) + 1e-6
    assert images.to_levels(np.array([[np.nan, 2.0, -1.0]]))[0].tolist() == [0, 254, 0]


def test_head_grid_one_image_with_a_tile_per_head():
    att = random_attention(12, 13)
    labels = [f"t{i}" for i in range(13)]
    fig = figures.head_grid_figure(att, labels, layer=3, selected=5)
    # the picture, the tiles' titles, the colour bar, the tokens beside each row (short texts only)
    assert [t["type"] for t in fig["data"]] == ["image", "scatter", "heatmap", "scatter"]
    for head in range(12):
        z = tile_of(fig, head)
        assert z.shape == (13, 13)
        # independent: weight * 254 rounded, so decoding is within half a step of the true weight
        assert np.abs(z / 254.0 - att[head]).max() <= 0.5 / 254 + 1e-6
    meta = fig["layout"]["meta"]
    assert meta["tokens"] == labels and meta["tiles"] == list(range(12)) and meta["columns"] == 4
    assert len(meta["palette"]) == 256 * 3 and meta["levels"] == 254
    image = decode_image(fig["data"][0]["source"])
    gap_columns = [meta["stride_x"] * c - 1 for c in range(1, 4)]
    assert (image[:, gap_columns] == images.BACKGROUND).all()  # tiles are separated by background
    assert fig["data"][3]["text"][:13] == labels and fig["data"][3]["y"][:13] == list(range(meta["band"], meta["band"] + 13))
    assert "Layer 3" in fig["layout"]["title"]["text"]
    assert fig["data"][1]["text"][5] == "head 5" and fig["data"][1]["text"][4] == "head 4"
    assert fig["data"][1]["textfont"]["color"][5] == figures.HIGHLIGHT
    (outline,) = fig["layout"]["shapes"]
    assert outline["x0"] == meta["stride_x"] - 0.5 and outline["y0"] == meta["stride_y"] + meta["band"] - 0.5


def test_head_grid_pools_long_text():
    att = random_attention(2, 300)
    fig = figures.head_grid_figure(att, ["x"] * 300, layer=0)
    z = tile_of(fig, 0)
    assert z.shape == (100, 100) and fig["layout"]["meta"]["block"] == 3
    expected = att[0].reshape(100, 3, 100, 3).max(axis=(1, 3))
    assert np.abs(z / 254.0 - expected).max() <= 0.5 / 254 + 1e-6
    assert len(fig["data"]) == 3  # no token labels on pooled tiles


@pytest.mark.parametrize("seq, cells", [(300, 128), (512, 32), (100, 32), (37, 8)])
def test_max_pool_float16_and_float32_against_a_loop(seq, cells):
    att = random_attention(3, seq, seed=seq)
    att[0, :5, :5] = 0.0  # zeros, as float16 stores tiny weights
    for dtype in (np.float32, np.float16):
        pooled, block = figures.max_pool(att.astype(dtype), cells)
        assert pooled.dtype == dtype and block == -(-seq // cells)
        n = -(-seq // block)
        for head in range(3):
            for i in (0, n // 2, n - 1):
                for j in (0, n - 1):
                    expected = att[head, i * block:(i + 1) * block, j * block:(j + 1) * block].astype(dtype).max()
                    assert pooled[head, i, j] == expected


def test_heatmap_levels_labels_and_rows():
    att = random_attention(1, 5)[0]
    fig = figures.heatmap_figure(att, ["the", "cat", "the", "<b>", "."], "Layer 0 · Head 1", token_index=[0, 2, 3, 5, 6])
    trace = fig["data"][0]
    assert trace["type"] == "image" and trace["hoverinfo"] == "none"
    levels = decode_image(trace["source"])
    assert np.abs(levels / 254.0 - att).max() <= 0.5 / 254 + 1e-6
    assert fig["layout"]["xaxis"]["ticktext"][3] == "&lt;b&gt;"  # HTML in tokens is shown literally
    meta = fig["layout"]["meta"]
    assert meta["keys"][3] == "<b>" and meta["token_index"] == [0, 2, 3, 5, 6]  # tooltips are text, not HTML
    assert fig["layout"]["title"]["text"] == "Layer 0 · Head 1"


def test_heatmap_of_one_tile_of_a_grid_picture():
    att = random_attention(12, 13, seed=5)
    labels = [f"t{i}" for i in range(13)]
    grid = figures.head_grid_figure(att, labels, layer=0)
    meta = grid["layout"]["meta"]
    for head in (0, 6, 11):
        fig = figures.heatmap_figure(None, labels, f"Head {head}", grid={
            "source": grid["data"][0]["source"], "meta": meta, "head": head, "key": "k",
            "titles": [f"Head {h}" for h in range(12)]})
        assert np.abs(heatmap_levels(fig) / 254.0 - att[head]).max() <= 0.5 / 254 + 1e-6
        x0, y0 = fig["data"][0]["x0"], fig["data"][0]["y0"]
        row, col = divmod(head, meta["columns"])
        assert (x0, y0) == (-col * meta["stride_x"], -(row * meta["stride_y"] + meta["band"]))
        # the axes show exactly the tile: the rest of the picture is clipped away
        assert fig["layout"]["xaxis"]["range"] == [-0.5, 12.5] and fig["layout"]["yaxis"]["range"] == [12.5, -0.5]


def test_select_arcs_matches_a_loop():
    att = random_attention(3, 9, seed=4)
    g, q, k, w = figures.select_arcs(att, top_k=2, min_weight=0.1)
    expected = set()
    for gi in range(3):
        for qi in range(9):
            for ki in np.argsort(-att[gi, qi], kind="stable")[:2]:
                if att[gi, qi, ki] >= 0.1:
                    expected.add((gi, qi, int(ki)))
    assert set(zip(g.tolist(), q.tolist(), k.tolist())) == expected
    assert np.allclose(w, att[g, q, k])
    g, q, k, w = figures.select_arcs(att, top_k=3, min_weight=0.0, focus=4)
    assert set(q.tolist()) == {4} and len(k) == 9


def arc_lines(fig: dict) -> list[dict]:
    """The arc view's groups of lines (the page draws them on its canvas), read back: queries, keys,
    weights, points and hover texts."""
    return figures.decoded_arc_lines(fig)


def test_arc_figure_few_traces_and_focus():
    att = random_attention(12, 40)
    labels = [f"w{i}" for i in range(40)]
    fig = figures.arc_figure(att, labels, top_k=3, min_weight=0.0, group_names=[str(h) for h in range(12)])
    assert fig["data"][0]["name"] == "tokens"
    lines = arc_lines(fig)
    assert len(lines) == 12 and len(fig["data"]) == 1  # one group of lines a head, drawn on the page's canvas
    assert sorted(t["head"] for t in lines) == list(range(12)) and fig["layout"]["meta"]["heads"] == 12
    assert fig["layout"]["meta"]["arcs"] == 12 * 40 * 3
    # each trace names the query of each of its arcs, for the browser-side hover
    queries = np.concatenate([t["queries"] for t in lines])
    assert np.bincount(queries, minlength=40).tolist() == [12 * 3] * 40
    for trace in lines:
        xs = trace["x"]
        starts = xs[:: figures._ARC_POINTS + 1]
        assert len(starts) == len(trace["queries"]) == len(trace["keys"]) == len(trace["text"])
        np.testing.assert_allclose(starts, figures.token_positions(labels)[trace["queries"]], atol=1e-3)
    focused = figures.arc_figure(att[:1], labels, top_k=3, min_weight=0.0, focus=7)
    assert focused["layout"]["meta"]["arcs"] == 3
    # every arc drawn starts at token 7's x position
    x7 = figures.token_positions(labels)[7]
    for trace in arc_lines(focused):
        xs = trace["x"]
        starts = xs[:: figures._ARC_POINTS + 1]
        assert np.allclose(starts, x7, atol=1e-3)


def test_arc_hover_names_both_tokens_and_the_exact_weight():
    att = random_attention(3, 20, seed=5)
    labels = [f"t{i}" for i in range(20)]
    fig = figures.arc_figure(att, labels, top_k=2, min_weight=0.0, group_names=["0", "1", "2"])
    seen = set()
    for trace in arc_lines(fig):
        head = trace["head"]
        for query, key_, text in zip(trace["queries"], trace["keys"], trace["text"]):
            pair, rest = text.split("\n")
            q_label, k_label = pair.split(" → ")
            assert q_label == labels[query]
            key = labels.index(k_label)
            assert key == key_
            weight = float(rest.split()[1])
            assert weight == pytest.approx(att[head, query, key], abs=6e-5) and rest.endswith(f"head {head}")
            seen.add((head, query, key))
    # the hovers are exactly each query's top 2 keys of each head
    expected = {(h, q, int(k)) for h in range(3) for q in range(20) for k in np.argsort(-att[h, q])[:2]}
    assert seen == expected


def test_arc_figure_from_the_windows_rows_alone_equals_the_whole():
    """A long text's caller reads only the window's rows (``first``): the figure is the same."""
    att = random_attention(2, 150, seed=3)
    labels = [f"w{i}" for i in range(150)]
    whole = figures.arc_figure(att, labels, top_k=3, min_weight=0.0, start=40, group_names=["a", "b"])
    first, end = figures.arc_window(150, 40)
    part = figures.arc_figure(att[:, first:end], labels, top_k=3, min_weight=0.0, start=40, group_names=["a", "b"],
                              first=first)
    assert whole == part and whole["layout"]["meta"]["first"] == 40


def test_generated_tokens_are_marked():
    att = random_attention(1, 8, seed=1)
    labels = list("abcdefgh")
    generated = [False] * 5 + [True] * 3
    fig = figures.arc_figure(att, labels, generated=generated, causal=True)
    tokens = fig["data"][0]
    assert fig["layout"]["meta"]["generated"] == [5, 6, 7]
    assert [t.startswith("<i>") for t in tokens["text"]] == generated
    assert [c == figures.GENERATED_COLOR for c in tokens["textfont"]["color"]] == generated
    plain = figures.arc_figure(att, labels, causal=True)
    assert plain["layout"]["meta"]["generated"] == [] and not any("<i>" in t for t in plain["data"][0]["text"])


def test_long_texts_are_drawn_through_a_window():
    att = random_attention(2, 200, seed=9)
    labels = [f"w{i}" for i in range(200)]
    fig = figures.arc_figure(att, labels, top_k=3, min_weight=0.0, start=100)
    meta = fig["layout"]["meta"]
    assert (meta["first"], meta["end"], meta["units"]) == (100, 164, 200)
    assert fig["data"][0]["text"] == labels[100:164] and meta["token_index"] == list(range(100, 164))
    # each query's top 3 keys are chosen over the whole text; those outside the window are counted
    g, q, k, w = figures.select_arcs(att, 3, 0.0, queries=np.arange(100, 164))
    inside = (k >= 100) & (k < 164)
    assert meta["arcs"] == int(inside.sum()) and meta["outside"] == int((~inside).sum()) > 0
    # those are drawn dotted to the window's edge: left for earlier keys, right for later ones
    lines = arc_lines(fig)
    far = [t for t in lines if t["far"]]
    assert far and [t["far"] for t in lines] == [True] * len(far) + [False] * (len(lines) - len(far))  # behind
    ends = np.concatenate([t["x"].reshape(-1, figures._ARC_POINTS + 1)[:, -2] for t in far])
    width = fig["layout"]["xaxis"]["range"][1]
    assert len(ends) == meta["outside"]
    assert sorted(np.round(ends).tolist()) == sorted([2.0] * int((k < 100).sum()) + [width - 2.0] * int((k >= 164).sum()))
    # their hover names the key token and where it is in the text
    hovers = {(q, k): t for trace in arc_lines(fig) for q, k, t in zip(trace["queries"], trace["keys"], trace["text"])}
    q0, k0 = int(q[~inside][0]), int(k[~inside][0])
    assert hovers[(q0 - 100, k0)].startswith(f"w{q0} → w{k0} (token {k0})\nweight ")
    # the window moves to hold a focused token, and never runs past the end
    assert figures.arc_window(200, 180) == (136, 200)
    assert figures.arc_window(200, 0, focus=150) == (118, 182)
    assert figures.arc_window(30, 10) == (0, 30)
    focused = figures.arc_figure(att, labels, top_k=3, min_weight=0.0, start=0, focus=150)
    assert focused["layout"]["meta"]["first"] == 118 and focused["layout"]["meta"]["focus"] == 150 - 118


def test_causal_arcs_all_bend_down():
    att = np.tril(np.ones((1, 6, 6)))
    att /= att.sum(-1, keepdims=True)
    fig = figures.arc_figure(att.astype(np.float32), list("abcdef"), top_k=6, min_weight=0.0, causal=True)
    ys = np.concatenate([t["y"] for t in arc_lines(fig)])
    ys = ys[~np.isnan(ys)]
    assert len(ys)
    loops = ys > 0  # self-loops sit just above the baseline
    assert ys.min() < -0.1 and ys[loops].max() < 0.35
    assert fig["layout"]["yaxis"]["range"][1] < 0.5  # no room above: nothing goes there


@pytest.mark.parametrize("message", ["plain", "<script>alert(1)</script>"])
def test_empty_figure_escapes(message):
    fig = figures.empty_figure(message)
    assert "<script>" not in fig["layout"]["annotations"][0]["text"]


def test_exports_draw_the_arcs_the_page_draws_on_its_canvas():
    """Offline HTML (and the PNG/SVG of 25-export.js) cannot run the page's canvas: the arcs become
    SVG line traces, one a group, with the same points, colour and width."""
    from attention_explorer.components import export

    att = random_attention(2, 90, seed=2)
    fig = figures.arc_figure(att, [f"w{i}" for i in range(90)], top_k=2, min_weight=0.0, group_names=["0", "1"],
                             start=10)
    lines = arc_lines(fig)
    traces = figures.arc_traces(fig)
    assert len(traces) == len(lines) and any(t["line"].get("dash") == "dot" for t in traces)
    for trace, line in zip(traces, lines):
        assert trace["type"] == "scatter" and trace["line"]["color"] == line["color"]
        np.testing.assert_array_equal(decode(trace["x"]), line["x"])
        np.testing.assert_array_equal(decode(trace["y"]), line["y"])
    offline = export.offline_figure(fig)
    assert offline["data"][1:] == traces and "lines" not in offline["layout"]["meta"]


def test_cjk_axis_titles_stay_upright_and_latin_ones_turn():
    from attention_explorer.components.figures import axis_title_y, colorbar_title, is_cjk, label_px, upright

    assert is_cjk("查询（发出关注）") and is_cjk("，") and not is_cjk("query (attending)") and not is_cjk("A − B")
    assert upright("查询（发出）") == "查<br>询<br>︵<br>发<br>出<br>︶"
    assert upright("<b>") == "&lt;<br>b<br>&gt;"  # escaped, one character a line
    assert label_px(["猫", "[CLS]"], 12) == pytest.approx(36.0) and label_px([]) == 0
    title, notes = axis_title_y("query (attending)", 40)
    assert title == {"text": "query (attending)"} and notes == []
    title, notes = axis_title_y("查询", 40)
    assert title is None and notes[0]["text"] == "查<br>询" and notes[0]["textangle"] == 0
    assert notes[0]["xshift"] == -50 and notes[0]["xanchor"] == "right"  # left of the tick labels
    assert colorbar_title("注意力权重")["side"] == "top" and colorbar_title("attention weight")["side"] == "right"


def test_heatmap_is_sized_by_the_page_and_its_labels_turn_only_when_needed():
    import numpy as np

    from attention_explorer.components.figures import heatmap_figure

    fig = heatmap_figure(np.eye(4, dtype=np.float32), ["a", "b", "c", "d"], "t")
    layout = fig["layout"]
    assert "height" not in layout  # the page sizes it (assets/style.css .ae-square)
    assert "tickangle" not in layout["xaxis"] and layout["xaxis"]["autotickangles"][0] == 0
    assert layout["yaxis"]["scaleanchor"] == "x" and layout["yaxis"]["automargin"] is True


def test_labelled_token_axes_let_their_labels_pass_the_edge():
    """Key labels are level where they fit. plotly.js's default for a labelled linear axis ("hide past div") measures every tick label on every
    redraw: ~70 ms of a heatmap head change with 100 labels (bench/browser.py, the cross-attention heatmap).
    Every figure that names tokens on a linear axis turns it off."""
    from attention_explorer.components import analysis_figures, pooled

    labels = [f"t{i}" for i in range(9)]
    att = random_attention(1, 9, seed=2)[0]
    figs = {
        "heatmap": figures.heatmap_figure(att, labels, "t"),
        "cross heatmap": figures.heatmap_figure(att[:5], labels, "t", query_labels=labels[:5]),
        "exact tile": pooled.long_heatmap_figure(att, 1, "max", (0, 9, 0, 9), labels, labels, "t"),
        "token focus": analysis_figures.focus_figure(random_attention(3, 9, seed=3)[:, 0], labels, "t0"),
    }
    checked = 0
    for name, fig in figs.items():
        for key, axis in fig["layout"].items():
            if key.startswith(("xaxis", "yaxis")) and axis.get("ticktext") and axis.get("type") != "category":
                assert axis.get("ticklabeloverflow") == "allow", (name, key)
                checked += 1
            if key.startswith("xaxis") and axis.get("ticktext"):  # level where they fit (CJK too), else turned
                assert "tickangle" not in axis and axis["autotickangles"][0] == 0, (name, key)
    assert checked >= 7
