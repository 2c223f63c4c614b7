"""Inside a head: the attention formula ``softmax(q·k / √d)`` step by step for one query token.

    from services import inside_head
    h = inside_head("The cat sat on the mat because it was tired.", layer=2, head=5, query=7)
    h.query_vector      # (d_head,)   what token 7 asks
    h.key_vectors       # (seq, d_head) what every token offers
    h.products          # (seq, d_head) their elementwise products; each row sums to q·k
    h.scores            # (seq,) q·k x scale (1/√d_head for most models), -inf for masked keys
    h.weights           # (seq,) softmax(scores): the model's own row (h.model_weights) within 1e-3
    h.value_norms       # (seq,) ‖f(x_j)‖, how large a vector each key hands on (Kobayashi et al., 2020)
    h.weighted          # (seq,) weights x value_norms: what the query really takes from each key

The query and key vectors come from the stock model through forward hooks (``services.hooks``): a
second forward pass over the text with the hooks recording, once per (text, model); every layer's
vectors are kept then, so another layer, head or query costs no forward pass. Every answer is checked
against the model's own attention: when softmax(q·k x scale), with the model's masks, is not the row
the model computed (within ``TOLERANCE``), the head says so instead of showing numbers that do not
explain its weights.

Encoder-decoder models (issue 13): ``kind`` picks the encoder's self-attention (the default), the
decoder's (causal) or cross-attention (a target token's query against the source tokens' keys: its
``tokens`` are the source, its ``query`` counts target tokens). One hooked forward pass records all
three kinds. Where the model's layout allows: BART, Marian, mBART and Pegasus yes; T5 no (it adds a
relative position bias to its scores), and the reason says so.

Caching: the vectors are kept in the process's memory (``services.store.memory``), keyed by the result's cache key
and the layer, bounded in bytes. They are not written to the shared cache: the shared
cache's safe codec is for ``AttentionResult``, and nothing else is pickled into it. After a restart,
or in another worker process, the first request for a text runs the second forward pass again.
"""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass

import numpy as np

from . import ondemand
from .analyses.kinds import _check_kind, attention_of, value_norms_for
from .errors import N_, InputError
from .extraction import analyse
from .model import hooks, record
from .model.forward import _forward_semaphore, encode
from .model.loading import get_model
from .result import DENSE_CELLS, AttentionResult, as_float32
from .store.memory import memory

log = logging.getLogger(__name__)

TOLERANCE = 1e-3  # largest |softmax(scores) - the model's weights| shown as "the same"



@dataclass(frozen=True, eq=False)
class InsideHead:
    """One query token's attention in one head, step by step (the field names are the contract).

    When ``available`` is False, ``reason`` says why in plain words and the vector and score fields
    (``query_vector``, ``key_vectors``, ``products``, ``scores``, ``weights``) are None; the model's own
    row, the masked keys and the value norms (when the model has them) are still given.
    """

    tokens: list[str]  # the keys' tokens (for cross-attention: the source)
    query_vector: np.ndarray | None  # (d_head,) float32
    key_vectors: np.ndarray | None  # (seq, d_head) float32
    products: np.ndarray | None  # (seq, d_head) float32: query_vector * key_vectors
    scores: np.ndarray | None  # (seq,) float32: q·k x scale, -inf where masked
    weights: np.ndarray | None  # (seq,) float32: softmax(scores), 0 where masked
    model_weights: np.ndarray  # (seq,) float32: the model's own attention row (as the heatmaps show it)
    value_norms: np.ndarray | None  # (seq,) float32: ‖f(x_j)‖ for this head, None when not available
    weighted: np.ndarray | None  # (seq,) float32: weights x value_norms (model_weights x ... when not available)
    masked: np.ndarray  # (seq,) bool: keys this query cannot see (later keys of a causal model, padding)
    d_head: int
    layer: int
    head: int
    query: int
    available: bool
    reason: str = ""
    scale: float = 0.0  # the factor q·k is multiplied by: 1/√d_head, or what the model uses instead
    max_difference: float = float("nan")  # max |weights - model_weights| for this row (the check)
    model_id: str = ""
    kind: str = ""  # "encoder", "decoder" or "cross" (issue 13)
    query_token: str = ""  # the query's token (for cross-attention: a target token)
    # Issue 17, today's models (recorded results): what the scores are made of, step by step.
    raw_scores: np.ndarray | None = None  # (seq,) q·k, before scaling
    scaled_scores: np.ndarray | None = None  # (seq,) q·k x scale, before the soft-cap and the mask
    softcap: float | None = None  # Gemma2: scores become softcap·tanh(scores / softcap)
    window: int | None = None  # a sliding window: keys a query sees, counting itself
    sink: float | None = None  # a learned sink logit (gpt-oss): the row then sums to less than 1
    rotary: bool = False  # queries and keys were turned by their position (rotary embeddings)
    query_before: np.ndarray | None = None  # (d_head,) the query before rotation (after any q norm)
    keys_before: np.ndarray | None = None  # (seq, d_head) the keys before rotation
    rotation_difference: float = float("nan")  # max |the model's own rotation of the vectors before - after|
    kv_head: int = -1  # the key/value head this query head reads (grouped-query attention)
    kv_heads: int = 0  # how many key/value heads the layer has
    sharing: tuple[int, ...] = ()  # the query heads that read the same key/value head
    output_difference: float = float("nan")  # max |Σ weights x values - the model's own attention output|


@dataclass(frozen=True, eq=False)
class LayerVectors:
    """One layer's vectors from the hooked forward pass (kept in the in-process LRU).

    ``q`` and ``k`` are numpy views of the projections' outputs (no copy; ``held_bytes`` is what they
    keep alive).
    """

    q: np.ndarray  # (heads, queries, d) float32
    k: np.ndarray  # (heads, keys, d) float32
    value_norms: np.ndarray | None  # (heads, keys) float32
    masked: np.ndarray  # (queries, keys) bool: keys each query cannot see
    scale: float
    held_bytes: int = 0

    @property
    def nbytes(self) -> int:
        norms = self.value_norms.nbytes if self.value_norms is not None else 0
        return int(self.held_bytes or (self.q.nbytes + self.k.nbytes)) + int(self.masked.nbytes + norms) + 512


def clear_vectors() -> None:
    """Forgets every cached layer's vectors (tests, benchmarks)."""
    memory().vectors.clear()


# ----------------------------------------------------------------------------------- the API


def inside_head(text: str, layer: int, head: int, query: int, model_id: str | None = None,
                text_pair: str | None = None, target: str | None = None, kind: str | None = None) -> InsideHead:
    """Query token ``query``'s attention in ``head`` of ``layer``, step by step (see ``InsideHead``).

    The text is analysed as ``extract_attention`` does (and cached the same way). For an encoder-decoder
    model, ``target`` is its target (None: the one it writes) and ``kind`` one of ``"encoder"`` (the
    default), ``"decoder"`` and ``"cross"``. Raises ``InputError`` for a layer, head, query or kind
    outside the result, and what ``extract_attention`` raises; a model whose attention cannot be
    reproduced from its vectors gets ``available=False`` and a reason, never an error.
    """
    key, result = analyse(text, model_id, text_pair, target)
    return inside_head_for(key, result, layer, head, query, kind)


def inside_head_for(key: str, result: AttentionResult, layer: int, head: int, query: int,
                    kind: str | None = None) -> InsideHead:
    """``inside_head`` for a result the caller already holds and its cache key (views: ``result_by_key``)."""
    try:
        kind = _check_kind(result, kind)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if result.recorded and kind == _check_kind(result, None):
        return _inside_recorded(key, result, layer, head, query, kind)
    view = attention_of(result, kind)
    att = view.attentions
    layer = _index(layer, int(att.shape[0]), N_("layer"))
    head = _index(head, int(att.shape[1]), N_("head"))
    query = _index(query, int(att.shape[2]), N_("query token"))
    model_weights = as_float32(att[layer, head, query]).copy()
    entry, reason = _layer_vectors(key, result, layer, kind)
    stored_norms, _ = value_norms_for(result, kind)
    if stored_norms is not None:
        norms = np.asarray(stored_norms[layer, head], dtype=np.float32).copy()
    elif entry is not None and entry.value_norms is not None:
        norms = entry.value_norms[head].copy()
    else:
        norms = None
    keys = int(att.shape[3])
    if entry is not None:
        masked = entry.masked[query].copy()
    else:
        masked = (np.arange(keys) > query) if view.causal else np.zeros(keys, dtype=bool)
    common = dict(tokens=list(view.key_tokens), model_weights=model_weights, value_norms=norms, masked=masked,
                  layer=layer, head=head, query=query, model_id=result.model_id, kind=kind,
                  query_token=view.query_tokens[query])
    if entry is None or reason:
        d_head = int(entry.q.shape[-1]) if entry is not None else 0
        return InsideHead(query_vector=None, key_vectors=None, products=None, scores=None, weights=None,
                          weighted=None if norms is None else (model_weights * norms).astype(np.float32),
                          d_head=d_head, available=False, reason=reason, **common)
    q = entry.q[head, query].copy()
    k = entry.k[head].copy()
    scores64 = (k.astype(np.float64) @ q.astype(np.float64)) * entry.scale
    scores64[masked] = -np.inf
    shifted = np.exp(scores64 - scores64[~masked].max())
    weights64 = shifted / shifted.sum()
    weights = weights64.astype(np.float32)
    # The check: softmax(scores) must be the model's own row (as stored and shown, float16: it rounds by
    # at most 2.5e-4). A model that changes queries, keys or scores where the hooks do not see fails it.
    difference = float(np.abs(weights64 - model_weights).max())
    if difference > TOLERANCE:
        return InsideHead(query_vector=None, key_vectors=None, products=None, scores=None, weights=None,
                          weighted=None if norms is None else (model_weights * norms).astype(np.float32),
                          d_head=int(q.shape[0]), available=False, max_difference=difference,
                          reason=(f"not available for this head, because the weights computed from its query and "
                                  f"key vectors differ from the model's own by up to {difference:.2g}: the model "
                                  "changes its queries, keys or scores in a way this app does not know."), **common)
    return InsideHead(
        query_vector=q, key_vectors=k, products=(k * q).astype(np.float32), scores=scores64.astype(np.float32),
        weights=weights, weighted=None if norms is None else (weights * norms).astype(np.float32),
        d_head=int(q.shape[0]), available=True, scale=float(entry.scale), max_difference=difference, **common,
    )


def _index(value, size: int, what: str) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        index = operator.index(value)
    except TypeError:
        raise InputError(N_("The {what} must be a whole number, not {value}."), what=what, value=repr(value)[:40]) from None
    if not 0 <= index < size:
        raise InputError(N_("The {what} must be between 0 and {last}; {index} is outside."), what=what,
                         last=size - 1, index=index)
    return index


# ----------------------------------------------------------------------------------- recorded results


def _inside_recorded(key: str, result: AttentionResult, layer: int, head: int, query: int, kind: str) -> InsideHead:
    """Inside a head of a recorded result: every step from the kept queries and keys and the layer's
    recipe (``services.ondemand.steps``), the vectors before rotation from one more pass that stops after
    this layer, and two checks against the model itself: its own rotation of the vectors before gives
    the vectors after, and the weights times its values give the attention output it computed."""
    layer = _index(layer, result.num_layers, N_("layer"))
    head = _index(head, result.num_heads, N_("head"))
    query = _index(query, result.seq_len, N_("query token"))
    recipe = result.recipe(layer)
    steps = ondemand.steps(recipe, head, query)
    weights = steps["weights"]
    shown = result.attentions[layer, head, query] if result.dense_cells <= DENSE_CELLS else None
    model_weights = as_float32(shown).copy() if shown is not None else weights.copy()
    extra = _layer_extra(key, result, layer)
    if result.value_norms is not None:
        norms = np.asarray(result.value_norms[layer, head], np.float32).copy()
    elif isinstance(extra, dict) and extra.get("value_norms") is not None:  # a result kept without them
        norms = extra["value_norms"][head].copy()
    else:
        norms = None
    kv = steps["kv_head"]
    group = result.num_heads // result.num_kv_heads
    common = dict(tokens=list(result.tokens), model_weights=model_weights, value_norms=norms, masked=~steps["mask"],
                  layer=layer, head=head, query=query, model_id=result.model_id, kind=kind,
                  query_token=result.tokens[query], kv_head=kv, kv_heads=result.num_kv_heads,
                  sharing=tuple(range(kv * group, (kv + 1) * group)))
    q, k = steps["query"], steps["keys"]
    output_difference, rotation_difference, before = float("nan"), float("nan"), (None, None)
    if isinstance(extra, dict):
        values, output = extra["values"], extra["output"]
        if values is not None and output is not None:
            got = weights.astype(np.float64) @ values[kv].astype(np.float64)
            output_difference = float(np.abs(got - output[query, head]).max())
        if extra.get("pre_q") is not None:
            before = (extra["pre_q"][head, query].copy(), extra["pre_k"][kv].copy())
        rotation_difference = extra.get("rotation_difference", float("nan"))
    rotary = bool(isinstance(extra, dict) and extra.get("rotary"))
    if isinstance(extra, dict) and extra.get("output") is not None:
        scale = max(1.0, float(np.abs(extra["output"][query, head]).max()))
        if not output_difference <= TOLERANCE * scale:  # NaN too: never numbers that do not explain the head
            return InsideHead(query_vector=None, key_vectors=None, products=None, scores=None, weights=None,
                              weighted=None if norms is None else (model_weights * norms).astype(np.float32),
                              d_head=int(q.shape[0]), available=False, output_difference=output_difference,
                              reason=(f"not available for this head, because the weights computed from its query and "
                                      f"key vectors do not reproduce the model's own attention output (they differ "
                                      f"by up to {output_difference:.2g}): the model changes its queries, keys or "
                                      "scores in a way this app does not know."), **common)
    return InsideHead(
        query_vector=q, key_vectors=k, products=(k * q).astype(np.float32), scores=steps["logits"], weights=weights,
        weighted=None if norms is None else (weights * norms).astype(np.float32), d_head=int(q.shape[0]),
        available=True, reason="" if isinstance(extra, dict) else extra, scale=float(recipe.scaling),
        max_difference=float(np.abs(weights - model_weights).max()), raw_scores=steps["raw_scores"],
        scaled_scores=steps["scaled_scores"], softcap=recipe.softcap, window=recipe.window, sink=steps["sink"],
        rotary=rotary, query_before=before[0] if rotary else None, keys_before=before[1] if rotary else None,
        rotation_difference=rotation_difference, output_difference=output_difference, **common)


def _layer_extra(key: str, result: AttentionResult, layer: int) -> dict | str:
    """For one layer of a recorded result: the queries and keys before rotation, the values and the
    attention output the model computed, from one recording pass that stops after that layer (kept in
    the process's memory); or a reason (str) when the text no longer tokenizes as it did."""
    cached = memory().vectors.get((key, "before", layer))
    if cached is not None:
        return cached

    def run() -> dict | str:
        again = memory().vectors.get((key, "before", layer))
        if again is not None:
            return again
        got = _record_before(result, layer)
        if isinstance(got, dict):
            memory().vectors.put((key, "before", layer), got, sum(int(v.nbytes) for v in got.values()
                                                                 if isinstance(v, np.ndarray)) + 512)
        return got

    return memory().flight.run(("inside", key, layer), run)


def _model_inputs(loaded, result: AttentionResult) -> dict | None:
    """The model's inputs for ``result``'s text as it was analysed (a decoder's own continuation: its
    tokens' ids), or None when the text no longer splits into the same number of tokens."""
    import torch

    if result.prompt_length is not None:  # a decoder's own continuation: its ids are not the text's
        ids = torch.tensor([loaded.tokenizer.convert_tokens_to_ids(result.tokens)], dtype=torch.long)
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    else:
        enc = encode(loaded.tokenizer, result.text, result.text_pair, result.token_limit)
        inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    return inputs if int(inputs["input_ids"].shape[1]) == result.seq_len else None


def _record_before(result: AttentionResult, layer: int) -> dict | str:
    import torch

    loaded = get_model(result.model_id)
    if not loaded.recorded:
        return _SPLIT_CHANGED
    inputs = _model_inputs(loaded, result)
    if inputs is None:
        return _SPLIT_CHANGED
    inputs = {k: v.to(loaded.device) for k, v in inputs.items()}
    with _forward_semaphore():
        recording, _outputs = record.record(loaded.model, inputs, pre_rope_layers={layer}, stop_after=layer)
    selfs = recording.of_kind("self")
    if len(selfs) <= layer:
        return _SPLIT_CHANGED
    entry = selfs[layer]
    out = {"values": entry.values, "output": entry.output, "pre_q": entry.pre_q, "pre_k": entry.pre_k,
           "value_norms": entry.value_norms,
           "rotary": entry.rope is not None and entry.rotary_fn is not None and entry.pre_q is not None,
           "rotation_difference": float("nan")}
    if out["rotary"]:
        cos, sin = entry.rope[0][None].float(), entry.rope[1][None].float()
        turned_q, turned_k = entry.rotary_fn(torch.from_numpy(entry.pre_q)[None], torch.from_numpy(entry.pre_k)[None],
                                             cos.cpu(), sin.cpu())
        out["rotation_difference"] = float(max(np.abs(turned_q[0].numpy() - result.queries[layer]).max(),
                                               np.abs(turned_k[0].numpy() - result.keys[layer]).max()))
    return out


# ----------------------------------------------------------------------------------- the vectors


def _layer_vectors(key: str, result: AttentionResult, layer: int,
                   kind: str) -> tuple[LayerVectors | None, str]:
    """The layer's vectors (from the LRU, or a hooked forward pass caching every layer) or a reason."""
    loaded = get_model(result.model_id)
    layout = hooks.install(loaded.model)
    if layout.inside_reason:
        return None, layout.inside_reason
    cached = memory().vectors.get((key, kind, layer))
    if cached is not None:
        return cached, ""

    def run() -> dict[tuple[str, int], LayerVectors] | str:
        again = memory().vectors.get((key, kind, layer))  # a pass that ended between the lookup above and now
        if again is not None:
            return {(kind, layer): again}
        got = record_layers(loaded, result)
        if not isinstance(got, str):
            for (got_kind, index), vectors in got.items():  # stored before the flight ends: no second pass
                memory().vectors.put((key, got_kind, index), vectors)
        return got

    got = memory().flight.run(("inside", key), run)
    if isinstance(got, str):
        return None, got
    vectors = got.get((kind, layer)) or memory().vectors.get((key, kind, layer))
    if vectors is None:  # joined a flight that found another layer cached, and this one was evicted
        got = record_layers(loaded, result)
        if isinstance(got, str):
            return None, got
        vectors = got[(kind, layer)]
    return vectors, ""


_SPLIT_CHANGED = N_("not available for this text right now, because the model's tokenizer no longer splits it "
                    "as it did when it was analysed; analyse it again.")


def record_layers(loaded, result: AttentionResult) -> dict[tuple[str, int], LayerVectors] | str:
    """Every layer's query and key vectors, value norms and masked keys for ``result``'s text, keyed by
    ``(kind, layer)``, from one forward pass with the hooks recording. A reason (str) instead when the
    hooks could not tell the layers apart."""
    import torch

    if result.is_encoder_decoder:
        return _record_seq2seq(loaded, result)
    kind = _check_kind(result, None)
    inputs = _model_inputs(loaded, result)
    if inputs is None:
        return _SPLIT_CHANGED
    with _forward_semaphore(), torch.inference_mode(), hooks.recording(loaded.model, want_qk=True) as recorder:
        output = loaded.model(**inputs, output_attentions=True, return_dict=True)
        attentions = output.attentions
        per_layer = recorder.vectors(len(attentions))
        if isinstance(per_layer, str):
            return per_layer
        seq = result.seq_len
        known = torch.zeros(seq, seq, dtype=torch.bool)
        if result.is_causal:
            known |= torch.ones(seq, seq, dtype=torch.bool).triu(1)
        if "attention_mask" in inputs:
            known |= (inputs["attention_mask"][0] == 0)[None, :]
        need_norms = result.value_norms is None and not recorder.layout.values_reason
        return {(kind, index): vectors for index, vectors in enumerate(_layer_entries(per_layer, attentions, known,
                                                                                       need_norms))}


def _layer_entries(per_layer, attentions, known, need_norms: bool) -> list[LayerVectors]:
    out = []
    for (layout, q, k, v), att in zip(per_layer, attentions):
        norms = hooks.value_norms_of(v, layout).numpy() if need_norms else None
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in (q, k)}
        out.append(LayerVectors(
            q=q.numpy(), k=k.numpy(), value_norms=norms, masked=(known | _model_masked(att[0])).numpy(),
            scale=float(layout.scaling), held_bytes=sum(storages.values())))
    return out


def _record_seq2seq(loaded, result: AttentionResult) -> dict[tuple[str, int], LayerVectors] | str:
    """``record_layers`` for an encoder-decoder model: its source and its target's ids, the three kinds."""
    import torch

    enc = encode(loaded.tokenizer, result.text, result.text_pair, result.token_limit)
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    if int(inputs["input_ids"].shape[1]) != result.seq_len or not result.target_ids:
        return _SPLIT_CHANGED
    decoder_ids = torch.tensor([list(result.target_ids)], dtype=torch.long)
    src, tgt = result.seq_len, len(result.target_ids)
    padding = ((inputs["attention_mask"][0] == 0)[None, :] if "attention_mask" in inputs
               else torch.zeros(1, src, dtype=torch.bool))
    known = {"encoder": torch.zeros(src, src, dtype=torch.bool) | padding,
             "decoder": torch.ones(tgt, tgt, dtype=torch.bool).triu(1),
             "cross": torch.zeros(tgt, src, dtype=torch.bool) | padding}
    out: dict[tuple[str, int], LayerVectors] = {}
    with _forward_semaphore(), torch.inference_mode(), hooks.recording(loaded.model, want_qk=True) as recorder:
        output = loaded.model(**inputs, decoder_input_ids=decoder_ids, output_attentions=True, use_cache=False,
                              return_dict=True)
        for kind, attentions in (("encoder", output.encoder_attentions), ("decoder", output.decoder_attentions),
                                 ("cross", output.cross_attentions)):
            per_layer = recorder.vectors(len(attentions), role=kind)
            if isinstance(per_layer, str):
                return per_layer
            need_norms = value_norms_for(result, kind)[0] is None and not recorder.layout.values_reason
            for index, vectors in enumerate(_layer_entries(per_layer, attentions, known[kind], need_norms)):
                out[(kind, index)] = vectors
    return out


def _model_masked(att):
    """Keys the model gives no weight in any head, ``(seq, seq)`` bool: masked by the model itself (e.g.
    a local window, padding). Head by head, stopping as soon as no candidate is left (an encoder's
    first head usually settles it)."""
    masked = att[0] == 0
    for head in range(1, att.shape[0]):
        if not bool(masked.any()):
            break
        masked &= att[head] == 0
    return masked


# ----------------------------------------------------------------------------------- the steps as CSV

INSIDE_CSV_HEADER = ("layer", "head", "kind", "query_index", "query_token", "step", "key_index", "key_token",
                     "dimension", "value")
# The rows of ``inside_csv``, in this order (the view's steps): one a dimension for the query's vectors,
# one a key and dimension for the keys' vectors and the products, one a key for the scores and weights,
# one row for each single number (scale, soft-cap, window, sink). A step a head does not have is left out.
INSIDE_STEPS = ("query_before_rotation", "key_before_rotation", "query", "key", "product", "raw_score", "scale",
                "scaled_score", "softcap", "window", "sink", "score", "weight", "model_weight", "value_norm", "weighted")


def _numbers(values) -> list[str]:
    """float32 numbers as the fewest digits that read back to the same float32 (``-inf`` for a masked score)."""
    return [np.format_float_positional(v, unique=True, trim="-") if np.isfinite(v) else str(v)
            for v in np.asarray(values, dtype=np.float32).ravel()]


def inside_csv(h: InsideHead, key_tokens: list[str] | None = None, query_token: str | None = None, *,
               max_rows: int | None = None) -> str:
    """One query's attention in one head, every step as long-format CSV (header ``INSIDE_CSV_HEADER``),
    in the order of ``INSIDE_STEPS``: for a rotary model the query and keys ``…_before_rotation`` (the
    projections' outputs); ``query`` the vector q (step 1), ``key`` every key's vector k (step 2),
    ``product`` q × k dimension by dimension (step 3); ``raw_score`` q·k, ``scale`` the factor it is
    multiplied by, ``scaled_score`` q·k × scale, then the model's ``softcap``, ``window`` and ``sink``
    when it has them; ``score`` what enters the softmax (step 4, ``-inf`` where masked); ``weight`` the
    softmax (step 5) beside ``model_weight`` (the model's own), ``value_norm`` ‖f(x)‖ and ``weighted``
    weight × value norm (steps 6 and 7). A head whose vectors cannot be shown (``h.available`` False) has
    only the model's weights, value norms and what they carry. ``key_tokens`` / ``query_token``: the
    labels written (default: the tokens as the model spells them). ``max_rows`` refuses
    (``ExportTooLarge``) an export of more rows."""
    from .serial import ExportTooLarge, quote_csv

    keys = list(h.tokens if key_tokens is None else key_tokens)
    d = int(h.d_head) if h.available else 0
    vectors = 2 if h.rotary and h.query_before is not None and h.keys_before is not None else 1
    rows = vectors * d * (1 + len(keys)) + d * len(keys) + 8 * len(keys) + 4
    if max_rows is not None and rows > max_rows:
        raise ExportTooLarge(f"This export would have {rows:,} rows, more than the {max_rows:,} allowed here. "
                             "Use the Python API (services.inside_head).")
    prefix = ",".join([str(h.layer), str(h.head), h.kind, str(h.query),
                       quote_csv(str(h.query_token if query_token is None else query_token))]) + ","
    key_part = [f"{j},{quote_csv(str(t))}," for j, t in enumerate(keys)]
    out = [",".join(INSIDE_CSV_HEADER) + "\r\n"]

    def per_dimension(step: str, values) -> None:
        if values is None:
            return
        numbers = _numbers(values)
        for j, part in enumerate(key_part if np.ndim(values) == 2 else [",,"]):
            out.extend(f"{prefix}{step},{part}{dim},{numbers[j * d + dim]}\r\n" for dim in range(d))

    def per_key(step: str, values) -> None:
        if values is not None:
            out.extend(f"{prefix}{step},{part},{v}\r\n" for part, v in zip(key_part, _numbers(values)))

    def single(step: str, value) -> None:
        if value is not None:
            out.append(f"{prefix}{step},,,,{_numbers([value])[0]}\r\n")

    if h.available:
        if vectors == 2:
            per_dimension("query_before_rotation", h.query_before)
            per_dimension("key_before_rotation", h.keys_before)
        per_dimension("query", h.query_vector)
        per_dimension("key", h.key_vectors)
        per_dimension("product", h.products)
        per_key("raw_score", h.raw_scores)
        single("scale", h.scale)
        per_key("scaled_score", h.scaled_scores)
        single("softcap", h.softcap)
        single("window", h.window)
        single("sink", h.sink)
        per_key("score", h.scores)
        per_key("weight", h.weights)
    per_key("model_weight", h.model_weights)
    per_key("value_norm", h.value_norms)
    per_key("weighted", h.weighted)
    return "".join(out)
