"""Jumping to a head: a click on a grid tile, a model-overview cell, a head-atlas cell or table row."""

from __future__ import annotations

from dash import Dash, Input, Output, State, ctx, no_update

from components import ids

from .common import make_view
from .overview import overview_stride

NOTHING = (no_update, no_update, no_update)


def _point(event) -> dict | None:
    return event["points"][0] if event and event.get("points") else None


def from_grid(click, mode):
    """(layer, head, tab) for a grid tile: a head, or in Rollout mode a layer."""
    point = _point(click)
    if point is None:
        return NOTHING
    if mode == "rollout":
        return int(point["curveNumber"]), no_update, ids.TAB_HEATMAP
    return no_update, str(point["curveNumber"]), ids.TAB_HEATMAP


def from_overview(click, request, switches):
    point = _point(click)
    view = make_view(request, "raw", switches)
    if point is None or view is None:
        return NOTHING
    stride = overview_stride(len(view.labels))
    layer, head = int(point["y"]) // stride, int(point["x"]) // stride
    if not (0 <= layer < view.result.num_layers and 0 <= head < view.result.num_heads):
        return NOTHING
    return layer, str(head), ids.TAB_HEATMAP


def from_atlas_map(click):
    point = _point(click)
    if point is None:
        return NOTHING
    return int(point["y"]), str(int(point["x"])), ids.TAB_HEATMAP


def from_atlas_table(active_cell):
    """Rows carry ids "layer-head", so sorting the table does not change which head a row opens."""
    if not active_cell or not active_cell.get("row_id"):
        return NOTHING
    layer, head = str(active_cell["row_id"]).split("-")
    return int(layer), head, ids.TAB_HEATMAP


def navigate(grid_click, overview_click, atlas_click, table_cell, request, mode, switches):
    trigger = ctx.triggered_id
    if trigger == ids.HEAD_GRID:
        return from_grid(grid_click, mode)
    if trigger == ids.OVERVIEW:
        return from_overview(overview_click, request, switches)
    if trigger == ids.ATLAS_MAP:
        return from_atlas_map(atlas_click)
    if trigger == ids.ATLAS_TABLE:
        return from_atlas_table(table_cell)
    return NOTHING


def register(app: Dash) -> None:
    app.callback(
        Output(ids.LAYER, "value", allow_duplicate=True), Output(ids.HEAD, "value", allow_duplicate=True),
        Output(ids.TABS, "active_tab"),
        Input(ids.HEAD_GRID, "clickData"), Input(ids.OVERVIEW, "clickData"), Input(ids.ATLAS_MAP, "clickData"),
        Input(ids.ATLAS_TABLE, "active_cell"),
        State(ids.REQUEST, "data"), State(ids.ATTN_MODE, "value"), State(ids.VIEW_SWITCHES, "value"),
        prevent_initial_call=True,
    )(navigate)
