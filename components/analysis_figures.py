"""Figures for the analyses: model overview, head atlas map, token focus. Numpy in, dict out."""

from __future__ import annotations

import numpy as np

from . import images
from .figures import (TICK_OVERFLOW, TURNS, _base_layout, colorbar_title, colorbar_trace, label_px, max_pool,
                      note_span, safe_label, typed_array, unique_labels, axis_title_y, is_cjk, upright)
from .i18n import N_, _, translate

OVERVIEW_CELLS = 32  # each layer x head map is max-pooled to at most this many cells a side


def overview_figure(attentions: np.ndarray, *, selected: tuple[int, int] | None = None, note: str = "",
                    pooled: int | None = None, how: str = "max") -> dict:
    """Every layer x head map as tiles of ONE palette image: rows = layers, columns = heads.

    ``attentions`` is ``(layers, heads, n, n)`` in [0, 1] (float16 is pooled as stored). Each map is
    max-pooled to at most ``OVERVIEW_CELLS`` a side; tiles are separated by a one-cell gap. A click's
    (x, y) cell gives the head ``x // stride`` and layer ``y // stride``, with ``stride =
    layout.meta.stride``. Head and layer numbers are text traces beside the tiles (tick labels cost
    plotly.js several times more a draw).
    """
    layers, heads = attentions.shape[:2]
    # ``pooled``: the maps come pooled already in blocks of that many tokens (a long text's, exact)
    pooled, block = (attentions, pooled) if pooled is not None else max_pool(attentions, OVERVIEW_CELLS)
    cells_y, cells_x = pooled.shape[-2], pooled.shape[-1]
    cells = max(cells_x, cells_y)
    levels = images.to_levels(pooled.reshape((layers * heads,) + pooled.shape[-2:]))
    image, stride, stride_y = images.tile(levels, heads, gap=1)
    centres_x = [i * stride + (cells_x - 1) / 2 for i in range(heads)]
    centres_y = [i * stride_y + (cells_y - 1) / 2 for i in range(layers)]
    shapes = []
    if selected is not None:
        layer, head = selected
        shapes.append({"type": "rect", "x0": head * stride - 0.5, "x1": head * stride + cells_x - 0.5,
                       "y0": layer * stride_y - 0.5, "y1": layer * stride_y + cells_y - 0.5,
                       "line": {"color": "#e4572e", "width": 3}})
    width_cells, height_cells = image.shape[1], image.shape[0]
    height = int(min(900, max(320, 60 + 760 * height_cells / max(width_cells, 1))))
    margin = max(2.0, cells * 0.45)  # room for the numbers, in cells
    numbers = [
        {"type": "scatter", "mode": "text", "x": centres_x, "y": [-0.5 - margin / 2] * heads,
         "text": [str(h) for h in range(heads)], "hoverinfo": "skip", "showlegend": False,
         "textfont": {"size": 12, "color": "#333"}},
        {"type": "scatter", "mode": "text", "x": [-0.5 - margin / 2] * layers, "y": centres_y,
         "text": [str(l) for l in range(layers)], "hoverinfo": "skip", "showlegend": False,
         "textfont": {"size": 12, "color": "#333"}},
    ]
    hidden = {"visible": False, "showgrid": False, "zeroline": False, "constrain": "domain", "fixedrange": True}
    return {
        "data": [{"type": "image", "source": images.png_data_uri(image), "x0": 0, "y0": 0, "dx": 1, "dy": 1,
                  "hoverinfo": "none", "name": "attention"}, colorbar_trace(), *numbers],
        "layout": _base_layout(
            title={"text": _("All layers × heads") + note_span(_("(rows: layers · columns: heads)")) + note_span(note)
                   + (note_span(_("each cell: mean over {block} × {block} tokens").format(block=block) if how == "mean"
                                else _("each cell: max over {block} × {block} tokens").format(block=block))
                      if block > 1 else ""),
                   "x": 0.01, "xanchor": "left"},
            height=height, margin={"l": 20, "r": 20, "t": 50, "b": 20}, hovermode="closest", dragmode=False,
            xaxis={**hidden, "range": [-0.5 - margin, width_cells - 0.5]},
            yaxis={**hidden, "range": [height_cells - 0.5, -0.5 - margin], "scaleanchor": "x"},
            xaxis2={"visible": False, "domain": [0.0, 0.001], "anchor": "y2"},
            yaxis2={"visible": False, "domain": [0.0, 0.001], "anchor": "x2"},
            shapes=shapes,
            meta={"kind": "overview", "stride": stride, "stride_y": stride_y, "cells": cells, "cells_x": cells_x,
                  "cells_y": cells_y, "block": block, "layers": layers, "heads": heads, **images.image_meta()},
        ),
    }


def kv_group_marks(heads: int, group: int, y: float = 1.0) -> tuple[list[dict], list[dict]]:
    """``(shapes, annotations)`` marking grouped-query attention over a row of ``heads`` head columns
    (x = head number): a bracket over each group of ``group`` heads that share one key/value head, named
    "kv 0", "kv 1" …, above the plot (paper ``y``). Nothing when every head has its own (``group`` 1)."""
    if group <= 1 or heads <= group:
        return ([], []) if group <= 1 else ([], [{"text": _("all heads share one key/value head"), "x": (heads - 1) / 2,
                                                   "xref": "x", "y": y, "yref": "paper", "yanchor": "bottom",
                                                   "showarrow": False, "font": {"size": 10, "color": "#555"}}])
    shapes, notes = [], []
    for g in range(-(-heads // group)):
        x0, x1 = g * group - 0.45, min(heads, (g + 1) * group) - 0.55
        shapes.append({"type": "path", "xref": "x", "yref": "paper", "line": {"color": "#555", "width": 1},
                       "path": f"M {x0} {y} L {x0} {y + 0.02} L {x1} {y + 0.02} L {x1} {y}"})
        notes.append({"text": _("kv {group}").format(group=g), "x": (x0 + x1) / 2, "xref": "x", "y": y + 0.02,
                      "yref": "paper", "yanchor": "bottom", "showarrow": False, "font": {"size": 10, "color": "#555"}})
    return shapes, notes


def atlas_map_figure(values: np.ndarray, labels: np.ndarray, metric: str, metric_title: str,
                     *, zmax: float | None = None, selected: tuple[int, int] | None = None, kv_group: int = 1,
                     bar_title: str | None = None) -> dict:
    """A layers x heads map coloured by one metric; hover names the head type (and, under grouped-query
    attention, the key/value head each head shares: ``kv_group`` query heads a key/value head, marked by
    brackets "kv 0", "kv 1" … over the columns). The colour bar is titled ``bar_title`` (the metric's short
    name: the figure's title says it in full; a long title turned beside a short bar would be cut off)."""
    layers, heads = values.shape
    template = _("layer {layer} · head {head}<br>{type}<br>{metric}: {value}")
    kv_line = _("<br>key/value head {kv} (shared by heads {first}–{last})")
    text = np.array([[template.format(layer=l, head=h, type=translate(str(labels[l, h])), metric=metric_title,
                                      value="–" if np.isnan(values[l, h]) else f"{values[l, h]:.3f}")
                      + (kv_line.format(kv=h // kv_group, first=h // kv_group * kv_group,
                                        last=min(heads, (h // kv_group + 1) * kv_group) - 1) if kv_group > 1 else "")
                      for h in range(heads)] for l in range(layers)])
    # Each head's type, written on its cell: one text trace (as annotations, 72 of them cost plotly.js
    # ~100 ms on every draw).
    cells = [(l, h) for l in range(layers) for h in range(heads)] if layers * heads <= 400 else []
    bright = (zmax or values.max() or 1) * 0.6
    types = {"type": "scatter", "mode": "text", "x": [h for _l, h in cells], "y": [l for l, _h in cells],
             "text": [_short(labels[l, h]) for l, h in cells], "hoverinfo": "skip", "showlegend": False,
             "textfont": {"size": 9, "color": ["white" if values[l, h] < bright else "black" for l, h in cells]}}
    shapes, notes = kv_group_marks(heads, kv_group)
    if selected is not None:
        layer, head = selected
        shapes.append({"type": "rect", "x0": head - 0.5, "x1": head + 0.5, "y0": layer - 0.5, "y1": layer + 0.5,
                       "line": {"color": "#e4572e", "width": 3}})
    finite = values[np.isfinite(values)]
    return {
        "data": [{
            "type": "heatmap", "z": typed_array(values.astype(np.float32)), "colorscale": "Viridis",
            "zmin": 0, "zmax": zmax if zmax is not None else float(finite.max() if finite.size and finite.max() else 1),
            "text": text.tolist(), "hovertemplate": "%{text}<extra></extra>",
            "colorbar": {"title": colorbar_title(bar_title or metric_title), "thickness": 14},
            "xgap": 2, "ygap": 2,
        }, types],
        "layout": _base_layout(
            title={"text": _("Head atlas · coloured by {metric}").format(metric=metric_title), "x": 0.01,
                   "xanchor": "left"},
            height=max(300, 46 * layers + 120), margin={"l": 60, "r": 20, "t": 80 if notes else 60, "b": 50},
            annotations=notes,
            xaxis={"title": {"text": _("head")}, "dtick": 1, "showgrid": False, "zeroline": False},
            yaxis={"title": {"text": _("layer")}, "dtick": 1, "autorange": "reversed", "showgrid": False,
                   "zeroline": False},
            shapes=shapes, hovermode="closest",
        ),
    }


SHORT_TYPES = {"previous-token": N_("prev"), "next-token": N_("next"), "delimiter sink": N_("delim"),
               "self": N_("self"), "local": N_("local"), "broad": N_("broad"), "mixed": "·", "sink": N_("sink"),
               "induction": N_("induct")}


def _short(label: str) -> str:
    """A head type in a few letters, for its cell of the atlas map."""
    short = SHORT_TYPES.get(str(label))
    return translate(short) if short else str(label)


def focus_figure(rows: np.ndarray, labels: list[str], token_label: str, note: str = "") -> dict:
    """Layers x tokens: where one token looks in each layer (heads averaged). Tokens are numbered on
    the x axis (named when there are few), and the hover names them: 512 category labels would cost
    plotly.js ~60 ms a draw."""
    layers, n = rows.shape
    title = _("Where “{token}” looks, layer by layer").format(token=safe_label(token_label))
    if note:
        title += f" <span style='font-size:12px;color:#6c757d'>{safe_label(note)}</span>"
    names = [safe_label(label) for label in labels]
    xaxis = {"showgrid": False, "zeroline": False, "range": [-0.5, n - 0.5]}
    if n <= 120:
        xaxis.update(tickmode="array", tickvals=list(range(n)), ticktext=names, autotickangles=TURNS,
                     ticklabeloverflow=TICK_OVERFLOW)
    else:
        xaxis.update(title={"text": _("token (position in the text)")})
    return {
        "data": [{
            "type": "heatmap", "z": typed_array(rows.astype(np.float32)),
            "colorscale": "Viridis", "zmin": 0, "zmax": float(max(rows.max(), 1e-6)),
            "text": [names] * layers, "hovertemplate": _("layer %{y} → %{text}: %{z:.3f}") + "<extra></extra>",
            "colorbar": {"title": {"text": _("attention weight"), "side": "right"}, "thickness": 14},
        }],
        "layout": _base_layout(
            title={"text": title, "x": 0.01, "xanchor": "left"}, height=max(300, 40 * layers + 160),
            margin={"l": 80, "r": 20, "t": 60, "b": 100}, xaxis=xaxis,
            yaxis={"autorange": "reversed", "showgrid": False, "zeroline": False, "dtick": 1,
                   "title": {"text": _("layer")}},
        ),
    }


def generation_figure(weights: np.ndarray, labels: list[str], generated: np.ndarray, *, step_token: int,
                      row_name: str, title: str) -> dict:
    """Where one generated token looks: ``weights`` is ``(rows, tokens)`` (a row a head of one layer, or
    a layer with heads averaged) over the prompt and the tokens written before it, and itself.
    ``generated`` (bool, a token) marks the written tokens: an orange band under them and their names
    in orange; ``step_token`` (its index) is the token written at this step, outlined."""
    rows, n = weights.shape
    names = [safe_label(label) for label in labels]
    xaxis = {"showgrid": False, "zeroline": False, "range": [-0.5, n - 0.5]}
    if n <= 120:
        ticks = [f"<span style='color:#e4572e'>{name}</span>" if generated[i] else name for i, name in enumerate(names)]
        xaxis.update(tickmode="array", tickvals=list(range(n)), ticktext=ticks, autotickangles=TURNS,
                     ticklabeloverflow=TICK_OVERFLOW)
    else:
        xaxis.update(title={"text": _("token (position in the text)")})
    shapes = []
    first = int(np.argmax(generated)) if generated.any() else n
    if first < n:
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": first - 0.5, "x1": n - 0.5, "y0": -0.02,
                       "y1": 0.0, "fillcolor": "#e4572e", "line": {"width": 0}})
    shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": step_token - 0.5, "x1": step_token + 0.5,
                   "y0": 0, "y1": 1, "line": {"color": "#e4572e", "width": 2}})
    kinds = [_("generated") if g else _("prompt") for g in generated]
    return {
        "data": [{
            "type": "heatmap", "z": typed_array(weights.astype(np.float32)), "colorscale": "Viridis", "zmin": 0,
            "zmax": float(max(weights.max(), 1e-6)), "customdata": [kinds] * rows, "text": [names] * rows,
            "hovertemplate": row_name + " %{y} → %{text} (%{customdata}): %{z:.3f}<extra></extra>",
            "colorbar": {"title": {"text": _("attention weight"), "side": "right"}, "thickness": 14},
        }],
        "layout": _base_layout(
            title={"text": title, "x": 0.01, "xanchor": "left"}, height=max(280, 30 * rows + 170),
            margin={"l": 80, "r": 20, "t": 60, "b": 100}, xaxis=xaxis, shapes=shapes,
            yaxis={"autorange": "reversed", "showgrid": False, "zeroline": False, "dtick": 1,
                   "title": {"text": row_name}},
            meta={"kind": "generation", "step_token": step_token, "generated_from": first},
        ),
    }


# --------------------------------------------------------------------------- inside a head
INSIDE_MAX_KEYS = 64  # keys drawn: the heaviest when a text has more (the page says so)
_DIVERGING = [[0.0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#f7f7f7"], [0.75, "#f4a582"], [1.0, "#b2182b"]]


def inside_keys(weights: np.ndarray, limit: int = INSIDE_MAX_KEYS) -> np.ndarray:
    """The key indices drawn, in reading order: all of them, or the ``limit`` with the most weight."""
    if len(weights) <= limit:
        return np.arange(len(weights))
    return np.sort(np.argsort(-weights, kind="stable")[:limit])


def inside_vectors_figure(query_vector: np.ndarray, key_vectors: np.ndarray, products: np.ndarray,
                          labels: list[str], query_label: str, query_before: np.ndarray | None = None,
                          keys_before: np.ndarray | None = None) -> dict:
    """Steps 1-3 of the head's scores: the query vector (one row), each key vector (a row a key token)
    and their elementwise products, over the head's dimensions, on one diverging scale per panel. With
    ``query_before`` / ``keys_before`` (rotary models) the vectors before rotation come first: each
    token's pair of dimensions turned by an angle that grows with its position."""
    rows, d = key_vectors.shape
    names = [safe_label(label) for label in labels]
    top = 0.84 if rows > 6 else 0.7
    rotary = query_before is not None and keys_before is not None

    def heat(z, x, y, text, vmax, colorbar=None):
        trace = {"type": "heatmap", "z": typed_array(np.asarray(z, dtype=np.float32)), "xaxis": x, "yaxis": y,
                 "colorscale": _DIVERGING, "zmin": -vmax, "zmax": vmax, "text": text,
                 "hovertemplate": _("%{text} · dimension %{x}: %{z:.3f}") + "<extra></extra>",
                 "showscale": bool(colorbar)}
        if colorbar:
            trace["colorbar"] = colorbar
        return trace

    vectors = [query_vector, key_vectors] + ([query_before, keys_before] if rotary else [])
    vmax_qk = float(max(max(float(np.abs(v).max()) for v in vectors), 1e-6))
    vmax_p = float(max(np.abs(products).max(), 1e-6))
    query_name = safe_label(query_label)
    panels = []  # (query, keys, query hover, key hover, title, scale)
    if rotary:
        panels.append((query_before, keys_before, _("query “{token}” before rotation"),
                       _("key “{token}” before rotation"), _("1. q, k before rotation"), vmax_qk))
        panels.append((query_vector, key_vectors, _("query “{token}” after rotation"), _("key “{token}” after rotation"),
                       _("2. after rotation"), vmax_qk))
    else:
        panels.append((query_vector, key_vectors, _("query “{token}”"), _("key “{token}”"),
                       _("1-2. query and keys (dimensions)"), vmax_qk))
    panels.append((None, products, None, _("q × k “{token}”"), _("3. q × k, dimension by dimension"), vmax_p))
    gap = 0.04
    width = (1.0 - gap * (len(panels) - 1)) / len(panels)
    data, layout_axes = [], {}
    axis = {"showgrid": False, "zeroline": False, "ticks": ""}
    token_axis = {**axis, "tickmode": "array", "tickvals": list(range(rows)), "ticktext": names,
                  "autorange": "reversed", "tickfont": {"size": 11}, "ticklabeloverflow": TICK_OVERFLOW}
    for i, (query, keys, query_hover, key_hover, title, vmax) in enumerate(panels):
        left = i * (width + gap)
        domain = [left, left + width]
        xq, yq, xk, yk = f"x{2 * i + 1}", f"y{2 * i + 1}", f"x{2 * i + 2}", f"y{2 * i + 2}"
        last = i == len(panels) - 1
        colorbar = ({"title": {"text": "q × k", "side": "right"}, "thickness": 12, "len": top} if last else None)
        if query is not None:
            data.append(heat(query[None, :], xq, yq, [[query_hover.format(token=query_name)] * d], vmax))
            layout_axes["xaxis" + xq[1:]] = {**axis, "domain": domain, "anchor": yq, "showticklabels": False}
            layout_axes["yaxis" + yq[1:]] = {**axis, "domain": [top + 0.04, 1.0], "tickmode": "array", "tickvals": [0],
                                             "ticktext": [f"q: “{query_name}”"] if i == 0 else [""],
                                             "fixedrange": True, "anchor": xq}
        data.append(heat(keys, xk, yk, [[key_hover.format(token=n)] * d for n in names], vmax, colorbar))
        layout_axes["xaxis" + xk[1:]] = {**axis, "domain": domain, "anchor": yk, "title": {"text": title}}
        layout_axes["yaxis" + yk[1:]] = {**token_axis, "domain": [0, top], "anchor": xk, "showticklabels": i == 0,
                                         **({"matches": "y2"} if i else {})}
    layout = _base_layout(height=int(min(2000, max(300, 18 * rows + 170))), margin={"l": 110, "r": 30, "t": 40, "b": 40},
                          hovermode="closest", **layout_axes)
    return {"data": data, "layout": layout}


def inside_weights_figure(steps: dict[str, np.ndarray | None], labels: list[str], masked: np.ndarray) -> dict:
    """Steps 4-7, a panel each, a bar a key token: the scores ``q·k/√d`` (masked keys marked, not drawn
    as zero), the softmax weights (with the model's own weights as dots), the value norms and the
    weighted result. ``steps`` holds "scores", "weights", "model_weights", "value_norms", "weighted"
    (None where the model has none); for today's models "scaled_scores" (q·k × the layer's own scaling)
    and "capped_scores" (Gemma2's soft-cap) replace "scores"."""
    rows = len(labels)
    names = [safe_label(label) for label in labels]
    panels = [("scaled_scores", _("4. score q·k × scale"), "#6c757d"), ("scores", _("4. score q·k/√d"), "#6c757d"),
              ("capped_scores", _("4b. soft-capped score"), "#8c6d31"), ("weights", _("5. weight"), "#3b528b"),
              ("value_norms", _("6. ‖f(x)‖"), "#21918c"), ("weighted", _("7. weight × ‖f(x)‖"), "#e4572e")]
    panels = [p for p in panels if steps.get(p[0]) is not None]
    width = 1.0 / max(len(panels), 1)
    data, layout_axes = [], {}
    for i, (name, title, colour) in enumerate(panels):
        n = "" if i == 0 else str(i + 1)
        values = np.asarray(steps[name], dtype=np.float64)
        shown = np.where(np.isfinite(values) & ~masked, values, 0.0)
        data.append({"type": "bar", "orientation": "h", "x": shown.astype(np.float32).tolist(), "y": list(range(rows)),
                     "xaxis": f"x{n}", "yaxis": f"y{n}", "marker": {"color": colour}, "name": title,
                     "text": names, "hovertemplate": "%{text}: %{x:.4f}<extra>" + title + "</extra>",
                     "textposition": "none", "showlegend": False})
        if masked.any():
            data.append({"type": "scatter", "mode": "text", "x": [0] * int(masked.sum()),
                         "y": np.flatnonzero(masked).tolist(), "text": [_("masked")] * int(masked.sum()),
                         "textposition": "middle right", "textfont": {"size": 10, "color": "#adb5bd"},
                         "xaxis": f"x{n}", "yaxis": f"y{n}", "hoverinfo": "skip", "showlegend": False})
        if name == "weights" and steps.get("model_weights") is not None:
            data.append({"type": "scatter", "mode": "markers", "x": np.asarray(steps["model_weights"], dtype=np.float32).tolist(),
                         "y": list(range(rows)), "xaxis": f"x{n}", "yaxis": f"y{n}", "name": _("the model's weight"),
                         "marker": {"symbol": "line-ns-open", "size": 12, "color": "#e4572e", "line": {"width": 2}},
                         "hovertemplate": _("the model's own weight: %{x:.4f}") + "<extra></extra>", "showlegend": False})
        layout_axes[f"xaxis{n}"] = {"domain": [i * width + 0.02, (i + 1) * width - 0.02], "anchor": f"y{n}",
                                    "title": {"text": title}, "zeroline": True, "showgrid": True, "side": "top"}
        layout_axes[f"yaxis{n}"] = {"tickmode": "array", "tickvals": list(range(rows)), "ticktext": names,
                                    "ticklabeloverflow": TICK_OVERFLOW,
                                    "autorange": "reversed", "showticklabels": i == 0, "showgrid": False,
                                    "anchor": f"x{n}", **({"matches": "y"} if i else {})}
    layout = _base_layout(height=int(min(2000, max(260, 18 * rows + 130))),
                          margin={"l": 110, "r": 20, "t": 90, "b": 20}, hovermode="closest", bargap=0.25,
                          **layout_axes)
    return {"data": data, "layout": layout}


def inside_head_figure(labels: list[str], query: int, scores: np.ndarray, weights: np.ndarray,
                       weighted: np.ndarray | None = None, masked: np.ndarray | None = None, *,
                       title: str = "", scale: float | None = None) -> dict:
    """One query's attention in one head, step by step: above, each key's score ``q·k × scale`` (the
    softmax's input); below, the softmax weights and, when the value norms are known, the share each
    key hands on once weighted by ``‖f(x_j)‖`` (``weighted`` rescaled to sum to 1). Masked keys (later
    tokens of a causal model) have no bar. Keys are numbered on x, named when there are few."""
    n = len(labels)
    masked = np.zeros(n, dtype=bool) if masked is None else np.asarray(masked, dtype=bool)
    x = np.arange(n)
    names = [safe_label(label) for label in labels]
    shown = ~masked
    scores = np.asarray(scores, dtype=np.float32)
    bar_colors = ["#e4572e" if i == query else "#3b528b" for i in x[shown]]
    data = [{"type": "bar", "x": x[shown].tolist(), "y": scores[shown].astype(np.float64).tolist(),
             "marker": {"color": bar_colors}, "name": "score q·k" + (f" × {scale:.3g}" if scale else ""),
             "text": [names[i] for i in x[shown]], "hovertemplate": "%{text}: score %{y:.3f}<extra></extra>",
             "xaxis": "x", "yaxis": "y"},
            {"type": "bar", "x": x.tolist(), "y": np.asarray(weights, dtype=np.float64).tolist(),
             "marker": {"color": "#21918c"}, "name": "attention weight (softmax)", "text": names,
             "hovertemplate": "%{text}: weight %{y:.3f}<extra></extra>", "xaxis": "x2", "yaxis": "y2"}]
    if weighted is not None:
        share = np.asarray(weighted, dtype=np.float64)
        share = share / share.sum() if share.sum() > 0 else share
        data.append({"type": "bar", "x": x.tolist(), "y": share.tolist(), "marker": {"color": "#fde725"},
                     "name": "share after value norms (weight × ‖f(x)‖, to sum 1)", "text": names,
                     "hovertemplate": "%{text}: %{y:.3f} of what is handed on<extra></extra>",
                     "xaxis": "x2", "yaxis": "y2"})
    ticks = {"tickmode": "array", "tickvals": x.tolist(), "ticktext": names, "autotickangles": TURNS,
             "ticklabeloverflow": TICK_OVERFLOW} if n <= 60 else {}
    return {
        "data": data,
        "layout": _base_layout(
            title={"text": title or f"Inside the head: where “{safe_label(labels[query])}” looks", "x": 0.01,
                   "xanchor": "left"},
            height=560, barmode="group", margin={"l": 60, "r": 20, "t": 70, "b": 100},
            legend={"orientation": "h", "y": -0.25},
            xaxis={"anchor": "y", "domain": [0, 1], "showticklabels": False, "range": [-0.5, n - 0.5]},
            yaxis={"domain": [0.58, 1.0], "title": {"text": "score"}, "zeroline": True},
            xaxis2={"anchor": "y2", "domain": [0, 1], "range": [-0.5, n - 0.5], "matches": "x", **ticks},
            yaxis2={"domain": [0.0, 0.45], "title": {"text": "weight"}, "rangemode": "tozero"},
        ),
    }


# --------------------------------------------------------------------------- compare (issue 11)
COMPARE_LABEL_LIMIT = 60  # tokens named on the axes; longer texts are named by the hover


COMPARE_FIGURE_PX = 900  # about the narrowest a Compare figure is drawn (1366x768): its columns' width


def compare_ticks(labels: list[str], categories: list[str], column_px: float) -> dict:
    """How a Compare panel's x axis writes its tokens, ``column_px`` wide a column. Latin labels stay
    horizontal while they fit, else plotly.js turns them. Labels holding CJK text never turn 45°: each
    is written horizontally where it fits its column, else stacked one character a line (as Chinese is
    written vertically), so every token stays named and upright."""
    if not any(is_cjk(label) for label in labels):
        return {"autotickangles": [0, -45, -90]}
    text = [safe_label(label) if label_px([label]) <= column_px - 2 else upright(label) for label in labels]
    return {"tickangle": 0, "tickmode": "array", "tickvals": categories, "ticktext": text}


def comparison_figure(a: np.ndarray, b: np.ndarray, diff: np.ndarray | None, *, x_labels: list[str],
                      y_labels: list[str], titles: tuple[str, str, str], title: str, y_title: str,
                      x_labels_b: list[str] | None = None, y_labels_b: list[str] | None = None) -> dict:
    """A and B side by side on ONE colour scale (0 to the larger maximum of the two), and, when they
    line up, their difference A − B on a diverging scale centred on 0 (blue: B attends more, red: A
    does), symmetric about 0. Matrices are ``(rows, columns)``; ``*_b`` label B's axes when its tokens
    are not A's (no difference then)."""
    panels = [(a, x_labels, y_labels), (b, x_labels_b or x_labels, y_labels_b or y_labels)]
    if diff is not None:
        panels.append((diff, x_labels, y_labels))
    count = len(panels)
    gap = 0.06
    width = (1 - gap * (count - 1) - 0.08) / count
    vmax = float(max(np.nanmax(a) if a.size else 0, np.nanmax(b) if b.size else 0, 1e-6))
    dmax = float(max(np.nanmax(np.abs(diff)) if diff is not None and diff.size else 0, 1e-6))
    data, layout_axes = [], {}
    labels_px = label_px(y_labels) if len(y_labels) <= COMPARE_LABEL_LIMIT else 0
    axis_title, annotations = axis_title_y(y_title, labels_px)
    for i, (matrix, xs, ys) in enumerate(panels):
        suffix = "" if i == 0 else str(i + 1)
        xs_u, ys_u = unique_labels(xs), unique_labels(ys)
        is_diff = diff is not None and i == 2
        data.append({
            "type": "heatmap", "z": typed_array(np.asarray(matrix, dtype=np.float32)), "x": xs_u, "y": ys_u,
            "xaxis": "x" + suffix, "yaxis": "y" + suffix, "coloraxis": "coloraxis2" if is_diff else "coloraxis",
            "hovertemplate": f"{titles[i]}<br>%{{y}} → %{{x}}: %{{z:.3f}}<extra></extra>",
        })
        start = i * (width + gap)
        named = len(xs) <= COMPARE_LABEL_LIMIT
        # labels stay horizontal while they fit, else turn (CJK: stacked, see compare_ticks); the margins
        # grow to hold them (automargin), so none is cut off
        layout_axes["xaxis" + suffix] = {"domain": [start, start + width], "anchor": "y" + suffix,
                                         **compare_ticks(xs, xs_u, COMPARE_FIGURE_PX * width / max(1, len(xs))),
                                         "automargin": True,
                                         "showticklabels": named, "showgrid": False, "type": "category",
                                         "title": {"text": titles[i], "font": {"size": 13}}, "side": "bottom",
                                         "dtick": 1 if named else None}
        layout_axes["yaxis" + suffix] = {"anchor": "x" + suffix, "autorange": "reversed", "showgrid": False,
                                         "type": "category", "showticklabels": i == 0 or (x_labels_b is not None),
                                         "automargin": True, "title": axis_title if i == 0 else None}
    cells = max(len(y_labels), len((y_labels_b or y_labels)))
    height = int(min(900, max(380, 16 * cells + 230)))
    return {
        "data": data,
        "layout": _base_layout(
            title={"text": title, "x": 0.01, "xanchor": "left"}, height=height,
            margin={"l": int(labels_px) + 40 if annotations else 60, "r": 20, "t": 60, "b": 40}, hovermode="closest",
            annotations=annotations,
            coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": vmax,
                       "colorbar": {"title": colorbar_title(_("A and B")), "thickness": 12, "len": 0.45,
                                    "y": 1.0, "yanchor": "top", "x": 1.0}},
            coloraxis2={"colorscale": _DIVERGING, "cmin": -dmax, "cmax": dmax, "cmid": 0,
                        "colorbar": {"title": colorbar_title("A − B"), "thickness": 12, "len": 0.45,
                                     "y": 0.0, "yanchor": "bottom", "x": 1.0}},
            meta={"kind": "compare", "panels": count, "vmax": vmax, "dmax": dmax},
            **{k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in layout_axes.items()},
        ),
    }
