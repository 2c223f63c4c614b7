"""The screenshots in docs/screenshots, taken in headless Chromium from the running app.

    .venv/bin/python scripts/screenshots.py                 # all of them, into docs/screenshots
    .venv/bin/python scripts/screenshots.py /tmp/shots tab-compare zh-token-focus   # some, elsewhere

It starts the app itself (``python app.py`` on a free port, a memory cache) offering the bundled model
and four tiny RANDOM models built here with the tests' builders (no model hub): a BART for
cross-attention, a Chinese-vocabulary BERT so Chinese text shows as characters (the bundled model is
English: Chinese is mostly [UNK] to it), a GPT-2 for generation and a Llama with rotary positions and
grouped-query attention (tests/tiny_models.py) for Inside a head on today's decoders. Their folders are named
``tiny-random-*`` and the page shows that name: their attention patterns mean nothing. Every shot is
a URL (the URL is the page's state), plus, for the tour, a click.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import free_port  # noqa: E402 - after the path is set

EXAMPLE = "The cat sat on the mat because it was tired."
CHINESE = "猫坐在垫子上因为它累了。"
TROPHY = "The trophy doesn't fit into the suitcase because it is too big."


# A box zoom of the grid as the page writes it (assets/29-zoom.js gridZoomOf): 24 x 24 tokens near the
# diagonal, exact in every head's tile, the queries named beside the tiles.
ZOOM_GRID = ("const gd = document.querySelector('#head-grid .js-plotly-plot');"
             "window.dash_clientside.set_props('heatmap-zoom', {data: {key: gd.layout.meta.zoom.key, view: 'grid',"
             " x: [2039.5, 2063.5], y: [2047.5, 2071.5]}})")

# A box zoom of the heatmap (assets/29-zoom.js zoomOf): 40 x 40 tokens, exact, the minimap beside it.
ZOOM_HEATMAP = ("const gd = document.querySelector('#head-heatmap .js-plotly-plot');"
                "window.dash_clientside.set_props('heatmap-zoom', {data: {key: gd.layout.meta.key, view: 'heatmap',"
                " x: [1999.5, 2039.5], y: [2999.5, 3039.5]}})")


def shots(models: dict[str, str]) -> list[tuple[str, tuple[int, int], dict, str | None]]:
    """(file name, window size, URL parameters, JavaScript to run before the shot)."""
    from tests import tiny_models

    LONG = tiny_models.long_text(3300)  # cut at 4,096 tokens by the tiny Llama's tokenizer
    bart, chinese = models["bart"], models["chinese"]
    tall = (1366, 1250)
    return [
        ("dashboard-1366x768.png", (1366, 768), {}, None),
        ("dashboard-1920x1080.png", (1920, 1080), {}, None),
        ("tab-head-grid.png", tall, {"view": "grid", "layer": 2}, None),
        ("tab-head-heatmap.png", tall, {"view": "heatmap", "layer": 2, "head": 5}, None),
        ("tab-arcs.png", tall, {"view": "arcs", "layer": 2, "head": "all"}, None),
        ("tab-model-overview.png", tall, {"view": "overview"}, None),
        ("tab-head-atlas.png", tall, {"view": "atlas"}, None),
        ("tab-token-focus.png", tall, {"view": "focus", "token": 8}, None),
        ("rollout-heatmap.png", tall, {"view": "heatmap", "mode": "rollout", "layer": 5, "head": "mean"}, None),
        ("tab-inside-a-head.png", (1366, 1500), {"view": "inside", "layer": 2, "head": 5, "token": 8}, None),
        ("value-norm-heatmap.png", tall, {"view": "heatmap", "mode": "value", "layer": 2, "head": "mean"}, None),
        ("tab-compare.png", (1366, 1900), {"text": TROPHY, "compare": TROPHY.replace("big", "small"),
                                           "view": "compare", "token": 10}, None),
        ("compare-trophy.png", (1366, 1900), {"text": TROPHY, "compare": TROPHY.replace("big", "small"),
                                              "view": "compare", "token": 10}, None),
        ("cross-attention-tiny-random-bart.png", tall,
         {"text": EXAMPLE, "target": "Le chat était assis sur le tapis parce qu'il était fatigué.", "model": bart,
          "kind": "cross", "view": "heatmap", "layer": 1, "head": 1}, None),
        ("cross-attention-arcs-tiny-random-bart.png", (1366, 1000),
         {"text": EXAMPLE, "target": "Le chat était assis sur le tapis parce qu'il était fatigué.", "model": bart,
          "kind": "cross", "view": "arcs", "layer": 1, "head": 1}, None),
        ("zh-head-grid.png", tall, {"text": CHINESE, "model": chinese, "view": "grid", "lang": "zh"}, None),
        ("zh-token-focus.png", tall, {"text": CHINESE, "model": chinese, "view": "focus", "token": 9, "lang": "zh"},
         None),
        ("inside-a-head-rope-tiny-random-llama.png", (1366, 1900),
         {"text": EXAMPLE, "model": models["llama"], "view": "inside", "layer": 1, "head": 2, "token": 9}, None),
        ("zh-inside-a-head-rope-tiny-random-llama.png", (1366, 1900),
         {"text": EXAMPLE, "model": models["llama"], "view": "inside", "layer": 1, "head": 2, "token": 9,
          "lang": "zh"}, None),
        ("arcs-4096-tokens-tiny-random-llama.png", (1366, 1250),
         {"text": LONG, "model": models["llama"], "view": "arcs", "head": "all", "layer": 1},
         "window.dash_clientside.set_props('arc-start', {value: 2000})"),
        ("atlas-4096-tokens-tiny-random-llama.png", (1366, 1400),
         {"text": LONG, "model": models["llama"], "view": "atlas"}, None),
        ("zh-atlas-4096-tokens-tiny-random-llama.png", (1366, 1400),
         {"text": LONG, "model": models["llama"], "view": "atlas", "lang": "zh"}, None),
        ("zh-pooled-grid-4096-tokens-tiny-random-llama.png", (1366, 1250),
         {"text": LONG, "model": models["llama"], "view": "grid", "layer": 1, "lang": "zh"}, None),
        ("zoomed-grid-4096-tokens-tiny-random-llama.png", (1366, 1000),
         {"text": LONG, "model": models["llama"], "view": "grid", "layer": 1}, ZOOM_GRID),
        ("zh-zoomed-grid-4096-tokens-tiny-random-llama.png", (1366, 1000),
         {"text": LONG, "model": models["llama"], "view": "grid", "layer": 1, "lang": "zh"}, ZOOM_GRID),
        ("zoomed-heatmap-minimap-4096-tokens-tiny-random-llama.png", (1366, 1100),
         {"text": LONG, "model": models["llama"], "view": "heatmap", "layer": 1, "head": 3}, ZOOM_HEATMAP),
        ("zh-tour.png", (1366, 900), {"lang": "zh"}, "document.getElementById('tour-button').click()"),
        ("tour.png", (1366, 900), {}, "document.getElementById('tour-button').click()"),
    ]


def build_models(folder: Path) -> dict[str, str]:
    from tests import tiny_models
    from tests.conftest import CHINESE_CHARS, _build_bart, _build_bert, _build_gpt2

    return {"bart": str(_build_bart(folder / "tiny-random-bart", seed=3)),
            "chinese": str(_build_bert(folder / "tiny-random-chinese-bert", CHINESE_CHARS, seed=2)),
            "gpt2": str(_build_gpt2(folder / "tiny-random-gpt2", seed=1)),
            "llama": str(tiny_models.build("llama", folder / "tiny-random-llama-gqa"))}


def start_app(folder: Path, models: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "ATTN_PORT": str(port), "ATTN_CACHE_TYPE": "simple", "HF_HUB_OFFLINE": "1",
           "ATTN_MODELS": ",".join(["all-MiniLM-L6-v2", *models.values()])}
    log = open(folder / "app.log", "w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "_dash-layout", timeout=60):
                return process, url
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the app did not start: see {folder / 'app.log'}")


def chrome(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", f"--window-size={width},{height}", f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def settled(driver) -> bool:
    """Every graph drawn and no callback in flight (Dash marks the page while one is)."""
    return driver.execute_script(
        "return !document.querySelector('[data-dash-is-loading=\"true\"]') &&"
        " Array.from(document.querySelectorAll('.js-plotly-plot')).every(g => g._fullLayout) &&"
        " !!document.querySelector('#head-grid .js-plotly-plot') &&"
        " !['atlas-progress', 'analyze-progress'].some(id => {"  # a long pass still running
        "   const e = document.getElementById(id); return e && e.offsetParent !== null; })")


def take(url: str, out: Path, name: str, size: tuple[int, int], params: dict, script: str | None) -> None:
    driver = chrome(*size)
    try:
        driver.get(url + ("?" + urlencode(params) if params else ""))
        end = time.time() + 240  # a 4,096-token text's atlas is measured head by head
        while time.time() < end and not settled(driver):
            time.sleep(0.3)
        time.sleep(3.0)  # the URL's analysis, then the view it names
        while time.time() < end and not settled(driver):  # a background pass it started (the atlas's)
            time.sleep(0.5)
        time.sleep(1.0)
        if script:
            driver.execute_script(script)
            time.sleep(1.5)
            end = time.time() + 60
            while time.time() < end and not settled(driver):
                time.sleep(0.3)
            time.sleep(1.0)
        driver.save_screenshot(str(out / name))
        print(out / name)
    finally:
        driver.quit()


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "docs" / "screenshots"
    wanted = set(argv[1:])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="random-models-") as tmp:
        folder = Path(tmp)
        models = build_models(folder)
        process, url = start_app(folder, models)
        try:
            for name, size, params, script in shots(models):
                if not wanted or name.rsplit(".", 1)[0] in wanted or name in wanted:
                    take(url, out, name, size, params, script)
        finally:
            process.terminate()
            process.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
