"""The router: ONE callback that renders the open view. Every control a view depends on is an input
here and nowhere else, so a layer, head, switch or tab change costs one request, whatever is open.

The body is a plain function (``route``) of the browser's values by name and the names of those that
changed. It parses them once (``boundary``), fetches the analysis by its handle (never the text), and
asks the open tab's view (``registry``: one ``ViewSpec`` a view) for its outputs; every other output is
left as it is (``no_update``).
"""

from __future__ import annotations

from typing import Any

from dash import ClientsideFunction, Dash, Input, Output, State, html, no_update
from dash._utils import to_json

from ..components import ids
from ..components.i18n import _, translate
from ..services.analyses.kinds import attention_of, kinds_available
from ..services.analyses.views import View, ViewOptions
from ..services.extraction import result_by_key
from ..services.web.ratelimit import client_id, new_analysis_guard
from . import registry
from .boundary import Dims, DirectRequest, Handle, ViewState
from .common import EXPIRED, NOT_ANALYSED, UNREADABLE, Unavailable, guarded, handle_of
from .viewspec import ViewSpec

# Every control a view depends on. They reach the router through the browser-side gate
# (assets/23-gate.js): the gate draws what the browser can alone (a grid layer change) and otherwise
# writes ONE view request, the router's only input; the router reads the controls as State.
INPUTS = {
    "handle": Input(ids.HANDLE, "data"),
    "tab": Input(ids.TABS, "active_tab"),
    "layer": Input(ids.LAYER, "value"),
    "head": Input(ids.HEAD, "value"),
    "mode": Input(ids.ATTN_MODE, "value"),
    "switches": Input(ids.VIEW_SWITCHES, "value"),
    "top_k": Input(ids.ARC_TOP_K, "value"),
    "min_weight": Input(ids.ARC_MIN_WEIGHT, "value"),
    "arc_focus": Input(ids.ARC_FOCUS, "data"),
    "arc_start": Input(ids.ARC_START, "value"),
    "metric": Input(ids.ATLAS_METRIC, "value"),
    "window": Input(ids.ATLAS_WINDOW, "value"),
    "token": Input(ids.TOKEN, "data"),
    "focus_k": Input(ids.FOCUS_K, "value"),
    "kind": Input(ids.KIND, "value"),
    "pair": Input(ids.PAIR_FILTER, "value"),
    "step": Input(ids.GEN_STEP, "value"),
    "compare_handle": Input(ids.COMPARE_HANDLE, "data"),
    "zoom": Input(ids.ZOOM, "data"),
}
# Read with the controls, but changing them draws nothing.
STATES = {"atlas_table_for": State(ids.ATLAS_TABLE_FOR, "data")}
OUTPUTS: dict[str, Output] = {"notice": Output(ids.VIEW_NOTICE, "children"),
                              "handle": Output(ids.HANDLE, "data", allow_duplicate=True)}
for _spec in registry.VIEWS:
    OUTPUTS.update(_spec.outputs)
_PROP_TO_NAME = {f"{i.component_id}.{i.component_property}": name for name, i in INPUTS.items()}
# a direct request also carries the router's states (what the page already holds: the atlas's table)
_DIRECT_NAMES = _PROP_TO_NAME | {f"{s.component_id}.{s.component_property}": name for name, s in STATES.items()}


def _nothing() -> dict:
    return {name: no_update for name in OUTPUTS}


def _notice(notes: tuple[str, ...]) -> Any:
    if not notes:
        return ""
    return html.Div(" ".join(notes), className="alert alert-warning py-1 px-2 small mb-2", role="status")


def spec_of(values: dict[str, Any]) -> ViewSpec:
    """The open view (the grid for a tab value that is not one)."""
    return registry.spec_of(values.get("tab"))


def route(values: dict[str, Any], triggered: frozenset[str]) -> dict:
    """Outputs by name for the browser's ``values`` by input name; ``triggered`` names the inputs that
    changed (all of them on a first render). Never raises: a failure is explained in the open view."""
    out = _nothing()
    spec = spec_of(values)
    if not triggered & (spec.depends | {"handle"}):
        return out  # nothing the open view shows changed (e.g. a token picked for a closed tab)
    out.update(_render(spec, values, triggered))
    return out


def _placeholder(spec: ViewSpec, message: str) -> dict:
    return {**spec.placeholder(message), "notice": ""}


def analysis_of(values: dict[str, Any]):
    """``(key, result)`` of the browser's handle (a ``services.extraction.Analysis``: its ``recipe`` too);
    ``Unavailable`` when there is none or it is gone. A result the shared cache cannot give is computed
    again from the handle's signed recipe, counted against the person's limit on new analyses."""
    raw_handle = values.get("handle")
    handle = Handle.parse(raw_handle)
    if handle is None:
        raise Unavailable(translate(NOT_ANALYSED if raw_handle is None else UNREADABLE))
    found = result_by_key(handle.key, handle.recipe, before_compute=new_analysis_guard(client_id()))
    if found is None:
        raise Unavailable(translate(EXPIRED))
    return found


def resolve(values: dict[str, Any], check_mode: bool = True) -> tuple[str, Any, ViewState, View]:
    """``(key, result, state, view)`` for the browser's values, parsed once; ``Unavailable`` (with the
    reason in plain words) when there is no analysis or, with ``check_mode``, the mode cannot be shown
    for it (a view that draws raw attention whatever the mode passes False)."""
    key, result = analysis_of(values)
    kinds = kinds_available(result)  # a kind the model lacks (left from another model) falls back
    kind = values.get("kind") if values.get("kind") in kinds else kinds[0]
    shape = attention_of(result, kind).attentions.shape
    state = ViewState.parse({**values, "kind": kind}, Dims(shape[0], shape[1], max(shape[-2:])), registry.TABS)
    options = ViewOptions(rollout=state.mode == "rollout", value_norm=state.mode == "value",
                          hide_special=state.hide_special, merge_words=state.merge, drop_first=state.drop_first)
    view = View(result, options, key, kind=state.kind, pair=state.pair)
    if check_mode and view.value_norm_missing:
        raise Unavailable(_("Weighting by value norm is not available for this model: {reason}")
                          .format(reason=translate(view.value_norm_missing)))
    if check_mode and view.rollout_missing:
        raise Unavailable(translate(view.rollout_missing))
    message, values = view.long_missing
    if message and (check_mode or not view.options.rollout):
        raise Unavailable(translate(message).format(**values))
    return key, result, state, view


def _render(spec: ViewSpec, values: dict[str, Any], triggered: frozenset[str]) -> dict:
    @guarded(lambda message: _placeholder(spec, message))
    def render() -> dict:
        try:
            key, result, state, view = resolve(values, check_mode=spec.uses_mode)
        except Unavailable as why:
            return _placeholder(spec, str(why))
        if not view.square and spec.square_only:
            return _placeholder(spec, translate(spec.square_only))
        out = spec.render(view, state, triggered)
        out["notice"] = _notice(state.notes)
        handle = Handle.parse(values.get("handle"))
        if key != handle.key:  # computed again from the recipe under a new key (the model's files changed)
            out["handle"] = handle_of(key, result, handle.recipe).to_client()
        return out

    return render()


def changed_names(request: Any) -> frozenset[str]:
    """The controls a view request says changed (the gate lists their "id.property"); all when unknown."""
    changed = request.get("changed") if isinstance(request, dict) else None
    if not isinstance(changed, list):
        return frozenset(INPUTS)
    names = {_PROP_TO_NAME.get(prop) for prop in changed[:64] if isinstance(prop, str)} - {None}
    return frozenset(names) or frozenset(INPUTS)


# The views the browser may ask for straight from its own event, without Dash's renderer in between
# (assets/23-gate.js, the early path) say so in their ViewSpec (``direct``): the page draws the main figure
# and hands the other outputs to Dash.
DIRECT_ROUTE = "_ae-view"


def direct(body: Any) -> tuple[dict | None, str | None]:
    """``POST _ae-view`` (``boundary.DirectRequest``): the open view's outputs by ``"id.property"`` (what
    ``_dash-update-component`` would answer), or ``(None, reason)`` for a body that is not one or a view
    not served this way. The values go through the router's one parse (``route`` -> ``ViewState.parse``)."""
    try:
        request = DirectRequest.parse(body, _DIRECT_NAMES)
    except ValueError as why:
        return None, str(why)
    if not spec_of(request.values).direct:
        return None, "this view is drawn through the page's callbacks"
    out = route(request.values, frozenset(request.changed) or frozenset(INPUTS))
    answer = {}
    for name, value in out.items():
        if value is not no_update:
            output = OUTPUTS[name]
            answer[f"{output.component_id}.{output.component_property}"] = value
    return answer, None


def register(app: Dash) -> None:
    def callback(request, **values):
        return route(values, changed_names(request))

    def serve_direct():
        from flask import Response, jsonify, request as flask_request

        if not flask_request.is_json:
            return jsonify({"message": "Send JSON."}), 415
        answer, reason = direct(flask_request.get_json(silent=True))
        if answer is None:
            return jsonify({"message": reason}), 400
        return Response(to_json({"outputs": answer}), mimetype="application/json")

    app.server.add_url_rule(app.config.routes_pathname_prefix + DIRECT_ROUTE, "attention_direct_view",
                            serve_direct, methods=["POST"])

    states = {name: State(i.component_id, i.component_property) for name, i in INPUTS.items()} | STATES
    app.callback(output=OUTPUTS, inputs={"request": Input(ids.VIEW_REQUEST, "data"), **states},
                 prevent_initial_call=True)(callback)
    app.clientside_callback(
        ClientsideFunction(namespace="attention", function_name="gate"),
        Output(ids.VIEW_REQUEST, "data"),  # what the browser draws alone it draws on the graph div itself
        *INPUTS.values(), State(ids.VIEW_REQUEST, "data"), *STATES.values(),
        prevent_initial_call=False,  # the first call only learns the controls' values (the early path)
    )

