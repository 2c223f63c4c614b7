"""Load test: simulated users drive the app's real Dash callback endpoint under gunicorn.

    .venv/bin/python bench/load.py                            # 16 users for 60 s, 2 workers x 8 threads
    .venv/bin/python bench/load.py --users 4 --duration 15    # a short smoke run
    .venv/bin/python bench/load.py --url http://127.0.0.1:8050 --duration 30   # a server already running

Without ``--url`` it starts ``gunicorn -c gunicorn.conf.py app:server`` on 127.0.0.1 (a random port, a
fresh cache directory, the default model) and stops it at the end. Each user does what a browser
does: POST /_dash-update-component for the Analyze callback with a new text, then for every view
callback the new result feeds (the active tab draws, the others answer 204), then layer and head
changes on that cached text, with a pause between actions. Callbacks and component ids are read
from /_dash-dependencies and /_dash-layout, not typed here.

Prints p50 / p95 / max latency and errors by kind of request, and the workers' memory.
Bounded: at most 64 users, 600 s, 60 s a request.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attention_explorer.components import ids
from tests.servers import Gunicorn, child_env  # noqa: E402

MAX_USERS = 64
MAX_DURATION_S = 600
REQUEST_TIMEOUT_S = 60

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import WORDS  # noqa: E402 - the same word list the other benchmarks use

NEW_ANALYZE = "new text: Analyze"
NEW_VIEW = "new text: draw the view"
CHANGE = "layer/head change (cached)"
SKIPPED = "other tabs (204, no work)"


# ----------------------------------------------------------------------------------- the Dash protocol


def _component_props(node, state: dict) -> None:
    """Collects ``(id, prop) -> value`` of every component with an id in a /_dash-layout tree."""
    if isinstance(node, list):
        for child in node:
            _component_props(child, state)
        return
    if not isinstance(node, dict):
        return
    props = node.get("props")
    if isinstance(props, dict) and "type" in node:
        cid = props.get("id")
        for prop, value in props.items():
            if isinstance(value, (dict, list)) and _has_components(value):
                _component_props(value, state)
            elif cid is not None and not isinstance(cid, dict) and prop != "id":
                state[(cid, prop)] = value
        return
    for value in node.values():
        _component_props(value, state)


def _has_components(value) -> bool:
    if isinstance(value, dict):
        return "type" in value and "props" in value
    return any(_has_components(v) for v in value if isinstance(v, (dict, list)))


def _parse_outputs(output: str) -> list[tuple[str, str]]:
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    return [tuple(part.rsplit(".", 1)) for part in parts]


class DashApp:
    """What a browser knows about the app: its callbacks and the initial props of its components."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        deps = requests.get(self.base_url + "/_dash-dependencies", timeout=30).json()
        # server-side callbacks with plain (not pattern-matching) ids
        self.callbacks = [d for d in deps if not d.get("clientside_function")
                          and not any(str(i["id"]).startswith("{") for i in d["inputs"])]
        layout = requests.get(self.base_url + "/_dash-layout", timeout=30).json()
        self.initial: dict[tuple[str, str], object] = {}
        _component_props(layout, self.initial)

    def triggered_by(self, changed: set[str]) -> list[dict]:
        return [d for d in self.callbacks if any(f"{i['id']}.{i['property']}" in changed for i in d["inputs"])]


class User:
    """One simulated person: a session, the page's state, a tab, a random generator."""

    def __init__(self, app: DashApp, uid: int, tab: str, seed: int, think: float, new_share: float,
                 words: int, model: str | None, record) -> None:
        self.app = app
        self.uid = uid
        self.session = requests.Session()
        self.state = dict(app.initial)
        self.state[(ids.TABS, "active_tab")] = tab
        if model:
            self.state[(ids.MODEL, "value")] = model
        self.rng = random.Random(seed * 1000 + uid)
        self.think = think
        self.new_share = new_share
        self.words = words
        self.record = record
        self.texts = 0
        self.layers = 1
        self.heads = 1

    # one request -------------------------------------------------------------------------------

    def post(self, spec: dict, changed: set[str]) -> tuple[int, float, dict | None, str]:
        def items(kind):
            return [{"id": i["id"], "property": i["property"], "value": self.state.get((i["id"], i["property"]))}
                    for i in spec.get(kind, [])]

        outputs = [{"id": cid, "property": prop} for cid, prop in _parse_outputs(spec["output"])]
        body = {
            "output": spec["output"],
            "outputs": outputs if spec["output"].startswith("..") else outputs[0],
            "inputs": items("inputs"),
            "changedPropIds": sorted(c for c in changed
                                     if any(f"{i['id']}.{i['property']}" == c for i in spec["inputs"])),
        }
        if spec.get("state"):
            body["state"] = items("state")
        started = time.perf_counter()
        try:
            response = self.session.post(self.app.base_url + "/_dash-update-component", json=body,
                                         timeout=REQUEST_TIMEOUT_S)
        except requests.RequestException as exc:
            return 0, (time.perf_counter() - started) * 1000, None, f"{type(exc).__name__}"
        ms = (time.perf_counter() - started) * 1000
        if response.status_code == 204:
            return 204, ms, None, ""
        if response.status_code != 200:
            return response.status_code, ms, None, f"HTTP {response.status_code}"
        try:
            payload = response.json()
        except ValueError:
            return response.status_code, ms, None, "not JSON"
        return 200, ms, payload.get("response", {}), ""

    def fire(self, changed: set[str], first_kind: str, cascade_kind: str) -> None:
        """Runs the callbacks ``changed`` triggers, then those their outputs trigger (as the renderer does)."""
        kind = first_kind
        for _ in range(3):  # the dependency chain here is two deep; three bounds any surprise
            specs = self.app.triggered_by(changed)
            if not specs:
                return
            next_changed: set[str] = set()
            for spec in specs:
                status, ms, response, error = self.post(spec, changed)
                if status == 204:
                    self.record(SKIPPED, ms, "")
                    continue
                if not error and response is not None:
                    error = self.apply(response, next_changed)
                self.record(kind, ms, error)
            changed = next_changed
            kind = cascade_kind

    def apply(self, response: dict, changed: set[str]) -> str:
        """Stores the new props; returns an error when the app answered with an error message."""
        error = ""
        for cid, props in response.items():
            for prop, value in props.items():
                self.state[(cid, prop)] = value
                changed.add(f"{cid}.{prop}")
                if (prop == "figure" and isinstance(value, dict) and "__dash_patch_update" not in value
                        and not value.get("data")):
                    error = "the view drew an empty or error figure"
        if "data" in response.get(ids.REQUEST, {}):
            if response[ids.REQUEST]["data"] is None:
                error = "Analyze answered with an error"
            else:
                self.layers = int(response.get(ids.LAYER, {}).get("max", self.layers - 1)) + 1
                options = response.get(ids.HEAD, {}).get("options") or []
                self.heads = max(1, sum(1 for o in options if str(o.get("value", "")).isdigit()))
                found = re.search(r'"(\d+) tokens"', json.dumps(response.get(ids.STATUS, {})))
                if found:
                    self.record.tokens(int(found.group(1)))
        return error

    # actions ----------------------------------------------------------------------------------------

    def new_text(self) -> None:
        self.texts += 1
        words = [self.rng.choice(WORDS) for _ in range(self.words)]
        for i in range(12, len(words), 12):
            words[i - 1] += "."
        self.state[(ids.TEXT, "value")] = f"User {self.uid} text {self.texts}: " + " ".join(words) + "."
        clicks = self.state.get((ids.ANALYZE, "n_clicks")) or 0
        self.state[(ids.ANALYZE, "n_clicks")] = clicks + 1
        self.fire({f"{ids.ANALYZE}.n_clicks"}, NEW_ANALYZE, NEW_VIEW)

    def change_layer_or_head(self) -> None:
        if self.rng.random() < 0.5:
            self.state[(ids.LAYER, "value")] = self.rng.randrange(self.layers)
            changed = f"{ids.LAYER}.value"
        else:
            choices = [ids.HEAD_ALL, ids.HEAD_MEAN, *map(str, range(self.heads))]
            self.state[(ids.HEAD, "value")] = self.rng.choice(choices)
            changed = f"{ids.HEAD}.value"
        self.fire({changed}, CHANGE, CHANGE)

    def run(self, deadline: float) -> None:
        self.new_text()
        while True:
            pause = self.rng.uniform(0.5, 1.5) * self.think
            if time.monotonic() + pause >= deadline:
                return
            time.sleep(pause)
            if self.rng.random() < self.new_share:
                self.new_text()
            else:
                self.change_layer_or_head()


# ----------------------------------------------------------------------------------- running and reporting


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.token_counts: list[int] = []

    def tokens(self, count: int) -> None:
        with self.lock:
            self.token_counts.append(count)

    def __call__(self, kind: str, ms: float, error: str) -> None:
        with self.lock:
            self.samples[kind].append(ms)
            if error:
                self.errors[kind].append(error)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def report(recorder: Recorder, elapsed: float) -> list[dict]:
    rows = []
    everything: list[float] = []
    errors_total = 0
    for kind in (NEW_ANALYZE, NEW_VIEW, CHANGE, SKIPPED):
        values = recorder.samples.get(kind, [])
        errors = recorder.errors.get(kind, [])
        everything += values
        errors_total += len(errors)
        rows.append({"kind": kind, "n": len(values), "errors": len(errors), "p50": _pct(values, 0.5),
                     "p95": _pct(values, 0.95), "max": max(values) if values else float("nan")})
    rows.append({"kind": "all requests", "n": len(everything), "errors": errors_total,
                 "p50": _pct(everything, 0.5), "p95": _pct(everything, 0.95),
                 "max": max(everything) if everything else float("nan")})
    print()
    print("| requests | n | errors | p50 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['kind']} | {row['n']} | {row['errors']} | {row['p50']:.0f} | {row['p95']:.0f} | {row['max']:.0f} |")
    print(f"\n{len(everything)} requests in {elapsed:.1f} s ({len(everything) / elapsed:.1f}/s)")
    if recorder.token_counts:
        counts = recorder.token_counts
        print(f"new texts: {len(counts)}, {statistics.mean(counts):.0f} tokens on average ({min(counts)}-{max(counts)})")
    for kind, errors in recorder.errors.items():
        if errors:
            common = ", ".join(f"{e} x{errors.count(e)}" for e in sorted(set(errors)))
            print(f"errors in {kind}: {common}")
    return rows


def worker_memory(server: Gunicorn) -> list[dict]:
    import psutil

    rows = []
    for pid in server.worker_pids():
        info = psutil.Process(pid).memory_full_info()
        rows.append({"pid": pid, "rss_mb": info.rss / 2**20, "uss_mb": info.uss / 2**20})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=16, help="simulated users at once (default 16, at most 64)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default 60, at most 600)")
    parser.add_argument("--think", type=float, default=1.0,
                        help="mean pause between a user's actions, seconds (default 1.0; 0 = no pause)")
    parser.add_argument("--new-share", type=float, default=0.15,
                        help="share of actions that analyse a new text (default 0.15); the rest change layer or head")
    parser.add_argument("--words", type=int, default=110, help="words per new text (default 110: about 128 tokens)")
    parser.add_argument("--model", default=None, help="model id to choose (default: the server's default)")
    parser.add_argument("--url", default=None, help="an already running app; otherwise gunicorn is started")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers when started here (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads a worker when started here (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.users <= MAX_USERS:
        parser.error(f"--users must be between 1 and {MAX_USERS}")
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be more than 0 and at most {MAX_DURATION_S} seconds")

    server = None
    workdir = tempfile.TemporaryDirectory(prefix="attn-load-")
    try:
        if args.url:
            base_url = args.url
        else:
            env = child_env(ATTN_CACHE_DIR=str(Path(workdir.name) / "cache"))
            server = Gunicorn(Path(workdir.name), env, workers=args.workers, threads=args.threads)
            print(f"starting gunicorn: {args.workers} workers x {args.threads} threads on {server.url} ...",
                  flush=True)
            server.start()
            base_url = server.url
            print("memory after warm-up: " + ", ".join(
                f"pid {m['pid']} RSS {m['rss_mb']:.0f} MB (USS {m['uss_mb']:.0f} MB)" for m in worker_memory(server)))
        app = DashApp(base_url)
        tabs = [ids.TAB_GRID] * 3 + [ids.TAB_HEATMAP, ids.TAB_ARCS]
        recorder = Recorder()
        users = [User(app, uid, tabs[uid % len(tabs)], args.seed, args.think, args.new_share, args.words,
                      args.model, recorder) for uid in range(args.users)]
        print(f"{args.users} users for {args.duration:.0f} s (pause ~{args.think:g} s, "
              f"{args.new_share:.0%} new texts of {args.words} words) ...", flush=True)
        started = time.monotonic()
        deadline = started + args.duration
        with ThreadPoolExecutor(args.users) as pool:
            futures = [pool.submit(user.run, deadline) for user in users]
            for future in futures:
                future.result(timeout=args.duration + 3 * REQUEST_TIMEOUT_S + 30)
        elapsed = time.monotonic() - started
        rows = report(recorder, elapsed)
        memory = worker_memory(server) if server else []
        if memory:
            print("memory after the run: " + ", ".join(
                f"pid {m['pid']} RSS {m['rss_mb']:.0f} MB (USS {m['uss_mb']:.0f} MB)" for m in memory))
        if args.json:
            args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                             "elapsed_s": elapsed, "memory": memory}, indent=2))
        return 1 if any(r["errors"] for r in rows) else 0
    finally:
        if server is not None:
            server.stop()
        workdir.cleanup()


if __name__ == "__main__":
    sys.exit(main())
