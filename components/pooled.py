"""Pictures of long texts (issue 18): a map pooled in b x b blocks, with exact zoom and exact hover.

A long text's map (4,096 tokens: 16.7 million cells a head) is shown pooled: each cell the largest (or the
mean) weight of a ``block`` x ``block`` block of tokens. The axes are in TOKENS (units shown) whatever the
block, so a box zoom's ranges name tokens: the router then draws the exact part on screen
(``View.picture(..., region)``), pooled again only while it is still too large, down to single tokens with
their labels. Beside the picture (a palette PNG, one byte a cell) the figure carries every cell's exact
value as a float32 typed array (``layout.meta.exact.values``): the hover reads the exact weight (at the
tile level) or the block's exact max / mean and its token range (assets/29-zoom.js), never the palette's
1/254 steps.
"""

from __future__ import annotations

import math

import numpy as np

from . import images
from .figures import (
    GRID_MAX_CELLS,
    LABEL_LIMIT_HEATMAP,
    TICK_OVERFLOW,
    TURNS,
    _base_layout,
    colorbar_trace,
    note_span,
    safe_label,
    typed_array,
)
from .i18n import _

HEATMAP_CELLS = 256  # a long text's heatmap shows at most this many cells a side (pooled beyond)
BLANK = "#d9d9d9"  # cells a pair filter leaves out: visibly blank, not zero
SENTENCE_LINE = "#e4572e"


def block_for(side: int, cells: int = HEATMAP_CELLS) -> int:
    """The block (tokens a cell, a side) that shows ``side`` tokens in at most ``cells`` cells."""
    return max(1, math.ceil(max(1, side) / cells))


def pooled_label(block: int, how: str) -> str:
    """What a cell is, said in the figure: "each cell: max over b × b tokens" (or the mean)."""
    if how == "mean":
        return _("each cell: mean over {block} × {block} tokens").format(block=block)
    return _("each cell: max over {block} × {block} tokens").format(block=block)


def exact_meta(values: np.ndarray, block: int, how: str, r0: int, c0: int, n_rows: int, n_cols: int) -> dict:
    """What the hover needs to read a cell's exact value: the values (float32, rows x cols), where the
    picture starts (units shown), its block and how blocks were pooled."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    return {"values": typed_array(np.nan_to_num(values, nan=-1.0).ravel()), "rows": int(values.shape[0]),
            "cols": int(values.shape[1]), "block": int(block), "how": how, "r0": int(r0), "c0": int(c0),
            "n_rows": int(n_rows), "n_cols": int(n_cols)}


def _blank_shapes(keep_rows: np.ndarray | None, keep_cols: np.ndarray | None, n_rows: int, n_cols: int) -> list:
    """Light grey rectangles over the cells a pair filter leaves out (runs of rows or columns not kept),
    in unit coordinates, above the picture."""
    shapes = []

    def runs(keep: np.ndarray):
        out, start = [], None
        for i, k in enumerate(list(keep) + [True]):
            if not k and start is None:
                start = i
            elif k and start is not None:
                out.append((start, i))
                start = None
        return out

    base = {"type": "rect", "xref": "x", "yref": "y", "fillcolor": BLANK, "line": {"width": 0}, "layer": "above"}
    if keep_rows is not None:
        shapes += [{**base, "x0": -0.5, "x1": n_cols - 0.5, "y0": a - 0.5, "y1": b - 0.5} for a, b in runs(keep_rows)]
    if keep_cols is not None:
        shapes += [{**base, "x0": a - 0.5, "x1": b - 0.5, "y0": -0.5, "y1": n_rows - 0.5} for a, b in runs(keep_cols)]
    return shapes


def sentence_lines(row_segments: list | None, col_segments: list | None, n_rows: int, n_cols: int) -> list:
    """Lines where sentence A ends (the first unit of sentence B), across the rows and the columns."""
    shapes = []
    line = {"type": "line", "xref": "x", "yref": "y", "line": {"color": SENTENCE_LINE, "width": 1.5, "dash": "dot"},
            "layer": "above"}
    if row_segments and 1 in row_segments:
        at = row_segments.index(1) - 0.5
        shapes.append({**line, "x0": -0.5, "x1": n_cols - 0.5, "y0": at, "y1": at})
    if col_segments and 1 in col_segments:
        at = col_segments.index(1) - 0.5
        shapes.append({**line, "x0": at, "x1": at, "y0": -0.5, "y1": n_rows - 0.5})
    return shapes


def pair_shapes(row_segments: list, col_segments: list, pair: tuple[int, int] | None) -> list:
    """The sentence-A line and, under a pair filter, the blank (grey) rows and columns it leaves out."""
    n_rows, n_cols = len(row_segments), len(col_segments)
    shapes = []
    if pair is not None:
        keep_rows = np.array([s == pair[0] for s in row_segments], dtype=bool)
        keep_cols = np.array([s == pair[1] for s in col_segments], dtype=bool)
        shapes += _blank_shapes(keep_rows, keep_cols, n_rows, n_cols)
    return shapes + sentence_lines(row_segments, col_segments, n_rows, n_cols)


def long_heatmap_figure(values: np.ndarray, block: int, how: str, region: tuple[int, int, int, int],
                        row_labels: list[str], col_labels: list[str], title: str, *, note: str | None = None,
                        token_index: list[int] | None = None, shapes: list | None = None,
                        zoomed: bool = False) -> dict:
    """One map (or the part ``region`` = rows r0:r1, columns c0:c1, in units shown) as a picture pooled in
    ``block`` x ``block`` cells (``values``: the pooled cells, exact), on axes counted in units, so a box
    zoom names units. ``block == 1``: the exact tile, with the tokens' labels when they fit."""
    r0, r1, c0, c1 = region
    n_rows, n_cols = len(row_labels), len(col_labels)
    offset = (block - 1) / 2
    trace = {"type": "image", "source": images.png_data_uri(images.to_levels(values)), "x0": c0 + offset,
             "y0": r0 + offset, "dx": block, "dy": block, "hoverinfo": "none", "name": "attention"}
    labelled = block == 1 and max(r1 - r0, c1 - c0) <= LABEL_LIMIT_HEATMAP
    xaxis = {"range": [c0 - 0.5, c1 - 0.5], "showgrid": False, "zeroline": False, "ticks": "", "constrain": "domain",
             "title": {"text": _("key (attended to)")}}
    yaxis = {"range": [r1 - 0.5, r0 - 0.5], "showgrid": False, "zeroline": False, "ticks": "", "constrain": "domain",
             "scaleanchor": "x", "title": {"text": _("query (attending)")}}
    if labelled:
        xaxis.update(tickmode="array", tickvals=list(range(c0, c1)), autotickangles=TURNS,
                     ticklabeloverflow=TICK_OVERFLOW,
                     ticktext=[safe_label(t) for t in col_labels[c0:c1]])
        yaxis.update(tickmode="array", tickvals=list(range(r0, r1)), ticklabeloverflow=TICK_OVERFLOW,
                     ticktext=[safe_label(t) for t in row_labels[r0:r1]])
    text = title
    if block > 1:
        text += note_span(pooled_label(block, how))
    elif zoomed:
        text += note_span(_("exact tile: tokens {r0}–{r1} → {c0}–{c1}").format(r0=r0, r1=r1 - 1, c0=c0, c1=c1 - 1))
    text += note_span(note)
    layout = _base_layout(
        title={"text": text, "x": 0.01, "xanchor": "left"}, height=760,
        margin={"l": 110, "r": 30, "t": 60, "b": 110}, hovermode="closest", dragmode="zoom",
        xaxis=xaxis, yaxis=yaxis, xaxis2={"visible": False, "domain": [0.0, 0.001], "anchor": "y2", "fixedrange": True},
        yaxis2={"visible": False, "domain": [0.0, 0.001], "anchor": "x2", "fixedrange": True},
        shapes=shapes or [],
        meta={"kind": "heatmap", "long": True, "keys": [safe_label(t) for t in col_labels],
              "queries": [safe_label(t) for t in row_labels],
              "token_index": token_index if token_index is not None else list(range(n_rows)),
              **images.image_meta(), "exact": exact_meta(values, block, how, r0, c0, n_rows, n_cols)},
    )
    return {"data": [trace, colorbar_trace()], "layout": layout}


def grid_block(n_rows: int, n_cols: int) -> int:
    """The block a long text's head grid pools in (as ``figures.max_pool`` would: at most
    ``GRID_MAX_CELLS`` cells a side)."""
    return block_for(max(n_rows, n_cols), GRID_MAX_CELLS)


MINIMAP_CELLS = 64  # the whole map beside a zoomed heatmap: at most this many cells a side
MINIMAP_LINE = "#e4572e"


def add_minimap(figure: dict, whole: np.ndarray, block: int, region: tuple[int, int, int, int], n_rows: int,
                n_cols: int) -> dict:
    """Beside a zoomed long heatmap (issue 18 item 1, "or a minimap"): the whole map, small (``whole``: its
    cells pooled in ``block`` x ``block`` tokens), with the part on screen (``region``, in units shown)
    outlined (at least 4 % of the map wide, around its centre, so a few tokens still show where they are). It takes the right of the plot (the heatmap keeps the rest, square); it is not zoomable and
    has no hover (the tooltip reads the heatmap alone: trace 0)."""
    r0, r1, c0, c1 = region
    offset = (block - 1) / 2
    layout = figure["layout"]
    figure["data"].append({"type": "image", "source": images.png_data_uri(images.to_levels(whole)), "x0": offset,
                           "y0": offset, "dx": block, "dy": block, "xaxis": "x3", "yaxis": "y3",
                           "hoverinfo": "skip", "name": "minimap"})
    layout["xaxis"]["domain"] = [0.0, 0.8]
    hidden = {"visible": False, "fixedrange": True, "constrain": "domain", "showgrid": False, "zeroline": False}
    layout["xaxis3"] = {**hidden, "domain": [0.83, 1.0], "anchor": "y3", "range": [-0.5, n_cols - 0.5]}
    layout["yaxis3"] = {**hidden, "domain": [0.72, 1.0], "anchor": "x3", "range": [n_rows - 0.5, -0.5],
                        "scaleanchor": "x3"}
    box = {"type": "rect", "xref": "x3", "yref": "y3", "layer": "above"}
    least = 0.04 * max(n_rows, n_cols)  # a few tokens of 4,096 are under a pixel: outlined at least this wide
    grow_r, grow_c = max(0.0, least - (r1 - r0)) / 2, max(0.0, least - (c1 - c0)) / 2
    layout["shapes"] = list(layout.get("shapes") or []) + [
        {**box, "x0": -0.5, "x1": n_cols - 0.5, "y0": -0.5, "y1": n_rows - 0.5, "line": {"color": "#adb5bd", "width": 1}},
        {**box, "x0": c0 - 0.5 - grow_c, "x1": c1 - 0.5 + grow_c, "y0": r0 - 0.5 - grow_r, "y1": r1 - 0.5 + grow_r,
         "line": {"color": MINIMAP_LINE, "width": 2}},
    ]
    layout["meta"]["minimap"] = {"block": int(block), "rows": int(whole.shape[0]), "cols": int(whole.shape[1])}
    return figure
