"""What the callbacks share: the one "never a traceback" guard, and messages for failures."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from services import AttentionExplorerError

log = logging.getLogger(__name__)

UNEXPECTED = "This view could not be drawn. Try Analyze again; if it persists, tell the admin."
NOT_ANALYSED = "Type a sentence and press Analyze."
EXPIRED = ("This analysis is no longer on the server (it was cleared to make room). "
           "Press Analyze to run it again.")
UNREADABLE = "This page's analysis could not be read. Press Analyze to run it again."


def message_for(exc: BaseException) -> str:
    """A failure in plain words: the services' own message, or a generic one (the error is logged)."""
    if isinstance(exc, AttentionExplorerError):
        return str(exc)
    log.error("callback failed", exc_info=exc)
    return UNEXPECTED


def guarded(fallback: Callable[[str], Any]):
    """Decorates a callback body so that it never raises: any exception becomes ``fallback(message)``
    (plain words; unexpected errors are logged with their traceback, never shown). Dash's
    ``PreventUpdate`` passes through."""
    from dash.exceptions import PreventUpdate

    def decorate(body):
        @functools.wraps(body)
        def wrapper(*args, **kwargs):
            try:
                return body(*args, **kwargs)
            except PreventUpdate:
                raise
            except Exception as exc:  # noqa: BLE001 - the one place a callback failure is caught
                return fallback(message_for(exc))
        return wrapper
    return decorate
