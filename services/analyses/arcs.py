"""The rows the arc view draws: the queries of one window of the text, every key, as the switches show
them, read without the whole ``(layers, heads, n, n)`` array.

A 4,096-token text's maps are not held (``AttentionResult.dense`` False); the arc view draws ``ARC_WINDOW``
queries at a time, so it asks only for their rows (``AttentionResult.rows``: each row the whole softmax,
exact). The switches are applied to those rows by ``View.shown_rows`` as ``View.matrix`` applies them
to whole matrices. Rollout multiplies whole matrices through the layers: it is read from the view
(short texts).

What the arcs need of a row is only its largest weights: ``window_arcs`` keeps, per block of
``ARC_BLOCK`` rows (aligned, so a window of 64 touches at most two), each row's ``ARC_TOP_MAX`` largest
weights and their keys, remembered per analysis, layer, heads and switches (``Memory.derived``): moving
the window along the text, or back, reads the blocks already kept; only a block not seen yet is computed.
"""

from __future__ import annotations

import numpy as np

from ..store.memory import memory

ARC_BLOCK = 64  # rows computed (and remembered) together
ARC_TOP_MAX = 10  # the largest weights kept a row: the most arcs a token the page offers (components/layout.py)


def window_rows(view, layer: int, heads: list[int] | None, first: int, end: int) -> np.ndarray:
    """``(groups, end - first, keys)`` float32: the rows of the row units ``first..end-1`` shown by ``view``
    (after its switches: ``View.shown_rows``, the one place they are applied to rows), one group per head
    of ``heads``, or one group, the mean of every head, for ``heads=None``; the columns are every key unit
    the view shows (``view.col_labels``)."""
    units = np.arange(first, end)
    picked = [None] if heads is None else list(heads)
    return np.ascontiguousarray(np.stack([view.shown_rows(layer, h, units) for h in picked]), dtype=np.float32)


def row_tops(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(keys, weights)``, each ``(groups, rows, min(k, n_keys))``: each row's ``k`` largest weights, largest
    first (equal weights: the earlier key first), and their keys (int32)."""
    n_keys = rows.shape[-1]
    k = max(1, min(int(k), n_keys))
    if k < n_keys:
        keys = np.argpartition(-rows, k - 1, axis=-1)[..., :k]
    else:
        keys = np.broadcast_to(np.arange(n_keys), rows.shape)
    keys = np.sort(keys, axis=-1)  # then a stable sort by weight keeps equal weights in key order
    weights = np.take_along_axis(rows, keys, axis=-1)
    order = np.argsort(-weights, axis=-1, kind="stable")
    return (np.take_along_axis(keys, order, axis=-1).astype(np.int32),
            np.take_along_axis(weights, order, axis=-1).astype(np.float32))


def _block_tops(view, layer: int, heads: list[int] | None, block: int) -> tuple[np.ndarray, np.ndarray]:
    n_rows = len(view.rows.kept)
    first, end = block * ARC_BLOCK, min(n_rows, (block + 1) * ARC_BLOCK)
    o = view.options
    memo = (view.key, "arc-tops", view.kind, view.pair, o.rollout, o.value_norm, o.hide_special, o.merge_words,
            o.drop_first, layer, None if heads is None else tuple(heads), block)
    return memory().derived.get_or_compute(
        memo, lambda: row_tops(window_rows(view, layer, heads, first, end), ARC_TOP_MAX))


def window_arcs(view, layer: int, heads: list[int] | None, first: int, end: int, top_k: int, min_weight: float,
                focus: int | None = None):
    """The arcs of the window ``first..end-1`` (row units of ``view``), as ``components.figures.select_arcs``
    picks them from ``window_rows``: for every group (head of ``heads``, or the mean) and query, its
    ``top_k`` keys of weight >= ``min_weight`` (and > 0), largest first; only the query ``focus`` (a place
    in the window) when given. Returns arrays ``(group, query: place in the window, key, weight)``, the
    weights exact. Read from the blocks of row tops kept for the view (``_block_tops``)."""
    if end <= first:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, np.zeros(0, dtype=np.float32)
    if top_k > ARC_TOP_MAX:  # more than the page offers: from the rows themselves
        rows = window_rows(view, layer, heads, first, end)
        keys, weights = row_tops(rows, top_k)
    else:
        parts = [_block_tops(view, layer, heads, b) for b in range(first // ARC_BLOCK, (end - 1) // ARC_BLOCK + 1)]
        offset = first - (first // ARC_BLOCK) * ARC_BLOCK
        keys = np.concatenate([p[0] for p in parts], axis=1)[:, offset:offset + end - first, :top_k]
        weights = np.concatenate([p[1] for p in parts], axis=1)[:, offset:offset + end - first, :top_k]
    queries = np.arange(end - first) if focus is None else np.array([focus])
    keys, weights = keys[:, queries], weights[:, queries]
    g, qi, j = np.nonzero((weights >= min_weight) & (weights > 0))
    return g, queries[qi], keys[g, qi, j].astype(np.int64), weights[g, qi, j]
