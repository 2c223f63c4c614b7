"""Errors whose message a person can read, in any language the interface speaks.

Each error keeps its English ``template`` and its ``params``: ``str(error)`` is the English message
(logs, notebooks), and the interface translates the template through its catalogs and fills in the
parameters (``components.i18n.error_message``); parameters that are words (e.g. ``what="text"``) are
templates too. Templates are marked with ``N_`` so the catalogs' extraction finds them.
"""

from __future__ import annotations


def N_(template: str) -> str:
    """Marks a message template for translation; returns it unchanged (services never translate)."""
    return template


class AttentionExplorerError(Exception):
    """Base class: the message is written for the person using the app, never a traceback."""

    title = N_("Something went wrong")

    def __init__(self, template: str = "", **params) -> None:
        self.template = template
        self.params = params
        try:
            message = template.format(**params) if params else template
        except (KeyError, IndexError, ValueError):  # a template that names other fields: keep it whole
            message = template
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild, (type(self), self.template, self.params))


def _rebuild(cls, template, params):
    error = cls.__new__(cls)
    AttentionExplorerError.__init__(error, template, **params)
    return error


class InputError(AttentionExplorerError, ValueError):
    """The text cannot be analysed as given (empty, too long, ...)."""

    title = N_("Check the text")


class ModelNotAllowedError(AttentionExplorerError, ValueError):
    """The model id is not one of the configured models."""

    title = N_("Model not available")


class ModelLoadError(AttentionExplorerError, RuntimeError):
    """A configured model could not be loaded; the message says which and why."""

    title = N_("Model could not be loaded")


class RateLimitedError(AttentionExplorerError):
    """Too many analyses of new texts from one person in a short time; ``retry_after`` is in seconds."""

    title = N_("Please wait a moment")

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(N_("Too many new analyses from you: wait {seconds} s and try again."), seconds=self.retry_after)

    def __reduce__(self):  # rebuilt from its one argument (e.g. after a copy)
        return (type(self), (self.retry_after,))


class Cancelled(Exception):
    """Work was asked to stop (a Cancel button), and stopped between two steps (layers, heads)."""
