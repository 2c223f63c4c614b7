"""Errors whose message a person can read. The dashboard shows ``str(error)`` as it is."""


class AttentionExplorerError(Exception):
    """Base class: the message is written for the person using the app, never a traceback."""

    title = "Something went wrong"


class InputError(AttentionExplorerError, ValueError):
    """The text cannot be analysed as given (empty, too long, ...)."""

    title = "Check the text"


class ModelNotAllowedError(AttentionExplorerError, ValueError):
    """The model id is not one of the configured models."""

    title = "Model not available"


class ModelLoadError(AttentionExplorerError, RuntimeError):
    """A configured model could not be loaded; the message says which and why."""

    title = "Model could not be loaded"


class RateLimitedError(AttentionExplorerError):
    """Too many analyses of new texts from one person in a short time; ``retry_after`` is in seconds."""

    title = "Please wait a moment"

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(f"Too many new analyses from you: wait {self.retry_after} s and try again.")

    def __reduce__(self):  # rebuilt from its one argument (e.g. after a copy)
        return (type(self), (self.retry_after,))
