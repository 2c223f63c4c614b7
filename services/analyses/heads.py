"""Per-head metrics and the head-type labels derived from them. Pure numpy: no model, no Dash.

``head_metrics`` measures every head of a model at once, ``head_labels`` names the pattern each head
follows (see ``THRESHOLDS``), ``LABEL_HELP`` explains the names to people, and ``metric_table``
makes rows for a sortable table::

    metrics = head_metrics(r.attentions, delimiter_mask(r.tokens, r.special_mask), causal=r.is_causal)
    rows = metric_table(metrics, head_labels(metrics))

``stream_head_metrics`` measures the same head by head from query-row chunks (``head_chunks``: one
head's rows as a result gives them, never the whole array), reporting progress after each head and
stopping between heads when asked (``Cancelled``): what the atlas uses at any length.
``induction_pattern`` and ``induction_scores`` give each head's induction score on a repeated
random-token probe, as TransformerLens's head detector defines the pattern.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache

import numpy as np

from ..errors import N_, Cancelled  # noqa: F401 - Cancelled: what ``step`` raises to stop a measurement
from ..result import as_float32
from .tokens import display_token, is_punctuation

METRICS = ("entropy", "distance", "local", "self", "previous", "next", "delimiter", "sink")
# Measured once per model on a probe (``induction_scores``), not on the text: NaN where not measured.
PROBE_METRICS = ("induction",)
ALL_METRICS = METRICS + PROBE_METRICS
SINK_TOKENS = 1  # the attention-sink score is the mass on this many first tokens (Xiao et al. 2023: the first)
CHUNK_ROWS = 256  # query rows read at once by the streamed metrics (256 x 4,096 float32 = 4 MB)

# A head gets the first label whose metric reaches its threshold, in this order; otherwise "mixed".
THRESHOLDS: dict[str, float] = {
    "induction": 0.4,  # 40% or more of the probe's second half looks where induction would (see induction_scores)
    "previous": 0.5,   # half or more of the attention on the token just before
    "next": 0.5,       # ... on the token just after
    "self": 0.5,       # ... on the token itself
    "sink": 0.5,       # ... on the first token (the attention sink of Xiao et al. 2023)
    "delimiter": 0.5,  # ... on special tokens and punctuation
    "entropy": 0.8,    # spread over most of the tokens it can see (1 = perfectly even)
    "local": 0.7,      # 70% or more within ``window`` tokens
}
_RULES = (
    ("induction", N_("induction")),
    ("previous", N_("previous-token")),
    ("next", N_("next-token")),
    ("self", N_("self")),
    ("sink", N_("sink")),
    ("delimiter", N_("delimiter sink")),
    ("entropy", N_("broad")),
    ("local", N_("local")),
)
LABELS = tuple(label for _, label in _RULES) + (N_("mixed"),)

LABEL_HELP: dict[str, str] = {
    "induction": N_("Completes repeats: on a random text shown twice, the second time it looks at the token that came "
                    "after the current token's first occurrence (an induction head, measured once per model)."),
    "sink": N_("Puts half or more of its attention on the first token, whatever it is (an attention sink, Xiao et al. "
               "2023): often a way of attending to nothing in particular."),
    "previous-token": N_("Mostly looks at the token just before: tracks word order."),
    "next-token": N_("Mostly looks at the token just after: peeks at what comes next."),
    "self": N_("Mostly looks at the token itself: keeps each token's own meaning."),
    "delimiter sink": N_("Mostly looks at punctuation and special tokens like [CLS] or [SEP]: often a resting place when nothing else matters."),
    "broad": N_("Spreads its attention over most of the text: gathers an overall picture."),
    "local": N_("Looks at a few nearby tokens: reads short phrases."),
    "mixed": N_("No single simple pattern: may do something more specific to the text."),
}


def delimiter_mask(tokens: Sequence[str], special_mask: Sequence[bool] | np.ndarray) -> np.ndarray:
    """True for special tokens and for tokens that are punctuation only (``.``, ``Ġ,``, ``。``, ``?`` ...).

    Punctuation means every character of the token as people read it (``display_token``) is in a
    Unicode punctuation category (P*).
    """
    special = np.asarray(special_mask, dtype=bool)
    if special.shape != (len(tokens),):
        raise ValueError("tokens and special_mask must have the same length")
    punctuation = np.array([is_punctuation(display_token(t)) for t in tokens], dtype=bool)
    return special | punctuation


# --- metrics -------------------------------------------------------------------------------------

def _diagonal_sums(att: np.ndarray, offsets: Sequence[int]) -> np.ndarray:
    """``(layers, heads, len(offsets))``: the sum of each head's diagonal ``k - q = offset``."""
    return np.stack(
        [as_float32(np.diagonal(att, offset=d, axis1=-2, axis2=-1)).sum(axis=-1) for d in offsets], axis=-1
    )


def _band_metrics(att: np.ndarray, window: int) -> dict[str, np.ndarray]:
    """Self, previous, next and local ratio, read from the diagonals near the main one only."""
    seq = att.shape[-1]
    offsets = sorted({-1, 0, 1, *range(-window, window + 1)})
    sums = dict(zip(offsets, np.moveaxis(_diagonal_sums(att, offsets), -1, 0)))
    neighbours = max(seq - 1, 1)  # queries that have a previous (or a next) token; none when seq == 1
    return {
        "self": sums[0] / seq,
        "previous": sums[-1] / neighbours,
        "next": sums[1] / neighbours,
        "local": sum(sums[d] for d in offsets if abs(d) <= window) / seq,
    }


def _plogp(p: np.ndarray) -> np.ndarray:
    """``p * ln p`` with ``0 ln 0 = 0`` and negatives clipped to 0, as ``analysis.entropy`` does."""
    p = np.clip(p, 0.0, None)
    with np.errstate(invalid="ignore", over="ignore"):
        return p * np.log(np.where(p > 0, p, 1.0))


@lru_cache(maxsize=1)
def _float16_cells() -> np.ndarray:
    """For every float16 bit pattern, ``(p, p ln p)`` as float32, packed into one 8-byte item."""
    p = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    return np.stack([p, _plogp(p)], axis=-1).view(np.float64)[:, 0]


def _cells(att: np.ndarray) -> np.ndarray:
    """``(heads, seq, 2 * seq)`` float32 for one layer ``(heads, seq, seq)``: each weight ``p``
    followed by its ``p ln p``.

    float16 input takes one table lookup per cell: the fast path, 3x quicker than converting to
    float32 and taking logs.
    """
    heads, seq, _ = att.shape
    if att.dtype == np.float16:
        packed = _float16_cells()[att.view(np.uint16)]
        return packed.view(np.float32).reshape(heads, seq, 2 * seq)
    p = as_float32(att)
    cells = np.empty((heads, seq, seq, 2), dtype=np.float32)
    cells[..., 0] = p
    cells[..., 1] = _plogp(p)
    return cells.reshape(heads, seq, 2 * seq)


def _dense_weights(seq: int, delimiters: np.ndarray, causal: bool) -> np.ndarray:
    """``(seq, 2 * seq, 3)``: per query, the weights that turn its row of cells into its share of the
    normalised entropy, mean distance and delimiter mass of the head (each already divided by ``seq``)."""
    idx = np.arange(seq)
    visible = (idx + 1) if causal else np.full(seq, seq)
    log_visible = np.log(visible.astype(np.float64))
    entropy_weight = np.divide(-1.0, seq * log_visible, out=np.zeros(seq), where=log_visible > 0)
    weights = np.zeros((seq, seq, 2, 3), dtype=np.float32)
    weights[:, :, 1, 0] = entropy_weight[:, None]
    weights[:, :, 0, 1] = np.abs(idx[:, None] - idx[None, :]) / seq
    weights[:, :, 0, 2] = delimiters[None, :] / seq
    return weights.reshape(seq, 2 * seq, 3)


def _layer_totals(layer_att: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(heads, 3)`` float64 for one layer: a batched product per query row keeps each float32 sum
    short (``2 * seq`` terms; one product over all cells would be ~100x less accurate at 512
    tokens), then the per-query results are added in float64."""
    per_query = np.matmul(_cells(layer_att).transpose(1, 0, 2), weights)  # (seq, heads, 3)
    return per_query.sum(axis=0, dtype=np.float64)


def _dense_metrics(att: np.ndarray, delimiters: np.ndarray, causal: bool) -> dict[str, np.ndarray]:
    """Entropy, mean distance and delimiter mass, for which every cell counts. One layer at a time
    to bound memory (at 512 tokens, 25 MB of cells per layer instead of 150 MB at once)."""
    weights = _dense_weights(att.shape[-1], delimiters, causal)
    totals = np.stack([_layer_totals(layer_att, weights) for layer_att in att])  # (layers, heads, 3)
    return {"entropy": totals[..., 0], "distance": totals[..., 1], "delimiter": totals[..., 2]}


def head_metrics(attentions: np.ndarray, delim_mask: Sequence[bool] | np.ndarray, window: int = 3,
                 causal: bool = False) -> dict[str, np.ndarray]:
    """Every head's metrics, each a ``(layers, heads)`` float array, averaged over queries:

    - ``entropy``: normalised entropy, as ``analysis.entropy(normalise=True, causal=causal)``:
      0 = all on one token, 1 = spread evenly over the tokens each query can see;
    - ``distance``: attention-weighted ``|query - key|``, as ``analysis.mean_distance``;
    - ``local``: mass within ``window`` tokens, as ``analysis.local_ratio``;
    - ``self``: ``A[q, q]``; ``previous``: ``A[q, q-1]`` over queries ``q >= 1``; ``next``:
      ``A[q, q+1]`` over queries ``q <= seq-2`` (0 for a single token);
    - ``delimiter``: mass on the keys ``delim_mask`` marks (see ``delimiter_mask``).

    ``attentions`` is ``(layers, heads, seq, seq)``, float16 (the fast path: what
    ``AttentionResult`` stores) or float32. All heads are measured together, and entropy, distance
    and delimiter mass in one pass over the cells rather than by calling the ``analysis`` functions
    one by one (the tests check the results agree): about 60 ms for 6 x 12 heads at 512 tokens on
    a 2-core machine, about 200 ms for float32 input.
    """
    att = np.asarray(attentions)
    if att.ndim != 4 or att.shape[-1] != att.shape[-2]:
        raise ValueError(f"head_metrics needs (layers, heads, seq, seq) attention, got shape {att.shape}")
    delimiters = np.asarray(delim_mask, dtype=bool)
    if delimiters.shape != (att.shape[-1],):
        raise ValueError("delim_mask must have one entry per token")
    if window < 0:
        raise ValueError("window must be 0 or more")
    metrics = {**_dense_metrics(att, delimiters, causal), **_band_metrics(att, window),
               "sink": _sink_scores(att, causal)}
    return {name: metrics[name].astype(np.float64) for name in METRICS}


def sink_queries(seq: int, causal: bool, k: int = SINK_TOKENS) -> np.ndarray:
    """The queries the attention-sink score averages over: those that can see a token beyond the first
    ``k`` (in a decoder, every query from ``k`` on: query 0 sees only the first token, so its weight 1
    there says nothing), all of them for an encoder; all of them when none can."""
    if causal and seq > k:
        return np.arange(k, seq)
    return np.arange(seq)


def _sink_scores(att: np.ndarray, causal: bool, k: int = SINK_TOKENS) -> np.ndarray:
    """``(layers, heads)``: the weight on the first ``k`` tokens, averaged over ``sink_queries``."""
    picked = sink_queries(att.shape[-1], causal, k)
    return as_float32(att[..., picked, :k]).sum(axis=-1, dtype=np.float64).mean(axis=-1)


# --- streamed, head by head ----------------------------------------------------------------------

def head_chunks(read_rows: Callable[[int, int], np.ndarray], seq: int, chunk: int = CHUNK_ROWS
                ) -> Iterator[tuple[int, np.ndarray]]:
    """``(q0, rows)`` for one head: ``read_rows(q0, q1)`` gives rows ``q0:q1`` as ``(q1 - q0, keys)``
    float32, ``chunk`` rows at a time."""
    for q0 in range(0, seq, chunk):
        yield q0, read_rows(q0, min(seq, q0 + chunk))


def measure_head(chunks: Iterable[tuple[int, np.ndarray]], seq: int, delimiters: np.ndarray, window: int = 3,
                 causal: bool = False, sink_tokens: int = SINK_TOKENS) -> dict[str, float]:
    """One head's ``METRICS`` (the same definitions as ``head_metrics``) from its query rows, given as
    ``(q0, rows)`` chunks covering every query once: memory is one chunk, whatever the length."""
    delimiters = np.asarray(delimiters, dtype=bool)
    if delimiters.shape != (seq,):
        raise ValueError("delimiters must have one entry per token")
    keys = np.arange(seq)
    offsets = np.arange(-window, window + 1)
    totals = dict.fromkeys(("entropy", "distance", "local", "self", "previous", "next", "delimiter", "sink"), 0.0)
    sink_from = int(sink_queries(seq, causal, sink_tokens)[0]) if seq else 0
    seen = 0
    for q0, rows in chunks:
        rows = as_float32(rows)
        count = rows.shape[0]
        q = np.arange(q0, q0 + count)
        visible = (q + 1) if causal else np.full(count, seq)
        log_visible = np.log(visible.astype(np.float64))
        row_entropy = -_plogp(rows).sum(axis=-1, dtype=np.float64)
        totals["entropy"] += float(np.divide(row_entropy, log_visible, out=np.zeros(count),
                                             where=log_visible > 0).sum())
        totals["distance"] += float((rows * np.abs(q[:, None] - keys[None, :]).astype(np.float32)).sum(dtype=np.float64))
        totals["delimiter"] += float(rows[:, delimiters].sum(dtype=np.float64))
        band = q[:, None] + offsets[None, :]
        inside = (band >= 0) & (band < seq)
        picked = np.where(inside, np.take_along_axis(rows, np.clip(band, 0, seq - 1), axis=1), 0.0)
        totals["local"] += float(picked.sum(dtype=np.float64))
        totals["self"] += float(picked[:, window].sum(dtype=np.float64))
        if window >= 1:
            totals["previous"] += float(picked[:, window - 1].sum(dtype=np.float64))
            totals["next"] += float(picked[:, window + 1].sum(dtype=np.float64))
        else:
            totals["previous"] += float(rows[q >= 1, q[q >= 1] - 1].sum(dtype=np.float64))
            totals["next"] += float(rows[q <= seq - 2, q[q <= seq - 2] + 1].sum(dtype=np.float64))
        sinks = q >= sink_from
        totals["sink"] += float(rows[sinks, :sink_tokens].sum(dtype=np.float64))
        seen += count
    if seen != seq:
        raise ValueError(f"the chunks gave {seen} query rows, not {seq}")
    neighbours = max(seq - 1, 1)
    sink_count = max(1, seq - sink_from)
    return {"entropy": totals["entropy"] / seq, "distance": totals["distance"] / seq, "local": totals["local"] / seq,
            "self": totals["self"] / seq, "previous": totals["previous"] / neighbours,
            "next": totals["next"] / neighbours, "delimiter": totals["delimiter"] / seq,
            "sink": totals["sink"] / sink_count}


def stream_head_metrics(head_rows: Callable[[int, int], Iterable[tuple[int, np.ndarray]]], layers: int, heads: int,
                        seq: int, delim_mask: Sequence[bool] | np.ndarray, window: int = 3, causal: bool = False,
                        step: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Every head's ``METRICS``, ``(layers, heads)`` float64 each, measured one head at a time:
    ``head_rows(layer, head)`` yields that head's ``(q0, rows)`` chunks (see ``head_chunks``).

    ``step(done, total)`` is called after each head (``done`` heads of ``total`` measured); it may raise
    ``Cancelled`` (or anything) to stop there: nothing is returned then."""
    if window < 0:
        raise ValueError("window must be 0 or more")
    delimiters = np.asarray(delim_mask, dtype=bool)
    out = {name: np.zeros((layers, heads)) for name in METRICS}
    total = layers * heads
    for layer in range(layers):
        for head in range(heads):
            measured = measure_head(head_rows(layer, head), seq, delimiters, window, causal)
            for name in METRICS:
                out[name][layer, head] = measured[name]
            if step is not None:
                step(layer * heads + head + 1, total)
    return out


def held_head_metrics(attentions: np.ndarray, delim_mask: Sequence[bool] | np.ndarray, window: int = 3,
                      causal: bool = False, step: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """``head_metrics`` of maps a result holds already, one layer at a time (the whole-array path: ~3x
    quicker than ``stream_head_metrics`` when the maps are at hand), calling ``step(done, total)`` after
    each layer's heads (it may raise ``Cancelled``)."""
    att = np.asarray(attentions)
    layers, count, seq = att.shape[0], att.shape[1], att.shape[-1]
    delimiters = np.asarray(delim_mask, dtype=bool)
    if att.ndim != 4 or att.shape[-2] != seq or delimiters.shape != (seq,) or window < 0:
        raise ValueError("held_head_metrics needs (layers, heads, seq, seq) attention and one delimiter flag a token")
    weights = _dense_weights(seq, delimiters, causal)  # once for every layer
    parts = []
    for layer in range(layers):
        one = att[layer:layer + 1]
        totals = _layer_totals(att[layer], weights)[None]  # (1, heads, 3)
        parts.append({"entropy": totals[..., 0], "distance": totals[..., 1], "delimiter": totals[..., 2],
                      **_band_metrics(one, window), "sink": _sink_scores(one, causal)})
        if step is not None:
            step((layer + 1) * count, layers * count)
    return {name: np.concatenate([p[name] for p in parts]).astype(np.float64) for name in METRICS}


def head_rows_of(result, kind: str | None = None, value_norms: np.ndarray | None = None, chunk: int = CHUNK_ROWS,
                 by_rows: bool = False) -> Callable[[int, int], Iterator[tuple[int, np.ndarray]]]:
    """``head_rows(layer, head)`` for ``stream_head_metrics`` over one kind of a result's self-attention
    (``"decoder"`` of an encoder-decoder model reads its decoder's maps; otherwise the result's own):
    each head as ``result.head`` gives it (read from the maps a short result holds, computed exactly from
    the queries and keys for a longer one), measured ``chunk`` rows at a time, so no more than one head is
    ever held; with ``by_rows``, a long result's rows are computed ``chunk`` at a time (``result.rows``).
    With ``value_norms`` ``(layers, heads, keys)``, each row is weighted by them and renormalised, as
    the value-norm mode shows it (``analyses.matrices.weighted_by_value_norm``)."""
    if kind == "decoder" and result.is_encoder_decoder:
        maps = result.decoder_attentions
        seq, whole = int(maps.shape[-1]), (lambda layer, head: maps[layer, head])
    else:
        # a long result's head computed whole (``result.head``: one head, n^2 float32, 64 MB at 4,096
        # tokens) is ~3x quicker than the same rows asked chunk by chunk; ``by_rows`` bounds memory instead
        seq, whole = result.seq_len, (None if by_rows and not result.dense else result.head)

    def head_rows(layer: int, head: int) -> Iterator[tuple[int, np.ndarray]]:
        if whole is not None:
            held = whole(layer, head)
            read = lambda q0, q1: held[q0:q1]  # noqa: E731
        else:
            read = lambda q0, q1: result.rows(layer, head, np.arange(q0, q1))  # noqa: E731
        for q0, rows in head_chunks(read, seq, chunk):
            rows = as_float32(rows)
            if value_norms is not None:
                weighted = rows * np.asarray(value_norms[layer, head], dtype=np.float32)[None, :]
                sums = weighted.sum(axis=-1, keepdims=True)
                rows = np.divide(weighted, sums, out=np.zeros_like(weighted), where=sums > 0)
            yield q0, rows

    return head_rows


# --- the induction probe -------------------------------------------------------------------------

def induction_pattern(token_ids: Sequence[int]) -> np.ndarray:
    """``(n, n)`` of 0/1, TransformerLens's induction detection pattern
    (``transformer_lens.head_detector.get_induction_head_detection_pattern``): query ``q`` should look at
    key ``k`` when the token before ``k`` is the same token as ``q``'s (at an earlier position ``k - 1 <
    q``), that is, at the token that FOLLOWED the current token's earlier occurrence. Lower triangular."""
    ids = np.asarray(token_ids).reshape(-1)
    n = ids.size
    duplicate = np.tril((ids[:, None] == ids[None, :]).astype(np.int8), k=-1)  # earlier occurrences, not itself
    pattern = np.zeros((n, n), dtype=np.int8)
    pattern[:, 1:] = duplicate[:, :-1]  # shifted one key to the right
    return np.tril(pattern)


def induction_score(att: np.ndarray, pattern: np.ndarray) -> float:
    """One head's induction score: its attention mass on ``pattern``, averaged over the queries the
    pattern gives a target (on a probe repeated twice, the second half's). TransformerLens's "mul" score
    divides the same mass by every query instead (its best is about 1/2 on such a probe)."""
    relevant = np.asarray(pattern).any(axis=1)
    if not relevant.any():
        return 0.0
    mass = (as_float32(att)[relevant] * np.asarray(pattern)[relevant]).sum(axis=-1, dtype=np.float64)
    return float(mass.mean())


def induction_scores(layer_maps: Iterable[np.ndarray], token_ids: Sequence[int]) -> np.ndarray:
    """``(layers, heads)``: ``induction_score`` of every head, from each layer's ``(heads, n, n)`` maps
    over the probe ``token_ids``."""
    pattern = induction_pattern(token_ids)
    return np.array([[induction_score(head, pattern) for head in maps] for maps in layer_maps], dtype=np.float64)


# --- labels --------------------------------------------------------------------------------------

def head_labels(metrics: dict[str, np.ndarray]) -> np.ndarray:
    """One label per head, ``(layers, heads)`` of str: the first rule that holds, in this order:

    1. ``induction >= 0.4`` -> "induction" (measured on the model's probe; NaN or absent: not this rule)
    2. ``previous >= 0.5`` -> "previous-token"
    3. ``next >= 0.5`` -> "next-token"
    4. ``self >= 0.5`` -> "self"
    5. ``sink >= 0.5`` -> "sink"
    6. ``delimiter >= 0.5`` -> "delimiter sink"
    7. ``entropy >= 0.8`` -> "broad"
    8. ``local >= 0.7`` -> "local"
    9. otherwise "mixed".

    The thresholds live in ``THRESHOLDS``. Induction comes first: it is what a head does when a text
    repeats, shown on a probe, and on a text without repeats such a head often rests on the first token.
    Positional rules come next because they are the most specific: a previous-token head is also local,
    and one with 0.5 on the previous token cannot also put 0.5 elsewhere. "sink" (the first token, which
    is often a special token too) comes before "delimiter sink" so that a model's attention sink is named
    as such. "broad" is tested before "local" because on short texts (fewer than about
    ``2 * window + 1`` tokens) every key is within the window, so even an even spread is "local".
    """
    shape = np.shape(metrics[METRICS[0]])
    conditions = [np.nan_to_num(np.asarray(metrics.get(name, np.full(shape, np.nan)), dtype=np.float64), nan=-1.0)
                  >= THRESHOLDS[name] for name, _ in _RULES]
    labels = [label for _, label in _RULES]
    return np.select(conditions, labels, default="mixed").astype(str)


def metric_table(metrics: dict[str, np.ndarray], labels: np.ndarray) -> list[dict]:
    """One row per head, layer by layer: ``{"layer", "head", "label", <metric>: value to 3 decimals}``.

    Layers and heads count from 0, as everywhere in the data.
    """
    labels = np.asarray(labels)
    layers, heads = labels.shape
    return [
        {
            "layer": layer,
            "head": head,
            "label": str(labels[layer, head]),
            **{name: round(float(metrics[name][layer, head]), 3) for name in ALL_METRICS if name in metrics},
        }
        for layer in range(layers)
        for head in range(heads)
    ]
