"""Benchmark: what a person feels, measured in the browser (headless Chromium), on the default model.

    .venv/bin/python bench/browser.py                  # 32, 128 and 512 tokens, 7 runs an interaction
    .venv/bin/python bench/browser.py --sizes 128 --runs 5
    .venv/bin/python bench/browser.py --profile "layer change" --sizes 512   # where the time goes
    .venv/bin/python bench/browser.py --only-long-arcs --runs 5     # the arc view at 4,096 tokens alone
    .venv/bin/python bench/browser.py --only-long-arcs --profile "arcs: window move"   # where its time goes
    .venv/bin/python bench/browser.py --long --sizes --no-page-load --no-seq2seq   # the 4,096-token cases alone

``--long`` adds the 4,096-token cases (issue 18 item 5) on a tiny random Llama with grouped-query attention
(tests/tiny_models.py ``build("llama")``: 2 layers x 4 heads, 2 key/value heads, random weights), offered
to the app beside the default model. A view that cannot draw a text that long shows an error instead
of its figure: its row says so ("view shows an error") rather than a time.

The app runs as ``make run`` runs it (``python app.py``, the default model warmed up at start, a
file-system cache in a temporary folder) on a free port; Debian's Chromium is driven by Selenium.

A run's time is browser wall-clock time from the input event (the first trusted ``pointerdown`` or
``keydown`` after the harness is armed, taken in a capturing listener) to the figure drawn: the
``plotly_afterplot`` event of the view's graph whose figure differs from the one shown before, plus
one animation frame (the pixels are on screen). Requests are the ``/_dash-update-component`` calls and
the gate's direct view requests (``/_ae-view``, assets/23-gate.js)
started from the input event until the page has been quiet for 400 ms; bytes are their
``transferSize`` (compressed body plus headers, from the Resource Timing API).

Page load: a new browser profile (cold cache) and a reload (warm cache); time from navigation start to
the head grid drawn, and every byte transferred (the document, scripts, styles, callbacks).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, SIZES, TextMaker, markdown_table, print_header  # noqa: E402

from tests.servers import free_port  # noqa: E402 - one way to find a free port, the tests'

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
QUIET_MS = 400
TIMEOUT_S = 30

# Targets on the 2-core machine (../shared/DESIGN.md, "Performance budgets"); None: reported only.
TARGETS = {
    ("layer change", 128): 60, ("layer change", 512): 100,
    ("head change (grid)", 128): 60, ("head change (grid)", 512): 100,
    ("head change (heatmap)", 128): 60, ("head change (heatmap)", 512): 100,
    ("analyze new text", 128): 300,
    ("layer change", 4096): 150, ("head change (grid)", 4096): 150, ("head change (heatmap)", 4096): 150,
    ("analyze new text", 4096): 4000,  # to the first view
}
TAB_TARGET_512 = 150
TAB_TARGET_4096 = 600
HEAP_TARGET_4096_MB = 400
PAGE_BYTES_TARGET = 2 * 1024 * 1024

HARNESS = r"""
(function () {
  const ae = window.__ae = {armed: false, t0: null, drawn: {}, before: {}, hooked: new WeakSet()};
  const stamp = function (event) {
    if (ae.armed && ae.t0 === null && event.isTrusted) { ae.t0 = performance.now(); console.timeStamp("ae-input"); }
  };
  for (const type of ["pointerdown", "mousedown", "keydown"]) { document.addEventListener(type, stamp, true); }
  ae.signature = function (gd) {
    if (!gd || !gd.layout) { return null; }
    const l = gd.layout, d = gd.data || [];
    return JSON.stringify([l.title && l.title.text, (l.annotations || []).map(a => a.text), (l.shapes || []).length,
      d.length, d.map(t => t.source ? t.source.length + ":" + t.source.slice(-80) : (t.x && t.x.length) || 0),
      l.meta && l.meta.focus, l.meta && l.meta.arcs]);
  };
  ae.hook = function () {
    document.querySelectorAll(".js-plotly-plot").forEach(function (gd) {
      if (ae.hooked.has(gd) || !gd.on) { return; }
      ae.hooked.add(gd);
      const id = gd.closest("[id]") ? gd.closest("[id]").id : "";
      gd.on("plotly_afterplot", function () {
        const sig = ae.signature(gd);
        requestAnimationFrame(function () {
          (ae.drawn[id] = ae.drawn[id] || []).push({t: performance.now(), sig: sig});
          console.timeStamp("ae-drawn " + id);
        });
      });
    });
  };
  setInterval(ae.hook, 50);
  ae.arm = function (graphId) {
    ae.hook();
    const gd = document.querySelector("#" + graphId + " .js-plotly-plot");
    ae.armed = true; ae.t0 = null; ae.drawn = {}; ae.target = graphId;
    ae.before = ae.signature(gd);
    ae.armTime = performance.now();
    performance.clearResourceTimings();
  };
  /* The figure drawn: the first plotly_afterplot (+ a frame) after the last callback response, or,
     with no request (a browser-side change), the first whose figure differs from the one before. */
  ae.result = function () {
    const calls = performance.getEntriesByType("resource").filter(e => e.name.indexOf("_dash-update-component") >= 0 ||
                                                                        e.name.indexOf("_ae-view") >= 0);
    const last = calls.length ? Math.max.apply(null, calls.map(c => c.responseEnd)) : 0;
    const list = (ae.drawn[ae.target] || []).filter(function (d) {
      return ae.t0 !== null && d.t >= ae.t0 && (calls.length ? d.t >= last : d.sig !== ae.before);
    });
    return {t0: ae.t0, drawn: list.length ? list[0].t : null, requests: calls.length,
            bytes: calls.reduce((s, c) => s + c.transferSize, 0), lastResponse: last, now: performance.now(),
            firstRequest: calls.length ? Math.min.apply(null, calls.map(c => c.startTime)) : null};
  };
  performance.setResourceTimingBufferSize(5000);
})();
"""


# ----------------------------------------------------------------------------------- the app


class App:
    """``python app.py`` on a free port, with a file-system cache in a temporary folder."""

    def __init__(self, extra_models: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="ae-bench-browser-")
        models = {"ATTN_MODELS": ",".join(("all-MiniLM-L6-v2",) + extra_models)} if extra_models else {}
        env = {**os.environ, **models, "ATTN_PORT": str(self.port), "ATTN_CACHE_TYPE": "filesystem",
               "ATTN_CACHE_DIR": os.path.join(self.tmp, "cache"), "XDG_CACHE_HOME": self.tmp,
               "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.log = open(os.path.join(self.tmp, "app.log"), "w")
        self.process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "_dash-layout", timeout=60) as response:
                    if response.status == 200:
                        return  # the layout embeds the first analysis: the model is loaded
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"the app did not start; see {self.log.name}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------- the browser


def browser(profile_dir: str | None = None, trace: bool = False):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    if trace:  # the browser's own timeline (style, layout, paint, scripts, image decoding) in the log
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        options.add_experimental_option("perfLoggingPrefs", {
            "enableNetwork": False, "enablePage": False,
            "traceCategories": "devtools.timeline,disabled-by-default-devtools.timeline,v8.execute,blink"})
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1366,1000"):
        options.add_argument(arg)
    if profile_dir:
        options.add_argument(f"--user-data-dir={profile_dir}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HARNESS})
    return driver


@dataclass
class Sample:
    ms: float
    requests: int
    bytes: int
    before_request: float | None = None  # ms from the input event to the first request sent
    in_flight: float | None = None  # ms from the first request sent to the last response received
    after_response: float | None = None  # ms from the last response to the figure drawn
    error: bool = False  # the view drew no data: an error or a notice instead of its figure


@dataclass
class Row:
    name: str
    tokens: int | str
    samples: list[Sample] = field(default_factory=list)
    target: float | None = None
    note: str = ""  # why there are no samples


class Page:
    """One browser tab on the app, with the harness."""

    def __init__(self, driver, url: str) -> None:
        self.d = driver
        self.url = url

    def open(self) -> None:
        self.d.get(self.url)
        self.wait_for(lambda: self.js("return !!document.querySelector('#head-grid .js-plotly-plot .layer-above')"),
                      "first grid")
        time.sleep(0.5)

    def js(self, script: str, *args):
        return self.d.execute_script(script, *args)

    def wait_for(self, predicate, what: str, timeout: float = TIMEOUT_S):
        end = time.time() + timeout
        while time.time() < end:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise RuntimeError(f"timed out waiting for {what}")

    def measure(self, graph_id: str, action) -> Sample:
        """Arms the harness on ``graph_id``, performs ``action`` and waits for the new figure drawn and
        for the page to be quiet."""
        self.js("__ae.arm(arguments[0])", graph_id)
        action()
        result = self.wait_for(lambda: (lambda r: r if r["drawn"] is not None else None)(self.js("return __ae.result()")),
                               f"{graph_id} drawn")
        while True:  # quiet: no request answered within the last QUIET_MS (and the view drawn after it)
            time.sleep(QUIET_MS / 1000)
            result = self.js("return __ae.result()")
            if result["drawn"] is None:  # a response came after the draw: wait for the draw that follows it
                result = self.wait_for(lambda: (lambda r: r if r["drawn"] is not None else None)(
                    self.js("return __ae.result()")), f"{graph_id} drawn again")
                continue
            if result["now"] - max(result["lastResponse"], result["drawn"]) >= QUIET_MS:
                break
        self.js("__ae.armed = false")
        sample = Sample(result["drawn"] - result["t0"], result["requests"], result["bytes"])
        sample.error = not self.js("const gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');"
                                   "return !!(gd && gd.data && gd.data.length)", graph_id)
        if result["firstRequest"] is not None:
            sample.before_request = result["firstRequest"] - result["t0"]
            sample.in_flight = result["lastResponse"] - result["firstRequest"]
            sample.after_response = result["drawn"] - result["lastResponse"]
        return sample

    # --- actions ---------------------------------------------------------------------------
    def element(self, css: str):
        return self.d.find_element("css selector", css)

    def tab(self, label: str) -> None:
        link = self.d.find_element("xpath", f"//a[contains(@class,'nav-link') and normalize-space()='{label}']")
        if not self.js("const r = arguments[0].getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight",
                       link):
            self.js("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", link)
            time.sleep(0.2)
        link.click()

    def set_text(self, text: str) -> None:
        self.js("const el = document.getElementById('text-input');"
                "Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set.call(el, arguments[0]);"
                "el.dispatchEvent(new Event('input', {bubbles: true}));", text)
        time.sleep(0.3)

    def layer_key(self, key) -> None:
        self.element("#layer-slider [role='slider']").send_keys(key)

    def pick_head(self, label: str):
        """Opens the head selector (not timed); the returned action clicks the option (timed)."""
        select = self.element("#head-select")
        if not self.js("const r = arguments[0].getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight - 200",
                       select):
            self.js("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", select)
            time.sleep(0.2)
        select.click()
        time.sleep(0.3)
        options = self.d.find_elements("css selector", ".dash-dropdown-options .dash-dropdown-option")
        option = next(o for o in options if o.text.strip() == label)
        self.js("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", option)
        time.sleep(0.2)
        return option.click

    def click_label(self, label: str) -> None:
        self.d.find_element("xpath", f"//label[normalize-space()='{label}']").click()

    def show_label(self, label: str) -> None:
        element = self.d.find_element("xpath", f"//label[normalize-space()='{label}']")
        self.js("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element)
        time.sleep(0.3)


# ----------------------------------------------------------------------------------- interactions


def js_heap_mb(page: Page) -> float:
    """The page's JavaScript heap in use (CDP Runtime.getHeapUsage), after a garbage collection."""
    page.d.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
    return page.d.execute_cdp_cmd("Runtime.getHeapUsage", {})["usedSize"] / 2**20


def budget_size(tokens: int) -> int:
    """The length whose budget a text of ``tokens`` tokens is held to: a shorter text, the next one up
    (a 32-token text is held to the 128-token budget; a 4,096-token text's budget is its own)."""
    return 128 if tokens <= 128 else 512 if tokens <= 512 else tokens


def run_size(page: Page, maker: TextMaker, tokens: int, runs: int, only: set[str] | None,
             head_count: int = 12) -> list[Row]:
    from selenium.webdriver.common.keys import Keys

    rows: list[Row] = []

    def row(name: str) -> Row | None:
        if only and name not in only:
            return None
        budget = budget_size(tokens)
        tab_target = {512: TAB_TARGET_512, 4096: TAB_TARGET_4096}.get(budget) if name.startswith("open tab") else None
        rows.append(Row(name, tokens, target=TARGETS.get((name, budget), tab_target)))
        return rows[-1]

    page.open()
    analyze = row("analyze new text")
    for run in range(runs if analyze else 1):
        page.set_text(maker.make(tokens))
        sample = page.measure("head-grid", page.element("#analyze-button").click)
        if analyze:
            analyze.samples.append(sample)
    layers = row("layer change")
    if layers:
        for run in range(runs):
            key = Keys.ARROW_RIGHT if run % 2 == 0 else Keys.ARROW_LEFT
            layers.samples.append(page.measure("head-grid", lambda: page.layer_key(key)))
    for graph, tab, name in (("head-grid", "Head grid", "head change (grid)"),
                             ("head-heatmap", "Head heatmap", "head change (heatmap)")):
        heads = row(name)
        if not heads:
            continue
        page.tab(tab)
        time.sleep(1.5)
        for run in range(runs):
            click = page.pick_head(f"Head {run % head_count}" if run % 2 == 0 else "Mean of heads")
            heads.samples.append(page.measure(graph, click))
        page.pick_head("All heads")()
        time.sleep(1.0)
    tabs = (("Head heatmap", "head-heatmap"), ("Arcs", "arc-view"), ("Model overview", "model-overview"),
            ("Head atlas", "atlas-map"), ("Token focus", "focus-heatmap"), ("Head grid", "head-grid"))
    tab_rows = {label: row(f"open tab: {label}") for label, _ in tabs}
    if any(tab_rows.values()):
        page.tab("Head grid")
        time.sleep(1.0)
        for run in range(runs):
            for label, graph in tabs:
                sample = page.measure(graph, lambda: page.tab(label))
                if tab_rows[label]:
                    tab_rows[label].samples.append(sample)
    for label, name in (("Rollout", "switch: Rollout"), ("Hide special tokens", "switch: hide special tokens"),
                        ("Merge sub-words into words", "switch: merge sub-words")):
        switch = row(name)
        if not switch:
            continue
        page.show_label(label)
        for run in range(runs):
            if label == "Rollout":
                target = "Rollout" if run % 2 == 0 else "Raw"
                switch.samples.append(page.measure("head-grid", lambda: page.click_label(target)))
            else:
                switch.samples.append(page.measure("head-grid", lambda: page.click_label(label)))
        if label != "Rollout" and runs % 2 == 1:  # leave it off
            page.measure("head-grid", lambda: page.click_label(label))
        if label == "Rollout" and runs % 2 == 1:
            page.measure("head-grid", lambda: page.click_label("Raw"))
    heap = Row("JS heap after these (MB)", tokens, target=HEAP_TARGET_4096_MB if tokens == 4096 else None)
    heap.samples.append(Sample(js_heap_mb(page), 0, 0))
    rows.append(heap)
    return rows


SEQ2SEQ_SOURCE = ("The cat sat on the mat because it was tired, and the dog slept by the door while the rain "
                  "fell on the old roof of the house.")
SEQ2SEQ_TARGET = ("Le chat était assis sur le tapis parce qu'il était fatigué, et le chien dormait près de la "
                  "porte.")


def tiny_seq2seq_model(folder: str) -> str:
    """A tiny random BART (the tests' builder: 2 encoder layers x 4 heads, 3 decoder layers x 2 heads,
    a byte-level tokenizer trained here): no model hub, and no real seq2seq model ships with the app."""
    from tests.conftest import _build_bart

    return str(_build_bart(Path(folder) / "tiny-random-bart", seed=3))


LONG_TOKENS = 4096


def run_seq2seq(page: Page, model: str, runs: int, only: set[str] | None) -> list[Row]:
    """On a cached encoder-decoder result (the tiny random BART, source and target given): the kind
    changes, a layer change and a head change in cross-attention."""
    from urllib.parse import urlencode

    from selenium.webdriver.common.keys import Keys

    rows: list[Row] = []

    def row(name: str) -> Row | None:
        if only and name not in only:
            return None
        rows.append(Row(name, "tiny BART"))
        rows[-1].target = {"seq2seq: kind change (grid)": None, "seq2seq: layer change (cross, grid)": 60,
                           "seq2seq: head change (cross, heatmap)": 60}.get(name)
        return rows[-1]

    page.d.get(page.url + "?" + urlencode({"text": SEQ2SEQ_SOURCE, "target": SEQ2SEQ_TARGET, "model": model,
                                           "kind": "cross", "view": "grid"}))
    page.wait_for(lambda: page.js("const gd = document.querySelector('#head-grid .js-plotly-plot');"
                                  "return gd && gd.layout && gd.layout.meta && gd.layout.meta.attention_kind === 'cross'"),
                  "the cross-attention grid", timeout=120)
    time.sleep(1.0)
    kinds = row("seq2seq: kind change (grid)")
    if kinds:
        page.show_label("Decoder (target)")
        for run in range(runs):
            label = ("Decoder (target)", "Encoder (source)", "Cross (target → source)")[run % 3]
            kinds.samples.append(page.measure("head-grid", lambda: page.click_label(label)))
        if runs % 3:
            page.measure("head-grid", lambda: page.click_label("Cross (target → source)"))
    layers = row("seq2seq: layer change (cross, grid)")
    if layers:
        for run in range(runs):
            key = Keys.ARROW_RIGHT if run % 2 == 0 else Keys.ARROW_LEFT
            layers.samples.append(page.measure("head-grid", lambda: page.layer_key(key)))
    heads = row("seq2seq: head change (cross, heatmap)")
    if heads:
        page.tab("Head heatmap")
        time.sleep(1.0)
        page.measure("head-heatmap", page.pick_head("Head 0"))
        for run in range(runs):
            heads.samples.append(page.measure("head-heatmap", page.pick_head(f"Head {(run + 1) % 2}")))
    return rows


def tiny_llama_model(folder: str) -> str:
    """A tiny random Llama with grouped-query attention (the tests' builder: 2 layers x 4 heads, 2 KV
    heads, 8,192 positions, a tokenizer trained here): no model hub. Its weights are random."""
    from tests import tiny_models

    return str(tiny_models.build("llama", Path(folder) / "tiny-random-llama"))


LONG_ARCS_TARGETS = {"arcs: analyze, arcs open": 4000, "open tab: Arcs": 600, "arcs: window move": 150,
                     "arcs: hide a head (chip)": 150, "arcs: hover a token": 150}


def open_long_arcs(page: Page, model: str, tokens: int, text_prefix: str = "0") -> None:
    """The arc view of a ``tokens``-token text on ``model`` (every head), analysed and drawn (not timed)."""
    from urllib.parse import urlencode

    from tests import tiny_models

    page.d.get(page.url + "?" + urlencode({"text": "the cat sat", "model": model, "view": "arcs", "head": "all"}))
    page.wait_for(lambda: page.js("const gd = document.querySelector('#arc-view .js-plotly-plot');"
                                  "return gd && gd.layout && gd.layout.meta && gd.layout.meta.kind === 'arcs'"),
                  "the arcs of a short text", timeout=120)
    time.sleep(1.0)
    page.set_text(f"{text_prefix} {tiny_models.long_text(int(tokens * 0.8))}")
    page.measure("arc-view", page.element("#analyze-button").click)


def run_long_arcs(page: Page, model: str, tokens: int, runs: int) -> list[Row]:
    """The arc view on a long text (a tiny random GQA Llama, ``tokens`` tokens: its maps are not held,
    only the window's rows are read): Analyze with the arcs open, opening the tab, moving the window
    one token (one request), and the browser-side redraws of the page's canvas (a head's chip, a
    token hovered), timed from the input event to the canvas drawn."""
    from urllib.parse import urlencode

    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    from tests import tiny_models

    label = f"{tokens:,} (random GQA Llama)"
    rows = {name: Row(name, label, target=target) for name, target in LONG_ARCS_TARGETS.items()}
    text = tiny_models.long_text(int(tokens * 0.8))
    page.d.get(page.url + "?" + urlencode({"text": "the cat sat", "model": model, "view": "arcs", "head": "all"}))
    page.wait_for(lambda: page.js("const gd = document.querySelector('#arc-view .js-plotly-plot');"
                                  "return gd && gd.layout && gd.layout.meta && gd.layout.meta.kind === 'arcs'"),
                  "the arcs of a short text", timeout=120)
    time.sleep(1.0)
    for run in range(runs):  # a new text each run (the model runs again): one word changed
        page.set_text(f"{run} {text}")
        rows["arcs: analyze, arcs open"].samples.append(page.measure("arc-view", page.element("#analyze-button").click))
    units = page.js("return document.querySelector('#arc-view .js-plotly-plot').layout.meta.units")
    if units < tokens:
        print(f"(the text was {units} tokens, not {tokens})", file=sys.stderr)
    for run in range(runs):
        page.tab("Inside a head")
        time.sleep(1.5)
        rows["open tab: Arcs"].samples.append(page.measure("arc-view", lambda: page.tab("Arcs")))
    time.sleep(1.0)
    slider = page.element("#arc-start-wrap [role='slider']")
    page.js("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", slider)
    time.sleep(0.3)
    for run in range(runs):
        key = Keys.ARROW_RIGHT if run % 2 == 0 else Keys.ARROW_LEFT
        rows["arcs: window move"].samples.append(page.measure("arc-view", lambda: slider.send_keys(key)))

    def canvas_redraw(action) -> Sample:
        page.js("__ae.arm('arc-view')")
        action()
        page.wait_for(lambda: page.js("const gd = document.querySelector('#arc-view .js-plotly-plot');"
                                      "return __ae.t0 !== null && gd._aeArcsDrawnAt > __ae.t0"), "the canvas redrawn")
        ms = page.js("const gd = document.querySelector('#arc-view .js-plotly-plot');"
                     "return new Promise(r => requestAnimationFrame(() => r(gd._aeArcsDrawnAt - __ae.t0)))")
        time.sleep(QUIET_MS / 1000)
        requests = page.js("return __ae.result().requests")
        page.js("__ae.armed = false")
        return Sample(ms, requests, 0)

    chip = page.element("#arc-legend .ae-head-chip[data-head='1']")
    page.js("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", chip)
    time.sleep(0.3)
    for run in range(runs + (runs % 2)):  # hidden, shown, ...: left shown
        sample = canvas_redraw(chip.click)
        if run < runs:
            rows["arcs: hide a head (chip)"].samples.append(sample)
    points = page.d.find_elements("css selector", "#arc-view .scatterlayer .trace:first-child .textpoint")
    page.js("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", points[0])
    time.sleep(0.3)
    for run in range(runs):
        target = points[(run * 7 + 3) % len(points)]
        ActionChains(page.d).move_to_element(page.element("#arc-hint")).perform()
        time.sleep(0.5)
        # the harness starts its clock at a trusted pointer or key event: a hover is a mouse move, so the
        # clock starts at the move, stamped here in the page just before
        sample = canvas_redraw(lambda: (page.js("__ae.t0 = performance.now()"),
                                        ActionChains(page.d).move_to_element(target).perform()))
        rows["arcs: hover a token"].samples.append(sample)
    heap = page.js("return performance.memory ? performance.memory.usedJSHeapSize : null")
    if heap:
        print(f"(JS heap after the long arcs: {heap / 2**20:.0f} MB)", file=sys.stderr)
    return list(rows.values())


def page_loads(url: str, runs: int) -> list[Row]:
    cold, warm = Row("page load, cold cache", "—"), Row("page load, warm cache", "—")
    for _ in range(runs):
        profile = tempfile.mkdtemp(prefix="ae-chrome-")
        driver = browser(profile)
        try:
            for row in (cold, warm):
                driver.get(url)
                page = Page(driver, url)
                page.wait_for(lambda: page.js("return (__ae.hook(), __ae.drawn['head-grid'] || []).length > 0"),
                              "first grid", timeout=60)
                time.sleep(1.0)
                data = page.js("""
                    const nav = performance.getEntriesByType('navigation')[0];
                    const res = performance.getEntriesByType('resource');
                    return {drawn: __ae.drawn['head-grid'][0].t,
                            bytes: nav.transferSize + res.reduce((s, e) => s + e.transferSize, 0),
                            requests: res.filter(e => e.name.indexOf('_dash-update-component') >= 0 || e.name.indexOf('_ae-view') >= 0).length};""")
                row.samples.append(Sample(data["drawn"], data["requests"], data["bytes"]))
        finally:
            driver.quit()
            shutil.rmtree(profile, ignore_errors=True)
    cold.target = None
    return [cold, warm]


# ----------------------------------------------------------------------------------- report


def table(rows: list[Row]) -> str:
    body = []
    for r in rows:
        times = [s.ms for s in r.samples]
        if not times:
            body.append([r.name, r.tokens, 0, "—", "—", "—", "—", "—", "—", r.note or "not run"])
            continue
        if r.name.startswith("JS heap"):
            ok = r.target is None or times[0] <= r.target
            body.append([r.name, r.tokens, 1, f"{times[0]:.0f} MB", "—", "—", "—", "—",
                         f"≤ {r.target:.0f} MB" if r.target else "—", ("PASS" if ok else "MISS") if r.target else "—"])
            continue
        requests = [s.requests for s in r.samples]
        median = statistics.median(times)
        if r.target is not None:
            result = "PASS" if median <= r.target else f"MISS by {median - r.target:.0f} ms (+{(median / r.target - 1) * 100:.0f}%)"
            target = f"≤ {r.target:.0f} ms"
        else:
            result, target = "—", "—"
        if any(s.error for s in r.samples):
            result = f"view shows an error ({sum(s.error for s in r.samples)} of {len(times)} runs)"
        if r.name.startswith("page load") and r.name.endswith("cold cache"):
            total = statistics.median(s.bytes for s in r.samples)
            target, result = "≤ 2 MB", ("PASS" if total <= PAGE_BYTES_TARGET else "MISS")
        parts = [[getattr(x, name) for x in r.samples if getattr(x, name) is not None]
                 for name in ("before_request", "in_flight", "after_response")]
        split = " / ".join(f"{statistics.median(p):.0f}" for p in parts) if all(parts) else "—"
        body.append([r.name, r.tokens, len(times), f"{median:.0f}", f"{max(times):.0f}", split,
                     f"{statistics.median(requests):g} / {max(requests)}",
                     f"{statistics.median(s.bytes for s in r.samples) / 1024:,.1f}", target, result])
    return markdown_table(["interaction", "tokens", "runs", "median (ms)", "max (ms)",
                           "input→request / request / response→drawn (ms, medians)", "requests (median / max)",
                           "KB transferred (median)", "target (median)", "result"], body)


TIMELINE = {  # trace event names -> what they are, for the profile's summary
    "FunctionCall": "scripts (event handlers, timers, callbacks)", "EvaluateScript": "scripts (evaluation)",
    "v8.callFunction": "scripts (called from the browser)", "RunMicrotasks": "scripts (promise jobs)",
    "UpdateLayoutTree": "style recalculation", "Layout": "layout", "PrePaint": "pre-paint", "Paint": "paint",
    "Layerize": "layerize", "Commit": "commit to compositor", "Decode Image": "image decoding",
    "ImageDecodeTask": "image decoding", "Decode LazyPixelRef": "image decoding", "HitTest": "hit testing",
    "ParseHTML": "HTML parsing", "GCEvent": "garbage collection", "MinorGC": "garbage collection",
    "MajorGC": "garbage collection", "V8.GC_SCAVENGER": "garbage collection",
}


def _trace_events(entries: list[dict]) -> list[dict]:
    events = []
    for entry in entries:
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Tracing.dataCollected":
            events.append(message["params"])
    return events


def _main_threads(events: list[dict]) -> set[tuple]:
    return {(e["pid"], e["tid"]) for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"
            and e.get("args", {}).get("name") == "CrRendererMain"}


def _timeline(events: list[dict], graph: str) -> tuple[dict[str, float], float]:
    """(ms by kind of work on the page's main thread, ms of all its tasks) between the harness's last
    input stamp and the stamp of ``graph`` drawn after it (``console.timeStamp`` trace events)."""
    main = _main_threads(events)
    stamps = [(e["ts"], e.get("args", {}).get("data", {}).get("message", "")) for e in events
              if e.get("name") == "TimeStamp"]
    start = max((ts for ts, message in stamps if message == "ae-input"), default=None)
    if start is None:
        return {}, 0.0
    end = min((ts for ts, message in stamps if message == f"ae-drawn {graph}" and ts >= start), default=None)
    end = end if end is not None else max(e.get("ts", 0) for e in events)
    kinds: dict[str, float] = {}
    busy = 0.0
    for e in events:
        if e.get("ph") != "X" or "dur" not in e or not start <= e["ts"] <= end:
            continue
        on_main = (e["pid"], e["tid"]) in main
        if on_main and e["name"] == "RunTask":
            busy += e["dur"] / 1000
        kind = TIMELINE.get(e["name"])
        if kind and (on_main or kind == "image decoding"):
            kinds[kind] = kinds.get(kind, 0.0) + e["dur"] / 1000
    return kinds, busy


LONG_ARCS_PROFILES = ("open tab: Arcs", "arcs: window move")  # --profile NAME --long-arcs TOKENS


def profile(url: str, maker: TextMaker, name: str, tokens: int, long_arcs_model: str | None = None) -> None:
    """Where the time of one interaction goes in the browser: the main thread's work by kind (style,
    layout, paint, scripts, image decoding: Chrome's timeline trace) and the scripts' functions with
    the most self time (a CPU profile). With ``long_arcs_model``, the interaction is one of the long arc
    view's (``LONG_ARCS_PROFILES``) on a ``tokens``-token text of that model."""
    from selenium.webdriver.common.keys import Keys

    driver = browser(trace=True)
    try:
        page = Page(driver, url)
        if long_arcs_model:
            open_long_arcs(page, long_arcs_model, tokens)
            slider = page.element("#arc-start-wrap [role='slider']")
            if name == "open tab: Arcs":
                page.tab("Inside a head")
                time.sleep(1.5)
        else:
            page.open()
            page.set_text(maker.make(tokens))
            page.measure("head-grid", page.element("#analyze-button").click)
        actions = {
            "arcs: window move": ("arc-view", lambda: slider.send_keys(Keys.ARROW_RIGHT)),
            "layer change": ("head-grid", lambda: page.layer_key(Keys.ARROW_RIGHT)),
            "open tab: Arcs": ("arc-view", lambda: page.tab("Arcs")),
            "open tab: Head heatmap": ("head-heatmap", lambda: page.tab("Head heatmap")),
            "open tab: Model overview": ("model-overview", lambda: page.tab("Model overview")),
            "open tab: Token focus": ("focus-heatmap", lambda: page.tab("Token focus")),
            "open tab: Head atlas": ("atlas-map", lambda: page.tab("Head atlas")),
        }
        if name.startswith("head change"):
            if name.endswith("(heatmap)"):
                page.tab("Head heatmap")
                time.sleep(1.5)
            actions[name] = ("head-heatmap" if name.endswith("(heatmap)") else "head-grid", page.pick_head("Head 5"))
        graph, action = actions[name]
        driver.execute_cdp_cmd("Profiler.enable", {})
        driver.execute_cdp_cmd("Profiler.setSamplingInterval", {"interval": 100})
        time.sleep(0.5)
        driver.execute_cdp_cmd("Profiler.start", {})
        sample = page.measure(graph, action)
        prof = driver.execute_cdp_cmd("Profiler.stop", {})["profile"]
        kinds, busy = _timeline(_trace_events(driver.get_log("performance")), graph)
    finally:
        driver.quit()
    nodes = {n["id"]: n for n in prof["nodes"]}
    self_time: dict[str, float] = {}
    for node_id, delta in zip(prof.get("samples", []), prof.get("timeDeltas", [])):
        frame = nodes[node_id]["callFrame"]
        if frame["functionName"] in ("(idle)", "(program)", "(root)"):
            continue
        label = f"{frame['functionName'] or '(anonymous)'} {Path(frame['url']).name.split('?')[0]}:{frame['lineNumber']}"
        self_time[label] = self_time.get(label, 0) + delta / 1000
    print(f"\n{name} at {tokens} tokens: {sample.ms:.0f} ms, {sample.requests} request(s); input to request "
          f"{sample.before_request or 0:.0f} ms, request {sample.in_flight or 0:.0f} ms, response to drawn "
          f"{sample.after_response or 0:.0f} ms\n")
    print(f"The page's main thread was busy {busy:.0f} ms from the input event to the figure drawn:\n")
    print(markdown_table(["work (Chrome timeline)", "ms"],
                         [[kind, f"{t:.1f}"] for kind, t in sorted(kinds.items(), key=lambda kv: -kv[1])]))
    top = sorted(self_time.items(), key=lambda kv: -kv[1])[:15]
    print()
    print(markdown_table(["script function (self time)", "ms"], [[label, f"{t:.1f}"] for label, t in top]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per interaction (at least 5)")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--only", nargs="*", help="interaction names to run (default: all)")
    parser.add_argument("--no-page-load", action="store_true")
    parser.add_argument("--profile", metavar="INTERACTION", help="profile one interaction instead")
    parser.add_argument("--no-seq2seq", action="store_true", help="skip the encoder-decoder case (a tiny random BART)")
    parser.add_argument("--long-arcs", type=int, default=4096, metavar="TOKENS",
                        help="the arc view at this many tokens on a tiny random GQA Llama (0: skip)")
    parser.add_argument("--only-long-arcs", action="store_true", help="run the long arc view's case alone")
    parser.add_argument("--long", action="store_true",
                        help="add the 4,096-token cases on a tiny random GQA Llama (issue 18 item 5)")
    args = parser.parse_args(argv)
    runs = max(5, args.runs)
    from transformers import AutoTokenizer

    from attention_explorer.services.model.loading import bundled_model_dir

    print_header("bench/browser.py: interactions in headless Chromium, default model")
    print(f"- browser: {subprocess.run([CHROMIUM, '--version'], capture_output=True, text=True).stdout.strip()}")
    models_dir = tempfile.mkdtemp(prefix="ae-bench-models-")
    seq2seq = None if args.no_seq2seq or args.profile or args.only_long_arcs else tiny_seq2seq_model(models_dir)
    long_arcs = args.profile in LONG_ARCS_PROFILES and args.only_long_arcs and args.long_arcs
    llama = (tiny_llama_model(models_dir) if (args.long_arcs or args.long) and (long_arcs or not args.profile)
             else None)
    long_arcs = llama if long_arcs else None
    app = App(tuple(m for m in (seq2seq, llama) if m))
    try:
        maker = TextMaker(AutoTokenizer.from_pretrained(bundled_model_dir()))  # texts of an exact length
        if args.profile and long_arcs:
            profile(app.url, maker, args.profile, args.long_arcs, long_arcs)
            return 0
        if args.profile:
            for size in args.sizes:
                profile(app.url, maker, args.profile, size)
            return 0
        rows: list[Row] = []
        if not args.no_page_load and not args.only and not args.only_long_arcs:
            rows += page_loads(app.url, runs)
        driver = browser()
        try:
            for size in ([] if args.only_long_arcs else args.sizes):
                rows += run_size(Page(driver, app.url), maker, size, runs, set(args.only) if args.only else None)
                print(f"(done: {size} tokens)", file=sys.stderr, flush=True)
            if llama and args.long:
                from urllib.parse import urlencode

                from tests.tiny_models import long_text

                # the random model's tokenizer was trained on the tests' generated text: its words
                long_maker = TextMaker(AutoTokenizer.from_pretrained(llama),
                                       words=long_text(3000).replace(".", " ").split())
                long_page = Page(driver, app.url + "?" + urlencode({"model": llama}))
                try:
                    rows += run_size(long_page, long_maker, LONG_TOKENS, runs,
                                     set(args.only) if args.only else None, head_count=4)
                except RuntimeError as failed:  # e.g. the analysis itself fails at this length
                    status = long_page.js("const a = document.querySelector('#status .alert, .alert-danger');"
                                          "return a ? a.innerText : ''") or str(failed)
                    rows.append(Row("analyze new text", LONG_TOKENS, note="NOT RUN: " + " ".join(status.split())[:160]))
                print(f"(done: {LONG_TOKENS} tokens, tiny random Llama)", file=sys.stderr, flush=True)
            if seq2seq:
                rows += run_seq2seq(Page(driver, app.url), seq2seq, runs, set(args.only) if args.only else None)
            if llama and args.long_arcs:
                rows += run_long_arcs(Page(driver, app.url), llama, args.long_arcs, runs)
        finally:
            driver.quit()
    finally:
        app.stop()
        shutil.rmtree(models_dir, ignore_errors=True)
    print(table(rows))
    print("\nload average after the run (1, 5, 15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
