"""Head grid: every head of the chosen layer (in Rollout mode: the rollout through every layer).

With no switch on, the grid carries every layer's picture (``layout.meta.sources``, when they weigh
less than ``SOURCES_BUDGET``), so the browser changes layer, and moves the head outline, without a
request (assets/23-gate.js, ``gate``).
"""

from __future__ import annotations

import numpy as np
from dash import Output

from ..components import ids
from ..components.figures import empty_figure, grid_selection, grid_source, head_grid_figure, typed_array
from ..components.pooled import grid_block
from ..components.i18n import _
from ..services.store.memory import memory
from .boundary import ViewState
from .common import numbers_csv, view_note
from .hover import source
from .viewspec import ViewSpec

OUTPUTS = {"grid": Output(ids.HEAD_GRID, "figure")}
# What the grid depends on; a change of anything else leaves it as it is.
SOURCES_BUDGET = 3 * 1024 * 1024  # bytes of pictures a grid may carry for browser-side layer changes


def placeholder(message: str) -> dict:
    return {"grid": empty_figure(message)}


def title_of(layer: int, heads: int) -> str:
    return _("Layer {layer} · all {count} heads").format(layer=layer, count=heads)


def layer_sources(view) -> list[str]:
    """Every layer's grid picture, made once per analysis (remembered with its other derived arrays)."""
    
    attentions = view.kv.attentions
    return memory().derived.get_or_compute((view.key, "grid-sources", view.kind),
                       lambda: [grid_source(attentions[layer]) for layer in range(attentions.shape[0])])


def long_render(view, state: ViewState, note: str | None) -> dict:
    """A long text: every head of the layer pooled in blocks (max, or mean), exact, computed from the kept
    queries and keys; each cell's exact value rides along for the hover (``meta.values``)."""
    heads = view.shape[1]
    n_rows, n_cols = len(view.labels), len(view.col_labels)
    block = grid_block(n_rows, n_cols)
    maps = view.pictures(state.layer, block, state.pool)
    figure = head_grid_figure(maps, view.labels, state.layer, key_labels=view.col_labels, selected=state.head.number,
                              note=note, title=title_of(state.layer, heads), pooled=(block, n_rows, n_cols),
                              extra_meta={"attention_kind": view.kind if view.result.is_encoder_decoder else None,
                                          "values": typed_array(np.nan_to_num(maps, nan=-1.0).astype(np.float32)),
                                          "how": state.pool, "block": block})
    if state.pool == "mean":
        title = figure["layout"]["title"]
        title["text"] = title["text"].replace(_("(each cell: max over {block}×{block} tokens)").format(block=block),
                                              _("(each cell: mean over {block}×{block} tokens)").format(block=block))
    return figure


def mark_kv_groups(figure: dict, view, selected: int | None) -> dict:
    """Under grouped-query attention, each head tile's title names the key/value head it shares ("head 5
    · kv 1"), in the figure and in ``layout.meta.tile_names`` (which the browser reuses when it moves the
    selection itself)."""
    result = view.result
    meta = figure["layout"].get("meta") or {}
    if result.is_encoder_decoder or meta.get("tile") != "head" or result.num_kv_heads >= result.num_heads:
        return figure
    group = result.num_heads // max(1, result.num_kv_heads)
    meta["tile_names"] = [_("{name} · kv {group}").format(name=name, group=tile // group)
                          for name, tile in zip(meta["tile_names"], meta["tiles"])]
    figure["data"][1] = {**figure["data"][1], "text": grid_selection(meta, selected)["text"]}
    return figure


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    out = _render(view, state, triggered)
    if not view.long:  # the hover's exact values (callbacks/hover.py); a long text's ride in the figure
        out["grid"]["layout"]["meta"]["src"] = source(view, state)
    if not view.options.rollout:
        mark_kv_groups(out["grid"], view, state.head.number)
    return out


def _render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    note = view_note(view) or None
    if view.long and not view.options.rollout:
        return {"grid": long_render(view, state, note)}
    attentions = view.kv.attentions
    layers, heads = attentions.shape[:2]
    kind = {"attention_kind": view.kind if view.result.is_encoder_decoder else None}  # the browser redraws a layer only for the kind it was drawn for
    if view.options.rollout:
        return {"grid": head_grid_figure(view.rollout_layers(), view.labels, state.layer, selected=state.layer,
                                         tile="layer", note=note, key_labels=view.col_labels, extra_meta=kind,
                                         title=_("Rollout through each of the {count} layers (heads averaged)")
                                         .format(count=layers))}
    if not view.is_raw:
        return {"grid": head_grid_figure(view.layer(state.layer), view.labels, state.layer, key_labels=view.col_labels,
                                         selected=state.head.number, note=note, extra_meta=kind)}
    sources = layer_sources(view)
    extra = dict(kind)
    if sum(len(s) for s in sources) <= SOURCES_BUDGET:
        extra.update(sources=sources, titles=[title_of(l, heads) for l in range(layers)], key=view.key)
    return {"grid": head_grid_figure(attentions[state.layer], view.labels, state.layer, key_labels=view.col_labels,
                                     selected=state.head.number, source=sources[state.layer], extra_meta=extra,
                                     title=title_of(state.layer, heads), note=note)}

VIEW = ViewSpec(name="grid", tab=ids.TAB_GRID, outputs=OUTPUTS, main="grid", graph=ids.HEAD_GRID, depends=frozenset({"handle", "layer", "head", "mode", "switches", "tab", "kind", "pair"}), render=render, placeholder=placeholder, csv=numbers_csv("grid"))
