"""The web server on a shared host: request limits, sign-in, /healthz, security headers, rate limits (issue 9).

Flask's test client against ``create_app`` (and a real Redis where marked). Each test fails on the code
before issue 9: no body limit, no sign-in, /healthz public with details (and writing a probe key, and
naming hosts in its errors), no security headers, no rate limit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import stat
import subprocess
import sys

import pytest

from attention_explorer.services import config, extraction
from attention_explorer.services.config import Settings
from attention_explorer.services.store import cache
from tests.servers import PROJECT_ROOT, RedisServer, child_env, free_port

SENTENCE = "The cat sat on the mat because it was tired."
REMOTE = {"REMOTE_ADDR": "10.1.2.3"}  # a visitor from the network, not this machine



def _basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def _users_cli(users_file, *args, password: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "attention_explorer.services.web.users", "--file", str(users_file), *args],
                          cwd=PROJECT_ROOT, env=child_env(), input=password, capture_output=True, text=True,
                          timeout=60)


# --------------------------------------------------------------------------------------------- request size


def _dash_body(size: int) -> bytes:
    body = {"output": "x.children", "outputs": {"id": "x", "property": "children"}, "inputs": [],
            "changedPropIds": [], "state": [{"id": "text-input", "property": "value", "value": "a" * size}]}
    return json.dumps(body).encode()


def test_an_over_large_body_is_answered_413_before_it_is_read(make_app):
    client = make_app(max_request_kb=64).server.test_client()
    response = client.post("/_dash-update-component", data=_dash_body(200_000), content_type="application/json")
    assert response.status_code == 413
    text = response.get_data(as_text=True)
    assert "too large" in text and "64 KB" in text and "Traceback" not in text and "<" not in text
    assert response.headers["X-Content-Type-Options"] == "nosniff"  # headers on error answers too
    # The default is about 1 MB: a 2 MB body is refused, the page's own requests are far below it.
    default = make_app().server.test_client()
    assert default.post("/_dash-update-component", data=_dash_body(2_000_000),
                        content_type="application/json").status_code == 413
    assert Settings().max_request_kb == 1024


# --------------------------------------------------------------------------------------------- headers


def _csp(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def test_security_headers_on_every_response(make_app):
    client = make_app().server.test_client()
    for path in ("/", "/healthz", "/assets/style.css", "/no-such-page", "/_dash-layout"):
        response = client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["X-Frame-Options"] == "DENY", path
        assert response.headers["Referrer-Policy"] in ("no-referrer", "same-origin"), path
        csp = _csp(response)
        assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"], path
        server = response.headers.get("Server", "")
        assert "werkzeug" not in server.lower() and "python" not in server.lower() and not re.search(r"\d", server)


def test_the_policy_allows_no_other_host_and_exactly_the_pages_inline_scripts(make_app):
    response = make_app().server.test_client().get("/")
    assert response.status_code == 200
    csp = _csp(response)
    allowed = {"'self'", "'none'", "data:", "blob:", "'unsafe-inline'"}
    for directive, sources in csp.items():
        for source in sources:
            assert source in allowed or source.startswith("'sha256-"), (directive, source)
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    assert "data:" in csp["img-src"]  # Plotly heatmaps and image traces are data: URLs
    assert csp["default-src"] == ["'self'"] and csp["connect-src"] == ["'self'"]
    html = re.sub(r"<!--.*?-->", "", response.get_data(as_text=True), flags=re.S)  # e.g. Dash's <!--[if IE]>
    inline = [m.group(2) for m in re.finditer(r"<script(?![^>]*\bsrc=)([^>]*)>(.*?)</script>", html, re.S)
              if "application/json" not in m.group(1)]
    assert inline, "the page has inline scripts (Dash's renderer)"
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp["script-src"]


# --------------------------------------------------------------------------------------------- /healthz


def test_healthz_details_only_for_loopback_or_signed_in(make_app):
    client = make_app().server.test_client()
    public = client.get("/healthz", environ_base=REMOTE)
    assert public.status_code == 200 and public.get_json() == {"status": "ok"}
    local = client.get("/healthz").get_json()  # the test client is 127.0.0.1
    assert local["status"] == "ok" and "cache" in local and "models_offered" in local
    proxied = client.get("/healthz", headers={"X-Forwarded-For": "203.0.113.9"})  # a proxy on this host
    assert proxied.get_json() == {"status": "ok"}


def test_healthz_writes_nothing_to_the_file_system_cache(make_app, tmp_path):
    cache_dir = tmp_path / "fs"
    client = make_app(cache_type="filesystem", cache_dir=str(cache_dir)).server.test_client()
    cache.store("existing", "an entry")

    def snapshot():
        return sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in cache_dir.iterdir())

    before = snapshot()
    dir_mtime = cache_dir.stat().st_mtime_ns
    for _ in range(3):
        assert client.get("/healthz").get_json()["cache"] == {"type": "filesystem", "reachable": True}
    assert snapshot() == before and cache_dir.stat().st_mtime_ns == dir_mtime


def _write_calls(server: RedisServer) -> dict[str, int]:
    import redis

    raw = redis.Redis(host="127.0.0.1", port=server.port)
    try:
        stats = raw.info("commandstats")
    finally:
        raw.close()
    writes = ("set", "setex", "psetex", "setnx", "del", "unlink", "expire", "incrby", "hset", "mset")
    return {k: v["calls"] for k, v in stats.items() if k.removeprefix("cmdstat_") in writes}


@pytest.mark.servers
def test_healthz_writes_nothing_to_redis_and_names_no_host(make_app, redis_server, monkeypatch):
    monkeypatch.setattr(cache, "RETRY_AFTER_S", 0.5)
    client = make_app(cache_type="redis", redis_url=redis_server.url).server.test_client()
    before = _write_calls(redis_server)
    for _ in range(3):
        assert client.get("/healthz").get_json()["cache"] == {"type": "redis", "reachable": True}
    assert _write_calls(redis_server) == before  # a PING, no probe key
    redis_server.kill()
    body = client.get("/healthz").get_data(as_text=True)
    assert json.loads(body)["status"] == "degraded"
    assert "127.0.0.1" not in body and str(redis_server.port) not in body


def test_healthz_error_text_names_no_broker_host(make_app):
    port = free_port()
    client = make_app(cache_type="simple", celery_broker_url=f"redis://127.0.0.1:{port}/1").server.test_client()
    body = client.get("/healthz").get_data(as_text=True)
    data = json.loads(body)
    assert data["status"] == "degraded" and data["extraction"]["broker_reachable"] is False
    assert "127.0.0.1" not in body and str(port) not in body


# --------------------------------------------------------------------------------------------- sign-in


@pytest.fixture
def users_file(tmp_path):
    path = tmp_path / "users"
    added = _users_cli(path, "add", "alice", "--password-stdin", password="correct horse battery\n")
    assert added.returncode == 0, added.stderr
    return path


def test_users_command_stores_hashes_only_in_a_private_file(users_file):
    text = users_file.read_text()
    assert "alice:scrypt:" in text or "alice:pbkdf2:" in text
    assert "correct horse" not in text
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    listed = _users_cli(users_file, "list")
    assert listed.stdout.split() == ["alice"]
    short = _users_cli(users_file, "add", "bob", "--password-stdin", password="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    bad_name = _users_cli(users_file, "add", "bob:x", "--password-stdin", password="long enough pw\n")
    assert bad_name.returncode == 1


def test_basic_sign_in(make_app, users_file, monkeypatch):
    import werkzeug.security

    client = make_app(auth="basic", users_file=str(users_file)).server.test_client()
    anonymous = client.get("/", environ_base=REMOTE)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert "Sign in" in anonymous.get_data(as_text=True) and anonymous.headers["X-Frame-Options"] == "DENY"
    for path in ("/_dash-layout", "/_dash-dependencies", "/assets/20-core.js"):
        assert client.get(path, environ_base=REMOTE).status_code == 401, path
    # the gate's direct view requests too (callbacks/router.py DIRECT_ROUTE)
    assert client.post("/_ae-view", json={"values": {}, "changed": []}, environ_base=REMOTE).status_code == 401
    assert client.get("/", headers=_basic("alice", "wrong password"), environ_base=REMOTE).status_code == 401
    assert client.get("/", headers=_basic("mallory", "correct horse battery"), environ_base=REMOTE).status_code == 401

    checks = []
    real = werkzeug.security.check_password_hash
    monkeypatch.setattr(werkzeug.security, "check_password_hash", lambda h, p: checks.append(1) or real(h, p))
    for path in ("/", "/_dash-layout", "/_dash-dependencies", "/assets/20-core.js"):
        assert client.get(path, headers=_basic("alice", "correct horse battery"), environ_base=REMOTE).status_code == 200
    assert len(checks) == 1  # scrypt once per person and process, not once per request

    # /healthz stays open, with details for the signed-in
    assert client.get("/healthz", environ_base=REMOTE).get_json() == {"status": "ok"}
    signed = client.get("/healthz", headers=_basic("alice", "correct horse battery"), environ_base=REMOTE)
    assert "cache" in signed.get_json()

    # removing alice takes effect without a restart
    assert _users_cli(users_file, "remove", "alice").returncode == 0
    assert client.get("/", headers=_basic("alice", "correct horse battery"), environ_base=REMOTE).status_code == 401


@pytest.fixture
def two_users(users_file):
    added = _users_cli(users_file, "add", "bob", "--password-stdin", password="bobs long password\n")
    assert added.returncode == 0, added.stderr
    return users_file


def test_failed_sign_ins_lock_out_that_name_only(make_app, two_users, monkeypatch):
    """Issue 19: failures were counted per address, so behind a proxy (every request from its address)
    one guesser locked everyone out. Now a guess at one name locks out that name only."""
    import werkzeug.security

    from attention_explorer.services.web import ratelimit

    ratelimit.reset()
    client = make_app(auth="basic", users_file=str(two_users), signin_failures="3/minute",
                      signin_failures_per_address="100/minute").server.test_client()
    alice = _basic("alice", "correct horse battery")
    assert client.get("/", headers=alice, environ_base=REMOTE).status_code == 200  # alice signed in before
    for _ in range(3):
        assert client.get("/", headers=_basic("alice", "guess"), environ_base=REMOTE).status_code == 401
    monkeypatch.setattr(werkzeug.security, "check_password_hash", lambda *_: pytest.fail("hashed after the limit"))
    blocked = client.get("/", headers=_basic("alice", "guess again"), environ_base=REMOTE)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert "Too many failed sign-ins for this user name" in blocked.get_data(as_text=True)
    elsewhere = client.get("/", headers=_basic("alice", "guess"), environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert elsewhere.status_code == 429  # the name is locked from every address
    # alice's own browser (already accepted by this process) is not locked out by the guesser
    assert client.get("/", headers=alice, environ_base=REMOTE).status_code == 200
    monkeypatch.undo()
    # bob, behind the same address (the proxy's), signs in as usual
    assert client.get("/", headers=_basic("bob", "bobs long password"), environ_base=REMOTE).status_code == 200
    ratelimit.reset()


def test_a_spray_of_names_from_one_address_is_still_limited(make_app, two_users, monkeypatch):
    import werkzeug.security

    from attention_explorer.services.web import ratelimit

    ratelimit.reset()
    client = make_app(auth="basic", users_file=str(two_users), signin_failures="3/minute",
                      signin_failures_per_address="5/minute").server.test_client()
    for i in range(5):  # one failure per name: no name reaches its own limit
        assert client.get("/", headers=_basic(f"user{i}", "guess"), environ_base=REMOTE).status_code == 401
    monkeypatch.setattr(werkzeug.security, "check_password_hash", lambda *_: pytest.fail("hashed after the limit"))
    blocked = client.get("/", headers=_basic("bob", "bobs long password"), environ_base=REMOTE)
    assert blocked.status_code == 429 and "from your address" in blocked.get_data(as_text=True)
    monkeypatch.undo()
    other = client.get("/", headers=_basic("bob", "bobs long password"), environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert other.status_code == 200  # another address has its own count, and bob's name none
    ratelimit.reset()


SECRET = "s3cret-only-the-proxy-knows-0123456789"
PROXIED = {"X-Attention-Proxy-Secret": SECRET}


def _whoami(app) -> dict:
    """A route that records who the app thinks is asking (the rate limits' person, /healthz's rule)."""
    from flask import g

    from attention_explorer.services.web import ratelimit

    seen: dict = {}

    @app.server.get("/_whoami")
    def whoami():
        from flask import request

        seen.update(user=g.attn_user, id=ratelimit.client_id())
        if request.headers.get("X-Attention-Proxy-Secret") is not None:
            seen["secret seen by the app"] = True
        return "ok"

    return seen


def test_proxy_sign_in_needs_proof_only_the_proxy_has():
    """Issue 19: any local account could send ``X-Forwarded-User: alice`` to 127.0.0.1 and be alice. The
    proxy mode now refuses to start without a shared secret or a Unix socket."""
    with pytest.raises(ValueError, match="ATTN_PROXY_SECRET"):
        Settings(auth="proxy")
    with pytest.raises(ValueError, match="at least 24 characters"):
        Settings(auth="proxy", proxy_secret="short")
    assert Settings(auth="proxy", proxy_secret=SECRET).proxy_secret == SECRET
    assert SECRET not in repr(Settings(auth="proxy", proxy_secret=SECRET))  # never in a log of the settings
    assert Settings(auth="proxy", auth_proxy_from=("unix",)).proxy_secret == ""


def test_proxy_sign_in_believes_the_header_only_with_the_secret(make_app, caplog):
    app = make_app(auth="proxy", proxy_secret=SECRET)
    seen = _whoami(app)
    client = app.server.test_client()
    alice = {"X-Forwarded-User": "alice"}
    # a local account going around the proxy: the header without the secret, or with a wrong one
    for headers in (alice, {**alice, "X-Attention-Proxy-Secret": SECRET[:-1] + "x"},
                    {**alice, "X-Attention-Proxy-Secret": ""}, {**alice, "X-Attention-Proxy-Secret": "é" * 40}):
        assert client.get("/", headers=headers).status_code == 403, headers
        seen.clear()
        assert client.get("/_whoami", headers=headers).status_code == 403 and seen == {}  # never reaches the app
    assert "without the proxy's secret" in caplog.text and SECRET not in caplog.text
    assert client.get("/", headers=PROXIED).status_code == 403  # the proxy, but nobody signed in
    assert client.get("/", headers={**alice, **PROXIED}).status_code == 200
    assert client.get("/_whoami", headers={**alice, **PROXIED}).status_code == 200
    assert seen == {"user": "alice", "id": "user:alice"}
    # the secret from an address that is not the proxy's is not enough either
    assert client.get("/", headers={**alice, **PROXIED}, environ_base=REMOTE).status_code == 403
    assert client.get("/healthz", headers=alice, environ_base=REMOTE).get_json() == {"status": "ok"}


def test_proxy_sign_in_over_a_unix_socket_needs_no_secret(make_app):
    """gunicorn on a Unix socket (``-b unix:PATH``) gives the app no client address: with
    ``ATTN_AUTH_PROXY_FROM=unix`` only that socket (whose permissions admit only the proxy) is believed."""
    app = make_app(auth="proxy", auth_proxy_from=("unix",))
    seen = _whoami(app)
    client = app.server.test_client()
    alice = {"X-Forwarded-User": "alice"}
    assert client.get("/", headers=alice).status_code == 403  # over TCP from 127.0.0.1: any local account
    assert client.get("/_whoami", headers=alice, environ_base={"REMOTE_ADDR": ""}).status_code == 200
    assert seen == {"user": "alice", "id": "user:alice"}


def test_rate_limits_count_per_proxy_user(make_app, tiny_models):
    """With the secret, the proxy's user is the person the rate limit counts (before, anyone could
    name a new person per request and never be limited)."""
    from attention_explorer.components import ids
    from attention_explorer.services.web import ratelimit
    from tests.test_deploy import _dash_call

    ratelimit.reset()
    client = make_app(auth="proxy", proxy_secret=SECRET, rate_limit="2/minute").server.test_client()
    values = {ids.TEXT_PAIR: None, ids.ANALYZE: 1, ids.LAYER: 0, ids.HEAD: ids.HEAD_ALL, ids.MODEL: tiny_models["bert"]}

    def analyse(user: str, text: str, secret: bool = True) -> str:
        client.environ_base.update({"HTTP_X_FORWARDED_USER": user})
        if secret:
            client.environ_base["HTTP_X_ATTENTION_PROXY_SECRET"] = SECRET
        else:
            client.environ_base.pop("HTTP_X_ATTENTION_PROXY_SECRET", None)
        return _dash_call(client, {ids.ANALYZE: "n_clicks"}, {**values, ids.TEXT: text}, ids.MODEL, ids.STATUS)["text"]

    assert "tokens" in analyse("alice", "the cat sat on the mat")
    assert "tokens" in analyse("alice", "the dog ran in the park")
    assert "Too many new analyses from you" in analyse("alice", "a third new text")
    assert "tokens" in analyse("bob", "a third new text")  # bob has his own budget
    assert "Too many new analyses from you" in analyse("alice", "and a fourth one is it")
    client.environ_base.update({"HTTP_X_FORWARDED_USER": "alice-2"})
    client.environ_base.pop("HTTP_X_ATTENTION_PROXY_SECRET", None)
    spoofed = client.post("/_dash-update-component", json={})
    assert spoofed.status_code == 403  # a new name without the secret buys no new budget: it is refused
    ratelimit.reset()


def test_sign_in_is_off_by_default(make_app):
    assert Settings().auth == "" and Settings.from_env().auth in ("", "basic", "proxy")
    assert make_app().server.test_client().get("/", environ_base=REMOTE).status_code == 200
    with pytest.raises(ValueError, match="users file"):
        Settings(auth="basic")


# --------------------------------------------------------------------------------------------- rate limit


def test_new_analyses_are_rate_limited_per_person(settings, tiny_models, monkeypatch):
    from attention_explorer.services import RateLimitedError
    from attention_explorer.services.web import ratelimit

    ratelimit.reset()
    config.configure(rate_limit="2/minute")
    bert = tiny_models["bert"]

    def analyse(text, who):
        return extraction.analyse(text, bert, before_compute=ratelimit.new_analysis_guard(who))

    analyse("the cat sat", "addr:10.0.0.1")
    analyse("the dog ran", "addr:10.0.0.1")
    with pytest.raises(RateLimitedError) as info:
        analyse("a third new text", "addr:10.0.0.1")
    wait = info.value.retry_after
    assert 1 <= wait <= 60
    assert str(info.value) == f"Too many new analyses from you: wait {wait} s and try again."
    assert analyse("the cat sat", "addr:10.0.0.1")[1].seq_len == 5  # a cached text costs nothing
    assert analyse("a third new text", "addr:10.0.0.2")[1].seq_len > 0  # someone else has their own budget
    ratelimit.reset()


def test_rate_limit_is_off_by_default_and_on_in_the_gunicorn_config(settings, tiny_models):
    from attention_explorer.services.web import ratelimit

    assert Settings().rate_limit == ""
    guard = ratelimit.new_analysis_guard("addr:10.0.0.1")
    for i in range(40):
        guard()  # never raises
    done = subprocess.run([sys.executable, "-c", "import os, runpy; runpy.run_path('gunicorn.conf.py');"
                           "from attention_explorer.services.config import Settings; print(Settings.from_env().rate_limit)"],
                          cwd=PROJECT_ROOT, env=child_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "30/minute"
    off = subprocess.run([sys.executable, "-c", "import runpy; runpy.run_path('gunicorn.conf.py');"
                          "from attention_explorer.services.config import Settings; print(repr(Settings.from_env().rate_limit))"],
                         cwd=PROJECT_ROOT, env=child_env(ATTN_RATE_LIMIT="off"), capture_output=True, text=True,
                         timeout=60)
    assert off.stdout.strip().splitlines()[-1] == "''"


def test_client_id_is_the_user_or_the_address(make_app):
    from flask import g

    from attention_explorer.services.web import ratelimit, security

    app = make_app(trusted_proxies=1)
    assert ratelimit.client_id() == "local"  # outside a request (a notebook)
    with app.server.test_request_context("/", environ_base=REMOTE):
        assert ratelimit.client_id() == "addr:10.1.2.3"
        g.attn_user = "alice"
        assert ratelimit.client_id() == "user:alice"
    client = app.server.test_client()
    seen = {}

    @app.server.get("/_whoami")
    def whoami():
        seen["id"] = ratelimit.client_id()
        seen["details"] = security.may_see_details()
        return "ok"

    client.get("/_whoami", headers={"X-Forwarded-For": "198.51.100.7"})  # through the one trusted proxy
    assert seen == {"id": "addr:198.51.100.7", "details": False}
    untrusting = make_app().server.test_client()
    untrusting.application.add_url_rule("/_whoami2", "whoami2", whoami)
    untrusting.get("/_whoami2", headers={"X-Forwarded-For": "198.51.100.7"}, environ_base=REMOTE)
    assert seen["id"] == "addr:10.1.2.3"  # without ATTN_TRUSTED_PROXIES the header is ignored
