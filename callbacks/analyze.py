"""Analyze: runs the model on a new text (the button, Ctrl+Enter, an example, another model), keeps a
handle to the result in the page and fits the controls to the model. The open view is then drawn by
the router (one more request: two per analysis)."""

from __future__ import annotations

import logging
from typing import Any

from dash import ALL, Dash, Input, Output, State, ctx, html, no_update

from ..components import ids
from ..components.i18n import N_, _, translate
from ..components.layout import EXAMPLES, head_options, kind_options
from ..components.status import UNKNOWN_WARNING_SHARE, error_alert, status_children
from ..services import AttentionExplorerError, get_settings
from ..services.analyses.kinds import attention_of, kinds_available, pair_filters_available
from ..services.extraction import analyse, cached_analysis
from ..services.store.jobs import Busy
from ..services.model.loading import display_name, family
from ..services.result import AttentionResult
from ..services.store.memory import memory
from ..services.web.ratelimit import client_id, new_analysis_guard
from . import boundary, registry, urlstate
from .boundary import Handle
from .common import handle_of, message_for, progress_outputs

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
    # encoder-decoder models and generation (issue 13): the inputs and selectors each model has
    "target": Output(ids.TARGET, "value"),
    "continue": Output(ids.CONTINUE, "value"),
    "target_wrap": Output(ids.TARGET_WRAP, "style"),
    "continue_wrap": Output(ids.CONTINUE_WRAP, "style"),
    "kind_wrap": Output(ids.KIND_WRAP, "style"),
    "kind": Output(ids.KIND, "value"),
    "kind_options": Output(ids.KIND, "options"),
    "kind_dims": Output(ids.KIND_DIMS, "data"),
    "pair_wrap": Output(ids.PAIR_WRAP, "style"),
    "pair_filter": Output(ids.PAIR_FILTER, "value"),
    "gen_tab": Output(f"{ids.TAB_GENERATION}-tab", "tab_style"),
    "step_max": Output(ids.GEN_STEP, "max"),
    "step": Output(ids.GEN_STEP, "value"),
    # Compare (issue 11): an example pair, or a link, names text B too
    "compare_handle": Output(ids.COMPARE_HANDLE, "data"),
    "compare_text": Output(ids.COMPARE_TEXT, "value"),
    "compare_share": Output(ids.COMPARE_SHARE, "data"),
    # a long analysis runs in the background (issue 18): its job, poll and progress
    **progress_outputs("analyze", ids.ANALYZE_JOB, ids.ANALYZE_POLL, ids.ANALYZE_PROGRESS, ids.ANALYZE_PROGRESS_TEXT,
                       ids.ANALYZE_PROGRESS_BAR, ids.ANALYZE_PROGRESS_LABEL),
}
INPUTS = {
    "clicks": Input(ids.ANALYZE, "n_clicks"),
    "model": Input(ids.MODEL, "value"),
    "examples": Input({"type": ids.EXAMPLE, "index": ALL}, "n_clicks"),
    "url": Input(ids.URL, "data"),
    "ready": Input(ids.ANALYZE_READY, "data"),
    "text": State(ids.TEXT, "value"),
    "pair": State(ids.TEXT_PAIR, "value"),
    "layer": State(ids.LAYER, "value"),
    "head": State(ids.HEAD, "value"),
    "current": State(ids.HANDLE, "data"),
    "shared": State(ids.SHARE, "data"),
    "target": State(ids.TARGET, "value"),
    "continue": State(ids.CONTINUE, "value"),
    "kind": State(ids.KIND, "value"),
    "pair_filter": State(ids.PAIR_FILTER, "value"),
    "tab_now": State(ids.TABS, "active_tab"),
}
SHOWN, HIDDEN = {}, {"display": "none"}
# Texts of at least this many tokens (estimated: 4 characters a token, up to what the model reads) that no
# cache holds are analysed in the background, with a progress bar (layer by layer) and Cancel: a second
# or more here. Models that read at most 512 tokens (BERT and kin) always answer at once.
BACKGROUND_TOKENS = 1024
RUNNING = N_("Running the model: {done} of {total} layers…")
ANALYSIS_CANCELLED = N_("The analysis was cancelled: the views still show the previous one.")
ANALYSIS_FAILED = N_("The analysis failed. Press Analyze to try again.")
# A test hook: called before each layer's progress is recorded (tests hold the pass with it).
step_hook = None
ANALYSIS_BUSY = N_("The server is running other long analyses right now. Try again in a minute.")


def summarise(result: AttentionResult, key: str | None = None) -> dict:
    """What the status area says of an analysis, as plain data."""
    from ..services.analyses.measures import normalisation_check
    from ..services.model.loading import models_for_text
    
    check = memory().derived.get_or_compute((key, "normalisation"), lambda: normalisation_check(result))
    summary = {
        "tokens": result.seq_len, "model_id": display_name(result.model_id), "layers": result.num_layers,
        "heads": result.num_heads, "causal": result.is_causal, "truncated": result.truncated,
        "limit": result.token_limit, "tokens_before": result.token_count_before_truncation,
        "unknown_share": result.unknown_share, "unknown_count": result.unknown_count,
        "unk_token": result.unk_token or "unknown",
        "norm_error": check.value, "norm_ok": bool(check.ok), "norm_text": check.value_text,
    }
    if result.is_encoder_decoder and result.decoder_attentions is not None:
        summary["target"] = {"tokens": result.target_len, "generated": bool(result.generated),
                             "layers": int(result.decoder_attentions.shape[0]),
                             "heads": int(result.decoder_attentions.shape[1]), "text": result.target_text or ""}
    if result.generation_steps:
        summary["generated_steps"] = result.generation_steps
    if result.unknown_share >= UNKNOWN_WARNING_SHARE:
        knows, elsewhere = models_for_text(result.text, result.model_id)
        summary["knows"], summary["elsewhere"] = [display_name(m) for m in knows], [display_name(m) for m in elsewhere]
    return summary


def kind_dims(result: AttentionResult) -> dict | None:
    """For a result with several kinds of attention (an encoder-decoder model's encoder, decoder and
    cross-attention, whose depths and head counts may differ): each kind's layers and head choices, for
    the browser to fit the layer slider and head selector when the kind changes (assets/24-navigate.js
    fitToKind). None for a model with one kind."""
    kinds = kinds_available(result)
    if len(kinds) < 2:
        return None
    out = {}
    for kind in kinds:
        layers, heads = (int(n) for n in attention_of(result, kind).attentions.shape[:2])
        out[kind] = {"layers": layers, "heads": heads, "head_options": head_options(heads)}
    return out


def controls_for(result: AttentionResult, layer: Any, head: Any, kind: Any = None, pair_filter: Any = None) -> dict:
    """The layer slider, head selector, kind selector, pair filter and generation step fitted to the
    result and the kind of attention chosen (its own depth and heads), keeping the choices that still
    exist."""
    kinds = kinds_available(result)
    kind = kind if kind in kinds else kinds[0]
    layers, heads = (int(n) for n in attention_of(result, kind).attentions.shape[:2])
    pairs = pair_filters_available(result, kinds[0])
    steps = result.generation_steps
    return {
        "layer_max": layers - 1,
        "layer_marks": {i: str(i) for i in range(layers)},
        "layer": boundary.whole(layer, 0, layers - 1, 0),
        "head_options": head_options(heads),
        "head": boundary.Head.parse(head, heads).value,
        "kind_wrap": SHOWN if len(kinds) > 1 else HIDDEN,
        "kind_options": kind_options(kinds),
        "kind": kind,
        "kind_dims": kind_dims(result),
        "pair_wrap": SHOWN if pairs else HIDDEN,
        "pair_filter": pair_filter if pair_filter in pairs else "all",
        "target_wrap": SHOWN if result.is_encoder_decoder else HIDDEN,
        "gen_tab": SHOWN if steps else HIDDEN,
        "step_max": max(1, steps),
        "step": 1,
    }


def example_view(example: dict, result: AttentionResult) -> dict:
    """What an example opens: its view, the token it follows (the first token that reads as its word,
    when the model has one) and its sentence-pair block (when the result has the pair)."""
    from ..services.analyses.tokens import display_token

    out: dict[str, Any] = {"tab": example.get("view", ids.TAB_GRID)}
    word = example.get("token")
    if word:
        found = [i for i, t in enumerate(result.tokens) if display_token(t).strip().lower() == word.lower()]
        out["token"] = found[0] if found else None
    kinds = kinds_available(result)
    if example.get("pair_filter") in pair_filters_available(result, kinds[0]):
        out["pair_filter"] = example["pair_filter"]
    return out


def _failed(message: str, title: str, current: Any) -> dict:
    """The person's text stays in the box and the previous analysis stays on screen; the alert says why."""
    out = {name: no_update for name in OUTPUTS}
    children = [error_alert(title, message)]
    if Handle.parse(current) is not None:
        children.append(html.Div(_("The views still show the previous analysis."), className="small text-muted"))
    out["status"] = children
    return out


def share_of(text: str, pair: str | None, model_id: str, target: str | None = None,
             steps: int | None = None) -> dict:
    """What a link says of the analysis: the text itself, or a short server-side id for a long one;
    the target given to an encoder-decoder model and the tokens a decoder was asked to write."""
    from ..services.store import share

    extra = {k: v for k, v in (("target", target), ("continue", steps)) if v}
    if share.needs_short_id(text, pair):
        try:
            return {"id": share.store_text(text, pair, model_id), "model": model_id, **extra}
        except AttentionExplorerError as exc:  # no shared cache: the link keeps the text
            log.info("no short id for a long text: %s", exc)
    return {"text": text, "pair": pair, "model": model_id, **extra}


def from_url(values: dict[str, Any]) -> dict:
    """Outputs for a URL (opened, or reached with Back / Forward): analyse what it names, then set
    the controls it names. An empty or junk query string changes nothing."""
    from ..services.store import share

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
            return _failed(translate(message), _("This link cannot be opened"), values.get("current"))
        values.update(text=entry["text"], pair=entry.get("pair"), model=entry.get("model"))
    elif state.text is not None:
        values.update(text=state.text, pair=state.pair)
    if state.names_text:  # a link names the whole input: no target / continuation means none
        values.update(target=state.target or "", **{"continue": state.steps or 0})
    for name in ("kind", "pair_filter"):
        if name in state.controls:
            values[name] = state.controls[name]
    if state.compare:
        values.update(compare=state.compare, compare_model=state.compare_model)
    if state.model:
        values["model"] = state.model
    out = analyze({**values, "synchronous": True})  # the controls a link names are set on its result
    if out["handle"] is no_update:
        return out
    handle = Handle.parse(out["handle"])
    controls = boundary.ViewState.parse(state.controls, boundary.Dims(handle.layers, handle.heads, handle.tokens),
                                       registry.TABS)
    if state.names_text:
        out.update(text=values["text"], pair=values.get("pair") or "", pair_open=bool(values.get("pair")))
    out["model"] = handle.model_id
    if "layer" in state.controls:  # within the depth of the kind of attention shown (controls_for)
        out["layer"] = min(controls.layer, out["layer_max"])
    if "head" in state.controls:
        heads = len(out["head_options"]) - 2  # "All heads", "Mean of heads", then one option a head
        out["head"] = boundary.Head.parse(controls.head.value, heads).value
    if "tab" in state.controls:
        out["tab"] = controls.tab
    if "mode" in state.controls:
        out["mode"] = controls.mode
    if "switches" in state.controls:
        out["switches"] = controls.switches
    if controls.token is not None:
        out["token"] = controls.token
    if state.names_text:
        out.update(target=state.target or "", **{"continue": state.steps or 0})
    if "step" in state.controls:
        out["step"] = controls.step
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
        if chosen.get("compare"):
            values["compare"] = chosen["compare"]
    try:
        cut: list[dict] = []  # texts over ATTN_MAX_CHARS: cut to it, and the page says so
        text = boundary.cut_to_limit(boundary.text(values.get("text")), N_("text"), cut)
        pair = boundary.cut_to_limit(boundary.text(values.get("pair"), N_("second sentence")), N_("second sentence"), cut)
        model = boundary.model_id(values.get("model"))
        kind_of_model = family(model)
        # the target box and the continuation are read only for models that use them (they keep their
        # values, hidden, while another model is chosen)
        target = (boundary.cut_to_limit(boundary.text(values.get("target"), N_("target")), N_("target"), cut)
                  if kind_of_model == "encoder-decoder" else "")
        steps = (boundary.whole(values.get("continue"), 0, get_settings().max_new_tokens, 0)
                 if kind_of_model == "decoder" else 0)
        if (not values.get("synchronous") and long_analysis(text, pair, model)
                and cached_analysis(text, model, pair or None, target or None, steps=steps or None) is None):
            out.update(in_background(text, model, pair or None, target or None, steps or None))
            return out
        key, result = found = analyse(text, model, pair or None, target or None, steps=steps or None,
                                      before_compute=new_analysis_guard(client_id()))
        # what the page shows of it: inside the same guard (a failure here is explained, never a 500)
        out.update(controls_for(result, values.get("layer"), values.get("head"), values.get("kind"),
                                values.get("pair_filter")))
        out.update(handle=handle_of(key, result, found.recipe).to_client(), status=status_children({**summarise(result, key), "cut": cut}),
                   arc_focus=None, arc_start=0, token=None,
                   continue_wrap=SHOWN if kind_of_model == "decoder" else HIDDEN,
                   share=share_of(result.text, result.text_pair, result.model_id, target or None, steps or None))
        if values.get("compare"):  # text B named by an example or a link: analysed too, the Compare tab opened
            from .compare import analyse_b

            handle_b, status_b, share_b = analyse_b({"text_b": values["compare"],
                                                     "model_b": values.get("compare_model"), "handle": out["handle"]})
            out.update(compare_handle=handle_b, compare_share=share_b, compare_text=values["compare"],
                       tab=ids.TAB_COMPARE)
            if status_b is not no_update:
                out["status"] = [*out["status"], status_b]
        elif example is not None:  # an example opens the view it is about
            out.update(example_view(EXAMPLES[index], result))
        elif result.generation_steps and steps:
            out["tab"] = ids.TAB_GENERATION  # asked to continue the text: show what it wrote
        elif values.get("tab_now") == ids.TAB_GENERATION and not result.generation_steps:
            out["tab"] = ids.TAB_GRID
    except boundary.TextRefused as exc:
        return _failed(str(exc), _("Check the text"), values.get("current"))
    except AttentionExplorerError as exc:
        return _failed(message_for(exc), translate(exc.title), values.get("current"))
    except Exception:  # noqa: BLE001 - never a traceback in the page
        log.exception("analysis failed")
        return _failed(_("The analysis failed unexpectedly. Try again, or another text or model."),
                       _("Something went wrong"), values.get("current"))
    out.update(_progress_idle())
    return out


def long_analysis(text: str | None, pair: str | None, model: str | None) -> bool:
    """Whether analysing ``text`` (and ``pair``) with ``model`` is long enough for the background."""
    from ..services.model.forward import effective_token_limit
    from ..services.model.loading import get_model

    chars = len(text or "") + len(pair or "")
    if chars < 4 * BACKGROUND_TOKENS:
        return False
    limit = effective_token_limit(get_model(model or get_settings().default_model).token_limit)
    return min(chars // 4, limit) >= BACKGROUND_TOKENS


def _progress_idle(text: str = "") -> dict:
    return {"analyze_job": None, "analyze_poll": True, "analyze_progress": HIDDEN, "analyze_progress_text": text,
            "analyze_progress_bar": 0, "analyze_progress_label": ""}


def in_background(text: str, model: str | None, pair: str | None, target: str | None, steps: int | None) -> dict:
    """Starts the analysis as a job (``services.store.jobs``) whose forward pass reports each layer
    (``services.model.progress``) and stops between two layers when cancelled; the page keeps what it
    shows until the job is done, then Analyze runs again and finds the result cached."""
    from ..services.errors import Cancelled  # noqa: F401 - what the step raises (the job ends "cancelled")
    from ..services.model.progress import layer_steps

    guard = new_analysis_guard(client_id())  # the person asking, read in their request

    def work(step) -> None:
        def each(done: int, total: int) -> None:
            if step_hook is not None:
                step_hook()
            step(done, total)

        step(0, 0)
        with layer_steps(each):
            analyse(text, model, pair, target, steps=steps, before_compute=guard)
        from ..services.store import cache

        cache.flush()  # a long result goes to the shared cache in the background: done means another worker finds it

    try:
        job = memory().jobs.start(("analysis", model, text, pair, target, steps), work)
    except Busy:
        return _progress_idle(translate(ANALYSIS_BUSY))
    return {"analyze_job": {"id": job.id}, "analyze_poll": False, "analyze_progress": SHOWN,
            "analyze_progress_bar": 0, "analyze_progress_text": "",
            "analyze_progress_label": translate(RUNNING).format(done=job.done, total=job.total or "…")}


def poll(job: Any, ready: Any) -> dict:
    """A background analysis's progress; once done, ``ready`` changes and Analyze shows the result."""
    found = boundary.job_id(job)
    status = memory().jobs.status(found) if found is not None else None
    if status is None:
        return _progress_idle()
    if status["state"] == "running":
        total = status["total"]
        return {"analyze_progress_bar": round(100 * status["done"] / total) if total else 0,
                "analyze_progress_label": translate(RUNNING).format(done=status["done"], total=total or "…")}
    if status["state"] == "done":
        return {**_progress_idle(), "ready": {"n": boundary.view_request_count(ready) + 1}}
    return _progress_idle(translate(ANALYSIS_CANCELLED if status["state"] == "cancelled" else ANALYSIS_FAILED))


def cancel(n_clicks: Any, job: Any) -> dict:
    """Stops the background analysis between two layers; the page stays as it was."""
    found = boundary.job_id(job)
    if not n_clicks or found is None:
        return {name: no_update for name in _CANCEL_OUTPUTS}
    memory().jobs.cancel(found)
    return {name: value for name, value in _progress_idle(translate(ANALYSIS_CANCELLED)).items() if name in _CANCEL_OUTPUTS}


_POLL_OUTPUTS = {name: Output(OUTPUTS[name].component_id, OUTPUTS[name].component_property, allow_duplicate=True)
                 for name in ("analyze_job", "analyze_poll", "analyze_progress", "analyze_progress_text",
                              "analyze_progress_bar", "analyze_progress_label")}
_CANCEL_OUTPUTS = ("analyze_job", "analyze_poll", "analyze_progress", "analyze_progress_text")


def register(app: Dash) -> None:
    def callback(**values):
        trigger = ctx.triggered_id
        example = trigger.get("index") if isinstance(trigger, dict) else None
        if isinstance(trigger, dict) and not any(n for n in (values.get("examples") or []) if n):
            return {name: no_update for name in OUTPUTS}  # buttons (re)created, none pressed
        if trigger == ids.URL:
            return from_url(values)
        if trigger == ids.ANALYZE_READY:  # a background analysis is done: it is cached, show it
            return analyze({**values, "synchronous": True})
        return analyze(values, example)

    app.callback(output=OUTPUTS, inputs=INPUTS, prevent_initial_call=True)(callback)

    def on_poll(n_intervals, job, ready):
        out = {name: no_update for name in (*_POLL_OUTPUTS, "ready")}
        out.update(poll(job, ready))
        return out

    app.callback(output={**_POLL_OUTPUTS, "ready": Output(ids.ANALYZE_READY, "data")},
                 inputs={"n_intervals": Input(ids.ANALYZE_POLL, "n_intervals"), "job": State(ids.ANALYZE_JOB, "data"),
                         "ready": State(ids.ANALYZE_READY, "data")}, prevent_initial_call=True)(on_poll)
    app.callback(output={name: Output(o.component_id, o.component_property, allow_duplicate=True)
                         for name, o in _POLL_OUTPUTS.items() if name in _CANCEL_OUTPUTS},
                 inputs={"n_clicks": Input(ids.ANALYZE_CANCEL, "n_clicks"), "job": State(ids.ANALYZE_JOB, "data")},
                 prevent_initial_call=True)(cancel)


def first_page(settings) -> dict:
    """What the page shows before any request: the first example analysed with the default model, its
    head grid drawn (the layout embeds it, so a new visitor's page needs no callback to show it).
    ``{}`` when that fails: the page then starts empty and says why in the status area."""
    from .router import route

    try:
        key, result = found = analyse(EXAMPLES[0]["text"], settings.default_model)
    except Exception as exc:  # noqa: BLE001 - the page must load whatever happens
        log.warning("the first page's analysis failed: %s", exc)
        title = translate(exc.title) if isinstance(exc, AttentionExplorerError) else _("Something went wrong")
        return {"status": [error_alert(title, message_for(exc))]}
    handle = handle_of(key, result, found.recipe).to_client()
    page = {**controls_for(result, 0, ids.HEAD_ALL), "handle": handle, "status": status_children(summarise(result, key)),
            "share": share_of(result.text, result.text_pair, result.model_id)}
    page.update({k: v for k, v in route({"handle": handle, "tab": ids.TAB_GRID, "layer": 0, "head": ids.HEAD_ALL},
                                        frozenset({"handle"})).items() if v is not no_update})
    return page

