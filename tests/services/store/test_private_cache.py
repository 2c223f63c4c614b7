"""The file-system cache lives in a private folder, bounded in bytes, and never stops the app (issue 9).

Each test fails on the code before issue 9: the default folder was /tmp/attention-explorer-cache,
used whoever owned it and whoever could write to it, bounded only by a count of entries, and a
folder that could not be created made ``import app`` raise.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from attention_explorer.services import extract_attention
from attention_explorer.services.config import Settings
from attention_explorer.services.store import cache
from tests.helpers import uniform_result as _result
from tests.servers import PROJECT_ROOT, child_env
from tests.test_deploy import _bind


def test_default_folder_is_under_the_user_cache_home_and_private(settings, tmp_path, monkeypatch):
    for name in ("ATTN_CACHE_DIR", "CACHE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Settings.from_env().cache_dir == str(tmp_path / "xdg" / "attention-explorer")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    default = Settings.from_env().cache_dir
    assert default == str(tmp_path / "home" / ".cache" / "attention-explorer")
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path / "systemd"))  # a unit with CacheDirectory=
    assert Settings.from_env().cache_dir == str(tmp_path / "systemd")
    monkeypatch.delenv("CACHE_DIRECTORY")

    _bind(cache_type="filesystem", cache_dir=default)
    assert stat.S_IMODE(os.stat(default).st_mode) == 0o700
    assert cache.status() == {"type": "filesystem", "reachable": True}
    cache.store("k", "v")
    entry = next(p for p in os.scandir(default))
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600


@pytest.mark.parametrize("how", ["others-can-write", "someone-else-owns-it"])
def test_a_folder_that_is_not_private_is_refused(settings, tiny_models, tmp_path, caplog, how):
    shared = tmp_path / "shared"
    shared.mkdir()
    if how == "others-can-write":
        shared.chmod(0o777)  # like a folder another user made in /tmp
    else:
        if os.geteuid() != 0:
            pytest.skip("only root can give a folder to another user")
        os.chown(shared, 65534, 65534)  # nobody
        shared.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="attention_explorer.services.store.cache"):
        _bind(cache_type="filesystem", cache_dir=str(shared))
    refusals = [r for r in caplog.records if "not using the folder" in r.getMessage()]
    assert len(refusals) == 1 and str(shared) in refusals[0].getMessage()  # one clear line, for the admin
    result = extract_attention("the cat sat", tiny_models["bert"])  # computed without the shared cache
    cache.flush()
    assert result.seq_len == 5
    assert list(shared.iterdir()) == []  # nothing written to (or read from) the folder
    status = cache.status()
    assert status["reachable"] is False and str(shared) not in json.dumps(status)


def test_private_dir_problem_says_why(tmp_path):
    from attention_explorer.services.store.backends import private_dir_problem

    ok = tmp_path / "ok"
    assert private_dir_problem(str(ok)) is None and stat.S_IMODE(ok.stat().st_mode) == 0o700
    (tmp_path / "file").write_text("x")
    assert "cannot be created" in private_dir_problem(str(tmp_path / "file" / "cache"))
    assert "not a folder" in private_dir_problem(str(tmp_path / "file"))
    assert "absolute" in private_dir_problem("relative/cache")
    writable = tmp_path / "g"
    writable.mkdir()
    writable.chmod(0o770)
    assert "other users can write" in private_dir_problem(str(writable))


_IMPORT_APP = textwrap.dedent("""
    import json
    import app
    client = app.server.test_client()
    health = client.get("/healthz")
    page = client.get("/")
    print(json.dumps({"health": health.get_json(), "page": page.status_code}))
""")


def test_a_folder_that_cannot_be_created_does_not_stop_the_app(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = child_env(ATTN_CACHE_DIR=str(blocker / "cache"), ATTN_DEFAULT_MODEL="all-MiniLM-L6-v2")
    done = subprocess.run([sys.executable, "-c", _IMPORT_APP], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["page"] == 200
    assert out["health"]["status"] == "degraded" and out["health"]["cache"]["reachable"] is False
    assert str(blocker) not in json.dumps(out["health"])
    assert "not using the folder" in done.stderr and done.stderr.count("not using the folder") == 1


def test_the_cache_is_bounded_in_bytes_oldest_first(settings, tmp_path):
    _bind(cache_type="filesystem", cache_dir=str(tmp_path / "bounded"), cache_max_mb=1, cache_threshold=0)
    from attention_explorer.services.store.backends import SafeFileSystemCache

    backend = cache.cache.cache
    assert isinstance(backend, SafeFileSystemCache) and backend.max_bytes == 1024 * 1024
    # each entry: 300 x 300 float16 = 180 KB: five fit in 1 MB, six do not
    for i in range(12):
        assert backend.set(f"entry-{i}", _result(300, f"text {i}"))
        entries, size = backend.size()
        assert size <= 1024 * 1024, f"{size} bytes after {i + 1} writes"
    kept = [i for i in range(12) if backend.get(f"entry-{i}") is not None]
    assert kept == list(range(12 - len(kept), 12)) and 4 <= len(kept) <= 5  # the newest, in order
    assert backend.get("entry-11").text == "text 11"
    # One entry larger than the whole cache is not stored (it would evict everything for nothing).
    assert backend.set("huge", _result(800, "huge")) is False
    assert backend.get("entry-11") is not None


def test_cache_max_mb_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ATTN_CACHE_MAX_MB", "300")
    settings = Settings.from_env()
    assert settings.cache_max_mb == 300
    assert cache.cache_config(settings.replace(cache_type="filesystem"))["ATTN_CACHE_MAX_BYTES"] == 300 * 1024 * 1024
    assert Settings().cache_max_mb == 2048
