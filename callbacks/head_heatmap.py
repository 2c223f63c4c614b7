"""Single-head heatmap: one head, or the mean of heads, in full."""

from __future__ import annotations

from dash import Dash, Input, Output
from dash.exceptions import PreventUpdate

from components import ids
from components.figures import empty_figure, heatmap_figure

from .common import clamp_layer, labels, load, one_matrix, parse_head, safe_figure


def _render(request, layer, head) -> dict:
    result = load(request)
    if result is None:
        return empty_figure()
    layer = clamp_layer(result, layer)
    matrix, title = one_matrix(result, layer, parse_head(result, head))
    note = "causal: the upper triangle is empty because tokens cannot see later ones" if result.is_causal else None
    return heatmap_figure(matrix, labels(result), title, note=note)


def render_heatmap(request, layer, head, active_tab):
    if active_tab != ids.TAB_HEATMAP:
        raise PreventUpdate
    return safe_figure(_render, request, layer, head)


def register(app: Dash) -> None:
    app.callback(
        Output(ids.HEAD_HEATMAP, "figure"),
        Input(ids.REQUEST, "data"), Input(ids.LAYER, "value"), Input(ids.HEAD, "value"), Input(ids.TABS, "active_tab"),
    )(render_heatmap)
