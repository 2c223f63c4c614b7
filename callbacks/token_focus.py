"""Token focus: where one token looks in every layer (heads averaged), and who looks at it."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import numpy as np
from dash import Output, html

from ..components import ids
from ..components.analysis_figures import focus_figure
from ..components.figures import empty_figure
from ..components.i18n import _
from ..services.analyses.matrices import top_k
from ..services.analyses.views import dense_limit
from .boundary import ViewState
from .common import numbers_csv, view_note
from .viewspec import ViewSpec

OUTPUTS = {"focus_figure": Output(ids.FOCUS_HEATMAP, "figure"), "focus_tables": Output(ids.FOCUS_TABLES, "children"),
           "focus_options": Output(ids.FOCUS_TOKEN, "options"), "focus_value": Output(ids.FOCUS_TOKEN, "value"),
           "token": Output(ids.TOKEN, "data", allow_duplicate=True)}

PRONOUNS = {"it", "he", "she", "they", "him", "her", "them", "its", "it's", "它", "他", "她"}


def default_token(view) -> int | None:
    """The token to follow when none is chosen: a pronoun ("where does 'it' look?"), else the first
    content token."""
    special = np.asarray(view.kv.query_special)
    for token, label in zip(view.token_index, view.labels):
        if label.strip().lower() in PRONOUNS:
            return token
    content = [t for t in view.token_index if not special[t]]
    return content[0] if content else (view.token_index[0] if view.token_index else None)


def token_options(view) -> list[dict]:
    return [{"label": f"{label} (#{i})", "value": token}
            for i, (label, token) in enumerate(zip(view.labels, view.token_index))]


def _table(title: str, pairs: list[list[tuple[int, float]]], labels: list[str]) -> html.Div:
    k = max((len(p) for p in pairs), default=0)
    header = html.Thead(html.Tr([html.Th(_("layer"))] + [html.Th(f"#{i + 1}") for i in range(k)]))
    body = html.Tbody([
        html.Tr([html.Td(str(layer))] + [html.Td(f"{labels[j]} ({w:.2f})") for j, w in row])
        for layer, row in enumerate(pairs)
    ])
    return html.Div(className="mt-3", children=[html.H6(title), dbc.Table([header, body], size="sm", striped=True,
                                                                            bordered=False, className="ae-focus")])


def placeholder(message: str) -> dict:
    return {"focus_figure": empty_figure(message), "focus_tables": []}


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    out = {}
    token = state.token
    if view.unit_of(token) is None:  # none chosen yet, or hidden by a switch: pick one
        token = default_token(view)
        out["token"] = token
    if triggered & {"handle", "mode", "switches", "tab", "kind"}:
        out["focus_options"] = token_options(view)
    out["focus_value"] = token  # the picker shows the token followed, whoever chose it
    unit = view.unit_of(token)
    if unit is None:
        out.update(placeholder(_("Pick a token (it may be hidden by “Hide special tokens”).")))
        return out
    looks, looked_at = view.focus(unit)
    label = view.labels[unit]
    out["focus_figure"] = focus_figure(looks, view.col_labels, label, note=view_note(view))
    out["focus_tables"] = [
        _table(_("Where “{token}” looks most, layer by layer (heads averaged)").format(token=label),
               [top_k(row, state.focus_k) for row in looks], view.col_labels)]
    if looked_at is not None:
        out["focus_tables"].append(_table(_("Who looks at “{token}” most, layer by layer").format(token=label),
                                          [top_k(col, state.focus_k) for col in looked_at], view.labels))
    elif view.square:  # a long text: a column needs every row of every head of every layer
        layers, heads, n, _keys = view.shape
        out["focus_tables"].append(html.P(_("“Who looks at it” needs every row of every head in every layer: too "
                                            "costly for {n} tokens. With this model it is shown up to {limit} "
                                            "tokens.").format(n=f"{n:,}", limit=f"{dense_limit(layers, heads):,}"),
                                          className="small text-muted mt-2"))
    else:
        out["focus_tables"].append(html.P(_("Cross-attention goes one way, from target tokens to source tokens: "
                                            "no token of the source looks at a target token, so there is no "
                                            "“who looks at it” table."), className="small text-muted mt-2"))
    return out

VIEW = ViewSpec(name="focus", tab=ids.TAB_FOCUS, outputs=OUTPUTS, main="focus_figure", graph=ids.FOCUS_HEATMAP, depends=frozenset({"handle", "mode", "switches", "tab", "token", "focus_k", "kind", "pair"}), render=render, placeholder=placeholder, csv=numbers_csv("focus"), file_head=False, direct=True)
