"""Arc view: tokens in reading order, arcs to what each attends to. Hovering a token keeps only its arcs
(in the browser, no request); clicking it keeps them (here) and follows it in Token focus."""

from __future__ import annotations

from dash import Output, html

from components import ids
from components.figures import ARC_WINDOW, HEAD_COLORS, arc_figure, empty_figure
from components.layout import head_legend

from .boundary import ViewState

OUTPUTS = {"arcs": Output(ids.ARC_VIEW, "figure"), "arc_hint": Output(ids.ARC_HINT, "children"),
           "arc_start": Output(ids.ARC_START, "value"), "arc_start_max": Output(ids.ARC_START, "max"),
           "arc_start_wrap": Output(ids.ARC_START_WRAP, "style"), "arc_legend": Output(ids.ARC_LEGEND, "children")}
DEPENDS = frozenset({"handle", "layer", "head", "mode", "switches", "tab", "top_k", "min_weight", "arc_focus",
                     "arc_start"})


def placeholder(message: str) -> dict:
    return {"arcs": empty_figure(message), "arc_hint": "", "arc_legend": []}


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    result = view.result
    names = None
    if not view.options.rollout and state.head.kind == "all":
        weights, names = view.layer(state.layer), [str(h) for h in range(result.num_heads)]
        what = f"Layer {state.layer} · all heads (one colour a head)"
    else:
        matrix, what = view.matrix(state.layer, state.head.number)
        weights = matrix[None]
    labels = view.labels
    focus = view.unit_of(state.arc_focus)
    title = what + (f" <span style='font-size:12px;color:#6c757d'>{view.options.note}</span>" if view.options.note else "")
    figure = arc_figure(weights, labels, top_k=state.top_k, min_weight=state.min_weight, focus=focus,
                        group_names=names, causal=result.is_causal, title=title, token_index=view.token_index,
                        start=state.arc_start)
    meta = figure["layout"]["meta"]
    count = meta["arcs"]
    if focus is None:
        hint = (f"{count} arcs: each token's top {state.top_k} with weight ≥ {state.min_weight:g}. "
                "Hover a token to see only its arcs; click to keep them.")
    else:
        hint = f"Showing what “{labels[focus]}” attends to ({count} arcs). Click it again to release."
    out = {"arcs": figure, "arc_legend": head_legend(names or [], HEAD_COLORS)}
    windowed = meta["units"] > ARC_WINDOW
    if windowed:
        hint = (f"Tokens {meta['first']}–{meta['end'] - 1} of {meta['units']} (move the slider to read on). "
                + hint + (f" {meta['outside']} arcs to tokens outside this window are not drawn."
                          if meta["outside"] else ""))
        if meta["first"] != state.arc_start:
            out["arc_start"] = meta["first"]  # the window moved to hold the clicked token
    if triggered & {"handle", "switches", "tab"}:
        out["arc_start_max"] = max(0, meta["units"] - ARC_WINDOW)
        out["arc_start_wrap"] = {} if windowed else {"display": "none"}
    reading = ("Causal model: each token sees only itself and earlier tokens, so every arc bends back (down)."
               if result.is_causal else
               "Arcs above: attends to a later token · below: to an earlier token · loop: to itself.")
    out["arc_hint"] = [html.Div(reading), html.Div(hint)]
    return out
