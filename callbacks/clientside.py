"""Wiring of the browser-side callbacks (assets/2*.js, one file a feature): hovers, clicks and toggles that need
no request, or that pick values the router then draws with one."""

from __future__ import annotations

from dash import ALL, ClientsideFunction, Dash, Input, Output, State

from ..components import ids


def _js(name: str) -> ClientsideFunction:
    return ClientsideFunction(namespace="attention", function_name=name)


def register(app: Dash) -> None:
    app.clientside_callback(  # a box zoom of a long text's heatmap: the router draws the exact part on screen
        _js("zoomOf"),
        Output(ids.ZOOM, "data", allow_duplicate=True),
        Input(ids.HEAD_HEATMAP, "relayoutData"), State(ids.HEAD_HEATMAP, "figure"), State(ids.ZOOM, "data"),
        prevent_initial_call=True,
    )
    # The tooltips of the grid, heatmap and overview are drawn in ONE step from plotly.js's hover event
    # (assets/21-hover.js sets the tooltip's props itself): no callback here.
    app.clientside_callback(  # a box zoom inside a tile of a zoomable grid: that region, exact, in every tile
        _js("gridZoomOf"),
        Output(ids.ZOOM, "data", allow_duplicate=True),
        Input(ids.HEAD_GRID, "relayoutData"), State(ids.HEAD_GRID, "figure"), State(ids.ZOOM, "data"),
        prevent_initial_call=True,
    )
    app.clientside_callback(  # a box zoom on a panel of Compare's long pictures: the same region, exact
        _js("compareZoomOf"),
        Output(ids.ZOOM, "data", allow_duplicate=True),
        Input(ids.COMPARE_HEADS, "relayoutData"), State(ids.COMPARE_HEADS, "figure"), State(ids.ZOOM, "data"),
        prevent_initial_call=True,
    )
    app.clientside_callback(  # a box zoom inside one head of a long text's overview: that head's heatmap, zoomed
        _js("overviewZoomOf"),
        Output(ids.ZOOM, "data", allow_duplicate=True), Output(ids.LAYER, "value", allow_duplicate=True),
        Output(ids.HEAD, "value", allow_duplicate=True), Output(ids.TABS, "active_tab", allow_duplicate=True),
        Input(ids.OVERVIEW, "relayoutData"), State(ids.OVERVIEW, "figure"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        _js("navigate"),
        Output(ids.LAYER, "value", allow_duplicate=True), Output(ids.HEAD, "value", allow_duplicate=True),
        Output(ids.TABS, "active_tab", allow_duplicate=True),
        Input(ids.HEAD_GRID, "clickData"), Input(ids.OVERVIEW, "clickData"), Input(ids.ATLAS_MAP, "clickData"),
        State(ids.HEAD_GRID, "figure"), State(ids.OVERVIEW, "figure"), State(ids.ATTN_MODE, "value"),
        prevent_initial_call=True,
    )
    app.clientside_callback(  # on its own: the atlas's table is not on the page until the atlas opens
        _js("openTableRow"),
        Output(ids.LAYER, "value", allow_duplicate=True), Output(ids.HEAD, "value", allow_duplicate=True),
        Output(ids.TABS, "active_tab", allow_duplicate=True),
        Input(ids.ATLAS_TABLE, "active_cell"),
        prevent_initial_call=True,
    )
    app.clientside_callback(  # a row of Compare's "heads that differ most": that head, still compared
        _js("openCompareRow"),
        Output(ids.LAYER, "value", allow_duplicate=True), Output(ids.HEAD, "value", allow_duplicate=True),
        Input(ids.COMPARE_TABLE, "active_cell"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        _js("arcClick"),
        Output(ids.ARC_FOCUS, "data", allow_duplicate=True), Output(ids.TOKEN, "data", allow_duplicate=True),
        Input(ids.ARC_VIEW, "clickData"), State(ids.ARC_VIEW, "figure"), State(ids.ARC_FOCUS, "data"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        _js("isolateArcs"),
        Output(ids.ARC_HOVER_SINK, "data"),
        Input(ids.ARC_VIEW, "hoverData"), State(ids.ARC_VIEW, "figure"),
        prevent_initial_call=True,
    )
    app.clientside_callback(  # a heatmap row: look inside the head for that query token
        _js("heatmapClick"),
        Output(ids.TOKEN, "data", allow_duplicate=True), Output(ids.TABS, "active_tab", allow_duplicate=True),
        Input(ids.HEAD_HEATMAP, "clickData"), State(ids.HEAD_HEATMAP, "figure"),
        prevent_initial_call=True,
    )
    for picker in (ids.FOCUS_TOKEN, ids.INSIDE_QUERY):  # a person's choice becomes the token followed
        app.clientside_callback(
            _js("pickToken"),
            Output(ids.TOKEN, "data", allow_duplicate=True),
            Input(picker, "value"), State(ids.TOKEN, "data"),
            prevent_initial_call=True,
        )
    app.clientside_callback(  # the layer slider and head selector follow the kind of attention's depth
        _js("fitToKind"),
        Output(ids.LAYER, "max", allow_duplicate=True), Output(ids.LAYER, "marks", allow_duplicate=True),
        Output(ids.LAYER, "value", allow_duplicate=True), Output(ids.HEAD, "options", allow_duplicate=True),
        Output(ids.HEAD, "value", allow_duplicate=True),
        Input(ids.KIND, "value"), Input(ids.KIND_DIMS, "data"),
        State(ids.LAYER, "value"), State(ids.LAYER, "max"), State(ids.HEAD, "value"), State(ids.HEAD, "options"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        _js("togglePair"),
        Output(ids.PAIR_COLLAPSE, "is_open", allow_duplicate=True),
        Input(ids.PAIR_TOGGLE, "n_clicks"), State(ids.PAIR_COLLAPSE, "is_open"),
        prevent_initial_call=True,
    )
    app.clientside_callback(  # the query string the page opened with (Back and Forward: assets/26-url.js)
        _js("readUrl"),
        Output(ids.URL, "data"), Input(ids.URL, "id"),
    )
    app.clientside_callback(  # the URL follows the page's state (replace; a new analysis: a new entry)
        _js("writeUrl"),
        Output(ids.URL_SINK, "data"),
        Input(ids.SHARE, "data"), Input(ids.LAYER, "value"), Input(ids.HEAD, "value"), Input(ids.TABS, "active_tab"),
        Input(ids.ATTN_MODE, "value"), Input(ids.VIEW_SWITCHES, "value"), Input(ids.TOKEN, "data"),
        Input(ids.KIND, "value"), Input(ids.PAIR_FILTER, "value"), Input(ids.GEN_STEP, "value"),
        Input(ids.COMPARE_SHARE, "data"), State(ids.KIND_WRAP, "style"), State(ids.PAIR_WRAP, "style"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        _js("switchLanguage"),
        Output(ids.URL_SINK, "data", allow_duplicate=True),
        Input({"type": ids.LANGUAGE, "lang": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        _js("copyLink"),
        Output(ids.COPY_LINK, "content"), Input(ids.COPY_LINK, "n_clicks"),
        prevent_initial_call=True,
    )
