"""The numbers behind what a dashboard view shows, as CSV: per view (``view_numbers``), and the head
atlas's metrics (``atlas_csv``). The CSV format itself is ``services.serial``'s.

Pure numpy over a ``services.analyses.views.View``: nothing here runs a model or imports Dash.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..serial import checked_index, quote_csv, view_csv, view_csv_chunks

VIEW_NAMES = ("grid", "heatmap", "arcs", "overview", "atlas", "focus")


@dataclass(frozen=True)
class ViewNumbers:
    """The numbers behind one view: ``matrices`` ``(len(layers), len(heads), queries, keys)`` and labels."""

    matrices: np.ndarray
    layers: list
    heads: list
    query_tokens: list[str]
    key_tokens: list[str]
    query_index: list[int]
    key_index: list[int]

    def csv(self, max_rows: int | None = None) -> str:
        return view_csv(self.matrices, self.query_tokens, self.key_tokens, layers=self.layers, heads=self.heads,
                        query_index=self.query_index, key_index=self.key_index, max_rows=max_rows)

    def csv_chunks(self, max_rows: int | None = None) -> Iterator[str]:
        """``csv`` in pieces (``services.serial.view_csv_chunks``): for a download that streams."""
        return view_csv_chunks(self.matrices, self.query_tokens, self.key_tokens, layers=self.layers,
                               heads=self.heads, query_index=self.query_index, key_index=self.key_index,
                               max_rows=max_rows)

    @property
    def rows(self) -> int:
        return int(self.matrices.size)


def view_numbers(view, name: str, layer: int = 0, head: int | str | None = "mean",
                 token: int | None = None) -> ViewNumbers:
    """The weights the dashboard's view ``name`` shows for a ``services.views.View`` (its switches: raw
    or rollout, special tokens hidden, sub-words merged), as the view computes them.

    ``head`` is a head number, ``"mean"`` (or None) or ``"all"``; ``token`` the raw token index followed
    by Token focus. Indices written are positions among the tokens (or words) the view shows, and
    the tokens are the view's labels. Per view:

    - ``grid``: every head of ``layer`` (Rollout: the rollout through each layer, head ``"rollout"``);
    - ``heatmap``: one head, the mean of heads (head ``"mean"``), or the rollout through ``layer``;
    - ``arcs``: as ``heatmap``, or every head of ``layer`` when ``head="all"``;
    - ``overview``: every layer and head (raw attention: the rollout has no heads);
    - ``focus``: one query row per layer, heads averaged (or the rollout), for ``token``;
    - ``atlas`` shows head metrics, not weights: use ``atlas_csv``.
    """
    n_layers, n_heads = (int(n) for n in view.kv.attentions.shape[:2])  # of the kind shown (encoder, decoder, cross)
    layer = checked_index(layer, n_layers, "layer")
    head_kind = "mean" if head is None else head
    if not isinstance(head_kind, str):
        head_kind = checked_index(head_kind, n_heads, "head")
    elif head_kind not in ("mean", "all"):
        raise ValueError(f"head must be a number, 'mean' or 'all', not {head!r}")
    labels = list(view.labels)
    key_labels = list(getattr(view, "col_labels", labels))
    units = list(range(len(labels)))
    key_units = list(range(len(key_labels)))
    rollout = view.options.rollout

    def numbers(matrices, layers, heads, queries=None, query_index=None) -> ViewNumbers:
        layers, heads = list(layers), list(heads)
        matrices = np.asarray(matrices)
        matrices = matrices.reshape((len(layers), len(heads)) + matrices.shape[-2:])
        return ViewNumbers(matrices, layers, heads,
                           labels if queries is None else queries, key_labels,
                           units if query_index is None else query_index, key_units)

    if name == "grid":
        if rollout:
            return numbers(view.rollout_layers(), range(n_layers), ["rollout"])
        return numbers(view.layer(layer)[None], [layer], range(n_heads))
    if name in ("heatmap", "arcs"):
        if name == "arcs" and head_kind == "all" and not rollout:
            return numbers(view.layer(layer)[None], [layer], range(n_heads))
        number = head_kind if isinstance(head_kind, int) else None
        matrix, _ = view.matrix(layer, number)
        label = "rollout" if rollout else (number if number is not None else "mean")
        return numbers(matrix[None, None], [layer], [label])
    if name == "overview":
        plain = view.without_rollout()
        return numbers(plain.all_layers(), range(n_layers), range(n_heads))
    if name == "focus":
        unit = view.unit_of(token) if token is not None else None
        if unit is None:
            raise ValueError("Token focus needs a token the view shows (it may be hidden by a switch).")
        looks, _ = view.focus(unit)
        return numbers(looks[:, None, None, :], range(n_layers), ["rollout" if rollout else "mean"],
                       queries=[labels[unit]], query_index=[unit])
    if name == "atlas":
        raise ValueError("The head atlas shows head metrics, not attention weights: use atlas_csv.")
    raise ValueError(f"unknown view {name!r}; one of {', '.join(VIEW_NAMES)}")


def view_csv_for(view, name: str, layer: int = 0, head: int | str | None = "mean", token: int | None = None,
                 *, max_rows: int | None = None) -> str:
    """The CSV of the numbers behind view ``name`` (see ``view_numbers``)."""
    return view_numbers(view, name, layer, head, token).csv(max_rows=max_rows)


def view_csv_chunks_for(view, name: str, layer: int = 0, head: int | str | None = "mean",
                        token: int | None = None, *, max_rows: int | None = None) -> Iterator[str]:
    """``view_csv_for`` in pieces, checked before the first (a download streams them)."""
    return view_numbers(view, name, layer, head, token).csv_chunks(max_rows=max_rows)


def atlas_csv(metrics: dict[str, np.ndarray], labels: np.ndarray) -> str:
    """The head atlas as CSV: ``layer,head,type,<metric>...``, one row a head, metrics as computed
    (``services.heads.head_metrics`` and ``head_labels``)."""
    labels = np.asarray(labels)
    names = list(metrics)
    out = [",".join(["layer", "head", "type", *(quote_csv(n) for n in names)]) + "\r\n"]
    columns = {n: np.asarray(metrics[n]).astype(str) for n in names}
    for layer in range(labels.shape[0]):
        for head in range(labels.shape[1]):
            values = [columns[n][layer, head] for n in names]
            out.append(",".join([str(layer), str(head), quote_csv(str(labels[layer, head])), *values]) + "\r\n")
    return "".join(out)
