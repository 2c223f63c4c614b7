"""Head grid: every head of the chosen layer; clicking a tile opens that head."""

from __future__ import annotations

from dash import ClientsideFunction, Dash, Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from components import ids
from components.figures import empty_figure, head_grid_figure

from .common import clamp_layer, labels, load, parse_head, safe_figure


def _render(request, layer, head) -> dict:
    result = load(request)
    if result is None:
        return empty_figure()
    layer = clamp_layer(result, layer)
    selected = parse_head(result, head)
    return head_grid_figure(result.layer(layer), labels(result), layer,
                            selected=selected if isinstance(selected, int) else None)


def render_grid(request, layer, head, active_tab):
    if active_tab != ids.TAB_GRID:
        raise PreventUpdate
    return safe_figure(_render, request, layer, head)


def select_head(click_data):
    """(head value, active tab) for a click on a tile."""
    if not click_data or not click_data.get("points"):
        return no_update, no_update
    return str(click_data["points"][0]["curveNumber"]), ids.TAB_HEATMAP


def register(app: Dash) -> None:
    app.callback(
        Output(ids.HEAD_GRID, "figure"),
        Input(ids.REQUEST, "data"), Input(ids.LAYER, "value"), Input(ids.HEAD, "value"), Input(ids.TABS, "active_tab"),
    )(render_grid)
    app.callback(
        Output(ids.HEAD, "value", allow_duplicate=True), Output(ids.TABS, "active_tab"),
        Input(ids.HEAD_GRID, "clickData"), prevent_initial_call=True,
    )(select_head)
    app.clientside_callback(
        ClientsideFunction(namespace="attention", function_name="gridHover"),
        Output(ids.GRID_TOOLTIP, "show"), Output(ids.GRID_TOOLTIP, "bbox"), Output(ids.GRID_TOOLTIP, "children"),
        Input(ids.HEAD_GRID, "hoverData"), State(ids.HEAD_GRID, "figure"),
    )
