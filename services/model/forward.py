"""The forward pass: text in, every layer's and head's attention out, as an ``AttentionResult``.

A leaf of the services: it loads models (``services.models``) and runs them, and knows nothing of
caches or task queues. ``services.extraction`` (the cached path) and ``services.tasks`` (Celery
workers) both call ``run_local``.

Three kinds of computation (issue 13 added the last two):

- ``compute``: one text (or sentence pair) through an encoder or a decoder, as before;
- encoder-decoder models (BART, T5, Marian ...): the source through the encoder and a target through
  the decoder, giving encoder self-attention (``attentions``), decoder self-attention
  (``decoder_attentions``) and cross-attention (``cross_attentions``). The decoder's input ids are the
  decoder start token followed by the target's tokens (as ``tokenizer(text_target=...)`` makes them,
  its end token included), or, without a target, exactly the ids greedy ``generate`` returns (start
  token included), then one forward pass over those ids gives every attention;
- decoder-only generation (GPT-2 family, ``compute_generation``): the prompt is continued greedily
  by ``steps`` tokens, then one forward pass over prompt + continuation gives every step's attention
  (the model is causal, so row ``i`` is what token ``i`` saw when it was read).
"""

from __future__ import annotations

import threading

import numpy as np

from ..config import get_settings
from ..errors import N_, AttentionExplorerError, InputError
from ..result import AttentionResult, decide_causal
from . import hooks, record
from .loading import LoadedModel, get_model

_forward_slots_lock = threading.Lock()
_forward_slots: tuple[int, threading.BoundedSemaphore] | None = None


def _forward_semaphore() -> threading.BoundedSemaphore:
    global _forward_slots
    limit = get_settings().max_concurrent_forward
    with _forward_slots_lock:
        if _forward_slots is None or _forward_slots[0] != limit:
            _forward_slots = (limit, threading.BoundedSemaphore(limit))
        return _forward_slots[1]


def effective_token_limit(loaded_limit: int) -> int:
    """Tokens read of a text: ATTN_MAX_TOKENS (else the device's default, 4,096 on the CPU), within the
    model's own limit."""
    return max(1, min(get_settings().token_cap, loaded_limit))


def run_local(text: str, model_id: str, text_pair: str | None, target: str | None = None,
              max_new_tokens: int | None = None, steps: int | None = None) -> AttentionResult:
    """The forward pass in this process, bounded to ``max_concurrent_forward`` at once.

    ``target`` and ``max_new_tokens``: an encoder-decoder model's target, or the bound on the one it
    writes. ``steps``: a decoder-only model continues the text by that many tokens (``text_pair`` must
    then be None)."""
    loaded = get_model(model_id)
    limit = effective_token_limit(loaded.token_limit)
    with _forward_semaphore():
        if steps is not None:
            if text_pair is not None or target is not None:
                raise InputError(N_("Continuing a text takes one text: no second sentence and no target."))
            return compute_generation(loaded, text, limit, steps)
        return compute(loaded, text, text_pair, limit, target, max_new_tokens)


def encode(tokenizer, text: str, text_pair: str | None, max_length: int | None):
    """Tokenizer output as tensors, with the special-token mask (and offsets for fast tokenizers)."""
    return tokenizer(
        text, text_pair,
        add_special_tokens=True,
        truncation="longest_first" if max_length else False,
        max_length=max_length,
        return_tensors="pt",
        return_special_tokens_mask=True,
        return_offsets_mapping=bool(getattr(tokenizer, "is_fast", False)),
        verbose=False,
    )


NOTHING_LEFT = N_("Nothing is left of the {what} once the model “{model}” has read it: it holds only characters "
                "the model ignores (invisible ones such as zero-width spaces, or accents without letters). "
                "Type some words and analyse again.")


def _require_content(enc, special: np.ndarray, text_pair: str | None, model_id: str) -> None:
    """Refuses a text (or second sentence) of which the tokenizer kept nothing but special tokens."""
    content = ~special
    if not content.any():
        raise InputError(NOTHING_LEFT, what=N_("text"), model=model_id)
    if text_pair is None:
        return
    try:
        segments = enc.sequence_ids(0)
    except (ValueError, AttributeError):  # slow tokenizers: no segments to tell
        return
    if segments and not any(s == 1 and c for s, c in zip(segments, content)):
        raise InputError(NOTHING_LEFT, what=N_("second sentence"), model=model_id)


def _tokenize_source(loaded: LoadedModel, text: str, text_pair: str | None, limit: int):
    """Tokenize (once; again only when the text must be cut to ``limit``): ``(enc, special, offsets,
    length before truncation, truncated)``; the special-token mask and offsets taken out of ``enc``."""
    tokenizer = loaded.tokenizer
    enc = encode(tokenizer, text, text_pair, None)
    full_len = int(enc["input_ids"].shape[1])
    truncated = full_len > limit
    if truncated:  # only then a second pass, cut to the limit
        enc = encode(tokenizer, text, text_pair, limit)
    if enc["input_ids"].shape[1] == 0:
        raise InputError(NOTHING_LEFT, what=N_("text"), model=loaded.model_id)
    special = enc.pop("special_tokens_mask")[0].numpy().astype(bool)
    _require_content(enc, special, text_pair, loaded.model_id)
    offsets_t = enc.pop("offset_mapping", None)
    return enc, special, offsets_t, full_len, truncated


def _source_fields(loaded: LoadedModel, enc, special: np.ndarray, offsets_t) -> dict:
    """The fields of an ``AttentionResult`` that describe the tokens ``enc`` holds."""
    tokenizer = loaded.tokenizer
    ids = enc["input_ids"][0].tolist()
    tokens = tokenizer.convert_ids_to_tokens(ids)
    try:
        word_ids = enc.word_ids(0)
        segment_ids = enc.sequence_ids(0)
    except (ValueError, AttributeError):  # slow tokenizers have no alignment
        word_ids = [None] * len(special)  # tokens.word_groups then merges by "##" / "Ġ" markers
        segment_ids = [None if s else 0 for s in special]
    unk_id = tokenizer.unk_token_id
    content = ~special
    unknown_count = int(sum(1 for i, c in zip(ids, content) if c and unk_id is not None and i == unk_id))
    content_count = int(content.sum())
    offsets = [tuple(map(int, o)) for o in offsets_t[0].tolist()] if offsets_t is not None else []
    return dict(
        tokens=list(tokens),
        special_mask=special,
        word_ids=list(word_ids),
        segment_ids=list(segment_ids),
        unknown_share=(unknown_count / content_count) if content_count else 0.0,
        unknown_count=unknown_count,
        offsets=offsets,
        unk_token=str(tokenizer.unk_token or ""),
        token_ids=[int(i) for i in ids],
    )


def _source_result(loaded: LoadedModel, enc, special: np.ndarray, offsets_t, attention: dict,
                   norms: tuple, **fields) -> AttentionResult:
    """An ``AttentionResult`` of the source text ``enc`` holds, with its ``attention`` (``maps`` float16,
    or what ``attention_fields`` recorded), the value norms and their reason (``norms``), and the other
    ``fields`` as given; causal or not is decided here once, from the config and the weights."""
    value_norms, reason = norms
    maps = attention.get("maps")
    causal = decide_causal(loaded.is_causal, maps) if maps is not None else attention["is_causal"]
    return AttentionResult(model_id=loaded.model_id, is_causal=causal, value_norms=value_norms,
                           value_norms_reason=reason, **_source_fields(loaded, enc, special, offsets_t),
                           **{k: v for k, v in attention.items() if k != "is_causal"}, **fields)


def attention_fields(loaded: LoadedModel, inputs: dict, pre_rope_layers: set[int] | None = None) -> tuple[dict, tuple]:
    """ONE forward pass of an encoder or decoder-only model on ``inputs``: ``(fields, (value_norms,
    reason))``. A recorded model keeps, per layer, its queries and keys and the score recipe
    (``services.model.record``); another runs eagerly and keeps its maps (float16), its value norms from
    the hooks (``services.model.hooks``)."""
    import torch

    inputs = {k: v.to(loaded.device) for k, v in inputs.items()}
    if not loaded.recorded:
        with torch.inference_mode(), hooks.recording(loaded.model) as recorder:
            output = loaded.model(**inputs, output_attentions=True, return_dict=True)
            attentions = getattr(output, "attentions", None)
            if not attentions or attentions[0] is None:
                raise AttentionExplorerError(N_("Model “{model}” returned no attention weights."), model=loaded.model_id)
            norms = recorder.value_norms(len(attentions))
        return {"maps": _float16(attentions, N_("attention"), loaded.model_id)}, norms
    recording, _output = record.record(loaded.model, inputs, pre_rope_layers)
    layers = recording.of_kind("self")
    shapes = {(layer.q.shape, layer.k.shape) for layer in layers}
    if len(shapes) != 1:
        raise AttentionExplorerError(N_("Model “{model}” has layers of different shapes, which this app cannot show "
                                        "yet."), model=loaded.model_id)
    fields = {
        "queries": np.stack([layer.q for layer in layers]),
        "keys": np.stack([layer.k for layer in layers]),
        "scaling": np.array([layer.scaling for layer in layers], dtype=np.float64),
        "windows": np.array([layer.window or 0 for layer in layers], dtype=np.int64),
        "softcaps": np.array([layer.softcap or 0.0 for layer in layers], dtype=np.float64),
        "sinks": np.stack([layer.sinks for layer in layers]).astype(np.float32)
        if all(layer.sinks is not None for layer in layers) else None,
        "self_check": np.array([layer.self_check for layer in layers], dtype=np.float32),
        "is_causal": bool(loaded.is_causal or any(layer.causal for layer in layers)),
    }
    if all(layer.value_norms is not None for layer in layers):
        norms = (np.stack([layer.value_norms for layer in layers]).astype(np.float32), "")
    else:
        norms = (None, N_("not available for this model, because its output projection was not found"))
    return fields, norms


def _float16(attentions, what: str, model_id: str) -> np.ndarray:
    """A tuple of per-layer ``(1, heads, q, k)`` tensors as one ``(layers, heads, q, k)`` float16 array."""
    import torch

    if not attentions or attentions[0] is None:
        raise AttentionExplorerError(N_("Model “{model}” returned no {what} weights."), model=model_id, what=what)
    # One copy straight into float16 (numpy's float32 -> float16 cast is ~25 ns a value here).
    stored = np.empty((len(attentions),) + tuple(attentions[0].shape[1:]), dtype=np.float16)
    for layer, att in enumerate(attentions):
        torch.from_numpy(stored[layer]).copy_(att[0])
    return stored


TARGET_NOT_FOR_THIS_MODEL = N_("A target text is for encoder-decoder models (translation, summarisation), which read "
                             "a source and write a target; model “{model}” reads one text. Leave the target empty.")


def compute(loaded: LoadedModel, text: str, text_pair: str | None, limit: int, target: str | None = None,
            max_new_tokens: int | None = None) -> AttentionResult:
    """Tokenize (once; again only when the text must be cut to ``limit``) and run the model. An
    encoder-decoder model also reads ``target`` in its decoder, or writes one (at most
    ``max_new_tokens`` tokens, the configured bound by default) when ``target`` is None."""

    if loaded.is_encoder_decoder:
        return compute_seq2seq(loaded, text, text_pair, limit, target, max_new_tokens)
    if target is not None:
        raise InputError(TARGET_NOT_FOR_THIS_MODEL, model=loaded.model_id)
    enc, special, offsets_t, full_len, truncated = _tokenize_source(loaded, text, text_pair, limit)
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    attention, norms = attention_fields(loaded, inputs)
    return _source_result(loaded, enc, special, offsets_t, attention, norms,
                          text=text, text_pair=text_pair, truncated=truncated,
                          token_count_before_truncation=full_len, token_limit=limit)


# ----------------------------------------------------------------------------------- encoder-decoder


def decoder_start_id(loaded: LoadedModel) -> int:
    """The token an encoder-decoder model's decoder starts from (its ``decoder_start_token_id``)."""
    model = loaded.model
    for holder in (getattr(model, "generation_config", None), getattr(model, "config", None),
                   getattr(getattr(model, "config", None), "decoder", None)):
        value = getattr(holder, "decoder_start_token_id", None) if holder is not None else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    raise AttentionExplorerError(N_("Model “{model}” does not say which token starts its output "
                                    "(decoder_start_token_id), so its decoder cannot be run."), model=loaded.model_id)


def _special_ids(tokenizer) -> set[int]:
    return {int(i) for i in (getattr(tokenizer, "all_special_ids", None) or []) if i is not None}


def target_ids_for(loaded: LoadedModel, target: str, limit: int) -> tuple[list[int], bool]:
    """The decoder's input ids for a given target: the decoder start token, then the target's tokens as
    ``tokenizer(text_target=target)`` gives them (its end token included), at most ``limit`` in all.
    Returns ``(ids, truncated)``; raises ``InputError`` when nothing but special tokens is left."""
    tokenizer = loaded.tokenizer
    start = decoder_start_id(loaded)
    ids = list(tokenizer(text_target=target, add_special_tokens=True, verbose=False)["input_ids"])
    truncated = 1 + len(ids) > limit
    if truncated:
        ids = list(tokenizer(text_target=target, add_special_tokens=True, truncation=True,
                             max_length=max(1, limit - 1), verbose=False)["input_ids"])
    special = _special_ids(tokenizer)
    if not any(i not in special for i in ids):
        raise InputError(NOTHING_LEFT, what=N_("target"), model=loaded.model_id)
    return [start] + ids, truncated


def _greedy(generator, inputs: dict, max_new_tokens: int, pad_token_id: int | None = None) -> list[int]:
    """Greedy decoding (one beam, no sampling) of at most ``max_new_tokens`` tokens, batch of one."""
    import torch

    extra = {} if pad_token_id is None else {"pad_token_id": pad_token_id}
    inputs = {k: v.to(generator.device) for k, v in inputs.items()}
    with torch.inference_mode():
        out = generator.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=int(max_new_tokens), **extra)
    sequences = out.sequences if hasattr(out, "sequences") else out
    return [int(i) for i in sequences[0].tolist()]


def _eos_ids(loaded: LoadedModel) -> set[int]:
    found: set[int] = set()
    for holder in (getattr(loaded.generator, "generation_config", None), loaded.tokenizer):
        value = getattr(holder, "eos_token_id", None) if holder is not None else None
        found.update(value if isinstance(value, (list, tuple)) else [value] if isinstance(value, int) else [])
    return found


def compute_seq2seq(loaded: LoadedModel, text: str, text_pair: str | None, limit: int, target: str | None,
                    max_new_tokens: int | None = None) -> AttentionResult:
    """An encoder-decoder model on a source ``text`` (and optional pair) and a ``target``, or the
    target it writes itself greedily when ``target`` is None (see the module's docstring)."""
    import torch

    tokenizer = loaded.tokenizer
    enc, special, offsets_t, full_len, truncated = _tokenize_source(loaded, text, text_pair, limit)
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    bound = int(max_new_tokens if max_new_tokens is not None else get_settings().max_new_tokens)
    target_truncated = False
    if target is not None:
        ids, target_truncated = target_ids_for(loaded, target, limit)
        generated, ended = False, False
    else:
        ids = _greedy(loaded.generator, inputs, max(1, min(bound, limit - 1)))
        generated = True
        eos = _eos_ids(loaded)
        ended = any(i in eos for i in ids[1:])
    decoder_input_ids = torch.tensor([ids], dtype=torch.long, device=loaded.device)
    inputs = {k: v.to(loaded.device) for k, v in inputs.items()}
    with torch.inference_mode(), hooks.recording(loaded.model) as recorder:
        output = loaded.model(**inputs, decoder_input_ids=decoder_input_ids, output_attentions=True,
                              use_cache=False, return_dict=True)
        encoder_att = getattr(output, "encoder_attentions", None)
        decoder_att = getattr(output, "decoder_attentions", None)
        cross_att = getattr(output, "cross_attentions", None)
        stored = _float16(encoder_att, N_("encoder attention"), loaded.model_id)
        decoder = _float16(decoder_att, N_("decoder attention"), loaded.model_id)
        cross = _float16(cross_att, N_("cross-attention"), loaded.model_id)
        value_norms, value_norms_reason = recorder.value_norms(len(encoder_att), role="encoder")
        decoder_norms, decoder_reason = recorder.value_norms(len(decoder_att), role="decoder")
        cross_norms, cross_reason = recorder.value_norms(len(cross_att), role="cross")
    special_ids = _special_ids(tokenizer)
    return _source_result(
        loaded, enc, special, offsets_t, {"maps": stored}, (value_norms, value_norms_reason),
        text=text, text_pair=text_pair, truncated=truncated, token_count_before_truncation=full_len,
        token_limit=limit,
        is_encoder_decoder=True,
        target_text=target if target is not None else tokenizer.decode(ids, skip_special_tokens=True),
        target_tokens=list(tokenizer.convert_ids_to_tokens(ids)),
        target_ids=ids,
        decoder_attentions=decoder,
        cross_attentions=cross,
        target_special_mask=np.array([i in special_ids for i in ids], dtype=bool),
        target_truncated=target_truncated,
        decoder_value_norms=decoder_norms,
        cross_value_norms=cross_norms,
        target_value_norms_reason=decoder_reason or cross_reason,
        generated=generated,
        max_new_tokens=bound if generated else None,
        ended=ended,
    )


# ----------------------------------------------------------------------------------- decoder-only generation


def cannot_generate(loaded: LoadedModel) -> str:
    """Why ``loaded`` cannot continue a text (plain words), or "" when it can."""
    if loaded.is_encoder_decoder:
        return (f"Model “{loaded.model_id}” is an encoder-decoder model: it writes a target for a source text "
                "rather than continuing it. Analyse the text with the target left empty to see the target it writes.")
    if loaded.generator is None:
        why = loaded.generation_reason or "it has no language-model head"
        return f"Model “{loaded.model_id}” cannot continue a text: {why}."
    return ""


def compute_generation(loaded: LoadedModel, text: str, limit: int, steps: int) -> AttentionResult:
    """A decoder-only model continues ``text`` greedily by at most ``steps`` tokens (fewer when it writes
    its end token), then one forward pass over prompt + continuation gives every step's attention.

    The prompt is cut to ``limit - steps`` tokens when needed, so the whole fits the model's limit.
    """
    import torch

    reason = cannot_generate(loaded)
    if reason:
        raise InputError(reason)
    steps = int(steps)
    room = limit - steps
    if room < 1:
        raise InputError(N_("Model “{model}” reads at most {limit} tokens, so it cannot write {steps} more; "
                            "ask for fewer tokens."), model=loaded.model_id, limit=limit, steps=steps)
    tokenizer = loaded.tokenizer
    enc, special, _offsets, full_len, truncated = _tokenize_source(loaded, text, None, room)
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    prompt_length = int(enc["input_ids"].shape[1])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(sorted(_eos_ids(loaded))), None)
    ids = _greedy(loaded.generator, inputs, steps, pad_token_id=pad)
    new = ids[prompt_length:]
    if not new:
        raise AttentionExplorerError(N_("Model “{model}” wrote nothing after the text."), model=loaded.model_id)
    all_ids = torch.tensor([ids], dtype=torch.long)
    attention, (value_norms, value_norms_reason) = attention_fields(
        loaded, {"input_ids": all_ids, "attention_mask": torch.ones_like(all_ids)})
    attention.pop("is_causal", None)
    special_ids = _special_ids(tokenizer)
    all_special = np.concatenate([special, np.array([i in special_ids for i in new], dtype=bool)])
    unk_id = tokenizer.unk_token_id
    content = ~special
    prompt_ids = ids[:prompt_length]
    unknown_count = int(sum(1 for i, c in zip(prompt_ids, content) if c and unk_id is not None and i == unk_id))
    content_count = int(content.sum())
    mask = np.zeros(len(ids), dtype=bool)
    mask[prompt_length:] = True
    return AttentionResult(
        tokens=list(tokenizer.convert_ids_to_tokens(ids)),
        **attention,
        model_id=loaded.model_id,
        truncated=truncated,
        special_mask=all_special,
        # No word ids: the pieces decide words (``tokens.word_groups``), the same way for prompt and continuation.
        word_ids=[None] * len(ids),
        segment_ids=[None if s else 0 for s in all_special],
        is_causal=True,
        unknown_share=(unknown_count / content_count) if content_count else 0.0,
        unknown_count=unknown_count,
        token_count_before_truncation=full_len,
        token_limit=limit,
        text=text,
        unk_token=str(tokenizer.unk_token or ""),
        value_norms=value_norms,
        value_norms_reason=value_norms_reason,
        generated=True,
        max_new_tokens=steps,
        ended=not _eos_ids(loaded).isdisjoint(new),
        generated_text=tokenizer.decode(new, skip_special_tokens=True),
        prompt_length=prompt_length,
        generated_mask=mask,
        token_ids=[int(i) for i in ids],
    )
