"""Figure builders: numpy in, Plotly figure (a plain dict) out.

Figures are built as dicts, not ``go.Figure``: no validation on the hot path, and arrays go out as
base64 typed arrays (``{"dtype", "bdata", "shape"}``), which plotly.js reads without parsing JSON
numbers. The head grid sends uint8 (0-255 for weights 0-1): 1 byte a cell, one colour scale.
"""

from __future__ import annotations

import base64
import html
import math

import numpy as np

VIRIDIS = "Viridis"
GRID_COLS = 4
GRID_MAX_CELLS = 128  # larger tiles are max-pooled to at most this many cells a side
LABEL_LIMIT_GRID = 24  # token labels on grid tiles up to this many tokens
LABEL_LIMIT_HEATMAP = 120
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
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


def empty_figure(message: str = "Type a sentence and press Analyze.") -> dict:
    """A blank figure that says what to do."""
    return {
        "data": [],
        "layout": _base_layout(
            xaxis={"visible": False}, yaxis={"visible": False}, height=260,
            annotations=[{"text": safe_label(message), "showarrow": False, "xref": "paper", "yref": "paper",
                          "x": 0.5, "y": 0.5, "font": {"size": 15, "color": "#6c757d"}}],
        ),
    }


def max_pool(matrices: np.ndarray, max_cells: int = GRID_MAX_CELLS) -> tuple[np.ndarray, int]:
    """Block-max-pools the last two axes so neither exceeds ``max_cells``; returns (pooled, block size)."""
    seq = matrices.shape[-1]
    block = max(1, math.ceil(seq / max_cells))
    if block == 1:
        return matrices, 1
    cells = math.ceil(seq / block)
    padded = np.zeros(matrices.shape[:-2] + (cells * block, cells * block), dtype=matrices.dtype)
    padded[..., :seq, :seq] = matrices
    rows = padded[..., 0::block, :]
    for i in range(1, block):  # strided maxima: several times faster than reshape(...).max(axis=...)
        rows = np.maximum(rows, padded[..., i::block, :])
    pooled = rows[..., 0::block]
    for j in range(1, block):
        pooled = np.maximum(pooled, rows[..., j::block])
    return pooled, block


def to_uint8(weights: np.ndarray) -> np.ndarray:
    """Weights in [0, 1] as 0-255."""
    return np.rint(np.clip(weights, 0.0, 1.0) * 255.0).astype(np.uint8)


def _colorbar_0_to_1(scale: float) -> dict:
    ticks = [0, 0.25, 0.5, 0.75, 1.0]
    return {"title": {"text": "attention weight", "side": "right"}, "tickvals": [t * scale for t in ticks],
            "ticktext": [f"{t:g}" for t in ticks], "len": 0.9, "thickness": 14}


def _tick_axis(labels: list[str], show: bool, **extra) -> dict:
    axis = {"showgrid": False, "zeroline": False, "ticks": "", "fixedrange": False}
    if show:
        axis.update(tickmode="array", tickvals=list(range(len(labels))), ticktext=[safe_label(l) for l in labels])
    else:
        axis.update(showticklabels=False)
    axis.update(extra)
    return axis


def head_grid_figure(layer_att: np.ndarray, labels: list[str], layer: int, *, selected: int | None = None,
                     heads: list[int] | None = None, title: str | None = None, note: str | None = None,
                     tile: str = "head") -> dict:
    """Every head of one layer as a small heatmap, four a row, one shared 0-1 colour scale.

    ``layer_att`` is ``(heads, seq, seq)`` in [0, 1]. Trace ``i`` is head ``heads[i]``, so a click's
    ``curveNumber`` names the head. Hover text is drawn client-side from ``layout.meta`` (see
    assets/clientside.js), keeping one byte a cell on the wire.
    """
    n_heads, seq = layer_att.shape[0], layer_att.shape[-1]
    heads = heads if heads is not None else list(range(n_heads))
    pooled, block = max_pool(layer_att)
    z = to_uint8(pooled)
    cells = z.shape[-1]
    rows = math.ceil(n_heads / GRID_COLS)
    show_labels = block == 1 and seq <= LABEL_LIMIT_GRID
    # Rows laid out in pixels: a title band, the tile, and room for rotated token labels below it.
    tile_px, title_px, label_px = 200, 26, (58 if show_labels else 8)
    row_px = title_px + tile_px + label_px
    plot_px = rows * row_px
    gap_x = 0.035
    tile_w = (1.0 - gap_x * (GRID_COLS - 1)) / GRID_COLS
    tile_h = tile_px / plot_px
    data, layout_axes, annotations, shapes = [], {}, [], []
    for i, head in enumerate(heads):
        r, c = divmod(i, GRID_COLS)
        n = "" if i == 0 else str(i + 1)
        x0 = c * (tile_w + gap_x)
        y1 = 1.0 - (r * row_px + title_px) / plot_px
        data.append({
            "type": "heatmap", "z": typed_array(z[i]), "xaxis": f"x{n}", "yaxis": f"y{n}",
            "coloraxis": "coloraxis", "hoverinfo": "none", "name": f"{tile} {head}",
        })
        layout_axes[f"xaxis{n}"] = _tick_axis(labels, show_labels, domain=[x0, x0 + tile_w], anchor=f"y{n}",
                                              tickangle=-90, tickfont={"size": 8}, range=[-0.5, cells - 0.5])
        layout_axes[f"yaxis{n}"] = _tick_axis(labels, show_labels and c == 0, domain=[y1 - tile_h, y1],
                                              anchor=f"x{n}", autorange="reversed", tickfont={"size": 8})
        is_selected = selected is not None and head == selected
        annotations.append({
            "text": f"<b>{tile} {head}</b>" if is_selected else f"{tile} {head}", "showarrow": False,
            "xref": "paper", "yref": "paper", "x": x0 + tile_w / 2, "y": y1, "yanchor": "bottom",
            "font": {"size": 12, "color": HIGHLIGHT if is_selected else "#333"},
        })
        if is_selected:
            shapes.append({"type": "rect", "xref": "paper", "yref": "paper", "x0": x0 - 0.004, "x1": x0 + tile_w + 0.004,
                           "y0": y1 - tile_h - 0.006, "y1": y1 + 0.006, "line": {"color": HIGHLIGHT, "width": 3}})
    height = plot_px + 70
    title_text = title or f"Layer {layer} · all {n_heads} heads"
    if block > 1:
        title_text += f" <span style='font-size:12px;color:#6c757d'>(each cell: max over {block}×{block} tokens)</span>"
    if note:
        title_text += f" <span style='font-size:12px;color:#6c757d'>{safe_label(note)}</span>"
    layout = _base_layout(
        title={"text": title_text, "x": 0.01, "xanchor": "left"},
        height=height,
        margin={"l": 70 if show_labels else 20, "r": 20, "t": 60, "b": 10},
        coloraxis={"colorscale": VIRIDIS, "cmin": 0, "cmax": 255, "colorbar": _colorbar_0_to_1(255)},
        annotations=annotations, shapes=shapes,
        meta={"kind": "head-grid", "layer": layer, "heads": heads, "tokens": labels, "block": block,
              "scale": 255, "seq": seq, "tile": tile},
        **layout_axes,
    )
    return {"data": data, "layout": layout}


def heatmap_figure(matrix: np.ndarray, labels: list[str], title: str, *, note: str | None = None,
                   query_labels: list[str] | None = None, zmax: float | None = None) -> dict:
    """One attention matrix: keys on x, queries on y, Viridis, hover ``query → key: weight``."""
    keys = unique_labels(labels)
    queries = unique_labels(query_labels) if query_labels is not None else keys
    seq = len(keys)
    show_labels = seq <= LABEL_LIMIT_HEATMAP
    side = max(360, min(900, 22 * seq + 160))
    title_text = title if not note else f"{title} <span style='font-size:12px;color:#6c757d'>{safe_label(note)}</span>"
    trace = {
        "type": "heatmap", "z": typed_array(np.asarray(matrix, dtype=np.float32)),
        "x": keys, "y": queries, "colorscale": VIRIDIS, "zmin": 0, "zmax": zmax if zmax is not None else 1,
        "colorbar": {"title": {"text": "attention weight", "side": "right"}, "thickness": 14},
        "hovertemplate": "%{y} → %{x}: %{z:.3f}<extra></extra>",
    }
    layout = _base_layout(
        title={"text": title_text, "x": 0.01, "xanchor": "left"},
        height=side,
        xaxis={"title": {"text": "key (attended to)"}, "showticklabels": show_labels, "tickangle": -60,
               "type": "category", "showgrid": False, "side": "bottom"},
        yaxis={"title": {"text": "query (attending)"}, "showticklabels": show_labels, "autorange": "reversed",
               "type": "category", "showgrid": False},
        margin={"l": 110, "r": 30, "t": 60, "b": 110},
    )
    return {"data": [trace], "layout": layout}


# ---------------------------------------------------------------- arcs
ARC_LEVELS = (0.1, 0.25, 0.5)  # weight bucket edges: one trace a bucket (and a head)
ARC_WIDTHS = (1.0, 2.0, 3.5, 5.5)
ARC_OPACITY = (0.3, 0.5, 0.7, 0.9)
_ARC_POINTS = 14


def token_positions(labels: list[str]) -> np.ndarray:
    """x centre of each token, in pixels, spaced by label length so the text reads naturally."""
    widths = np.array([max(2, len(label)) * 7.5 + 16 for label in labels])
    return np.cumsum(widths) - widths / 2


def select_arcs(weights: np.ndarray, top_k: int, min_weight: float, focus: int | None = None):
    """The arcs to draw: for every group and query, its ``top_k`` keys of weight >= ``min_weight`` (and > 0).

    ``weights`` is ``(groups, seq, seq)``. Returns arrays ``(group, query, key, weight)``.
    """
    groups, seq, _ = weights.shape
    k = max(1, min(int(top_k), seq))
    queries = np.arange(seq) if focus is None else np.array([focus])
    rows = weights[:, queries, :]  # (groups, q, seq)
    if k < seq:  # keep the k largest of each row, then order just those (ties: earlier key first)
        candidates = np.sort(np.argpartition(-rows, k - 1, axis=-1)[..., :k], axis=-1)
    else:
        candidates = np.broadcast_to(np.arange(seq), rows.shape)
    values = np.take_along_axis(rows, candidates, axis=-1)
    order = np.take_along_axis(candidates, np.argsort(-values, axis=-1, kind="stable"), axis=-1)
    top = np.take_along_axis(rows, order, axis=-1)
    g, qi, j = np.nonzero((top >= min_weight) & (top > 0))
    return g, queries[qi], order[g, qi, j], top[g, qi, j]


def _arc_paths(xq: np.ndarray, xk: np.ndarray, height: np.ndarray, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-ellipses from query to key (a small loop for self), NaN-separated, as flat float32 arrays."""
    t = np.linspace(0.0, 1.0, _ARC_POINTS)
    self_loop = xq == xk
    xs = xq[:, None] + (xk - xq)[:, None] * t[None, :]
    ys = sign[:, None] * (0.09 + height[:, None] * np.sin(np.pi * t)[None, :])
    if self_loop.any():
        angle = np.pi * (1.5 + 2 * t)
        xs[self_loop] = xq[self_loop][:, None] + 9 * np.cos(angle)[None, :]
        ys[self_loop] = 0.09 + 0.11 * (1 + np.sin(angle))[None, :]
    gap = np.full((len(xq), 1), np.nan)
    return (np.hstack([xs, gap]).ravel().astype(np.float32), np.hstack([ys, gap]).ravel().astype(np.float32))


def arc_figure(weights: np.ndarray, labels: list[str], *, top_k: int = 3, min_weight: float = 0.05,
               focus: int | None = None, group_names: list[str] | None = None, causal: bool = False,
               title: str = "") -> dict:
    """Tokens in reading order; arcs from each query to the keys it attends to most.

    ``weights`` is ``(groups, seq, seq)``: one group (one head, or the mean), or one per head, coloured
    by head with a legend. Arcs to later tokens bend up, to earlier ones down; width and opacity follow
    the weight, in four buckets (one trace each), so the trace count stays small. With ``focus``,
    only that token's arcs are drawn. Trace 0 is the tokens: a click's ``pointIndex`` is the token.
    """
    groups, seq, _ = weights.shape
    x = token_positions(labels)
    g, q, k, w = select_arcs(weights, top_k, min_weight, focus)
    span = float(x[-1] - x[0]) if seq > 1 else 1.0
    dist = np.abs(x[k] - x[q])
    height = 0.12 + 0.88 * np.sqrt(dist / max(span, 1.0))
    sign = np.where(k > q, 1.0, -1.0)
    bucket = np.searchsorted(ARC_LEVELS, w, side="right")
    colors = HEAD_COLORS if groups > 1 else ["#3b528b"]
    marker_colors = ["#fde9e4" if i == focus else "#eef1f6" for i in range(seq)]
    data = [{
        "type": "scatter", "mode": "markers+text", "x": typed_array(x.astype(np.float32)),
        "y": typed_array(np.zeros(seq, dtype=np.float32)), "text": [safe_label(l) for l in labels],
        "textposition": "middle center", "textfont": {"size": 13, "color": "#212529"},
        "marker": {"symbol": "square", "size": 24, "color": marker_colors,
                   "line": {"width": 1, "color": [HIGHLIGHT if i == focus else "#c5cbd6" for i in range(seq)]}},
        "hovertemplate": "%{text}<extra>click to isolate</extra>", "showlegend": False, "name": "tokens",
        "cliponaxis": False,
    }]
    shown_legend: set[int] = set()
    for group in range(groups):
        for level in range(len(ARC_WIDTHS)):
            sel = (g == group) & (bucket == level)
            if not sel.any():
                continue
            xs, ys = _arc_paths(x[q[sel]], x[k[sel]], height[sel], sign[sel])
            name = group_names[group] if group_names else "attention"
            data.append({
                "type": "scatter", "mode": "lines", "x": typed_array(xs), "y": typed_array(ys),
                "line": {"width": ARC_WIDTHS[level], "color": colors[group % len(colors)]},
                "opacity": ARC_OPACITY[level], "hoverinfo": "skip", "name": name, "legendgroup": name,
                "showlegend": groups > 1 and group not in shown_legend,
            })
            shown_legend.add(group)
    width_px = int(x[-1] + x[0]) if seq else 600
    annotations = []
    if causal:
        annotations.append({
            "text": "Causal model: each token sees only itself and earlier tokens, so every arc bends back (down).",
            "xref": "paper", "yref": "paper", "x": 0, "y": 1.0, "xanchor": "left", "yanchor": "bottom",
            "showarrow": False, "font": {"size": 12, "color": "#6c757d"},
        })
    elif seq > 1:
        annotations.append({
            "text": "Arcs above: attends to a later token · below: to an earlier token · loop: to itself",
            "xref": "paper", "yref": "paper", "x": 0, "y": 1.0, "xanchor": "left", "yanchor": "bottom",
            "showarrow": False, "font": {"size": 12, "color": "#6c757d"},
        })
    layout = _base_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"} if title else None,
        height=460, width=max(width_px + 120, 700), autosize=False,
        margin={"l": 40, "r": 40, "t": 70 if title else 40, "b": 20},
        xaxis={"visible": False, "range": [0, width_px], "fixedrange": True},
        yaxis={"visible": False, "range": [-1.1, 0.3] if causal else [-1.1, 1.1], "fixedrange": True},
        showlegend=groups > 1, legend={"orientation": "h", "y": -0.02, "title": {"text": "head "}},
        annotations=annotations, hovermode="closest", dragmode=False,
        meta={"kind": "arcs", "focus": focus, "arcs": int(len(w))},
    )
    layout = {k_: v for k_, v in layout.items() if v is not None}
    return {"data": data, "layout": layout}
