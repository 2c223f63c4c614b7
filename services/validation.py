"""Checks and cleaning of user text, before any model runs."""

from __future__ import annotations

import unicodedata

from .errors import N_, InputError

_KEEP_CONTROL = {"\n", "\t"}
_CUT_LOOKBACK = 32  # characters a cut may move back to keep a character (grapheme) whole


def clean_text(text: str) -> str:
    """Removes control characters other than newline and tab, and lone surrogates.

    Carriage returns become newlines; everything else (emoji, accents, zero-width joiners, HTML) is
    kept exactly: the tokenizer sees what the person typed.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(
        ch for ch in text
        if ch in _KEEP_CONTROL or unicodedata.category(ch) not in ("Cc", "Cs")
    )


def validate_text(text: object, max_chars: int, *, what: str = "text", required: bool = True) -> str | None:
    """The cleaned text, or ``None`` for an empty optional text. Raises ``InputError`` with a plain message."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InputError(N_("The {what} must be plain text."), what=what)
    # The limit first, on the raw text: nothing below looks at each character of an over-long text.
    if len(text) > max_chars:
        raise InputError(N_("The {what} has {count} characters; the limit is {limit}. Shorten it and analyse again."),
                         what=what, count=f"{len(text):,}", limit=f"{max_chars:,}")
    cleaned = clean_text(text)
    if not cleaned.strip():
        if required:
            raise InputError(N_("The {what} is empty. Type a sentence to see what the model attends to."), what=what)
        return None
    return cleaned


def _joined(before: str, after: str, regional_run: int) -> bool:
    """Whether ``after`` belongs to the same user-perceived character as ``before`` (a cheap subset of
    Unicode's grapheme rules, UAX #29: the cases typed text has)."""
    if "\ud800" <= before <= "\udbff" or (before == "\r" and after == "\n"):
        return True  # a surrogate pair (a lone high surrogate from a browser), CR LF
    if before == "\u200d" or after == "\u200d":
        return True  # a zero-width joiner joins emoji sequences (👩‍💻)
    if unicodedata.category(after) in ("Mn", "Mc", "Me"):
        return True  # combining marks: é written as e + ́, Devanagari vowel signs
    if "\ufe00" <= after <= "\ufe0f" or "\U000e0100" <= after <= "\U000e01ef":
        return True  # variation selectors (❤️)
    if "\U0001f3fb" <= after <= "\U0001f3ff" or "\U000e0020" <= after <= "\U000e007f":
        return True  # skin tones, emoji tags (subdivision flags)
    regional = "\U0001f1e6" <= after <= "\U0001f1ff" and "\U0001f1e6" <= before <= "\U0001f1ff"
    return regional and regional_run % 2 == 1  # a flag is a pair of regional indicators


def cut_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a boundary that splits no surrogate pair and no
    character made of several code points (an accent, an emoji sequence, a flag), when one is within
    ``_CUT_LOOKBACK`` characters of the limit. Looks at a few characters only, however long the text."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if len(text) <= limit:
        return text
    end = limit
    while end > max(0, limit - _CUT_LOOKBACK):
        run = 0
        while run < end and "\U0001f1e6" <= text[end - 1 - run] <= "\U0001f1ff" and run < _CUT_LOOKBACK:
            run += 1
        if not _joined(text[end - 1], text[end], run):
            return text[:end]
        end -= 1
    return text[:limit]  # a run of joined characters longer than the look-back: cut at the limit
