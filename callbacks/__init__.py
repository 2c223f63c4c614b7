"""Thin wiring: the browser's values are parsed once (``boundary``), then services, then components.

- ``analyze``: a new text or model (the one callback that runs the model);
- ``router``: the one callback that draws the open view (one module a view: ``head_grid``,
  ``head_heatmap``, ``arcs``, ``overview``, ``atlas``, ``token_focus``, ``inside``, ``generation``);
- ``exports``: the open view as PNG, SVG, CSV or HTML, the analysis as JSON;
- ``clientside``: hovers, clicks and toggles handled in the browser (assets/2*.js, one file a feature).
"""

from __future__ import annotations

from dash import Dash

from . import analyze, atlas, clientside, compare, exports, router


def register_callbacks(app: Dash) -> None:
    for module in (analyze, router, atlas, compare, exports, clientside):
        module.register(app)
