"""Single-head heatmap: one head, the mean of heads, or the rollout, in full."""

from __future__ import annotations

from dash import Output

from components import ids
from components.figures import GRID_MAX_CELLS, empty_figure, grid_geometry, heatmap_figure
from components.i18n import _

from .boundary import ViewState
from .common import matrix_title, note_of
from .head_grid import layer_sources

OUTPUTS = {"heatmap": Output(ids.HEAD_HEATMAP, "figure")}
DEPENDS = frozenset({"handle", "layer", "head", "mode", "switches", "tab"})


def placeholder(message: str) -> dict:
    return {"heatmap": empty_figure(message)}


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    notes = [note_of(view.options)] if note_of(view.options) else []
    if view.result.is_causal:
        notes.append(_("causal: the upper triangle is empty because tokens cannot see later ones"))
    note = " · ".join(notes) or None
    result = view.result
    if view.is_raw and state.head.number is not None and result.seq_len <= GRID_MAX_CELLS:
        # One head of the layer's grid picture (every head at full size): the browser shows another head
        # of this layer by moving the picture, without a request.
        geometry = grid_geometry(result.num_heads, result.seq_len)
        grid = {"source": layer_sources(view)[state.layer], "meta": geometry, "head": state.head.number,
                "key": view.key, "titles": [matrix_title(view.options, state.layer, h) for h in range(result.num_heads)]}
        return {"heatmap": heatmap_figure(None, view.labels, grid["titles"][state.head.number], note=note,
                                          token_index=view.token_index, grid=grid)}
    matrix, _title = view.matrix(state.layer, state.head.number)
    title = matrix_title(view.options, state.layer, state.head.number)
    figure = heatmap_figure(matrix, view.labels, title, note=note, token_index=view.token_index)
    if view.options.value_norm and state.head.number is not None and not (state.hide_special or state.merge):
        # the hover gives α_ij ‖f(x_j)‖ itself too: the shown share times its row's sum
        figure["layout"]["meta"]["row_scale"] = view.value_row_sums(state.layer)[state.head.number].tolist()
    return {"heatmap": figure}
