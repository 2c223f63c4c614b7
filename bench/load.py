"""Load test: simulated users drive the app's real Dash callbacks under gunicorn, as a browser does.

    .venv/bin/python bench/load.py                              # 20 users for 30 s, 2 workers x 8 threads
    .venv/bin/python bench/load.py --users 4 --duration 10      # a short smoke run
    .venv/bin/python bench/load.py --fault redis-down           # Redis (the shared cache) killed mid-run
    .venv/bin/python bench/load.py --fault worker-killed        # every Celery worker killed mid-run
    .venv/bin/python bench/load.py --fault readonly-cache       # the cache folder read-only mid-run
    .venv/bin/python bench/load.py --url http://127.0.0.1:8050  # a server already running (no fault)

Without ``--url`` it starts ``gunicorn -c gunicorn.conf.py app:server`` on 127.0.0.1 (a random port, a
fresh private cache folder, the default model, the rate limit off: every simulated person comes from
one address) and stops it, and whatever else it started, at the end.

What a user does is what the page's JavaScript does. The callbacks are found in
``/_dash-dependencies`` by what they read and write, never typed here: **Analyze** is the server
callback that the Analyze button's clicks trigger and that writes the analysis handle; the **router**
is the server callback whose one input is the view request that the browser-side gate writes
(assets/23-gate.js). A new text is one Analyze request, then one view request naming what Analyze
changed (the handle, the layer ...); a layer or head change is one view request naming that control
(what the gate sends whenever the browser cannot draw the change alone). Component values start from
``/_dash-layout`` and follow every answer. Each user has one tab open and pauses about ``--think``
seconds between actions; ``--new-share`` of the actions analyse a new text. Each request opens a new
connection, as nginx's ``proxy_pass`` does by default, so any gunicorn worker may answer it
(``--keep-alive`` keeps one connection a user, which pins each user to one worker).

A request fails when it gets no answer (``--timeout``), an HTTP error, an Analyze that answers with an
error instead of a handle, or a view that draws a message instead of its figure ("This analysis is no
longer on the server ..."); the table counts them by kind of request and says what they were.

Faults (``--fault``) start the lab's shared parts the way docs/deployment.md runs them, break one at
``--fault-at`` of the run and repair it at ``--fault-until`` (fractions of ``--duration``); the table
then has a row per phase (before / during / after):

- ``redis-down``: the cache in Redis (``ATTN_REDIS_URL``); Redis is killed (SIGKILL), then restarted;
- ``worker-killed``: Redis, the cache in it, forward passes in two Celery workers; every worker is
  killed (SIGKILL, mid-task when one runs), then one is started again. A new text cannot be analysed
  while no worker runs: an Analyze that says so in plain words counts as *refused*, not as an error
  (waiting for a worker that never answers, or a view that cannot be drawn, are errors);
- ``readonly-cache``: the file-system cache's folder made read-only (chmod 0500; as root, whom modes do
  not stop, also ``chattr +i``), then writable again.

Exit status: 2 when the callbacks could not be found or nothing was sent, 1 when the share of failed
requests is above ``--max-errors`` (default 0: any failure), else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WORDS, machine_lines  # noqa: E402 - the word list the other benchmarks use
from attention_explorer.components import ids  # noqa: E402
from tests.servers import CeleryWorker, Gunicorn, RedisServer, child_env  # noqa: E402

MAX_USERS = 64
MAX_DURATION_S = 600
FAULTS = ("redis-down", "worker-killed", "readonly-cache")

NEW_ANALYZE = "new text: Analyze"
NEW_VIEW = "new text: draw the view"
CHANGE = "layer/head change"
KINDS = (NEW_ANALYZE, NEW_VIEW, CHANGE)
PHASES = ("before", "during", "after")


class NotFound(RuntimeError):
    """The app's callbacks are not what this benchmark drives (it would send nothing)."""


# ----------------------------------------------------------------------------------- the Dash protocol


def _component_props(node, state: dict) -> None:
    """Collects ``(id, prop) -> value`` of every component with a plain id in a /_dash-layout tree."""
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
            elif isinstance(cid, str) and prop != "id":
                state[(cid, prop)] = value
        return
    for value in node.values():
        _component_props(value, state)


def _has_components(value) -> bool:
    if isinstance(value, dict):
        return "type" in value and "props" in value
    return any(_has_components(v) for v in value if isinstance(v, (dict, list)))


def _outputs(spec: dict) -> list[tuple[str, str]]:
    """``(id, property)`` of each output of a callback (Dash writes ``..a.b...c.d..``; ``@hash`` suffixes
    mark duplicate outputs)."""
    output = spec["output"]
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    found = []
    for part in parts:
        cid, prop = part.rsplit(".", 1)
        found.append((cid, prop.split("@", 1)[0]))
    return found


def _names(items: list[dict]) -> set[str]:
    return {f"{i['id']}.{i['property']}" for i in items}


class DashApp:
    """What a browser knows of the app: the Analyze and router callbacks, and every component's props."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        deps = requests.get(self.base_url + "/_dash-dependencies", timeout=timeout).json()
        server_side = [d for d in deps if not d.get("clientside_function")]
        handle = (ids.HANDLE, "data")
        analyze = [d for d in server_side if f"{ids.ANALYZE}.n_clicks" in _names(d["inputs"])
                   and handle in _outputs(d)]
        router = [d for d in server_side if _names(d["inputs"]) == {f"{ids.VIEW_REQUEST}.data"}]
        if len(analyze) != 1 or len(router) != 1:
            raise NotFound(
                f"found {len(analyze)} Analyze callback(s) (clicks of {ids.ANALYZE!r} in, {ids.HANDLE}.data out) and "
                f"{len(router)} router callback(s) (only {ids.VIEW_REQUEST}.data in) among {len(server_side)} "
                "server callbacks: bench/load.py no longer matches the app")
        self.analyze, self.router = analyze[0], router[0]
        # the controls the gate watches: what the router reads as State (the handle, layer, head, tab ...)
        self.view_controls = _names(self.router.get("state", []))
        missing = {f"{ids.HANDLE}.data", f"{ids.LAYER}.value", f"{ids.HEAD}.value"} - self.view_controls
        if missing:
            raise NotFound(f"the router does not read {sorted(missing)}: bench/load.py no longer matches the app")
        layout = requests.get(self.base_url + "/_dash-layout", timeout=timeout).json()
        self.initial: dict[tuple[str, str], object] = {}
        _component_props(layout, self.initial)
        # which figure a tab draws: the router's figure outputs that exist in the layout
        self.figures = [cid for cid, prop in _outputs(self.router) if prop == "figure"]


def _text_of(node) -> str:
    """The words of a Dash component tree (an alert's title and message)."""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return " ".join(_text_of(n) for n in node)
    if isinstance(node, dict):
        return _text_of(node.get("props", {}).get("children"))
    return ""


def _danger(node) -> str | None:
    """The text of the first danger alert in a component tree, or None."""
    if isinstance(node, list):
        for child in node:
            found = _danger(child)
            if found is not None:
                return found
        return None
    if isinstance(node, dict):
        props = node.get("props", {})
        if node.get("type") == "Alert" and props.get("color") == "danger":
            return _text_of(props.get("children")).strip()
        return _danger(props.get("children"))
    return None


def _message_of(figure) -> str | None:
    """The message a placeholder figure shows instead of data (None for a real figure or a patch)."""
    if not isinstance(figure, dict) or "__dash_patch_update" in figure or figure.get("data"):
        return None
    notes = (figure.get("layout") or {}).get("annotations") or [{}]
    return str(notes[0].get("text") or "an empty figure")


# ----------------------------------------------------------------------------------- a simulated person


class User:
    """One simulated person: a session, the page's state, one open tab, a random generator."""

    def __init__(self, app: DashApp, uid: int, tab: str, args, record) -> None:
        self.app = app
        self.uid = uid
        self.session = requests.Session()
        if not args.keep_alive:  # as nginx talks to gunicorn by default: a new connection, any worker, each time
            self.session.headers["Connection"] = "close"
        self.state = dict(app.initial)
        self.state[(ids.TABS, "active_tab")] = tab
        if args.model:
            self.state[(ids.MODEL, "value")] = args.model
        self.rng = random.Random(args.seed * 1000 + uid)
        self.args = args
        self.record = record
        self.texts = 0
        self.requests = 0  # the gate's request counter (``n``)
        self.phase = "before"

    def post(self, spec: dict, changed: list[str]) -> tuple[float, dict | None, str]:
        """One POST /_dash-update-component as the renderer builds it: ``(ms, response, error)``."""
        def items(kind):
            return [{"id": i["id"], "property": i["property"], "value": self.state.get((i["id"], i["property"]))}
                    for i in spec.get(kind, [])]

        outputs = [{"id": cid, "property": prop} for cid, prop in _outputs(spec)]
        body = {"output": spec["output"], "outputs": outputs if spec["output"].startswith("..") else outputs[0],
                "inputs": items("inputs"), "changedPropIds": changed}
        if spec.get("state"):
            body["state"] = items("state")
        self.phase = self.record.phase  # the phase a request started in is the one it counts in
        started = time.perf_counter()
        try:
            response = self.session.post(self.app.base_url + "/_dash-update-component", json=body,
                                         timeout=self.args.timeout)
        except requests.RequestException as exc:
            return (time.perf_counter() - started) * 1000, None, f"no answer ({type(exc).__name__})"
        ms = (time.perf_counter() - started) * 1000
        if response.status_code == 204:
            return ms, {}, ""
        if response.status_code != 200:
            return ms, None, f"HTTP {response.status_code}"
        try:
            return ms, response.json().get("response", {}), ""
        except ValueError:
            return ms, None, "an answer that is not JSON"

    def apply(self, response: dict) -> set[str]:
        """Stores the new props; returns the ``id.prop`` names that changed."""
        changed = set()
        for cid, props in response.items():
            for prop, value in props.items():
                self.state[(cid, prop)] = value
                changed.add(f"{cid}.{prop}")
        return changed

    def view(self, changed: set[str], kind: str) -> None:
        """The gate's one view request for the controls that ``changed``, and the router's answer."""
        names = sorted(changed & self.app.view_controls)
        if not names:
            return
        self.requests += 1
        self.state[(ids.VIEW_REQUEST, "data")] = {"changed": names, "n": self.requests}
        ms, response, error = self.post(self.app.router, [f"{ids.VIEW_REQUEST}.data"])
        if response is not None:
            self.apply(response)
            for cid in self.app.figures:
                message = _message_of(response.get(cid, {}).get("figure"))
                if message is not None:
                    error = f"the view said: {message[:90]}"
                    break
            else:
                if not any(response.get(cid, {}).get("figure") for cid in self.app.figures):
                    error = "the view drew nothing"
        self.record(kind, ms, error, phase=self.phase)

    def new_text(self) -> None:
        self.texts += 1
        words = [self.rng.choice(WORDS) for _ in range(self.args.words)]
        for i in range(12, len(words), 12):
            words[i - 1] += "."
        self.state[(ids.TEXT, "value")] = f"User {self.uid} text {self.texts} run {self.args.seed}: " + " ".join(words) + "."
        self.state[(ids.ANALYZE, "n_clicks")] = (self.state.get((ids.ANALYZE, "n_clicks")) or 0) + 1
        ms, response, error = self.post(self.app.analyze, [f"{ids.ANALYZE}.n_clicks"])
        if response is None:
            self.record(NEW_ANALYZE, ms, error, phase=self.phase)
            return
        handle = response.get(ids.HANDLE, {}).get("data")
        if not isinstance(handle, dict):
            why = _danger(response.get(ids.STATUS, {}).get("children")) or "Analyze answered without a handle"
            self.record(NEW_ANALYZE, ms, "", refused=why[:110], phase=self.phase)
            return
        self.record(NEW_ANALYZE, ms, "", phase=self.phase)
        self.view(self.apply(response), NEW_VIEW)

    def change_layer_or_head(self) -> None:
        handle = self.state.get((ids.HANDLE, "data"))
        layers = int(handle.get("layers", 1)) if isinstance(handle, dict) else 1
        heads = int(handle.get("heads", 1)) if isinstance(handle, dict) else 1
        if self.rng.random() < 0.5:
            self.state[(ids.LAYER, "value")] = self.rng.randrange(max(1, layers))
            changed = f"{ids.LAYER}.value"
        else:
            self.state[(ids.HEAD, "value")] = self.rng.choice([ids.HEAD_ALL, ids.HEAD_MEAN, *map(str, range(heads))])
            changed = f"{ids.HEAD}.value"
        self.view({changed}, CHANGE)

    def run(self, deadline: float) -> None:
        self.new_text()
        while True:
            pause = self.rng.uniform(0.5, 1.5) * self.args.think
            if time.monotonic() + pause >= deadline:
                return
            time.sleep(pause)
            if self.rng.random() < self.args.new_share:
                self.new_text()
            else:
                self.change_layer_or_head()


# ----------------------------------------------------------------------------------- recording and reporting


class Recorder:
    """Latencies, failures and refusals by (phase, kind of request)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.phase = "before"
        self.samples: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.errors: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.refused: dict[tuple[str, str], list[str]] = defaultdict(list)

    def __call__(self, kind: str, ms: float, error: str, refused: str = "", phase: str | None = None) -> None:
        with self.lock:
            where = (phase or self.phase, kind)
            self.samples[where].append(ms)
            if error:
                self.errors[where].append(error)
            elif refused:
                self.refused[where].append(refused)

    @property
    def sent(self) -> int:
        return sum(len(v) for v in self.samples.values())

    @property
    def failed(self) -> int:
        return sum(len(v) for v in self.errors.values())


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def report(recorder: Recorder, elapsed: float, phases: tuple[str, ...]) -> list[dict]:
    rows = []
    for phase in phases:
        for kind in KINDS:
            values = recorder.samples.get((phase, kind), [])
            rows.append({"phase": phase, "kind": kind, "n": len(values),
                         "errors": len(recorder.errors.get((phase, kind), [])),
                         "refused": len(recorder.refused.get((phase, kind), [])),
                         "p50": _pct(values, 0.5), "p95": _pct(values, 0.95),
                         "max": max(values) if values else float("nan")})
    everything = [ms for values in recorder.samples.values() for ms in values]
    rows.append({"phase": "all", "kind": "all requests", "n": len(everything), "errors": recorder.failed,
                 "refused": sum(len(v) for v in recorder.refused.values()), "p50": _pct(everything, 0.5),
                 "p95": _pct(everything, 0.95), "max": max(everything) if everything else float("nan")})
    with_phase = len(phases) > 1
    print()
    print(("| phase " if with_phase else "") + "| requests | n | errors | refused | p50 ms | p95 ms | max ms |")
    print(("|---" if with_phase else "") + "|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        if not row["n"] and row["kind"] != "all requests":
            continue
        print((f"| {row['phase']} " if with_phase else "") + f"| {row['kind']} | {row['n']} | {row['errors']} | "
              f"{row['refused']} | {row['p50']:.0f} | {row['p95']:.0f} | {row['max']:.0f} |")
    print(f"\n{len(everything)} requests in {elapsed:.1f} s ({len(everything) / max(elapsed, 1e-9):.1f}/s)")
    for label, table in (("errors", recorder.errors), ("refused", recorder.refused)):
        for (phase, kind), found in sorted(table.items()):
            if found:
                common = "; ".join(f"{e} x{found.count(e)}" for e in sorted(set(found)))
                print(f"{label} ({phase}, {kind}): {common}")
    return rows


def worker_memory(server: Gunicorn) -> list[dict]:
    import psutil

    rows = []
    for pid in server.worker_pids():
        info = psutil.Process(pid).memory_full_info()
        rows.append({"pid": pid, "rss_mb": info.rss / 2**20, "uss_mb": info.uss / 2**20})
    return rows


# ----------------------------------------------------------------------------------- the lab's parts and faults


class Lab:
    """The servers a run needs (gunicorn; Redis and Celery workers for some faults) and the fault."""

    def __init__(self, args, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.cache_dir = workdir / "cache"
        self.redis: RedisServer | None = None
        self.workers: list[CeleryWorker] = []
        self.server: Gunicorn | None = None
        self.events: list[str] = []

    def settings(self) -> dict[str, str]:
        env = {"ATTN_CACHE_DIR": str(self.cache_dir), "ATTN_RATE_LIMIT": "off"}
        if self.args.fault in ("redis-down", "worker-killed"):
            env["ATTN_REDIS_URL"] = self.redis.db_url(0)
        if self.args.fault == "worker-killed":
            env["ATTN_CELERY_BROKER_URL"] = self.redis.db_url(1)
        for item in self.args.set:
            name, value = item.split("=", 1)
            env[name] = value
        return env

    def start(self) -> str:
        if self.args.fault in ("redis-down", "worker-killed"):
            self.redis = RedisServer(self.workdir / "redis").start()
        env = child_env(**self.settings())
        if self.args.fault == "worker-killed":
            self.workers = [self._worker(i) for i in range(2)]
        self.server = Gunicorn(self.workdir, env, workers=self.args.workers, threads=self.args.threads)
        print(f"starting gunicorn: {self.args.workers} workers x {self.args.threads} threads on {self.server.url}"
              + (f", fault {self.args.fault}" if self.args.fault else "") + " ...", flush=True)
        self.server.start()
        return self.server.url

    def _worker(self, number: int) -> CeleryWorker:
        env = child_env(**self.settings())
        worker = CeleryWorker(self.workdir / f"worker-{number}-{len(self.events)}", env, self.redis.db_url(1),
                              hostname=f"load-{number}-{len(self.events)}-{os.getpid()}@%h")
        return worker.start()

    def break_it(self) -> None:
        fault = self.args.fault
        if fault == "redis-down":
            self.redis.kill()
        elif fault == "worker-killed":
            for worker in self.workers:
                worker.kill()
        elif fault == "readonly-cache":
            _read_only(self.cache_dir, True)
        self.events.append(f"{fault} at {time.strftime('%H:%M:%S')}")
        print(f"fault: {fault} ...", flush=True)

    def repair(self) -> None:
        fault = self.args.fault
        if fault == "redis-down":
            self.redis = RedisServer(self.workdir / "redis", port=self.redis.port).start()
        elif fault == "worker-killed":
            self.workers = [self._worker(0)]
        elif fault == "readonly-cache":
            _read_only(self.cache_dir, False)
        self.events.append(f"repaired at {time.strftime('%H:%M:%S')}")
        print("fault repaired", flush=True)

    def stop(self) -> None:
        if self.cache_dir.exists() and self.args.fault == "readonly-cache":
            _read_only(self.cache_dir, False)
        for part in (self.server, *self.workers, self.redis):
            if part is not None:
                part.stop()

    def health(self) -> str:
        try:
            return requests.get(self.server.url + "/healthz", timeout=10).text.strip()
        except requests.RequestException as exc:
            return f"no answer ({type(exc).__name__})"


def _read_only(folder: Path, on: bool) -> None:
    """Makes ``folder`` read-only (mode 0500; for root, whom modes do not stop, also immutable with
    ``chattr +i``), or writable again."""
    import subprocess

    if on:
        os.chmod(folder, 0o500)
    if os.geteuid() == 0:  # chmod first: an immutable folder's mode cannot be changed
        done = subprocess.run(["chattr", "+i" if on else "-i", str(folder)], capture_output=True, text=True)
        if done.returncode and on:
            raise SystemExit(f"cannot make {folder} read-only as root (chattr: {done.stderr.strip()})")
    if not on:
        os.chmod(folder, 0o700)


def _faults(lab: Lab, recorder: Recorder, started: float, args, done: threading.Event) -> None:
    """Breaks the lab at ``--fault-at`` and repairs it at ``--fault-until`` (fractions of the run)."""
    for phase, at, act in (("during", args.fault_at, lab.break_it), ("after", args.fault_until, lab.repair)):
        if done.wait(max(0.0, started + at * args.duration - time.monotonic())):
            return
        act()
        with recorder.lock:
            recorder.phase = phase
        # /healthz once the fault can be seen (a dead worker is seen within 6 s + 2 s of its last heartbeat)
        if done.wait(min(10.0, (args.fault_until - args.fault_at) * args.duration / 2)):
            return
        print(f"/healthz {phase} the fault: {lab.health()}", flush=True)


# ----------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20, help="simulated users at once (default 20, at most 64)")
    parser.add_argument("--duration", type=float, default=30, help="seconds of load (default 30, at most 600)")
    parser.add_argument("--think", type=float, default=1.0,
                        help="mean pause between a user's actions, seconds (default 1.0; 0 = no pause)")
    parser.add_argument("--new-share", type=float, default=0.15,
                        help="share of actions that analyse a new text (default 0.15); the rest change layer or head")
    parser.add_argument("--words", type=int, default=110, help="words per new text (default 110: about 128 tokens)")
    parser.add_argument("--model", default=None, help="model id to choose (default: the server's default)")
    parser.add_argument("--url", default=None, help="an already running app; otherwise gunicorn is started")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers when started here (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads a worker when started here (default 8)")
    parser.add_argument("--set", action="append", default=[], metavar="ATTN_NAME=VALUE",
                        help="a setting for the servers started here (repeatable), e.g. ATTN_DEFAULT_MODEL=path")
    parser.add_argument("--fault", choices=FAULTS, default=None, help="break a shared part mid-run (see above)")
    parser.add_argument("--fault-at", type=float, default=0.3, help="when the fault starts (fraction of the run)")
    parser.add_argument("--fault-until", type=float, default=0.6,
                        help="when it is repaired (fraction of the run; a worker takes seconds to start again)")
    parser.add_argument("--keep-alive", action="store_true",
                        help="keep each user's connection open (then each user stays on one gunicorn worker); by "
                             "default each request opens a new one, as a reverse proxy does, so it reaches any worker")
    parser.add_argument("--timeout", type=float, default=60, help="seconds a request may take (default 60)")
    parser.add_argument("--max-errors", type=float, default=0.0,
                        help="share of failed requests above which the exit status is 1 (default 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.users <= MAX_USERS:
        parser.error(f"--users must be between 1 and {MAX_USERS}")
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be more than 0 and at most {MAX_DURATION_S} seconds")
    if args.fault and args.url:
        parser.error("--fault needs the servers this benchmark starts (leave out --url)")
    if not 0 <= args.fault_at < args.fault_until <= 1:
        parser.error("--fault-at and --fault-until must satisfy 0 <= at < until <= 1")
    if any("=" not in item or not item.startswith("ATTN_") for item in args.set):
        parser.error("--set takes ATTN_NAME=VALUE")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("\n".join(machine_lines()), flush=True)
    workdir = tempfile.TemporaryDirectory(prefix="attn-load-")
    lab = Lab(args, Path(workdir.name))
    done = threading.Event()
    try:
        base_url = args.url or lab.start()
        if lab.server is not None:
            print("memory after warm-up: " + ", ".join(
                f"pid {m['pid']} RSS {m['rss_mb']:.0f} MB (USS {m['uss_mb']:.0f} MB)" for m in worker_memory(lab.server)))
        try:
            app = DashApp(base_url, timeout=args.timeout)
        except NotFound as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 2
        print(f"callbacks: Analyze {app.analyze['output'][:60]}..., router {app.router['output'][:60]}...")
        tabs = [ids.TAB_GRID, ids.TAB_HEATMAP, ids.TAB_ARCS]
        warm = Recorder()  # not reported: each gunicorn worker's first analysis (with Celery, the web process
        for uid in range(2 * args.workers):  # still loads the model once, to tell what kind it is)
            User(app, 1000 + uid, ids.TAB_GRID, args, warm).new_text()
        recorder = Recorder()
        users = [User(app, uid, tabs[uid % len(tabs)], args, recorder) for uid in range(args.users)]
        print(f"{args.users} users for {args.duration:.0f} s (pause ~{args.think:g} s, {args.new_share:.0%} new "
              f"texts of {args.words} words)" + (f", fault {args.fault}" if args.fault else "") + " ...", flush=True)
        started = time.monotonic()
        deadline = started + args.duration
        faults = None
        if args.fault:
            faults = threading.Thread(target=_faults, args=(lab, recorder, started, args, done), daemon=True)
            faults.start()
        with ThreadPoolExecutor(args.users) as pool:
            futures = [pool.submit(user.run, deadline) for user in users]
            for future in futures:
                future.result()
        elapsed = time.monotonic() - started
        done.set()
        if faults is not None:
            faults.join(timeout=120)
        rows = report(recorder, elapsed, PHASES if args.fault else ("before",))
        if lab.server is not None:
            print("memory after the run: " + ", ".join(
                f"pid {m['pid']} RSS {m['rss_mb']:.0f} MB (USS {m['uss_mb']:.0f} MB)" for m in worker_memory(lab.server)))
            print(f"/healthz at the end: {lab.health()}")
        if args.json:
            args.json.write_text(json.dumps({
                "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "elapsed_s": elapsed,
                "sent": recorder.sent, "failed": recorder.failed, "events": lab.events,
                "callbacks": {"analyze": app.analyze["output"], "router": app.router["output"]},
                "memory": worker_memory(lab.server) if lab.server else []}, indent=2))
        if recorder.sent == 0:
            print("FAILED: no request was sent", file=sys.stderr)
            return 2
        share = recorder.failed / recorder.sent
        if share > args.max_errors:
            print(f"FAILED: {recorder.failed} of {recorder.sent} requests failed ({share:.1%} > {args.max_errors:.1%})",
                  file=sys.stderr)
            return 1
        return 0
    finally:
        done.set()
        lab.stop()
        workdir.cleanup()


if __name__ == "__main__":
    sys.exit(main())
