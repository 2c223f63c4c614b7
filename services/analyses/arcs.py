"""The rows the arc view draws: the queries of one window of the text, every key, as the switches show
them, read without the whole ``(layers, heads, n, n)`` array.

A 4,096-token text's maps are not held (``AttentionResult.dense`` False); the arc view draws ``ARC_WINDOW``
queries at a time, so it asks only for their rows (``AttentionResult.rows``: each row the whole softmax,
exact). The switches are applied to those rows as ``View.apply`` applies them to whole matrices:
value-norm weighting (per row), the mean of heads, sub-words merged (rows averaged over a word's
pieces, columns summed), special tokens hidden (rows renormalised over the keys kept) and the pair
filter. Rollout multiplies whole matrices through the layers: it is read from the view (short texts).
"""

from __future__ import annotations

import numpy as np

from ..result import as_float32
from .kinds import PAIR_FILTERS
from .matrices import merge_rectangular, weighted_by_value_norm


def window_rows(view, layer: int, heads: list[int] | None, first: int, end: int) -> np.ndarray:
    """``(groups, end - first, keys)`` float32: the rows of the row units ``first..end-1`` shown by ``view``
    (after its switches), one group per head of ``heads``, or one group, the mean of every head, for
    ``heads=None``; the columns are every key unit the view shows (``view.col_labels``)."""
    rows, cols = view.rows, view.cols
    units = rows.kept[first:end]
    if rows.groups is not None:  # merged: each unit is a word of one or more pieces
        pieces = [rows.groups[0][u] for u in units]
        raw = np.array([i for group in pieces for i in group], dtype=np.int64)
        starts = np.cumsum([0] + [len(g) for g in pieces])
        local_groups = [list(range(starts[i], starts[i + 1])) for i in range(len(pieces))]
    else:
        raw, local_groups = np.asarray(units, dtype=np.int64), None
    all_heads = range(view.kv.attentions.shape[1])
    picked = list(all_heads) if heads is None else list(heads)
    block = np.stack([_raw_rows(view, layer, h, raw) for h in picked])  # (heads, r, keys)
    if view.options.value_norm:
        block = weighted_by_value_norm(block, view._norms[0][layer, picked])[1]
    if heads is None:
        block = block.mean(axis=0, keepdims=True)
    if local_groups is not None or cols.groups is not None:
        block = merge_rectangular(block, local_groups, cols.groups[0] if cols.groups is not None else None)
    if cols.hidden:
        block = _keep_columns(block, cols.kept, view.kv.causal and view.square, units)
    if view.pair:
        query_segment, key_segment = PAIR_FILTERS[view.pair]
        keep_rows = np.array([rows.segments[i] == query_segment for i in range(first, end)], dtype=bool)
        keep_cols = np.array([s == key_segment for s in cols.segments], dtype=bool)
        block = np.where(keep_rows[:, None] & keep_cols[None, :], block, 0.0)
    return np.ascontiguousarray(block, dtype=np.float32)


def _raw_rows(view, layer: int, head: int, queries: np.ndarray) -> np.ndarray:
    """Rows ``queries`` of one head of the view's kind, float32, exact: computed on demand for the
    result's own attention, read from the held maps for an encoder-decoder model's decoder and cross."""
    result = view.result
    if not result.is_encoder_decoder or view.kind == "encoder":
        return result.rows(layer, head, queries)
    return as_float32(view.kv.attentions[layer, head][queries])


def _keep_columns(block: np.ndarray, kept: np.ndarray, causal: bool, units: np.ndarray) -> np.ndarray:
    """The columns ``kept``, each row renormalised to 1 (``matrices.hide_special``: a row left with no
    mass spreads evenly over the kept keys it can see, for causal attention those not after it)."""
    sub = block[..., kept]
    mass = sub.sum(axis=-1, keepdims=True)
    if (mass > 0).all():
        return sub / mass
    if causal:  # a unit sees the kept keys up to itself
        visible = (kept[None, :] <= np.asarray(units)[:, None]).astype(np.float32)
    else:
        visible = np.ones((sub.shape[-2], len(kept)), dtype=np.float32)
    even = visible / np.maximum(visible.sum(axis=-1, keepdims=True), 1.0)
    return np.where(mass > 0, sub / np.where(mass > 0, mass, 1.0), even).astype(np.float32)
