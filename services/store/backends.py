"""Cache backends that never unpickle: flask-caching's interface, ``services.codec`` underneath.

flask-caching's own backends (cachelib) pickle every value, and cachelib's file-system cache also
unpickles its count file on every write: a file planted in its folder, or a value planted in
Redis, runs code in the web process. These backends are registered through flask-caching's
``CACHE_TYPE`` import path (``services.cache`` does it) and store only what ``services.codec``
writes; anything else they find is logged, dropped and treated as a miss.

- ``SafeFileSystemCache``: one file per entry in a private folder (``private_dir_problem`` checks
  it), a small header with the expiry time, then the codec's bytes. Bounded in bytes and in entries,
  the oldest entries (by write time) removed first; no count file.
- ``SafeRedisCache``: flask-caching's Redis cache with the codec as its serializer.
- ``SafeSimpleCache``: the in-memory cache (tests, one process), with the same serializer.

Each has ``reachable()``: a check that writes nothing (``/healthz`` uses it).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import struct
import tempfile
import time
from typing import Any

from flask_caching.backends.base import BaseCache
from flask_caching.backends.rediscache import RedisCache
from flask_caching.backends.simplecache import SimpleCache

from . import codec

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- serializer


class CodecSerializer:
    """cachelib's serializer interface (``dumps`` / ``loads``) over ``services.codec``: no pickle."""

    def dumps(self, value: Any, *_: Any, **__: Any) -> bytes:
        return codec.encode(value)

    def loads(self, value: bytes | None, *_: Any, **__: Any) -> Any:
        if value is None:
            return None
        try:
            return codec.decode(value)
        except codec.DecodeError as exc:
            log.warning("ignored a cache value this version cannot read (%s): treated as a miss", exc)
            return None


# --------------------------------------------------------------------------------------------- Redis and memory


class SafeRedisCache(RedisCache):
    """flask-caching's ``RedisCache`` storing ``services.codec`` bytes (cachelib's stores pickles)."""

    serializer = CodecSerializer()

    def reachable(self) -> bool:
        """Whether Redis answers a PING (writes nothing)."""
        return bool(self._read_client.ping())

    def problem(self) -> str | None:
        """Why the cache cannot be used now, in plain words (no host), or None. Raises when Redis fails."""
        return None if self.reachable() else "Redis does not answer"


class SafeSimpleCache(SimpleCache):
    """flask-caching's in-process ``SimpleCache`` with the codec instead of pickle."""

    serializer = CodecSerializer()

    def reachable(self) -> bool:
        return True

    def problem(self) -> str | None:
        return None


# --------------------------------------------------------------------------------------------- the private folder


def private_dir_problem(path: str) -> str | None:
    """Creates ``path`` (mode 0700) if needed; ``None`` when it is a folder this process owns and
    nobody else can write to, else why it is refused (for the log). Never raises."""
    if not path or not os.path.isabs(os.path.expanduser(path)):
        return "the cache folder must be an absolute path"
    path = os.path.expanduser(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        return "it is not a folder"
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.stat(path)  # a symlink (systemd's DynamicUser= makes one) is judged by its target
    except OSError as exc:
        return f"it cannot be created or read ({exc.strerror or type(exc).__name__})"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a folder"
    if info.st_uid != os.geteuid():
        return f"it belongs to another user (uid {info.st_uid}), so it could hold values planted by them"
    if info.st_mode & 0o022:
        return f"other users can write to it (mode {stat.S_IMODE(info.st_mode):o}); make it 0700"
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        return "this process cannot read and write it"
    return None


# --------------------------------------------------------------------------------------------- file system

_FILE = struct.Struct("<4sBd")  # magic, version, expiry (seconds since the epoch; 0: never)
_FILE_MAGIC = b"AEFS"
_FILE_VERSION = 1
_SUFFIX = ".aec"
_TMP_PREFIX = ".tmp-"
_STALE_TMP_S = 3600.0
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def disk_free(path: str) -> int | None:
    """Bytes this process may still write on the file system that holds ``path`` (None: unknown)."""
    try:
        info = os.statvfs(path)
    except (OSError, AttributeError):
        return None
    return int(info.f_bavail) * int(info.f_frsize)


class SafeFileSystemCache(BaseCache):
    """Entries as files in a private folder, bounded in bytes and entries, oldest removed first.

    Shared by every process on the host: each write is a new file moved into place atomically, and
    before each write the folder is measured and pruned to make room for it, within the bound and
    within the disk's free space, so several processes keep the bound together and a bound larger
    than the disk does not stop the cache when the disk fills.
    """

    def __init__(self, cache_dir: str, default_timeout: int = 300, max_bytes: int = 2048 * 1024 * 1024,
                 max_entries: int = 0, ignore_delete_many_errors: bool = False) -> None:
        super().__init__(default_timeout=default_timeout, ignore_delete_many_errors=ignore_delete_many_errors)
        self._dir = os.path.expanduser(cache_dir)
        self.max_bytes = int(max_bytes)
        self.max_entries = int(max_entries)
        self.serializer = CodecSerializer()

    @classmethod
    def factory(cls, app, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]) -> "SafeFileSystemCache":
        return cls(config["CACHE_DIR"], max_bytes=int(config["ATTN_CACHE_MAX_BYTES"]),
                   max_entries=int(config.get("CACHE_THRESHOLD") or 0), **kwargs)

    @property
    def directory(self) -> str:
        return self._dir

    def path_for(self, key: str) -> str:
        """The file that holds ``key`` (a hash of it: keys never become paths)."""
        return os.path.join(self._dir, hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest() + _SUFFIX)

    # ----------------------------------------------------------------- reading

    def _read(self, path: str) -> bytes | None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cache entry %s could not be opened (%s): treated as a miss", os.path.basename(path), exc)
            return None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                return None
            return handle.read()

    def get(self, key: str) -> Any:
        path = self.path_for(key)
        raw = self._read(path)
        if raw is None:
            return None
        if len(raw) < _FILE.size:
            return self._drop(path, "truncated")
        magic, version, expires = _FILE.unpack_from(raw, 0)
        if magic != _FILE_MAGIC or version != _FILE_VERSION:
            return self._drop(path, "not written by this version")
        if expires and expires < time.time():
            self._remove(path)
            return None
        try:
            return codec.decode(memoryview(raw)[_FILE.size:])
        except codec.DecodeError as exc:
            return self._drop(path, str(exc))

    def has(self, key: str) -> bool:
        path = self.path_for(key)
        try:
            with open(path, "rb") as handle:
                head = handle.read(_FILE.size)
        except OSError:
            return False
        if len(head) < _FILE.size:
            return False
        magic, version, expires = _FILE.unpack(head)
        return magic == _FILE_MAGIC and version == _FILE_VERSION and (not expires or expires >= time.time())

    def _drop(self, path: str, why: str) -> None:
        log.warning("ignored unreadable cache entry %s (%s): removed, treated as a miss", os.path.basename(path), why)
        self._remove(path)
        return None

    @staticmethod
    def _remove(path: str) -> bool:
        try:
            os.remove(path)
            return True
        except FileNotFoundError:
            return False

    # ----------------------------------------------------------------- writing

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        """Writes ``value`` under ``key``: room is made first (the oldest entries removed until the new one
        fits both the bound and the disk's free space); when the disk is full all the same (another
        process wrote meanwhile), room is made again and the write tried once more. An entry that could
        never fit is not written (False). A write that still fails raises (the cache's breaker logs it)."""
        try:
            data = codec.encode(value)
        except TypeError as exc:
            log.warning("not cached: %s", exc)
            return False
        need = _FILE.size + len(data)
        if need > self.max_bytes:
            return False  # larger than the whole cache: computed again when needed
        timeout = self._normalize_timeout(timeout)
        expires = time.time() + timeout if timeout else 0.0
        header = _FILE.pack(_FILE_MAGIC, _FILE_VERSION, expires)
        if not self.prune(reserve=need):
            return False  # larger than the disk could hold even with every entry removed
        try:
            self._write(key, header, data)
        except OSError as exc:
            if exc.errno not in _DISK_FULL:
                raise
            log.warning("the cache's disk is full (%s): removing the oldest entries and trying once more", exc)
            if not self.prune(reserve=need + max(need // 8, 1 << 16)):  # a margin for the file system's own blocks
                return False
            self._write(key, header, data)
        return True

    def _write(self, key: str, header: bytes, data: bytes) -> None:
        """One entry written to a temporary file and moved into place (atomic for readers)."""
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=_TMP_PREFIX)  # 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(header)
                handle.write(data)
            now = time.time_ns()  # the write time to the nanosecond: "oldest first" even within one clock tick
            os.utime(tmp, ns=(now, now))
            os.replace(tmp, self.path_for(key))
        except BaseException:
            self._remove(tmp)
            raise

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        if self.has(key):
            return False
        return self.set(key, value, timeout)

    def delete(self, key: str) -> bool:
        return self._remove(self.path_for(key))

    def clear(self) -> bool:
        for entry in self._entries():
            self._remove(entry[2])
        return True

    def _entries(self) -> list[tuple[int, int, str]]:
        """(write time, size, path) of every entry; stale temporary files are removed on the way."""
        found = []
        now = time.time()
        with os.scandir(self._dir) as scan:
            for item in scan:
                try:
                    info = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if item.name.startswith(_TMP_PREFIX):
                    if now - info.st_mtime > _STALE_TMP_S:
                        self._remove(item.path)
                    continue
                if item.name.endswith(_SUFFIX) and stat.S_ISREG(info.st_mode):
                    found.append((info.st_mtime_ns, info.st_size, item.path))
        return found

    def prune(self, reserve: int = 0) -> bool:
        """Removes the oldest entries until the folder holds at most ``max_bytes`` and ``max_entries`` with
        room for ``reserve`` more bytes (and one more entry, when ``reserve``), and until the disk has
        ``reserve`` bytes free. False (removing nothing) when the disk could not hold ``reserve`` bytes
        even with every entry removed."""
        entries = sorted(self._entries())
        total = sum(size for _, size, _ in entries)
        count = len(entries) + (1 if reserve else 0)
        free = disk_free(self._dir) if reserve else None
        if free is not None and free + total < reserve:
            return False
        for _, size, path in entries:
            if (total + reserve <= self.max_bytes and (not self.max_entries or count <= self.max_entries)
                    and (free is None or free >= reserve)):
                break
            if self._remove(path):
                total -= size
                count -= 1
                if free is not None:
                    free += size
        return True

    def size(self) -> tuple[int, int]:
        """(entries, bytes) in the folder now."""
        entries = self._entries()
        return len(entries), sum(size for _, size, _ in entries)

    def reachable(self) -> bool:
        """Whether the folder is there and usable (writes nothing)."""
        return self.problem() is None

    def problem(self) -> str | None:
        """Why the folder cannot be used now, in plain words (no path), or None (writes nothing)."""
        if not os.path.isdir(self._dir):
            return "the cache folder is missing"
        if not os.access(self._dir, os.R_OK | os.W_OK | os.X_OK):
            return "the cache folder cannot be written (it is read-only, or its permissions changed)"
        return None
