"""Analyze: runs the model on a new text (the button, Ctrl+Enter, an example, another model), keeps a
handle to the result in the page and fits the controls to the model. The open view is then drawn by
the router (one more request: two per analysis)."""

from __future__ import annotations

import logging
from typing import Any

from dash import ALL, Dash, Input, Output, State, ctx, html, no_update

from components import ids
from components.layout import EXAMPLES, head_options
from components.i18n import N_, _
from components.status import UNKNOWN_WARNING_SHARE, error_alert, status_children
from services import AttentionExplorerError, get_settings
from services.extraction import analyse
from services.ratelimit import client_id, new_analysis_guard
from services.forward import AttentionResult

from . import boundary, urlstate
from .boundary import Handle
from .common import message_for
from .router import handle_of

log = logging.getLogger(__name__)

OUTPUTS = {
    "handle": Output(ids.HANDLE, "data"),
    "status": Output(ids.STATUS, "children"),
    "layer_max": Output(ids.LAYER, "max"),
    "layer_marks": Output(ids.LAYER, "marks"),
    "layer": Output(ids.LAYER, "value"),
    "head_options": Output(ids.HEAD, "options"),
    "head": Output(ids.HEAD, "value"),
    "arc_focus": Output(ids.ARC_FOCUS, "data"),
    "arc_start": Output(ids.ARC_START, "value", allow_duplicate=True),
    "token": Output(ids.TOKEN, "data", allow_duplicate=True),
    "text": Output(ids.TEXT, "value"),
    "pair": Output(ids.TEXT_PAIR, "value"),
    "pair_open": Output(ids.PAIR_COLLAPSE, "is_open"),
    "model": Output(ids.MODEL, "value"),
    "share": Output(ids.SHARE, "data"),
    # what a URL asks for
    "tab": Output(ids.TABS, "active_tab", allow_duplicate=True),
    "mode": Output(ids.ATTN_MODE, "value"),
    "switches": Output(ids.VIEW_SWITCHES, "value"),
}
INPUTS = {
    "clicks": Input(ids.ANALYZE, "n_clicks"),
    "model": Input(ids.MODEL, "value"),
    "examples": Input({"type": ids.EXAMPLE, "index": ALL}, "n_clicks"),
    "url": Input(ids.URL, "data"),
    "text": State(ids.TEXT, "value"),
    "pair": State(ids.TEXT_PAIR, "value"),
    "layer": State(ids.LAYER, "value"),
    "head": State(ids.HEAD, "value"),
    "current": State(ids.HANDLE, "data"),
    "shared": State(ids.SHARE, "data"),
}


def summarise(result: AttentionResult, key: str | None = None) -> dict:
    """What the status area says of an analysis, as plain data."""
    from services.analysis import normalisation_check
    from services.models import models_for_text
    from services.views import derived

    check = derived.get((key, "normalisation"), lambda: normalisation_check(result))
    summary = {
        "tokens": result.seq_len, "model_id": result.model_id, "layers": result.num_layers,
        "heads": result.num_heads, "causal": result.is_causal, "truncated": result.truncated,
        "limit": result.token_limit, "tokens_before": result.token_count_before_truncation,
        "unknown_share": result.unknown_share, "unknown_count": result.unknown_count,
        "unk_token": result.unk_token or "unknown",
        "norm_error": check.value, "norm_ok": bool(check.ok), "norm_text": check.value_text,
    }
    if result.unknown_share >= UNKNOWN_WARNING_SHARE:
        summary["knows"], summary["elsewhere"] = models_for_text(result.text, result.model_id)
    return summary


def controls_for(result: AttentionResult, layer: Any, head: Any) -> dict:
    """The layer slider and head selector fitted to the model, keeping the choices that still exist."""
    layers, heads = result.num_layers, result.num_heads
    return {
        "layer_max": layers - 1,
        "layer_marks": {i: str(i) for i in range(layers)},
        "layer": boundary.whole(layer, 0, layers - 1, 0),
        "head_options": head_options(heads),
        "head": boundary.Head.parse(head, heads).value,
    }


def _failed(message: str, title: str, current: Any) -> dict:
    """The person's text stays in the box and the previous analysis stays on screen; the alert says why."""
    out = {name: no_update for name in OUTPUTS}
    children = [error_alert(title, message)]
    if Handle.parse(current) is not None:
        children.append(html.Div(_("The views still show the previous analysis."), className="small text-muted"))
    out["status"] = children
    return out


def share_of(text: str, pair: str | None, model_id: str) -> dict:
    """What a link says of the analysis: the text itself, or a short server-side id for a long one."""
    from services import share

    if share.needs_short_id(text, pair):
        try:
            return {"id": share.store_text(text, pair, model_id), "model": model_id}
        except AttentionExplorerError as exc:  # no shared cache: the link keeps the text
            log.info("no short id for a long text: %s", exc)
    return {"text": text, "pair": pair, "model": model_id}


def from_url(values: dict[str, Any]) -> dict:
    """Outputs for a URL (opened, or reached with Back / Forward): analyse what it names, then set
    the controls it names. An empty or junk query string changes nothing."""
    from services import share

    url = values.get("url")
    state = urlstate.parse(url.get("search") if isinstance(url, dict) else None)
    values = dict(values)
    if state.empty:  # the page's address without a query string (Back to where the visit began)
        shown = values.get("shared") if isinstance(values.get("shared"), dict) else {}
        default = {"text": EXAMPLES[0]["text"], "pair": None, "model": get_settings().default_model}
        if all(shown.get(k) == v for k, v in default.items()):
            return {name: no_update for name in OUTPUTS}  # already the first page
        state = urlstate.UrlState(text=default["text"], model=default["model"],
                                  controls={"layer": 0, "head": ids.HEAD_ALL, "tab": ids.TAB_GRID})
    if state.share_id is not None:
        entry = share.load_text(state.share_id) if share.is_share_id(state.share_id) else None
        if entry is None:
            message = share.EXPIRED_MESSAGE if share.is_share_id(state.share_id) else share.UNREADABLE_MESSAGE
            return _failed(_(message), _("This link cannot be opened"), values.get("current"))
        values.update(text=entry["text"], pair=entry.get("pair"), model=entry.get("model"))
    elif state.text is not None:
        values.update(text=state.text, pair=state.pair)
    if state.model:
        values["model"] = state.model
    out = analyze(values)
    if out["handle"] is no_update:
        return out
    handle = Handle.parse(out["handle"])
    controls = boundary.ViewState.parse(state.controls, boundary.Dims(handle.layers, handle.heads, handle.tokens))
    if state.names_text:
        out.update(text=values["text"], pair=values.get("pair") or "", pair_open=bool(values.get("pair")))
    out["model"] = handle.model_id
    if "layer" in state.controls:
        out["layer"] = controls.layer
    if "head" in state.controls:
        out["head"] = controls.head.value
    if "tab" in state.controls:
        out["tab"] = controls.tab
    if "mode" in state.controls:
        out["mode"] = controls.mode
    if "switches" in state.controls:
        out["switches"] = controls.switches
    if controls.token is not None:
        out["token"] = controls.token
    out["share"] = {**out["share"], "from_url": True}  # the browser keeps this history entry as it is
    return out


def analyze(values: dict[str, Any], example: Any = None) -> dict:
    """Outputs by name. ``values`` are the browser's, by input name; ``example`` is the index of the
    example button pressed (None for Analyze, Ctrl+Enter or a model change)."""
    out = {name: no_update for name in OUTPUTS}
    if example is not None:
        index = boundary.optional_index(example, len(EXAMPLES))
        if index is None:
            return out
        chosen = EXAMPLES[index]
        values = {**values, "text": chosen["text"], "pair": chosen["pair"]}
        out.update(text=chosen["text"], pair=chosen["pair"], pair_open=bool(chosen["pair"]))
    try:
        text = boundary.text(values.get("text"))
        pair = boundary.text(values.get("pair"), N_("second sentence"))
        key, result = analyse(text, boundary.model_id(values.get("model")), pair or None,
                              before_compute=new_analysis_guard(client_id()))
    except boundary.TextRefused as exc:
        return _failed(str(exc), _("Check the text"), values.get("current"))
    except AttentionExplorerError as exc:
        return _failed(message_for(exc), _(exc.title), values.get("current"))
    except Exception:  # noqa: BLE001 - never a traceback in the page
        log.exception("analysis failed")
        return _failed(_("The analysis failed unexpectedly. Try again, or another text or model."),
                       _("Something went wrong"), values.get("current"))
    out.update(controls_for(result, values.get("layer"), values.get("head")))
    out.update(handle=handle_of(key, result).to_client(), status=status_children(summarise(result, key)),
               arc_focus=None, arc_start=0, token=None, share=share_of(result.text, result.text_pair, result.model_id))
    return out


def register(app: Dash) -> None:
    def callback(**values):
        trigger = ctx.triggered_id
        example = trigger.get("index") if isinstance(trigger, dict) else None
        if isinstance(trigger, dict) and not any(n for n in (values.get("examples") or []) if n):
            return {name: no_update for name in OUTPUTS}  # buttons (re)created, none pressed
        if trigger == ids.URL:
            return from_url(values)
        return analyze(values, example)

    app.callback(output=OUTPUTS, inputs=INPUTS, prevent_initial_call=True)(callback)


def first_page(settings) -> dict:
    """What the page shows before any request: the first example analysed with the default model, its
    head grid drawn (the layout embeds it, so a new visitor's page needs no callback to show it).
    ``{}`` when that fails: the page then starts empty and says why in the status area."""
    from .router import route

    try:
        key, result = analyse(EXAMPLES[0]["text"], settings.default_model)
    except Exception as exc:  # noqa: BLE001 - the page must load whatever happens
        log.warning("the first page's analysis failed: %s", exc)
        title = _(exc.title) if isinstance(exc, AttentionExplorerError) else _("Something went wrong")
        return {"status": [error_alert(title, message_for(exc))]}
    handle = handle_of(key, result).to_client()
    page = {**controls_for(result, 0, ids.HEAD_ALL), "handle": handle, "status": status_children(summarise(result, key)),
            "share": share_of(result.text, result.text_pair, result.model_id)}
    page.update({k: v for k, v in route({"handle": handle, "tab": ids.TAB_GRID, "layer": 0, "head": ids.HEAD_ALL},
                                        frozenset({"handle"})).items() if v is not no_update})
    return page

