"""Thin wiring: inputs -> services -> components. One module a feature; bodies are plain functions."""

from __future__ import annotations

from dash import Dash

from . import analyze, arcs, atlas, head_grid, head_heatmap, inputs, navigation, overview, token_focus


def register_callbacks(app: Dash) -> None:
    for module in (inputs, analyze, head_grid, head_heatmap, arcs, overview, atlas, token_focus, navigation):
        module.register(app)
