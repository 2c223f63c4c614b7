"""Export what is open (issue 11): the picture of the view as PNG or SVG (drawn by plotly.js in the
browser, assets/clientside.js ``exportImage``), the numbers behind it as long-format CSV, the whole
analysis as JSON, and the view as one HTML file that opens offline. Files are named after what they
show: ``all-MiniLM-L6-v2_layer3_head5_heatmap.svg`` (``components.export.export_filename``).

The values are the router's, parsed by the same boundary (``router.resolve``); the view's figure for
the HTML file is the one the router draws. Exports are bounded: a CSV of more than ``MAX_CSV_ROWS``
rows is refused with a message saying what to pick instead.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from dash import ClientsideFunction, Dash, Input, Output, State, ctx, no_update

from components import ids
from components.export import export_filename, figure_html
from components.i18n import _
from services import AttentionExplorerError
from services.exchange import ExportTooLarge, atlas_csv, comparison_csv, view_csv, view_csv_for

from . import router
from .compare import comparison
from .generation import step_row
from .common import message_for
from .router import Unavailable, resolve

log = logging.getLogger(__name__)

MAX_CSV_ROWS = 1_500_000  # ~60 MB of CSV: the whole model at 128 tokens is 1.2 million rows
# tab -> (the router output holding its main figure, the view's name in files and in view_numbers)
MAIN = {
    ids.TAB_GRID: ("grid", "grid"), ids.TAB_HEATMAP: ("heatmap", "heatmap"), ids.TAB_ARCS: ("arcs", "arcs"),
    ids.TAB_OVERVIEW: ("overview", "overview"), ids.TAB_ATLAS: ("atlas_map", "atlas"),
    ids.TAB_FOCUS: ("focus_figure", "focus"), ids.TAB_INSIDE: ("inside_weights", "inside"),
    ids.TAB_GENERATION: ("gen_heads", "generation"), ids.TAB_COMPARE: ("compare_heads", "compare"),
}
BUTTONS = {ids.EXPORT_CSV: "csv", ids.EXPORT_JSON: "json", ids.EXPORT_HTML: "html"}


def _names(result, state, view) -> tuple[str, int | None, Any, str | None]:
    """(view name, layer, head part, extra) for a file name of the open view."""
    _output, name = MAIN.get(state.tab, MAIN[ids.TAB_GRID])
    head: Any = state.head.number if state.head.number is not None else state.head.kind
    layer: int | None = state.layer
    if view.options.rollout:
        head = "rollout"
    if name in ("overview", "atlas", "focus"):
        layer, head = None, ""
    elif name == "inside" and state.head.number is None:  # the tab looks inside head 0 when none is chosen
        head = 0
    extra = [view.kind] if result.is_encoder_decoder else []
    if view.pair:
        extra.append(view.pair.replace("→", "to"))
    if name == "generation":
        extra.append(f"step{state.step}")
    return name, layer, head, "_".join(extra) or None


def compare_csv(view, state) -> str:
    """A, B and A − B of the chosen layer and head (or mean of heads), cell by cell, when they line up."""
    c = comparison(view, state)
    if isinstance(c, str):
        raise Unavailable(c)
    if not c.lined_up:
        raise Unavailable(_("A and B do not line up token by token: export each from its own analysis."))
    head = state.head.number
    layer = min(state.layer, c.a.kv.attentions.shape[0] - 1, c.b.kv.attentions.shape[0] - 1)
    head_name = "rollout" if view.options.rollout else ("mean" if head is None else head)
    return comparison_csv(c.a.matrix(layer, head)[0], c.b.matrix(layer, head)[0], c.labels, c.col_labels,
                          layer=layer, head=head_name, max_rows=MAX_CSV_ROWS)


def csv_of(result, state, view) -> str:
    """The numbers behind the open view, as long-format CSV (``services.exchange``)."""
    name = MAIN.get(state.tab, MAIN[ids.TAB_GRID])[1]
    if name == "atlas":
        from .atlas import atlas_data

        metrics, labels, _rows = atlas_data(result, state.window, view.key, view.options.value_norm, view.kind)
        return atlas_csv(metrics, labels)
    if name == "compare":
        return compare_csv(view, state)
    if name == "generation":
        steps = result.generation_steps
        if not steps:
            raise Unavailable(_("This analysis holds no generated tokens."))
        step, row = step_row(result, state.step)
        weights = result.step_attention(step)[:, :, None, :row + 1]
        tokens = list(result.tokens[:row + 1])
        return view_csv(weights, [tokens[row]], tokens, query_index=[row], max_rows=MAX_CSV_ROWS)
    head: Any = state.head.number if state.head.number is not None else state.head.kind
    if name == "inside":  # the head looked inside: its matrix (the query's row is one of its rows)
        name, head = "heatmap", state.head.number if state.head.number is not None else 0
    return view_csv_for(view, name, state.layer, head, state.token, max_rows=MAX_CSV_ROWS)


def export(kind: str, values: dict[str, Any]) -> tuple[Any, Any]:
    """(the download, a status line) for ``kind`` (csv, json or html) of the open view."""
    try:
        if kind == "json":  # the whole analysis, whatever the view and mode
            _key, result = router.analysis_of(values)
            filename = export_filename(result.model_id, "analysis", None, "", "json")
            return {"content": result.to_json(), "filename": filename, "type": "application/json"}, ""
        key, result, state, view = resolve(values, check_mode=getattr(router.module_of(values), "USES_MODE", True))
        name, layer, head, extra = _names(result, state, view)
        filename = export_filename(result.model_id, name, layer, head, kind, extra)
        if kind == "csv":
            return {"content": csv_of(result, state, view), "filename": filename, "type": "text/csv"}, ""
        module = router.VIEWS[state.tab]  # the view drawn from what was resolved above, not resolved again
        if not view.square and module.SQUARE_ONLY:
            raise Unavailable(_(module.SQUARE_ONLY))
        figure = module.render(view, state, frozenset(router.INPUTS)).get(MAIN[state.tab][0])
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
                "filename": filename, "type": "text/html"}, ""
    except Unavailable as why:
        return no_update, str(why)
    except ExportTooLarge:
        return no_update, _("Too many numbers for one file (more than {rows} rows). Pick one layer or one head, "
                            "or export the whole analysis as JSON.").format(rows=f"{MAX_CSV_ROWS:,}")
    except (AttentionExplorerError, ValueError) as exc:
        return no_update, message_for(exc) if isinstance(exc, AttentionExplorerError) else str(exc)
    except Exception as exc:  # noqa: BLE001 - never a traceback in the page
        return no_update, message_for(exc)


def register(app: Dash) -> None:
    states = {name: State(i.component_id, i.component_property) for name, i in router.INPUTS.items()}

    def callback(**values):
        kind = BUTTONS.get(ctx.triggered_id)
        clicks = values.pop("clicks")
        if kind is None or not any(clicks):
            return no_update, no_update
        return export(kind, values)

    app.callback(
        output=(Output(ids.EXPORT_DOWNLOAD, "data"), Output(ids.EXPORT_STATUS, "children")),
        inputs={"clicks": [Input(button, "n_clicks") for button in BUTTONS], **states},
        prevent_initial_call=True,
    )(callback)
    app.clientside_callback(
        ClientsideFunction(namespace="attention", function_name="exportImage"),
        Output(ids.EXPORT_SINK, "data"), Output(ids.EXPORT_STATUS, "children", allow_duplicate=True),
        Input(ids.EXPORT_PNG, "n_clicks"), Input(ids.EXPORT_SVG, "n_clicks"),
        State(ids.TABS, "active_tab"), State(ids.HANDLE, "data"), State(ids.LAYER, "value"), State(ids.HEAD, "value"),
        State(ids.ATTN_MODE, "value"), State(ids.KIND, "value"), State(ids.KIND_WRAP, "style"),
        State(ids.PAIR_FILTER, "value"), State(ids.PAIR_WRAP, "style"), State(ids.GEN_STEP, "value"),
        prevent_initial_call=True,
    )

