"""Model overview: every layer x head map at once."""

from __future__ import annotations

import numpy as np
from dash import Output

from ..components import ids
from ..components.analysis_figures import OVERVIEW_CELLS, overview_figure
from ..components.pooled import block_for
from ..components.figures import empty_figure
from .boundary import ViewState
from .common import numbers_csv, view_note
from .viewspec import ViewSpec

OUTPUTS = {"overview": Output(ids.OVERVIEW, "figure")}


def placeholder(message: str) -> dict:
    return {"overview": empty_figure(message)}


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    view = view.without_rollout()  # rollout has no heads
    selected = (state.layer, state.head.number) if state.head.number is not None else None
    if view.long:  # every layer pooled from the kept queries and keys, exact, remembered per analysis
        block = block_for(max(len(view.labels), len(view.col_labels)), OVERVIEW_CELLS)
        maps = np.stack([view.pictures(layer, block, state.pool) for layer in range(view.shape[0])])
        return {"overview": overview_figure(maps, selected=selected, note=view_note(view), pooled=block,
                                            how=state.pool)}
    # Untransformed attention is max-pooled as it is stored (float16): no float32 copy of every layer.
    maps = view.kv.attentions if view.is_raw else view.all_layers()
    selected = (state.layer, state.head.number) if state.head.number is not None else None
    return {"overview": overview_figure(maps, selected=selected, note=view_note(view))}

VIEW = ViewSpec(name="overview", tab=ids.TAB_OVERVIEW, outputs=OUTPUTS, main="overview", graph=ids.OVERVIEW, depends=frozenset({"handle", "layer", "head", "mode", "switches", "tab", "kind", "pair"}), render=render, placeholder=placeholder, csv=numbers_csv("overview"), file_head=False)
