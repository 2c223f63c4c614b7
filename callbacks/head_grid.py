"""Head grid: every head of the chosen layer (in Rollout mode: the rollout through every layer)."""

from __future__ import annotations

from dash import ClientsideFunction, Dash, Input, Output, State

from components import ids
from components.figures import empty_figure, head_grid_figure

from .common import clamp_layer, make_view, parse_head, tab_figure, view_inputs


def _render(request, layer, head, mode, switches) -> dict:
    view = make_view(request, mode, switches)
    if view is None:
        return empty_figure()
    layer = clamp_layer(view.result, layer)
    note = view.options.note or None
    if view.options.rollout:
        layers = view.result.num_layers
        return head_grid_figure(view.rollout_layers(), view.labels, layer, selected=layer, tile="layer",
                                title=f"Rollout through each of the {layers} layers (heads averaged)", note=note)
    selected = parse_head(view.result, head)
    return head_grid_figure(view.layer(layer), view.labels, layer,
                            selected=selected if isinstance(selected, int) else None, note=note)


def render_grid(request, layer, head, mode, switches, active_tab):
    return tab_figure(ids.TAB_GRID, active_tab, _render, request, layer, head, mode, switches)


def register(app: Dash) -> None:
    app.callback(Output(ids.HEAD_GRID, "figure"), *view_inputs())(render_grid)
    app.clientside_callback(
        ClientsideFunction(namespace="attention", function_name="tileHover"),
        Output(ids.GRID_TOOLTIP, "show"), Output(ids.GRID_TOOLTIP, "bbox"), Output(ids.GRID_TOOLTIP, "children"),
        Input(ids.HEAD_GRID, "hoverData"), State(ids.HEAD_GRID, "figure"),
    )
