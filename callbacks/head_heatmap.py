"""Single-head heatmap: one head, the mean of heads, or the rollout, in full."""

from __future__ import annotations

import numpy as np
from dash import Output

from ..components import ids
from ..components import images
from ..components.figures import GRID_MAX_CELLS, empty_figure, grid_geometry, heatmap_figure
from ..components.i18n import _
from ..components.pooled import MINIMAP_CELLS, add_minimap, block_for, long_heatmap_figure, pair_shapes
from ..services.analyses.kinds import PAIR_FILTERS
from ..services.result import pool
from ..services.store.memory import memory
from .boundary import ViewState
from .common import matrix_title, numbers_csv, view_note
from .head_grid import layer_sources
from .hover import source
from .viewspec import ViewSpec

OUTPUTS = {"heatmap": Output(ids.HEAD_HEATMAP, "figure")}


def placeholder(message: str) -> dict:
    return {"heatmap": empty_figure(message)}


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    notes = [view_note(view)] if view_note(view) else []
    if view.kv.causal:
        notes.append(_("causal: the upper triangle is empty because tokens cannot see later ones"))
    note = " · ".join(notes) or None
    if view.long:
        return {"heatmap": long_render(view, state, note)}
    attentions = view.kv.attentions
    heads, queries, keys = attentions.shape[1:]
    labels = {"query_labels": view.labels, "token_index": view.token_index}
    if view.is_raw and max(queries, keys) <= GRID_MAX_CELLS:
        # One head of the layer's grid picture (every head at full size), or the mean of heads: the browser
        # shows another head, the mean, or (with the grid's pictures) another layer alone, without a request.
        geometry = grid_geometry(heads, queries, keys=keys)
        head = state.head.number
        grid = {"source": layer_sources(view)[state.layer], "meta": geometry, "head": head,
                "key": view.key, "kind": view.kind if view.result.is_encoder_decoder else None,
                "titles": [matrix_title(view.options, state.layer, h) for h in range(heads)],
                "layer": state.layer, "title_template": _("Layer {layer} · Head {head}"),
                "means": mean_sources(view), "mean_title_template": _("Layer {layer} · Mean of heads")}
        title = matrix_title(view.options, state.layer, head)
        figure = heatmap_figure(None, view.col_labels, title, note=note, grid=grid, **labels)
        figure["layout"]["shapes"] = pair_lines(view)
        figure["layout"]["meta"]["src"] = source(view, state)  # the hover's exact values (callbacks/hover.py)
        return {"heatmap": figure}
    matrix, _title = view.matrix(state.layer, state.head.number)
    title = matrix_title(view.options, state.layer, state.head.number)
    figure = heatmap_figure(matrix, view.col_labels, title, note=note, **labels)
    figure["layout"]["shapes"] = pair_lines(view)
    figure["layout"]["meta"]["src"] = source(view, state)  # the hover's exact values (callbacks/hover.py)
    if view.options.value_norm and state.head.number is not None and not (state.hide_special or state.merge):
        # the hover gives α_ij ‖f(x_j)‖ itself too: the shown share times its row's sum
        figure["layout"]["meta"]["row_scale"] = view.value_row_sums(state.layer)[state.head.number].tolist()
    return {"heatmap": figure}

def mean_sources(view) -> list[str]:
    """Every layer's mean-of-heads picture (as ``heatmap_figure`` draws one matrix), made once per analysis:
    a twelfth of the grid's pictures, so the heatmap carries them all."""
    attentions = view.kv.attentions
    return memory().derived.get_or_compute(
        (view.key, "mean-sources", view.kind),
        lambda: [images.png_data_uri(images.to_levels(view.matrix(layer, None)[0]))
                 for layer in range(attentions.shape[0])])


def pair_lines(view) -> list:
    """For a sentence pair: the line where sentence A ends and, under a pair filter, the left-out rows
    and columns drawn light grey (issue 18 item 6); none otherwise."""
    if not view.square or not any(s == 1 for s in view.rows.segments):
        return []
    return pair_shapes(view.rows.segments, view.cols.segments, PAIR_FILTERS[view.pair] if view.pair else None)


def long_render(view, state: ViewState, note: str | None) -> dict:
    """A long text: the map pooled in blocks (``state.pool``: max or mean), or, after a box zoom, the part
    on screen: exact when it fits ``HEATMAP_CELLS`` a side, else pooled again, finer."""
    n_rows, n_cols = len(view.labels), len(view.col_labels)
    zoom = state.zoom.of(view.key, "heatmap") if state.zoom is not None else None
    region = (0, n_rows, 0, n_cols) if zoom is None else zoom.region(n_rows, n_cols)
    block = block_for(max(region[1] - region[0], region[3] - region[2]))
    values = view.picture(state.layer, state.head.number, block, state.pool, region)
    if view.pair:  # blocks the pair filter leaves out wholly are blank (NaN: the hover says so), not zero
        query_segment, key_segment = PAIR_FILTERS[view.pair]
        rows = np.array([s == query_segment for s in view.rows.segments[region[0]:region[1]]], dtype=np.float32)
        cols = np.array([s == key_segment for s in view.cols.segments[region[2]:region[3]]], dtype=np.float32)
        kept = pool(rows[:, None] * cols[None, :], block, "max") > 0
        values = np.where(kept, values, np.nan).astype(np.float32)
    shapes = pair_lines(view)
    figure = long_heatmap_figure(values, block, state.pool, region, view.labels, view.col_labels,
                                 matrix_title(view.options, state.layer, state.head.number), note=note,
                                 token_index=view.token_index, shapes=shapes, zoomed=zoom is not None)
    figure["layout"]["meta"].update(key=view.key, attention_kind=view.kind if view.result.is_encoder_decoder else None)
    if zoom is not None:  # the whole map, small, beside it: where the part on screen is
        whole_block = block_for(max(n_rows, n_cols))  # the unzoomed picture's (remembered: no new work)
        whole = view.picture(state.layer, state.head.number, whole_block, state.pool)
        factor = block_for(max(whole.shape), MINIMAP_CELLS)
        add_minimap(figure, pool(np.nan_to_num(whole, nan=0.0), factor, state.pool), whole_block * factor, region,
                    n_rows, n_cols)
    return figure


VIEW = ViewSpec(name="heatmap", tab=ids.TAB_HEATMAP, outputs=OUTPUTS, main="heatmap", graph=ids.HEAD_HEATMAP, depends=frozenset({"handle", "layer", "head", "mode", "switches", "tab", "kind", "pair", "zoom"}), render=render, placeholder=placeholder, csv=numbers_csv("heatmap"), direct=True)
