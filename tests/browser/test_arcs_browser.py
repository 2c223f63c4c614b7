"""The arc view in headless Chromium on a tiny random GQA Llama: arcs drawn with WebGL, a head's chip
hides it (click) or shows it alone (double click), hovering an arc's top names both tokens and the
weight, the window slides with one request, and the tokens the model generated are marked."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import numpy as np
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.keys import Keys

from attention_explorer.components.figures import GENERATED_COLOR, decoded_arc_lines
from attention_explorer.services.config import DEFAULT_MODEL_ID, Settings
from tests import tiny_models as tm
from tests.browser.test_browser import graph, now, requests_since, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def arcs_app(dash_duo, llama, tiny_models):
    from attention_explorer.app import create_app

    app = create_app(Settings(models=(DEFAULT_MODEL_ID, llama), cache_type="simple"))
    dash_duo.start_server(app)
    return dash_duo


def open_arcs(duo, llama: str, text: str, **extra) -> None:
    duo.driver.get(duo.server_url + "/?" + urlencode({"text": text, "model": llama, "view": "arcs", "head": "all",
                                                      **extra}))
    wait_until(lambda: graph(duo, "arc-view", "gd.layout.meta && gd.layout.meta.kind") == "arcs", timeout=60,
               message="the arcs")


def visible_heads(duo) -> list[int]:
    """The heads whose arcs the page's canvas draws now."""
    return graph(duo, "arc-view", "[...new Set(gd.layout.meta.lines.map(l => l.head))]"
                                  ".filter(h => !(gd._aeHidden && gd._aeHidden.has(h))).sort()")


def canvas_ink(duo) -> int:
    """Pixels the arcs' canvas has painted."""
    return duo.driver.execute_script(
        "const c = document.querySelector('#arc-view canvas.ae-arcs'); if (!c) return -1;"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
        "for (let i = 3; i < d.length; i += 4) { if (d[i] > 0) n++; } return n;")


def chip(duo, head: int):
    element = duo.find_element(f"#arc-legend .ae-head-chip[data-head='{head}']")
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element)
    time.sleep(0.2)
    return element


def test_arcs_are_webgl_and_a_heads_chip_hides_or_solos_it(arcs_app, llama):
    duo = arcs_app
    text = " ".join(tm.long_text(200).split()[:200])  # ~300 tokens: read through a window of 64
    open_arcs(duo, llama, text)
    meta = graph(duo, "arc-view", "gd.layout.meta")
    assert meta["heads"] == 4 and meta["units"] > 64 and meta["first"] == 0
    # the arcs are drawn on the page's canvas; the only SVG trace is the tokens
    assert len(duo.find_elements("#arc-view .scatterlayer .trace")) == 1
    wait_until(lambda: canvas_ink(duo) > 1000, message="arcs painted on the canvas")
    drawn = graph(duo, "arc-view", "gd._aeArcsDrawn")
    assert drawn == meta["arcs"] + meta["outside"] > 0
    assert visible_heads(duo) == [0, 1, 2, 3]
    # a click on head 1's chip hides its arcs (in the browser: no request); again shows them
    mark = now(duo)
    ink = canvas_ink(duo)
    chip(duo, 1).click()
    wait_until(lambda: visible_heads(duo) == [0, 2, 3], message="head 1 hidden")
    assert chip(duo, 1).get_attribute("aria-pressed") == "false"
    head1 = sum(l["count"] for l in meta["lines"] if l["head"] == 1)
    assert graph(duo, "arc-view", "gd._aeArcsDrawn") == drawn - head1 and canvas_ink(duo) < ink
    chip(duo, 1).click()
    wait_until(lambda: visible_heads(duo) == [0, 1, 2, 3], message="head 1 shown again")
    # a double click shows head 2 alone; another double click every head
    ActionChains(duo.driver).double_click(chip(duo, 2)).perform()
    wait_until(lambda: visible_heads(duo) == [2], message="head 2 alone")
    assert graph(duo, "arc-view", "gd._aeArcsDrawn") == sum(l["count"] for l in meta["lines"] if l["head"] == 2)
    assert [chip(duo, h).get_attribute("aria-pressed") for h in range(4)] == ["false", "false", "true", "false"]
    ActionChains(duo.driver).double_click(chip(duo, 2)).perform()
    wait_until(lambda: visible_heads(duo) == [0, 1, 2, 3], message="every head again")
    assert requests_since(duo, mark) == 0
    # head 3 hidden stays hidden when the window moves along the text: one request
    chip(duo, 3).click()
    wait_until(lambda: visible_heads(duo) == [0, 1, 2], message="head 3 hidden")
    handle = duo.find_element("#arc-start-wrap [role='slider']")
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", handle)
    mark = now(duo)
    handle.send_keys(Keys.ARROW_RIGHT)
    wait_until(lambda: graph(duo, "arc-view", "gd.layout.meta.first") == 1, message="the window moved by one token")
    wait_until(lambda: visible_heads(duo) == [0, 1, 2], message="head 3 still hidden")
    time.sleep(1.0)
    assert requests_since(duo, mark) == 1
    assert graph(duo, "arc-view", "gd.layout.meta.token_index[0]") == 1
    # one key, one token: the slider took the key once (the early path hands it on after drawing)
    assert handle.get_attribute("aria-valuenow") == "1" and graph(duo, "arc-view", "gd.layout.meta.first") == 1


def test_hovering_an_arcs_top_names_both_tokens_and_its_weight(arcs_app, llama):
    duo = arcs_app
    open_arcs(duo, llama, "the cat sat on the mat because it was tired", head="1")
    duo.driver.execute_script(
        "document.querySelector('#arc-view').scrollIntoView({block: 'center', behavior: 'instant'})")
    time.sleep(0.3)
    # the middle of the strongest arc: its 6th point (of 11), in the page's pixels
    point = graph(duo, "arc-view", """(() => {
        const lines = gd.layout.meta.lines, line = lines[lines.length - 1];
        const points = AE.arcPoints(line), xs = points.x, ys = points.y;
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
        return {x: r.left + xa._offset + xa.l2p(xs[5]), y: r.top + ya._offset + ya.l2p(ys[5]), line: lines.length - 1};
    })()""")
    # what the server says that arc is (its two tokens, exact weight), read back independently of the page's code
    shown = graph(duo, "arc-view", "gd.layout")
    lines = decoded_arc_lines({"layout": shown})
    expected = lines[point["line"]]["text"][0]
    # the page draws the points the server's geometry gives (components/figures.py _arc_points)
    drawn = graph(duo, "arc-view", "gd.layout.meta.lines.map(l => { const p = AE.arcPoints(l); "
                                   "const plain = a => Array.from(a, v => isNaN(v) ? null : v); "
                                   "return [plain(p.x), plain(p.y)]; })")
    for line, (xs, ys) in zip(lines, drawn, strict=True):
        np.testing.assert_allclose(np.array(xs, dtype=float), line["x"], rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(np.array(ys, dtype=float), line["y"], rtol=1e-6, atol=1e-6)
    mark = now(duo)
    actions = ActionBuilder(duo.driver)
    actions.pointer_action.move_to_location(int(point["x"]), int(point["y"]))
    actions.perform()
    tip = wait_until(lambda: duo.find_element("#arc-view .ae-arc-tip").is_displayed()
                     and duo.find_element("#arc-view .ae-arc-tip").text, message="the arc's hover label")
    assert tip.replace("\n", " ") == expected.replace("\n", " ")
    assert "→" in tip and "\nweight " in tip
    assert requests_since(duo, mark) == 0


def test_generated_tokens_are_marked(arcs_app, llama):
    duo = arcs_app
    open_arcs(duo, llama, "the cat sat on the mat", **{"continue": "4"})
    meta = graph(duo, "arc-view", "gd.layout.meta")
    n = len(meta["token_index"])
    assert meta["generated"] == list(range(n - 4, n))
    fills = duo.driver.execute_script(
        "return [...document.querySelectorAll('#arc-view .scatterlayer .trace:first-child .textpoint text')]"
        ".map(e => getComputedStyle(e).fill)")
    purple = "rgb({}, {}, {})".format(*(int(GENERATED_COLOR[i:i + 2], 16) for i in (1, 3, 5)))
    assert [f == purple for f in fills] == [i >= n - 4 for i in range(n)]
    assert "generated" in duo.find_element("#arc-hint").text
