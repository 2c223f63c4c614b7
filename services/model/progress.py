"""Per-layer progress of a forward pass (issue 18): the attention functions see each layer go by.

``layer_steps(step)`` sets, for the forward passes this thread (context) runs inside it, a callable
``step(done, total)`` that the recording attention function (``record``) and the eager hooks
(``hooks``) call as the layers go by; it may raise (``services.errors.Cancelled``) to stop the pass
between two layers. Outside ``layer_steps`` nothing is called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_STEP: ContextVar[Callable[[int, int], None] | None] = ContextVar("attention_explorer_layer_step", default=None)


@contextmanager
def layer_steps(step: Callable[[int, int], None] | None) -> Iterator[None]:
    """``step`` for the forward passes run inside (None: none, e.g. a model's trial pass while loading,
    which must never be cancelled half-way)."""
    token = _STEP.set(step)
    try:
        yield
    finally:
        _STEP.reset(token)


def layer_done(done: int, total: int) -> None:
    """Tells the pass's ``step`` (if any) that ``done`` of ``total`` layers ran."""
    step = _STEP.get()
    if step is not None:
        step(int(done), max(int(total), int(done)))


def current_step() -> Callable[[int, int], None] | None:
    """The ``step`` of the pass this thread runs (None outside ``layer_steps``): a forward pass run
    elsewhere (a Celery worker, ``services.store.tasks``) reports the worker's layers to it."""
    return _STEP.get()
