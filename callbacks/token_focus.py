"""Token focus: where one token looks in every layer (heads averaged), and who looks at it."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import numpy as np
from dash import Dash, Input, Output, State, html, no_update
from dash.exceptions import PreventUpdate

from components import ids
from components.analysis_figures import focus_figure
from components.figures import empty_figure
from services.analysis import top_attended
from services.matrices import attended_by

from .common import error_figure, make_view, switch_inputs


PRONOUNS = {"it", "he", "she", "they", "him", "her", "them", "its", "it's", "它", "他", "她"}


def token_options(request, mode, switches, current):
    """(options, value) for the token picker: the units shown; keeps the current token if still shown."""
    view = make_view(request, mode, switches)
    if view is None:
        return [], None
    options = [{"label": f"{label} (#{i})", "value": token}
               for i, (label, token) in enumerate(zip(view.labels, view.token_index))]
    values = [o["value"] for o in options]
    if current in values:
        return options, current
    special = np.asarray(view.result.special_mask)
    content = [t for t in values if not special[t]]
    pronouns = [t for t, label in zip(values, view.labels) if label.strip().lower() in PRONOUNS]
    # a pronoun is what people most often want to follow ("where does 'it' look?")
    return options, (pronouns[0] if pronouns else content[0] if content else (values[0] if values else None))


def focus_from_click(arc_focus, heatmap_click, request, mode, switches):
    """A token clicked in the arc view, or the query row of a head-heatmap cell, becomes the focus token."""
    view = make_view(request, mode, switches)
    if view is None:
        raise PreventUpdate
    if arc_focus is not None and isinstance(arc_focus, int) and 0 <= arc_focus < len(view.token_index):
        return view.token_index[arc_focus]
    point = heatmap_click["points"][0] if heatmap_click and heatmap_click.get("points") else None
    if point is not None:
        row = point.get("pointNumber")
        row = row[0] if isinstance(row, list) else None
        if row is not None and 0 <= row < len(view.token_index):
            return view.token_index[row]
    raise PreventUpdate


def _table(title: str, pairs: list[list[tuple[int, float]]], labels: list[str]) -> html.Div:
    k = max((len(p) for p in pairs), default=0)
    header = html.Thead(html.Tr([html.Th("layer")] + [html.Th(f"#{i + 1}") for i in range(k)]))
    body = html.Tbody([
        html.Tr([html.Td(str(layer))] + [html.Td(f"{labels[j]} ({w:.2f})") for j, w in row])
        for layer, row in enumerate(pairs)
    ])
    return html.Div(className="mt-3", children=[html.H6(title), dbc.Table([header, body], size="sm", striped=True,
                                                                            bordered=False, className="ae-focus")])


def render_focus(request, token, k, mode, switches, active_tab):
    """Outputs: layers x tokens figure, tables (where it looks, who looks at it)."""
    if active_tab != ids.TAB_FOCUS:
        raise PreventUpdate
    try:
        view = make_view(request, mode, switches)
        if view is None:
            return empty_figure(), []
        unit = view.unit_of(token if isinstance(token, int) else None)
        if unit is None:
            return empty_figure("Pick a token (it may be hidden by “Hide special tokens”)."), []
        att = view.rollout_layers()[:, None] if view.options.rollout else view.all_layers()
        k = int(k or 3)
        label = view.labels[unit]
        rows = att[:, :, unit, :].mean(axis=1)
        figure = focus_figure(rows, view.labels, label, note=view.options.note)
        tables = [
            _table(f"Where “{label}” looks most, layer by layer (heads averaged)", top_attended(att, unit, k), view.labels),
            _table(f"Who looks at “{label}” most, layer by layer", attended_by(att, unit, k), view.labels),
        ]
        return figure, tables
    except Exception as exc:  # noqa: BLE001 - never a traceback
        return error_figure(exc), []


def register(app: Dash) -> None:
    app.callback(
        Output(ids.FOCUS_TOKEN, "options"), Output(ids.FOCUS_TOKEN, "value"),
        Input(ids.REQUEST, "data"), *switch_inputs(), State(ids.FOCUS_TOKEN, "value"),
    )(token_options)
    app.callback(
        Output(ids.FOCUS_TOKEN, "value", allow_duplicate=True),
        Input(ids.ARC_FOCUS, "data"), Input(ids.HEAD_HEATMAP, "clickData"),
        State(ids.REQUEST, "data"), State(ids.ATTN_MODE, "value"), State(ids.VIEW_SWITCHES, "value"),
        prevent_initial_call=True,
    )(focus_from_click)
    app.callback(
        Output(ids.FOCUS_HEATMAP, "figure"), Output(ids.FOCUS_TABLES, "children"),
        Input(ids.REQUEST, "data"), Input(ids.FOCUS_TOKEN, "value"), Input(ids.FOCUS_K, "value"), *switch_inputs(),
        Input(ids.TABS, "active_tab"),
    )(render_focus)
