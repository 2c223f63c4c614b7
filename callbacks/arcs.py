"""Arc view: tokens in reading order, arcs to what each attends to; hover or click a token to isolate it."""

from __future__ import annotations

from dash import Dash, Input, Output, State
from dash.exceptions import PreventUpdate

from components import ids
from components.figures import arc_figure, empty_figure

from .common import clamp_layer, error_figure, make_view, parse_head, switch_inputs


def _token_index(event) -> int | None:
    """The token under a hover or click event, if the event is on the token trace (trace 0)."""
    if not event or not event.get("points"):
        return None
    point = event["points"][0]
    return int(point["pointIndex"]) if point.get("curveNumber") == 0 else None


def toggle_focus(click_data, current):
    """Clicking a token keeps only its arcs; clicking it again releases it."""
    token = _token_index(click_data)
    if token is None:
        raise PreventUpdate
    return None if token == current else token


def _render(request, layer, head, top_k, min_weight, focus, mode=None, switches=None):
    view = make_view(request, mode, switches)
    if view is None:
        return empty_figure(), ""
    result = view.result
    layer = clamp_layer(result, layer)
    head = parse_head(result, head)
    names = None
    if view.options.rollout:
        matrix, what = view.matrix(layer, None)
        weights = matrix[None]
    elif head == ids.HEAD_ALL:
        weights, names = view.layer(layer), [str(h) for h in range(result.num_heads)]
        what = f"Layer {layer} · all heads (one colour a head)"
    else:
        matrix, what = view.matrix(layer, head if isinstance(head, int) else None)
        weights = matrix[None]
    token_labels = view.labels
    if focus is not None and not 0 <= focus < len(token_labels):
        focus = None
    title = what + (f" <span style='font-size:12px;color:#6c757d'>{view.options.note}</span>" if view.options.note else "")
    figure = arc_figure(weights, token_labels, top_k=int(top_k or 3), min_weight=float(min_weight or 0.0),
                        focus=focus, group_names=names, causal=result.is_causal, title=title)
    count = figure["layout"]["meta"]["arcs"]
    if focus is None:
        hint = (f"{count} arcs: each token's top {top_k} with weight ≥ {min_weight:g}. "
                "Hover a token to see only its arcs; click to keep them.")
    else:
        hint = f"Showing what “{token_labels[focus]}” attends to ({count} arcs). Click it again to release."
    return figure, hint


def render_arcs(request, layer, head, top_k, min_weight, clicked, hover, mode, switches, active_tab):
    """Outputs: figure, hint. The clicked token wins over the hovered one."""
    if active_tab != ids.TAB_ARCS:
        raise PreventUpdate
    focus = clicked if clicked is not None else _token_index(hover)
    try:
        return _render(request, layer, head, top_k, min_weight, focus, mode, switches)
    except Exception as exc:  # noqa: BLE001 - never a traceback
        return error_figure(exc), ""


def register(app: Dash) -> None:
    app.callback(
        Output(ids.ARC_VIEW, "figure"), Output(ids.ARC_HINT, "children"),
        Input(ids.REQUEST, "data"), Input(ids.LAYER, "value"), Input(ids.HEAD, "value"),
        Input(ids.ARC_TOP_K, "value"), Input(ids.ARC_MIN_WEIGHT, "value"), Input(ids.ARC_FOCUS, "data"),
        Input(ids.ARC_VIEW, "hoverData"), *switch_inputs(), Input(ids.TABS, "active_tab"),
    )(render_arcs)
    app.callback(
        Output(ids.ARC_FOCUS, "data", allow_duplicate=True),
        Input(ids.ARC_VIEW, "clickData"), State(ids.ARC_FOCUS, "data"), prevent_initial_call=True,
    )(toggle_focus)
