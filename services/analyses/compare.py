"""Compare two analyses (issue 11): two texts on one model, or one text on two models.

Pure numpy over two ``services.views.View`` objects (the same switches on both)::

    c = compare(view_a, view_b)
    c.lined_up, c.how, c.reason   # True, "tokens" | "words"; or False and why not, in plain words
    c.a, c.b                      # the views compared (sub-words merged on both when that lines them up)
    c.labels                      # one label per position: "big | small" where the two texts differ
    c.difference(layer, head)     # A − B of one head, the mean of heads (None) or the rollout
    c.head_differences()          # (sum of |A − B|, max |A − B|), each (layers, heads)

Two analyses line up when they show the same number of units (tokens, or words with sub-words merged)
and have the same layers and heads: then position ``i`` of A is compared with position ``i`` of B (the
trophy / suitcase pair differs in one word, "big" / "small", at the same place). Otherwise there is no
cell-by-cell difference, and ``reason`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import N_
from .views import View

NOT_SAME_MODEL_SHAPE = N_("The two models have different numbers of layers or heads ({a} and {b}), so their "
                          "heads cannot be matched one to one.")
NOT_SAME_LENGTH = N_("The two texts have different numbers of tokens ({a} and {b}), even with sub-words merged into "
                     "words, so their attention cannot be subtracted cell by cell. They are shown side by side.")
NOT_SAME_KIND = N_("Text B's model has no “{kind}” attention.")


@dataclass(frozen=True)
class Comparison:
    a: View
    b: View
    lined_up: bool
    how: str = ""  # "tokens" or "words" (sub-words merged to line them up)
    reason: str = ""  # why there is no difference (a template with ``params``), "" when lined up
    params: tuple = ()

    @property
    def labels(self) -> list[str]:
        """One label a position: the token, or ``"A's | B's"`` where they differ."""
        if not self.lined_up:
            return list(self.a.labels)
        return [x if x == y else f"{x} | {y}" for x, y in zip(self.a.labels, self.b.labels)]

    @property
    def col_labels(self) -> list[str]:
        if not self.lined_up:
            return list(self.a.col_labels)
        return [x if x == y else f"{x} | {y}" for x, y in zip(self.a.col_labels, self.b.col_labels)]

    @property
    def differing(self) -> list[int]:
        """Positions whose tokens differ between A and B."""
        return [i for i, (x, y) in enumerate(zip(self.a.labels, self.b.labels)) if x != y] if self.lined_up else []

    def difference(self, layer: int, head: int | None) -> np.ndarray:
        """``A − B`` of one head, the mean of heads (``head=None``) or, in Rollout mode, the rollout."""
        return self.a.matrix(layer, head)[0] - self.b.matrix(layer, head)[0]

    def head_differences(self) -> tuple[np.ndarray, np.ndarray]:
        """For every head (raw or weighted attention: the rollout has no heads), the sum and the largest
        of ``|A − B|`` over its cells, each ``(layers, heads)`` float64."""
        a, b = self.a.without_rollout().all_layers(), self.b.without_rollout().all_layers()
        gap = np.abs(a.astype(np.float64) - b.astype(np.float64))
        return gap.sum(axis=(-2, -1)), gap.max(axis=(-2, -1))


def _shape(view: View) -> tuple[int, int]:
    return tuple(int(n) for n in view.kv.attentions.shape[:2])


def compare(a: View, b: View) -> Comparison:
    """Line ``a`` and ``b`` up by tokens, else by words (sub-words merged on both), else not at all."""
    if _shape(a) != _shape(b):
        return Comparison(a, b, False, reason=NOT_SAME_MODEL_SHAPE,
                          params=(("a", "{} × {}".format(*_shape(a))), ("b", "{} × {}".format(*_shape(b)))))
    if len(a.labels) == len(b.labels) and len(a.col_labels) == len(b.col_labels):
        return Comparison(a, b, True, "tokens")
    if not a.options.merge_words:
        merged = replace(a.options, merge_words=True)
        wa = View(a.result, merged, a.key, kind=a.kind, pair=a.pair)
        wb = View(b.result, merged, b.key, kind=b.kind, pair=b.pair)
        if len(wa.labels) == len(wb.labels) and len(wa.col_labels) == len(wb.col_labels):
            return Comparison(wa, wb, True, "words")
    return Comparison(a, b, False, reason=NOT_SAME_LENGTH, params=(("a", len(a.labels)), ("b", len(b.labels))))
