"""The rows the arc view draws: the queries of one window of the text, every key, as the switches show
them, read without the whole ``(layers, heads, n, n)`` array.

A 4,096-token text's maps are not held (``AttentionResult.dense`` False); the arc view draws ``ARC_WINDOW``
queries at a time, so it asks only for their rows (``AttentionResult.rows``: each row the whole softmax,
exact). The switches are applied to those rows by ``View.shown_rows`` as ``View.matrix`` applies them
to whole matrices. Rollout multiplies whole matrices through the layers: it is read from the view
(short texts).
"""

from __future__ import annotations

import numpy as np


def window_rows(view, layer: int, heads: list[int] | None, first: int, end: int) -> np.ndarray:
    """``(groups, end - first, keys)`` float32: the rows of the row units ``first..end-1`` shown by ``view``
    (after its switches: ``View.shown_rows``, the one place they are applied to rows), one group per head
    of ``heads``, or one group, the mean of every head, for ``heads=None``; the columns are every key unit
    the view shows (``view.col_labels``)."""
    units = np.arange(first, end)
    picked = [None] if heads is None else list(heads)
    return np.ascontiguousarray(np.stack([view.shown_rows(layer, h, units) for h in picked]), dtype=np.float32)
