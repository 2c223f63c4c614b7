"""Export what is open (issues 11 and 19): the picture of the view as PNG or SVG (drawn by plotly.js in
the browser, assets/25-export.js), the numbers behind it as long-format CSV, the whole analysis as JSON,
and the view as one HTML file that opens offline. Files are named after what they show:
``all-MiniLM-L6-v2_layer3_head5_heatmap.svg`` (``components.export.export_filename``), here on the
server for every format: the browser only draws the picture and saves it under the name it is sent.

CSV, JSON and HTML come from a plain Flask route, ``GET download/<kind>?key=…&tab=…&layer=…`` (``serve``),
never inside a Dash answer: it takes the analysis handle's key and the view's values, parses them at
the one boundary (``boundary.DownloadRequest``, then ``ViewState.parse`` as the router does), and
streams the file as it is written (``Download.chunks``: a CSV a query row at a time, the JSON an array
slice at a time), as an attachment under its name. Downloads are bounded (``MAX_CSV_ROWS`` rows of
CSV, ``ATTN_MAX_EXPORT_MB`` for the JSON and HTML) and rate-limited per person
(``ATTN_EXPORT_RATE_LIMIT``, the ``limits`` library as ``services.web.ratelimit`` uses it). The Export
menu's callback (``export``) checks the same things, says in the page why a file cannot be made, and
otherwise gives the browser the link to follow.

The values are the router's, parsed by the same boundary (``router.resolve``); what a view exports
(its main figure, its CSV, its file name's parts) is its ``ViewSpec`` (``registry``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from dash import ClientsideFunction, Dash, Input, Output, State, ctx, no_update
from flask import Response, request

from ..components import ids
from ..components.export import export_filename, figure_html
from ..components.i18n import _, translate
from ..services import AttentionExplorerError, get_settings
from ..services.extraction import result_by_key
from ..services.model.loading import display_name
from ..services.serial import ExportTooLarge, JsonDocument
from ..services.web import ratelimit
from . import boundary, registry, router
from .common import EXPIRED, Refused, Unavailable, handle_of, message_for, plain_response
from .router import resolve
from .viewspec import ViewSpec

log = logging.getLogger(__name__)

MAX_CSV_ROWS = 1_500_000  # ~60 MB of CSV: the whole model at 128 tokens is 1.2 million rows
BUTTONS = {ids.EXPORT_PNG: "png", ids.EXPORT_SVG: "svg", ids.EXPORT_CSV: "csv", ids.EXPORT_JSON: "json",
           ids.EXPORT_HTML: "html"}
PICTURES = ("png", "svg")
ROUTE = "download/"  # under the app's path prefix: download/csv, download/json, download/html
MIMETYPES = {"csv": "text/csv", "json": "application/json", "html": "text/html"}


@dataclass(frozen=True)
class Download:
    """A file to send: its name and type, and its content in pieces, made only as they are iterated."""

    filename: str
    mimetype: str
    chunks: Iterable[str]
    size: int | None = None  # bytes, when known before writing
    link: str = ""  # where the route serves it, relative to the page: download/<kind>?key=…


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
    return "".join(registry.spec_of(state.tab).csv(result, state, view, MAX_CSV_ROWS))


def export_limit_bytes() -> int:
    """The largest JSON or HTML file a download may be (``ATTN_MAX_EXPORT_MB``)."""
    return get_settings().max_export_mb * 2**20


def _too_large(size: int) -> Refused:
    limit = get_settings().max_export_mb
    return Refused(_("This file would be {size} MB, more than the {limit} MB this server sends at once. Export "
                     "one layer or head as CSV instead, or use the Python API.")
                   .format(size=f"{math.ceil(size / 2**20):,}", limit=f"{limit:,}"), 413)


def prepare(kind: str, values: dict[str, Any], write: bool = True) -> Download:
    """The file of ``kind`` (csv, json or html) for the browser's (or a link's) values: named, checked and
    bounded. Its content is made only when ``chunks`` is iterated; ``write=False`` only checks (the
    Export menu's callback: an HTML page is not built, the CSV's numbers are). Raises ``Unavailable``
    (``Refused``), ``ExportTooLarge`` or the services' errors, with the reason in the page's language."""
    limit = export_limit_bytes()
    if kind == "json":  # the whole analysis, whatever the view and mode
        _key, result = router.analysis_of(values)
        document = JsonDocument(result)
        if document.size > limit:
            raise _too_large(document.size)
        return Download(export_filename(result.model_id, "analysis", None, "", "json"), MIMETYPES[kind],
                        document, document.size, f"{ROUTE}{kind}?{urlencode([('key', _key)])}")
    spec = router.spec_of(values)
    key, result, state, view = resolve(values, check_mode=spec.uses_mode)
    name, layer, head, extra = _names(spec, result, state, view)
    filename = export_filename(result.model_id, name, layer, head, kind, extra)
    # the link holds what was parsed here, so following it shows what the router would
    link = f"{ROUTE}{kind}?{urlencode(boundary.download_query(key, state, state.compare and state.compare.key))}"
    if kind == "csv":
        return Download(filename, MIMETYPES[kind], spec.csv(result, state, view, MAX_CSV_ROWS), link=link)
    if not view.square and spec.square_only:
        raise Unavailable(translate(spec.square_only))
    drawn = spec.render(view, state, frozenset(router.INPUTS))  # from what was resolved above
    figure = drawn.get(spec.main)
    if not isinstance(figure, dict) or not figure.get("data"):
        raise Unavailable(_("This view has nothing to export yet."))
    if not write:
        return Download(filename, MIMETYPES[kind], (), link=link)
    # e.g. Inside a head: steps 1-3 (vectors and products) before its main figure (scores, weights)
    figures = [f for f in (drawn.get(name) for name in spec.html_figures) if isinstance(f, dict) and f.get("data")]
    metadata = {"model": display_name(result.model_id), "text": result.text, "view": name, "layer": layer,
                "head": head if head != "" else None, "mode": state.mode,
                "switches": ", ".join(state.switches) or None, "kind": view.kind if result.is_encoder_decoder
                else None, "pair filter": view.pair, "token": state.token}
    page = figure_html(figures or [figure], metadata={k: v for k, v in metadata.items() if v is not None},
                       filename=filename.rsplit(".", 1)[0]).encode("utf-8", "replace")
    if len(page) > limit:
        raise _too_large(len(page))
    return Download(filename, MIMETYPES[kind], [page.decode("utf-8")], len(page), link)


def wait_for_downloads(count: bool) -> int:
    """Seconds this person must wait before another download (0: go ahead), by ``ATTN_EXPORT_RATE_LIMIT``;
    ``count`` counts this one (the route), else only looks (the menu's check)."""
    settings = get_settings()
    if not settings.export_rate_limit:
        return 0
    look = ratelimit.check if count else ratelimit.peek
    return look(settings.export_rate_limit, "download", ratelimit.client_id(), ratelimit.storage_uri(settings))


def _rate_refusal(wait: int) -> Refused:
    return Refused(_("Too many downloads from you: wait {seconds} s and try again.").format(seconds=wait), 429, wait)


def export(kind: str, values: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(a link for the browser to follow, a status line, a picture for the browser to save) for ``kind``
    (png, svg, csv, json or html) of the open view."""
    try:
        if kind in PICTURES:  # drawn by plotly.js from the figure on the page, saved under this name
            spec = router.spec_of(values)
            _key, result, state, view = resolve(values, check_mode=spec.uses_mode)
            name, layer, head, extra = _names(spec, result, state, view)
            filename = export_filename(result.model_id, name, layer, head, kind, extra)
            return no_update, "", {"format": kind, "graph": spec.graph, "filename": filename.rsplit(".", 1)[0],
                                   "n": time.time()}
        wait = wait_for_downloads(count=False)
        if wait:
            raise _rate_refusal(wait)
        download = prepare(kind, values, write=False)  # what the route would refuse, said here
        return {"url": download.link, "filename": download.filename, "n": time.time()}, "", no_update
    except Unavailable as why:
        return no_update, str(why), no_update
    except ExportTooLarge:
        return no_update, _too_many_rows(), no_update
    except (AttentionExplorerError, ValueError) as exc:
        return no_update, message_for(exc) if isinstance(exc, AttentionExplorerError) else str(exc), no_update
    except Exception as exc:  # noqa: BLE001 - never a traceback in the page
        return no_update, message_for(exc), no_update


def _too_many_rows() -> str:
    return _("Too many numbers for one file (more than {rows} rows). Pick one layer or one head, "
             "or export the whole analysis as JSON.").format(rows=f"{MAX_CSV_ROWS:,}")


# ============================================================================================ the route




def serve(kind: str, args: Any) -> Response:
    """``GET download/<kind>?key=…``: the file, streamed as an attachment; or a plain message with a 4xx
    (404 for an analysis that is gone, 413 too large, 422 not exportable, 429 too many downloads)."""
    try:
        parsed = boundary.DownloadRequest.parse(kind, args)
        if parsed is None:
            return plain_response(_("There is no such download. Use the Export menu of the page."), 404)
        wait = wait_for_downloads(count=True)
        if wait:
            raise _rate_refusal(wait)
        values: dict[str, Any] = dict(parsed.values)
        for name, key in (("handle", parsed.key), ("compare_handle", parsed.compare_key)):
            if key is None:
                continue
            found = result_by_key(key)
            if found is None:
                return plain_response(translate(EXPIRED), 404)
            values[name] = handle_of(*found, found.recipe).to_client()
        download = prepare(parsed.kind, values)
    except Refused as why:
        return plain_response(str(why), why.status, why.retry_after)
    except Unavailable as why:
        return plain_response(str(why), 422)
    except ExportTooLarge:
        return plain_response(_too_many_rows(), 413)
    except AttentionExplorerError as exc:
        return plain_response(message_for(exc), 422)
    except Exception as exc:  # noqa: BLE001 - never a traceback
        return plain_response(message_for(exc), 500)
    response = Response(_encoded(download.chunks), mimetype=download.mimetype)
    response.headers.set("Content-Disposition", "attachment", filename=download.filename)
    response.headers["Cache-Control"] = "no-store"
    if download.size is not None:
        response.headers["Content-Length"] = str(download.size)
    return response


def _encoded(chunks: Iterable[str]):
    for chunk in chunks:
        yield chunk.encode("utf-8", "replace")  # a lone surrogate (in a token) cannot be UTF-8


def register(app: Dash) -> None:
    states = {name: State(i.component_id, i.component_property) for name, i in router.INPUTS.items()}

    def callback(**values):
        kind = BUTTONS.get(ctx.triggered_id)
        clicks = values.pop("clicks")
        if kind is None or not any(clicks):
            return no_update, no_update, no_update
        return export(kind, values)

    app.callback(
        output=(Output(ids.EXPORT_LINK, "data"), Output(ids.EXPORT_STATUS, "children"),
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
    app.clientside_callback(  # a file from the download route: the browser follows the link
        ClientsideFunction(namespace="attention", function_name="exportLink"),
        Output(ids.EXPORT_SINK, "data", allow_duplicate=True), Input(ids.EXPORT_LINK, "data"),
        prevent_initial_call=True,
    )
    app.server.add_url_rule(app.config.routes_pathname_prefix + ROUTE + "<kind>", "attention_download",
                            lambda kind: serve(kind, request.args), methods=["GET"])
