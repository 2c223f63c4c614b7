"""Analyze: runs the model on new text (or a new model) and adapts the controls to the model."""

from __future__ import annotations

import logging

from dash import Dash, Input, Output, State, no_update

from components import ids
from components.layout import head_options
from components.status import error_alert, status_children
from services import AttentionExplorerError, AttentionResult, extract_attention

log = logging.getLogger(__name__)


def summarise(result: AttentionResult) -> dict:
    return {
        "tokens": result.seq_len, "model_id": result.model_id, "layers": result.num_layers,
        "heads": result.num_heads, "causal": result.is_causal, "truncated": result.truncated,
        "limit": result.token_limit, "tokens_before": result.token_count_before_truncation,
        "unknown_share": result.unknown_share, "unknown_count": result.unknown_count,
        "unk_token": result.unk_token or "unknown",
    }


def analyze(_n_clicks, model_id, text, text_pair, layer, head):
    """Outputs: request, status, layer max, layer marks, layer value, head options, head value, arc focus."""
    try:
        result = extract_attention(text, model_id, text_pair or None)
    except AttentionExplorerError as exc:
        return (None, error_alert(exc.title, str(exc))) + (no_update,) * 5 + (None,)
    except Exception:  # noqa: BLE001 - never a traceback in the page
        log.exception("analysis failed")
        return (None, error_alert("Something went wrong",
                                  "The analysis failed unexpectedly. Try again, or another text or model.")
                ) + (no_update,) * 5 + (None,)
    request = {"text": result.text, "text_pair": result.text_pair, "model_id": result.model_id}
    layers, heads = result.num_layers, result.num_heads
    layer = min(int(layer or 0), layers - 1)
    valid_heads = {ids.HEAD_ALL, ids.HEAD_MEAN, *map(str, range(heads))}
    head = head if head in valid_heads else ids.HEAD_ALL
    marks = {i: str(i) for i in range(layers)}
    return (request, status_children(summarise(result)), layers - 1, marks, layer, head_options(heads), head, None)


def register(app: Dash) -> None:
    app.callback(
        Output(ids.REQUEST, "data"), Output(ids.STATUS, "children"),
        Output(ids.LAYER, "max"), Output(ids.LAYER, "marks"), Output(ids.LAYER, "value"),
        Output(ids.HEAD, "options"), Output(ids.HEAD, "value"), Output(ids.ARC_FOCUS, "data"),
        Input(ids.ANALYZE, "n_clicks"), Input(ids.MODEL, "value"),
        State(ids.TEXT, "value"), State(ids.TEXT_PAIR, "value"), State(ids.LAYER, "value"), State(ids.HEAD, "value"),
    )(analyze)
