"""The views, in tab order: one ``ViewSpec`` each (declared at the end of the view's module). The one
list that the router, the URL state, the exports, the boundary, the layout and the browser read."""

from __future__ import annotations

import json

from ..components import ids
from . import arcs, atlas, compare, generation, head_grid, head_heatmap, inside, overview, token_focus
from .viewspec import ViewSpec

VIEWS: tuple[ViewSpec, ...] = (head_grid.VIEW, head_heatmap.VIEW, arcs.VIEW, overview.VIEW, atlas.VIEW,
                               token_focus.VIEW, inside.VIEW, compare.VIEW, generation.VIEW)
BY_TAB: dict[str, ViewSpec] = {spec.tab: spec for spec in VIEWS}
BY_NAME: dict[str, ViewSpec] = {spec.name: spec for spec in VIEWS}
TABS: tuple[str, ...] = tuple(BY_TAB)
DEFAULT = BY_TAB[ids.TAB_GRID]


def spec_of(tab: object) -> ViewSpec:
    """The view of a tab value (the grid for a value that is not one)."""
    return BY_TAB.get(tab, DEFAULT) if isinstance(tab, str) else DEFAULT


def browser_table() -> str:
    """What the browser needs of each view, as JSON for the page's ``data-views`` attribute: by tab id,
    its URL name, its main graph's id and whether the page asks for it directly (``ViewSpec.direct``)."""
    return json.dumps({spec.tab: {"name": spec.name, "graph": spec.graph, "direct": spec.direct} for spec in VIEWS},
                      separators=(",", ":"))


if len(BY_TAB) != len(VIEWS) or len(BY_NAME) != len(VIEWS):
    raise RuntimeError("two views share a tab or a name")
