"""Head grid: every head of the chosen layer (in Rollout mode: the rollout through every layer).

With no switch on, the grid carries every layer's picture (``layout.meta.sources``, when they weigh
less than ``SOURCES_BUDGET``), so the browser changes layer, and moves the head outline, without a
request (assets/clientside.js, ``gate``).
"""

from __future__ import annotations

from dash import Output

from components import ids
from components.figures import empty_figure, grid_source, head_grid_figure
from components.i18n import _

from .boundary import ViewState
from .common import note_of

OUTPUTS = {"grid": Output(ids.HEAD_GRID, "figure")}
# What the grid depends on; a change of anything else leaves it as it is.
DEPENDS = frozenset({"handle", "layer", "head", "mode", "switches", "tab"})
SOURCES_BUDGET = 3 * 1024 * 1024  # bytes of pictures a grid may carry for browser-side layer changes


def placeholder(message: str) -> dict:
    return {"grid": empty_figure(message)}


def title_of(layer: int, heads: int) -> str:
    return _("Layer {layer} · all {count} heads").format(layer=layer, count=heads)


def layer_sources(view) -> list[str]:
    """Every layer's grid picture, made once per analysis (remembered with its other derived arrays)."""
    from services.views import derived

    result = view.result
    return derived.get((view.key, "grid-sources"),
                       lambda: [grid_source(result.attentions[layer]) for layer in range(result.num_layers)])


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    note = note_of(view.options) or None
    result = view.result
    if view.options.rollout:
        return {"grid": head_grid_figure(view.rollout_layers(), view.labels, state.layer, selected=state.layer,
                                         tile="layer", note=note,
                                         title=_("Rollout through each of the {count} layers (heads averaged)")
                                         .format(count=result.num_layers))}
    if not view.is_raw:
        return {"grid": head_grid_figure(view.layer(state.layer), view.labels, state.layer,
                                         selected=state.head.number, note=note)}
    sources = layer_sources(view)
    extra = {}
    if sum(len(s) for s in sources) <= SOURCES_BUDGET:
        extra = {"sources": sources, "titles": [title_of(l, result.num_heads) for l in range(result.num_layers)],
                 "key": view.key}
    return {"grid": head_grid_figure(result.attentions[state.layer], view.labels, state.layer,
                                     selected=state.head.number, source=sources[state.layer], extra_meta=extra,
                                     title=title_of(state.layer, result.num_heads))}
