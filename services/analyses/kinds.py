"""Kinds of attention in one result, sentence-pair filters, and which analysis is defined for which kind.

Pure Python + numpy over an ``AttentionResult``: no model, no Dash. What the views ask (issue 13)::

    kinds_available(r)                  # ["encoder"] (BERT family), ["decoder"] (GPT-2 family),
                                        # ["encoder", "decoder", "cross"] (BART, T5, Marian ...)
    v = attention_of(r, "cross")        # KindView: a named tuple
    att, q_tokens, k_tokens, q_special, k_special, causal = v
    v.attentions.shape                  # (layers, heads, tgt, src): target tokens on rows, source on columns
    analysis_defined("rollout", "cross")    # (False, "Rollout multiplies ...")
    block, rows, cols = pair_block(r.attentions, r.segment_ids, "A→B")   # sentence A's queries, B's keys

Kinds
-----
- ``encoder``: self-attention over the text an encoder reads (BERT's attention; an encoder-decoder
  model's encoder over the source). Both ways.
- ``decoder``: causal self-attention (GPT-2's attention; an encoder-decoder model's decoder over the
  target). The upper triangle is zero.
- ``cross``: an encoder-decoder model's decoder attending to the encoder's output: target tokens
  (queries, rows) over source tokens (keys, columns). Not square.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import N_
from ..result import AttentionResult, AttentionTooLarge, as_float32
from .heads import ALL_METRICS, METRICS  # noqa: F401 - METRICS: the text's own metrics

KINDS = ("encoder", "decoder", "cross")
KIND_LABELS = {
    "encoder": "Encoder self-attention",
    "decoder": "Decoder self-attention",
    "cross": "Cross-attention (target → source)",
}
KIND_HELP = {
    "encoder": "How each token of the source text attends to every token of the same text.",
    "decoder": "How each token of the target attends to itself and the target tokens before it (causal: never "
               "to later ones).",
    "cross": "How each target token (rows) attends to the source tokens (columns): where the model looks in "
             "the source while it writes each target token.",
}


class KindView(NamedTuple):
    """One kind of attention of a result, with the tokens on each side."""

    attentions: np.ndarray  # (layers, heads, queries, keys) float16: rows = queries, each summing to 1
    query_tokens: list[str]
    key_tokens: list[str]
    query_special: np.ndarray  # bool (queries,)
    key_special: np.ndarray  # bool (keys,)
    causal: bool


class OnDemandMaps:
    """A recorded result's ``(layers, heads, n, n)`` maps for one that is too long to hold them
    (``AttentionResult.dense`` False): ``shape`` and ``ndim`` answer at once; ``[layer]``, ``[layer, head]``
    and ``[layer, head, queries]`` are computed exactly on demand (float32: ``result.layer``, ``head``,
    ``rows``); anything asking for every map raises ``AttentionTooLarge`` as ``result.attentions`` does."""

    def __init__(self, result: AttentionResult) -> None:
        self.result = result
        self.shape = (result.num_layers, result.num_heads, result.seq_len, result.seq_len)
        self.ndim = 4
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        whole = (int, np.integer)
        if len(index) == 1 and isinstance(index[0], whole):
            return self.result.layer(int(index[0]))
        if len(index) == 2 and all(isinstance(i, whole) for i in index):
            return self.result.head(int(index[0]), int(index[1]))
        if len(index) == 3 and all(isinstance(i, whole) for i in index[:2]):
            queries = np.arange(self.shape[2])[index[2]]
            return self.result.rows(int(index[0]), int(index[1]), queries)
        return self.result.attentions  # raises AttentionTooLarge, naming the accessors

    def __array__(self, dtype=None, copy=None):
        raise AttentionTooLarge(f"{self.shape[2]:,} tokens: every map at once is too many to hold; "
                                "this view asks for them all")


def maps_of(result: AttentionResult):
    """The result's own (encoder or decoder-only) maps: the array when it holds them, else ``OnDemandMaps``."""
    return result.attentions if result.dense else OnDemandMaps(result)


def kinds_available(result: AttentionResult) -> list[str]:
    """The kinds of attention ``result`` holds, the one views show first at the front."""
    if result.is_encoder_decoder and result.decoder_attentions is not None and result.cross_attentions is not None:
        return list(KINDS)
    return ["decoder" if result.is_causal else "encoder"]


def default_kind(result: AttentionResult) -> str:
    return kinds_available(result)[0]


def _check_kind(result: AttentionResult, kind: str | None) -> str:
    kind = default_kind(result) if kind is None else kind
    available = kinds_available(result)
    if kind not in available:
        if kind not in KINDS:
            raise ValueError(f"The kind of attention must be one of {', '.join(KINDS)}, not {kind!r}.")
        if kind == "cross":
            raise ValueError("This result has no cross-attention: only encoder-decoder models (BART, T5, Marian ...) "
                             "attend from a target to a source.")
        raise ValueError(f"This result has no {kind} attention: its model is "
                         f"{'a decoder (causal)' if result.is_causal else 'an encoder'}, so its one kind is "
                         f"“{available[0]}”.")
    return kind


def attention_of(result: AttentionResult, kind: str | None = None) -> KindView:
    """``(attentions, query_tokens, key_tokens, query_special, key_special, causal)`` for one kind
    (``None``: the result's first kind). Raises ``ValueError`` (plain words) for a kind it lacks."""
    kind = _check_kind(result, kind)
    source = (list(result.tokens), np.asarray(result.special_mask, dtype=bool))
    if not result.is_encoder_decoder:
        return KindView(maps_of(result), source[0], source[0], source[1], source[1], bool(result.is_causal))
    if kind == "encoder":
        return KindView(maps_of(result), source[0], source[0], source[1], source[1], bool(result.is_causal))
    target = (list(result.target_tokens or []), np.asarray(result.target_special_mask, dtype=bool))
    if kind == "decoder":
        return KindView(result.decoder_attentions, target[0], target[0], target[1], target[1], True)
    return KindView(result.cross_attentions, target[0], source[0], target[1], source[1], False)


def dims_of(result: AttentionResult) -> tuple[int, int, int]:
    """``(layers, heads, tokens)``: the most of each over the result's kinds (an encoder-decoder model's
    decoder may have more layers than its encoder, its target more tokens than its source): what the
    page's controls must reach."""
    shapes = [attention_of(result, kind).attentions.shape for kind in kinds_available(result)]
    return (max(s[0] for s in shapes), max(s[1] for s in shapes), max(max(s[2], s[3]) for s in shapes))


def value_norms_for(result: AttentionResult, kind: str | None = None) -> tuple[np.ndarray | None, str]:
    """The value norms of one kind's keys, ``(layers, heads, keys)`` float32, and "" ; or None and the
    reason in plain words. For cross-attention the keys (and values) are the source tokens."""
    kind = _check_kind(result, kind)
    if not result.is_encoder_decoder or kind == "encoder":
        return result.value_norms, result.value_norms_reason
    norms = result.decoder_value_norms if kind == "decoder" else result.cross_value_norms
    return norms, ("" if norms is not None else result.target_value_norms_reason
                   or "not available for this model's decoder.")


# ----------------------------------------------------------------------------------- sentence pairs

PAIR_FILTERS = {"A→A": (0, 0), "A→B": (0, 1), "B→A": (1, 0), "B→B": (1, 1)}
PAIR_FILTER_HELP = {
    "A→A": "Tokens of sentence A attending to sentence A.",
    "A→B": "Tokens of sentence A attending to sentence B.",
    "B→A": "Tokens of sentence B attending to sentence A.",
    "B→B": "Tokens of sentence B attending to sentence B.",
}
_ALIASES = {name.replace("→", s): name for name in PAIR_FILTERS for s in ("->", "", ">", "2")}


def pair_filter_name(which: str | tuple[int, int]) -> str:
    """``"A→B"`` for ``"A→B"``, ``"A->B"``, ``"AB"`` or ``(0, 1)``; ``ValueError`` otherwise."""
    if isinstance(which, tuple):
        found = next((name for name, segs in PAIR_FILTERS.items() if segs == which), None)
    else:
        text = str(which).strip().upper().replace(" ", "")
        found = text if text in PAIR_FILTERS else _ALIASES.get(text)
    if found is None:
        raise ValueError(f"The pair filter must be one of {', '.join(PAIR_FILTERS)}, not {which!r}.")
    return found


def has_pair(segment_ids) -> bool:
    """Whether the tokens come from two sentences (some token in segment 0, some in segment 1)."""
    segments = set(segment_ids)
    return 0 in segments and 1 in segments


def pair_filters_available(result: AttentionResult, kind: str | None = None) -> list[str]:
    """The pair filters for ``result`` (and kind): all four for a sentence pair's own attention (an
    encoder's, a decoder's, or an encoder-decoder model's encoder), none otherwise."""
    kind = _check_kind(result, kind)
    if result.is_encoder_decoder and kind != "encoder":
        return []
    return list(PAIR_FILTERS) if has_pair(result.segment_ids) else []


def pair_indices(segment_ids, segment: int) -> np.ndarray:
    """The token indices of one sentence (0 = A, 1 = B), in order; special tokens (segment None) excluded."""
    return np.array([i for i, s in enumerate(segment_ids) if s == segment], dtype=np.intp)


def pair_block(attentions: np.ndarray, segment_ids,
               which: str | tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sub-block of ``attentions`` (``(..., seq, seq)``: one head, a layer or the whole model) for
    one pair filter, e.g. ``"A→B"``: rows = the queries of sentence A, columns = the keys of sentence B.

    Returns ``(block, rows, cols)``: ``block[..., i, j] == attentions[..., rows[i], cols[j]]``, in the
    input's dtype, raw (not renormalised: a row's sum is the share of that query's attention that goes
    to the other sentence). Special tokens ([CLS], [SEP] ...) belong to neither sentence and are left
    out. ``ValueError`` when the tokens are not a sentence pair.
    """
    name = pair_filter_name(which)
    att = np.asarray(attentions)
    segment_ids = list(segment_ids)
    if att.ndim < 2 or att.shape[-1] != att.shape[-2] or att.shape[-1] != len(segment_ids):
        raise ValueError(f"pair_block needs (..., seq, seq) attention with one segment id per token, got "
                         f"shape {att.shape} and {len(segment_ids)} segment ids")
    if not has_pair(segment_ids):
        raise ValueError("These tokens are one text, not a sentence pair: there is no sentence B to filter by.")
    query_segment, key_segment = PAIR_FILTERS[name]
    rows, cols = pair_indices(segment_ids, query_segment), pair_indices(segment_ids, key_segment)
    return att[..., rows[:, None], cols[None, :]], rows, cols


def pair_block_of(result: AttentionResult, which: str | tuple[int, int], layer: int | None = None,
                  head: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pair_block`` on a result's own (encoder) attention: the whole model, one layer or one head."""
    att = result.attentions
    if layer is not None:
        att = att[layer] if head is None else att[layer, head]
    return pair_block(att, result.segment_ids, which)


# ----------------------------------------------------------------------------------- analyses by kind

_ROLLOUT_CROSS = N_("Rollout is not defined for cross-attention: it multiplies each layer's square attention (tokens "
                  "to the same tokens) by the layers below it, and cross-attention maps target tokens to source "
                  "tokens, with every decoder layer reading the encoder's last output, so there is no chain of "
                  "layers to follow. Use the raw view.")
_PAIR_NOT_SOURCE = N_("Sentence-pair filters are for the attention within a sentence pair (an encoder's, or an "
                    "encoder-decoder model's encoder over a source pair).")
_POSITIONS_CROSS = ("not defined for cross-attention: a query (target token) and a key (source token) are in "
                    "different texts, so their positions cannot be compared.")

# analysis -> kind -> "" when defined, else why not (plain words). Names match the views; "atlas"
# is defined for cross-attention for the metrics ``atlas_metrics(kind)`` gives.
ANALYSES: dict[str, dict[str, str]] = {
    "grid": {"encoder": "", "decoder": "", "cross": ""},
    "heatmap": {"encoder": "", "decoder": "", "cross": ""},
    "arcs": {"encoder": "", "decoder": "", "cross": ""},  # cross: between two rows, target above source
    "overview": {"encoder": "", "decoder": "", "cross": ""},
    "rollout": {"encoder": "", "decoder": "", "cross": _ROLLOUT_CROSS},  # decoder: stays causal
    "atlas": {"encoder": "", "decoder": "", "cross": ""},
    "focus": {"encoder": "", "decoder": "", "cross": ""},  # cross: a target token's row, a source token's column
    "hide_special": {"encoder": "", "decoder": "", "cross": ""},
    "merge_words": {"encoder": "", "decoder": "", "cross": ""},
    "value_norms": {"encoder": "", "decoder": "", "cross": ""},  # where the model's layout allows: value_norms_for
    "inside_head": {"encoder": "", "decoder": "", "cross": ""},  # where the layout allows: InsideHead.reason
    "pair_filters": {"encoder": "", "decoder": "", "cross": _PAIR_NOT_SOURCE},
}
_SQUARE_ONLY_METRICS = ("distance", "local", "self", "previous", "next", "sink", "induction")


def analysis_defined(analysis: str, kind: str) -> tuple[bool, str]:
    """Whether ``analysis`` (a key of ``ANALYSES``) is defined for ``kind``, and if not, why."""
    if analysis not in ANALYSES:
        raise ValueError(f"Unknown analysis {analysis!r}; known: {', '.join(ANALYSES)}.")
    if kind not in KINDS:
        raise ValueError(f"The kind of attention must be one of {', '.join(KINDS)}, not {kind!r}.")
    reason = ANALYSES[analysis][kind]
    return reason == "", reason


def atlas_metrics(kind: str) -> tuple[str, ...]:
    """The per-head metrics (``heads.ALL_METRICS``) defined for ``kind``: all of them for square attention;
    for cross-attention only ``entropy`` and ``delimiter`` (see ``metric_reason``)."""
    if kind not in KINDS:
        raise ValueError(f"The kind of attention must be one of {', '.join(KINDS)}, not {kind!r}.")
    return tuple(m for m in ALL_METRICS if kind != "cross" or m not in _SQUARE_ONLY_METRICS)


def metric_reason(metric: str, kind: str) -> str:
    """"" when ``metric`` is defined for ``kind``, else why not, in plain words."""
    if metric in atlas_metrics(kind):
        return ""
    name = {"distance": "Mean distance", "local": "The local-window share", "self": "Attention to the token itself",
            "previous": "Attention to the previous token", "next": "Attention to the next token",
            "sink": "The attention-sink score", "induction": "The induction score"}.get(metric, metric)
    return f"{name} is {_POSITIONS_CROSS}"


def rectangular_metrics(attentions: np.ndarray, key_delimiters) -> dict[str, np.ndarray]:
    """``entropy`` and ``delimiter`` of every head of a (possibly rectangular) attention
    ``(layers, heads, queries, keys)``, each ``(layers, heads)`` float64, averaged over queries:
    ``entropy`` normalised by ``log(keys)`` (0 = all on one key, 1 = even over every key; every key is
    visible, as in cross-attention), ``delimiter`` the mass on the keys ``key_delimiters`` marks."""
    att = as_float32(np.asarray(attentions)).astype(np.float64)
    if att.ndim != 4:
        raise ValueError(f"rectangular_metrics needs (layers, heads, queries, keys) attention, got shape {att.shape}")
    delimiters = np.asarray(key_delimiters, dtype=bool)
    if delimiters.shape != (att.shape[-1],):
        raise ValueError("key_delimiters must have one entry per key")
    keys = att.shape[-1]
    plogp = np.where(att > 0, att * np.log(np.where(att > 0, att, 1.0)), 0.0)
    entropy = -plogp.sum(axis=-1) / np.log(keys) if keys > 1 else np.zeros(att.shape[:-1])
    return {"entropy": entropy.mean(axis=-1), "delimiter": att[..., delimiters].sum(axis=-1).mean(axis=-1)}
