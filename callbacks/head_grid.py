"""Head grid: every head of the chosen layer (in Rollout mode: the rollout through every layer).

With no switch on, the grid carries every layer's picture (``layout.meta.sources``, when they weigh
less than ``SOURCES_BUDGET``), so the browser changes layer, and moves the head outline, without a
request (assets/23-gate.js, ``gate``).
"""

from __future__ import annotations

import numpy as np
from dash import Output

from ..components import ids
from ..components.figures import (
    GRID_MAX_CELLS,
    empty_figure,
    grid_selection,
    grid_source,
    head_grid_figure,
    note_span,
    typed_array,
)
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


def zoom_of(view, state: ViewState):
    """The grid's box zoom (``boundary.Zoom`` made on the grid of this analysis), or None."""
    return state.zoom.of(view.key, "grid") if state.zoom is not None and zoomable(view) else None


def zoomable(view) -> bool:
    """Whether a box zoom inside a tile draws that region exact for every head: a long text, or any grid
    pooled in blocks (more than ``GRID_MAX_CELLS`` units a side: cross-attention too); not Rollout (its
    tiles are layers, each a map of its own)."""
    return not view.options.rollout and (view.long or max(len(view.labels), len(view.col_labels)) > GRID_MAX_CELLS)


def allow_zoom(figure: dict, view, region: tuple[int, int, int, int] | None = None) -> dict:
    """A grid a box zoom can draw exact (``zoomable``): the drag zooms, and ``layout.meta.zoom`` says which
    tokens the tiles show (``region``: the whole map when None), which assets/29-zoom.js (``gridZoomOf``)
    reads to turn a box in one tile into token ranges."""
    if not zoomable(view):
        return figure
    layout = figure["layout"]
    n_rows, n_cols = len(view.labels), len(view.col_labels)
    r0, r1, c0, c1 = region if region is not None else (0, n_rows, 0, n_cols)
    layout["meta"]["zoom"] = {"key": view.key, "r0": r0, "r1": r1, "c0": c0, "c1": c1, "zoomed": region is not None}
    layout["dragmode"] = "zoom"
    layout["xaxis"]["fixedrange"] = layout["yaxis"]["fixedrange"] = False
    return figure


def long_render(view, state: ViewState, note: str | None, zoom=None) -> dict:
    """A long text (or, after a box zoom, any zoomable grid): every head of the layer pooled in blocks (max,
    or mean), exact, computed from the kept queries and keys; each cell's exact value rides along for the
    hover (``meta.values``). ``zoom``: the grid's box zoom, the same region (queries x keys) in every tile,
    pooled finer while large, down to single tokens, named beside the tiles when they fit."""
    heads = view.shape[1]
    n_rows, n_cols = len(view.labels), len(view.col_labels)
    r0, r1, c0, c1 = region = (0, n_rows, 0, n_cols) if zoom is None else zoom.region(n_rows, n_cols)
    block = grid_block(r1 - r0, c1 - c0)
    if zoom is None:
        maps = view.pictures(state.layer, block, state.pool)
    else:
        maps = np.stack([view.picture(state.layer, h, block, state.pool, region) for h in range(heads)])
    figure = head_grid_figure(maps, view.labels[r0:r1], state.layer, key_labels=view.col_labels[c0:c1],
                              selected=state.head.number, note=note, title=title_of(state.layer, heads),
                              pooled=(block, r1 - r0, c1 - c0),
                              extra_meta={"attention_kind": view.kind if view.result.is_encoder_decoder else None,
                                          "values": typed_array(np.nan_to_num(maps, nan=-1.0).astype(np.float32)),
                                          "how": state.pool, "block": block})
    title = figure["layout"]["title"]
    if state.pool == "mean":
        title["text"] = title["text"].replace(_("(each cell: max over {block}×{block} tokens)").format(block=block),
                                              _("(each cell: mean over {block}×{block} tokens)").format(block=block))
    if zoom is not None:
        meta = figure["layout"]["meta"]
        meta.update(tokens=view.labels, key_tokens=view.col_labels)  # the hover names tokens by their index
        words = (_("exact tile: tokens {r0}–{r1} → {c0}–{c1}") if block == 1
                 else _("tokens {r0}–{r1} → {c0}–{c1}")).format(r0=r0, r1=r1 - 1, c0=c0, c1=c1 - 1)
        title["text"] = title_of(state.layer, heads) + note_span(words) + title["text"][len(title_of(state.layer, heads)):]
    return allow_zoom(figure, view, region if zoom is not None else None)


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
    zoom = zoom_of(view, state)
    if (view.long and not view.options.rollout) or zoom is not None:
        return {"grid": long_render(view, state, note, zoom)}
    attentions = view.kv.attentions
    layers, heads = attentions.shape[:2]
    kind = {"attention_kind": view.kind if view.result.is_encoder_decoder else None}  # the browser redraws a layer only for the kind it was drawn for
    if view.options.rollout:
        return {"grid": head_grid_figure(view.rollout_layers(), view.labels, state.layer, selected=state.layer,
                                         tile="layer", note=note, key_labels=view.col_labels, extra_meta=kind,
                                         title=_("Rollout through each of the {count} layers (heads averaged)")
                                         .format(count=layers))}
    if not view.is_raw:
        return {"grid": allow_zoom(head_grid_figure(view.layer(state.layer), view.labels, state.layer,
                                                    key_labels=view.col_labels, selected=state.head.number, note=note,
                                                    extra_meta=kind), view)}
    sources = layer_sources(view)
    extra = dict(kind)
    if sum(len(s) for s in sources) <= SOURCES_BUDGET:
        extra.update(sources=sources, titles=[title_of(l, heads) for l in range(layers)], key=view.key)
    return {"grid": allow_zoom(head_grid_figure(attentions[state.layer], view.labels, state.layer,
                                                key_labels=view.col_labels, selected=state.head.number,
                                                source=sources[state.layer], extra_meta=extra,
                                                title=title_of(state.layer, heads), note=note), view)}

VIEW = ViewSpec(name="grid", tab=ids.TAB_GRID, outputs=OUTPUTS, main="grid", graph=ids.HEAD_GRID, depends=frozenset({"handle", "layer", "head", "mode", "switches", "tab", "kind", "pair", "zoom"}), render=render, placeholder=placeholder, csv=numbers_csv("grid"), direct=True)
