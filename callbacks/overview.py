"""Model overview: every layer x head map at once."""

from __future__ import annotations

import math

from dash import ClientsideFunction, Dash, Input, Output, State
from dash.exceptions import PreventUpdate

from components import ids
from components.analysis_figures import OVERVIEW_CELLS, overview_figure
from components.figures import empty_figure

from .common import clamp_layer, make_view, parse_head, safe_figure


def overview_stride(units: int) -> int:
    """Cells from one tile to the next in the overview figure, for ``units`` tokens shown."""
    block = max(1, math.ceil(units / OVERVIEW_CELLS))
    return math.ceil(units / block) + 1


def _render(request, layer, head, switches) -> dict:
    view = make_view(request, "raw", switches)  # per-head maps: rollout has no heads
    if view is None:
        return empty_figure()
    layer = clamp_layer(view.result, layer)
    head = parse_head(view.result, head)
    return overview_figure(view.all_layers(), selected=(layer, head) if isinstance(head, int) else None,
                           note=view.options.note)


def render_overview(request, layer, head, switches, active_tab):
    if active_tab != ids.TAB_OVERVIEW:
        raise PreventUpdate
    return safe_figure(_render, request, layer, head, switches)


def register(app: Dash) -> None:
    app.callback(
        Output(ids.OVERVIEW, "figure"),
        Input(ids.REQUEST, "data"), Input(ids.LAYER, "value"), Input(ids.HEAD, "value"),
        Input(ids.VIEW_SWITCHES, "value"), Input(ids.TABS, "active_tab"),
    )(render_overview)
    app.clientside_callback(
        ClientsideFunction(namespace="attention", function_name="tileHover"),
        Output(ids.OVERVIEW_TOOLTIP, "show"), Output(ids.OVERVIEW_TOOLTIP, "bbox"),
        Output(ids.OVERVIEW_TOOLTIP, "children"),
        Input(ids.OVERVIEW, "hoverData"), State(ids.OVERVIEW, "figure"),
    )
