"""Arc view: tokens in reading order, arcs to what each attends to. Hovering a token keeps only its arcs
(in the browser, no request); clicking it keeps them (here) and follows it in Token focus."""

from __future__ import annotations

from dash import Output, html

from ..components import ids
from ..components.figures import ARC_WINDOW, HEAD_COLORS, arc_figure, cross_arc_figure, empty_figure, note_span
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


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    names = None
    if not view.options.rollout and state.head.kind == "all":
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
