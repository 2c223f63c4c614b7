"""What the callbacks share: the one "never a traceback" guard, and messages for failures."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..components.i18n import N_, _, error_message, translate
from ..services import AttentionExplorerError
from ..services.analyses.exports import view_csv_chunks_for
from ..services.analyses.kinds import dims_of
from ..services.store.recipes import Recipe, for_page
from .boundary import Handle

log = logging.getLogger(__name__)

UNEXPECTED = N_("This view could not be drawn. Try Analyze again; if it persists, tell the admin.")
NOT_ANALYSED = N_("Type a sentence and press Analyze.")
EXPIRED = N_("This analysis is no longer on the server (it was cleared to make room). Press Analyze to run it again.")
UNREADABLE = N_("This page's analysis could not be read. Press Analyze to run it again.")


class Unavailable(Exception):
    """The view (or its export) cannot be drawn; the message (in the page's language) says why."""


class Refused(Unavailable):
    """A route's request that will not be answered (a download, exact values); ``status`` is the HTTP
    status the route answers with (``plain_response``), ``retry_after`` the seconds to wait (429)."""

    def __init__(self, message: str, status: int = 422, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def handle_of(key: str, result, recipe: Recipe | None) -> Handle:
    """The page's handle: the key, the most layers, heads and tokens any kind of attention has, and the
    recipe (``services.extraction.Analysis.recipe``) signed, so that any web process can compute the
    result again when the shared cache cannot give it (a long text by its short id when the cache keeps it)."""
    sealed = for_page(recipe) if recipe is not None else None
    return Handle(key, result.model_id, *dims_of(result), sealed=sealed, recipe=recipe)


def numbers_csv(name: str) -> Callable[..., Iterable[str]]:
    """The CSV of a view that shows attention weights (``services.analyses.exports.view_numbers`` names
    what each shows): the chosen layer, head (a number, ``mean`` or ``all``) and followed token, in
    pieces (checked before the first)."""

    def csv(result, state, view, max_rows: int) -> Iterable[str]:
        head: Any = state.head.number if state.head.number is not None else state.head.kind
        return view_csv_chunks_for(view, name, state.layer, head, state.token, max_rows=max_rows)

    return csv


def message_for(exc: BaseException) -> str:
    """A failure in plain words, in the page's language: the services' own message, or a generic one
    (the error is logged)."""
    if isinstance(exc, AttentionExplorerError):
        return error_message(exc)
    log.error("callback failed", exc_info=exc)
    return translate(UNEXPECTED)


def note_of(options) -> str:
    """A short line for figure titles saying what the switches changed from the raw attention."""
    parts = []
    if options.rollout:
        parts.append(_("rollout"))
    if getattr(options, "value_norm", False):
        parts.append(_("weighted by value norm, rows renormalised"))
    if options.merge_words:
        parts.append(_("sub-words merged"))
    if options.hide_special:
        parts.append(_("special tokens hidden, rows renormalised"))
    if getattr(options, "drop_first", False):
        parts.append(_("first token left out, rows renormalised"))
    return " · ".join(parts)


KIND_NAMES = {"encoder": N_("encoder self-attention"), "decoder": N_("decoder self-attention"),
              "cross": N_("cross-attention: target tokens (rows) → source tokens (columns)")}


def view_note(view) -> str:
    """``note_of`` plus, for an encoder-decoder model, the kind of attention shown, and the pair
    filter when one is on: the grey note of every view's title."""
    parts = []
    if view.result.is_encoder_decoder:
        parts.append(translate(KIND_NAMES[view.kind]))
    if view.pair:
        parts.append(_("only {pair} (the rest left blank)").format(pair=view.pair))
    if note_of(view.options):
        parts.append(note_of(view.options))
    return " · ".join(parts)


def matrix_title(options, layer: int, head: int | None) -> str:
    """The title of one matrix: a head, the mean of heads, or the rollout through a layer."""
    if options.rollout:
        return _("Rollout through layer {layer} (heads averaged)").format(layer=layer)
    if head is None:
        return _("Layer {layer} · Mean of heads").format(layer=layer)
    return _("Layer {layer} · Head {head}").format(layer=layer, head=head)


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


def plain_response(message: str, status: int, retry_after: int | None = None):
    """A refusal (or a plain message) from one of the app's own routes (downloads, exact values): plain
    text, never cached, with ``Retry-After`` when the person must wait."""
    from flask import Response

    response = Response(message + "\n", status=status, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def progress_outputs(name: str, job: str, poll: str, area: str, text: str, bar: str, label: str) -> dict:
    """The outputs of a background pass's progress area (components/layout.py ``_progress_area``) by
    ``<name>_job``, ``<name>_poll``, ``<name>_progress``, ``_progress_text``, ``_progress_bar``,
    ``_progress_label``: its job, its poll, the area shown or hidden, its lines and its bar."""
    from dash import Output

    return {f"{name}_job": Output(job, "data", allow_duplicate=True),
            f"{name}_poll": Output(poll, "disabled", allow_duplicate=True),
            f"{name}_progress": Output(area, "style", allow_duplicate=True),
            f"{name}_progress_text": Output(text, "children", allow_duplicate=True),
            f"{name}_progress_bar": Output(bar, "value", allow_duplicate=True),
            f"{name}_progress_label": Output(label, "children", allow_duplicate=True)}
