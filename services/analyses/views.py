"""What every view shows, given the switches: raw, rollout or weighted by value norm, special tokens
hidden, sub-words merged; for one kind of attention (encoder, decoder, cross) and, for a sentence
pair, one pair filter.

One place decides how the switches combine, so every tab agrees:

1. Rollout (when on) is computed on the full raw attention, special tokens included, because
   attention flows through them; the switches below then apply to its result.
2. Merge sub-words: attention to a word is the sum over its pieces, from a word the mean.
3. Hide special tokens: their rows and columns go, and each row is renormalised to sum to 1.

Pure numpy over a cached ``AttentionResult``: nothing here runs the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..result import AttentionResult, as_float32
from ..store.memory import memory
from .kinds import PAIR_FILTERS, analysis_defined, attention_of, default_kind, pair_filters_available, value_norms_for
from .matrices import (
    hide_rectangular,
    hide_special,
    merge_rectangular,
    merge_subwords,
    rollout,
    weighted_by_value_norm,
)
from .tokens import display_token, word_groups


@dataclass(frozen=True)
class ViewOptions:
    rollout: bool = False
    hide_special: bool = False
    merge_words: bool = False
    value_norm: bool = False  # weighted by value norm: α_ij ‖f(x_j)‖, rows renormalised (not with rollout)

    def __post_init__(self) -> None:
        if self.rollout and self.value_norm:
            raise ValueError("rollout and weighting by value norm are separate modes")

    @property
    def note(self) -> str:
        """A short line for figure titles saying what was changed from the raw attention."""
        parts = []
        if self.rollout:
            parts.append("rollout")
        if self.value_norm:
            parts.append("weighted by value norm, rows renormalised")
        if self.merge_words:
            parts.append("sub-words merged")
        if self.hide_special:
            parts.append("special tokens hidden, rows renormalised")
        return " · ".join(parts)


class _Axis:
    """One side of the matrices a view shows (the queries, or the keys): its tokens, how they group
    into words when sub-words are merged, and which units are shown when special tokens are hidden."""

    def __init__(self, tokens: list[str], special: np.ndarray, word_ids, segment_ids, merge: bool, hide: bool):
        self.tokens = list(tokens)
        self.special = np.asarray(special, dtype=bool)
        n = len(self.tokens)
        word_ids = list(word_ids) if word_ids is not None else [None] * n
        segment_ids = list(segment_ids) if segment_ids is not None else [None if s else 0 for s in self.special]
        self.groups = word_groups(self.tokens, word_ids, segment_ids, self.special) if merge else None
        unit_special = self.special if self.groups is None else self.special[[g[0] for g in self.groups[0]]]
        self.unit_special = unit_special
        self.kept = np.flatnonzero(~unit_special) if hide and (~unit_special).any() else np.arange(len(unit_special))
        firsts = [g[0] for g in self.groups[0]] if self.groups is not None else list(range(n))
        self.token_index = [firsts[i] for i in self.kept]
        units = self.groups[1] if self.groups is not None else [display_token(t) for t in self.tokens]
        self.labels = [units[i] for i in self.kept]
        segments = [segment_ids[f] for f in firsts]
        self.segments = [segments[i] for i in self.kept]

    @property
    def hidden(self) -> bool:
        return len(self.kept) < len(self.unit_special)

    def unit_of(self, token: int | None) -> int | None:
        if token is None:
            return None
        if self.groups is not None:
            owner = next((w for w, group in enumerate(self.groups[0]) if token in group), None)
        else:
            owner = token if 0 <= token < len(self.tokens) else None
        hits = np.flatnonzero(self.kept == owner) if owner is not None else []
        return int(hits[0]) if len(hits) else None


class View:
    """One result seen through one set of options, for one kind of attention (``services.kinds``:
    encoder, decoder or cross) and, for a sentence pair, one pair filter (``A→B``: only sentence A's
    queries looking at sentence B's keys; the other cells are blank). Build it once per callback; it
    is cheap. Matrices have the queries on rows and the keys on columns (``row_*`` / ``col_*``); for
    self-attention they are the same tokens and ``labels`` names both."""

    def __init__(self, result: AttentionResult, options: ViewOptions, key: str | None = None,
                 kind: str | None = None, pair: str | None = None) -> None:
        self.result = result
        self.options = options
        self.key = key  # the result's cache key: derived arrays are remembered under it
        self.kind = kind or default_kind(result)
        self.kv = attention_of(result, self.kind)
        self.pair = pair if pair in pair_filters_available(result, self.kind) else None

    @property
    def square(self) -> bool:
        return self.kind != "cross"

    @property
    def is_raw(self) -> bool:
        """True when the view shows the stored attention as it is (no switch on, no filter)."""
        o = self.options
        return not (o.rollout or o.value_norm or o.hide_special or o.merge_words or self.pair)

    def without_rollout(self) -> "View":
        """The same result and switches in Raw mode (views of single heads: rollout has none)."""
        if not self.options.rollout:
            return self
        return View(self.result, ViewOptions(False, self.options.hide_special, self.options.merge_words), self.key,
                    self.kind, self.pair)

    @cached_property
    def _norms(self) -> tuple[np.ndarray | None, str]:
        return value_norms_for(self.result, self.kind)

    @property
    def value_norm_missing(self) -> str:
        """Why the value-norm mode cannot be shown for this view ("" when it can): the reason only."""
        if not self.options.value_norm:
            return ""
        norms, reason = self._norms
        return "" if norms is not None else (reason or "this model's attention layout is not one the app knows")

    @property
    def rollout_missing(self) -> str:
        """Why rollout cannot be shown for this kind ("" when it can)."""
        if not self.options.rollout:
            return ""
        return analysis_defined("rollout", self.kind)[1]

    def _weights(self, att: np.ndarray, layers) -> np.ndarray:
        """``att`` (raw, float16 or float32, for ``layers``: an index or a slice) as the mode shows it:
        as it is, or weighted by value norm with rows renormalised."""
        if not self.options.value_norm:
            return as_float32(att)
        return weighted_by_value_norm(att, self._norms[0][layers])[1]

    def value_row_sums(self, layer: int) -> np.ndarray:
        """``(heads, queries)``: sum over keys of ``α_ij ‖f(x_j)‖`` for each query of each head of a layer,
        so an unnormalised weight is the shown (renormalised) one times its row's sum (for the hover)."""
        norms = self._norms[0][layer]
        return np.einsum("hqk,hk->hq", as_float32(self.kv.attentions[layer]), norms)

    # --- the two sides --------------------------------------------------------------------------
    def _axis(self, side: str) -> _Axis:
        r, kv, o = self.result, self.kv, self.options
        tokens, special = (kv.query_tokens, kv.query_special) if side == "rows" else (kv.key_tokens, kv.key_special)
        on_source = self.kind == "encoder" or (side == "cols" and self.kind == "cross")
        words = (r.word_ids, r.segment_ids) if on_source else (None, None)
        return _Axis(tokens, special, words[0], words[1], o.merge_words, o.hide_special)

    @cached_property
    def rows(self) -> _Axis:
        return self._axis("rows")

    @cached_property
    def cols(self) -> _Axis:
        return self.rows if self.square else self._axis("cols")

    @property
    def labels(self) -> list[str]:
        """The units shown on the rows (for self-attention, on both sides)."""
        return self.rows.labels

    @property
    def col_labels(self) -> list[str]:
        return self.cols.labels

    @property
    def token_index(self) -> list[int]:
        """For each row shown, the index of its first token (for cross-attention, a target token)."""
        return self.rows.token_index

    @property
    def kept(self) -> np.ndarray:
        return self.rows.kept

    def unit_of(self, token: int | None) -> int | None:
        """The position among the rows shown of the unit holding token ``token`` (None if hidden)."""
        return self.rows.unit_of(token)

    # --- transforms -----------------------------------------------------------------------------
    def apply(self, att: np.ndarray) -> np.ndarray:
        """Merge, hide and filter, on any ``(..., queries, keys)`` array of this kind's raw attention."""
        rows, cols = self.rows, self.cols
        if self.square:
            if rows.groups is not None:
                att = merge_subwords(att, rows.groups[0])
            if rows.hidden:
                att, _kept = hide_special(att, rows.unit_special, causal=self.kv.causal)
        else:
            if rows.groups is not None or cols.groups is not None:
                att = merge_rectangular(att, rows.groups[0] if rows.groups else None,
                                        cols.groups[0] if cols.groups else None)
            if rows.hidden or cols.hidden:
                att = hide_rectangular(att, rows.kept, cols.kept)
        att = np.asarray(att, dtype=np.float32)
        if self.pair:
            query_segment, key_segment = PAIR_FILTERS[self.pair]
            keep_rows = np.array([s == query_segment for s in rows.segments])
            keep_cols = np.array([s == key_segment for s in cols.segments])
            att = np.where(keep_rows[:, None] & keep_cols[None, :], att, 0.0).astype(np.float32)
        return att

    @cached_property
    def _rollout(self) -> np.ndarray:
        return memory().derived.get_or_compute((self.key, "rollout", self.kind), lambda: rollout(self.kv.attentions))

    def layer(self, layer: int) -> np.ndarray:
        """Every head of one layer, ``(heads, queries, keys)`` (rollout has no heads: raw then)."""
        return self.apply(self._weights(self.kv.attentions[layer], layer))

    def rollout_layers(self) -> np.ndarray:
        """Rollout through each layer, ``(layers, n, n)``."""
        return self.apply(self._rollout)

    def matrix(self, layer: int, head: int | None) -> tuple[np.ndarray, str]:
        """One matrix and its title: a head, the mean of heads (``head=None``), or the rollout to ``layer``."""
        if self.options.rollout:
            return self.apply(self._rollout[layer]), f"Rollout through layer {layer} (heads averaged)"
        if head is None:
            return self.apply(self._weights(self.kv.attentions[layer], layer).mean(axis=0)), \
                f"Layer {layer} · Mean of heads"
        return self.apply(self._weights(self.kv.attentions[layer, head], (layer, head))), \
            f"Layer {layer} · Head {head}"

    def all_layers(self) -> np.ndarray:
        """``(layers, heads, queries, keys)`` for the whole model (token focus, overview, atlas)."""
        return self.apply(self._weights(self.kv.attentions, slice(None)))

    def focus(self, unit: int) -> tuple[np.ndarray, np.ndarray | None]:
        """For the row unit shown at position ``unit``: ``(looks, looked_at)``, each ``(layers, n)``,
        heads averaged: ``looks[l]`` is where it attends in layer ``l`` (its row), ``looked_at[l]`` how
        much each unit shown attends to it (its column; None for cross-attention, whose rows and columns
        are different tokens). In Rollout mode, the rollout through each layer."""
        if self.options.rollout:
            rolled = self.rollout_layers()
            return rolled[:, unit, :], rolled[:, :, unit]
        if self.is_raw:  # slice first: no float32 copy of the whole model
            att = self.kv.attentions
            looks = as_float32(att[:, :, unit, :]).mean(axis=1)
            return looks, (as_float32(att[:, :, :, unit]).mean(axis=1) if self.square else None)
        att = self.all_layers()
        return att[:, :, unit, :].mean(axis=1), (att[:, :, :, unit].mean(axis=1) if self.square else None)
