"""Tokens as people read them, and words made of tokens. Pure Python + numpy: no model, no Dash.

Typical use on an ``AttentionResult`` ``r``::

    display_token("Ġcat")                                              # "cat"
    groups, words = word_groups(r.tokens, r.word_ids, r.segment_ids, r.special_mask)
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
VISIBLE_SPACE = "␣"  # a token that is a space and nothing else
_VISIBLE_WHITESPACE = (("\r\n", "↵"), ("\n", "↵"), ("\r", "↵"), ("\t", "⇥"))
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece byte-fallback pieces


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
    token of spaces alone (``Ġ``, ``▁``, ``ĠĠ``) shows each space as ``␣``; other tokens that would read
    as nothing are returned raw.
    """
    text = _from_byte_level(token) or _from_byte_fallback(token)
    if text is None:  # not decodable as byte-level text: at least drop a leading-space mark
        text = token[1:] if token.startswith(SPACE_MARK) else token
    text = text.replace(SENTENCEPIECE_MARK, " ")
    if text and not text.strip(" "):  # spaces alone: each one shown
        return VISIBLE_SPACE * len(text)
    text = text.lstrip(" ")
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
