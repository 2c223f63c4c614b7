"""A file-system cache whose bound is larger than its disk keeps working when the disk fills (issue 19).

Before: the folder was pruned only after a successful write, and only down to ``ATTN_CACHE_MAX_MB``; on a
disk smaller than that bound, once the disk was full every write failed with ENOSPC and nothing was
ever pruned again (a 36 MB entry never fit). Now room is made before each write, within the bound and
within the disk's free space, and a write that meets a full disk all the same prunes and tries once more.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from attention_explorer.services.store import backends
from attention_explorer.services.store.backends import SafeFileSystemCache
from tests.helpers import uniform_result as _result

BIG_BOUND = 2048 * 1024 * 1024  # the default ATTN_CACHE_MAX_MB: far more than the disks below


def _folder_bytes(path: str) -> int:
    return sum(entry.stat().st_size for entry in os.scandir(path))


class FakeDisk:
    """A disk of ``capacity`` bytes under the cache folder: ``disk_free`` says what is left, and a write
    that does not fit fails with ENOSPC, as the operating system's would."""

    def __init__(self, monkeypatch, capacity: int) -> None:
        self.capacity = capacity
        self.full_writes = 0
        real_write = SafeFileSystemCache._write

        def write(cache, key, header, data):
            if _folder_bytes(cache.directory) + len(header) + len(data) > self.capacity:
                self.full_writes += 1
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(cache, key, header, data)

        monkeypatch.setattr(backends, "disk_free", lambda path: self.capacity - _folder_bytes(path))
        monkeypatch.setattr(SafeFileSystemCache, "_write", write)


def test_a_bound_larger_than_the_disk_prunes_before_writing(tmp_path, monkeypatch):
    # each entry: 300 x 300 float16 = 180 KB; the disk holds 1 MB, the bound says 2 GB
    disk = FakeDisk(monkeypatch, capacity=1024 * 1024)
    cache = SafeFileSystemCache(str(tmp_path), max_bytes=BIG_BOUND)
    for i in range(12):
        assert cache.set(f"entry-{i}", _result(300, f"text {i}")), f"write {i + 1} failed"
        assert _folder_bytes(str(tmp_path)) <= disk.capacity
    assert disk.full_writes == 0  # room was made before each write: the disk never ran full
    kept = [i for i in range(12) if cache.get(f"entry-{i}") is not None]
    assert kept == list(range(12 - len(kept), 12)) and 4 <= len(kept) <= 5  # the newest, oldest removed first
    # one entry larger than the whole disk is not written, and removes nothing for nothing
    assert cache.set("huge", _result(800, "huge")) is False
    assert [i for i in range(12) if cache.get(f"entry-{i}") is not None] == kept


def test_a_disk_that_fills_meanwhile_is_pruned_and_the_write_tried_once_more(tmp_path, monkeypatch):
    disk = FakeDisk(monkeypatch, capacity=1024 * 1024)
    cache = SafeFileSystemCache(str(tmp_path), max_bytes=BIG_BOUND)
    for i in range(5):
        assert cache.set(f"entry-{i}", _result(300, f"text {i}"))
    # another process's writes took the room this write's first check saw (once; then the truth)
    truth = backends.disk_free
    answers = iter([disk.capacity])
    monkeypatch.setattr(backends, "disk_free", lambda path: next(answers, None) or truth(path))
    assert cache.set("late", _result(300, "late"))
    assert disk.full_writes == 1  # it met the full disk once, made room and wrote
    assert cache.get("late").text == "late" and cache.get("entry-0") is None
    assert not [p for p in Path(tmp_path).iterdir() if p.name.startswith(".tmp-")]  # no half-written file left


def test_a_write_that_still_fails_raises_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    cache = SafeFileSystemCache(str(tmp_path), max_bytes=BIG_BOUND)
    calls = []

    def always_full(*args, **kwargs):
        calls.append(1)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", always_full)
    with pytest.raises(OSError):
        cache.set("entry", _result(50, "x"))
    assert len(calls) == 2  # tried, made room, tried once more: not a loop
    assert list(Path(tmp_path).iterdir()) == []


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 4 MB file system (tmpfs), mounted for the test: needs root (CAP_SYS_ADMIN)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'not root'}); "
                    "the FakeDisk tests above cover the same code")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_under_a_larger_bound(small_tmpfs):
    # 700 x 700 float16 = 980 KB an entry: four fit on the 4 MB disk, the bound says 2 GB
    cache = SafeFileSystemCache(str(small_tmpfs), max_bytes=BIG_BOUND)
    for i in range(10):
        assert cache.set(f"entry-{i}", _result(700, f"text {i}")), f"write {i + 1} failed"
    assert cache.get("entry-9").text == "text 9" and cache.get("entry-0") is None
    entries, size = cache.size()
    assert 2 <= entries <= 4 and size <= 4 * 1024 * 1024
