"""Head grid: every head of the chosen layer (in Rollout mode: the rollout through every layer)."""

from __future__ import annotations

from dash import Output, Patch

from components import ids
from components.figures import empty_figure, grid_geometry, grid_selection, head_grid_figure

from .boundary import ViewState

OUTPUTS = {"grid": Output(ids.HEAD_GRID, "figure")}
# What the grid depends on; a change of anything else leaves it as it is.
DEPENDS = frozenset({"handle", "layer", "head", "mode", "switches", "tab"})


def placeholder(message: str) -> dict:
    return {"grid": empty_figure(message)}


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    note = view.options.note or None
    if view.options.rollout:
        layers = view.result.num_layers
        return {"grid": head_grid_figure(view.rollout_layers(), view.labels, state.layer, selected=state.layer,
                                         tile="layer", note=note,
                                         title=f"Rollout through each of the {layers} layers (heads averaged)")}
    if triggered == {"head"}:
        # Only the chosen head changed and the grid already shows this layer: move the outline.
        return {"grid": selection_patch(view.result.num_heads, view.result.seq_len, state.head.number)}
    # Untransformed attention is pooled as stored (float16): no float32 copy of the layer.
    maps = view.result.attentions[state.layer] if view.is_raw else view.layer(state.layer)
    return {"grid": head_grid_figure(maps, view.labels, state.layer, selected=state.head.number, note=note)}


def selection_patch(n_heads: int, seq: int, selected: int | None) -> Patch:
    """The head grid's tile titles and outline for a new selection, as a ``Patch`` (the picture stays)."""
    selection = grid_selection(grid_geometry(n_heads, seq), selected)
    patch = Patch()
    patch["data"][1]["text"] = selection["text"]
    patch["data"][1]["textfont"]["color"] = selection["colors"]
    patch["layout"]["shapes"] = selection["shapes"]
    return patch
