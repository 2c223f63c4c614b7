"""The server's secret (services/store/secret.py) and sealed recipes (services/store/recipes.py), issue 19.

Every web process that may answer a page must sign and read handles with one secret: ATTN_SECRET_KEY,
else a private file in the cache folder (shared by the host's processes, kept across restarts), else the
gunicorn master's secret for its workers, else one of the process's own. Several hosts must share one.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from attention_explorer.services.config import Settings
from attention_explorer.services.store import recipes, secret
from attention_explorer.services.store.recipes import Recipe
from tests.servers import PROJECT_ROOT, child_env

KEY = "a lab's secret key, long enough to sign with"


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv(secret.RUN_SECRET, raising=False)
    secret.forget()
    yield
    secret.forget()


def _in_child(cache_dir: str, **env: str) -> str:
    """The secret another process finds (hex)."""
    code = ("from attention_explorer.services.config import Settings; from attention_explorer.services.store import "
            f"secret; print(secret.server_secret(Settings(cache_dir={cache_dir!r})).hex())")
    done = subprocess.run([sys.executable, "-c", code], cwd=str(PROJECT_ROOT), env=child_env(**env),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_the_configured_key_wins(tmp_path):
    settings = Settings(cache_dir=str(tmp_path / "cache"), secret_key=KEY)
    assert secret.server_secret(settings) == KEY.encode()
    assert not (tmp_path / "cache" / secret.FILE_NAME).exists()
    assert "secret_key" not in repr(settings) and KEY not in repr(settings)  # never shown


def test_the_cache_folder_keeps_one_for_every_process_of_the_host(tmp_path):
    folder = tmp_path / "cache"
    mine = secret.server_secret(Settings(cache_dir=str(folder)))
    kept = folder / secret.FILE_NAME
    assert kept.exists() and stat.S_IMODE(kept.stat().st_mode) == 0o600 and kept.read_bytes() == mine
    assert len(mine) >= 32
    assert _in_child(str(folder)) == mine.hex()  # another process reads the same one
    assert [p.name for p in folder.iterdir()] == [secret.FILE_NAME]  # no temporary file left


def test_a_planted_or_readable_secret_file_is_not_used(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    planted = folder / secret.FILE_NAME
    planted.write_bytes(b"x" * 48)
    planted.chmod(0o644)  # others could read it: not a secret
    assert secret.server_secret(Settings(cache_dir=str(folder))) != b"x" * 48


def test_a_refused_folder_falls_back_to_the_gunicorn_masters_secret(tmp_path, monkeypatch):
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o777)  # writable by others: refused, as the cache refuses it
    run = "made by the gunicorn master for its workers, 48+ characters long"
    monkeypatch.setenv(secret.RUN_SECRET, run)
    assert secret.server_secret(Settings(cache_dir=str(folder))) == run.encode()
    assert not (folder / secret.FILE_NAME).exists()
    # every worker of that gunicorn gets the same (the master's environment)
    assert _in_child(str(folder), **{secret.RUN_SECRET: run}) == run.encode().hex()


def test_the_gunicorn_config_makes_one_secret_for_its_workers():
    code = "import os; import attention_explorer.gunicorn_conf; print(os.environ.get('ATTN_RUN_SECRET', ''))"
    done = subprocess.run([sys.executable, "-c", code], cwd=str(PROJECT_ROOT), env=child_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and len(done.stdout.strip()) >= 32, done.stderr[-2000:]
    configured = subprocess.run([sys.executable, "-c", code], cwd=str(PROJECT_ROOT),
                                env=child_env(ATTN_SECRET_KEY=KEY), capture_output=True, text=True, timeout=120)
    assert configured.stdout.strip() == ""  # ATTN_SECRET_KEY set: nothing made


def test_several_hosts_need_a_configured_key():
    remote = Settings(cache_type="redis", redis_url="redis://:pw@10.0.0.5:6379/0")
    with pytest.raises(secret.SecretKeyError, match="ATTN_SECRET_KEY is required"):
        secret.check_settings(remote)
    secret.check_settings(remote.replace(secret_key=KEY))
    for local in ("redis://127.0.0.1:6379/0", "redis://localhost/0", "redis://[::1]:6379/0", "unix:///run/redis.sock"):
        secret.check_settings(Settings(cache_type="redis", redis_url=local))  # one host: the folder's secret
    with pytest.raises(secret.SecretKeyError, match="at least 32"):
        secret.check_settings(Settings(secret_key="short"))


def test_the_app_refuses_to_start_without_it(make_app):
    with pytest.raises(secret.SecretKeyError):
        make_app(cache_type="redis", redis_url="redis://10.0.0.5:6379/0")


def test_sealed_recipes_round_trip_and_stay_small(tmp_path):
    settings = Settings(cache_dir=str(tmp_path / "cache"), secret_key=KEY)
    for recipe in (Recipe("m", "The cat sat."), Recipe("m", "猫坐着。", "A pair.", "A target.", 3),
                   Recipe("m", share_id="q3X_9aB-c0dE", target="t")):
        sealed = recipes.seal(recipe, settings)
        assert recipes.unseal(sealed, settings) == recipe
        assert set(sealed) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert len(recipes.seal(Recipe("all-MiniLM-L6-v2", "The cat sat on the mat."), settings)) < 120
    other = settings.replace(secret_key="another lab's key, also long enough to sign")
    assert recipes.unseal(recipes.seal(Recipe("m", "x"), other), settings) is None


def test_a_long_texts_recipe_is_read_back_when_the_character_limit_follows_the_token_limit(tmp_path):
    """ATTN_MAX_CHARS unset (0: the limit follows the token limit, ``Settings.char_limit``): a recipe
    holding a text of a few thousand characters (a page whose text is not kept by a short id) was
    refused as too long (its bound was computed from 0 characters), so every view said "unreadable"."""
    import random

    settings = Settings(cache_dir=str(tmp_path / "cache"), secret_key=KEY)
    assert settings.max_chars == 0 and settings.char_limit >= 5000
    rng = random.Random(4)
    text = " ".join("".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 9))) for _ in range(600))
    recipe = Recipe("m", text[:4000])
    sealed = recipes.seal(recipe, settings)
    assert len(sealed) > recipes.max_sealed_length(0)
    assert recipes.unseal(sealed, settings) == recipe


@pytest.mark.parametrize("junk", [None, 3, "", "x", "a.b", "." * 10, ["list"], "é" * 50, "A" * 10**6])
def test_junk_is_not_a_recipe(tmp_path, junk):
    assert recipes.unseal(junk, Settings(cache_dir=str(tmp_path), secret_key=KEY)) is None


def test_signed_but_malformed_payloads_are_refused(tmp_path):
    settings = Settings(cache_dir=str(tmp_path), secret_key=KEY)
    signer = recipes._serializer(settings)
    for fields in ([2, "m", "x"], [1], [1, 5, "x"], [1, "m", None], [1, "m", "x", None, None, True],
                   [1, "m", "x", None, None, None, "an-id-too000"], {"v": 1}, [1, "m", ["x"]]):
        assert recipes.unseal(signer.dumps(fields), settings) is None, fields
    assert os.environ.get(secret.RUN_SECRET) is None
