"""Head atlas: per-head metrics on this text, a head type for each, as a map and a sortable table."""

from __future__ import annotations

import numpy as np
from dash import Dash, Input, Output, html
from dash.exceptions import PreventUpdate

from components import ids
from components.analysis_figures import atlas_map_figure
from components.figures import empty_figure
from components.layout import ATLAS_METRICS
from services import heads

from .common import clamp_layer, error_figure, load, parse_head

_TITLES = dict(ATLAS_METRICS)
_BOUNDED = {"entropy", "local", "self", "previous", "next", "delimiter"}  # 0..1


def atlas_data(result, window: int):
    """(metrics, labels, table rows) on the raw attention of the result."""
    metrics = heads.head_metrics(result.attentions, heads.delimiter_mask(result.tokens, result.special_mask),
                                 window=int(window or 3), causal=result.is_causal)
    labels = heads.head_labels(metrics)
    rows = heads.metric_table(metrics, labels)
    for row in rows:
        row["id"] = f"{row['layer']}-{row['head']}"
    return metrics, labels, rows


def legend(labels) -> list:
    """Each head type found, with how many heads have it and what it means, most common first."""
    names, counts = np.unique(np.asarray(labels).ravel(), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [html.Li([html.Strong(f"{names[i]} ({counts[i]} heads): "), heads.LABEL_HELP.get(str(names[i]), "")])
            for i in order]


def render_atlas(request, metric, window, layer, head, active_tab):
    """Outputs: map figure, table rows, legend."""
    if active_tab != ids.TAB_ATLAS:
        raise PreventUpdate
    try:
        result = load(request)
        if result is None:
            return empty_figure(), [], []
        metric = metric if metric in _TITLES else "entropy"
        metrics, labels, rows = atlas_data(result, window)
        layer, head = clamp_layer(result, layer), parse_head(result, head)
        figure = atlas_map_figure(metrics[metric], labels, metric, _TITLES[metric],
                                  zmax=1.0 if metric in _BOUNDED else None,
                                  selected=(layer, head) if isinstance(head, int) else None)
        return figure, rows, legend(labels)
    except Exception as exc:  # noqa: BLE001 - never a traceback
        return error_figure(exc), [], []


def register(app: Dash) -> None:
    app.callback(
        Output(ids.ATLAS_MAP, "figure"), Output(ids.ATLAS_TABLE, "data"), Output(ids.ATLAS_LEGEND, "children"),
        Input(ids.REQUEST, "data"), Input(ids.ATLAS_METRIC, "value"), Input(ids.ATLAS_WINDOW, "value"),
        Input(ids.LAYER, "value"), Input(ids.HEAD, "value"), Input(ids.TABS, "active_tab"),
    )(render_atlas)
