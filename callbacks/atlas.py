"""Head atlas: per-head metrics on this text, a head type for each, as a map and a sortable table."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from dash import Output, html

from ..components import ids
from ..components.analysis_figures import atlas_map_figure
from ..components.figures import empty_figure
from ..components.i18n import _, translate
from ..components.layout import ATLAS_METRICS, atlas_table
from ..services.analyses import heads, kinds
from ..services.analyses.exports import atlas_csv
from ..services.analyses.views import View, ViewOptions, dense_limit
from ..services.store.memory import memory
from .boundary import ViewState
from .viewspec import ViewSpec

OUTPUTS = {"atlas_map": Output(ids.ATLAS_MAP, "figure"), "atlas_table": Output(ids.ATLAS_TABLE_HOLDER, "children"),
           "atlas_legend": Output(ids.ATLAS_LEGEND, "children"), "atlas_table_for": Output(ids.ATLAS_TABLE_FOR, "data")}
# Measured on the attention as stored, or weighted by value norm in that mode; the switches do not apply.

_TITLES = dict(ATLAS_METRICS)
_BOUNDED = {"entropy", "local", "self", "previous", "next", "delimiter"}  # 0..1


def atlas_data(result, window: int, key: str | None = None, value_norm: bool = False, kind: str | None = None):
    """(metrics, labels, table rows) on one kind of the result's attention (as stored, or weighted by
    value norm); remembered by cache key, window, mode and kind, so changing the metric or the selected
    head does not measure again. For cross-attention only the metrics ``kinds.atlas_metrics`` names
    are measured; the others are NaN (blank in the table)."""
    return memory().derived.get_or_compute((key, "atlas", window, value_norm, kind), lambda: _measure(result, window, value_norm, kind))


def _measure(result, window: int, value_norm: bool = False, kind: str | None = None):
    view = View(result, ViewOptions(value_norm=value_norm), kind=kind)
    attentions = view.all_layers() if value_norm else view.kv.attentions
    key_delimiters = heads.delimiter_mask(view.kv.key_tokens, view.kv.key_special)
    if view.square:
        metrics = heads.head_metrics(attentions, key_delimiters, window=window, causal=view.kv.causal)
    else:
        measured = kinds.rectangular_metrics(attentions, key_delimiters)
        blank = np.full(attentions.shape[:2], np.nan)
        metrics = {name: measured.get(name, blank) for name in heads.METRICS}
    labels = heads.head_labels(metrics)
    rows = heads.metric_table(metrics, labels)
    for row in rows:
        row["id"] = f"{row['layer']}-{row['head']}"
        for name in heads.METRICS:
            if row[name] != row[name]:  # NaN: not defined for this kind
                row[name] = None
    return metrics, labels, rows


def pair_share(view) -> np.ndarray:
    """``(layers, heads)``: for the pair filter on, the share of its queries' attention that goes to
    its keys (e.g. A→B: how much sentence A's tokens look at sentence B), averaged over those queries."""
    query_segment, _key_segment = kinds.PAIR_FILTERS[view.pair]
    rows = np.array([s == query_segment for s in view.rows.segments])
    filtered = view.all_layers()  # zero outside the pair's block
    return filtered[..., rows, :].sum(axis=-1).mean(axis=-1) if rows.any() else np.zeros(filtered.shape[:2])


def legend(labels) -> list:
    """Each head type found, with how many heads have it and what it means, most common first."""
    names, counts = np.unique(np.asarray(labels).ravel(), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [html.Li([html.Strong(_("{type} ({count} heads):").format(type=translate(str(names[i])), count=counts[i]) + " "),
                     translate(heads.LABEL_HELP.get(str(names[i]), ""))])
            for i in order]


def placeholder(message: str) -> dict:
    return {"atlas_map": empty_figure(message), "atlas_table": [], "atlas_legend": [], "atlas_table_for": None}


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    if view.long:  # issue 18 item 3 (head metrics streamed head by head) is another change: say so, no error
        layers, heads_, n, _k = view.shape
        return placeholder(_("The head atlas measures every map of every head at once: with this model it works up to "
                             "{limit} tokens, and this text has {n}. The other views show it.")
                           .format(limit=f"{dense_limit(layers, heads_):,}", n=f"{n:,}"))
    value_norm = view.options.value_norm
    metrics, labels, rows = atlas_data(view.result, state.window, view.key, value_norm, view.kind)
    selected = (state.layer, state.head.number) if state.head.number is not None else None
    if view.pair:
        title = _("share of attention from {pair} (sentence {a}'s tokens looking at sentence {b})").format(
            pair=view.pair, a=view.pair[0], b=view.pair[-1])
        figure = atlas_map_figure(pair_share(view), labels, "pair", title, zmax=1.0, selected=selected)
    elif kinds.metric_reason(state.metric, view.kind):
        figure = empty_figure(_("“{metric}” is not defined for cross-attention: a query (a target token) and a key (a "
                                "source token) are in different texts, so their positions cannot be compared. Pick "
                                "entropy or attention to delimiters.").format(metric=translate(_TITLES[state.metric])))
    else:
        figure = atlas_map_figure(metrics[state.metric], labels, state.metric, translate(_TITLES[state.metric]),
                                  zmax=1.0 if state.metric in _BOUNDED else None, selected=selected)
    out = {"atlas_map": figure}
    measured = f"{view.key}:{state.window}:{'value' if value_norm else 'raw'}:{view.kind}"
    if state.atlas_table_for != measured:  # the table and legend change only with the measurements
        out.update(atlas_table=atlas_table(rows), atlas_legend=legend(labels), atlas_table_for=measured)
    return out


def csv(result, state, view, max_rows: int) -> Iterable[str]:
    """The head atlas: one row a head, its type and every metric (``services.analyses.exports.atlas_csv``)."""
    metrics, labels, _rows = atlas_data(result, state.window, view.key, view.options.value_norm, view.kind)
    return [atlas_csv(metrics, labels)]  # one row a head: small


VIEW = ViewSpec(name="atlas", tab=ids.TAB_ATLAS, outputs=OUTPUTS, main="atlas_map", graph=ids.ATLAS_MAP, depends=frozenset({"handle", "layer", "head", "tab", "metric", "window", "mode", "kind", "pair"}), render=render, placeholder=placeholder, csv=csv, file_head=False)
