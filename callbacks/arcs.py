"""Arc view: tokens in reading order, arcs to what each attends to. Hovering a token keeps only its arcs
(in the browser, no request); clicking it keeps them (here) and follows it in Token focus."""

from __future__ import annotations

import numpy as np
from dash import Output, html

from ..components import ids
from ..components.figures import ARC_WINDOW, HEAD_COLORS, arc_figure, arc_window, cross_arc_figure, empty_figure, note_span
from ..components.i18n import _
from ..components.layout import head_legend
from .boundary import ViewState
from .common import matrix_title, numbers_csv, view_note
from .viewspec import ViewSpec

OUTPUTS = {"arcs": Output(ids.ARC_VIEW, "figure"), "arc_hint": Output(ids.ARC_HINT, "children"),
           "arc_start": Output(ids.ARC_START, "value"), "arc_start_max": Output(ids.ARC_START, "max"),
           "arc_start_wrap": Output(ids.ARC_START_WRAP, "style"), "arc_legend": Output(ids.ARC_LEGEND, "children")}


def placeholder(message: str) -> dict:
    return {"arcs": empty_figure(message), "arc_hint": "", "arc_legend": []}


class _WindowRows:
    """A long text's weights as ``arc_figure`` reads them (``weights[:, queries, :]`` for the queries of the
    window it draws): only those rows, exact (``View.shown_rows``), never the whole (n, n) maps."""

    def __init__(self, view, layer: int, heads: list[int | None], first: int, end: int) -> None:
        self.first, self.end = first, end
        self.rows = np.stack([view.shown_rows(layer, h, np.arange(first, end)) for h in heads])
        self.shape = (len(heads), len(view.labels), self.rows.shape[-1])

    def __getitem__(self, index):
        queries = np.asarray(index[1])
        return self.rows[:, queries - self.first, :]


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    names = None
    if view.long:  # only the window's rows (the arc view itself: another change of issue 18)
        units = max(len(view.labels), len(view.col_labels)) if not view.square else len(view.labels)
        first, end = arc_window(units, state.arc_start, view.unit_of(state.arc_focus))
        end = min(end, len(view.labels))
        if state.head.kind == "all":
            names = [str(h) for h in range(view.shape[1])]
            weights = _WindowRows(view, state.layer, list(range(view.shape[1])), first, end)
            what = _("Layer {layer} · all heads (one colour a head)").format(layer=state.layer)
        else:
            weights = _WindowRows(view, state.layer, [state.head.number], first, end)
            what = matrix_title(view.options, state.layer, state.head.number)
    elif not view.options.rollout and state.head.kind == "all":
        weights, names = view.layer(state.layer), [str(h) for h in range(view.kv.attentions.shape[1])]
        what = _("Layer {layer} · all heads (one colour a head)").format(layer=state.layer)
    else:
        matrix, _title = view.matrix(state.layer, state.head.number)
        what = matrix_title(view.options, state.layer, state.head.number)
        weights = matrix[None]
    labels = view.labels
    focus = view.unit_of(state.arc_focus)
    title = what + note_span(view_note(view))
    common = {"top_k": state.top_k, "min_weight": state.min_weight, "focus": focus, "group_names": names,
              "title": title, "token_index": view.token_index, "start": state.arc_start}
    if view.square:
        figure = arc_figure(weights, labels, causal=view.kv.causal, **common)
    else:
        figure = cross_arc_figure(weights, labels, view.col_labels, **common)
    meta = figure["layout"]["meta"]
    count = meta["arcs"]
    if focus is None:
        hint = _("{count} arcs: each token's top {k} with weight ≥ {weight}. Hover a token to see only its arcs; "
                 "click to keep them.").format(count=count, k=state.top_k, weight=f"{state.min_weight:g}")
    else:
        hint = _("Showing what “{token}” attends to ({count} arcs). Click it again to release.").format(
            token=labels[focus], count=count)
    out = {"arcs": figure, "arc_legend": head_legend(names or [], HEAD_COLORS)}
    windowed = meta["units"] > ARC_WINDOW
    if windowed:
        hint = (_("Tokens {first}–{last} of {total} (move the slider to read on).").format(
                    first=meta["first"], last=meta["end"] - 1, total=meta["units"]) + " " + hint
                + (" " + _("{count} arcs to tokens outside this window are not drawn.").format(count=meta["outside"])
                   if meta["outside"] else ""))
        if meta["first"] != state.arc_start:
            out["arc_start"] = meta["first"]  # the window moved to hold the clicked token
    if triggered & {"handle", "switches", "tab", "kind", "pair"}:
        out["arc_start_max"] = max(0, meta["units"] - ARC_WINDOW)
        out["arc_start_wrap"] = {} if windowed else {"display": "none"}
    if not view.square:
        reading = _("Target tokens above, source tokens below: a line from each target token to the source tokens "
                    "it attends to most.")
    elif view.kv.causal:
        reading = _("Causal model: each token sees only itself and earlier tokens, so every arc bends back (down).")
    else:
        reading = _("Arcs above: attends to a later token · below: to an earlier token · loop: to itself.")
    out["arc_hint"] = [html.Div(reading), html.Div(hint)]
    return out

VIEW = ViewSpec(name="arcs", tab=ids.TAB_ARCS, outputs=OUTPUTS, main="arcs", graph=ids.ARC_VIEW, depends=frozenset({"handle", "layer", "head", "mode", "switches", "tab", "top_k", "min_weight", "arc_focus",
                     "arc_start", "kind", "pair"}), render=render, placeholder=placeholder, csv=numbers_csv("arcs"))
