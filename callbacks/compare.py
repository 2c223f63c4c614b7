"""Compare: the analysis above (A) beside a second one (B: another text, or the same text on another
model). Two parts: analysing B (``register``: the Compare button), and the view (``render``, one of the
router's modules): where the followed token looks in each layer, then the chosen layer and head, for
A, B and, when they line up, A − B; and the heads that differ most."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
from dash import Dash, Input, Output, State, html, no_update

from ..components import ids
from ..components.analysis_figures import comparison_figure
from ..components.figures import GRID_MAX_CELLS, empty_figure, note_span, safe_label
from ..components.pooled import block_for, pooled_label
from ..components.i18n import N_, _, translate
from ..components.layout import compare_table
from ..components.status import cut_alerts, error_alert
from ..services import AttentionExplorerError
from ..services.analyses.compare import Comparison, compare
from ..services.analyses.kinds import kinds_available
from ..services.analyses.views import View
from ..services.extraction import analyse, result_by_key
from ..services.model.loading import display_name
from ..services.result import pool
from ..services.serial import comparison_csv_chunks
from ..services.web.ratelimit import client_id, new_analysis_guard
from . import boundary
from .boundary import Handle, ViewState
from .common import EXPIRED, Unavailable, handle_of, matrix_title, message_for, view_note
from .token_focus import default_token
from .viewspec import ViewSpec

log = logging.getLogger(__name__)

OUTPUTS = {"compare_focus": Output(ids.COMPARE_FOCUS, "figure"), "compare_heads": Output(ids.COMPARE_HEADS, "figure"),
           "compare_status": Output(ids.COMPARE_STATUS, "children"),
           "compare_table": Output(ids.COMPARE_TABLE_HOLDER, "children"),
           "token": Output(ids.TOKEN, "data", allow_duplicate=True)}
DEPENDS = frozenset({"handle", "compare_handle", "layer", "head", "mode", "switches", "tab", "token", "kind", "pair",
                     "zoom"})
# The heads table sums |A − B| over the whole model: drawn again only when what it shows changed (not
# on a layer, head or token change). The focus figure does not depend on the layer or head.
TABLE_DEPENDS = DEPENDS - {"layer", "head", "token", "zoom"}
FOCUS_DEPENDS = DEPENDS - {"layer", "head", "zoom"}


def placeholder(message: str) -> dict:
    return {"compare_focus": empty_figure(message), "compare_heads": empty_figure(""), "compare_status": "",
            "compare_table": []}


def view_b(view: View, handle: Handle) -> View | str:
    """B seen through A's switches and kind (its own first kind when it has not A's), or why not."""
    found = result_by_key(handle.key, handle.recipe, before_compute=new_analysis_guard(client_id()))
    if found is None:
        return translate(EXPIRED)
    key, result = found
    kinds = kinds_available(result)
    return View(result, view.options, key, kind=view.kind if view.kind in kinds else kinds[0], pair=view.pair)


QUOTE_CHARS = 80  # the status line quotes a text up to this many characters (a 4,096-token text: its start)
LIST_WORDS = 12  # and names up to this many of the words where the two texts differ


def quoted(text: str, limit: int = QUOTE_CHARS) -> str:
    """A text for one status line: its white space folded, cut at ``limit`` characters with "…"."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def word_list(words: list[str], limit: int = LIST_WORDS) -> str:
    """Up to ``limit`` words, then how many more."""
    shown = ", ".join(words[:limit])
    return shown if len(words) <= limit else _("{words} and {count} more").format(words=shown, count=len(words) - limit)


def _describe(a: View, b: View) -> str:
    same_model = a.result.model_id == b.result.model_id
    if same_model:
        return _("A: “{a}” · B: “{b}” · model {model}").format(a=quoted(a.result.text), b=quoted(b.result.text),
                                                               model=display_name(a.result.model_id))
    text = (quoted(b.result.text) if b.result.text == a.result.text
            else f"{quoted(a.result.text)} / {quoted(b.result.text)}")
    return _("A: model {a} · B: model {b} · text “{text}”").format(a=display_name(a.result.model_id),
                                                                 b=display_name(b.result.model_id), text=text)


def comparison(view: View, state: ViewState) -> Comparison | str:
    """A (the view) beside B (the handle the Compare button stored), or why there is no B to show."""
    if state.compare is None:
        return _("Type text B (or pick model B) and press Compare.")
    other = view_b(view, state.compare)
    return other if isinstance(other, str) else compare(view, other)


def render(view: View, state: ViewState, triggered: frozenset[str]) -> dict:
    c = comparison(view, state)
    if isinstance(c, str):
        return placeholder(c)
    a, b = c.a, c.b
    out: dict[str, Any] = {}
    token = state.token
    unit = a.unit_of(token)
    if unit is None:
        token = default_token(a)
        out["token"] = token
        unit = a.unit_of(token)
    lines = [_describe(a, b)]
    if c.lined_up:
        if c.how == "words":
            lines.append(_("The two texts have different sub-words but the same words: compared word by word "
                           "(sub-words merged)."))
        if c.differing:
            lines.append(_("They differ at: {words}.").format(words=word_list([c.labels[i] for i in c.differing])))
        lines.append(_("Red: A attends more than B; blue: B attends more than A; A and B share one colour scale."))
    else:
        lines.append(translate(c.reason).format(**dict(c.params)))
    note = view_note(a)
    if triggered & FOCUS_DEPENDS:
        out["compare_focus"] = _focus_figure(c, unit, note)
    # 2. the chosen layer and head
    head = state.head.number
    if a.long or b.long:  # pooled pictures, exact (a long text's maps are never held whole)
        out.update(compare_heads=_long_heads(c, state, head),
                   compare_status=[html.Div(line) for line in lines])
        if triggered & TABLE_DEPENDS:
            out["compare_table"] = [html.P(_("The heads that differ most are measured over every map of every head: "
                                             "not for texts this long."), className="small text-muted mt-2")]
        return out
    matrix_a, _t = a.matrix(min(state.layer, a.kv.attentions.shape[0] - 1), head)
    matrix_b, _t = b.matrix(min(state.layer, b.kv.attentions.shape[0] - 1), head)
    heads = comparison_figure(
        matrix_a, matrix_b, matrix_a - matrix_b if c.lined_up else None,
        x_labels=c.col_labels, y_labels=c.labels, x_labels_b=None if c.lined_up else b.col_labels,
        y_labels_b=None if c.lined_up else b.labels, titles=("A", "B", "A − B"), y_title=_("query (attending)"),
        title=matrix_title(a.options, state.layer, head))
    out.update(compare_heads=heads, compare_status=[html.Div(line) for line in lines])
    if triggered & TABLE_DEPENDS:
        out["compare_table"] = _heads_table(c)
    return out


def _block_labels(count: int, block: int, labels: list[str], first: int = 0) -> list[str]:
    """One label a pooled cell of tokens ``first`` to ``count - 1``: its token range (``#0–31 the … of``), or
    the token at block 1."""
    if block == 1:
        return list(labels[first:count])
    return [f"#{i}–{min(count, i + block) - 1} {labels[i]} … {labels[min(count, i + block) - 1]}"
            for i in range(first, count, block)]


def signed_largest(diff: np.ndarray, block: int) -> np.ndarray:
    """``diff`` (rows, columns) pooled in ``block`` x ``block`` cells: each cell the difference of largest
    magnitude in its block, with its sign."""
    high, low = pool(diff, block, "max"), -pool(-diff, block, "max")
    return np.where(np.abs(low) > np.abs(high), low, high).astype(np.float32)


def _regions(c: Comparison, state: ViewState) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int], bool]:
    """``(A's region, B's region, zoomed)``: the rows and columns each panel shows, ``(r0, r1, c0, c1)``. A box
    zoom on Compare (``boundary.Zoom``, view "compare") is every panel's region when A and B line up (the same
    tokens), else only the panel it was made on (its ``panel``): token numbers of two texts name other words."""
    a, b = c.a, c.b
    zoom = state.zoom.of(a.key, "compare") if state.zoom is not None else None
    if zoom is not None and not c.lined_up and zoom.panel is None:
        zoom = None

    def region(v: View, panel: str) -> tuple[int, int, int, int]:
        n_rows, n_cols = len(v.labels), len(v.col_labels)
        if zoom is None or (not c.lined_up and zoom.panel != panel):
            return 0, n_rows, 0, n_cols
        return zoom.region(n_rows, n_cols)

    return region(a, "a"), region(b, "b"), zoom is not None


def _long_heads(c: Comparison, state: ViewState, head: int | None) -> dict:
    """A and B of the chosen layer and head pooled in blocks (``state.pool``), and, when they line up, A − B
    as the largest difference in each block: every cell exact, read in chunks of rows. After a box zoom, the
    region zoomed (``_regions``), pooled finer while large, down to single tokens with their names."""
    a, b = c.a, c.b
    layer_a, layer_b = min(state.layer, a.shape[0] - 1), min(state.layer, b.shape[0] - 1)
    (ra, rb, zoomed) = _regions(c, state)
    side = lambda r: max(r[1] - r[0], r[3] - r[2])  # noqa: E731
    if zoomed and not c.lined_up:  # each panel its own region: each its own block
        block_a, block_b = block_for(side(ra), GRID_MAX_CELLS), block_for(side(rb), GRID_MAX_CELLS)
    else:
        block_a = block_b = block_for(max(side(ra), side(rb)), GRID_MAX_CELLS)
    pa = a.picture(layer_a, head, block_a, state.pool, ra)
    pb = b.picture(layer_b, head, block_b, state.pool, rb)
    diff = None
    if c.lined_up:
        r0, r1, c0, c1 = ra
        step = max(block_a, (1 << 22) // max(1, len(a.col_labels)) // block_a * block_a)
        diff = np.concatenate([signed_largest((a.shown_rows(layer_a, head, np.arange(s, min(r1, s + step)))
                                               - b.shown_rows(layer_b, head, np.arange(s, min(r1, s + step))))[:, c0:c1],
                                              block_a) for s in range(r0, r1, step)], axis=0)
    title = matrix_title(a.options, state.layer, head)
    if zoomed:  # the region each zoomed panel shows (when they line up: every panel's)
        for name, r, block, v in (("A", ra, block_a, a), ("B", rb, block_b, b))[:1 if c.lined_up else 2]:
            if r != (0, len(v.labels), 0, len(v.col_labels)):
                words = (_("exact tile: tokens {r0}–{r1} → {c0}–{c1}") if block == 1
                         else _("tokens {r0}–{r1} → {c0}–{c1}")).format(r0=r[0], r1=r[1] - 1, c0=r[2], c1=r[3] - 1)
                title += note_span(words if c.lined_up else f"{name}: {words}")
    if max(block_a, block_b) > 1:
        how = (pooled_label(block_a, state.pool) if block_a == block_b
               else f"A: {pooled_label(block_a, state.pool)} · B: {pooled_label(block_b, state.pool)}")
        title += note_span(how + (" · " + _("A − B: the largest difference in each block")
                                  if diff is not None and block_a > 1 else ""))
    figure = comparison_figure(
        pa, pb, diff, x_labels=_block_labels(ra[3], block_a, c.col_labels, ra[2]),
        y_labels=_block_labels(ra[1], block_a, c.labels, ra[0]),
        x_labels_b=None if c.lined_up else _block_labels(rb[3], block_b, b.col_labels, rb[2]),
        y_labels_b=None if c.lined_up else _block_labels(rb[1], block_b, b.labels, rb[0]),
        titles=("A", "B", "A − B"), y_title=_("query (attending)"), title=title)
    # what assets/29-zoom.js (compareZoomOf) needs to turn a box on a panel into tokens
    part = lambda r, block, p: {"r0": r[0], "r1": r[1], "c0": r[2], "c1": r[3], "block": block,  # noqa: E731
                                "rows": int(p.shape[0]), "cols": int(p.shape[1])}
    figure["layout"]["meta"]["zoom"] = {"key": a.key, "lined_up": bool(c.lined_up), "zoomed": zoomed,
                                        "a": part(ra, block_a, pa), "b": part(rb, block_b, pb)}
    return figure


def _focus_figure(c: Comparison, unit: int | None, note: str) -> dict:
    """Where the followed token (``unit`` of A) looks in each layer, in A, in B and, lined up, A − B."""
    a, b = c.a, c.b
    label = a.labels[unit] if unit is not None else "?"
    unit_b = unit if c.lined_up else next((i for i, l in enumerate(b.labels) if l == label),
                                          b.unit_of(default_token(b)))
    if unit is None or unit_b is None:
        return empty_figure(_("Pick a token in Token focus (it may be hidden by “Hide special tokens”)."))
    looks_a, _looked = a.focus(unit)
    looks_b, _looked = b.focus(unit_b)
    layers = [str(l) for l in range(looks_a.shape[0])]
    return comparison_figure(
        looks_a, looks_b, looks_a - looks_b if c.lined_up else None,
        x_labels=c.col_labels, y_labels=layers, x_labels_b=None if c.lined_up else b.col_labels,
        y_labels_b=None if c.lined_up else [str(l) for l in range(looks_b.shape[0])],
        titles=("A", "B", "A − B"), y_title=_("layer"),
        title=_("Where “{token}” looks in each layer (heads averaged)").format(
            token=safe_label(c.labels[unit] if c.lined_up else label))
        + (f" <span style='font-size:12px;color:#6c757d'>{safe_label(note)}</span>" if note else ""))


def _heads_table(c: Comparison) -> list:
    """The heads that differ most (sum and largest |A − B|), or nothing when A and B do not line up."""
    if not c.lined_up:
        return []
    total, largest = c.head_differences()
    rows = [{"id": f"{l}-{h}", "layer": l, "head": h, "sum": round(float(total[l, h]), 4),
             "max": round(float(largest[l, h]), 4)}
            for l in range(total.shape[0]) for h in range(total.shape[1])]
    rows.sort(key=lambda r: -r["sum"])
    return [html.H6(_("Heads that differ most (sum of |A − B| over the head's cells; click a row to open it)"),
                    className="mt-3"), compare_table(rows)]


# ----------------------------------------------------------------------------------- analysing B

def analyse_b(values: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(B's handle, the status, what a link says of B) for the Compare button: text B (or A's text)
    on model B (or A's model)."""
    a = Handle.parse(values.get("handle"))
    try:
        cut: list[dict] = []
        text_b = (boundary.text(values.get("text_b"), N_("text B")) or "").strip()
        text = (boundary.cut_to_limit(text_b, N_("text B"), cut) if text_b
                else boundary.cut_to_limit(boundary.text(values.get("text_a")), N_("text"), cut))
        model = boundary.model_id(values.get("model_b")) or (a.model_id if a else boundary.model_id(values.get("model_a")))
        key, result = found = analyse(text, model, before_compute=new_analysis_guard(client_id()))
    except boundary.TextRefused as exc:
        return no_update, error_alert(_("Check text B"), str(exc)), no_update
    except AttentionExplorerError as exc:
        return no_update, error_alert(translate(exc.title), message_for(exc)), no_update
    except Exception as exc:  # noqa: BLE001 - never a traceback in the page
        return no_update, error_alert(_("Something went wrong"), message_for(exc)), no_update
    status = html.Div(cut_alerts(cut)) if cut else no_update
    return handle_of(key, result, found.recipe).to_client(), status, {"text": result.text, "model": result.model_id}


def register(app: Dash) -> None:
    def callback(clicks, text_b, model_b, text_a, model_a, handle):
        if not clicks:
            return no_update, no_update, no_update
        return analyse_b({"text_b": text_b, "model_b": model_b, "text_a": text_a, "model_a": model_a,
                          "handle": handle})

    app.callback(
        Output(ids.COMPARE_HANDLE, "data", allow_duplicate=True),
        Output(ids.COMPARE_STATUS, "children", allow_duplicate=True),
        Output(ids.COMPARE_SHARE, "data", allow_duplicate=True),
        Input(ids.COMPARE_BUTTON, "n_clicks"),
        State(ids.COMPARE_TEXT, "value"), State(ids.COMPARE_MODEL, "value"), State(ids.TEXT, "value"),
        State(ids.MODEL, "value"), State(ids.HANDLE, "data"),
        prevent_initial_call=True,
    )(callback)


def csv(result, state, view, max_rows: int) -> Iterable[str]:
    """A, B and A − B of the chosen layer and head (or mean of heads), cell by cell, when they line up."""
    c = comparison(view, state)
    if isinstance(c, str):
        raise Unavailable(c)
    if not c.lined_up:
        raise Unavailable(_("A and B do not line up token by token: export each from its own analysis."))
    head = state.head.number
    layer = min(state.layer, c.a.kv.attentions.shape[0] - 1, c.b.kv.attentions.shape[0] - 1)
    head_name = "rollout" if view.options.rollout else ("mean" if head is None else head)
    return comparison_csv_chunks(c.a.matrix(layer, head)[0], c.b.matrix(layer, head)[0], c.labels, c.col_labels,
                          layer=layer, head=head_name, max_rows=max_rows)


VIEW = ViewSpec(name="compare", tab=ids.TAB_COMPARE, outputs=OUTPUTS, main="compare_heads", graph=ids.COMPARE_HEADS, depends=DEPENDS, render=render, placeholder=placeholder, csv=csv)
