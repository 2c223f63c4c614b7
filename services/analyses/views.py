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

from ..errors import N_
from .. import ondemand
from ..result import DENSE_CELLS, AttentionResult, as_float32, pool
from ..store.memory import memory
from .kinds import PAIR_FILTERS, OnDemandMaps, analysis_defined, attention_of, default_kind, pair_filters_available, value_norms_for
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
    drop_first: bool = False  # the first token (an attention sink in most LLMs) left out, rows renormalised

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
        if self.drop_first:
            parts.append("first token left out, rows renormalised")
        return " · ".join(parts)


# Long texts (results that do not hold every map: ``AttentionResult.dense`` is False) are read in chunks
# of query rows, each row exact (the softmax over the whole row), never more than ``ROW_BUDGET`` floats.
ROW_BUDGET = 1 << 22
LONG_ROLLOUT = N_("Rollout multiplies every layer's whole {n} × {n} map through the layers: too costly for a "
                  "text this long. With this model it works up to {limit} tokens; use Raw or a shorter text.")
LONG_MERGE = N_("Merging sub-words into words needs every layer's whole map: with this model it works up to "
                "{limit} tokens. Turn it off to see this text token by token.")


def dense_limit(layers: int, heads: int) -> int:
    """The longest text whose every map a result of ``layers`` x ``heads`` holds at once (``DENSE_CELLS``)."""
    return int((DENSE_CELLS // max(1, layers * heads)) ** 0.5)


def drop_first_token(att: np.ndarray) -> np.ndarray:
    """``(..., queries, keys)`` float32 with the first key left out (set to 0) and each row renormalised to
    sum to 1 (a row that saw only the first token stays 0)."""
    att = np.array(att, dtype=np.float32)
    att[..., 0] = 0.0
    mass = att.sum(axis=-1, keepdims=True)
    return np.where(mass > 0, att / np.where(mass > 0, mass, 1.0), 0.0).astype(np.float32)


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

    @property
    def nbytes(self) -> int:
        """About the bytes it holds (``Memory.derived`` keeps axes per analysis and counts them)."""
        words = sum(64 + len(t) for t in self.tokens) + sum(64 + len(t) for t in self.labels)
        return int(words + self.special.nbytes + self.kept.nbytes + 40 * (len(self.token_index) + len(self.segments)))

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
        return not (o.rollout or o.value_norm or o.hide_special or o.merge_words or o.drop_first or self.pair)

    @property
    def long(self) -> bool:
        """Whether the maps are computed when asked (a long recorded text): then the views read rows,
        tiles and pooled pictures (``picture``), never the whole array."""
        return isinstance(self.kv.attentions, OnDemandMaps)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(layers, heads, queries, keys)`` of this kind's raw attention."""
        return tuple(int(n) for n in self.kv.attentions.shape)

    @property
    def long_missing(self) -> tuple[str, dict]:
        """Why the switches cannot be shown for this long text (a message id and its values), or ("", {})."""
        if not self.long:
            return "", {}
        layers, heads, n, _k = self.shape
        limit = dense_limit(layers, heads)
        if self.options.rollout:
            return LONG_ROLLOUT, {"n": f"{n:,}", "limit": f"{limit:,}"}
        if self.options.merge_words:
            return LONG_MERGE, {"limit": f"{limit:,}"}
        return "", {}

    def without_rollout(self) -> "View":
        """The same result and switches in Raw mode (views of single heads: rollout has none)."""
        if not self.options.rollout:
            return self
        return View(self.result, ViewOptions(False, self.options.hide_special, self.options.merge_words,
                                             drop_first=self.options.drop_first), self.key, self.kind, self.pair)

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
        att = as_float32(att) if not self.options.value_norm else weighted_by_value_norm(att, self._norms[0][layers])[1]
        return drop_first_token(att) if self.options.drop_first else att

    def value_row_sums(self, layer: int) -> np.ndarray:
        """``(heads, queries)``: sum over keys of ``α_ij ‖f(x_j)‖`` for each query of each head of a layer,
        so an unnormalised weight is the shown (renormalised) one times its row's sum (for the hover)."""
        norms = self._norms[0][layer]
        if self.options.drop_first:
            norms = np.array(norms, dtype=np.float32)
            norms[:, 0] = 0.0
        return np.einsum("hqk,hk->hq", as_float32(self.kv.attentions[layer]), norms)

    # --- the two sides --------------------------------------------------------------------------
    def _axis(self, side: str) -> _Axis:
        r, kv, o = self.result, self.kv, self.options
        tokens, special = (kv.query_tokens, kv.query_special) if side == "rows" else (kv.key_tokens, kv.key_special)
        on_source = self.kind == "encoder" or (side == "cols" and self.kind == "cross")
        words = (r.word_ids, r.segment_ids) if on_source else (None, None)
        # a decoder-only model's sentence pair: its sentences are the result's own (the pair filters need them)
        segments = r.segment_ids if not r.is_encoder_decoder else words[1]
        # remembered per analysis: a 4,096-token text's labels cost ~20 ms a request (display_token a token)
        return memory().derived.get_or_compute(
            (self.key, "axis", self.kind, side, o.merge_words, o.hide_special),
            lambda: _Axis(tokens, special, words[0], segments, o.merge_words, o.hide_special))

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
        if self.long:  # a column needs every row of every head: the rows only (the view says so)
            return self.long_focus(unit), None
        if self.is_raw:  # slice first: no float32 copy of the whole model
            att = self.kv.attentions
            looks = as_float32(att[:, :, unit, :]).mean(axis=1)
            return looks, (as_float32(att[:, :, :, unit]).mean(axis=1) if self.square else None)
        att = self.all_layers()
        return att[:, :, unit, :].mean(axis=1), (att[:, :, :, unit].mean(axis=1) if self.square else None)

    # --- long texts: exact rows, tiles and pooled pictures, in chunks of rows -----------------------
    def _raw_rows(self, layer: int, head: int, tokens: np.ndarray) -> np.ndarray:
        """Rows ``tokens`` of one head, over every key, float32, exact (the whole row's softmax)."""
        att = self.kv.attentions
        if isinstance(att, OnDemandMaps):
            return self.result.rows(layer, head, tokens)
        return as_float32(att[layer, head][tokens])

    def shown_rows(self, layer: int, head: int | None, units) -> np.ndarray:
        """The rows at positions ``units`` of the matrix this view shows (one head, or the mean of the heads
        for ``head=None``), every column shown: ``(len(units), len(col_labels))`` float32, each exact, with
        the switches applied as ``matrix`` applies them (value norm and the first token left out head by
        head, then the mean, then special tokens hidden and the pair filter). For any length: it reads
        only these rows (rollout and merged sub-words need whole maps: ``matrix``)."""
        units = np.asarray(units, dtype=np.int64).reshape(-1)
        if self.options.rollout or self.rows.groups is not None or self.cols.groups is not None:
            return self.matrix(layer, head)[0][units]
        tokens = self.rows.kept[units]
        heads = range(self.shape[1]) if head is None else [int(head)]
        total = None
        for h in heads:
            w = self._raw_rows(layer, h, tokens)
            if self.options.value_norm:
                w = w * self._norms[0][layer, h][None, :]
                mass = w.sum(axis=-1, keepdims=True)
                w = np.where(mass > 0, w / np.where(mass > 0, mass, 1.0), 0.0)
            if self.options.drop_first:
                w = drop_first_token(w)
            total = w if total is None else total + w
        w = (total / len(heads)).astype(np.float32)
        rows, cols = self.rows, self.cols
        if rows.hidden or cols.hidden:
            w = w[:, cols.kept]
            mass = w.sum(axis=-1, keepdims=True)
            if self.square:  # as hide_special: a row with no mass left spreads over the kept keys it can see
                seen = (cols.kept[None, :] <= tokens[:, None]) if self.kv.causal else np.ones_like(w, dtype=bool)
                even = seen / np.maximum(seen.sum(axis=-1, keepdims=True), 1)
            else:
                even = np.full_like(w, 1.0 / max(len(cols.kept), 1))
            w = np.where(mass > 0, w / np.where(mass > 0, mass, 1.0), even).astype(np.float32)
        if self.pair:
            query_segment, key_segment = PAIR_FILTERS[self.pair]
            keep_rows = np.array([rows.segments[u] == query_segment for u in units], dtype=bool)
            keep_cols = np.array([s == key_segment for s in cols.segments], dtype=bool)
            w = np.where(keep_rows[:, None] & keep_cols[None, :], w, 0.0).astype(np.float32)
        return w

    def picture(self, layer: int, head: int | None, block: int, how: str = "max",
                region: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The matrix shown (``shown_rows``), or its part ``region`` = (first row, end row, first column, end
        column) in units shown, pooled in ``block`` x ``block`` cells: each cell the largest (``how="max"``)
        or the mean weight of its block (edge blocks smaller), exact; ``block=1`` is the exact tile.
        Read in chunks of rows: memory O(chunk x columns) whatever the length. Remembered per analysis."""
        n_rows, n_cols = len(self.rows.kept), len(self.cols.kept)
        r0, r1, c0, c1 = region if region is not None else (0, n_rows, 0, n_cols)
        r0, c0 = max(0, int(r0)), max(0, int(c0))
        r1, c1 = max(r0 + 1, min(n_rows, int(r1))), max(c0 + 1, min(n_cols, int(c1)))
        b = max(1, int(block))
        o = self.options
        memo = (self.key, "picture", self.kind, self.pair, o.value_norm, o.hide_special, o.drop_first, layer, head,
                b, how, (r0, r1, c0, c1))

        def compute() -> np.ndarray:
            if (self.long and self.is_raw and head is not None and (r0, r1, c0, c1) == (0, n_rows, 0, n_cols)):
                return self.result.pooled(layer, head, b, how)  # the fast path: only the keys each row sees
            step = max(b, (ROW_BUDGET // max(1, n_cols)) // b * b)
            parts = [pool(self.shown_rows(layer, head, np.arange(s, min(r1, s + step)))[:, c0:c1], b, how)
                     for s in range(r0, r1, step)]
            return np.concatenate(parts, axis=0)

        if self.key is None:
            return compute()
        return memory().derived.get_or_compute(memo, compute)

    def pictures(self, layer: int, block: int, how: str = "max") -> np.ndarray:
        """Every head of a layer pooled (``picture`` of each): ``(heads, rows, cols)`` float32."""
        if self.long and self.is_raw:
            memo = (self.key, "layer-picture", self.kind, layer, block, how)
            compute = lambda: self.result.pooled(layer, None, block, how)  # noqa: E731
            return compute() if self.key is None else memory().derived.get_or_compute(memo, compute)
        return np.stack([self.picture(layer, h, block, how) for h in range(self.shape[1])])

    def long_focus(self, unit: int) -> np.ndarray:
        """``(layers, columns)``: where the row unit ``unit`` looks in each layer, heads averaged, exact."""
        return np.stack([self.shown_rows(layer, None, [unit])[0] for layer in range(self.shape[0])])

    # --- exact values for the hover (issue 18: "hover always reports exact weights") --------------------
    def _float32_source(self) -> bool:
        """Whether the raw maps can be read as float32 from the kept queries and keys (``exact_*``)."""
        r = self.result
        return not self.options.rollout and r.recorded and not r.is_encoder_decoder and not self.long

    def exact_matrix(self, layer: int, head: int | None) -> np.ndarray:
        """The matrix ``matrix(layer, head)`` shows, ``(rows, columns)`` float32, for the hover: the same
        switches applied the same way (``_weights`` then ``apply``), but read from float32 maps where the
        result keeps the queries and keys (a recorded result holds its whole maps as float16 only): the
        weights as the model computes them, not rounded to float16. Rollout, and results that hold only
        their maps (encoder-decoder models), give ``matrix`` itself."""
        if not self._float32_source():
            return self.matrix(layer, head)[0]
        recipe = self.result.recipe(layer)
        if head is None:
            return self.apply(self._weights(ondemand.layer_maps(recipe), layer).mean(axis=0))
        return self.apply(self._weights(ondemand.head(recipe, int(head)), (layer, int(head))))

    def exact_layer(self, layer: int) -> np.ndarray:
        """``layer(layer)``, ``(heads, rows, columns)`` float32, read as ``exact_matrix`` reads a head."""
        if not self._float32_source():
            return self.layer(layer)
        return self.apply(self._weights(ondemand.layer_maps(self.result.recipe(layer)), layer))
