"""What every view shows, given the switches: raw or rollout, special tokens hidden, sub-words merged.

One place decides how the switches combine, so every tab agrees:

1. Rollout (when on) is computed on the full raw attention, special tokens included, because
   attention flows through them; the switches below then apply to its result.
2. Merge sub-words: attention to a word is the sum over its pieces, from a word the mean.
3. Hide special tokens: their rows and columns go, and each row is renormalised to sum to 1.

Pure numpy over a cached ``AttentionResult``: nothing here runs the model.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .forward import AttentionResult
from .matrices import as_float32, hide_special, merge_subwords, rollout, weighted_by_value_norm
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


class Derived:
    """Small results derived from a cached analysis (its rollout, its head metrics), remembered for the
    last few analyses by cache key, so a layer or head change does not compute them again. Holds
    numbers only, never the analysis itself. Not per-user state: the key names the text and model."""

    def __init__(self, kept: int = 8) -> None:
        self._items: OrderedDict[tuple, object] = OrderedDict()
        self._kept = kept
        self._lock = threading.Lock()

    def get(self, key: tuple, compute):
        if key[0] is None:  # no cache key (a result made in code): compute every time
            return compute()
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._kept:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


derived = Derived()


class View:
    """One result seen through one set of options. Build it once per callback; it is cheap."""

    def __init__(self, result: AttentionResult, options: ViewOptions, key: str | None = None) -> None:
        self.result = result
        self.options = options
        self.key = key  # the result's cache key: derived arrays are remembered under it

    @property
    def is_raw(self) -> bool:
        """True when the view shows the stored attention as it is (no switch on)."""
        o = self.options
        return not (o.rollout or o.value_norm or o.hide_special or o.merge_words)

    def without_rollout(self) -> "View":
        """The same result and switches in Raw mode (views of single heads: rollout has none)."""
        if not self.options.rollout:
            return self
        return View(self.result, ViewOptions(False, self.options.hide_special, self.options.merge_words), self.key)

    @property
    def value_norm_missing(self) -> str:
        """Why the value-norm mode cannot be shown for this result ("" when it can)."""
        if not self.options.value_norm or self.result.value_norms is not None:
            return ""
        reason = self.result.value_norms_reason or "this model's attention layout is not one the app knows"
        return f"Weighting by value norm is not available for this model: {reason}"

    def _weights(self, att: np.ndarray, layers) -> np.ndarray:
        """``att`` (raw, float16 or float32, for ``layers``: an index or a slice) as the mode shows it:
        as it is, or weighted by value norm with rows renormalised."""
        if not self.options.value_norm:
            return as_float32(att)
        return weighted_by_value_norm(att, self.result.value_norms[layers])[1]

    def value_row_sums(self, layer: int) -> np.ndarray:
        """``(heads, seq)``: sum over keys of ``α_ij ‖f(x_j)‖`` for each query of each head of a layer, so
        an unnormalised weight is the shown (renormalised) one times its row's sum (for the hover)."""
        norms = self.result.value_norms[layer]
        return np.einsum("hqk,hk->hq", as_float32(self.result.attentions[layer]), norms)

    @cached_property
    def _groups(self) -> tuple[list[list[int]], list[str]] | None:
        if not self.options.merge_words:
            return None
        r = self.result
        return word_groups(r.tokens, r.word_ids, r.segment_ids, r.special_mask)

    @cached_property
    def _unit_special(self) -> np.ndarray:
        """The special mask at the level shown (tokens, or words when merged)."""
        mask = np.asarray(self.result.special_mask, dtype=bool)
        if self._groups is not None:
            mask = mask[[group[0] for group in self._groups[0]]]
        return mask

    @cached_property
    def kept(self) -> np.ndarray:
        """Indices (tokens or words) still shown."""
        return np.flatnonzero(~self._unit_special) if self.options.hide_special and (~self._unit_special).any() \
            else np.arange(len(self._unit_special))

    @cached_property
    def labels(self) -> list[str]:
        units = self._groups[1] if self._groups is not None else [display_token(t) for t in self.result.tokens]
        return [units[i] for i in self.kept]

    @cached_property
    def token_index(self) -> list[int]:
        """For each unit shown, the index of its first token in the raw result."""
        firsts = [g[0] for g in self._groups[0]] if self._groups is not None else list(range(self.result.seq_len))
        return [firsts[i] for i in self.kept]

    def unit_of(self, token: int | None) -> int | None:
        """The position among the units shown of the unit holding raw token ``token`` (None if hidden)."""
        if token is None:
            return None
        if self._groups is not None:
            owner = next((w for w, group in enumerate(self._groups[0]) if token in group), None)
        else:
            owner = token if 0 <= token < self.result.seq_len else None
        hits = np.flatnonzero(self.kept == owner) if owner is not None else []
        return int(hits[0]) if len(hits) else None

    def apply(self, att: np.ndarray) -> np.ndarray:
        """Merge and hide, on any ``(..., seq, seq)`` array of raw-token attention."""
        if self._groups is not None:
            att = merge_subwords(att, self._groups[0])
        if self.options.hide_special and len(self.kept) < att.shape[-1]:
            att, _ = hide_special(att, self._unit_special, causal=self.result.is_causal)
        return np.asarray(att, dtype=np.float32)

    @cached_property
    def _rollout(self) -> np.ndarray:
        return derived.get((self.key, "rollout"), lambda: rollout(self.result.attentions))

    def layer(self, layer: int) -> np.ndarray:
        """Every head of one layer, ``(heads, n, n)`` (rollout has no heads: raw attention then)."""
        return self.apply(self._weights(self.result.attentions[layer], layer))

    def rollout_layers(self) -> np.ndarray:
        """Rollout through each layer, ``(layers, n, n)``."""
        return self.apply(self._rollout)

    def matrix(self, layer: int, head: int | None) -> tuple[np.ndarray, str]:
        """One matrix and its title: a head, the mean of heads (``head=None``), or the rollout to ``layer``."""
        if self.options.rollout:
            return self.apply(self._rollout[layer]), f"Rollout through layer {layer} (heads averaged)"
        if head is None:
            return self.apply(self._weights(self.result.attentions[layer], layer).mean(axis=0)), \
                f"Layer {layer} · Mean of heads"
        return self.apply(self._weights(self.result.attentions[layer, head], (layer, head))), \
            f"Layer {layer} · Head {head}"

    def all_layers(self) -> np.ndarray:
        """``(layers, heads, n, n)`` for the whole model (token focus, overview, atlas)."""
        return self.apply(self._weights(self.result.attentions, slice(None)))

    def focus(self, unit: int) -> tuple[np.ndarray, np.ndarray]:
        """For the unit shown at position ``unit``: ``(looks, looked_at)``, each ``(layers, n)``, heads
        averaged: ``looks[l]`` is where it attends in layer ``l`` (its row), ``looked_at[l]`` how much
        each unit shown attends to it (its column). In Rollout mode, the rollout through each layer."""
        if self.options.rollout:
            rolled = self.rollout_layers()
            return rolled[:, unit, :], rolled[:, :, unit]
        if self.is_raw:  # slice first: no float32 copy of the whole model
            att = self.result.attentions
            return as_float32(att[:, :, unit, :]).mean(axis=1), as_float32(att[:, :, :, unit]).mean(axis=1)
        att = self.all_layers()
        return att[:, :, unit, :].mean(axis=1), att[:, :, :, unit].mean(axis=1)
