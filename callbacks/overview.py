"""Model overview: every layer x head map at once."""

from __future__ import annotations

import numpy as np
from dash import Output

from ..components import ids
from ..components.analysis_figures import overview_figure
from ..components.figures import empty_figure
from .boundary import ViewState
from .common import numbers_csv, view_note
from .hover import layer_picture, long_block, source
from .viewspec import ViewSpec

OUTPUTS = {"overview": Output(ids.OVERVIEW, "figure")}


def placeholder(message: str) -> dict:
    return {"overview": empty_figure(message)}


def zoom_opens_heatmap(figure: dict, key: str) -> dict:
    """A long text's overview: a box zoom inside one head's square opens that head's heatmap zoomed to that
    region, exact (assets/29-zoom.js ``overviewZoomOf``). Not every layer x head zoomed: its squares are a
    few dozen pixels, too small for single tokens and their names, and a region of every head of every
    layer costs layers x heads times one head's rows (a click already opens one head: a box opens it closer)."""
    layout = figure["layout"]
    layout["meta"]["zoom"] = {"key": key}
    layout["dragmode"] = "zoom"
    layout["xaxis"]["fixedrange"] = layout["yaxis"]["fixedrange"] = False
    return figure


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    out = _render(view.without_rollout(), state)
    meta = out["overview"]["layout"].get("meta")
    if meta is not None:  # the hover's exact values (callbacks/hover.py), with the tokens when cells are tokens
        meta["src"] = source(view.without_rollout(), state)
        meta["how"] = state.pool if view.long else "max"
        if meta.get("block") == 1:
            meta.update(tokens=view.labels, key_tokens=view.col_labels)
    return out


def _render(view, state: ViewState) -> dict:  # rollout has no heads
    selected = (state.layer, state.head.number) if state.head.number is not None else None
    if view.long:  # every layer pooled from the kept queries and keys, exact, remembered per analysis
        block = long_block(view)
        maps = np.stack([layer_picture(view, state.pool, layer) for layer in range(view.shape[0])])
        figure = overview_figure(maps, selected=selected, note=view_note(view), pooled=block, how=state.pool)
        return {"overview": zoom_opens_heatmap(figure, view.key)}
    # Untransformed attention is max-pooled as it is stored (float16): no float32 copy of every layer.
    maps = view.kv.attentions if view.is_raw else view.all_layers()
    selected = (state.layer, state.head.number) if state.head.number is not None else None
    return {"overview": overview_figure(maps, selected=selected, note=view_note(view))}

VIEW = ViewSpec(name="overview", tab=ids.TAB_OVERVIEW, outputs=OUTPUTS, main="overview", graph=ids.OVERVIEW, depends=frozenset({"handle", "layer", "head", "mode", "switches", "tab", "kind", "pair"}), render=render, placeholder=placeholder, csv=numbers_csv("overview"), file_head=False, direct=True)
