"""Dash's callback endpoint, hardened: a malformed request gets a 400 with a plain message, never a 500.

Dash trusts the shape of ``POST /_dash-update-component`` (a body without ``inputs``, an ``output`` no
callback has, or inputs of the wrong count raise inside Dash). Anyone who can reach the port may send
any bytes, so the body's shape is checked before Dash reads it, and whatever still escapes Dash's
dispatch is answered 400 (our callback bodies never raise: ``common.guarded``). A script path Dash does
not serve (``/_dash-component-suites/dash/../../etc/passwd``) is a 404, where Dash would raise (500).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from typing import Any

from dash import Dash
from dash.exceptions import DependencyException
from flask import jsonify, request

log = logging.getLogger(__name__)

ENDPOINT = "_dash-update-component"
MAX_ITEMS = 256  # inputs or states a request may list: far above any callback here


def _is_prop(item: Any) -> bool:
    """One input or state: ``{"id": str | dict, "property": str, "value": ...}`` (or a list of them,
    for pattern-matching inputs)."""
    if isinstance(item, list):
        return len(item) <= MAX_ITEMS and all(_is_prop(i) for i in item)
    return (isinstance(item, Mapping) and isinstance(item.get("property"), str)
            and isinstance(item.get("id"), (str, Mapping)))


def problem(body: Any, callbacks: Mapping[str, Any]) -> str | None:
    """What is wrong with a callback request's body, in plain words, or None when Dash can read it."""
    if not isinstance(body, Mapping):
        return "The request body must be a JSON object."
    output = body.get("output")
    if not isinstance(output, str) or output not in callbacks:
        return "The request names no callback of this app."
    for name, required in (("inputs", True), ("state", False)):
        items = body.get(name)
        if items is None and not required:
            continue
        if not isinstance(items, list) or len(items) > MAX_ITEMS or not all(_is_prop(i) for i in items):
            return f"The request's {name} are malformed."
    expected = callbacks[output]
    if len(body["inputs"]) != len(expected.get("inputs", [])) or len(body.get("state") or []) != len(expected.get("state", [])):
        return "The request's inputs do not match the callback."
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        return "The request's changed properties are malformed."
    outputs = body.get("outputs")
    if not isinstance(outputs, (list, Mapping)):
        return "The request's outputs are malformed."
    return None


def harden(app: Dash) -> None:
    """Checks every callback request before Dash reads it; answers 400 for what Dash cannot handle."""
    server = app.server
    path = app.config.routes_pathname_prefix + ENDPOINT

    @server.before_request
    def _check_callback_request():
        if request.path != path or request.method != "POST":
            return None
        body = request.get_json(silent=True)
        reason = problem(body, app.callback_map)
        if reason is not None:
            return jsonify({"message": reason}), 400
        return None

    @server.errorhandler(DependencyException)
    def _unknown_script(exc):
        # Dash raises this for a /_dash-component-suites/ path it does not serve (a traversal like
        # ``dash/../../etc/passwd``, an unknown package): that is a 404, not a server failure.
        log.info("unknown component-suite path answered 404: %s", request.path[:200])
        return jsonify({"message": "Not found."}), 404

    @server.errorhandler(Exception)
    def _callback_failure(exc):
        from werkzeug.exceptions import HTTPException

        if isinstance(exc, HTTPException):
            return exc
        if request.path == path:
            # Never the exception's message: Dash's (InvalidCallbackReturnValue ...) quote the callback's
            # values, i.e. a person's text. The kind of failure and the callback's outputs say enough.
            log.warning("malformed callback request answered 400: %s in the callback for %s",
                        type(exc).__name__, _callback_named())
            return jsonify({"message": "The request could not be handled."}), 400
        log.error("request failed: %s\n%s", type(exc).__name__, where(exc))
        return jsonify({"message": "Something went wrong on the server."}), 500


def _callback_named() -> str:
    """The outputs the request names (component ids and properties: never a value), shortened. Never
    raises: the body may be what failed (JSON nested too deeply to read is a RecursionError)."""
    try:
        body = request.get_json(silent=True)
    except Exception:  # noqa: BLE001 - an error handler must not fail in turn
        return "(unreadable)"
    output = body.get("output") if isinstance(body, Mapping) else None
    return output[:200] if isinstance(output, str) else "(unknown)"


def where(exc: BaseException) -> str:
    """A traceback without the exceptions' messages (which may quote what a person typed): the frames
    of ``exc`` and of the exceptions it was raised from, each ending with its exception's type."""
    parts = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frames = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
        parts.append(f"{frames}{type(exc).__module__}.{type(exc).__qualname__}")
        exc = exc.__cause__ or exc.__context__
    return "\n(raised while handling)\n".join(reversed(parts))
