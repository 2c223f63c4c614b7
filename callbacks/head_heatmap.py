"""Single-head heatmap: one head, the mean of heads, or the rollout, in full."""

from __future__ import annotations

from dash import Output

from components import ids
from components.figures import empty_figure, heatmap_figure

from .boundary import ViewState

OUTPUTS = {"heatmap": Output(ids.HEAD_HEATMAP, "figure")}
DEPENDS = frozenset({"handle", "layer", "head", "mode", "switches", "tab"})


def placeholder(message: str) -> dict:
    return {"heatmap": empty_figure(message)}


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    matrix, title = view.matrix(state.layer, state.head.number)
    notes = [view.options.note] if view.options.note else []
    if view.result.is_causal:
        notes.append("causal: the upper triangle is empty because tokens cannot see later ones")
    return {"heatmap": heatmap_figure(matrix, view.labels, title, note=" · ".join(notes) or None,
                                      token_index=view.token_index)}
