"""Hostile input at the real Dash endpoint of gunicorn on loopback (issue 9, item 10).

One gunicorn (2 workers, the project's gunicorn.conf.py, tiny models, a private file-system cache) is
started for the module. Nothing about the app's callbacks is written down here: the callbacks, their
inputs and states come from the running server's ``GET /_dash-dependencies`` and their realistic
values from ``GET /_dash-layout``; request bodies are built the way Dash's renderer builds them
(``output``, ``outputs``, ``inputs``, ``state``, ``changedPropIds``, ``parsedChangedPropsIds``).
Browser-only (clientside) callbacks never reach the server and are skipped.

For every server callback and every input and state of it, one value at a time is replaced by a
hostile one (wrong types, NaN / Infinity / 1e400 tokens, huge and negative numbers, long and junk
strings, nested and huge containers, out-of-range numbers), in the page's first state and in every
open view (each tab, with every switch on), with the mutated input as the trigger. Dict-valued
stores (the analysis handle) are tampered field by field (forged, absent, traversing and swapped
keys, lying shapes, missing fields); pattern-matching inputs get forged ids; Plotly and table event
inputs (``*Data``, ``*_cell``) get malformed events. Then protocol junk and raw HTTP junk.

Every answer must be: below 500; 200 (JSON that a browser can parse: no NaN) or 204 when the body
was well-formed JSON for the callback; no traceback nor Python exception name in it; nothing logged
at ERROR (nor a traceback) by the server while answering; an answer at all (a hang fails). At the
end the server still serves a new analysis and its view, with the same gunicorn workers. The
download route (issue 19) gets junk query values for every field it reads.

Then (issue 19) the deployments a lab runs, each with its own gunicorn started and stopped in its test:
the sign-in configurations against hostile credentials and a local account's forged headers (basic;
proxy with the shared secret; proxy without a secret on a Unix socket; proxy with no proof, which
must not start), and the documented nginx (docs/nginx/attention-explorer.conf, run as the guide
shows it) in front of gunicorn: 48 slow clients, sign-in and per-person limits through it.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from attention_explorer.components import ids
from tests.servers import LOOPBACK, Gunicorn, RedisServer, child_env

pytestmark = pytest.mark.servers

ENDPOINT = "/_dash-update-component"
LIMIT_KB = 1024  # ATTN_MAX_REQUEST_KB for the server under test (the default)
WORKERS = 2
ANSWER_TIMEOUT = 60  # seconds without an answer: the server hangs (a failure, not a measurement)
WILDCARDS = ("ALL", "MATCH", "ALLSMALLER")
EVENT_SUFFIXES = ("Data", "_cell", "_cells")  # Plotly clickData / hoverData ..., DataTable active_cell ...

# What must never reach a person: a traceback, a source line, a Python exception or warning name.
LEAK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"\n]*\", line \d+|"
                  r"\b[A-Z][A-Za-z]*(?:Error|Exception|Warning)\b")
# What must never appear in the server's log while it answers junk.
BAD_LOG = re.compile(r"Traceback|\] (?:ERROR|CRITICAL) |\[(?:ERROR|CRITICAL)\]|WORKER TIMEOUT|Worker exiting|"
                     r"Booting worker|was sent SIG|exited with code")


# ============================================================================ hostile values

class Raw:
    """A JSON token written as is (json.dumps cannot write 1e400 or -0 as typed)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:24]}{'…' if len(self.text) > 24 else ''})"


def nested_list(depth: int) -> Any:
    """``[[[...1...]]]``; deeper than Python's json can write, as raw JSON text."""
    if depth > 500:
        return Raw("[" * depth + "1" + "]" * depth)
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def nested_dict(depth: int) -> Any:
    if depth > 500:
        return Raw('{"a":' * depth + "1" + "}" * depth)
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


NAN, INF = float("nan"), float("inf")
BODY_ROOM = LIMIT_KB * 1024 - 64 * 1024  # a string this long still fits in a request with the rest

# (label, value, whether Python's json decodes it): a value it cannot decode makes the body junk (4xx).
SCALARS = [
    ("null", None, True), ("true", True, True), ("false", False, True), ("0", 0, True), ("-1", -1, True),
    ("1", 1, True), ("2", 2, True), ("3", 3, True), ("4", 4, True), ("12", 12, True), ("1.5", 1.5, True),
    ("-0.5", -0.5, True), ("0.9999", 0.9999, True), ("denormal", 5e-324, True), ("1e308", 1e308, True),
    ("-1e308", -1e308, True), ("1e9", 10**9, True), ("-1e9", -10**9, True), ("2^63", 2**63, True),
    ("2^64+1", 2**64 + 1, True), ("10^400", 10**400, True), ("-10^400", -10**400, True),
    ("NaN", NAN, True), ("Infinity", INF, True), ("-Infinity", -INF, True), ("1e400", Raw("1e400"), True),
    ("-1e400", Raw("-1e400"), True), ("-0", Raw("-0"), True), ("1e-400", Raw("1e-400"), True),
    ("4300 digits", Raw("9" * 4300), True), ("4301 digits", Raw("9" * 4301), False),
]
STRINGS = [
    ("''", "", True), ("' '", " ", True), ("'0'", "0", True), ("'12'", "12", True), ("'-1'", "-1", True),
    ("'1e9'", "1e9", True), ("'1e400'", "1e400", True), ("'NaN'", "NaN", True), ("'-inf'", "-inf", True),
    ("'0x10'", "0x10", True), ("'1_000'", "1_000", True), ("' 3 '", " 3 ", True), ("'3.0'", "3.0", True),
    ("'all'", "all", True), ("'mean'", "mean", True), ("'null'", "null", True), ("NUL", "\x00", True),
    ("lone surrogate", "\ud800", True), ("reversed surrogates", "\udfff\ud800x", True),
    ("combining marks", "e" + "\u0301" * 3000, True), ("zero-width", "\u200b\u200d\ufeff" * 300, True),
    ("bidi override", "\u202etxet\u202c", True), ("emoji family", "👩\u200d👩\u200d👧\u200d👦" * 200, True),
    ("CJK", "猫坐在垫子上" * 100, True), ("script tag", "<script>alert(1)</script>", True),
    ("img onerror", "\"><img src=x onerror=alert(1)>", True), ("templates", "{{7*7}}${7*7}%s%n%x", True),
    ("SQL", "'; DROP TABLE users; --", True), ("traversal", "../../../../etc/passwd", True),
    ("absolute path", "/etc/passwd", True), ("home", "~", True), ("root", "/", True),
    ("CRLF header", "x\r\nSet-Cookie: a=1\r\n", True), ("5001 chars", "a" * 5001, True),
    ("80k words", "the " * 20_000, True), ("200k chars", "x" * 200_000, True),
]
CONTAINERS = [
    ("[]", [], True), ("{}", {}, True), ("[null]", [None], True), ("[1,2,3]", [1, 2, 3], True),
    ("[NaN]", [NAN], True), ("['hide'] x 100", ["hide"] * 100, True), ("[[1]]", [[1]], True),
    ("10k ints", list(range(10_000)), True), ("10k strings", ["a"] * 10_000, True),
    ("10k-key dict", {str(i): i for i in range(10_000)}, True), ("list depth 100", nested_list(100), True),
    ("dict depth 100", nested_dict(100), True), ("list depth 500", nested_list(500), True),
    ("__proto__", {"__proto__": {"polluted": 1}, "constructor": {"prototype": {"x": 1}}}, True),
    ("component-like", {"type": "Div", "namespace": "dash_html_components", "props": {"children": "x"}}, True),
    ("points-like", {"points": [{"x": NAN, "y": 10**400}]}, True),
]
VALUES = SCALARS + STRINGS + CONTAINERS
# A sample for every other page state: the values that reach the most different code.
REDUCED = [v for v in VALUES if v[0] in {
    "null", "true", "-1", "1.5", "1e9", "10^400", "NaN", "'12'", "lone surrogate", "[]", "10k ints", "list depth 100",
}]
HUGE_STRING = ("near the body limit", "y" * BODY_ROOM, True)

EVENTS = [  # Plotly click / hover / selection data and DataTable cells, malformed
    ("no points", {"points": []}), ("points junk", {"points": "x"}), ("empty point", {"points": [{}]}),
    ("point NaN", {"points": [{"x": NAN, "y": INF, "z": -INF, "curveNumber": NAN, "pointNumber": NAN}]}),
    ("point huge", {"points": [{"x": 10**400, "y": -10**9, "curveNumber": 10**9, "pointNumber": 2**63,
                                "pointIndex": [10**9, -1], "customdata": ["<script>", None]}]}),
    ("point strings", {"points": [{"x": "../../etc", "y": "\ud800", "curveNumber": "0", "text": "x" * 10_000}]}),
    ("10k points", {"points": [{"x": i, "y": i, "curveNumber": 0} for i in range(10_000)]}),
    ("bbox junk", {"points": [{"x": 0, "y": 0, "bbox": {"x0": NAN, "y0": "x"}}]}),
    ("cell huge", {"row": 10**9, "column": -1, "column_id": "../../x", "row_id": 10**400}),
    ("cell junk", {"row": None, "column": "x", "column_id": None}), ("cell list", [{"row": 0, "column": 0}]),
]


def field_values(base: Any) -> list[tuple[str, Any]]:
    """Hostile values for one field of a dict store, some derived from its current value."""
    values: list[tuple[str, Any]] = [
        ("null", None), ("true", True), ("''", ""), ("-1", -1), ("0", 0), ("1e9", 10**9), ("10^400", 10**400),
        ("NaN", NAN), ("1.5", 1.5), ("'12'", "12"), ("[]", []), ("{}", {}), ("10k chars", "x" * 10_000),
        ("script tag", "<script>alert(1)</script>"), ("lone surrogate", "\ud800"),
        ("traversal", "../../../../etc/passwd"), ("list depth 100", nested_list(100)),
    ]
    if isinstance(base, str) and base:
        head, sep, tail = base.rpartition(":")
        forged_tail = "".join("0123456789abcdef"[(int(c, 16) + 1) % 16] if c in "0123456789abcdef" else c
                              for c in tail)
        values += [
            ("forged (same shape, no such result)", f"{head}{sep}{forged_tail}"),
            ("all zeros", f"{head}{sep}{'0' * len(tail)}"), ("upper case", base.upper()),
            ("one char short", base[:-1]), ("one char long", base + "0"), ("suffix traversal", base + "/../../x"),
            ("prefix traversal", "../" * 8 + base), ("prefix swapped", f"../..{sep}{tail}"),
            ("NUL inside", base[:4] + "\x00" + base[4:]), ("newline", base + "\n"), ("repeated", base * 50),
        ]
    if isinstance(base, int) and not isinstance(base, bool):
        values += [("+1", base + 1), ("-n", -base), ("x 10^6", base * 10**6), ("as string", str(base)),
                   ("as float + 0.5", base + 0.5), ("4096", 4096), ("4097", 4097)]
    return values


# ============================================================================ the server

@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory) -> Iterator[Gunicorn]:
    workdir = tmp_path_factory.mktemp("hostile")
    env = child_env(
        ATTN_DEFAULT_MODEL=tiny_models["bert"], ATTN_MODELS=f"{tiny_models['bert']},{tiny_models['gpt2']}",
        ATTN_CACHE_TYPE="filesystem", ATTN_CACHE_DIR=str(workdir / "cache"), ATTN_MAX_REQUEST_KB=str(LIMIT_KB),
        ATTN_RATE_LIMIT="100000/minute",  # on, as in the gunicorn example, but far above what this sends
        ATTN_EXPORT_RATE_LIMIT="100000/minute",
    )
    gunicorn = Gunicorn(workdir, env, workers=WORKERS, threads=2)
    gunicorn.start()
    try:
        deadline = time.monotonic() + 120
        while (len(gunicorn.worker_pids()) < WORKERS or gunicorn_log(gunicorn).count("Booting worker") < WORKERS
               or "Attention" not in _get(gunicorn, "/").text) and time.monotonic() < deadline:
            time.sleep(0.1)  # both workers forked and booted, the page served
        gunicorn.initial_workers = sorted(gunicorn.worker_pids())
        assert len(gunicorn.initial_workers) == WORKERS, gunicorn.log_text()
        yield gunicorn
    finally:
        gunicorn.stop()


def gunicorn_log(server: Gunicorn) -> str:
    return Path(server.log_path).read_text(errors="replace")


def _get(server: Gunicorn, path: str) -> requests.Response:
    return requests.get(server.url + path, timeout=ANSWER_TIMEOUT)


class LogWatch:
    """What the server logged since the last look (requests are sent one at a time, so what a request
    caused is logged before its answer arrives and is read right after it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = self.path.stat().st_size

    def new(self) -> str:
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            data = log.read()
        self.offset += len(data)
        return data.decode(errors="replace")


# ============================================================================ discovery

def stringify_id(id_: Any) -> str:
    """A component id as Dash writes it in prop ids (dict ids: sorted keys, compact JSON)."""
    if isinstance(id_, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(id_[k], separators=(',', ':'))}"
                              for k in sorted(id_)) + "}"
    return id_


def parse_id(text: str) -> Any:
    return json.loads(text) if text.startswith("{") else text


def is_wild(value: Any) -> str | None:
    if isinstance(value, list) and len(value) == 1 and value[0] in WILDCARDS:
        return value[0]
    return None


def wildcard_of(id_: Any) -> str | None:
    if isinstance(id_, dict):
        for value in id_.values():
            if is_wild(value):
                return is_wild(value)
    return None


def components(node: Any) -> Iterator[dict]:
    """Every component in a layout, depth first (children and component-valued props alike)."""
    if isinstance(node, list):
        for item in node:
            yield from components(item)
    elif isinstance(node, dict):
        if "props" in node and "type" in node and "namespace" in node:
            yield node
            for value in node["props"].values():
                yield from components(value)
        else:
            for value in node.values():
                yield from components(value)


@dataclass
class Page:
    """The layout's components by id (dict ids by their stringified form, in order)."""

    by_id: dict[str, dict] = field(default_factory=dict)
    order: list[Any] = field(default_factory=list)

    @classmethod
    def from_layout(cls, layout: Any) -> "Page":
        page = cls()
        for component in components(layout):
            cid = component["props"].get("id")
            if cid is not None:
                page.by_id[stringify_id(cid)] = component
                page.order.append(cid)
        return page

    def matching(self, pattern: dict) -> list[dict]:
        """Concrete dict ids in the layout that a wildcard id matches."""
        found = []
        for cid in self.order:
            if isinstance(cid, dict) and set(cid) == set(pattern) and all(
                    is_wild(v) or cid[k] == v for k, v in pattern.items()):
                found.append(cid)
        return found

    def value(self, id_: Any, prop: str) -> tuple[bool, Any]:
        component = self.by_id.get(stringify_id(id_))
        if component is None or prop not in component["props"]:
            return False, None
        return True, component["props"][prop]

    def choices(self, id_: Any, prop: str) -> list | None:
        """The values a control offers (dropdown / radio / checklist options, tabs), or None."""
        component = self.by_id.get(stringify_id(id_))
        if component is None:
            return None
        props = component["props"]
        if prop == "active_tab" or component["type"] == "Tabs":
            children = props.get("children")
            children = children if isinstance(children, list) else [children]
            tabs = [c["props"].get("tab_id", c["props"].get("value")) for c in children
                    if isinstance(c, dict) and isinstance(c.get("props"), dict)]
            return [t for t in tabs if t is not None] or None
        if prop != "value" or props.get("options") is None:
            return None
        options = props["options"]
        if isinstance(options, dict):
            return list(options)
        return [o.get("value") if isinstance(o, dict) else o for o in options]


def item(id_: Any, prop: str, present: bool, value: Any) -> dict:
    entry = {"id": id_, "property": prop}
    if present:  # the renderer leaves "value" out for a prop the component does not have
        entry["value"] = value
    return entry


@dataclass
class Callback:
    """A server callback and how the renderer would call it from the page as laid out."""

    output: str
    outputs: Any
    inputs: list[dict]  # specs: {"id", "property"}, dict ids parsed
    state: list[dict]
    page: Page

    @property
    def name(self) -> str:
        return self.output[:60]

    @property
    def output_ids(self) -> set[str]:
        outs = self.outputs if isinstance(self.outputs, list) else [self.outputs]
        return {stringify_id(o["id"]) for o in outs if isinstance(o, dict)}

    def entry(self, spec: dict, context: dict[str, Any]) -> Any:
        """One input or state as the renderer sends it (a list for ALL / ALLSMALLER ids)."""
        id_, prop = spec["id"], spec["property"]
        key = f"{stringify_id(id_)}.{prop}"
        wild = wildcard_of(id_)
        if wild in ("ALL", "ALLSMALLER"):
            return [item(c, prop, *self.page.value(c, prop)) for c in self.page.matching(id_)]
        if wild == "MATCH":
            id_ = (self.page.matching(id_) or [{k: (0 if is_wild(v) else v) for k, v in id_.items()}])[0]
        present, value = self.page.value(id_, prop)
        if key in context:
            present, value = True, context[key]
        return item(id_, prop, present, value)

    def body(self, context: dict[str, Any] | None = None, changed: list[str] | None = None) -> dict:
        context = context or {}
        inputs = [self.entry(s, context) for s in self.inputs]
        body: dict[str, Any] = {"output": self.output, "outputs": copy.deepcopy(self.outputs), "inputs": inputs}
        if changed is None:
            changed = [prop_ids(inputs[0])[0]] if inputs and prop_ids(inputs[0]) else []
        body["changedPropIds"] = changed
        body["parsedChangedPropsIds"] = [parse_id(c.rsplit(".", 1)[0]) if c.startswith("{") else c for c in changed]
        if self.state:
            body["state"] = [self.entry(s, context) for s in self.state]
        return body

    def key(self, spec: dict) -> str:
        return f"{stringify_id(spec['id'])}.{spec['property']}"

    def trigger_for(self, spec: dict, inputs: list) -> list[str]:
        """changedPropIds when ``spec`` changes: itself for an input, else the first plain input."""
        if spec in self.inputs:
            entry = inputs[self.inputs.index(spec)]
            return prop_ids(entry)[:1]
        for i, s in enumerate(self.inputs):
            if not wildcard_of(s["id"]):
                return prop_ids(inputs[i])[:1]
        return prop_ids(inputs[0])[:1] if inputs else []


def prop_ids(entry: Any) -> list[str]:
    entries = entry if isinstance(entry, list) else [entry]
    return [f"{stringify_id(e['id'])}.{e['property']}" for e in entries
            if isinstance(e, dict) and "id" in e and "property" in e]


def split_outputs(output: str, page: Page) -> Any:
    """The ``outputs`` the renderer sends: a list for a multi-output callback, else one dict."""
    def one(part: str) -> Any:
        id_text, prop = part.rsplit(".", 1)
        id_ = parse_id(id_text)
        wild = wildcard_of(id_)
        if wild in ("ALL", "ALLSMALLER"):
            return [{"id": c, "property": prop} for c in page.matching(id_)]
        if wild == "MATCH":
            id_ = (page.matching(id_) or [id_])[0]
        return {"id": id_, "property": prop}

    if output.startswith(".."):
        return [one(part) for part in output[2:-2].split("...")]
    return one(output)


@dataclass
class Catalog:
    callbacks: list[Callback]  # the server's
    browser: list[Callback]  # clientside: the renderer never sends them to the server
    page: Page

    @property
    def clientside(self) -> int:
        return len(self.browser)


@pytest.fixture(scope="module")
def catalog(server) -> Catalog:
    return catalog_of(server)


def catalog_of(server: Gunicorn) -> Catalog:
    """The server's callbacks and page, as the renderer learns them."""
    deps = requests.get(server.url + "/_dash-dependencies", timeout=ANSWER_TIMEOUT).json()
    layout = requests.get(server.url + "/_dash-layout", timeout=ANSWER_TIMEOUT).json()
    page = Page.from_layout(layout)
    callbacks, browser = [], []
    for dep in deps:
        spec = lambda d: {"id": parse_id(d["id"]), "property": d["property"]}  # noqa: E731
        found = Callback(dep["output"], split_outputs(dep["output"], page),
                         [spec(d) for d in dep["inputs"]], [spec(d) for d in dep.get("state", [])], page)
        (browser if dep.get("clientside_function") else callbacks).append(found)
    return Catalog(callbacks, browser, page)


# ============================================================================ sending and checking

def encode(body: Any) -> bytes:
    """JSON as a browser (or anything else) might send it: NaN and Infinity as bare tokens, Raw as is."""
    raws: list[str] = []

    def swap(value: Any, depth: int = 0) -> Any:
        if isinstance(value, Raw):
            raws.append(value.text)
            return f"\u0001RAW{len(raws) - 1}\u0001"
        if depth > 8:  # Raw values sit in a body's values or a store's fields, never deeper
            return value
        if isinstance(value, list):
            return [swap(v, depth + 1) for v in value]
        if isinstance(value, dict):
            return {k: swap(v, depth + 1) for k, v in value.items()}
        return value

    text = json.dumps(swap(body), allow_nan=True)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\u0001RAW{i}\u0001"), raw)
    return text.encode()


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} in a JSON answer (a browser cannot parse it)")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Prober:
    """Sends requests one at a time, checks every answer and the log, and collects what went wrong."""

    def __init__(self, server: Gunicorn) -> None:
        self.server = server
        self.session = requests.Session()
        self.log = LogWatch(server.log_path)
        self.failures: list[str] = []
        self.sent = 0
        self.statuses: dict[int, int] = {}

    def fail(self, case: str, problem: str) -> None:
        self.failures.append(f"{case}: {problem}")

    def request(self, method: str, path: str, case: str, data: bytes | None = None,
                headers: dict[str, str] | None = None) -> Reply | None:
        self.sent += 1
        try:
            response = self.session.request(method, self.server.url + path, data=data, headers=headers,
                                            timeout=ANSWER_TIMEOUT, allow_redirects=False)
        except requests.RequestException as exc:
            self.fail(case, f"no answer ({type(exc).__name__}: {str(exc)[:200]})")
            self.session = requests.Session()
            self.check_log(case)
            return None
        reply = Reply(response.status_code, dict(response.headers), response.content)
        if reply.status == 413 or reply.headers.get("Connection", "").lower() == "close":
            self.session.close()  # the server may close it without reading the body: don't reuse it
            self.session = requests.Session()
        self.check(case, reply)
        return reply

    def raw(self, payload: bytes, case: str, half_close: bool = True) -> Reply | None:
        """Bytes straight down a socket (what requests would refuse to send); the answer parsed."""
        self.sent += 1
        chunks = []
        try:
            with socket.create_connection((LOOPBACK, self.server.port), timeout=ANSWER_TIMEOUT) as sock:
                try:
                    sock.sendall(payload)
                    if half_close:
                        sock.shutdown(socket.SHUT_WR)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass  # the server answered (a 413, say) and closed before reading it all
                while True:
                    try:
                        chunk = sock.recv(65536)
                    except ConnectionResetError:
                        break
                    if not chunk:
                        break
                    chunks.append(chunk)
        except socket.timeout:
            self.fail(case, "no answer: the connection hung")
            self.check_log(case)
            return None
        except OSError as exc:
            if not chunks:
                self.fail(case, f"connection failed ({exc})")
                self.check_log(case)
                return None
        data = b"".join(chunks)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        match = re.match(r"HTTP/1\.[01] (\d{3})", lines[0]) if lines else None
        if match is None:
            # Closing without an answer is acceptable for bytes that are not HTTP; a 5xx is not.
            reply = Reply(0, {}, data)
        else:
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            reply = Reply(int(match.group(1)), headers, body)
        self.check(case, reply)
        return reply

    def check(self, case: str, reply: Reply) -> None:
        self.statuses[reply.status] = self.statuses.get(reply.status, 0) + 1
        if reply.status >= 500:
            self.fail(case, f"HTTP {reply.status}: {reply.body[:300]!r}")
        text = reply.body.decode("utf-8", errors="replace")
        leak = LEAK.search(text)
        if leak:
            self.fail(case, f"the answer names {leak.group(0)!r}: …{text[max(0, leak.start() - 150):leak.end() + 150]}…")
        self.check_log(case)

    def check_log(self, case: str) -> None:
        logged = self.log.new()
        bad = BAD_LOG.search(logged)
        if bad:
            self.fail(case, f"the server logged {bad.group(0)!r}:\n{logged[max(0, bad.start() - 300):bad.end() + 1500]}")

    def callback(self, cb: Callback, body: Any, case: str, well_formed: bool = True) -> Reply | None:
        """POSTs a callback body; a well-formed one must be answered 200 with JSON, or 204."""
        data = body if isinstance(body, bytes) else encode(body)
        reply = self.request("POST", ENDPOINT, f"{cb.name} · {case}", data, {"Content-Type": "application/json"})
        if reply is None or not well_formed:
            return reply
        if reply.status == 413 and len(data) > LIMIT_KB * 1024:
            return reply  # over the server's limit as a whole (e.g. 10k ints in each of 20 inputs): refused, rightly
        if reply.status not in (200, 204):
            self.fail(f"{cb.name} · {case}", f"a well-formed request was answered {reply.status}: {reply.body[:300]!r}")
        elif reply.status == 200:
            self.check_json(f"{cb.name} · {case}", reply, cb)
        return reply

    def check_json(self, case: str, reply: Reply, cb: Callback | None = None) -> Any:
        if not reply.headers.get("Content-Type", "").startswith("application/json"):
            self.fail(case, f"200 but not JSON: {reply.headers.get('Content-Type')}")
            return None
        try:
            answer = json.loads(reply.body, parse_constant=_no_constants)
        except ValueError as exc:
            self.fail(case, f"200 with a body a browser cannot parse: {exc}")
            return None
        if not isinstance(answer, dict) or not isinstance(answer.get("response"), dict):
            self.fail(case, f"200 without a Dash response: {reply.body[:200]!r}")
            return None
        if cb is not None and not set(answer["response"]) <= cb.output_ids:
            self.fail(case, f"answered for components it does not own: {set(answer['response']) - cb.output_ids}")
        return answer

    def assert_clean(self, what: str) -> None:
        assert self.sent > 0
        shown = "\n\n".join(self.failures[:25])
        assert not self.failures, (f"{len(self.failures)} of {self.sent} {what} went wrong "
                                   f"(first {min(25, len(self.failures))}):\n\n{shown}")


@pytest.fixture(scope="module")
def totals() -> dict[str, int]:
    return {}


@pytest.fixture
def prober(server, totals, request) -> Iterator[Prober]:
    p = Prober(server)
    yield p
    totals[request.node.name.removeprefix("test_")] = p.sent


# ============================================================================ page states

def contexts(cb: Callback) -> list[tuple[str, dict[str, Any]]]:
    """The page states to try every hostile value in: as laid out; each other tab open; and each tab
    open with every switch on and the last option of every other control chosen."""
    page = cb.page
    tabs, every_on = [], {}
    for spec in cb.inputs + cb.state:
        if wildcard_of(spec["id"]):
            continue
        key = cb.key(spec)
        choices = page.choices(spec["id"], spec["property"])
        if not choices:
            continue
        _, current = page.value(spec["id"], spec["property"])
        component = page.by_id[stringify_id(spec["id"])]
        if spec["property"] == "active_tab" or component["type"] == "Tabs":
            tabs.append((key, current, choices))
        elif isinstance(current, list):
            every_on[key] = list(choices)
        else:
            others = [c for c in choices if c != current]
            if others:
                every_on[key] = others[-1]
    found: list[tuple[str, dict[str, Any]]] = [("as laid out", {})]
    for key, current, choices in tabs:
        found += [(f"{key}={c}", {key: c}) for c in choices if c != current]
    if every_on:
        found.append(("every switch on", dict(every_on)))
        for key, current, choices in tabs:
            found += [(f"every switch on, {key}={c}", {**every_on, key: c}) for c in choices if c != current]
    return found


def mutate(cb: Callback, context: dict, spec: dict, value: Any) -> dict:
    """The page in ``context`` with ``spec``'s value replaced (every item of a pattern-matching input),
    and that input as the trigger."""
    body = cb.body(context)
    where, index = ("inputs", cb.inputs.index(spec)) if spec in cb.inputs else ("state", cb.state.index(spec))
    entry = body[where][index]
    if isinstance(entry, list):  # every item of a pattern-matching input; a huge value in one only
        for e in entry[:1] if isinstance(value, str) and len(value) > 100_000 else entry:
            e["value"] = value
    else:
        entry["value"] = value
    changed = cb.trigger_for(spec, body["inputs"])
    body["changedPropIds"] = changed
    body["parsedChangedPropsIds"] = [parse_id(c.rsplit(".", 1)[0]) if c.startswith("{") else c for c in changed]
    return body


# ============================================================================ the tests

def test_every_server_callback_is_found_and_answers_its_page_values(server, catalog, prober):
    """The bodies built here are what the renderer sends: each server callback answers them 200/204
    in every page state (else the hostile tests below would only prove that junk bodies get 400)."""
    assert catalog.callbacks, "no server callback found at /_dash-dependencies"
    drew: dict[str, set[str]] = {}
    for cb in catalog.callbacks:
        assert cb.inputs, cb.name
        for label, context in contexts(cb):
            for spec in cb.inputs:
                changed = cb.trigger_for(spec, cb.body(context)["inputs"])
                body = cb.body(context, changed=changed)  # the page's own values, ``spec`` the trigger
                reply = prober.callback(cb, body, f"{label} · {cb.key(spec)} unchanged")
                if reply is not None and reply.status == 200:
                    drew.setdefault(cb.name, set()).add(label)
    prober.assert_clean("page-value requests")
    for cb in catalog.callbacks:  # every callback answered something in every page state
        assert drew.get(cb.name) == {label for label, _ in contexts(cb)}, (cb.name, drew.get(cb.name))


def test_hostile_values_for_every_input_and_state(server, catalog, prober):
    """One input or state at a time (and the trigger), every value kind, in every page state."""
    for cb in catalog.callbacks:
        for label, context in contexts(cb):
            matrix = VALUES + [HUGE_STRING] if not context else REDUCED
            drawn = 0
            for spec in cb.inputs + cb.state:
                for name, value, decodes in matrix:
                    body = mutate(cb, context, spec, value)
                    reply = prober.callback(cb, body, f"{label} · {cb.key(spec)} = {name}", well_formed=decodes)
                    drawn += bool(reply is not None and reply.status == 200)
            if not drawn:  # the values reached the code that draws, not only "no update"
                prober.fail(f"{cb.name} · {label}", "no hostile value was answered with an update")
            # every input at once, all of them triggers (as a page's first render would be)
            for name, value, decodes in REDUCED:
                body = cb.body(context)
                for where in ("inputs", "state"):
                    for entry in body.get(where, []):
                        for e in entry if isinstance(entry, list) else [entry]:
                            e["value"] = value
                changed = [p for entry in body["inputs"] for p in prop_ids(entry)]
                body["changedPropIds"] = changed
                prober.callback(cb, body, f"{label} · everything = {name}, all triggered", well_formed=decodes)
    prober.assert_clean("hostile-value requests")


def _samples(prober: Prober, catalog: Catalog) -> dict[str, list[dict]]:
    """Dict values the server itself wrote into inputs (e.g. the handles of analyses with each model),
    to swap between: real keys with another result's shape, model or fields."""
    inputs = {cb.key(s) for cb in catalog.callbacks for s in cb.inputs + cb.state}
    found: dict[str, list[dict]] = {}
    for cb in catalog.callbacks:
        for label, context in contexts(cb):
            reply = prober.callback(cb, cb.body(context), f"{label} · sampling outputs")
            if reply is None or reply.status != 200:
                continue
            answer = json.loads(reply.body)
            for cid, props in answer["response"].items():
                for prop, value in props.items():
                    key = f"{cid}.{prop.split('@')[0]}"
                    if key in inputs and isinstance(value, dict) and value not in found.setdefault(key, []):
                        found[key].append(value)
    return found


# The field values tried in every other page state (all of them are tried in the page as laid out).
FIELD_SAMPLE = {"null", "-1", "1e9", "10^400", "NaN", "'12'", "[]", "traversal", "lone surrogate",
                "forged (same shape, no such result)", "prefix traversal", "+1", "x 10^6"}


def tamper_cases(original: dict, others: list[dict], full: bool) -> list[tuple[str, Any]]:
    """A dict store's value with one field changed (or gone, or taken from another real value), and
    junk in its place as a whole."""
    cases: list[tuple[str, Any]] = []
    for name in original:
        values = field_values(original[name])
        cases += [(f"{name} = {v_name}", {**original, name: v}) for v_name, v in values
                  if full or v_name in FIELD_SAMPLE]
        cases.append((f"no {name}", {k: v for k, v in original.items() if k != name}))
        for other in others:
            if other.get(name) != original[name]:
                cases.append((f"{name} from another result", {**original, name: other.get(name)}))
    if full:
        cases += [
            ("extra fields", {**original, "__proto__": {"x": 1}, "extra": "x" * 1000}),
            ("inside a list", [original]), ("1000 copies", [original] * 1000), ("wrapped", {"data": original}),
            ("keys only", list(original)), ("values as strings", {k: str(v) for k, v in original.items()}),
            ("every field null", dict.fromkeys(original)),
        ]
    return cases


def test_tampered_stores(server, catalog, prober):
    """Every dict-valued input or state (the analysis handle): each field forged, traversing, huge,
    of the wrong type or missing; fields swapped with another real result's (a real key with another
    result's shape or model); the whole value junk. In every page state (each view open)."""
    samples = _samples(prober, catalog)
    tampered = 0
    for cb in catalog.callbacks:
        for label, context in contexts(cb):
            for spec in cb.inputs + cb.state:
                if wildcard_of(spec["id"]):
                    continue
                key = cb.key(spec)
                _, base = cb.page.value(spec["id"], spec["property"])
                bases = ([base] if isinstance(base, dict) else []) + [s for s in samples.get(key, []) if s != base]
                for n, original in enumerate(bases[:2] if not context else bases[:1]):
                    for case, value in tamper_cases(original, [b for b in bases if b is not original], not context):
                        tampered += 1
                        prober.callback(cb, mutate(cb, context, spec, value), f"{label} · {key} (sample {n}) {case}")
    assert tampered, "no dict-valued store among the callbacks' inputs: nothing was tampered with"
    assert any(len(v) > 0 for v in samples.values()), "no store value came back from the server to swap with"
    prober.assert_clean("tampered-store requests")


def test_pattern_matching_inputs_with_forged_ids(server, catalog, prober):
    """Pattern-matching inputs (e.g. the example buttons): forged wildcard values, other keys, a
    pressed button that is not on the page, none or too many items."""
    forged = [("1e9", 10**9), ("-1", -1), ("10^400", 10**400), ("NaN", NAN), ("'0'", "0"), ("1.5", 1.5),
              ("true", True), ("null", None), ("[]", []), ("{}", {}), ("traversal", "../../x"),
              ("lone surrogate", "\ud800"), ("script", "<script>alert(1)</script>"), ("list depth 100", nested_list(100))]
    tried = 0
    for cb in catalog.callbacks:
        for spec in cb.inputs + cb.state:
            pattern = spec["id"]
            if wildcard_of(pattern) not in ("ALL", "ALLSMALLER"):
                continue
            where, index = ("inputs", cb.inputs.index(spec)) if spec in cb.inputs else ("state", cb.state.index(spec))
            wild_keys = [k for k, v in pattern.items() if is_wild(v)]
            prop = spec["property"]
            # (case, items, added to the page's items (else instead of them), well-formed)
            cases: list[tuple[str, list, bool, bool]] = []
            for key in wild_keys:
                for name, junk in forged:
                    forged_id = {k: (junk if k == key else v) for k, v in pattern.items()}
                    for value_name, value in (("pressed", 1), ("value 10^400", 10**400), ("value NaN", NAN)):
                        cases.append((f"{key}={name} {value_name}",
                                      [{"id": forged_id, "property": prop, "value": value}], True, True))
            base_id = {k: (0 if is_wild(v) else v) for k, v in pattern.items()}
            cases += [
                ("another type", [{"id": {**base_id, **{k: "zzz" for k in pattern if not is_wild(pattern[k])}},
                                   "property": prop, "value": 1}], True, True),
                ("extra key", [{"id": {**base_id, "extra": "<script>"}, "property": prop, "value": 1}], True, True),
                ("empty id", [{"id": {}, "property": prop, "value": 1}], True, True),
                ("other property", [{"id": base_id, "property": "children", "value": 1}], True, True),
                ("no items", [], False, True),
                ("255 pressed items", [{"id": {**base_id, **{k: i for k in wild_keys}}, "property": prop, "value": 1}
                                       for i in range(255)], False, True),
                ("10k items", [{"id": base_id, "property": prop, "value": 1}] * 10_000, False, False),
                ("item not an object", ["x"], False, False), ("item without id", [{"property": prop}], False, False),
            ]
            for label, context in contexts(cb):
                for case, extra, added, well_formed in cases:
                    tried += 1
                    body = cb.body(context)
                    body[where][index] = (body[where][index] + extra) if added else extra
                    trigger = prop_ids(extra[:1]) if extra and isinstance(extra[0], dict) and "id" in extra[0] else []
                    body["changedPropIds"] = trigger or cb.trigger_for(spec, body["inputs"])
                    prober.callback(cb, body, f"{label} · {stringify_id(pattern)} {case}", well_formed=well_formed)
    assert tried > 0, "no server callback has a pattern-matching (ALL) input: the Analyze callback had one"
    prober.assert_clean("forged pattern-matching requests")


def test_malformed_events_for_click_hover_and_cell_inputs(server, catalog, prober):
    """Plotly click / hover / selection data and DataTable cells that reach the server, malformed.
    (Today every such input is a browser-side callback's, so there may be none to try.)"""
    tried = 0
    for cb in catalog.callbacks:
        for spec in cb.inputs + cb.state:
            if not spec["property"].endswith(EVENT_SUFFIXES):
                continue
            for label, context in contexts(cb):
                for name, event in EVENTS:
                    tried += 1
                    prober.callback(cb, mutate(cb, context, spec, event), f"{label} · {cb.key(spec)} = {name}")
    if tried == 0:  # then every such input is a browser-side callback's: check that they are there
        handled = [spec for cb in catalog.browser for spec in cb.inputs if spec["property"].endswith(EVENT_SUFFIXES)]
        assert {"clickData", "hoverData", "active_cell"} <= {spec["property"] for spec in handled}, handled
        return
    prober.assert_clean("malformed-event requests")


# ---------------------------------------------------------------------------- protocol junk

def _protocol_cases(cb: Callback) -> list[tuple[str, Any]]:
    good = cb.body()
    first = good["inputs"][0]

    def changed(**edits) -> dict:
        body = copy.deepcopy(good)
        for key, value in edits.items():
            if value is _DROP:
                body.pop(key, None)
            else:
                body[key] = value
        return body

    outputs = good["outputs"]
    single = outputs[0] if isinstance(outputs, list) and outputs else outputs
    cases: list[tuple[str, Any]] = [
        ("no output", changed(output=_DROP)), ("output null", changed(output=None)), ("output 3", changed(output=3)),
        ("output a list", changed(output=[good["output"]])), ("unknown output", changed(output="..nope.children..")),
        ("output of another component", changed(output="status-area.children")),
        ("output 100k chars", changed(output="." * 100_000)),
        ("no outputs", changed(outputs=_DROP)), ("outputs null", changed(outputs=None)), ("outputs 5", changed(outputs=5)),
        ("outputs junk items", changed(outputs=["x", 1, None])), ("outputs empty", changed(outputs=[])),
        ("outputs one", changed(outputs=[single])), ("outputs single dict", changed(outputs=single)),
        ("outputs unknown ids", changed(outputs=[{"id": "nope", "property": "children"}] * 3)),
        ("outputs doubled", changed(outputs=(outputs * 2) if isinstance(outputs, list) else [outputs] * 2)),
        ("outputs 10k", changed(outputs=[single] * 10_000)),
        ("no inputs", changed(inputs=_DROP)), ("inputs null", changed(inputs=None)), ("inputs {}", changed(inputs={})),
        ("inputs 'x'", changed(inputs="x")), ("inputs empty", changed(inputs=[])),
        ("one input short", changed(inputs=good["inputs"][:-1])),
        ("one input more", changed(inputs=good["inputs"] + [first])),
        ("inputs 10k", changed(inputs=good["inputs"] * (10_000 // len(good["inputs"]) + 1))),
        ("input items junk", changed(inputs=[1] * len(good["inputs"]))),
        ("input without property", changed(inputs=[{"id": "x"}] * len(good["inputs"]))),
        ("input id a number", changed(inputs=[{"id": 1, "property": "value", "value": 1}] * len(good["inputs"]))),
        ("input id a list", changed(inputs=[{"id": ["x"], "property": "value"}] * len(good["inputs"]))),
        ("input property a dict", changed(inputs=[{"id": "x", "property": {}}] * len(good["inputs"]))),
        ("inputs of other components", changed(inputs=[{"id": "nope", "property": "nope", "value": 1}
                                                       for _ in good["inputs"]])),
        ("state 'x'", changed(state="x")), ("state null", changed(state=None)),
        ("state one more", changed(state=(good.get("state") or []) + [first])),
        ("changedPropIds 'x'", changed(changedPropIds="x")), ("changedPropIds 3", changed(changedPropIds=3)),
        ("changedPropIds null", changed(changedPropIds=None)), ("changedPropIds [1]", changed(changedPropIds=[1])),
        ("changedPropIds [{}]", changed(changedPropIds=[{}])), ("changedPropIds [[]]", changed(changedPropIds=[[]])),
        ("changedPropIds unknown", changed(changedPropIds=["nope.value", ".", "", "{", "{}.x", '{"a":1}.'])),
        ("changedPropIds 10k", changed(changedPropIds=["nope.value"] * 10_000)),
        ("changedPropIds every input 1k times", changed(changedPropIds=[p for e in good["inputs"]
                                                                          for p in prop_ids(e)] * 1000)),
        ("parsedChangedPropsIds junk", changed(parsedChangedPropsIds=[nested_list(100), None, 10**400])),
        ("extra top-level keys", changed(extra=nested_dict(100), __proto__={"x": 1})),
        ("value depth 10k", changed(inputs=[{**first, "value": nested_list(10_000)}] + good["inputs"][1:])),
        ("value depth 100k", changed(inputs=[{**first, "value": nested_list(100_000)}] + good["inputs"][1:])),
        ("dict depth 10k", changed(inputs=[{**first, "value": nested_dict(10_000)}] + good["inputs"][1:])),
        ("changedPropIds depth 10k", changed(changedPropIds=nested_list(10_000))),
    ]
    return cases


_DROP = object()

JUNK_BODIES = [
    ("empty", b""), ("space", b"   "), ("not JSON", b"not json"), ("array", b"[]"), ("array of bodies", b"[{}, {}]"),
    ("null", b"null"), ("number", b"3"), ("string", b'"x"'), ("true", b"true"), ("object", b"{}"),
    ("truncated", b'{"output": "x", "inputs": ['), ("trailing junk", b'{"output": "x"} junk'),
    ("BOM", b"\xef\xbb\xbf{}"), ("UTF-16", "{}".encode("utf-16")), ("UTF-32", "{}".encode("utf-32")),
    ("invalid UTF-8", b'{"output": "\xff\xfe"}'), ("NUL bytes", b"\x00" * 1000),
    ("single quotes", b"{'output': 'x'}"), ("comments", b'{"output": /* x */ "x"}'),
    ("duplicate keys", b'{"output": 1, "output": "x", "inputs": [], "inputs": 5}'),
    ("array depth 10k", b"[" * 10_000 + b"]" * 10_000), ("object depth 10k", b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
    ("unclosed depth 100k", b"[" * 100_000), ("4301-digit number", b'{"output": ' + b"9" * 4301 + b"}"),
    ("1e400", b'{"output": 1e400}'), ("lone surrogate escape", b'{"output": "\\ud800"}'),
]


def test_protocol_junk_at_the_callback_endpoint(server, catalog, prober):
    post = {"Content-Type": "application/json"}
    for name, data in JUNK_BODIES:
        reply = prober.request("POST", ENDPOINT, f"body {name}", data, post)
        if reply is not None and reply.status < 400:
            prober.fail(f"body {name}", f"junk was answered {reply.status}")
    for cb in catalog.callbacks:
        for name, body in _protocol_cases(cb):
            prober.callback(cb, body, f"protocol: {name}", well_formed=False)
    for cb in catalog.browser:  # a browser-side callback (click, hover, cell events) sent to the server
        events = [e for e in EVENTS] + [("page values", None)]
        for name, event in events:
            body = cb.body()
            for entry in body["inputs"]:
                for e in entry if isinstance(entry, list) else [entry]:
                    if event is not None:
                        e["value"] = event
            reply = prober.callback(cb, body, f"browser-side, sent anyway: {name}", well_formed=False)
            if reply is not None and not 400 <= reply.status < 500:
                prober.fail(f"{cb.name} · browser-side {name}", f"answered {reply.status}: it runs only in the browser")
    cb = catalog.callbacks[0]
    good = encode(cb.body())
    over = encode({**cb.body(), "pad": "z" * (LIMIT_KB * 1024 + 1)})
    reply = prober.request("POST", ENDPOINT, "body over the limit", over, post)
    if reply is not None and reply.status != 413:
        prober.fail("body over the limit", f"answered {reply.status}, not 413")
    for name, headers in [
        ("text/plain", {"Content-Type": "text/plain"}), ("form", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("multipart", {"Content-Type": "multipart/form-data; boundary=xyz"}), ("no content type", {}),
        ("json; charset junk", {"Content-Type": "application/json; charset=x-junk-42"}),
        ("json; charset utf-16", {"Content-Type": "application/json; charset=utf-16"}),
        ("gzip claimed", {"Content-Type": "application/json", "Content-Encoding": "gzip"}),
        ("content type 5k", {"Content-Type": "application/json; " + "a=b; " * 1000}),
    ]:
        prober.request("POST", ENDPOINT, f"content type {name}", good, headers)
    for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"):
        reply = prober.request(method, ENDPOINT, f"method {method}", good if method != "GET" else None, post)
        if reply is not None and method != "OPTIONS" and reply.body.startswith(b'{"multi"'):
            prober.fail(f"method {method}", "ran the callback")  # (GET gets the page: Dash serves any path)
    for name, query in [("3k query", "?x=" + "a" * 3000), ("junk query", "?oldJob=junk&oldJob=%ff&endId=<script>&cacheKey=../x"),
                        ("percent junk", "?%zz=%ff%00&a=%ud800"), ("4k query", "?x=" + "a" * 4100)]:
        prober.request("POST", ENDPOINT + query, f"query {name}", good, post)
    for name, headers in [
        ("junk cookies", {"Cookie": "a=" + "\x7f" * 100 + "; session=../../x; " + "c=1; " * 200}),
        ("forwarded junk", {"X-Forwarded-For": "not-an-ip, ::zz, 999.1.1.1", "Forwarded": "for=<script>",
                            "X-Real-IP": "\x01"}),
        ("basic auth junk", {"Authorization": "Basic !!!notbase64"}),
        ("bearer junk", {"Authorization": "Bearer " + "x" * 5000}),
        ("accept junk", {"Accept": "*/*;q=NaN", "Accept-Encoding": "br;q=2, gzip;q=-1, x" * 50,
                         "Accept-Language": "zz-ZZ;q=1e400, <script>, " + "en;q=0.1, " * 200}),
        ("range junk", {"Range": "bytes=-1-2,99999999999999999999-"}),
        ("method override", {"X-HTTP-Method-Override": "DELETE"}),
        ("expect junk", {"Expect": "100-continue-junk"}),
    ]:
        prober.request("POST", ENDPOINT, f"headers {name}", good, {**post, **headers})
    prober.assert_clean("protocol-junk requests")


def _http(method: bytes, path: bytes, headers: list[bytes], body: bytes = b"") -> bytes:
    return b"%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n%s" % (method, path, b"".join(h + b"\r\n" for h in headers), body)


def test_raw_http_junk(server, catalog, prober):
    """Bytes no client library sends: broken request lines, headers, lengths and chunks. Each is
    answered with a 4xx (or the connection is closed), never a 5xx, never a hang."""
    cb = catalog.callbacks[0]
    good = encode(cb.body())
    json_type = b"Content-Type: application/json"
    close = b"Connection: close"
    cases = [
        ("not HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, True),
        ("garbage line", b"HELLO\r\n\r\n", True), ("HTTP/9.9", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", True),
        ("HTTP/0.9", b"GET /\r\n\r\n", True), ("lowercase method", b"get / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        ("bad method", b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        ("long request line", _http(b"GET", b"/" + b"a" * 5000, [close]), True),
        ("long endpoint query", _http(b"POST", ENDPOINT.encode() + b"?" + b"q" * 5000, [close]), True),
        ("60 headers", _http(b"GET", b"/", [b"X-H%d: v" % i for i in range(60)] + [close]), True),
        ("header 9k", _http(b"GET", b"/", [b"X-Big: " + b"v" * 9000, close]), True),
        ("header without colon", _http(b"GET", b"/", [b"NoColonHere", close]), True),
        ("header name junk", _http(b"GET", b"/", [b"X(\x01): v", close]), True),
        ("header value NUL", _http(b"GET", b"/", [b"X-A: a\x00b", close]), True),
        ("header value latin-1", _http(b"GET", b"/", [b"X-A: \xff\xfe", close]), True),
        ("obs-fold", _http(b"GET", b"/", [b"X-A: a", b" folded", close]), True),
        ("two content lengths", _http(b"POST", ENDPOINT.encode(), [json_type, b"Content-Length: 2",
                                                                   b"Content-Length: 3", close], b"{}"), True),
        ("negative length", _http(b"POST", ENDPOINT.encode(), [json_type, b"Content-Length: -1", close], b"{}"), True),
        ("length junk", _http(b"POST", ENDPOINT.encode(), [json_type, b"Content-Length: 1e3", close], b"{}"), True),
        ("length 10^12, small body", _http(b"POST", ENDPOINT.encode(),
                                           [json_type, b"Content-Length: 1000000000000", close], b"{}"), True),
        ("length longer than body", _http(b"POST", ENDPOINT.encode(), [json_type, b"Content-Length: 5000", close],
                                          good[:100]), True),
        ("chunked and length", _http(b"POST", ENDPOINT.encode(), [json_type, b"Transfer-Encoding: chunked",
                                                                  b"Content-Length: 4", close], b"0\r\n\r\n"), True),
        ("chunk size junk", _http(b"POST", ENDPOINT.encode(), [json_type, b"Transfer-Encoding: chunked", close],
                                  b"zz\r\n{}\r\n0\r\n\r\n"), True),
        ("chunk size huge", _http(b"POST", ENDPOINT.encode(), [json_type, b"Transfer-Encoding: chunked", close],
                                  b"ffffffffffffffff\r\n{}\r\n0\r\n\r\n"), True),
        ("unknown transfer coding", _http(b"POST", ENDPOINT.encode(), [json_type, b"Transfer-Encoding: gzip, junk",
                                                                       close], b"{}"), True),
        ("chunked good body", _http(b"POST", ENDPOINT.encode(), [json_type, b"Transfer-Encoding: chunked", close],
                                    b"%x\r\n%s\r\n0\r\n\r\n" % (len(good), good)), False),
        # (The server may answer 413 and close while this is still being sent: the answer can be lost.)
        ("chunked over the limit", _http(b"POST", ENDPOINT.encode(), [json_type, b"Transfer-Encoding: chunked", close],
                                         b"".join(b"10000\r\n" + b" " * 0x10000 + b"\r\n" for _ in range(LIMIT_KB // 64 + 2))
                                         + b"0\r\n\r\n"), True),
        ("path traversal", _http(b"GET", b"/assets/../app.py", [close]), False),
        ("encoded traversal", _http(b"GET", b"/assets/%2e%2e/%2e%2e/etc/passwd", [close]), False),
        ("component suite traversal", _http(b"GET", b"/_dash-component-suites/dash/../../../../etc/passwd", [close]), False),
        ("component suite unknown package", _http(b"GET", b"/_dash-component-suites/os/path.js", [close]), False),
        ("component suite fingerprint junk", _http(b"GET", b"/_dash-component-suites/dash/deps/react@18.v9_9m9.min.js",
                                                   [close]), False),
        ("encoded slash traversal", _http(b"GET", b"/_dash-component-suites/dash/..%2f..%2f..%2fapp.py", [close]), False),
        ("percent junk path", _http(b"GET", b"/%ff%fe%00/%zz", [close]), False),
        ("absolute URI", _http(b"GET", b"http://evil.example/_dash-layout", [close]), False),
        ("asterisk", _http(b"OPTIONS", b"*", [close]), False),
        ("layout with junk query", _http(b"GET", b"/_dash-layout?%ff=%00&lang=<script>", [close]), False),
    ]
    for name, payload, may_close in cases:
        reply = prober.raw(payload, f"raw {name}")
        if reply is None:
            continue
        if name == "unknown transfer coding" and reply.status == 501:
            # gunicorn's own answer, as RFC 9112 section 6.1 asks for a transfer coding it does not
            # implement: "Not Implemented" is the protocol's word, not a failure of the app.
            prober.failures = [f for f in prober.failures if not f.startswith(f"raw {name}: HTTP 501")]
        if reply.status == 0 and not may_close:
            prober.fail(f"raw {name}", f"no HTTP answer: {reply.body[:200]!r}")
        if name.endswith("over the limit") and reply.status not in (0, 400, 413):
            prober.fail(f"raw {name}", f"answered {reply.status}, not 413")
        text = reply.body.decode("latin-1")
        if reply.status == 200 and ("root:x:0:0" in text or "def create_app" in text):
            prober.fail(f"raw {name}", "a file outside the assets was served")
    prober.assert_clean("raw HTTP requests")


def test_the_download_route_with_hostile_queries(server, catalog, prober):
    """The download route (issue 19) takes a key and view values from a query anyone can write: every
    junk value is parsed at the boundary (never a 5xx, never a traceback), a link to nothing is a 404,
    and a well-formed link gives its file as an attachment."""
    present, handle = catalog.page.value(ids.HANDLE, "data")
    assert present and isinstance(handle, dict), "the page embeds no analysis handle"
    key = handle["key"]
    junk = [v for v in ("", "-1", "1e400", "NaN", "9" * 40, "%ff%fe", "%00", "<script>", "../../etc/passwd",
                        "\u00e9\u0301", "a" * 200, "[]", "{}", "null", "true", "%ud800")]

    def get(path: str, case: str) -> Reply | None:
        before = len(prober.failures)
        reply = prober.request("GET", path, case)
        if (reply is not None and reply.status == 200 and reply.headers.get("Content-Type", "").startswith("text/html")
                and "attachment" in reply.headers.get("Content-Disposition", "")):
            # an HTML export inlines plotly.js, whose code names JavaScript errors: not a leak
            prober.failures[before:] = [f for f in prober.failures[before:] if "the answer names" not in f]
        return reply

    for kind in ("csv", "json", "html"):
        reply = get(f"/download/{kind}?key={key}", f"download {kind}")
        if reply is not None and (reply.status != 200 or "attachment" not in reply.headers.get("Content-Disposition", "")):
            prober.fail(f"download {kind}", f"answered {reply.status} {reply.body[:200]!r}")
        for name in boundary_fields():
            for value in junk:
                get(f"/download/{kind}?key={key}&{name}={value}&{name}=0", f"download {kind} {name}={value[:20]}")
    for path in ("/download/csv", "/download/exe?key=" + key, "/download/csv?key=" + key[:-1], "/download/" + "x" * 3000,
                 "/download/csv?key=" + key.replace(key[-6:], "000000"), "/download/json?key[]=1"):
        reply = prober.request("GET", path, f"download link to nothing {path[:40]}")
        if reply is not None and reply.status not in (404, 414):
            prober.fail(f"download {path[:40]}", f"answered {reply.status}, not 404")
    prober.assert_clean("download requests")


def boundary_fields() -> tuple[str, ...]:
    from attention_explorer.callbacks.boundary import DOWNLOAD_FIELDS

    return (*DOWNLOAD_FIELDS, "compare")


# ---------------------------------------------------------------------------- and after all that

def clicked(cb: Callback, button: str, context: dict) -> dict:
    """The body a browser sends when ``button`` (an input of ``cb``) is clicked once."""
    body = cb.body(context, changed=[f"{button}.n_clicks"])
    for entry in body["inputs"]:
        if isinstance(entry, dict) and entry["id"] == button:
            entry["value"] = 1
    return body


def test_the_server_still_serves_with_the_same_workers(server, catalog, prober, totals):
    assert prober.request("GET", "/", "page").status == 200
    health = prober.request("GET", "/healthz", "health")
    assert health.status == 200 and json.loads(health.body)
    analyze = next((cb for cb in catalog.callbacks if any(s["id"] == ids.ANALYZE for s in cb.inputs)), None)
    router = next((cb for cb in catalog.callbacks if any(s["id"] == ids.HANDLE for s in cb.inputs + cb.state)
                   and cb.name != analyze.name), None)
    compare_b = next((cb for cb in catalog.callbacks if any(s["id"] == ids.COMPARE_BUTTON for s in cb.inputs)), None)
    assert analyze is not None and router is not None and compare_b is not None, [cb.name for cb in catalog.callbacks]
    sentence = "the dog ran in the park and it was happy"
    reply = prober.callback(analyze, clicked(analyze, ids.ANALYZE, {f"{ids.TEXT}.value": sentence}), "a new sentence")
    assert reply is not None and reply.status == 200, prober.failures
    handle = json.loads(reply.body)["response"][ids.HANDLE]["data"]
    assert isinstance(handle, dict) and re.fullmatch(r"[a-z0-9-]{1,16}:[0-9a-f]{64}", handle["key"]), handle
    assert handle["tokens"] == len(sentence.split()) + 2  # [CLS] ... [SEP], every word in the tiny vocabulary
    for tab in contexts(router):
        request = {"changed": [f"{ids.HANDLE}.data"], "n": 1}  # what the browser's gate sends the router
        body = router.body({**tab[1], f"{ids.HANDLE}.data": handle, f"{ids.VIEW_REQUEST}.data": request},
                           changed=[f"{ids.VIEW_REQUEST}.data"])
        reply = prober.callback(router, body, f"the new handle, {tab[0]}")
        assert reply is not None and reply.status == 200, prober.failures
        figures = [v for props in json.loads(reply.body)["response"].values() for v in props.values()
                   if isinstance(v, dict) and v.get("data")]
        if tab[1].get(f"{ids.TABS}.active_tab") == ids.TAB_GENERATION:  # a text as given has no written tokens
            assert "no generated tokens" in reply.body.decode(), reply.body[:300]
            continue
        if tab[1].get(f"{ids.TABS}.active_tab") == ids.TAB_COMPARE:  # nothing to compare with before B exists
            assert "Type text B" in reply.body.decode(), reply.body[:300]
            b = prober.callback(compare_b, clicked(compare_b, ids.COMPARE_BUTTON, {
                f"{ids.COMPARE_TEXT}.value": "the cat ran in the park and it was happy", f"{ids.TEXT}.value": sentence}),
                "text B")
            assert b is not None and b.status == 200, prober.failures
            handle_b = json.loads(b.body)["response"][ids.COMPARE_HANDLE]["data"]
            body = router.body({**tab[1], f"{ids.HANDLE}.data": handle, f"{ids.COMPARE_HANDLE}.data": handle_b,
                                f"{ids.VIEW_REQUEST}.data": request}, changed=[f"{ids.VIEW_REQUEST}.data"])
            reply = prober.callback(router, body, f"the new handle and B, {tab[0]}")
            assert reply is not None and reply.status == 200, prober.failures
            figures = [v for props in json.loads(reply.body)["response"].values() for v in props.values()
                       if isinstance(v, dict) and v.get("data")]
        assert figures, f"{tab[0]}: no figure with data in {reply.body[:300]!r}"
    prober.assert_clean("final requests")

    log = gunicorn_log(server)
    assert sorted(server.worker_pids()) == server.initial_workers, log[-3000:]
    assert log.count("Booting worker") == WORKERS, log[-3000:]
    for sign in ("WORKER TIMEOUT", "Worker exiting", "was sent SIG", "exited with code", "Traceback"):
        assert sign not in log, f"{sign!r} in the gunicorn log:\n{log[-3000:]}"
    print(f"\nhostile module: {len(catalog.callbacks)} server callbacks "
          f"({sum(len(cb.inputs) for cb in catalog.callbacks)} inputs, {sum(len(cb.state) for cb in catalog.callbacks)} "
          f"states), {catalog.clientside} browser-side ones; {sum(totals.values()) + prober.sent} requests: "
          + ", ".join(f"{name} {n}" for name, n in totals.items()))


# ============================================================================ sign-in configurations and slow clients
# (issue 19) Each configuration gets its own gunicorn (1 worker) started and stopped inside its test, so
# none of them runs beside another. What every answer must be: never a 5xx, never a traceback, never a
# user the request did not prove.

import base64  # noqa: E402 - the section's own imports
import http.client  # noqa: E402
import ssl  # noqa: E402
import threading  # noqa: E402

from tests.servers import NGINX_SITE, Nginx, render_nginx_site  # noqa: E402

PROXY_SECRET = "proxy-only-secret-" + "7f3a9c" * 6
SLOW_CLIENTS = 48
BASIC_USERS = {"alice": "alice's long password", "bob": "bob's long password"}


def _basic_header(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def _add_users(path: Path) -> None:
    from attention_explorer.services.web.users import add_user

    for name, password in BASIC_USERS.items():
        add_user(str(path), name, password)


def _sign_in_env(tiny_models, workdir: Path, **overrides: str) -> dict[str, str]:
    return child_env(ATTN_DEFAULT_MODEL=tiny_models["bert"], ATTN_MODELS=tiny_models["bert"],
                     ATTN_CACHE_TYPE="filesystem", ATTN_CACHE_DIR=str(workdir / "cache"), ATTN_ACCESS_LOG="1",
                     **overrides)


def _detailed(response: requests.Response) -> bool:
    """Whether /healthz answered with its details (only for signed-in users and direct loopback)."""
    return response.status_code == 200 and "cache" in response.json()


def _clean_log(gunicorn: Gunicorn) -> None:
    log = gunicorn_log(gunicorn)
    bad = BAD_LOG.search(log.split("Booting worker", 1)[-1])
    assert bad is None, log[-3000:]


# Sign-in headers a client may send: none of them may sign anyone in, nor get a 5xx.
HOSTILE_AUTH = [
    ("junk scheme", {"Authorization": "Bearer x"}), ("not base64", {"Authorization": "Basic !!!"}),
    ("no colon", {"Authorization": "Basic " + base64.b64encode(b"alice").decode()}),
    ("empty name", _basic_header("", "x")), ("NUL name", _basic_header("al\x00ice", "x")),
    ("latin-1 bytes", {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()}),
    ("long name", _basic_header("a" * 3000, "x")), ("long password", _basic_header("alice", "p" * 5000)),
    ("right name, empty password", _basic_header("alice", "")),
    ("right password, other name", _basic_header("mallory", BASIC_USERS["alice"])),
    ("name with the password's colon", _basic_header("alice:alice's long password", "")),
]
HOSTILE_PROXY = [
    ("user header", {"X-Forwarded-User": "alice"}), ("lower-case user header", {"x-forwarded-user": "alice"}),
    ("empty secret", {"X-Forwarded-User": "alice", "X-Attention-Proxy-Secret": ""}),
    ("secret prefix", {"X-Forwarded-User": "alice", "X-Attention-Proxy-Secret": PROXY_SECRET[:-1]}),
    ("secret plus one", {"X-Forwarded-User": "alice", "X-Attention-Proxy-Secret": PROXY_SECRET + "x"}),
    ("secret upper case", {"X-Forwarded-User": "alice", "X-Attention-Proxy-Secret": PROXY_SECRET.upper()}),
    ("secret, other header name", {"X-Forwarded-User": "alice", "X-Proxy-Secret": PROXY_SECRET}),
    ("non-ASCII secret", {"X-Forwarded-User": "alice", "X-Attention-Proxy-Secret": "é" * 60}),
    ("forwarded for the proxy", {"X-Forwarded-User": "alice", "X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"}),
    ("forwarded by", {"X-Forwarded-User": "alice", "Forwarded": "for=127.0.0.1;by=127.0.0.1"}),
    ("basic auth too", {"X-Forwarded-User": "alice", **_basic_header("alice", BASIC_USERS["alice"])}),
]


def _probe_refused(url: str, cases: list[tuple[str, dict[str, str]]], refused: tuple[int, ...]) -> list[str]:
    """Each case against the page and /healthz: the page refused with one of ``refused``; /healthz open
    but without details (nobody signed in). Returns what went wrong."""
    problems = []
    for name, headers in cases:
        for path in ("/", "/_dash-layout"):
            response = requests.get(url + path, headers=headers, timeout=ANSWER_TIMEOUT)
            if response.status_code not in refused or LEAK.search(response.text):
                problems.append(f"{name} {path}: {response.status_code} {response.text[:200]!r}")
        health = requests.get(url + "/healthz", headers={**headers, "X-Forwarded-For": "198.51.100.1"},
                              timeout=ANSWER_TIMEOUT)
        if health.status_code != 200 or _detailed(health):
            problems.append(f"{name} /healthz: {health.status_code} {health.text[:200]!r}")
    return problems


def test_basic_sign_in_against_hostile_credentials(tiny_models, tmp_path):
    users = tmp_path / "users"
    _add_users(users)
    env = _sign_in_env(tiny_models, tmp_path, ATTN_AUTH="basic", ATTN_USERS_FILE=str(users),
                       ATTN_SIGNIN_FAILURES="4/minute", ATTN_SIGNIN_FAILURES_PER_ADDRESS="1000/minute")
    with Gunicorn(tmp_path, env, workers=1, threads=2).start() as gunicorn:
        url = gunicorn.url
        alice = _basic_header("alice", BASIC_USERS["alice"])
        assert requests.get(url + "/", headers=alice, timeout=ANSWER_TIMEOUT).status_code == 200
        # a guesser at alice: locked out after 4 failures, alone (alice's browser and bob carry on)
        answers = [requests.get(url + "/", headers=_basic_header("alice", f"guess {i}"), timeout=ANSWER_TIMEOUT)
                   .status_code for i in range(6)]
        assert answers[:4] == [401] * 4 and answers[4:] == [429, 429], answers
        assert requests.get(url + "/", headers=alice, timeout=ANSWER_TIMEOUT).status_code == 200  # already in
        bob = _basic_header("bob", BASIC_USERS["bob"])
        assert requests.get(url + "/", headers=bob, timeout=ANSWER_TIMEOUT).status_code == 200  # not locked out
        # then every hostile credential: refused (alice's name is locked now: 429 for those naming her)
        assert _probe_refused(url, [("no credentials", {})] + HOSTILE_AUTH, (400, 401, 429)) == []
        _clean_log(gunicorn)


def test_proxy_sign_in_with_the_secret_against_a_local_account(tiny_models, tmp_path):
    """What a local account can send to 127.0.0.1 without the proxy: nothing signs it in."""
    env = _sign_in_env(tiny_models, tmp_path, ATTN_AUTH="proxy", ATTN_PROXY_SECRET=PROXY_SECRET,
                       ATTN_TRUSTED_PROXIES="1")
    with Gunicorn(tmp_path, env, workers=1, threads=2).start() as gunicorn:
        assert _probe_refused(gunicorn.url, HOSTILE_PROXY + HOSTILE_AUTH[:3], (403,)) == []
        proof = {"X-Forwarded-User": "alice", "X-Attention-Proxy-Secret": PROXY_SECRET}
        assert requests.get(gunicorn.url + "/", headers=proof, timeout=ANSWER_TIMEOUT).status_code == 200
        assert _detailed(requests.get(gunicorn.url + "/healthz", headers={**proof, "X-Forwarded-For": "198.51.100.1"},
                                      timeout=ANSWER_TIMEOUT))
        assert "proxy sign-in refused" in gunicorn_log(gunicorn) and PROXY_SECRET not in gunicorn_log(gunicorn)
        _clean_log(gunicorn)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=ANSWER_TIMEOUT)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(ANSWER_TIMEOUT)
        self.sock.connect(self.socket_path)


def _unix_get(path: str, url_path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = UnixHTTPConnection(path)
    try:
        connection.request("GET", url_path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_proxy_sign_in_without_a_secret_over_a_unix_socket(tiny_models, tmp_path):
    """No secret: only gunicorn's Unix socket (whose folder admits only the proxy) is believed; the
    same header over TCP loopback, from any local account, is refused."""
    folder = tmp_path / "run"
    folder.mkdir(mode=0o750)
    sock = folder / "gunicorn.sock"
    env = _sign_in_env(tiny_models, tmp_path, ATTN_AUTH="proxy", ATTN_AUTH_PROXY_FROM="unix")
    with Gunicorn(tmp_path, env, workers=1, threads=2, extra=["-b", f"unix:{sock}"]).start() as gunicorn:
        assert _probe_refused(gunicorn.url, HOSTILE_PROXY[:2] + HOSTILE_PROXY[-3:], (403,)) == []
        status, _ = _unix_get(str(sock), "/", {"X-Forwarded-User": "alice"})
        assert status == 200
        status, body = _unix_get(str(sock), "/healthz", {"X-Forwarded-User": "alice"})
        assert status == 200 and b"cache" in body
        status, _ = _unix_get(str(sock), "/", {})
        assert status == 403  # through the socket, but nobody signed in
        _clean_log(gunicorn)


def test_proxy_sign_in_needs_proof_to_start(tiny_models, tmp_path):
    """Proxy sign-in with neither a secret nor a Unix socket is refused at start, with the reason."""
    env = _sign_in_env(tiny_models, tmp_path, ATTN_AUTH="proxy", ATTN_WARMUP="0")
    gunicorn = Gunicorn(tmp_path, env, workers=1, threads=1)
    with pytest.raises(Exception):
        gunicorn.start(wait=60)
    gunicorn.stop()
    assert "ATTN_PROXY_SECRET" in gunicorn_log(gunicorn)


# ---------------------------------------------------------------------------- the documented nginx in front

@pytest.fixture
def behind_nginx(tiny_models, tmp_path) -> Iterator[tuple[Gunicorn, Nginx]]:
    """gunicorn (1 worker x 4 threads: 48 slow clients would hold every thread many times over) behind
    nginx running docs/nginx/attention-explorer.conf, as docs/deployment.md says to start them."""
    env = _sign_in_env(tiny_models, tmp_path, ATTN_AUTH="proxy", ATTN_PROXY_SECRET=PROXY_SECRET,
                       ATTN_TRUSTED_PROXIES="1", ATTN_RATE_LIMIT="2/minute")
    gunicorn = Gunicorn(tmp_path / "gunicorn", env, workers=1, threads=4).start()
    nginx = Nginx(tmp_path / "nginx", f"{LOOPBACK}:{gunicorn.port}", BASIC_USERS, PROXY_SECRET)
    try:
        nginx.start()
        yield gunicorn, nginx
    finally:
        nginx.stop()
        gunicorn.stop()


def _tls_socket(nginx: Nginx) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(nginx.certificate))
    raw = socket.create_connection((LOOPBACK, nginx.https_port), timeout=ANSWER_TIMEOUT)
    return context.wrap_socket(raw, server_hostname=LOOPBACK)


def test_the_documented_nginx_survives_48_slow_clients(behind_nginx):
    """Issue 19: 48 connections that send their headers and then trickle or stall the body held every
    gunicorn thread, and /healthz timed out. Behind the documented nginx: /healthz answers all along,
    gunicorn never sees the unfinished requests, and a client that stops sending is cut off."""
    gunicorn, nginx = behind_nginx
    alice = _basic_header("alice", BASIC_USERS["alice"])["Authorization"]
    head = (f"POST {ENDPOINT} HTTP/1.1\r\nHost: attention.lab.example\r\nAuthorization: {alice}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {LIMIT_KB * 1024 - 1}\r\n\r\n").encode()
    clients = []
    for _ in range(SLOW_CLIENTS):
        client = _tls_socket(nginx)
        client.sendall(head + b'{"output": "')
        clients.append(client)
    stop = threading.Event()
    sent = {"bytes": 0}

    def trickle() -> None:  # one byte per client a second: the body never ends, and never stops for 10 s
        while not stop.wait(1.0):
            for client in clients:
                client.sendall(b"x")
                sent["bytes"] += 1

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        answers = []
        for _ in range(12):  # ~12 s: longer than nginx's 10 s body timeout, so only trickling keeps them open
            response = requests.get(nginx.url + "/healthz", verify=str(nginx.certificate), timeout=ANSWER_TIMEOUT)
            answers.append(response.status_code)
            time.sleep(1.0)
        page = requests.get(nginx.url + "/", headers={"Authorization": alice}, verify=str(nginx.certificate),
                            timeout=ANSWER_TIMEOUT)
        assert answers == [200] * 12 and page.status_code == 200 and "Attention" in page.text
    finally:
        stop.set()
        trickler.join(timeout=10)
    assert sent["bytes"] >= SLOW_CLIENTS * 10
    # every slow client was still connected (nothing answered or closed it) while /healthz answered
    for client in clients:
        client.setblocking(False)
        with pytest.raises(ssl.SSLWantReadError):
            client.recv(1)
    # Now they all stall: nginx cuts each off (408, or closes) once the body timeout passes.
    for client in clients:
        client.settimeout(ANSWER_TIMEOUT)
        data = b""
        try:
            while True:
                chunk = client.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, ssl.SSLError):
            pass
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]
        client.close()
    cut_off = [line for line in nginx.access_log().splitlines() if f'"POST {ENDPOINT} HTTP/1.1" 408 ' in line]
    assert len(cut_off) == SLOW_CLIENTS, nginx.access_log()[-2000:]
    # gunicorn never saw an unfinished request: nginx buffers the body first
    log = gunicorn_log(gunicorn)
    assert f"POST {ENDPOINT}" not in log and "GET /healthz" in log, log[-3000:]
    _clean_log(gunicorn)


def test_sign_in_through_the_documented_nginx(behind_nginx, tiny_models):
    """nginx signs people in (auth_basic) and passes the user with the secret: the app's user is the
    person who signed in, whatever user header the client sent, and rate limits count per person."""
    gunicorn, nginx = behind_nginx
    verify = str(nginx.certificate)
    assert requests.get(nginx.url + "/", verify=verify, timeout=ANSWER_TIMEOUT).status_code == 401  # nginx asks
    wrong = requests.get(nginx.url + "/", headers=_basic_header("alice", "wrong"), verify=verify, timeout=ANSWER_TIMEOUT)
    assert wrong.status_code == 401
    alice = _basic_header("alice", BASIC_USERS["alice"])
    # /healthz is open: a name in an unchecked Authorization header does not sign anyone in there
    open_health = requests.get(nginx.url + "/healthz", headers=_basic_header("alice", "not checked"), verify=verify,
                               timeout=ANSWER_TIMEOUT)
    assert open_health.json() == {"status": "ok"}
    # http:// is sent to https://
    redirect = requests.get(f"http://{LOOPBACK}:{nginx.http_port}/", allow_redirects=False, timeout=ANSWER_TIMEOUT)
    assert redirect.status_code == 301 and redirect.headers["Location"].startswith("https://")
    deps = requests.get(nginx.url + "/_dash-dependencies", headers=alice, verify=verify, timeout=ANSWER_TIMEOUT).json()
    spec = next(d for d in deps if any(i["id"] == ids.ANALYZE for i in d["inputs"]) and f"{ids.STATUS}." in d["output"])
    outputs = [dict(zip(("id", "property"), part.rsplit(".", 1))) for part in spec["output"][2:-2].split("...")]

    def analyse(headers: dict[str, str], text: str) -> str:
        values = {ids.TEXT: text, ids.ANALYZE: 1, ids.MODEL: tiny_models["bert"], ids.LAYER: 0, ids.HEAD: "all"}
        items = lambda kind: [{"id": i["id"], "property": i["property"], "value": values.get(i["id"])}  # noqa: E731
                              for i in spec[kind]]
        body = {"output": spec["output"], "outputs": outputs, "inputs": items("inputs"), "state": items("state"),
                "changedPropIds": [f"{ids.ANALYZE}.n_clicks"]}
        response = requests.post(nginx.url + ENDPOINT, json=body, headers=headers, verify=verify,
                                 timeout=ANSWER_TIMEOUT)
        assert response.status_code == 200, response.text[:300]
        return response.text

    # alice pretends to be someone new with each request: the proxy replaces the header, she stays alice
    for i, text in enumerate(("the tired cat sat on a mat", "a happy dog ran in a park")):
        assert "tokens" in analyse({**alice, "X-Forwarded-User": f"someone-{i}"}, text)
    assert "Too many new analyses from you" in analyse({**alice, "X-Forwarded-User": "someone-else"}, "hello world")
    bob = _basic_header("bob", BASIC_USERS["bob"])
    assert "tokens" in analyse(bob, "hello world")  # bob has his own budget
    # and straight to gunicorn, around nginx, the same header is refused
    direct = requests.get(gunicorn.url + "/", headers={"X-Forwarded-User": "bob"}, timeout=ANSWER_TIMEOUT)
    assert direct.status_code == 403
    _clean_log(gunicorn)


def test_the_deployment_guide_shows_the_nginx_file_the_tests_run():
    """docs/deployment.md gives the site file verbatim (the block after its marker), and the file keeps
    every value the tests replace."""
    guide = (Path(__file__).resolve().parent.parent / "docs" / "deployment.md").read_text()
    marker = "<!-- docs/nginx/attention-explorer.conf -->"
    assert guide.count(marker) == 1
    block = guide.split(marker, 1)[1].split("```nginx\n", 1)[1].split("```", 1)[0]
    assert block == NGINX_SITE.read_text()
    rendered = render_nginx_site(block, http_port=1, https_port=2, upstream="127.0.0.1:3", certificate=Path("/c"),
                                 key=Path("/k"), htpasswd=Path("/h"), secret_file=Path("/s"))
    for setting in ("client_body_timeout   10s;", "client_header_timeout 10s;", "proxy_request_buffering on;",
                    "X-Attention-Proxy-Secret $attention_proxy_secret;", "auth_basic off;"):
        assert setting in rendered


# ============================================================================ Redis down mid-run, and back (issue 19)
# The lab recipe's shared parts: the cache and the rate-limit counts in Redis. Redis is killed mid-run and
# started again. Throughout, every answer is well formed (no 5xx, no traceback, nothing logged at ERROR);
# while Redis is down every gunicorn worker still draws every analysis, those made before the outage
# and during it (from the handle's signed recipe), and /healthz says "degraded"; once Redis is back the
# cache is used again and /healthz says "ok".


@pytest.fixture(scope="module")
def redis_stack(tiny_models, tmp_path_factory) -> Iterator[dict]:
    workdir = tmp_path_factory.mktemp("hostile-redis")
    redis_server = RedisServer(workdir / "redis").start()
    env = child_env(
        ATTN_DEFAULT_MODEL=tiny_models["bert"], ATTN_MODELS=f"{tiny_models['bert']},{tiny_models['gpt2']}",
        ATTN_REDIS_URL=redis_server.db_url(0), ATTN_CACHE_RETRY_S="1", ATTN_RATE_LIMIT="100000/minute",
        ATTN_ACCESS_LOG="1",  # which worker answered: the pid in each access line
    )
    gunicorn = Gunicorn(workdir, env, workers=WORKERS, threads=2)
    stack = {"gunicorn": gunicorn, "redis": redis_server, "workdir": workdir}
    try:
        gunicorn.start()
        deadline = time.monotonic() + 120
        while len(gunicorn.worker_pids()) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.1)
        gunicorn.initial_workers = sorted(gunicorn.worker_pids())
        yield stack
    finally:
        gunicorn.stop()
        redis_server.stop()
        stack["redis"].stop()  # the Redis the test started again


ACCESS = re.compile(r"\[(\d+)\] INFO gunicorn\.access: .*\"POST /_dash-update-component")


class Visits:
    """Views drawn on new connections (as a reverse proxy sends them), so that either worker answers."""

    def __init__(self, prober: Prober, catalog: Catalog) -> None:
        self.prober = prober
        self.analyze = next(cb for cb in catalog.callbacks if any(s["id"] == ids.ANALYZE for s in cb.inputs))
        self.router = next(cb for cb in catalog.callbacks if [s["id"] for s in cb.inputs] == [ids.VIEW_REQUEST])

    def analyse(self, sentence: str, case: str) -> dict:
        reply = self.prober.callback(self.analyze, clicked(self.analyze, ids.ANALYZE, {f"{ids.TEXT}.value": sentence}),
                                     case)
        assert reply is not None and reply.status == 200, self.prober.failures
        handle = json.loads(reply.body)["response"][ids.HANDLE]["data"]
        assert isinstance(handle, dict) and "recipe" in handle, reply.body[:500]
        return handle

    def view(self, handle: Any, case: str, tab: str = ids.TAB_HEATMAP) -> tuple[dict | None, str]:
        body = self.router.body({f"{ids.TABS}.active_tab": tab, f"{ids.HANDLE}.data": handle,
                                 f"{ids.HEAD}.value": "1", f"{ids.VIEW_REQUEST}.data": {"changed": [f"{ids.HANDLE}.data"], "n": 1}},
                                changed=[f"{ids.VIEW_REQUEST}.data"])
        reply = self.prober.request("POST", ENDPOINT, f"router · {case}", encode(body),
                                    {"Content-Type": "application/json", "Connection": "close"})
        self.prober.session = requests.Session()  # a new connection for the next request too
        if reply is None or reply.status != 200:
            return None, f"HTTP {reply.status if reply else 'none'}"
        answer = self.prober.check_json(f"router · {case}", reply, self.router)
        figure = (answer or {}).get("response", {}).get(ids.HEAD_HEATMAP, {}).get("figure", {})
        return figure, reply.body.decode(errors="replace")

    def drawn_everywhere(self, handle: Any, case: str, rounds: int = 30) -> set[int]:
        """Views of ``handle``, eight at a time on new connections, until both workers drew some (an idle
        gunicorn hands one client's requests to the same worker): every one must draw. The workers that
        answered (pids, from the access log)."""
        from concurrent.futures import ThreadPoolExecutor

        log_path = Path(self.prober.server.log_path)
        log_before = log_path.stat().st_size
        body = encode(self.router.body({f"{ids.TABS}.active_tab": ids.TAB_HEATMAP, f"{ids.HANDLE}.data": handle,
                                        f"{ids.HEAD}.value": "1",
                                        f"{ids.VIEW_REQUEST}.data": {"changed": [f"{ids.HANDLE}.data"], "n": 1}},
                                       changed=[f"{ids.VIEW_REQUEST}.data"]))

        def one(_: int) -> requests.Response:
            return requests.post(self.prober.server.url + ENDPOINT, data=body, timeout=ANSWER_TIMEOUT,
                                 headers={"Content-Type": "application/json", "Connection": "close"})

        pids: set[int] = set()
        with ThreadPoolExecutor(8) as pool:
            for n in range(rounds):
                for response in pool.map(one, range(8)):
                    self.prober.sent += 1
                    self.prober.check(f"router · {case} #{n}", Reply(response.status_code, dict(response.headers),
                                                                      response.content))
                    assert response.status_code == 200, f"{case}: HTTP {response.status_code}"
                    figure = response.json()["response"][ids.HEAD_HEATMAP]["figure"]
                    assert figure.get("data"), f"{case} #{n}: no figure: {response.text[:400]}"
                with open(log_path, "rb") as log:
                    log.seek(log_before)
                    pids = {int(p) for p in ACCESS.findall(log.read().decode(errors="replace"))}
                if len(pids) >= WORKERS:
                    break
        return pids


def _health_of(server: Gunicorn) -> dict:
    response = requests.get(server.url + "/healthz", timeout=ANSWER_TIMEOUT)
    assert response.status_code == 200
    return response.json()


def _redis_keys(redis_server: RedisServer) -> int:
    import redis

    client = redis.Redis(host=LOOPBACK, port=redis_server.port, db=0, socket_timeout=2)
    try:
        return sum(1 for _ in client.scan_iter(match="attention-explorer:*"))
    finally:
        client.close()


def test_redis_down_mid_run_and_back(redis_stack):
    server, redis_server = redis_stack["gunicorn"], redis_stack["redis"]
    catalog = catalog_of(server)
    prober = Prober(server)
    visits = Visits(prober, catalog)

    # up: analyses land in Redis, every worker draws them
    before = visits.analyse("the cat sat on the mat and it was happy", "before the outage")
    assert _redis_keys(redis_server) > 0
    assert len(visits.drawn_everywhere(before, "Redis up")) == WORKERS
    assert _health_of(server)["status"] == "ok"

    redis_server.kill()  # mid-run, no warning
    redis_server.wait_closed()
    # down: what was analysed before and what is analysed now is drawn by every worker, from the recipe
    assert len(visits.drawn_everywhere(before, "Redis down, analysed before")) == WORKERS
    during = visits.analyse("the dog ran in the park and it was tired", "during the outage")
    assert len(visits.drawn_everywhere(during, "Redis down, analysed during")) == WORKERS
    for case, value in tamper_cases(during, [before], full=False):  # junk handles still answered well
        figure, text = visits.view(value, f"Redis down, handle {case}")
        assert figure is not None, f"{case}: {text[:300]}"
    health = _health_of(server)
    assert health["status"] == "degraded" and health["cache"]["reachable"] is False, health
    assert any("Redis does not answer" in reason for reason in health["reasons"]), health

    redis_server = redis_stack["redis"] = RedisServer(redis_stack["workdir"] / "redis-again",
                                                      port=redis_server.port).start()
    deadline = time.monotonic() + 60  # the breaker tries Redis again after ATTN_CACHE_RETRY_S
    while _health_of(server)["status"] != "ok":
        assert time.monotonic() < deadline, _health_of(server)
        time.sleep(0.5)
    after = visits.analyse("a bird sang in the garden in the morning", "after the outage")
    deadline, n = time.monotonic() + 60, 0
    while _redis_keys(redis_server) == 0:  # new analyses are written to Redis again (once each worker
        assert time.monotonic() < deadline, "nothing written to Redis once it was back"  # tries it again)
        n += 1
        visits.analyse(f"a bird sang in the garden {n} times", "after the outage, another text")
        time.sleep(0.5)
    for handle, case in ((before, "Redis back, analysed before"), (during, "Redis back, analysed during"),
                         (after, "Redis back, analysed after")):
        assert len(visits.drawn_everywhere(handle, case)) == WORKERS
    prober.assert_clean("requests with Redis up, down and back")
    assert sorted(server.worker_pids()) == server.initial_workers  # no worker crashed or was restarted
    assert "Traceback" not in gunicorn_log(server)
