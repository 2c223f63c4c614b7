"""The forward pass: text in, every layer's and head's attention out, as an ``AttentionResult``.

A leaf of the services: it loads models (``services.models``) and runs them, and knows nothing of
caches or task queues. ``services.extraction`` (the cached path) and ``services.tasks`` (Celery
workers) both call ``run_local``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from . import hooks
from .config import get_settings
from .errors import AttentionExplorerError, InputError
from .matrices import as_float32, looks_causal
from .models import LoadedModel, get_model


@dataclass(frozen=True, eq=False)
class AttentionResult:
    """The attention of one text (or sentence pair) under one model.

    ``attentions[l, h, q, k]`` is how much query token ``q`` attends to key token ``k`` in head ``h``
    of layer ``l``; each row sums to 1. Stored as float16; ``layer()`` and ``head()`` give float32.
    """

    tokens: list[str]
    attentions: np.ndarray
    model_id: str
    truncated: bool
    special_mask: np.ndarray  # bool (seq,): [CLS], [SEP], <|endoftext|>, padding ...
    word_ids: list[int | None]  # the word each token belongs to, within its segment
    segment_ids: list[int | None]  # 0 for the text, 1 for the pair, None for special tokens
    is_causal: bool
    unknown_share: float  # share of the non-special tokens that are the unknown token
    unknown_count: int
    token_count_before_truncation: int
    token_limit: int
    text: str
    text_pair: str | None = None
    offsets: list[tuple[int, int]] = field(default_factory=list)
    unk_token: str = ""
    # Issue 10: ‖f^h(x_j)‖ = ‖(x_j W_V^h + b_V^h) W_O^h‖ (Kobayashi et al., 2020), float32 (layers, heads, seq);
    # None for a model whose attention layout is not known, with the reason in plain words.
    value_norms: np.ndarray | None = None
    value_norms_reason: str = ""
    # Issue 11: the tokenizer's ids of ``tokens`` (None for results made before they were kept).
    token_ids: list[int] | None = None

    @property
    def num_layers(self) -> int:
        return int(self.attentions.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.attentions.shape[1])

    @property
    def seq_len(self) -> int:
        return int(self.attentions.shape[2])

    @property
    def nbytes(self) -> int:
        norms = self.value_norms.nbytes if self.value_norms is not None else 0
        return int(self.attentions.nbytes) + int(norms) + 64 * len(self.tokens)

    def layer(self, layer: int) -> np.ndarray:
        """All heads of one layer, ``(heads, seq, seq)`` float32."""
        return as_float32(self.attentions[layer])

    def head(self, layer: int, head: int) -> np.ndarray:
        """One head, ``(seq, seq)`` float32."""
        return as_float32(self.attentions[layer, head])

    # Exports (issue 11): the logic is in ``services.exchange``.
    def to_json(self) -> str:
        """The whole result as JSON (format: ``services.exchange``); ``from_json`` reads it back exactly."""
        from .exchange import result_to_json

        return result_to_json(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> "AttentionResult":
        """The result ``to_json`` wrote. Raises ``services.exchange.ExchangeError`` for anything else."""
        from .exchange import result_from_json

        return result_from_json(text, cls)

    def to_csv(self, layer: int | None = None, head: int | None = None) -> str:
        """The attention weights in long format, one row a (layer, head, query, key): every layer and head
        when ``layer`` / ``head`` is None (see ``services.exchange.result_csv``)."""
        from .exchange import result_csv

        return result_csv(self, layer=layer, head=head)


def decide_causal(declared: bool, attentions: np.ndarray) -> bool:
    """Whether a model's attention is causal: its configuration says so (GPT-2 and kin), or no query
    attends to a later key in any layer or head (a decoder whose configuration does not say)."""
    return bool(declared) or looks_causal(attentions)


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
    configured = get_settings().max_tokens
    return min(configured, loaded_limit) if configured > 0 else loaded_limit


def run_local(text: str, model_id: str, text_pair: str | None) -> AttentionResult:
    """The forward pass in this process, bounded to ``max_concurrent_forward`` at once."""
    loaded = get_model(model_id)
    limit = effective_token_limit(loaded.token_limit)
    with _forward_semaphore():
        return compute(loaded, text, text_pair, limit)


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


NOTHING_LEFT = ("Nothing is left of the {what} once the model “{model}” has read it: it holds only characters "
                "the model ignores (invisible ones such as zero-width spaces, or accents without letters). "
                "Type some words and analyse again.")


def _require_content(enc, special: np.ndarray, text_pair: str | None, model_id: str) -> None:
    """Refuses a text (or second sentence) of which the tokenizer kept nothing but special tokens."""
    content = ~special
    if not content.any():
        raise InputError(NOTHING_LEFT.format(what="text", model=model_id))
    if text_pair is None:
        return
    try:
        segments = enc.sequence_ids(0)
    except (ValueError, AttributeError):  # slow tokenizers: no segments to tell
        return
    if segments and not any(s == 1 and c for s, c in zip(segments, content)):
        raise InputError(NOTHING_LEFT.format(what="second sentence", model=model_id))


def compute(loaded: LoadedModel, text: str, text_pair: str | None, limit: int) -> AttentionResult:
    """Tokenize (once; again only when the text must be cut to ``limit``) and run the model."""
    import torch

    tokenizer = loaded.tokenizer
    enc = encode(tokenizer, text, text_pair, None)
    full_len = int(enc["input_ids"].shape[1])
    truncated = full_len > limit
    if truncated:  # only then a second pass, cut to the limit
        enc = encode(tokenizer, text, text_pair, limit)
    if enc["input_ids"].shape[1] == 0:
        raise InputError(NOTHING_LEFT.format(what="text", model=loaded.model_id))
    special = enc.pop("special_tokens_mask")[0].numpy().astype(bool)
    _require_content(enc, special, text_pair, loaded.model_id)
    offsets_t = enc.pop("offset_mapping", None)
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    # Issue 10: the hooks (services.hooks) record each layer's value vectors during this same pass.
    with torch.inference_mode(), hooks.recording(loaded.model) as recorder:
        output = loaded.model(**inputs, output_attentions=True, return_dict=True)
        attentions = getattr(output, "attentions", None)
        if not attentions or attentions[0] is None:
            raise AttentionExplorerError(f"Model “{loaded.model_id}” returned no attention weights.")
        value_norms, value_norms_reason = recorder.value_norms(len(attentions))
    # One copy straight into float16 (numpy's float32 -> float16 cast is ~25 ns a value here).
    stored = np.empty((len(attentions),) + tuple(attentions[0].shape[1:]), dtype=np.float16)
    for layer, att in enumerate(attentions):
        torch.from_numpy(stored[layer]).copy_(att[0])

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
    return AttentionResult(
        tokens=list(tokens),
        attentions=stored,
        model_id=loaded.model_id,
        truncated=truncated,
        special_mask=special,
        word_ids=list(word_ids),
        segment_ids=list(segment_ids),
        is_causal=decide_causal(loaded.is_causal, stored),
        unknown_share=(unknown_count / content_count) if content_count else 0.0,
        unknown_count=unknown_count,
        token_count_before_truncation=full_len,
        token_limit=limit,
        text=text,
        text_pair=text_pair,
        offsets=offsets,
        unk_token=str(tokenizer.unk_token or ""),
        value_norms=value_norms,
        value_norms_reason=value_norms_reason,
        token_ids=[int(i) for i in ids],
    )
