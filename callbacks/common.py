"""What the view callbacks share: getting the cached result back and slicing it."""

from __future__ import annotations

import logging

from dash import Input
from dash.exceptions import PreventUpdate

from components import ids
from components.figures import empty_figure
from services import AttentionExplorerError, AttentionResult, extract_attention
from services.views import View, ViewOptions

log = logging.getLogger(__name__)


def load(request: dict | None) -> AttentionResult | None:
    """The analysed text's attention, from the cache (the model runs again only if it was evicted)."""
    if not request:
        return None
    return extract_attention(request["text"], request.get("model_id"), request.get("text_pair"))


def make_view(request: dict | None, mode: str | None, switches: list[str] | None) -> View | None:
    """The cached result seen through the Raw/Rollout mode and the hide/merge switches."""
    result = load(request)
    return None if result is None else View(result, ViewOptions.from_values(mode, switches))


def clamp_layer(result: AttentionResult, layer: int | None) -> int:
    return int(min(max(int(layer or 0), 0), result.num_layers - 1))


def parse_head(result: AttentionResult, head: str | int | None) -> str | int:
    """``"all"``, ``"mean"`` or a valid head number."""
    if head in (None, ids.HEAD_ALL, ids.HEAD_MEAN):
        return head or ids.HEAD_ALL
    try:
        value = int(head)
    except (TypeError, ValueError):
        return ids.HEAD_ALL
    return value if 0 <= value < result.num_heads else ids.HEAD_ALL


def error_figure(exc: Exception) -> dict:
    """A figure that explains a failure in plain words (and logs the unexpected ones)."""
    if isinstance(exc, AttentionExplorerError):
        return empty_figure(str(exc))
    log.error("view failed", exc_info=exc)
    return empty_figure("This view could not be drawn. Try Analyze again; if it persists, tell the admin.")


def switch_inputs() -> list[Input]:
    """Raw/Rollout mode and the hide/merge switches, which every view follows."""
    return [Input(ids.ATTN_MODE, "value"), Input(ids.VIEW_SWITCHES, "value")]


def view_inputs() -> list[Input]:
    """The inputs of a per-layer view: what was analysed, layer, head, mode, switches, the open tab."""
    return [Input(ids.REQUEST, "data"), Input(ids.LAYER, "value"), Input(ids.HEAD, "value"),
            *switch_inputs(), Input(ids.TABS, "active_tab")]


def tab_figure(tab_id: str, active_tab: str | None, render, *args) -> dict:
    """Renders only the open tab (switching to a tab renders it), never with a traceback."""
    if active_tab != tab_id:
        raise PreventUpdate
    return safe_figure(render, *args)


def safe_figure(render, *args) -> dict:
    """Runs a figure body; any failure becomes a figure that says so, never a traceback."""
    try:
        return render(*args)
    except Exception as exc:  # noqa: BLE001
        return error_figure(exc)
