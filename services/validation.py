"""Checks and cleaning of user text, before any model runs."""

from __future__ import annotations

import unicodedata

from .errors import N_, InputError

_KEEP_CONTROL = {"\n", "\t"}


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
