"""Pure-numpy transforms of attention for the views: readable tokens, words, rollout. No model, no Dash.

Attention arrays have rows = queries and columns = keys in the last two axes. Inputs may be float16
(as ``AttentionResult.attentions`` stores them); every computation runs in float32.

Typical use on an ``AttentionResult`` ``r``::

    groups, words = word_groups(r.tokens, r.word_ids, r.segment_ids, r.special_mask)
    by_word = merge_subwords(r.attentions[layer], groups)          # (heads, words, words)
    word_special = r.special_mask[[g[0] for g in groups]]
    content, kept = hide_special(by_word, word_special)            # special words removed
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

SPACE_MARK = "Ġ"  # GPT-2 byte-level BPE: a leading space
NEWLINE_MARK = "Ċ"  # GPT-2 byte-level BPE: "\n"
SENTENCEPIECE_MARK = "▁"  # SentencePiece: a word boundary
CONTINUATION = "##"  # WordPiece: this piece continues the previous one
_VISIBLE_WHITESPACE = (("\r\n", "↵"), ("\n", "↵"), ("\r", "↵"), ("\t", "⇥"))
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece byte-fallback pieces


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


# --- tokens --------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, character -> byte (the inverse of ``bytes_to_unicode``)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def _from_byte_level(token: str) -> str | None:
    """The text of a byte-level BPE token (``Ġcat`` -> `` cat``), or None when it is not one."""
    if token.isascii():
        return None  # plain ASCII reads the same either way
    decoder = _byte_decoder()
    if any(char not in decoder for char in token):
        return None
    try:
        return bytes(decoder[char] for char in token).decode("utf-8")
    except UnicodeDecodeError:  # a piece of a multi-byte character, or not byte-level at all
        return None


def _from_byte_fallback(token: str) -> str | None:
    """SentencePiece's ``<0x0A>`` byte pieces, for ASCII bytes."""
    match = _BYTE_FALLBACK.fullmatch(token)
    if match is None or int(match.group(1), 16) >= 0x80:
        return None
    return chr(int(match.group(1), 16))


def display_token(token: str) -> str:
    """A token as a person reads it.

    ``Ġcat`` -> ``cat`` (GPT-2's leading-space mark removed), ``Ċ`` -> ``↵``, ``▁cat`` -> ``cat``
    (SentencePiece), byte-level pieces of non-ASCII text decoded (``cafÃ©`` -> ``café``). WordPiece
    tokens stay as they are, ``##ing`` included: the ``##`` says it continues a word. Never empty: a
    token that would read as nothing (``Ġ`` alone, a lone space) is returned raw.
    """
    text = _from_byte_level(token) or _from_byte_fallback(token)
    if text is None:  # not decodable as byte-level text: at least drop a leading-space mark
        text = token[1:] if token.startswith(SPACE_MARK) else token
    text = text.replace(SENTENCEPIECE_MARK, " ").lstrip(" ")
    for raw, shown in _VISIBLE_WHITESPACE:
        text = text.replace(raw, shown)
    return text if text.strip() else token


def is_punctuation(text: str) -> bool:
    """True when ``text`` is not empty and every character is Unicode punctuation (categories P*)."""
    return bool(text) and all(unicodedata.category(char).startswith("P") for char in text)


# --- words ---------------------------------------------------------------------------------------

def _join_pieces(pieces: Sequence[str]) -> str:
    """The raw text of a word from its pieces: WordPiece's ``##`` dropped from continuation pieces."""
    rest = (p[len(CONTINUATION):] if p.startswith(CONTINUATION) and len(p) > len(CONTINUATION) else p
            for p in pieces[1:])
    return pieces[0] + "".join(rest)


def _groups_from_word_ids(word_ids: Sequence[int | None], segment_ids: Sequence[int | None],
                          special: np.ndarray) -> list[list[int]]:
    """Tokens with the same (segment, word id) form one word; special and unaligned tokens stand alone."""
    groups: dict[object, list[int]] = {}
    for index, (word, segment) in enumerate(zip(word_ids, segment_ids)):
        key = ("token", index) if special[index] or word is None else ("word", segment, word)
        groups.setdefault(key, []).append(index)
    return sorted(groups.values(), key=lambda group: group[0])


def _word_marker(tokens: Sequence[str], special: np.ndarray) -> str | None:
    """The word-start mark the tokenizer uses (byte-level ``Ġ`` or SentencePiece ``▁``), if any."""
    content = [t for t, s in zip(tokens, special) if not s]
    for marker in (SPACE_MARK, SENTENCEPIECE_MARK):
        if any(t.startswith(marker) for t in content):
            return marker
    return None


def _continues(previous: str, token: str, marker: str | None) -> bool:
    """Whether ``token`` continues the word ``previous`` started, judging from the pieces alone."""
    if token.startswith(CONTINUATION) and len(token) > len(CONTINUATION):
        return True
    if marker is None or token.startswith((marker, NEWLINE_MARK)) or NEWLINE_MARK in previous:
        return False
    return not (is_punctuation(display_token(token)) or is_punctuation(display_token(previous)))


def _groups_from_pieces(tokens: Sequence[str], segment_ids: Sequence[int | None],
                        special: np.ndarray) -> list[list[int]]:
    """Words for a tokenizer without word ids: ``##`` pieces, and pieces without the word-start mark
    (``Ġ`` or ``▁``, when the tokenizer uses one), join the previous piece; punctuation stands alone."""
    marker = _word_marker(tokens, special)
    groups: list[list[int]] = []
    for index, token in enumerate(tokens):
        previous = index - 1
        joins = (
            bool(groups) and not special[index] and not special[previous]
            and segment_ids[index] == segment_ids[previous]
            and _continues(tokens[previous], token, marker)
        )
        if joins:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def word_groups(tokens: Sequence[str], word_ids: Sequence[int | None], segment_ids: Sequence[int | None],
                special_mask: Sequence[bool] | np.ndarray) -> tuple[list[list[int]], list[str]]:
    """Token indices grouped into words, in reading order, and each word's label.

    Tokens with the same (segment, word id) are one word; each special token, and each token without
    a word id, is a word of its own. Labels read as the word does: ``play ##ing`` -> ``playing``,
    ``Ġplay ing`` -> ``playing``, ``▁play ing`` -> ``playing``. When the tokenizer gave no word ids
    at all (every one None), the pieces themselves decide (see ``_groups_from_pieces``).
    """
    special = np.asarray(special_mask, dtype=bool)
    if not len(tokens) == len(word_ids) == len(segment_ids) == len(special):
        raise ValueError("tokens, word_ids, segment_ids and special_mask must have the same length")
    aligned = any(w is not None for w, s in zip(word_ids, special) if not s)
    if aligned:
        groups = _groups_from_word_ids(word_ids, segment_ids, special)
    else:
        groups = _groups_from_pieces(tokens, segment_ids, special)
    labels = [display_token(_join_pieces([tokens[i] for i in group])) for group in groups]
    return groups, labels


def _membership(groups: Sequence[Sequence[int]], seq: int) -> np.ndarray:
    """A ``(words, seq)`` 0/1 matrix: row w marks the tokens of word w. Groups must partition the tokens."""
    flat = [i for group in groups for i in group]
    if any(not group for group in groups) or sorted(flat) != list(range(seq)):
        raise ValueError(f"groups must split token indices 0..{seq - 1} into non-empty words, each token once")
    member = np.zeros((len(groups), seq), dtype=np.float32)
    for word, group in enumerate(groups):
        member[word, list(group)] = 1.0
    return member


def merge_subwords(att: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """Attention between words instead of tokens: ``(..., seq, seq) -> (..., words, words)`` float32.

    Attention *to* a word is the sum over its pieces (columns); attention *from* a word is the mean
    over its pieces (rows), so each row still sums to 1. ``groups`` comes from ``word_groups``.
    """
    att = as_float32(att)
    member = _membership(groups, att.shape[-1])
    to_words = att @ member.T  # (..., seq, words): summed over key pieces
    mean_rows = member / member.sum(axis=1, keepdims=True)
    return mean_rows @ to_words  # (..., words, words): averaged over query pieces


# --- special tokens ------------------------------------------------------------------------------

def _is_causal(att: np.ndarray) -> bool:
    """True when every strict upper triangle is zero (a decoder's attention), for more than one token."""
    seq = att.shape[-1]
    upper = np.triu_indices(seq, k=1)
    return seq > 1 and not np.any(att[..., upper[0], upper[1]])


def _uniform_rows(seq: int, causal: bool) -> np.ndarray:
    """Rows spreading evenly over the keys each query can see (all, or those up to itself)."""
    visible = np.tril(np.ones((seq, seq), dtype=np.float32)) if causal else np.ones((seq, seq), np.float32)
    return visible / visible.sum(axis=1, keepdims=True)


def hide_special(att: np.ndarray, special_mask: Sequence[bool] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Removes the rows and columns of special tokens and renormalises each remaining row to sum to 1.

    Returns the float32 attention ``(..., kept, kept)`` and the kept token indices. A row left with no
    mass at all (float16 can round small weights to 0) becomes uniform over the keys it can see: all
    of them, or for causal attention (zero upper triangle) those at or before it.
    """
    att = as_float32(att)
    special = np.asarray(special_mask, dtype=bool)
    if special.shape != (att.shape[-1],) or att.shape[-1] != att.shape[-2]:
        raise ValueError("hide_special needs (..., seq, seq) attention and a (seq,) special mask")
    kept = np.flatnonzero(~special)
    sub = att[..., kept[:, None], kept]
    mass = sub.sum(axis=-1, keepdims=True)
    empty = ~(mass > 0)
    if not empty.any():
        return sub / mass, kept
    fallback = _uniform_rows(len(kept), _is_causal(att))
    return np.where(empty, fallback, sub / np.where(empty, 1.0, mass)).astype(np.float32), kept


# --- across layers -------------------------------------------------------------------------------

def _check_model_attention(attentions: np.ndarray, what: str) -> None:
    if attentions.ndim != 4 or attentions.shape[-1] != attentions.shape[-2]:
        raise ValueError(f"{what} needs (layers, heads, seq, seq) attention, got shape {attentions.shape}")


def rollout(attentions: np.ndarray, residual: float = 0.5) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020): how much each token draws on each input token.

    Per layer the heads are averaged and the residual connection added, ``A' = residual * I +
    (1 - residual) * A``, rows renormalised; then ``R_0 = A'_0`` and ``R_l = A'_l @ R_{l-1}``.
    Returns ``(layers, seq, seq)`` float32 where ``R_l`` is the rollout through layer ``l``. Causal
    input stays lower triangular.
    """
    attentions = np.asarray(attentions)
    _check_model_attention(attentions, "rollout")
    if not 0.0 <= residual <= 1.0:
        raise ValueError("residual must be between 0 and 1")
    seq = attentions.shape[-1]
    mixed = residual * np.eye(seq, dtype=np.float32) + (1.0 - residual) * as_float32(attentions).mean(axis=1)
    sums = mixed.sum(axis=-1, keepdims=True)
    mixed = np.divide(mixed, sums, out=np.zeros_like(mixed), where=sums > 0)
    result = np.empty_like(mixed)
    result[0] = mixed[0]
    for layer in range(1, len(mixed)):
        result[layer] = mixed[layer] @ result[layer - 1]
    return result


def _top_k(weights: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` largest weights with their indices, highest first, ties: lower index first."""
    order = np.lexsort((np.arange(len(weights)), -weights))[:k]
    return [(int(i), float(weights[i])) for i in order]


def attended_by(attentions: np.ndarray, token: int, k: int = 3) -> list[list[tuple[int, float]]]:
    """For every layer, the ``k`` query tokens that attend to key ``token`` the most, heads averaged.

    The reverse of ``analysis.top_attended``: one list per layer of ``(query index, weight)``,
    highest weight first (ties: earlier token first).
    """
    attentions = np.asarray(attentions)
    _check_model_attention(attentions, "attended_by")
    seq = attentions.shape[-1]
    if not 0 <= token < seq:
        raise IndexError(f"token {token} is outside 0..{seq - 1}")
    k = max(1, min(k, seq))
    columns = as_float32(attentions[..., token]).mean(axis=1)  # (layers, queries)
    return [_top_k(column, k) for column in columns]
