"""Export what is open (issue 11): the picture of the view as PNG or SVG (drawn by plotly.js in the
browser, assets/25-export.js), the numbers behind it as long-format CSV, the whole analysis as JSON,
and the view as one HTML file that opens offline. Files are named after what they show:
``all-MiniLM-L6-v2_layer3_head5_heatmap.svg`` (``components.export.export_filename``), here on the
server for every format: the browser only draws the picture and saves it under the name it is sent.

The values are the router's, parsed by the same boundary (``router.resolve``); what a view exports
(its main figure, its CSV, its file name's parts) is its ``ViewSpec`` (``registry``). Exports are
bounded: a CSV of more than ``MAX_CSV_ROWS`` rows is refused with a message saying what to pick instead.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from dash import ClientsideFunction, Dash, Input, Output, State, ctx, no_update

from ..components import ids
from ..components.export import export_filename, figure_html
from ..components.i18n import _, translate
from ..services import AttentionExplorerError
from ..services.serial import ExportTooLarge
from . import registry, router
from .common import Unavailable, message_for
from .router import resolve
from .viewspec import ViewSpec

log = logging.getLogger(__name__)

MAX_CSV_ROWS = 1_500_000  # ~60 MB of CSV: the whole model at 128 tokens is 1.2 million rows
BUTTONS = {ids.EXPORT_PNG: "png", ids.EXPORT_SVG: "svg", ids.EXPORT_CSV: "csv", ids.EXPORT_JSON: "json",
           ids.EXPORT_HTML: "html"}
PICTURES = ("png", "svg")


def _names(spec: ViewSpec, result, state, view) -> tuple[str, int | None, Any, str | None]:
    """(view name, layer, head part, extra) for a file name of the open view."""
    head: Any = state.head.number if state.head.number is not None else state.head.kind
    layer: int | None = state.layer
    if view.options.rollout and spec.uses_mode:
        head = "rollout"
    if not spec.file_head:
        layer, head = None, ""
    elif spec.default_head is not None and state.head.number is None:  # e.g. Inside a head looks inside head 0
        head = spec.default_head
    extra = [view.kind] if result.is_encoder_decoder else []
    if view.pair:
        extra.append(view.pair.replace("→", "to"))
    if spec.file_extra is not None:
        extra.append(spec.file_extra(state))
    return spec.name, layer, head, "_".join(e for e in extra if e) or None


def csv_of(result, state, view) -> str:
    """The numbers behind the open view, as long-format CSV (its ``ViewSpec.csv``)."""
    return registry.spec_of(state.tab).csv(result, state, view, MAX_CSV_ROWS)


def export(kind: str, values: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(the download, a status line, a picture for the browser to save) for ``kind`` (png, svg, csv,
    json or html) of the open view."""
    try:
        if kind == "json":  # the whole analysis, whatever the view and mode
            _key, result = router.analysis_of(values)
            filename = export_filename(result.model_id, "analysis", None, "", "json")
            return {"content": result.to_json(), "filename": filename, "type": "application/json"}, "", no_update
        spec = router.spec_of(values)
        key, result, state, view = resolve(values, check_mode=spec.uses_mode)
        name, layer, head, extra = _names(spec, result, state, view)
        filename = export_filename(result.model_id, name, layer, head, kind, extra)
        if kind in PICTURES:  # drawn by plotly.js from the figure on the page, saved under this name
            return no_update, "", {"format": kind, "graph": spec.graph, "filename": filename.rsplit(".", 1)[0],
                                   "n": time.time()}
        if kind == "csv":
            return {"content": csv_of(result, state, view), "filename": filename, "type": "text/csv"}, "", no_update
        if not view.square and spec.square_only:
            raise Unavailable(translate(spec.square_only))
        figure = spec.render(view, state, frozenset(router.INPUTS)).get(spec.main)  # from what was resolved above
        if not isinstance(figure, dict) or not figure.get("data"):
            raise Unavailable(_("This view has nothing to export yet."))
        metadata = {"model": result.model_id, "text": result.text, "view": name, "layer": layer,
                    "head": head if head != "" else None, "mode": state.mode,
                    "switches": ", ".join(state.switches) or None, "kind": view.kind if result.is_encoder_decoder
                    else None, "pair filter": view.pair}
        page = figure_html(figure, metadata={k: v for k, v in metadata.items() if v is not None},
                           filename=filename.rsplit(".", 1)[0])
        # base64: the page inlines plotly.js, and the answer then carries no script text as a string
        return {"content": base64.b64encode(page.encode("utf-8")).decode("ascii"), "base64": True,
                "filename": filename, "type": "text/html"}, "", no_update
    except Unavailable as why:
        return no_update, str(why), no_update
    except ExportTooLarge:
        return no_update, _("Too many numbers for one file (more than {rows} rows). Pick one layer or one head, "
                            "or export the whole analysis as JSON.").format(rows=f"{MAX_CSV_ROWS:,}"), no_update
    except (AttentionExplorerError, ValueError) as exc:
        return no_update, message_for(exc) if isinstance(exc, AttentionExplorerError) else str(exc), no_update
    except Exception as exc:  # noqa: BLE001 - never a traceback in the page
        return no_update, message_for(exc), no_update


def register(app: Dash) -> None:
    states = {name: State(i.component_id, i.component_property) for name, i in router.INPUTS.items()}

    def callback(**values):
        kind = BUTTONS.get(ctx.triggered_id)
        clicks = values.pop("clicks")
        if kind is None or not any(clicks):
            return no_update, no_update, no_update
        return export(kind, values)

    app.callback(
        output=(Output(ids.EXPORT_DOWNLOAD, "data"), Output(ids.EXPORT_STATUS, "children"),
                Output(ids.EXPORT_IMAGE, "data")),
        inputs={"clicks": [Input(button, "n_clicks") for button in BUTTONS], **states},
        prevent_initial_call=True,
    )(callback)
    app.clientside_callback(  # the picture, drawn by plotly.js and saved under the name the server sent
        ClientsideFunction(namespace="attention", function_name="exportImage"),
        Output(ids.EXPORT_SINK, "data"), Output(ids.EXPORT_STATUS, "children", allow_duplicate=True),
        Input(ids.EXPORT_IMAGE, "data"),
        prevent_initial_call=True,
    )
