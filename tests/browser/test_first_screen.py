"""A newcomer's first screen (issue 19) in headless Chromium: on a 1366 x 768 laptop (about 625 px
inside the browser window), the text box, Analyze, the layer slider and the head selector are all on
the first screen, in English and in Chinese, with a target box (an encoder-decoder model) or a
"continue" box (a decoder) shown too."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.browser.test_browser import wait_until

pytestmark = pytest.mark.browser
FIRST_SCREEN = ("#text-input", "#analyze-button", "#layer-slider", "#head-select")
SOURCE = "The cat sat on the mat because it was tired."


@pytest.fixture
def laptop(seq2seq_page):
    seq2seq_page.driver.set_window_size(1366, 768)
    return seq2seq_page


def bottoms(duo) -> dict:
    return duo.driver.execute_script(
        "const out = {inner: window.innerHeight, scrolled: window.scrollY};"
        "for (const s of arguments[0]) { const e = document.querySelector(s);"
        "  out[s] = e && e.getClientRects().length ? e.getBoundingClientRect().bottom : null; }"
        "return out;", list(FIRST_SCREEN))


@pytest.mark.parametrize("case", ["english", "chinese", "target box", "continue box", "second sentence"])
def test_text_analyze_layer_and_head_are_on_the_first_screen(laptop, tiny_models, tiny_seq2seq_models, case):
    duo = laptop
    params, shown = {}, None
    if case == "chinese":
        params = {"lang": "zh"}
    elif case == "target box":
        params, shown = {"text": SOURCE, "model": tiny_seq2seq_models["bart"], "target": "Le chat."}, "#attention-kind-wrap"
    elif case == "continue box":
        params, shown = {"text": SOURCE, "model": tiny_models["gpt2"]}, "#continue-wrap"
    elif case == "second sentence":
        params, shown = {"text": "The cat sat.", "pair": "It was tired."}, "#text-pair-input"
    duo.driver.get(duo.server_url + "/" + ("?" + urlencode(params) if params else ""))
    duo.wait_for_element("#head-grid .heatmaplayer", timeout=60)
    if shown:
        wait_until(lambda: duo.find_element(shown).is_displayed(), message=f"{shown} shown")
    if case == "target box":
        assert duo.find_element("#target-wrap").is_displayed()
    wait_until(lambda: not duo.driver.execute_script("return document.querySelector('.collapsing')"),
               message="the second sentence's box open")
    measured = bottoms(duo)
    assert measured["inner"] < 700 and measured["scrolled"] == 0, measured  # a laptop's window, at the top
    below = {s: measured[s] for s in FIRST_SCREEN if measured[s] is None or measured[s] > measured["inner"]}
    assert not below, f"below the first screen ({measured['inner']} px): {below}"
    heights = duo.driver.execute_script(  # each label on one line (注意力头 included)
        "return [...document.querySelectorAll('.ae-layer-head > label')].map(l => [l.textContent, l.getBoundingClientRect().height,"
        " parseFloat(getComputedStyle(l).lineHeight)])")
    assert len(heights) == 2 and all(h <= line * 1.2 for _text, h, line in heights), heights


# ------------------------------------------------------------------------------------------ contrast

# WCAG 2 contrast of every visible text of the page (not the figures: plotly draws them in SVG) against
# the background it is drawn on (the ancestors' backgrounds composed over white), from computed styles.
CONTRAST = """
function parse(c) { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) { return null; }
  const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; }
function over(top, bottom) { const a = top[3]; return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]); }
function background(el) {
  const layers = [];
  for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) { break; } }
  }
  let bg = [255, 255, 255, 1];
  for (let i = layers.length - 1; i >= 0; i--) { bg = over(layers[i], bg); }
  return bg;
}
function lum(c) { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); }
function ratio(a, b) { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); }
const out = [];
for (const el of document.querySelectorAll(arguments[0])) {
  if (el.closest('svg, .js-plotly-plot')) { continue; }
  const own = [...el.childNodes].filter(n => n.nodeType === 3 && n.textContent.trim()).map(n => n.textContent.trim()).join(' ');
  const s = getComputedStyle(el);
  if (!own || !el.getClientRects().length || s.visibility === 'hidden') { continue; }
  let opacity = 1;
  for (let e = el; e; e = e.parentElement) { opacity *= Number(getComputedStyle(e).opacity); }
  const bg = background(el), c = parse(s.color), fg = over([c[0], c[1], c[2], c[3] * opacity], bg);
  const size = parseFloat(s.fontSize), large = size >= 24 || (Number(s.fontWeight) >= 700 && size >= 18.66);
  out.push({text: own.slice(0, 40), where: el.tagName + '.' + String(el.className).slice(0, 50),
            ratio: Math.round(ratio(fg, bg) * 100) / 100, needs: large ? 3 : 4.5});
}
return out;
"""


def contrast(duo, selector: str = "body *") -> list[dict]:
    return duo.driver.execute_script(CONTRAST, selector)


def too_faint(duo, selector: str = "body *") -> list[dict]:
    return [t for t in contrast(duo, selector) if t["ratio"] < t["needs"]]


def test_text_and_controls_reach_wcag_aa_contrast(laptop, tiny_models, tiny_seq2seq_models):
    """Issue 19: the Export button and its menu, the status badges and alerts, the tabs, links and chips
    reach 4.5:1 (3:1 for large text), measured in Chromium from the computed styles."""
    from selenium.webdriver.common.by import By

    duo = laptop
    duo.driver.set_window_size(1366, 900)
    duo.driver.get(duo.server_url)
    duo.wait_for_element("#head-grid .heatmaplayer", timeout=60)
    wait_until(lambda: duo.find_elements("#normalisation-badge"), message="the status badges")
    measured = {t["where"].split(".")[0] + ":" + t["text"] for t in contrast(duo, "#status-area .badge, #export-menu *")}
    assert any("Export" in m for m in measured) and len(measured) >= 5  # the checks below see them
    assert too_faint(duo) == []
    duo.find_element("#export-menu .dropdown-toggle").click()
    wait_until(lambda: duo.find_elements("#export-menu .dropdown-menu.show"), message="the export menu open")
    assert len(contrast(duo, "#export-menu .dropdown-item, #export-menu .dropdown-header")) >= 5
    assert too_faint(duo) == []
    # the badges of an encoder-decoder model, a warning (unknown tokens), a cut text (info), an error
    duo.driver.get(duo.server_url + "/?" + urlencode({"text": SOURCE, "model": tiny_seq2seq_models["bart"],
                                                      "target": "Le chat."}))
    wait_until(lambda: duo.find_elements("#target-count-badge"), message="the target's badge")
    assert too_faint(duo) == []
    duo.driver.get(duo.server_url + "/?" + urlencode({"text": "猫坐在垫子上"}))
    wait_until(lambda: duo.find_elements("#status-area .alert-warning"), message="the unknown-token warning")
    assert too_faint(duo) == []
    from attention_explorer.services import config

    config.configure(max_chars=5000)  # the server's limit, so that 5,600 characters are cut
    duo.driver.execute_script("window.dash_clientside.set_props('text-input', {value: arguments[0]})", "cat " * 1400)
    duo.find_element("#analyze-button").click()
    wait_until(lambda: duo.find_elements("#status-area .ae-text-cut"), message="the cut notice")
    assert too_faint(duo) == []
    duo.driver.execute_script("window.dash_clientside.set_props('text-input', {value: ''})")
    duo.find_element("#analyze-button").click()
    wait_until(lambda: duo.find_elements("#status-area .alert-danger"), message="the error alert")
    assert too_faint(duo) == []
    duo.driver.get(duo.server_url + "/?view=arcs&head=all")
    wait_until(lambda: len(duo.find_elements("#arc-legend .ae-chip")) == 12, message="the heads' chips")
    assert too_faint(duo) == []
    assert duo.driver.find_elements(By.CSS_SELECTOR, "#view-tabs .nav-link") and too_faint(duo, "#view-tabs *") == []


# ------------------------------------------------------------------------------------------ tab ids

TABS_STATE = """
const all = {};
document.querySelectorAll('[id]').forEach(e => { all[e.id] = (all[e.id] || 0) + 1; });
const links = [...document.querySelectorAll('#view-tabs [role=tab]')].map(a => {
  const pane = document.getElementById(a.getAttribute('aria-controls') || '');
  return {id: a.id, text: a.textContent, selected: a.getAttribute('aria-selected'), active: a.classList.contains('active'),
          focusable: a.getAttribute('tabindex'), pane: !!pane && pane.getAttribute('role') === 'tabpanel',
          labelled: !!pane && pane.getAttribute('aria-labelledby') === a.id};
});
return {duplicates: Object.keys(all).filter(k => all[k] > 1), links: links};
"""


def test_every_tab_has_its_own_id_and_names_its_panel(laptop):
    """Issue 19: dbc.Tabs gave all nine tab links one id; now each has its own, points at its panel
    (which names it back), and only the open one is selected and focusable, after a tab change too."""
    duo = laptop
    duo.driver.get(duo.server_url)
    duo.wait_for_element("#head-grid .heatmaplayer", timeout=60)
    from tests.browser.test_browser import open_tab

    for label in ("Head grid", "Arcs"):
        if label != "Head grid":
            open_tab(duo, label)

        def settled():
            state = duo.driver.execute_script(TABS_STATE)
            active = [link for link in state["links"] if link["active"]]
            return state if len(active) == 1 and active[0]["text"] == label and active[0]["selected"] == "true" else None

        state = wait_until(settled, message=f"{label} open and selected")
        assert state["duplicates"] == []
        links = state["links"]
        assert len(links) == 9 and len({link["id"] for link in links}) == 9
        assert all(link["pane"] and link["labelled"] for link in links), links
        assert [(link["selected"], link["focusable"]) for link in links if not link["active"]] == [("false", "-1")] * 8
        assert [link["focusable"] for link in links if link["active"]] == ["0"]
