"""Thin wiring: inputs -> services -> components. One module a feature; bodies are plain functions."""

from __future__ import annotations

from dash import Dash

from . import analyze, arcs, head_grid, head_heatmap, inputs


def register_callbacks(app: Dash) -> None:
    for module in (inputs, analyze, head_grid, head_heatmap, arcs):
        module.register(app)
