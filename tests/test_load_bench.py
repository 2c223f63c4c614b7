"""bench/load.py drives today's callbacks, and fails loudly when it cannot (issue 16, issue 19 item 5).

Before: it looked for an Analyze callback the restructure had renamed away, sent 0 requests and exited 0,
so the load figures in docs/deployment.md could not be reproduced. Now it finds Analyze and the router
in /_dash-dependencies, and exits 2 when it finds neither or sends nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from attention_explorer.components import ids
from tests.servers import LOOPBACK, PROJECT_ROOT, child_env

pytestmark = pytest.mark.servers

LOAD = str(PROJECT_ROOT / "bench" / "load.py")


def _run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, LOAD, *args], cwd=str(PROJECT_ROOT), env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_a_short_run_finds_the_callbacks_and_sends_requests(tiny_models, tmp_path):
    out = tmp_path / "load.json"
    done = _run(["--users", "3", "--duration", "4", "--think", "0.2", "--new-share", "0.3", "--words", "12",
                 "--set", f"ATTN_DEFAULT_MODEL={tiny_models['bert']}", "--set", f"ATTN_MODELS={tiny_models['bert']}",
                 "--workers", "2", "--threads", "2", "--json", str(out)])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert f"{ids.ANALYZE}" not in report["callbacks"]["analyze"]  # Analyze's outputs, not its inputs
    assert f"{ids.HANDLE}.data" in report["callbacks"]["analyze"]
    assert f"{ids.VIEW_NOTICE}.children" in report["callbacks"]["router"]
    by_kind = {row["kind"]: row for row in report["rows"]}
    assert by_kind["new text: Analyze"]["n"] >= 3  # each user analyses a text first
    assert by_kind["new text: draw the view"]["n"] == by_kind["new text: Analyze"]["n"]
    assert by_kind["layer/head change"]["n"] >= 1
    assert report["sent"] == by_kind["all requests"]["n"] > 0 and report["failed"] == 0
    assert "| new text: Analyze |" in done.stdout and "| layer/head change |" in done.stdout


class _NoCallbacks(BaseHTTPRequestHandler):
    """An app whose callbacks are not the ones bench/load.py drives."""

    def do_GET(self):  # noqa: N802 - http.server's name
        body = json.dumps([] if self.path == "/_dash-dependencies" else {"props": {}, "type": "Div"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_it_fails_loudly_when_it_finds_no_callbacks():
    server = ThreadingHTTPServer((LOOPBACK, 0), _NoCallbacks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        done = _run(["--url", f"http://{LOOPBACK}:{server.server_address[1]}", "--users", "1", "--duration", "1"],
                    timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "found 0 Analyze callback(s)" in done.stderr and "no longer matches the app" in done.stderr


# ------------------------------------------------------------------------------ degraded modes (issue 19, item 1)
# Each request opens a new connection (as nginx does), so either gunicorn worker may answer a view of an
# analysis the other ran. Before the handle carried its recipe, a quarter to a half of those views said
# "This analysis is no longer on the server" whenever the shared cache could not give the result.


def _tiny(tiny_models) -> list[str]:
    return ["--set", f"ATTN_DEFAULT_MODEL={tiny_models['bert']}", "--set", f"ATTN_MODELS={tiny_models['bert']}",
            "--users", "4", "--think", "0.1", "--new-share", "0.3", "--words", "12", "--workers", "2", "--threads", "4"]


def _phases(report: dict) -> dict[str, int]:
    return {phase: sum(r["n"] for r in report["rows"] if r["phase"] == phase) for phase in ("before", "during", "after")}


def test_a_read_only_cache_folder_loses_no_view(tiny_models, tmp_path):
    out = tmp_path / "load.json"
    done = _run([*_tiny(tiny_models), "--duration", "9", "--fault", "readonly-cache", "--json", str(out)])
    report = json.loads(out.read_text())
    assert all(n > 10 for n in _phases(report).values()), report["rows"]  # requests in every phase
    assert done.returncode == 0 and report["failed"] == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_a_refused_cache_folder_loses_no_view(tiny_models, tmp_path):
    from tests.servers import Gunicorn

    folder = tmp_path / "shared-folder"
    folder.mkdir()
    folder.chmod(0o777)  # writable by every local user: refused, the app runs without a shared cache
    env = child_env(ATTN_DEFAULT_MODEL=tiny_models["bert"], ATTN_MODELS=tiny_models["bert"],
                    ATTN_CACHE_DIR=str(folder), ATTN_RATE_LIMIT="off")
    server = Gunicorn(tmp_path, env, workers=2, threads=4)
    try:
        server.start()
        out = tmp_path / "load.json"
        done = _run([*_tiny(tiny_models)[4:], "--url", server.url, "--duration", "6", "--json", str(out)])
        report = json.loads(out.read_text())
        assert report["sent"] > 30, report["rows"]
        assert done.returncode == 0 and report["failed"] == 0, done.stdout[-3000:] + done.stderr[-2000:]
        assert "not using the folder" in server.log_text()
    finally:
        server.stop()


def test_killed_workers_freeze_no_one(tiny_models, tmp_path):
    """Every Celery worker killed mid-run (issue 19, item 4): new texts are refused in plain words while no
    worker runs (before: each waited ATTN_CELERY_TIMEOUT, 120 s, holding a thread, until every thread
    waited and the cached views froze too); views of analysed texts keep being drawn."""
    out = tmp_path / "load.json"
    done = _run([*_tiny(tiny_models), "--duration", "40", "--fault", "worker-killed", "--fault-at", "0.15",
                 "--fault-until", "0.45", "--timeout", "30", "--json", str(out)], timeout=600)
    report = json.loads(out.read_text())
    rows = {(r["phase"], r["kind"]): r for r in report["rows"]}
    assert rows[("during", "layer/head change")]["n"] > 10, report["rows"]
    assert rows[("during", "new text: Analyze")]["refused"] > 0, report["rows"]  # no worker: said so
    assert rows[("after", "new text: Analyze")]["n"] > rows[("after", "new text: Analyze")]["refused"]  # back again
    assert done.returncode == 0 and report["failed"] == 0, done.stdout[-3000:] + done.stderr[-2000:]
