"""The one result type of the services: ``AttentionResult``, its checks and its float helpers.

The bottom of the services (it imports only ``errors`` and ``serial``): the model's forward pass makes
results (``services.model``), the store keeps them (``services.store``), the analyses read them
(``services.analyses``) and the API hands them out (``services.extract_attention``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import ondemand, serial

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



DENSE_CELLS = 1 << 26  # layers x heads x n x n beyond which ``attentions`` is not built (134 MB of float16)


class AttentionTooLarge(ValueError):
    """``attentions`` was asked of a result too long to hold every map at once."""

def _index(value, size: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < size:
        raise IndexError(f"the {what} must be a whole number from 0 to {size - 1}, not {value!r}")
    return int(value)


def pool(matrix: np.ndarray, block: int, how: str = "max") -> np.ndarray:
    """A ``(q, k)`` matrix pooled in ``block`` x ``block`` cells (edge blocks smaller): the largest value of
    each block, or its mean (``how="mean"``), float32."""
    if how not in ("max", "mean"):
        raise ValueError("how must be 'max' or 'mean'")
    b = max(1, int(block))
    m = as_float32(matrix)
    nq, nk = m.shape
    padded = np.full((-(-nq // b) * b, -(-nk // b) * b), -np.inf if how == "max" else 0.0, np.float32)
    padded[:nq, :nk] = m
    blocks = padded.reshape(padded.shape[0] // b, b, padded.shape[1] // b, b)
    if how == "max":
        return blocks.max(axis=(1, 3))
    counts = np.add.reduceat(np.add.reduceat(np.pad(np.ones_like(m), ((0, padded.shape[0] - nq), (0, padded.shape[1] - nk))),
                                              np.arange(0, padded.shape[0], b), axis=0), np.arange(0, padded.shape[1], b), axis=1)
    return (blocks.sum(axis=(1, 3)) / counts).astype(np.float32)


@dataclass(frozen=True, eq=False)
class AttentionResult:
    """The attention of one text (or sentence pair) under one model.

    ``head(l, h)`` is how much each query token attends to each key token in head ``h`` of layer ``l``
    (rows = queries, columns = keys, each row summing to 1), float32; ``layer(l)``, ``rows(...)``,
    ``tile(...)`` and ``pooled(...)`` give other parts. A recorded result keeps what the model's scores
    are made of (``queries``, ``keys`` and the recipe: ``scaling``, ``windows``, ``softcaps``,
    ``sinks``; see ``services.ondemand``) and computes the maps when asked, exactly, at any length; a
    result computed eagerly (encoder-decoder models) holds its maps (``maps``, float16).
    ``attentions`` is the whole ``(layers, heads, n, n)`` float16 array, for results small enough to
    hold (``DENSE_CELLS``); beyond that it raises ``AttentionTooLarge`` naming the accessors above.
    ``AttentionResult(attentions=...)`` is still accepted: the array becomes ``maps``.
    """

    tokens: list[str]
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
    # Issue 17: the maps, or what they are made of. ``maps`` (layers, heads, n, n) float16 for a result
    # computed eagerly; a recorded one keeps per layer the queries (layers, heads, n, d) and keys (layers,
    # kv_heads, n, d) as the scores use them (after rotary positions and q/k norms), float32, and the recipe:
    # the layer's own scaling, sliding window (0: none), soft-cap (0: none) and learned sinks (layers, heads).
    maps: np.ndarray | None = None
    queries: np.ndarray | None = None
    keys: np.ndarray | None = None
    scaling: np.ndarray | None = None  # (layers,) float64
    windows: np.ndarray | None = None  # (layers,) int64: keys a query sees counting itself; 0 for all
    softcaps: np.ndarray | None = None  # (layers,) float64; 0 for none
    sinks: np.ndarray | None = None  # (layers, heads) float32 learned sink logits, or None
    self_check: np.ndarray | None = None  # (layers,) float32: max |weights @ values - the model's own output|

    # ---- the shape

    @property
    def recorded(self) -> bool:
        """Whether the maps are computed from kept queries and keys (else ``maps`` holds them)."""
        return self.queries is not None

    @property
    def num_layers(self) -> int:
        return int((self.queries if self.recorded else self.maps).shape[0])

    @property
    def num_heads(self) -> int:
        return int((self.queries if self.recorded else self.maps).shape[1])

    @property
    def seq_len(self) -> int:
        return int((self.queries if self.recorded else self.maps).shape[2])

    @property
    def num_kv_heads(self) -> int:
        """Key/value heads per layer: fewer than ``num_heads`` under grouped-query attention."""
        return int(self.keys.shape[1]) if self.recorded else self.num_heads

    def kv_head(self, head: int) -> int:
        """The key/value head query head ``head`` shares (itself without grouped-query attention)."""
        return int(head) // max(1, self.num_heads // self.num_kv_heads)

    @property
    def dense_cells(self) -> int:
        return self.num_layers * self.num_heads * self.seq_len * self.seq_len

    # ---- the maps, on demand

    def recipe(self, layer: int):
        """Layer ``layer``'s queries, keys and score recipe (``services.ondemand.LayerRecipe``)."""
        if not self.recorded:
            raise ValueError("this result holds its maps, not the queries and keys they are made of")
        layer = _index(layer, self.num_layers, "layer")
        window = int(self.windows[layer]) if self.windows is not None else 0
        softcap = float(self.softcaps[layer]) if self.softcaps is not None else 0.0
        return ondemand.recipe(self.queries[layer], self.keys[layer], float(self.scaling[layer]), self.is_causal,
                               window or None, softcap or None, None if self.sinks is None else self.sinks[layer])

    @property
    def dense(self) -> bool:
        """Whether the maps are held whole (``attentions``): always for a result computed eagerly, and for
        a recorded one of at most ``DENSE_CELLS`` cells. The accessors then read them, so every view,
        export and accessor shows the same numbers; longer results compute what is asked, exactly."""
        return self.maps is not None or self.dense_cells <= DENSE_CELLS

    def layer(self, layer: int) -> np.ndarray:
        """All heads of one layer, ``(heads, seq, seq)`` float32."""
        if self.dense:
            return as_float32(self.attentions[layer])
        return ondemand.layer_maps(self.recipe(layer))

    def head(self, layer: int, head: int) -> np.ndarray:
        """One head, ``(seq, seq)`` float32."""
        if self.dense:
            return as_float32(self.attentions[layer, head])
        return ondemand.head(self.recipe(layer), _index(head, self.num_heads, "head"))

    def rows(self, layer: int, head: int, queries) -> np.ndarray:
        """The rows of the query tokens ``queries`` (a sequence of indices), ``(len(queries), seq)`` float32:
        each row as the whole softmax gives it."""
        picked = np.asarray(queries, dtype=np.int64).reshape(-1)
        if picked.size and (picked.min() < 0 or picked.max() >= self.seq_len):
            raise IndexError(f"queries must be between 0 and {self.seq_len - 1}")
        if self.dense:
            return as_float32(self.attentions[layer, head][picked])
        return ondemand.rows(self.recipe(layer), _index(head, self.num_heads, "head"), picked)

    def tile(self, layer: int, head: int, q0: int, q1: int, k0: int, k1: int) -> np.ndarray:
        """The part ``[q0:q1, k0:k1]`` of one head's map (the softmax over the whole row, not the tile)."""
        if self.dense:
            n = self.seq_len
            return as_float32(self.attentions[layer, head][max(0, q0):min(n, q1), max(0, k0):min(n, k1)])
        return ondemand.tile(self.recipe(layer), _index(head, self.num_heads, "head"), q0, q1, k0, k1)

    def pooled(self, layer: int, head: int | None, block: int, how: str = "max") -> np.ndarray:
        """One head's map (or every head of the layer, ``head=None``) pooled in ``block`` x ``block`` cells:
        the largest weight of each block (``how="max"``) or its mean."""
        if self.dense:
            maps = as_float32(self.attentions[layer] if head is None else self.attentions[layer, head][None])
            out = np.stack([pool(m, block, how) for m in maps])
            return out if head is None else out[0]
        return ondemand.pooled(self.recipe(layer), None if head is None else _index(head, self.num_heads, "head"),
                               block, how)

    def _all_maps(self) -> np.ndarray:
        """Every map, ``(layers, heads, seq, seq)`` float16 (rows = queries): for results of at most
        ``DENSE_CELLS`` cells; built once from the queries and keys of a recorded result."""
        if self.maps is not None:
            return self.maps
        dense = self.__dict__.get("_dense")
        if dense is None:
            if self.dense_cells > DENSE_CELLS:
                raise AttentionTooLarge(
                    f"This result has {self.num_layers} layers x {self.num_heads} heads x {self.seq_len}^2 cells "
                    f"({self.dense_cells * 2 / 2**30:.1f} GiB as float16): too many to hold at once. Ask for what "
                    "you need: result.head(layer, head), result.layer(layer), result.rows(layer, head, queries), "
                    "result.tile(layer, head, q0, q1, k0, k1) or result.pooled(layer, head, block).")
            dense = np.stack([ondemand.layer_maps(self.recipe(layer), np.float16) for layer in range(self.num_layers)])
            object.__setattr__(self, "_dense", dense)
        return dense

    @property
    def stored_nbytes(self) -> int:
        """Bytes of what the result keeps (what a cache stores): maps or queries and keys, norms, tokens."""
        arrays = (self.maps, self.queries, self.keys, self.value_norms, self.decoder_attentions, self.cross_attentions,
                  self.decoder_value_norms, self.cross_value_norms, self.sinks)
        target = len(self.target_tokens) if self.target_tokens is not None else 0
        return sum(int(a.nbytes) for a in arrays if a is not None) + 64 * (len(self.tokens) + target)

    @property
    def nbytes(self) -> int:
        """Bytes it holds in memory now: what it stores, and the whole array once ``attentions`` built it."""
        dense = self.__dict__.get("_dense")
        return self.stored_nbytes + (int(dense.nbytes) if dense is not None else 0)

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
        if self.dense:
            out = as_float32(self.attentions[:, :, row, :])
        else:
            out = np.stack([np.stack([self.rows(layer, head, [row])[0] for head in range(self.num_heads)])
                            for layer in range(self.num_layers)])
        out = np.array(out, dtype=np.float32)
        out[..., row + 1:] = 0.0
        return out

    def step_attentions(self, producing: bool = False) -> np.ndarray:
        """``(steps, layers, heads, seq)`` float16: ``step_attention`` of every step (index ``t - 1`` for
        step ``t``), zeros beyond what each step can see."""
        steps = self.generation_steps
        if steps == 0:
            raise ValueError("this result holds no generated tokens")
        first = self._step_row(1, producing)
        if not self.dense:
            picked = list(range(first, first + steps))
            block = np.stack([np.stack([self.rows(layer, head, picked) for head in range(self.num_heads)])
                              for layer in range(self.num_layers)]).astype(np.float16)
        else:
            block = self.attentions[:, :, first:first + steps, :]
        out = np.ascontiguousarray(np.moveaxis(block, 2, 0))
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


# ``attentions`` is a property (every map, or a clear error for long results), and an argument of the
# constructor that becomes ``maps`` (``AttentionResult(attentions=...)``, as before issue 17). Neither is a
# field: ``dataclasses.fields`` and ``dataclasses.replace`` see ``maps`` and the recipe only.
AttentionResult.attentions = property(AttentionResult._all_maps, doc=AttentionResult._all_maps.__doc__)
_fields_init = AttentionResult.__init__


def _init(self, *args, attentions: np.ndarray | None = None, **kwargs) -> None:
    if attentions is not None:
        if kwargs.get("maps") is not None:
            raise TypeError("give attentions or maps, not both")
        kwargs["maps"] = attentions
    _fields_init(self, *args, **kwargs)


_init.__doc__ = AttentionResult.__doc__
AttentionResult.__init__ = _init


def check_result(result: AttentionResult) -> None:
    """The shapes the views rely on, for a result read back (the cache's codec, a JSON file): one that
    decodes but does not hang together raises ``ValueError`` saying what is wrong. It holds its maps,
    square (``maps``), or the queries and keys they are made of with their recipe, one entry a layer."""
    tokens = result.tokens
    if result.recorded:
        seq = _check_recipe(result)
    else:
        att = result.maps
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
    if norms is not None and (not isinstance(norms, np.ndarray)
                              or norms.shape != (result.num_layers, result.num_heads, seq)):
        raise ValueError("value_norms does not match the attention (layers, heads, seq).")
    _check_target(result)


def _check_recipe(result: AttentionResult) -> int:
    """A recorded result: queries (layers, heads, n, d) and keys (layers, kv_heads, n, d) of float numbers
    with heads a multiple of kv_heads, and one recipe entry a layer. Returns n."""
    q, k = result.queries, result.keys
    if result.maps is not None:
        raise ValueError("a result holds its maps or the queries and keys they are made of, not both.")
    if not isinstance(q, np.ndarray) or not isinstance(k, np.ndarray) or q.ndim != 4 or k.ndim != 4:
        raise ValueError("queries and keys must be arrays of shape (layers, heads, seq, head_dim).")
    if q.dtype.kind != "f" or k.dtype.kind != "f":
        raise ValueError("queries and keys must hold floating-point numbers.")
    layers, heads, seq, dim = q.shape
    if k.shape[0] != layers or k.shape[2] != seq or k.shape[3] != dim or k.shape[1] < 1 or heads % k.shape[1]:
        raise ValueError("keys do not match the queries (layers, a divisor of the heads, seq, head_dim).")
    for name, dtype_kind in (("scaling", "f"), ("windows", "iu"), ("softcaps", "f")):
        value = getattr(result, name)
        if (value is not None or name == "scaling") and (not isinstance(value, np.ndarray) or value.shape != (layers,)
                                                         or value.dtype.kind not in dtype_kind):
            raise ValueError(f"{name} must hold one number a layer.")
    if result.windows is not None and (result.windows < 0).any():
        raise ValueError("windows must be 0 (none) or a number of keys.")
    sinks = result.sinks
    if sinks is not None and (not isinstance(sinks, np.ndarray) or sinks.shape != (layers, heads)):
        raise ValueError("sinks must hold one number a layer and head.")
    return seq


def _check_target(result: AttentionResult) -> None:
    """An encoder-decoder result's decoder side (issue 13): the parts present must agree in shape."""
    tokens, decoder, cross = result.target_tokens, result.decoder_attentions, result.cross_attentions
    mask = result.target_special_mask
    if tokens is not None and (not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens)):
        raise ValueError("target_tokens must be a list of text.")
    tgt = len(tokens) if tokens is not None else None
    src = result.seq_len
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


