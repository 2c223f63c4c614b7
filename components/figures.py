"""Figure builders: numpy in, Plotly figure (a plain dict) out.

Figures are built as dicts, not ``go.Figure``: no validation on the hot path. Attention maps go out as
palette PNGs in one ``image`` trace (``components.images``: one byte a cell, the fastest thing plotly.js
draws); other arrays as base64 typed arrays (``{"dtype", "bdata", "shape"}``), which plotly.js reads
without parsing JSON numbers.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import images
from .i18n import _

VIRIDIS = "Viridis"
GRID_COLS = 4
GRID_TILE_PX = 190  # a grid tile on screen
GRID_TITLE_PX = 22  # the band above each row of tiles, for their titles
GRID_LABEL_PX = 64  # room left of the tiles for the tokens of short texts
GRID_MAX_CELLS = 128  # larger tiles are max-pooled to at most this many cells a side
LABEL_LIMIT_GRID = 24  # token labels on grid tiles up to this many tokens
LABEL_LIMIT_HEATMAP = 120
# Tick labels may pass the figure's edge (automargin makes room for them anyway): plotly.js's default for
# a linear axis, "hide past div", measures every label against the page on every redraw, ~70 ms of a head
# change's ~100 ms with 100 labels (docs/benchmarks.md, the cross-attention heatmap).
TICK_OVERFLOW = "allow"
TURNS = [0, -60, -90]  # token labels stay level where they fit, else turn (plotly.js tries each angle)
# Latin fonts first, then CJK ones so Chinese tokens and labels draw as characters (plotly.js writes the
# family onto every text element: the page's CSS cannot reach it).
FONT = ("Lato, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, 'Noto Sans CJK SC', 'Source Han Sans SC', "
        "'WenQuanYi Zen Hei', 'Microsoft YaHei', 'PingFang SC', sans-serif")
HIGHLIGHT = "#e4572e"
HEAD_COLORS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a",
    "#637939", "#8c6d31", "#843c39", "#7b4173",
]
_DTYPES = {np.dtype(np.uint8): "u1", np.dtype(np.float32): "f4", np.dtype(np.int32): "i4", np.dtype(np.float64): "f8"}


def typed_array(array: np.ndarray) -> dict:
    """A numpy array as plotly.js's base64 typed-array spec."""
    array = np.ascontiguousarray(array)
    spec = {"dtype": _DTYPES[array.dtype], "bdata": base64.b64encode(array.tobytes()).decode("ascii")}
    if array.ndim > 1:
        spec["shape"] = ", ".join(str(n) for n in array.shape)
    return spec


def safe_label(label: str) -> str:
    """A token as literal text: plotly renders a little HTML in labels, so escape it."""
    return html.escape(label, quote=False)


def unique_labels(labels: list[str]) -> list[str]:
    """Labels made unique with zero-width spaces, so repeated tokens get their own category on an axis."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        label = safe_label(label)
        count = seen.get(label, 0)
        seen[label] = count + 1
        out.append(label + "\u200b" * count)
    return out


def _base_layout(**extra) -> dict:
    layout = {
        "font": {"family": FONT, "size": 12},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
    }
    layout.update(extra)
    return layout


def empty_figure(message: str | None = None) -> dict:
    """A blank figure that says what to do (by default: type a sentence and press Analyze)."""
    message = _("Type a sentence and press Analyze.") if message is None else message
    return {
        "data": [],
        "layout": _base_layout(
            xaxis={"visible": False}, yaxis={"visible": False}, height=260,
            annotations=[{"text": safe_label(message), "showarrow": False, "xref": "paper", "yref": "paper",
                          "x": 0.5, "y": 0.5, "font": {"size": 15, "color": "#6c757d"}}],
        ),
    }


def max_pool_cells(seq: int, max_cells: int = GRID_MAX_CELLS, block_of: int | None = None) -> int:
    """How many cells ``max_pool`` leaves of ``seq`` tokens (pooled in blocks set by ``block_of``, the
    longer side of a rectangular matrix, when given)."""
    return math.ceil(seq / max(1, math.ceil((block_of or seq) / max_cells)))


def max_pool(matrices: np.ndarray, max_cells: int = GRID_MAX_CELLS) -> tuple[np.ndarray, int]:
    """Block-max-pools the last two axes so neither exceeds ``max_cells``; returns (pooled, block size).
    A rectangular matrix (cross-attention) is pooled in square blocks set by its longer side.

    Rows are pooled first (maxima of whole contiguous rows), then the columns of what is left: 5x
    faster than one reduction over both. float16 input (attention as stored) is pooled on its bit
    patterns as uint16: for weights >= 0 the order of the patterns is the order of the values, and
    integer maxima are several times faster than numpy's float16 ones (90 ms -> 7 ms for a whole
    model at 512 tokens)."""
    n_rows, n_cols = matrices.shape[-2], matrices.shape[-1]
    block = max(1, math.ceil(max(n_rows, n_cols) / max_cells))
    if block == 1:
        return matrices, 1
    if matrices.dtype == np.float16:
        pooled, block = max_pool(np.ascontiguousarray(matrices).view(np.uint16), max_cells)
        return pooled.view(np.float16), block
    cells_r, cells_c = math.ceil(n_rows / block), math.ceil(n_cols / block)
    lead = matrices.shape[:-2]
    if (cells_r * block, cells_c * block) != (n_rows, n_cols):
        padded = np.zeros(lead + (cells_r * block, cells_c * block), dtype=matrices.dtype)
        padded[..., :n_rows, :n_cols] = matrices
        matrices = padded
    rows = matrices.reshape(lead + (cells_r, block, cells_c * block)).max(axis=-2)
    return rows.reshape(lead + (cells_r, cells_c, block)).max(axis=-1), block


def to_uint8(weights: np.ndarray) -> np.ndarray:
    """Weights in [0, 1] as 0-255."""
    return np.rint(np.clip(weights, 0.0, 1.0) * 255.0).astype(np.uint8)


def note_span(note: str | None) -> str:
    """A grey, smaller note after a title (escaped: notes can hold token text)."""
    return f" <span style='font-size:12px;color:#6c757d'>{safe_label(note)}</span>" if note else ""


def is_cjk(text: str) -> bool:
    """Whether ``text`` holds Chinese, Japanese or Korean characters (or their full-width punctuation):
    such text reads upright, so it is not turned sideways on an axis."""
    return any("\u2e80" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af" or "\uf900" <= c <= "\ufaff"
               or "\uff00" <= c <= "\uffef" for c in text)


_UPRIGHT = {"（": "︵", "）": "︶", "(": "︵", ")": "︶", "「": "﹁", "」": "﹂", "—": "︱", "…": "︙", "→": "↓", " ": ""}


def upright(text: str) -> str:
    """CJK text set vertically as it is written: one character a line, brackets in their vertical forms."""
    return "<br>".join(safe_label(_UPRIGHT.get(c, c)) for c in text if _UPRIGHT.get(c, c))


def label_px(labels: list[str], size: int = 12) -> float:
    """About how wide the widest of ``labels`` is drawn at ``size`` px (CJK characters a full em,
    others about 0.6 em): enough to leave room for them beside an axis."""
    def width(label: str) -> float:
        return sum(size if is_cjk(c) else 0.6 * size for c in label)
    return max((width(label) for label in labels), default=0.0)


def axis_title_y(text: str, labels_px: float, **where) -> tuple[dict | None, list[dict]]:
    """An axis title for the y axis: plotly.js turns it sideways, which is right for Latin text; CJK
    text stays upright instead, set vertically in an annotation left of the tick labels (``where``:
    the annotation's ``x``/``xref``/``y``/``yref`` when not the first axis's paper edge). Returns
    (the axis's ``title``, the annotations)."""
    if not is_cjk(text):
        return {"text": text}, []
    return None, [{"text": upright(text), "textangle": 0, "showarrow": False, "xref": where.get("xref", "paper"),
                   "yref": where.get("yref", "paper"), "x": where.get("x", 0.0), "y": where.get("y", 0.5),
                   "xanchor": "right", "yanchor": "middle", "xshift": -(labels_px + 10),
                   "font": {"size": 13, "color": "#444"}}]


def colorbar_title(text: str) -> dict:
    """A colour bar's title: beside the bar, turned, for Latin text; above it, upright, for CJK."""
    return {"text": text, "side": "top"} if is_cjk(text) else {"text": text, "side": "right"}


def colorbar_trace(title: str | None = None, vmax: float = 1.0) -> dict:
    """An invisible two-cell heatmap on hidden axes whose only job is the colour bar of the image
    beside it (image traces have none). Same colours as the image's palette."""
    title = _("attention weight") if title is None else title
    return {
        "type": "heatmap", "z": [[0.0, vmax]], "xaxis": "x2", "yaxis": "y2", "opacity": 0,
        "colorscale": images.colorscale(), "zmin": 0, "zmax": vmax, "hoverinfo": "skip",
        "colorbar": {"title": colorbar_title(title), "thickness": 14, "len": 0.9},
    }


_HIDDEN_AXIS = {"visible": False, "domain": [0.0, 0.001], "fixedrange": True}


def _image_trace(indices: np.ndarray) -> dict:
    return {"type": "image", "source": images.png_data_uri(indices), "x0": 0, "y0": 0, "dx": 1, "dy": 1,
            "hoverinfo": "none", "name": "attention"}


def _image_axes(width: int, height: int, xticks: tuple[list, list] | None, yticks: tuple[list, list] | None,
                **extra) -> dict:
    """x and y axes for an image of ``width`` x ``height`` cells: square cells, rows top to bottom."""
    def axis(ticks, size, reverse, **more):
        rng = [size - 0.5, -0.5] if reverse else [-0.5, size - 0.5]
        spec = {"range": rng, "showgrid": False, "zeroline": False, "ticks": "", "constrain": "domain"}
        if ticks is None:
            spec.update(showticklabels=False)
        else:
            spec.update(tickmode="array", tickvals=ticks[0], ticktext=[safe_label(t) for t in ticks[1]],
                        ticklabeloverflow=TICK_OVERFLOW)
        spec.update(more)
        return spec
    xaxis = axis(xticks, width, False, **extra.pop("xaxis", {}))
    yaxis = axis(yticks, height, True, scaleanchor="x", **extra.pop("yaxis", {}))
    return {"xaxis": xaxis, "yaxis": yaxis, "xaxis2": {**_HIDDEN_AXIS, "anchor": "y2"},
            "yaxis2": {**_HIDDEN_AXIS, "anchor": "x2"}}


def grid_geometry(count: int, seq: int, *, tiles: list[int] | None = None, tile: str = "head",
                  keys: int | None = None) -> dict:
    """Where the tiles of a grid of ``count`` maps of ``seq`` query tokens (and ``keys`` key tokens,
    when not the same: cross-attention) go, in image cells (a tile's longer side is ``GRID_TILE_PX``
    px on screen): the figure's ``layout.meta``, which the browser reads to resolve hovers and clicks
    (assets/21-hover.js)."""
    keys = seq if keys is None else keys
    cells_y = max_pool_cells(seq, block_of=max(seq, keys))
    cells_x = max_pool_cells(keys, block_of=max(seq, keys))
    cells = max(cells_x, cells_y)
    px_per_cell = GRID_TILE_PX / cells
    gap = max(1, round(cells * 0.08))
    band = max(1, math.ceil(GRID_TITLE_PX / px_per_cell))
    columns = max(1, min(GRID_COLS, count))
    tiles = tiles if tiles is not None else list(range(count))
    names = {"head": _("head {number}"), "layer": _("layer {number}")}.get(tile, tile + " {number}")
    rows = -(-count // columns)
    return {"kind": "head-grid", "tiles": tiles, "tile": tile, "tile_names": [names.format(number=t) for t in tiles],
            "highlight": HIGHLIGHT, "seq": seq, "keys": keys, "cells": cells, "cells_x": cells_x, "cells_y": cells_y,
            "block": math.ceil(max(seq, keys) / cells), "gap": gap, "band": band, "columns": columns, "rows": rows,
            "stride_x": cells_x + gap, "stride_y": cells_y + band + gap, "px_per_cell": px_per_cell,
            "width": columns * (cells_x + gap) - gap, "height": rows * (cells_y + band + gap) - gap}


def grid_source(maps: np.ndarray, pooled: tuple[int, int, int] | None = None) -> str:
    """The tiled picture of a grid's ``(count, seq, seq)`` maps (float16 or float32, in [0, 1]), as the
    PNG data URI ``head_grid_figure`` shows. ``pooled`` = (block, queries, keys): the maps are pooled
    already (a long text's, exact, from ``View.pictures``)."""
    if pooled is not None:
        meta = grid_geometry(maps.shape[0], pooled[1], keys=pooled[2])
    else:
        meta = grid_geometry(maps.shape[0], maps.shape[-2], keys=maps.shape[-1])
    pooled, _block = (maps, pooled[0]) if pooled is not None else max_pool(maps)
    image, _sx, _sy = images.tile(images.to_levels(pooled), meta["columns"], meta["gap"], meta["band"])
    return images.png_data_uri(image)


def grid_selection(meta: dict, selected: int | None) -> dict:
    """The tile titles (the selected one bold and coloured) and the outline of the selected tile:
    ``{"text", "colors", "shapes"}`` for the titles' text trace and the layout. (The browser does the
    same when it moves the outline itself: ``gridSelection`` in assets/23-gate.js.)"""
    texts, colors, shapes = [], [], []
    cells_x, cells_y = meta.get("cells_x", meta["cells"]), meta.get("cells_y", meta["cells"])
    sx, sy, band, columns = meta["stride_x"], meta["stride_y"], meta["band"], meta["columns"]
    for i, (tile_id, name) in enumerate(zip(meta["tiles"], meta["tile_names"])):
        r, c = divmod(i, columns)
        is_selected = selected is not None and tile_id == selected
        texts.append(name)  # the selected one in the highlight colour (the browser recolours it alone)
        colors.append(HIGHLIGHT if is_selected else "#333")
        if is_selected:
            top = r * sy + band
            shapes.append({"type": "rect", "xref": "x", "yref": "y", "x0": c * sx - 0.5, "x1": c * sx + cells_x - 0.5,
                           "y0": top - 0.5, "y1": top + cells_y - 0.5, "line": {"color": HIGHLIGHT, "width": 3}})
    return {"text": texts, "colors": colors, "shapes": shapes}


def _text_trace(xs: list, ys: list, texts: list, position: str, **extra) -> dict:
    """Text placed in data coordinates, one trace for many labels: several times cheaper for plotly.js
    to draw than as many annotations or tick labels (measured: 4 ms for 12 titles, against 19 ms)."""
    return {"type": "scatter", "mode": "text", "x": xs, "y": ys, "text": texts, "textposition": position,
            "hoverinfo": "skip", "showlegend": False, "cliponaxis": False, **extra}


def head_grid_figure(maps: np.ndarray, labels: list[str], layer: int, *, selected: int | None = None,
                     tiles: list[int] | None = None, title: str | None = None, note: str | None = None,
                     tile: str = "head", source: str | None = None, extra_meta: dict | None = None,
                     key_labels: list[str] | None = None, pooled: tuple[int, int, int] | None = None) -> dict:
    """Every head of one layer (or, with ``tile="layer"``, one map per layer) as tiles of ONE image
    trace, four a row, one 0-1 colour scale.

    ``maps`` is ``(count, queries, keys)`` in [0, 1] (``key_labels`` name the keys when they are other
    tokens: cross-attention); long texts are max-pooled to ``GRID_MAX_CELLS`` a side.
    The image is a palette PNG (see ``components.images``); hover text and clicks are resolved in the
    browser from ``layout.meta`` (tile geometry, tokens), see assets/21-hover.js and 23-gate.js. Trace 0 is the
    image, trace 1 the tiles' titles (text), then the colour bar and, for short texts, the tokens
    beside each row of tiles: drawn as text traces, not annotations or tick labels, which cost
    plotly.js several times more on every redraw.

    ``source`` is the picture when it was made already (``grid_source(maps)``: then ``maps`` gives only
    the shape); ``extra_meta`` goes into ``layout.meta`` (e.g. every layer's picture, for the browser).
    """
    count, seq, keys = maps.shape[0], maps.shape[-2], maps.shape[-1]
    if pooled is not None:  # (block, queries, keys): maps pooled already (a long text's, exact)
        seq, keys = pooled[1], pooled[2]
    meta = {**grid_geometry(count, seq, tiles=tiles, tile=tile, keys=keys), "layer": layer, "tokens": labels,
            "key_tokens": key_labels if key_labels is not None else labels, **images.image_meta(), **(extra_meta or {})}
    block, sx, sy = meta["block"], meta["stride_x"], meta["stride_y"]
    source = source if source is not None else grid_source(maps, pooled)
    selection = grid_selection(meta, selected)
    centres = [(i % meta["columns"]) * sx + (meta["cells_x"] - 1) / 2 for i in range(count)]
    tops = [(i // meta["columns"]) * sy + meta["band"] - 1 for i in range(count)]
    data = [{"type": "image", "source": source, "x0": 0, "y0": 0, "dx": 1, "dy": 1, "hoverinfo": "none",
             "name": "attention"},
            _text_trace(centres, tops, selection["text"], "top center",
                        textfont={"size": 12, "color": selection["colors"]}),
            colorbar_trace()]
    show_labels = block == 1 and max(seq, keys) <= LABEL_LIMIT_GRID
    label_cells = 0.0
    if show_labels:  # the tokens beside each row of tiles (rows are queries; hover says the rest)
        rows = [r * sy + meta["band"] + i for r in range(meta["rows"]) for i in range(seq)]
        data.append(_text_trace([-0.7] * len(rows), rows, [safe_label(t) for t in labels] * meta["rows"],
                                "middle left", textfont={"size": 9, "color": "#444"}))
        # text outside an axis's range is hidden by plotly.js: widen the range to hold the labels
        label_cells = GRID_LABEL_PX / meta["px_per_cell"]
    title_text = (title or _("Layer {layer} · all {count} heads").format(layer=layer, count=count))
    if block > 1:
        title_text += note_span(_("(each cell: max over {block}×{block} tokens)").format(block=block))
    title_text += note_span(note)
    height = int(meta["rows"] * sy * meta["px_per_cell"]) + 90
    layout = _base_layout(
        title={"text": title_text, "x": 0.01, "xanchor": "left"}, height=height,
        margin={"l": 20, "r": 20, "t": 50, "b": 10},
        shapes=selection["shapes"], meta=meta, hovermode="closest", dragmode=False,
        **_image_axes(meta["width"], meta["height"], None, None,
                      xaxis={"fixedrange": True, "range": [-0.5 - label_cells, meta["width"] - 0.5]},
                      yaxis={"fixedrange": True}),
    )
    return {"data": data, "layout": layout}


def heatmap_figure(matrix: np.ndarray | None, labels: list[str], title: str, *, note: str | None = None,
                   query_labels: list[str] | None = None, token_index: list[int] | None = None,
                   value_title: str | None = None, grid: dict | None = None) -> dict:
    """One attention matrix as a palette image: keys on x, queries on y, Viridis over 0-1.

    Hover (``query → key: weight``) is drawn in the browser from ``layout.meta`` and the pixel, so one
    byte a cell goes over the wire. ``token_index`` maps each row to its raw token index (a click on a
    row follows that token).

    ``grid`` shows one head out of a head grid's picture instead of ``matrix``: ``{"source", "meta"
    (the grid's geometry), "head", "titles" (one a head), "key"}``. The picture is placed so that the
    head's tile covers the axes and the rest is clipped away; the browser then shows another head of
    the layer by moving the picture (no request, no new image). With ``"means"`` (every layer's mean of
    heads, as pictures) and ``head`` None it shows the layer's mean instead, and the grid picture rides
    in ``meta.grid_source``: the browser goes between heads and the mean alone (assets/23-gate.js).
    """
    keys = labels
    queries = query_labels if query_labels is not None else keys
    rows, cols = (len(queries), len(keys)) if matrix is None else matrix.shape
    show_labels = max(rows, cols) <= LABEL_LIMIT_HEATMAP
    ticks_x = (list(range(cols)), keys) if show_labels else None
    ticks_y = (list(range(rows)), queries) if show_labels else None
    # No height: the page sizes the graph to its column (assets/style.css, .ae-square), the plot square.
    # Key labels stay horizontal while they fit their column, else turn (plotly.js tries each angle).
    ytitle, annotations = axis_title_y(_("query (attending)"), label_px(queries) if show_labels else 0)
    layout = _base_layout(
        title={"text": title + note_span(note), "x": 0.01, "xanchor": "left"},
        margin={"l": 40 if ytitle else 30, "r": 20, "t": 60, "b": 40}, hovermode="closest", dragmode="zoom",
        annotations=annotations,
        meta={"kind": "heatmap", "keys": keys, "queries": queries, **images.image_meta(),
              "token_index": token_index if token_index is not None else list(range(rows))},
        **_image_axes(cols, rows, ticks_x, ticks_y,
                      xaxis={"title": {"text": _("key (attended to)")}, 
                             "autotickangles": [0, -45, -90], "automargin": True},
                      yaxis={"title": ytitle, "automargin": True}),
    )
    if rows != cols:  # rectangular (cross-attention): a height of its own (plotly.js widens the range of
        # the longer axis instead of narrowing its domain when the page's square box is resized)
        layout["height"] = max(360, min(900, 22 * max(rows, cols) + 160))
    if annotations:  # room left of the tick labels for the upright title
        layout["margin"]["l"] = int(label_px(queries) if show_labels else 0) + 40
    layout["yaxis"] = {k: v for k, v in layout["yaxis"].items() if v is not None}
    if grid is None:
        return {"data": [_image_trace(images.to_levels(matrix)), colorbar_trace(value_title)], "layout": layout}
    layout["meta"]["grid"] = {key: grid["meta"][key] for key in ("columns", "stride_x", "stride_y", "band", "tiles")}
    layout["meta"].update(head=grid["head"] if grid["head"] is not None else "mean", titles=grid["titles"],
                          key=grid["key"], attention_kind=grid.get("kind"), layer=grid.get("layer"),
                          title_template=grid.get("title_template"))
    if grid.get("means") is not None:
        layout["meta"].update(means=grid["means"], mean_title_template=grid.get("mean_title_template"))
    if grid["head"] is None:  # the mean of heads; the layer's grid picture kept for the heads
        layout["meta"].update(grid_source=grid["source"], grid_layer=grid.get("layer"))
        source, (x0, y0) = grid["means"][grid["layer"]], (0, 0)
    else:
        source, (x0, y0) = grid["source"], grid_tile_offset(grid["meta"], grid["head"])
    trace = {"type": "image", "source": source, "x0": x0, "y0": y0, "dx": 1, "dy": 1, "hoverinfo": "none",
             "name": "attention"}
    return {"data": [trace, colorbar_trace(value_title)], "layout": layout}


def grid_tile_offset(meta: dict, tile: int) -> tuple[int, int]:
    """Where a grid picture goes so that tile ``tile`` starts at (0, 0): its (x0, y0)."""
    row, column = divmod(tile, meta["columns"])
    return -column * meta["stride_x"], -(row * meta["stride_y"] + meta["band"])


# ---------------------------------------------------------------- arcs
# Arcs are drawn by the page on one 2-D canvas (assets/22-arcs.js, from ``layout.meta.lines``; SVG paths cost
# plotly.js 143-219 ms a draw), the tokens are SVG text (they take clicks and hover).
ARC_LEVELS = (0.1, 0.25, 0.5)  # weight bucket edges: one trace a bucket (and a head)
ARC_WIDTHS = (1.0, 2.0, 3.5, 5.5)
ARC_OPACITY = (0.3, 0.5, 0.7, 0.9)
ARC_WINDOW = 64  # tokens drawn at once; longer texts are read through a window that moves
ALL_HEADS_WIDTH, ALL_HEADS_OPACITY = 1.6, 0.6  # arcs of every head at once: one trace a head
FAR_WIDTH, FAR_OPACITY = 1.0, 0.35  # arcs to tokens outside the window: dotted, light, behind the others
_ARC_POINTS = 11  # points an arc (plus a gap): straight segments on WebGL, so enough for a smooth curve
GENERATED_COLOR = "#7b3294"  # tokens the model generated (a decoder's continuation): purple, in italics
ONE_MATRIX_COLOR = "#3b528b"


def token_positions(labels: list[str]) -> np.ndarray:
    """x centre of each token, in pixels, spaced by label length so the text reads naturally."""
    widths = np.array([max(2, len(label)) * 7.5 + 16 for label in labels])
    return np.cumsum(widths) - widths / 2


def arc_window(units: int, start: int, focus: int | None = None) -> tuple[int, int]:
    """The units ``[first, end)`` the arc view draws: ``ARC_WINDOW`` of them from ``start``, moved to
    hold ``focus`` when it is outside; all of them for a short text."""
    size = min(ARC_WINDOW, units)
    start = min(max(0, start), units - size)
    if focus is not None and not start <= focus < start + size:
        start = min(max(0, focus - size // 2), units - size)
    return start, start + size


def cross_windows(n_q: int, n_k: int, start: int, focus: int | None = None) -> tuple[tuple[int, int], tuple[int, int]]:
    """The target rows ``[q0, q1)`` and source rows ``[k0, k1)`` a cross-attention arc view draws: one
    window (``arc_window``) over the longer row; a row no longer than the window is shown whole."""
    first, end = arc_window(max(n_q, n_k), start, focus)

    def row_window(count: int) -> tuple[int, int]:
        if count <= end - first:
            return 0, count
        begin = min(first, count - (end - first))
        return begin, begin + (end - first)

    return row_window(n_q), row_window(n_k)


def select_arcs(weights: np.ndarray, top_k: int, min_weight: float, focus: int | None = None,
                queries: np.ndarray | None = None):
    """The arcs to draw: for every group and query, its ``top_k`` keys of weight >= ``min_weight`` (and > 0).

    ``weights`` is ``(groups, rows, keys)`` (rows: every query, or only those given); ``queries`` limits
    the rows (default: all, or ``focus``). Returns arrays ``(group, row, key, weight)``, largest first.
    """
    groups, _rows, n_keys = weights.shape
    k = max(1, min(int(top_k), n_keys))
    if focus is not None:
        queries = np.array([focus])
    elif queries is None:
        queries = np.arange(weights.shape[1])
    rows = weights[:, queries, :]  # (groups, q, keys)
    if k < n_keys:  # keep the k largest of each row, then order just those (ties: earlier key first)
        candidates = np.sort(np.argpartition(-rows, k - 1, axis=-1)[..., :k], axis=-1)
    else:
        candidates = np.broadcast_to(np.arange(n_keys), rows.shape)
    values = np.take_along_axis(rows, candidates, axis=-1)
    order = np.take_along_axis(candidates, np.argsort(-values, axis=-1, kind="stable"), axis=-1)
    top = np.take_along_axis(rows, order, axis=-1)
    g, qi, j = np.nonzero((top >= min_weight) & (top > 0))
    return g, queries[qi], order[g, qi, j], top[g, qi, j]


def _token_text(labels: list[str], focus: int | None, generated) -> list[str]:
    out = []
    for i, label in enumerate(labels):
        text = safe_label(label)
        if generated is not None and generated[i]:
            text = f"<i>{text}</i>"
        out.append(f"<b>{text}</b>" if i == focus else text)
    return out


def _clickable_tokens(x: np.ndarray, y: float, labels: list[str], focus: int | None, name: str,
                      generated=None) -> dict:
    """The tokens of an arc view as text alone at height ``y`` (square markers behind them cost
    plotly.js a third of the figure's draw); the ``focus`` one bold and highlighted, generated ones
    (``generated``: a bool a token) purple and in italics; a click isolates."""
    n = len(labels)

    def color(i: int) -> str:
        if i == focus:
            return HIGHLIGHT
        return GENERATED_COLOR if generated is not None and generated[i] else "#212529"

    return {
        "type": "scatter", "mode": "text", "x": typed_array(np.asarray(x).astype(np.float32)),
        "y": typed_array(np.full(n, y, dtype=np.float32)),
        "text": _token_text(labels, focus, generated),
        "textposition": "middle center",
        "textfont": {"size": 13, "color": [color(i) for i in range(n)]},
        "hovertemplate": "%{text}<extra>" + _("click to isolate") + "</extra>", "showlegend": False, "name": name,
        "cliponaxis": False,
    }


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:g})"


def _arc_lines(g, q, k, w, far, groups: int, group_names: list[str] | None, ends, shape: str) -> list[dict]:
    """The arcs, for the page's canvas (assets/22-arcs.js draws them: one 2-D canvas whatever their
    number, where plotly.js's SVG paths cost 143-219 ms a draw; the app's cartesian plotly.js bundle
    has no WebGL traces). One group of lines per head (or the one matrix) and weight level: one matrix's
    four levels differ in width and opacity; every head at once, one group a head in its colour; the
    arcs to keys outside the window (``far``), dotted to the window's edge. Each group is compact (a
    window of every head at 4,096 tokens is ~700 arcs: ~20 KB, not the 130 KB of their points and hover
    texts): per arc, as typed arrays, its query (``q``: place in the window), key (``k``: index in the
    whole text), exact weight (``w``) and what the page draws it from (``x0``, ``x1``: its ends in x;
    ``h``: its signed height, 0 a self-loop; ``_arc_points`` makes the points), and ``head``, which the
    page's head chips hide or solo. ``decoded_arc_lines`` reads them back with the points and the hover
    texts the page shows. ``ends(sel)`` gives ``(x0, x1, h)`` of the arcs of the boolean mask ``sel``."""
    lines = []
    colors = HEAD_COLORS if groups > 1 else [ONE_MATRIX_COLOR]
    bucket = np.searchsorted(ARC_LEVELS, w, side="right")
    levels = range(len(ARC_WIDTHS)) if groups == 1 else [None]
    for group in range(groups):
        color = colors[group % len(colors)]
        name = group_names[group] if group_names else ""
        mine = g == group
        for level in [*levels, "far"]:
            if level == "far":
                sel = mine & far
            else:
                sel = mine & ~far & ((bucket == level) if level is not None else True)
            if not sel.any():
                continue
            x0, x1, h = ends(sel)
            alpha = ALL_HEADS_OPACITY if level is None else (FAR_OPACITY if level == "far" else ARC_OPACITY[level])
            lines.append({
                "head": group, "name": name, "color": _rgba(color, alpha),
                "width": {None: ALL_HEADS_WIDTH, "far": FAR_WIDTH}.get(level) or ARC_WIDTHS[level],
                "far": level == "far", "shape": shape, "points": _ARC_POINTS + 1, "count": int(sel.sum()),
                **{name_: typed_array(np.asarray(v, dtype=dtype)) for name_, v, dtype in (
                    ("q", q[sel], np.int32), ("k", k[sel], np.int32), ("w", w[sel], np.float32),
                    ("x0", x0, np.float32), ("x1", x1, np.float32), ("h", h, np.float32))},
            })
    return sorted(lines, key=lambda line: not line["far"])  # the arcs out of the window drawn first, behind


def _arc_hover_meta(k, q_labels: list[str], k_labels: list[str], group_names) -> dict:
    """What the page needs to write an arc's hover text (``arc_hover_text``): the window's query labels,
    the label of every key an arc goes to (by its index), the words in the page's language."""
    keys = sorted({int(v) for v in np.asarray(k).tolist()})
    return {"labels": list(q_labels), "key_labels": {str(v): k_labels[v] for v in keys},
            "words": {"head": _("head"), "weight": _("weight"), "token": _("token")},
            "named": bool(group_names)}


def arc_hover_text(meta: dict, line: dict, q: int, k: int, w: float) -> str:
    """The hover text of one arc (assets/22-arcs.js writes the same): the two tokens (and where the key
    is, for an arc out of the window), the exact weight, the head."""
    words = meta["words"]
    about = f" · {words['head']} {line['name']}" if meta.get("named") else ""
    where = f" ({words['token']} {k})" if line["far"] else ""
    return f"{meta['labels'][q]} → {meta['key_labels'][str(k)]}{where}\n{words['weight']} {w:.4f}{about}"


def _decoded(spec: dict) -> np.ndarray:
    dtype = {"u1": np.uint8, "f4": np.float32, "i4": np.int32, "f8": np.float64}[spec["dtype"]]
    return np.frombuffer(base64.b64decode(spec["bdata"]), dtype=dtype)


def _arc_points(x0, x1, h, shape: str) -> tuple[np.ndarray, np.ndarray]:
    """The points of arcs from their ends and heights (assets/22-arcs.js draws the same), ``_ARC_POINTS``
    each and a NaN gap, flat float32: a half-ellipse from ``x0`` to ``x1`` of height ``|h|`` above (h > 0)
    or below the tokens, a small loop for ``h == 0``; ``shape="cross"``: a gentle S from a target token
    (above, y = 0.86) down to a source token (y = 0.14), leaving and arriving vertically."""
    x0, x1, h = (np.asarray(a, dtype=np.float64) for a in (x0, x1, h))
    t = np.linspace(0.0, 1.0, _ARC_POINTS)
    if shape == "cross":
        ease = t * t * (3 - 2 * t)
        xs = x0[:, None] + (x1 - x0)[:, None] * ease[None, :]
        ys = np.broadcast_to(0.86 - 0.72 * t[None, :], xs.shape)
    else:
        xs = x0[:, None] + (x1 - x0)[:, None] * t[None, :]
        ys = np.sign(h)[:, None] * (0.09 + np.abs(h)[:, None] * np.sin(np.pi * t)[None, :])
        loop = h == 0
        if loop.any():
            angle = np.pi * (1.5 + 2 * t)
            xs[loop] = x0[loop][:, None] + 9 * np.cos(angle)[None, :]
            ys[loop] = 0.09 + 0.06 * (1 + np.sin(angle))[None, :]
    gap = np.full((len(x0), 1), np.nan)
    return (np.hstack([xs, gap]).ravel().astype(np.float32), np.hstack([ys, gap]).ravel().astype(np.float32))


def decoded_arc_lines(figure: dict) -> list[dict]:
    """The arc figure's groups of lines (``layout.meta.lines``) read back: each also with ``queries``,
    ``keys`` (lists), ``weights`` (float32), the points ``x`` and ``y`` (float32, ``points`` an arc, NaN
    gaps) and the hover ``text`` of each arc, as the page draws and shows them."""
    meta = figure.get("layout", {}).get("meta") or {}
    out = []
    for line in meta.get("lines") or []:
        q, k, w = (_decoded(line[name]) for name in ("q", "k", "w"))
        xs, ys = _arc_points(_decoded(line["x0"]), _decoded(line["x1"]), _decoded(line["h"]), line["shape"])
        texts = [arc_hover_text(meta, line, a, b, v) for a, b, v in zip(q.tolist(), k.tolist(), w.tolist())]
        out.append({**line, "queries": q.tolist(), "keys": k.tolist(), "weights": w, "x": xs, "y": ys, "text": texts})
    return out


def arc_traces(figure: dict) -> list[dict]:
    """The arcs of an arc figure (``layout.meta.lines``, which the page draws on its canvas) as plotly.js
    SVG line traces: for pictures made without the page's code (PNG/SVG exports, offline HTML)."""
    return [{"type": "scatter", "mode": "lines", "x": typed_array(line["x"]), "y": typed_array(line["y"]),
             "hoverinfo": "skip", "showlegend": False, "name": line.get("name") or "attention",
             "line": {"color": line["color"], "width": line["width"], **({"dash": "dot"} if line.get("far") else {})}}
            for line in decoded_arc_lines(figure)]


@dataclass(frozen=True)
class PickedArcs:
    """The arcs of a window picked already (for a long text: ``services.analyses.arcs.window_arcs``, from the
    row tops it keeps) for ``arc_figure`` / ``cross_arc_figure`` in place of the window's rows: ``groups``
    groups (heads) over ``rows`` rows from the figure's ``first``; ``pick(focus)`` gives ``(group, query:
    place in the window, key, weight)`` as ``select_arcs`` does, only the query ``focus`` when not None."""

    groups: int
    rows: int
    pick: Callable[[int | None], tuple]


def _window_rows(weights: np.ndarray, n: int, first: int | None, start: int, focus: int | None) -> tuple:
    """``(rows, first, end)``: the window's rows of ``weights``, which holds every row (``first`` None: the
    window is chosen here from ``start`` and ``focus``) or only the window's, from row ``first``."""
    if first is None:
        first, end = arc_window(n, start, focus)
        return weights[:, first:end], first, end
    return weights, first, first + weights.shape[1]


def arc_figure(weights: np.ndarray, labels: list[str], *, top_k: int = 3, min_weight: float = 0.05,
               focus: int | None = None, group_names: list[str] | None = None, causal: bool = False,
               title: str = "", token_index: list[int] | None = None, start: int = 0, first: int | None = None,
               generated=None) -> dict:
    """Tokens in reading order; arcs from each query to the keys it attends to most.

    ``weights`` is ``(groups, seq, seq)``, or with ``first`` only the rows of the window that starts
    there, ``(groups, rows, seq)`` (a long text: the caller read only those rows). One group (one head,
    or the mean), or one per head, coloured by head (``HEAD_COLORS``; the page's chips say which colour
    is which head and hide or solo a head). Arcs to later tokens bend up, to earlier ones down; for
    one group, width and opacity follow the weight, in four buckets (one trace each). With ``focus``,
    only that token's arcs are drawn. A text longer than ``ARC_WINDOW`` tokens is drawn through a
    window of that many from ``start`` (see ``arc_window``): each query's top keys are chosen over its
    whole row, and arcs to keys outside the window are counted in ``meta.outside``, not drawn.
    ``generated`` (a bool a token, or None) marks the tokens the model generated.

    How to read the arcs (above: later token; causal models: all below) is said by the page, not
    drawn: an annotation costs plotly.js ~30 ms a draw here.

    Trace 0 is the tokens shown: a click's ``pointIndex`` is the token's place in the window
    (``meta.token_index`` maps it to the raw token). The arcs are ``meta.lines`` (``_arc_lines``), drawn
    by the page on a canvas: each group names the query (place in the window) and key of each of its
    arcs, so the browser keeps one token's arcs on hover, hides or solos a head and shows an arc's
    weight on hover without asking the server (``arc_traces`` turns them into SVG for exports).
    """
    seq = len(labels)
    if isinstance(weights, PickedArcs):
        rows, end, groups = weights, first + weights.rows, weights.groups
    else:
        rows, first, end = _window_rows(np.asarray(weights), seq, first, start, focus)
        groups = rows.shape[0]
    shown = labels[first:end]
    x = token_positions(shown)
    n = end - first
    width_px = int(x[-1] + x[0]) if n else 600
    local_focus = focus - first if focus is not None and first <= focus < end else None
    g, q, k, w = (rows.pick(local_focus) if isinstance(rows, PickedArcs)
                  else select_arcs(rows, top_k, min_weight, local_focus))
    far = (k < first) | (k >= end)  # drawn dotted to the window's edge
    outside = int(far.sum())
    span = float(x[-1] - x[0]) if n > 1 else 1.0
    xq = x[q]
    xk = np.where(k < first, 2.0, np.where(k >= end, width_px - 2.0, x[np.clip(k - first, 0, max(n - 1, 0))]))
    height = np.where(far, 0.45 + 0.55 * np.sqrt(np.minimum(1.0, np.abs(k - (q + first)) / max(seq, 1) * 4)),
                      0.12 + 0.88 * np.sqrt(np.abs(xk - xq) / max(span, 1.0)))
    sign = np.where(k > q + first, 1.0, -1.0)
    marks = None if generated is None else [bool(v) for v in list(generated)[first:end]]
    data = [_clickable_tokens(x, 0.0, shown, local_focus, "tokens", marks)]
    signed = np.where((xq == xk) & ~far, 0.0, sign * height)  # 0: a self-loop
    lines = _arc_lines(g, q, k, w, far, groups, group_names, lambda sel: (xq[sel], xk[sel], signed[sel]), "arc")
    index = token_index if token_index is not None else list(range(seq))
    layout = _base_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"} if title else None,
        height=460, width=max(width_px + 120, 700), autosize=False,
        margin={"l": 40, "r": 40, "t": 70 if title else 40, "b": 20},
        xaxis={"visible": False, "range": [0, width_px], "fixedrange": True},
        yaxis={"visible": False, "range": [-1.1, 0.3] if causal else [-1.1, 1.1], "fixedrange": True},
        showlegend=False,  # the page's head chips say which colour is which head (and hide or solo one)
        hovermode="closest", dragmode=False,
        meta={"kind": "arcs", "focus": local_focus, "arcs": int(len(w) - outside), "points": _ARC_POINTS + 1,
              "first": first, "end": end, "units": seq, "outside": outside, "token_index": index[first:end],
              "heads": groups if group_names else 0, "lines": lines,
              "generated": [i for i, v in enumerate(marks or []) if v],
              **_arc_hover_meta(k, shown, labels, group_names)},
    )
    layout = {k_: v for k_, v in layout.items() if v is not None}
    return {"data": data, "layout": layout}


def cross_arc_figure(weights: np.ndarray, query_labels: list[str], key_labels: list[str], *, top_k: int = 3,
                     min_weight: float = 0.05, focus: int | None = None, group_names: list[str] | None = None,
                     title: str = "", token_index: list[int] | None = None, start: int = 0,
                     first: int | None = None, generated=None) -> dict:
    """Cross-attention between two rows: target tokens above (the queries), source tokens below (the
    keys), a line from each target token to the source tokens it attends to most.

    ``weights`` is ``(groups, targets, sources)``, or with ``first`` only the target rows of the window
    (``cross_windows``) from ``first``; groups, buckets, ``focus``, the window (``start``, over the
    longer row), the head chips and the browser-side hover isolation work as in ``arc_figure``: trace 0
    is the target tokens (a click's ``pointIndex`` is the target's place in the window), trace 1 the
    source tokens (not clickable); ``meta.lines`` the lines, whose ``queries`` name their target tokens.
    """
    n_q, n_k = len(query_labels), len(key_labels)
    units = max(n_q, n_k)
    (q_first, q_end), (k_first, k_end) = cross_windows(n_q, n_k, start, focus)
    weights = weights if isinstance(weights, PickedArcs) else np.asarray(weights)
    given = weights.rows if isinstance(weights, PickedArcs) else weights.shape[1]
    if first is None:  # every target row: keep the window's
        rows = weights[:, q_first:q_end]
    elif first != q_first or given != q_end - q_first:
        raise ValueError(f"the rows given start at {first} and number {given}, the window is "
                         f"{q_first}..{q_end - 1}")
    else:
        rows = weights
    first, end = arc_window(units, start, focus)
    groups = rows.groups if isinstance(rows, PickedArcs) else rows.shape[0]
    shown_q, shown_k = query_labels[q_first:q_end], key_labels[k_first:k_end]
    xq, xk = token_positions(shown_q), token_positions(shown_k)
    width_px = float(max(xq[-1] + xq[0] if len(xq) else 0, xk[-1] + xk[0] if len(xk) else 0, 600))
    # centre the shorter row under (or over) the longer one
    xq = xq + (width_px - (xq[-1] + xq[0] if len(xq) else 0)) / 2
    xk = xk + (width_px - (xk[-1] + xk[0] if len(xk) else 0)) / 2
    # the rows' names, left of the first token of either row (a text point outside the axis range is not drawn)
    label_x = float(max(1.0, min(xq[0] if len(xq) else width_px, xk[0] if len(xk) else width_px) - 28))
    local_focus = focus - q_first if focus is not None and q_first <= focus < q_end else None
    g, q, k, w = (rows.pick(local_focus) if isinstance(rows, PickedArcs)
                  else select_arcs(rows, top_k, min_weight, local_focus))
    far = (k < k_first) | (k >= k_end)  # drawn dotted to the window's edge
    outside = int(far.sum())
    line_q = xq[q]
    line_k = np.where(k < k_first, 2.0, np.where(k >= k_end, width_px - 2.0,
                                                  xk[np.clip(k - k_first, 0, max(len(xk) - 1, 0))]))
    marks = None if generated is None else [bool(v) for v in list(generated)[q_first:q_end]]
    data = [_clickable_tokens(xq, 1.0, shown_q, local_focus, "target tokens", marks), {
        "type": "scatter", "mode": "text", "x": typed_array(xk.astype(np.float32)),
        "y": typed_array(np.zeros(len(shown_k), dtype=np.float32)), "text": [safe_label(l) for l in shown_k],
        "textposition": "middle center", "textfont": {"size": 13, "color": "#212529"}, "hoverinfo": "skip",
        "showlegend": False, "name": "source tokens", "cliponaxis": False,
    }, _text_trace([label_x, label_x], [1.0, 0.0], [_("target"), _("source")], "middle left",
                   textfont={"size": 11, "color": "#888"}, cliponaxis=False)]
    lines = _arc_lines(g, q, k, w, far, groups, group_names,
                       lambda sel: (line_q[sel], line_k[sel], np.ones(int(sel.sum()))), "cross")
    index = token_index if token_index is not None else list(range(n_q))
    layout = _base_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"} if title else None,
        height=360, width=max(int(width_px) + 160, 700), autosize=False,
        margin={"l": 80, "r": 40, "t": 70 if title else 40, "b": 20},
        xaxis={"visible": False, "range": [0, width_px], "fixedrange": True},
        yaxis={"visible": False, "range": [-0.25, 1.25], "fixedrange": True},
        showlegend=False, hovermode="closest", dragmode=False,
        meta={"kind": "arcs", "cross": True, "focus": local_focus, "arcs": int(len(w) - outside),
              "points": _ARC_POINTS + 1,
              "first": first, "end": end, "units": units, "outside": outside, "token_index": index[q_first:q_end],
              "heads": groups if group_names else 0, "lines": lines,
              "generated": [i for i, v in enumerate(marks or []) if v],
              **_arc_hover_meta(k, shown_q, key_labels, group_names)},
    )
    layout = {k_: v for k_, v in layout.items() if v is not None}
    return {"data": data, "layout": layout}
