"""The process's memory: ONE object owns every in-process cache, with one reset.

``memory()`` is the process's ``Memory``. It holds

- ``results``: recent analyses by cache key, in front of the shared cache (a layer or head change on a
  cached text costs no deserialisation);
- ``derived``: small results derived from an analysis (its rollout, head metrics, the grid's pictures),
  keyed by the analysis's cache key, so a layer or head change does not compute them again;
- ``vectors``: the query and key vectors of the layers Inside a head looked at;
- ``flight``: analyses under way, so concurrent requests for one text run it once;
- ``jobs``: work that takes seconds, run in a thread with progress and a Cancel (``services.store.jobs``;
  bounded, by random job id).

Each cache is a ``cachetools.LRUCache`` bounded in bytes (the least recently used entry goes first),
behind a lock. The bounds come from the settings (``ATTN_LOCAL_CACHE_MB`` for results, and fixed
shares for the others); ``configure(settings)`` applies them, ``reset()`` empties everything (tests,
a changed model). Nothing here is per-user state: every key names a text and a model, never a person.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

import cachetools

from .jobs import JobRegistry

DERIVED_MB = 128
VECTORS_MB = 256
_UNKNOWN_SIZE = 1024


def size_of(value: Any) -> int:
    """Bytes a value holds: its ``nbytes`` (arrays, results), summed over tuples, lists and dicts."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return max(1, nbytes)
    if isinstance(value, (tuple, list)):
        return 64 + sum(size_of(v) for v in value)
    if isinstance(value, dict):
        return 64 + sum(size_of(k) + size_of(v) for k, v in value.items())
    if isinstance(value, (str, bytes)):
        return 64 + len(value)
    return _UNKNOWN_SIZE


class ByteLRU:
    """A thread-safe ``cachetools.LRUCache`` bounded in bytes. A value larger than the bound is not kept."""

    def __init__(self, limit_bytes: int) -> None:
        self._lock = threading.Lock()
        self._cache = self._new(limit_bytes)

    @staticmethod
    def _new(limit: int) -> cachetools.LRUCache:
        return cachetools.LRUCache(maxsize=max(0, int(limit)), getsizeof=lambda item: item[1])

    @property
    def limit(self) -> int:
        return int(self._cache.maxsize)

    @property
    def nbytes(self) -> int:
        return int(self._cache.currsize)

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            item = self._cache.get(key)
        return None if item is None else item[0]

    def put(self, key: Hashable, value: Any, size: int | None = None) -> None:
        size = max(1, int(size if size is not None else size_of(value)))
        with self._lock:
            self._cache.pop(key, None)
            if size <= self._cache.maxsize:
                self._cache[key] = (value, size)

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value under ``key``, computed (outside the lock) and kept when missing. A key whose first
        part is None (a result made in code, with no cache key) is computed every time."""
        if isinstance(key, tuple) and key and key[0] is None:
            return compute()
        found = self.get(key)
        if found is not None:
            return found
        value = compute()
        self.put(key, value)
        return value

    def resize(self, limit_bytes: int) -> None:
        """A new bound; the entries are forgotten when it changes."""
        with self._lock:
            if int(limit_bytes) != self._cache.maxsize:
                self._cache = self._new(limit_bytes)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


class SingleFlight:
    """Concurrent calls for the same key run once; the others wait for that result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, Future] = {}

    def run(self, key: Hashable, fn: Callable[[], Any]) -> Any:
        with self._lock:
            future = self._calls.get(key)
            leader = future is None
            if leader:
                future = Future()
                self._calls[key] = future
        if not leader:
            return future.result()
        try:
            result = fn()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            with self._lock:
                self._calls.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)


class Memory:
    """Every in-process cache of the services, with one reset (see the module's docstring)."""

    def __init__(self, results_mb: int = 256, derived_mb: int = DERIVED_MB, vectors_mb: int = VECTORS_MB) -> None:
        self.results = ByteLRU(results_mb * 1024 * 1024)
        self.derived = ByteLRU(derived_mb * 1024 * 1024)
        self.vectors = ByteLRU(vectors_mb * 1024 * 1024)
        self.flight = SingleFlight()
        self.jobs = JobRegistry()

    def configure(self, results_mb: int) -> None:
        """The bound of ``results`` in megabytes (0 keeps nothing: a null cache)."""
        self.results.resize(max(0, int(results_mb)) * 1024 * 1024)

    def reset(self) -> None:
        """Forgets everything this process remembers of analyses (flights under way finish as they are)."""
        for cache in (self.results, self.derived, self.vectors):
            cache.clear()

    @property
    def nbytes(self) -> int:
        return self.results.nbytes + self.derived.nbytes + self.vectors.nbytes


_memory = Memory()


def memory() -> Memory:
    """The process's ``Memory`` (one per process; read-only settings, shared caches of analyses)."""
    return _memory
