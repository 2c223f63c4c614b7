"""Screen use and readability (issue 18 item 6), measured in headless Chromium at 1366x768 and 1920x1080,
in English and in Chinese: the heatmap fills its column (a square plot, the colour bar beside it), CJK
token labels stay horizontal where they fit, no Chinese text is turned sideways (axis and colour bar
titles), and Compare's labels are neither cut off nor covered."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.browser.test_browser import wait_until

pytestmark = pytest.mark.browser
ENGLISH = "The cat sat on the mat because it was tired."
CHINESE = "猫坐在垫子上因为它累了。"
SIZES = [(1366, 768), (1920, 1080)]

# Every SVG text of a graph: its box on screen, its text, and the rotation it is drawn at (its own
# transform and its ancestors' up to the SVG: plotly.js turns axis titles on the title element and
# tick labels on the text).
TEXTS = r"""
const gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
const out = [];
for (const t of gd.querySelectorAll('svg text')) {
  let angle = 0;
  for (let el = t; el && el.tagName.toLowerCase() !== 'svg'; el = el.parentElement) {
    const m = /rotate\(\s*(-?[\d.]+)/.exec(el.getAttribute('transform') || '');
    if (m) { angle += Number(m[1]); }
  }
  const r = t.getBoundingClientRect();
  let kind = 'other';  /* the second axes' ticks are "x2tick", their titles "x2title" */
  for (let el = t; el && el.tagName.toLowerCase() !== 'svg'; el = el.parentElement) {
    for (const c of el.classList) {
      const m = /^([xy])\d*(tick|title)$/.exec(c);
      if (m && kind === 'other') { kind = m[1] + m[2]; }
      if ((c === 'annotation' || c === 'cbtitle') && kind === 'other') { kind = c; }
    }
  }
  out.push({text: t.textContent, angle: angle, kind: kind,
            box: [r.left, r.top, r.right, r.bottom], shown: r.width > 0 && r.height > 0});
}
return out;
"""

PLOT = r"""
const gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
const fl = gd._fullLayout, xa = fl.xaxis, ya = fl.yaxis, svg = gd.querySelector('.main-svg').getBoundingClientRect();
const bar = gd.querySelector('.colorbar .cbfill, .colorbar rect.cbbg');
const pane = gd.closest('.tab-pane');
return {width: xa._length, height: ya._length, left: svg.left + xa._offset, right: svg.left + xa._offset + xa._length,
        bar: bar ? bar.getBoundingClientRect().left : null, column: pane.clientWidth, inner: window.innerHeight,
        svg: [svg.left, svg.top, svg.right, svg.bottom]};
"""


def cjk(text: str) -> bool:
    return any("\u2e80" <= c <= "\u9fff" or "\uff00" <= c <= "\uffef" for c in text)


def overlap(a, b) -> bool:
    return a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1


@pytest.fixture
def duo(chinese_page):
    return chinese_page


def open_view(duo, size, params: dict, graph: str, ready: str) -> None:
    duo.driver.set_window_size(*size)
    duo.driver.get(duo.server_url + "/?" + urlencode(params))
    wait_until(lambda: duo.driver.execute_script(
        f"const gd = document.querySelector('#{graph} .js-plotly-plot');"
        f"return gd && gd._fullLayout && gd.layout.meta && gd.layout.meta.kind === '{ready}' &&"
        " !document.querySelector('[data-dash-is-loading=\"true\"]')"), timeout=60, message=f"{graph} drawn")
    duo.driver.execute_script("window.dispatchEvent(new Event('resize'))")
    import time

    time.sleep(1.5)  # plotly.js fits the graph to its box after a resize


def language(lang: str, params: dict, tiny_models) -> dict:
    if lang == "zh":
        return {**params, "lang": "zh", "text": CHINESE, "model": tiny_models["chinese"]}
    return {**params, "text": ENGLISH}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_heatmap_fills_its_column_and_reads_upright(duo, tiny_models, size, lang):
    open_view(duo, size, language(lang, {"view": "heatmap", "layer": 1, "head": 2}, tiny_models),
              "head-heatmap", "heatmap")
    plot = duo.driver.execute_script(PLOT, "head-heatmap")
    # a square plot ...
    assert abs(plot["width"] - plot["height"]) <= 2, plot
    # ... as large as the column (with the labels and colour bar beside it) or the window allows
    assert plot["width"] >= min(plot["column"] - 300, plot["inner"] - 250), plot
    # ... with its colour bar beside it, not at the far edge of the column
    assert plot["bar"] is not None and 0 <= plot["bar"] - plot["right"] <= 80, plot
    texts = duo.driver.execute_script(TEXTS, "head-heatmap")
    ticks = [t for t in texts if t["kind"] == "xtick" and t["shown"]]
    assert len(ticks) >= 12
    if lang == "zh":  # one character a column: they fit, so they stay horizontal
        assert all(t["angle"] == 0 for t in ticks), [(t["text"], t["angle"]) for t in ticks]
        # no Chinese text is turned sideways: axis titles, colour bar title, labels
        turned = [(t["text"], t["angle"]) for t in texts if cjk(t["text"]) and t["angle"] % 360]
        assert turned == []
        assert any("查" in t["text"] for t in texts)  # the query axis's title is there, upright


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_compare_labels_are_not_clipped_or_covered(duo, tiny_models, size, lang):
    if lang == "zh":
        params = {"lang": "zh", "text": CHINESE, "model": tiny_models["chinese"],
                  "compare": CHINESE.replace("累", "饿"), "view": "compare", "token": 3}
    else:
        trophy = "The trophy doesn't fit into the suitcase because it is too big."
        params = {"text": trophy, "compare": trophy.replace("big", "small"), "view": "compare", "token": 10}
    open_view(duo, size, params, "compare-heads", "compare")
    for graph in ("compare-focus", "compare-heads"):
        svg = duo.driver.execute_script(PLOT, graph)["svg"]
        texts = [t for t in duo.driver.execute_script(TEXTS, graph) if t["shown"] and t["text"].strip()]
        labels = [t for t in texts if t["kind"] in ("xtick", "ytick")]
        assert labels, graph
        for t in labels:  # inside the figure: nothing cut off at its edges
            b = t["box"]
            assert b[0] >= svg[0] - 1 and b[1] >= svg[1] - 1 and b[2] <= svg[2] + 1 and b[3] <= svg[3] + 1, (graph, t)
        titles = [t for t in texts if t["kind"] in ("ytitle", "annotation", "xtitle")]
        for title in titles:  # no axis title drawn over a label
            covered = [t["text"] for t in labels if overlap(title["box"], t["box"])]
            assert covered == [], (graph, title["text"], covered)
        if lang == "zh":  # titles and token labels read upright
            turned = [(t["text"], t["angle"]) for t in texts if cjk(t["text"]) and t["angle"] % 360]
            assert turned == [], graph
            # no token label turned (CJK ones horizontal, those too wide for a column stacked upright) ...
            xticks = [t for t in labels if t["kind"] == "xtick"]
            assert [(t["text"], t["angle"]) for t in xticks if t["angle"] % 360] == [], graph
            assert sum(cjk(t["text"]) for t in xticks) >= 10, graph  # ... each panel's characters named
            # ... and none drawn over its neighbour
            crowded = [(a["text"], b["text"]) for i, a in enumerate(xticks) for b in xticks[i + 1:]
                       if overlap(a["box"], b["box"])]
            assert crowded == [], graph
            assert any(t["kind"] == "annotation" and cjk(t["text"]) for t in texts), graph  # the y title is there


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_atlas_colour_bar_title_is_whole_inside_the_figure(duo, tiny_models, size, lang):
    # a model of 2 layers: the atlas at its shortest (300 px), its colour bar ~190 px
    params = {**language(lang, {"view": "atlas"}, tiny_models), "model": tiny_models["chinese"]}
    duo.driver.set_window_size(*size)
    duo.driver.get(duo.server_url + "/?" + urlencode(params))
    wait_until(lambda: duo.driver.execute_script(
        "const gd = document.querySelector('#atlas-map .js-plotly-plot');"
        "return gd && gd._fullLayout && gd.data.length > 0 && !!gd.querySelector('.cbtitle text') &&"
        " !document.querySelector('[data-dash-is-loading=\"true\"]')"), timeout=60, message="the atlas drawn")
    svg = duo.driver.execute_script(PLOT, "atlas-map")["svg"]
    titles = [t for t in duo.driver.execute_script(TEXTS, "atlas-map") if t["kind"] == "cbtitle"]
    assert len(titles) == 1 and titles[0]["shown"], titles
    title = titles[0]
    b = title["box"]  # the whole title inside the figure: nothing cut off at its edges
    assert b[0] >= svg[0] - 1 and b[1] >= svg[1] - 1 and b[2] <= svg[2] + 1 and b[3] <= svg[3] + 1, (title, svg)
    if lang == "zh":
        assert title["angle"] % 360 == 0, title  # Chinese reads upright
    assert title["text"] == ("熵" if lang == "zh" else "entropy")  # the metric's short name
    # the full description is in the figure's title
    assert any(("归一化熵" if lang == "zh" else "normalised entropy (0 focused") in t["text"]
               for t in duo.driver.execute_script(TEXTS, "atlas-map"))
