"""The inputs of a forward pass, checked the same way in the web process and in a Celery worker."""

from __future__ import annotations

import operator
from typing import Any

from ..errors import N_, InputError
from ..validation import validate_text
from .loading import check_allowed


def check_steps(steps: object, bound: int) -> int:
    """``steps`` as a whole number from 1 to ``bound``; ``InputError`` otherwise."""
    try:
        if isinstance(steps, bool):
            raise TypeError
        value = operator.index(steps)
    except TypeError:
        raise InputError(N_("The number of tokens to write must be a whole number, not {value}."),
                         value=repr(steps)[:40]) from None
    if not 1 <= value <= bound:
        raise InputError(N_("The number of tokens to write must be between 1 and {bound}; {value} is outside."),
                         bound=bound, value=value)
    return value


def checked_inputs(model_id: str | None, text: Any, text_pair: Any, target: Any,
                   max_chars: int) -> tuple[str, str, str | None, str | None]:
    """The model id (allowed, one spelling), the text, and the optional pair and target, validated
    (``validation.validate_text``): the same checks in the web process and in a Celery worker."""
    return (check_allowed(model_id), validate_text(text, max_chars, what=N_("text")),
            validate_text(text_pair, max_chars, what=N_("second sentence"), required=False),
            validate_text(target, max_chars, what=N_("target"), required=False))
