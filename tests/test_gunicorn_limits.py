"""gunicorn as the README starts it, tried with oversized requests on loopback (issue 9).

Fails on the code before issue 9: gunicorn.conf.py set no request limits (gunicorn's defaults let 100
header fields through), a 2 MB body was parsed by Dash, and responses said ``Server: gunicorn`` with no
security headers.
"""

from __future__ import annotations

import json
import runpy
import socket

import pytest

from tests.servers import PROJECT_ROOT, Gunicorn, child_env

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gunicorn-limits")
    env = child_env(ATTN_DEFAULT_MODEL=tiny_models["bert"], ATTN_MODELS=tiny_models["bert"],
                    ATTN_CACHE_DIR=str(workdir / "cache"), ATTN_WARMUP="0")
    gunicorn = Gunicorn(workdir, env, workers=1, threads=2)
    gunicorn.start()
    yield gunicorn
    gunicorn.stop()


def _raw(server: Gunicorn, request: bytes) -> str:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("latin-1")


def test_the_config_bounds_request_lines_and_headers():
    conf = runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))
    assert conf["limit_request_line"] <= 4094
    assert conf["limit_request_fields"] <= 50
    assert conf["limit_request_field_size"] <= 8190


def test_oversized_requests_get_4xx_and_the_server_keeps_serving(server):
    long_line = _raw(server, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert long_line.startswith("HTTP/1.1 414")
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(60))
    assert _raw(server, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n").startswith("HTTP/1.1 431")
    big_field = b"X-Big: " + b"v" * 9000 + b"\r\n"
    assert _raw(server, b"GET / HTTP/1.1\r\nHost: x\r\n" + big_field + b"\r\n").split(" ")[1] in ("400", "431")
    body = json.dumps({"output": "x.children", "inputs": [], "state": [{"id": "t", "property": "value",
                                                                          "value": "a" * 2_000_000}]}).encode()
    reply = _raw(server, b"POST /_dash-update-component HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert reply.startswith("HTTP/1.1 413") and "too large" in reply and "Traceback" not in reply
    import requests

    page = requests.get(server.url + "/", timeout=10)
    assert page.status_code == 200


def test_responses_name_no_server_software_and_carry_security_headers(server):
    import requests

    for path in ("/", "/healthz", "/assets/style.css"):
        response = requests.get(server.url + path, timeout=10)
        assert response.status_code == 200
        assert response.headers["Server"] == "attention-explorer", response.headers.get("Server")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
