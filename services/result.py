"""The one result type of the services: ``AttentionResult``, its checks and its float helpers.

The bottom of the services (it imports only ``errors`` and ``serial``): the model's forward pass makes
results (``services.model``), the store keeps them (``services.store``), the analyses read them
(``services.analyses``) and the API hands them out (``services.extract_attention``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import serial

# --- float16 -------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _float16_table() -> np.ndarray:
    """The float32 value of every float16 bit pattern (numpy's own conversion, so exact)."""
    return np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def as_float32(att: np.ndarray) -> np.ndarray:
    """``att`` as float32, without a copy when it already is.

    float16 goes through a 65,536-entry lookup table: about 3x faster than ``astype`` here, with
    identical values.
    """
    att = np.asarray(att)
    if att.dtype == np.float32:
        return att
    if att.dtype == np.float16:
        return _float16_table()[att.view(np.uint16)]
    return att.astype(np.float32)


def looks_causal(att: np.ndarray) -> bool:
    """True when no query sees a later key: every strict upper triangle is zero (a decoder's
    attention), for more than one token. The first query's row settles most encoders at once."""
    seq = att.shape[-1]
    if seq < 2 or np.any(att[..., 0, 1:]):
        return False
    upper = np.triu_indices(seq, k=1)
    return not np.any(att[..., upper[0], upper[1]])



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
    # Issue 13, encoder-decoder models (BART, T5, Marian ...); None / False / "" for other models.
    # ``tokens`` and ``attentions`` stay the encoder's (the source); the target is what the decoder read.
    is_encoder_decoder: bool = False
    target_text: str | None = None  # the target as given, or the generated one decoded (special tokens left out)
    target_tokens: list[str] | None = None  # the decoder's input ids as tokens, from the decoder start token on
    target_ids: list[int] | None = None  # those ids
    decoder_attentions: np.ndarray | None = None  # (layers, heads, tgt, tgt) float16, causal
    cross_attentions: np.ndarray | None = None  # (layers, heads, tgt, src) float16: target rows, source columns
    target_special_mask: np.ndarray | None = None  # bool (tgt,)
    target_truncated: bool = False  # the given target was cut to the model's limit
    decoder_value_norms: np.ndarray | None = None  # (layers, heads, tgt) float32
    cross_value_norms: np.ndarray | None = None  # (layers, heads, src) float32: the source tokens' values
    target_value_norms_reason: str = ""  # why decoder or cross value norms are None
    # Issue 13, text the model wrote: a seq2seq target when none was given, or a decoder-only model's
    # continuation (``services.generate_steps``).
    generated: bool = False
    max_new_tokens: int | None = None  # the bound it wrote under (None when it wrote nothing)
    ended: bool = False  # it stopped by writing its end token, before the bound
    generated_text: str | None = None  # decoder-only: the continuation, decoded
    prompt_length: int | None = None  # decoder-only: tokens[:prompt_length] are the prompt, the rest generated
    generated_mask: np.ndarray | None = None  # decoder-only: bool (seq,), True for generated tokens
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
        arrays = (self.attentions, self.value_norms, self.decoder_attentions, self.cross_attentions,
                  self.decoder_value_norms, self.cross_value_norms)
        target = len(self.target_tokens) if self.target_tokens is not None else 0
        return sum(int(a.nbytes) for a in arrays if a is not None) + 64 * (len(self.tokens) + target)

    @property
    def target_len(self) -> int:
        """Tokens the decoder read (0 for a model that is not an encoder-decoder)."""
        return len(self.target_tokens) if self.target_tokens is not None else 0

    # ---- decoder-only generation: steps are numbered from 1 (step t = generated token t)

    @property
    def generation_steps(self) -> int:
        """How many tokens the model wrote after the prompt (0 for an analysis of a text as given)."""
        if self.prompt_length is None:
            return 0
        return self.seq_len - int(self.prompt_length)

    def step_attention(self, step: int, producing: bool = False) -> np.ndarray:
        """``(layers, heads, seq)`` float32 for generation step ``step`` (1 to ``generation_steps``).

        By default the row of generated token ``step`` itself: how it attends to the prompt, the tokens
        generated before it and itself (row ``prompt_length + step - 1``), the same as the last row of a
        forward pass over the first ``prompt_length + step`` tokens. With ``producing``, the row of the
        token before it, whose output predicted it (row ``prompt_length + step - 2``: for step 1, the
        prompt's last token). Keys the row cannot see are 0.
        """
        row = self._step_row(step, producing)
        out = as_float32(self.attentions[:, :, row, :]).copy()
        out[..., row + 1:] = 0.0
        return out

    def step_attentions(self, producing: bool = False) -> np.ndarray:
        """``(steps, layers, heads, seq)`` float16: ``step_attention`` of every step (index ``t - 1`` for
        step ``t``), zeros beyond what each step can see."""
        steps = self.generation_steps
        if steps == 0:
            raise ValueError("this result holds no generated tokens")
        first = self._step_row(1, producing)
        out = np.ascontiguousarray(np.moveaxis(self.attentions[:, :, first:first + steps, :], 2, 0))
        for t in range(steps):
            out[t, :, :, first + t + 1:] = 0
        return out

    def _step_row(self, step: int, producing: bool) -> int:
        steps = self.generation_steps
        if steps == 0:
            raise ValueError("this result holds no generated tokens")
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 1 <= int(step) <= steps:
            raise ValueError(f"step must be a whole number from 1 to {steps}, got {step!r}")
        return int(self.prompt_length) + int(step) - (2 if producing else 1)

    def layer(self, layer: int) -> np.ndarray:
        """All heads of one layer, ``(heads, seq, seq)`` float32."""
        return as_float32(self.attentions[layer])

    def head(self, layer: int, head: int) -> np.ndarray:
        """One head, ``(seq, seq)`` float32."""
        return as_float32(self.attentions[layer, head])

    # Exports (issue 11): the formats are ``services.serial``'s (one field table for every container).
    def to_json(self) -> str:
        """The whole result as JSON (format: ``services.serial``); ``from_json`` reads it back exactly."""
        return serial.to_json_document(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> "AttentionResult":
        """The result ``to_json`` wrote. Raises ``services.serial.ExchangeError`` for anything else."""
        return serial.from_json_document(text, cls, check_result)

    def to_csv(self, layer: int | None = None, head: int | None = None) -> str:
        """The attention weights in long format, one row a (layer, head, query, key): every layer and head
        when ``layer`` / ``head`` is None (see ``services.serial.result_csv``)."""
        return serial.result_csv(self, layer=layer, head=head)


def check_result(result: AttentionResult) -> None:
    """The shapes the views rely on, for a result read back (the cache's codec, a JSON file): one that
    decodes but does not hang together raises ``ValueError`` saying what is wrong."""
    att, tokens = result.attentions, result.tokens
    if not isinstance(att, np.ndarray) or att.ndim != 4 or att.shape[2] != att.shape[3]:
        raise ValueError("attentions is not an array of shape (layers, heads, seq, seq).")
    if att.dtype.kind != "f":
        raise ValueError("attentions must hold floating-point numbers.")
    seq = att.shape[2]
    if not isinstance(tokens, list) or len(tokens) != seq or not all(isinstance(t, str) for t in tokens):
        raise ValueError("tokens do not match the attention (one string per query row).")
    for name in ("special_mask", "generated_mask"):
        mask = getattr(result, name)
        if (mask is not None or name == "special_mask") and (not isinstance(mask, np.ndarray) or mask.shape != (seq,)):
            raise ValueError(f"{name} does not match the tokens.")
    for name in ("word_ids", "segment_ids", "token_ids"):
        value = getattr(result, name)
        if (value is not None or name != "token_ids") and (not isinstance(value, list) or len(value) != seq):
            raise ValueError(f"{name} does not match the tokens.")
    if not isinstance(result.model_id, str) or not isinstance(result.text, str):
        raise ValueError("model_id and text must be text.")
    norms = result.value_norms
    if norms is not None and (not isinstance(norms, np.ndarray) or norms.shape != att.shape[:3]):
        raise ValueError("value_norms does not match the attention (layers, heads, seq).")
    _check_target(result)


def _check_target(result: AttentionResult) -> None:
    """An encoder-decoder result's decoder side (issue 13): the parts present must agree in shape."""
    tokens, decoder, cross = result.target_tokens, result.decoder_attentions, result.cross_attentions
    mask = result.target_special_mask
    if tokens is not None and (not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens)):
        raise ValueError("target_tokens must be a list of text.")
    tgt = len(tokens) if tokens is not None else None
    src = result.attentions.shape[2]
    if decoder is not None:
        if not isinstance(decoder, np.ndarray) or decoder.ndim != 4 or decoder.shape[2] != decoder.shape[3] \
                or (tgt is not None and decoder.shape[2] != tgt):
            raise ValueError("decoder_attentions is not (layers, heads, tgt, tgt).")
        tgt = decoder.shape[2]
    if cross is not None:
        if not isinstance(cross, np.ndarray) or cross.ndim != 4 or cross.shape[3] != src \
                or (tgt is not None and cross.shape[2] != tgt):
            raise ValueError("cross_attentions is not (layers, heads, tgt, src).")
    if mask is not None and (not isinstance(mask, np.ndarray) or tgt is None or mask.shape != (tgt,)):
        raise ValueError("target_special_mask does not match the target tokens.")


def decide_causal(declared: bool, attentions: np.ndarray) -> bool:
    """Whether a model's attention is causal: its configuration says so (GPT-2 and kin), or no query
    attends to a later key in any layer or head (a decoder whose configuration does not say)."""
    return bool(declared) or looks_causal(attentions)


