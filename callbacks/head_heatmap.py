"""Single-head heatmap: one head, the mean of heads, or the rollout, in full."""

from __future__ import annotations

from dash import Dash, Output

from components import ids
from components.figures import empty_figure, heatmap_figure

from .common import clamp_layer, make_view, parse_head, tab_figure, view_inputs

def _render(request, layer, head, mode, switches) -> dict:
    view = make_view(request, mode, switches)
    if view is None:
        return empty_figure()
    layer = clamp_layer(view.result, layer)
    head = parse_head(view.result, head)
    matrix, title = view.matrix(layer, head if isinstance(head, int) else None)
    notes = [view.options.note] if view.options.note else []
    if view.result.is_causal:
        notes.append("causal: the upper triangle is empty because tokens cannot see later ones")
    return heatmap_figure(matrix, view.labels, title, note=" · ".join(notes) or None)


def render_heatmap(request, layer, head, mode, switches, active_tab):
    return tab_figure(ids.TAB_HEATMAP, active_tab, _render, request, layer, head, mode, switches)


def register(app: Dash) -> None:
    app.callback(Output(ids.HEAD_HEATMAP, "figure"), *view_inputs())(render_heatmap)
