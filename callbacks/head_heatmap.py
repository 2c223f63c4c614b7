"""Single-head heatmap: one head, the mean of heads, or the rollout, in full."""

from __future__ import annotations

from dash import Output

from ..components import ids
from ..components.figures import GRID_MAX_CELLS, empty_figure, grid_geometry, heatmap_figure
from ..components.i18n import _
from .boundary import ViewState
from .common import matrix_title, numbers_csv, view_note
from .head_grid import layer_sources
from .viewspec import ViewSpec

OUTPUTS = {"heatmap": Output(ids.HEAD_HEATMAP, "figure")}


def placeholder(message: str) -> dict:
    return {"heatmap": empty_figure(message)}


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    notes = [view_note(view)] if view_note(view) else []
    if view.kv.causal:
        notes.append(_("causal: the upper triangle is empty because tokens cannot see later ones"))
    note = " · ".join(notes) or None
    attentions = view.kv.attentions
    heads, queries, keys = attentions.shape[1:]
    labels = {"query_labels": view.labels, "token_index": view.token_index}
    if view.is_raw and state.head.number is not None and max(queries, keys) <= GRID_MAX_CELLS:
        # One head of the layer's grid picture (every head at full size): the browser shows another head
        # of this layer by moving the picture, without a request.
        geometry = grid_geometry(heads, queries, keys=keys)
        grid = {"source": layer_sources(view)[state.layer], "meta": geometry, "head": state.head.number,
                "key": view.key, "kind": view.kind if view.result.is_encoder_decoder else None,
                "titles": [matrix_title(view.options, state.layer, h) for h in range(heads)]}
        return {"heatmap": heatmap_figure(None, view.col_labels, grid["titles"][state.head.number], note=note,
                                          grid=grid, **labels)}
    matrix, _title = view.matrix(state.layer, state.head.number)
    title = matrix_title(view.options, state.layer, state.head.number)
    figure = heatmap_figure(matrix, view.col_labels, title, note=note, **labels)
    if view.options.value_norm and state.head.number is not None and not (state.hide_special or state.merge):
        # the hover gives α_ij ‖f(x_j)‖ itself too: the shown share times its row's sum
        figure["layout"]["meta"]["row_scale"] = view.value_row_sums(state.layer)[state.head.number].tolist()
    return {"heatmap": figure}

VIEW = ViewSpec(name="heatmap", tab=ids.TAB_HEATMAP, outputs=OUTPUTS, main="heatmap", graph=ids.HEAD_HEATMAP, depends=frozenset({"handle", "layer", "head", "mode", "switches", "tab", "kind", "pair"}), render=render, placeholder=placeholder, csv=numbers_csv("heatmap"))
