"""The induction probe (issue 18): a random text repeated twice, run through a model once.

TransformerLens's head detector measures induction heads on "a sequence of random tokens repeated
twice": in the second half, an induction head attends from each token to the token that FOLLOWED that
token's first occurrence (``services.analyses.heads.induction_pattern``). Here the random tokens are
drawn (seeded, without repeats) from the model's own vocabulary, its special tokens left out; the
tokenizer's own special tokens (a BOS, [CLS] ... [SEP]) are put around them as for any text.
"""

from __future__ import annotations

import numpy as np

from ..ondemand import layer_maps, recipe
from ..result import as_float32
from .forward import _forward_semaphore, effective_token_limit
from .loading import LoadedModel, get_model
from .progress import layer_steps

PROBE_HALF = 50  # random tokens, each seen twice
PROBE_SEED = 0


def probe_ids(tokenizer, half: int = PROBE_HALF, seed: int = PROBE_SEED) -> tuple[list[int], int]:
    """``(ids, first)``: the probe's token ids, ``half`` random tokens then the same again, with the
    tokenizer's special tokens around them; ``first`` is where the random tokens start."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    special |= set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    candidates = np.array([i for i in range(len(tokenizer)) if i not in special])
    if candidates.size < half:
        raise ValueError(f"the vocabulary has {candidates.size} ordinary tokens, fewer than the probe's {half}")
    random = np.random.default_rng(seed).choice(candidates, size=half, replace=False).astype(int).tolist()
    body = random + random
    try:
        ids = list(tokenizer.build_inputs_with_special_tokens(body))
    except (AttributeError, NotImplementedError, TypeError):
        ids = body
    first = next((i for i in range(len(ids) - len(body) + 1) if ids[i:i + len(body)] == body), None)
    if first is None:  # a tokenizer that rewrites the ids: the probe alone
        ids, first = body, 0
    return ids, first


def run_probe(model_id: str, half: int = PROBE_HALF, seed: int = PROBE_SEED) -> tuple[list[int], list[np.ndarray]]:
    """``(ids, maps)``: the probe of ``model_id`` (``probe_ids``) and each layer's ``(heads, n, n)``
    float32 attention on it, from ONE forward pass (recorded or eager, as any analysis of this model).
    ``ValueError`` for an encoder-decoder model (its decoder reads a target, not a probe)."""
    from .forward import attention_fields

    loaded: LoadedModel = get_model(model_id)
    if loaded.is_encoder_decoder:
        raise ValueError("the induction probe is for encoder-only and decoder-only models")
    half = max(2, min(half, (effective_token_limit(loaded.token_limit) - 4) // 2))
    ids, _first = probe_ids(loaded.tokenizer, half, seed)
    import torch

    inputs = {"input_ids": torch.tensor([ids], dtype=torch.long),
              "attention_mask": torch.ones((1, len(ids)), dtype=torch.long)}
    with _forward_semaphore(), layer_steps(None):  # its own pass: not an analysis's progress
        fields, _norms = attention_fields(loaded, inputs)
    if "maps" in fields:
        return ids, [as_float32(m) for m in fields["maps"]]
    q, k, sinks = fields["queries"], fields["keys"], fields.get("sinks")
    maps = [layer_maps(recipe(q[layer], k[layer], float(fields["scaling"][layer]), fields["is_causal"],
                              int(fields["windows"][layer]) or None, float(fields["softcaps"][layer]) or None,
                              None if sinks is None else sinks[layer]))
            for layer in range(q.shape[0])]
    return ids, maps
