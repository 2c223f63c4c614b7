"""Arc view: tokens in reading order, arcs (WebGL) to what each attends to. Hovering a token keeps only
its arcs (in the browser, no request); clicking it keeps them (here) and follows it in Token focus; the
head chips hide a head (click) or show it alone (double click), in the browser. Only the rows of the
window drawn are read, and of them only each row's largest weights are kept, a block of rows at a time
(``services.analyses.arcs.window_arcs``): a 4,096-token text is never held whole, and moving the window
back and forth reads what is kept. A window move sends the figure alone (the head chips stay)."""

from __future__ import annotations

import numpy as np
from dash import Output, html

from ..components import ids
from ..components.figures import ARC_WINDOW, HEAD_COLORS, PickedArcs, arc_figure, arc_window, cross_arc_figure, \
    cross_windows, empty_figure, note_span
from ..components.i18n import _
from ..components.layout import head_legend
from ..services.analyses.arcs import window_arcs
from .boundary import ViewState
from .common import Unavailable, matrix_title, numbers_csv, view_note
from .viewspec import ViewSpec

OUTPUTS = {"arcs": Output(ids.ARC_VIEW, "figure"), "arc_hint": Output(ids.ARC_HINT, "children"),
           "arc_start": Output(ids.ARC_START, "value"), "arc_start_max": Output(ids.ARC_START, "max"),
           "arc_start_wrap": Output(ids.ARC_START_WRAP, "style"), "arc_legend": Output(ids.ARC_LEGEND, "children")}


# What changes the arcs drawn but never the head chips (a window move, a token clicked, top k, weight)
WINDOW_ONLY = frozenset({"arc_start", "arc_focus", "top_k", "min_weight"})


def placeholder(message: str) -> dict:
    return {"arcs": empty_figure(message), "arc_hint": "", "arc_legend": []}


def _generated(view) -> list[bool] | None:
    """For each row unit shown, whether the model generated it (a decoder-only model's continuation)."""
    mask = view.result.generated_mask
    if mask is None or view.result.is_encoder_decoder:
        return None
    mask = np.asarray(mask, dtype=bool)
    return [bool(mask[i]) for i in view.token_index]


def _picked(view, state: ViewState, heads: list[int] | None, first: int, end: int) -> PickedArcs:
    """The window's arcs, picked from the row tops kept for the view (``window_arcs``)."""
    return PickedArcs(1 if heads is None else len(heads), end - first, lambda focus: window_arcs(
        view, state.layer, heads, first, end, state.top_k, state.min_weight, focus))


def _weights(view, state: ViewState, first: int, end: int):
    """``(the window's arcs: rows or picked, head names or None, what is drawn)``."""
    if not view.options.rollout and state.head.kind == "all":
        heads = list(range(view.kv.attentions.shape[1]))
        what = _("Layer {layer} · all heads (one colour a head)").format(layer=state.layer)
        return _picked(view, state, heads, first, end), [str(h) for h in heads], what
    what = matrix_title(view.options, state.layer, state.head.number)
    if view.options.rollout:  # through every layer: whole matrices (short texts only)
        if not view.result.dense:
            raise Unavailable(_("Rollout multiplies every layer's whole maps: too many at {tokens} tokens. "
                                "Choose Raw to see the arcs.").format(tokens=view.result.seq_len))
        matrix, _title = view.matrix(state.layer, state.head.number)
        return matrix[None, first:end], None, what
    heads = None if state.head.number is None else [state.head.number]
    return _picked(view, state, heads, first, end), None, what


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    labels = view.labels
    focus = view.unit_of(state.arc_focus)
    if view.square:
        first, end = arc_window(len(labels), state.arc_start, focus)
    else:
        (first, end), _keys = cross_windows(len(labels), len(view.col_labels), state.arc_start, focus)
    try:
        weights, names, what = _weights(view, state, first, end)
    except Unavailable as why:
        return placeholder(str(why))
    title = what + note_span(view_note(view))
    common = {"top_k": state.top_k, "min_weight": state.min_weight, "focus": focus, "group_names": names,
              "title": title, "token_index": view.token_index, "start": state.arc_start, "first": first,
              "generated": _generated(view)}
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
    if meta["generated"]:
        hint += " " + _("Tokens in purple italics are the ones the model generated.")
    out = {"arcs": figure}
    if not triggered <= WINDOW_ONLY:  # the chips name the heads: the same while only the window or arcs change
        out["arc_legend"] = head_legend(names or [], HEAD_COLORS)
    windowed = meta["units"] > ARC_WINDOW
    if windowed:
        hint = (_("Tokens {first}–{last} of {total} (move the slider to read on).").format(
                    first=meta["first"], last=meta["end"] - 1, total=meta["units"]) + " " + hint
                + (" " + _("{count} arcs go to tokens outside this window: dotted, to its edge.").format(
                    count=meta["outside"])
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
                     "arc_start", "kind", "pair"}), render=render, placeholder=placeholder, csv=numbers_csv("arcs"), direct=True)
