"""Head atlas: per-head metrics on this text, a head type for each, as a map and a sortable table."""

from __future__ import annotations

import numpy as np
from dash import Output, html

from components import ids
from components.analysis_figures import atlas_map_figure
from components.figures import empty_figure
from components.layout import ATLAS_METRICS, atlas_table
from components.i18n import _
from services import heads
from services.views import View, ViewOptions, derived

from .boundary import ViewState

OUTPUTS = {"atlas_map": Output(ids.ATLAS_MAP, "figure"), "atlas_table": Output(ids.ATLAS_TABLE_HOLDER, "children"),
           "atlas_legend": Output(ids.ATLAS_LEGEND, "children"), "atlas_table_for": Output(ids.ATLAS_TABLE_FOR, "data")}
# Measured on the attention as stored, or weighted by value norm in that mode; the switches do not apply.
DEPENDS = frozenset({"handle", "layer", "head", "tab", "metric", "window", "mode"})

_TITLES = dict(ATLAS_METRICS)
_BOUNDED = {"entropy", "local", "self", "previous", "next", "delimiter"}  # 0..1


def atlas_data(result, window: int, key: str | None = None, value_norm: bool = False):
    """(metrics, labels, table rows) on the attention of the result (as stored, or weighted by value
    norm); remembered by cache key, window and mode, so changing the metric or the selected head does
    not measure again."""
    return derived.get((key, "atlas", window, value_norm), lambda: _measure(result, window, value_norm))


def _measure(result, window: int, value_norm: bool = False):
    attentions = result.attentions
    if value_norm:
        attentions = View(result, ViewOptions(value_norm=True)).all_layers()
    metrics = heads.head_metrics(attentions, heads.delimiter_mask(result.tokens, result.special_mask),
                                 window=window, causal=result.is_causal)
    labels = heads.head_labels(metrics)
    rows = heads.metric_table(metrics, labels)
    for row in rows:
        row["id"] = f"{row['layer']}-{row['head']}"
    return metrics, labels, rows


def legend(labels) -> list:
    """Each head type found, with how many heads have it and what it means, most common first."""
    names, counts = np.unique(np.asarray(labels).ravel(), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [html.Li([html.Strong(_("{type} ({count} heads):").format(type=_(str(names[i])), count=counts[i]) + " "),
                     _(heads.LABEL_HELP.get(str(names[i]), ""))])
            for i in order]


def placeholder(message: str) -> dict:
    return {"atlas_map": empty_figure(message), "atlas_table": [], "atlas_legend": [], "atlas_table_for": None}


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    value_norm = view.options.value_norm
    metrics, labels, rows = atlas_data(view.result, state.window, view.key, value_norm)
    selected = (state.layer, state.head.number) if state.head.number is not None else None
    figure = atlas_map_figure(metrics[state.metric], labels, state.metric, _(_TITLES[state.metric]),
                              zmax=1.0 if state.metric in _BOUNDED else None, selected=selected)
    out = {"atlas_map": figure}
    measured = f"{view.key}:{state.window}:{'value' if value_norm else 'raw'}"
    if state.atlas_table_for != measured:  # the table and legend change only with the measurements
        out.update(atlas_table=atlas_table(rows), atlas_legend=legend(labels), atlas_table_for=measured)
    return out
