"""The dashboard in headless Chromium (dash.testing): what a person does and sees."""

from __future__ import annotations

import time

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from attention_explorer.services.config import DEFAULT_MODEL_ID, Settings

pytestmark = pytest.mark.browser
TIMEOUT = 30


@pytest.fixture
def dash_app(dash_duo, tiny_models, tmp_path):
    from attention_explorer.app import create_app

    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{broken")
    app = create_app(Settings(
        models=(DEFAULT_MODEL_ID, tiny_models["gpt2"], str(broken)),
        cache_type="simple",
    ))
    dash_duo.start_server(app)
    dash_duo.wait_for_element("#head-grid .heatmaplayer", timeout=60)
    return dash_duo


def graph(duo, graph_id: str, expr: str):
    """Evaluates ``expr`` on the plotly graph div (``gd``) of ``graph_id``."""
    return duo.driver.execute_script(
        f"const gd = document.querySelector('#{graph_id} .js-plotly-plot'); return gd ? ({expr}) : null;")


def wait_until(predicate, timeout: float = TIMEOUT, message: str = "condition"):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - the page may be re-rendering
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {message} (last: {last!r})")


def analyze(duo, text: str) -> None:
    box = duo.find_element("#text-input")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    if text:
        box.send_keys(text)
    duo.find_element("#analyze-button").click()


def hover_then_click(duo, element) -> None:
    """As a person does: point at the element's centre, wait for the hover to settle, then click.

    (Selenium's own centre of an SVG element can be off by a plot row, so take the browser's.)
    """
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element)
    time.sleep(0.3)
    box = duo.driver.execute_script("const r = arguments[0].getBoundingClientRect();"
                                    "return [r.left + r.width / 2, r.top + r.height / 2];", element)
    actions = ActionBuilder(duo.driver)
    actions.pointer_action.move_to_location(int(box[0]), int(box[1]))
    actions.perform()
    time.sleep(1.0)
    actions.pointer_action.move_to_location(int(box[0]), int(box[1])).click()
    actions.perform()


def select_dropdown(duo, selector: str, value: str | None = None, index: int | None = None) -> None:
    """Picks an option as a person does: the dropdown scrolled into view first (the sidebar is taller
    than a laptop's screen), then ``dash.testing``'s own selection."""
    element = duo.find_element(selector)
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element)
    time.sleep(0.2)
    duo.select_dcc_dropdown(selector, value=value, index=index)


def grid_cell(duo, tile: int, query: int, key: int) -> tuple[float, float]:
    """The image cell (x, y) of a grid tile's (query, key) cell, from the figure's geometry."""
    meta = graph(duo, "head-grid", "gd.layout.meta")
    row, col = divmod(tile, meta["columns"])
    return col * meta["stride_x"] + key, row * meta["stride_y"] + meta["band"] + query


def screen_point(duo, graph_id: str, x: float, y: float) -> tuple[int, int]:
    """Where data point (x, y) of a graph is on screen, through plotly's own axes."""
    box = duo.driver.execute_script(
        f"const gd = document.querySelector('#{graph_id} .js-plotly-plot');"
        "const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();"
        "return [r.left + xa._offset + xa.l2p(arguments[0]), r.top + ya._offset + ya.l2p(arguments[1])];", x, y)
    return int(box[0]), int(box[1])


def point_at(duo, graph_id: str, x: float, y: float, click: bool = False) -> None:
    duo.driver.execute_script(f"document.getElementById('{graph_id}').scrollIntoView({{block: 'center'}})")
    time.sleep(0.3)
    px, py = screen_point(duo, graph_id, x, y)
    for step in ("move", "click") if click else ("move",):
        actions = ActionBuilder(duo.driver)
        move = actions.pointer_action.move_to_location(px, py)
        if step == "click":
            move.click()
        actions.perform()
        time.sleep(0.6)


def point_then_click(duo, graph_id: str, x: float, y: float) -> None:
    point_at(duo, graph_id, x, y, click=True)


def requests_since(duo, mark: float) -> int:
    """Callback requests (and the gate's direct view requests) the page started since ``mark`` (a
    ``performance.now()`` value)."""
    return duo.driver.execute_script(
        "return performance.getEntriesByType('resource').filter(e => (e.name.indexOf('_dash-update-component') >= 0"
        " || e.name.indexOf('_ae-view') >= 0) && e.startTime >= arguments[0]).length", mark)


def now(duo) -> float:
    return duo.driver.execute_script("return performance.now()")


def open_tab(duo, label: str) -> None:
    link = duo.driver.find_element(By.XPATH, f"//a[contains(@class,'nav-link') and normalize-space()='{label}']")
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", link)
    link.click()


def test_grid_shows_every_head_with_the_tokens(dash_app):
    duo = dash_app
    analyze(duo, "The dog ran in the park.")
    tokens = ["[CLS]", "the", "dog", "ran", "in", "the", "park", ".", "[SEP]"]
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.tokens") == tokens, message="grid tokens")
    assert graph(duo, "head-grid", "gd.layout.meta.tiles.length") == 12
    assert len(duo.find_elements("#head-grid .imagelayer image")) == 1  # every head in one picture
    assert "9 tokens" in duo.find_element("#status-area").text
    ticks = duo.driver.execute_script("return [...document.querySelectorAll('#head-grid .scatterlayer .trace:last-child .textpoint text')].map(t => t.textContent)")[:9]
    assert ticks == tokens


def test_layer_slider_changes_the_grid(dash_app):
    duo = dash_app
    wait_until(lambda: "Layer 0" in graph(duo, "head-grid", "gd.layout.title.text"), message="layer 0")
    before = graph(duo, "head-grid", "gd.data[0].source")
    thumb = duo.find_element("#layer-slider [role='slider']")
    thumb.click()
    for _ in range(3):
        thumb.send_keys(Keys.ARROW_RIGHT)
    wait_until(lambda: "Layer 3" in graph(duo, "head-grid", "gd.layout.title.text"), message="layer 3 title")
    after = graph(duo, "head-grid", "gd.data[0].source")
    assert after != before


def test_clicking_a_tile_or_picking_a_head_opens_it(dash_app):
    duo = dash_app
    select_dropdown(duo, "#head-select", value="Head 4")
    open_tab(duo, "Head heatmap")
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") == "Layer 0 · Head 4", message="head 4")
    open_tab(duo, "Head grid")
    wait_until(lambda: graph(duo, "head-grid", "gd.data[1].textfont.color[4]") == "#e4572e",
               message="grid re-drawn with head 4 selected")
    point_then_click(duo, "head-grid", *grid_cell(duo, tile=6, query=3, key=5))
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") == "Layer 0 · Head 6",
               message="click on tile 6 opens head 6")


def test_arcs_draw_and_clicking_a_token_isolates_it(dash_app):
    duo = dash_app
    select_dropdown(duo, "#head-select", value="Head 1")
    open_tab(duo, "Arcs")
    wait_until(lambda: "Head 1" in (graph(duo, "arc-view", "gd.layout.title.text") or ""), message="arcs drawn")
    all_arcs = graph(duo, "arc-view", "gd.layout.meta.arcs")
    assert all_arcs > 13
    points = duo.find_elements("#arc-view .scatterlayer .trace:first-child .textpoint")
    assert len(points) == 13
    # hovering a token keeps only its arcs, in the browser: no request
    mark = now(duo)
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", points[2])
    ActionChains(duo.driver).move_to_element(points[2]).perform()
    wait_until(lambda: drawn_arcs(duo) == 3, message="only the hovered token's 3 arcs drawn")
    assert requests_since(duo, mark) == 0
    ActionChains(duo.driver).move_to_element(duo.find_element(".ae-title")).perform()
    wait_until(lambda: drawn_arcs(duo) == all_arcs, message="every arc again")
    # clicking keeps them (and follows the token in Token focus); clicking again releases
    hover_then_click(duo, points[8])
    wait_until(lambda: graph(duo, "arc-view", "gd.layout.meta.focus") == 8, message="token 8 focused")
    assert graph(duo, "arc-view", "gd.layout.meta.arcs") <= 3
    assert "“it”" in duo.find_element("#arc-hint").text
    points = duo.find_elements("#arc-view .scatterlayer .trace:first-child .textpoint")
    hover_then_click(duo, points[8])
    wait_until(lambda: graph(duo, "arc-view", "gd.layout.meta.focus") is None, message="released")
    ActionChains(duo.driver).move_to_element(duo.find_element(".ae-title")).perform()
    wait_until(lambda: drawn_arcs(duo) == all_arcs, message="every arc after release")
    open_tab(duo, "Token focus")
    wait_until(lambda: "“it”" in (graph(duo, "focus-heatmap", "gd.layout.title.text") or ""), message="followed")


def drawn_arcs(duo) -> int:
    """Arcs the arc view draws right now (each arc is ``meta.points`` points), whatever drew them."""
    return graph(duo, "arc-view", "gd._aeArcsDrawn")  # the page's canvas (assets/22-arcs.js) counts them


def test_empty_text_gives_a_friendly_message(dash_app):
    duo = dash_app
    analyze(duo, "")
    duo.wait_for_contains_text("#status-area", "empty", timeout=TIMEOUT)
    assert "Traceback" not in duo.find_element("#status-area").text
    analyze(duo, "The cat sat.")
    duo.wait_for_contains_text("#status-area", "6 tokens", timeout=TIMEOUT)


def test_html_is_shown_as_literal_tokens(dash_app):
    duo = dash_app
    analyze(duo, "<script>alert(1)</script>")
    wait_until(lambda: "script" in (graph(duo, "head-grid", "gd.layout.meta.tokens") or []), message="tokens")
    tokens = graph(duo, "head-grid", "gd.layout.meta.tokens")
    assert tokens[:4] == ["[CLS]", "<", "script", ">"]
    time.sleep(0.5)
    with pytest.raises(NoAlertPresentException):
        duo.driver.switch_to.alert.text  # noqa: B018 - no script ran
    assert duo.find_element("#text-input").get_attribute("value") == "<script>alert(1)</script>"
    open_tab(duo, "Head heatmap")
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.xaxis.ticktext[1]") == "&lt;", message="escaped label")
    wait_until(lambda: {"<", "script"} <= {t.text for t in duo.find_elements("#head-heatmap .xtick text")},
               message="literal token labels on the axis")


def test_broken_model_alert_then_default_still_works(dash_app, tiny_models):
    duo = dash_app
    select_dropdown(duo, "#model-select", index=2)
    duo.wait_for_contains_text("#status-area", "could not be loaded", timeout=TIMEOUT)
    assert "broken-model" in duo.find_element("#status-area").text
    select_dropdown(duo, "#model-select", index=1)  # the tiny GPT-2
    duo.wait_for_contains_text("#status-area", "causal", timeout=TIMEOUT)
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.tiles.length") == 4, message="4-head grid")
    select_dropdown(duo, "#model-select", index=0)
    duo.wait_for_contains_text("#status-area", "6 layers × 12 heads", timeout=TIMEOUT)
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.tiles.length") == 12, message="default model grid")


def test_ctrl_enter_analyzes_and_grid_hover_shows_weight(dash_app):
    duo = dash_app
    box = duo.find_element("#text-input")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("A dog ran.")
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.tokens") == ["[CLS]", "a", "dog", "ran", ".", "[SEP]"],
               message="ctrl+enter analysis")
    # hover head 3's cell (query "dog", key "a"): the tooltip's weight is the one in the data
    point_at(duo, "head-grid", *grid_cell(duo, tile=3, query=2, key=1))
    tooltip = wait_until(lambda: duo.find_element("#head-grid-tooltip").text, message="tooltip")
    assert tooltip.startswith("head 3 · dog → a: ")
    from attention_explorer.services import extract_attention

    expected = float(extract_attention("A dog ran.").attentions[0, 3, 2, 1])
    assert float(tooltip.rsplit(": ", 1)[1]) == pytest.approx(expected, abs=0.006)


def selected_layer_and_head(duo):
    layer = duo.find_element("#layer-slider [role='slider']").get_attribute("aria-valuenow")
    return int(layer), duo.find_element("#head-select").text.strip()


def test_model_overview_click_selects_layer_and_head(dash_app):
    duo = dash_app
    open_tab(duo, "Model overview")
    wait_until(lambda: graph(duo, "model-overview", "gd.layout.meta.stride"), message="overview drawn")
    stride = graph(duo, "model-overview", "gd.layout.meta.stride")
    # point at the middle of layer 3, head 5 through plotly's axes, then click like a person
    box = duo.driver.execute_script(
        "const gd = document.querySelector('#model-overview .js-plotly-plot');"
        "const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();"
        "const s = arguments[0];"
        "return [r.left + xa._offset + xa.l2p(5 * s + (s - 2) / 2), r.top + ya._offset + ya.l2p(3 * s + (s - 2) / 2)];",
        stride)
    for step in ("move", "click"):
        actions = ActionBuilder(duo.driver)
        move = actions.pointer_action.move_to_location(int(box[0]), int(box[1]))
        if step == "click":
            move.click()
        actions.perform()
        time.sleep(0.8)
    wait_until(lambda: selected_layer_and_head(duo) == (3, "Head 5"), message="layer 3 head 5 selected")
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") == "Layer 3 · Head 5", message="heatmap")


def test_a_tab_opened_draws_its_figure_once_at_its_columns_width(dash_app):
    """A view tab is shown by the page at the click and its figure drawn as soon as it comes (assets/23-gate.js
    tabClick), at the width of its column: a graph first drawn while its tab was hidden has plotly.js's
    fallback width (700 px), and drawing the new figure at that width first, then at the column's, made the
    figure jump ~170 ms after it appeared (and a click aimed at it land on another head)."""
    duo = dash_app
    duo.driver.execute_script("""
        window.__draws = [];
        const gd = document.querySelector('#model-overview .js-plotly-plot');
        gd.on('plotly_afterplot', function () {
            window.__draws.push([gd._fullLayout.width, parseFloat(getComputedStyle(gd).width), gd.offsetParent !== null]);
        });""")
    open_tab(duo, "Model overview")
    wait_until(lambda: duo.driver.execute_script("return window.__draws.length"), message="overview drawn")
    width, column, shown = duo.driver.execute_script("return window.__draws[0]")
    assert shown and column > 800 and abs(width - column) <= 1  # the first draw is at the column's width
    wait_until(lambda: "view=overview" in duo.driver.current_url, message="Dash follows the tab shown (the URL)")
    time.sleep(0.5)
    assert all(abs(w - c) <= 1 for w, c, _shown in duo.driver.execute_script("return window.__draws"))


def test_head_atlas_row_click_selects_layer_and_head(dash_app):
    duo = dash_app
    open_tab(duo, "Head atlas")
    wait_until(lambda: len(duo.find_elements("#atlas-table td")) > 20, message="atlas table")
    assert len(duo.find_elements("#atlas-legend li")) >= 2
    cell = duo.driver.find_element(By.XPATH, "//*[@id='atlas-table']//tr[td][3]/td[1]")  # third row: layer 0 head 2
    row = [td.text for td in duo.driver.find_elements(By.XPATH, "//*[@id='atlas-table']//tr[td][3]/td")]
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", cell)
    time.sleep(0.3)
    cell.click()
    wait_until(lambda: selected_layer_and_head(duo) == (int(row[0]), f"Head {row[1]}"), message="row selected")
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") == f"Layer {row[0]} · Head {row[1]}",
               message="heatmap of the row's head")


def test_token_focus_tab_and_switches(dash_app):
    duo = dash_app
    open_tab(duo, "Token focus")
    wait_until(lambda: len(duo.find_elements("#focus-tables table")) == 2, message="focus tables")
    select_dropdown(duo, "#focus-token", value="it (#8)")
    wait_until(lambda: "“it”" in (graph(duo, "focus-heatmap", "gd.layout.title.text") or ""), message="focus on it")
    rows = duo.find_elements("#focus-tables > div:first-child tbody tr")
    assert len(rows) == 6
    # hide special tokens: the figure says so and [CLS] leaves the columns
    switch = duo.driver.find_element(By.XPATH, "//label[normalize-space()='Hide special tokens']")
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", switch)
    time.sleep(0.3)
    switch.click()
    wait_until(lambda: "renormalised" in graph(duo, "focus-heatmap", "gd.layout.title.text"), message="note")
    assert "[CLS]" not in graph(duo, "focus-heatmap", "gd.layout.xaxis.ticktext")


def test_one_request_per_interaction(dash_app):
    """Counted in the browser: a layer or head change in the grid sends none (the grid holds every
    layer); a tab, head, mode or switch change elsewhere sends one; a hover none."""
    duo = dash_app
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.tiles.length") == 12, message="grid")
    time.sleep(1.0)

    def requests_for(action, graph_id: str, expect: str, message: str) -> int:
        mark = now(duo)
        action()
        wait_until(lambda: expect in str(graph(duo, graph_id, "gd.layout.title.text")), message=message)
        time.sleep(1.0)  # anything else the interaction sends would have started by now
        return requests_since(duo, mark)

    layer0 = graph(duo, "head-grid", "gd.data[0].source")
    thumb = duo.find_element("#layer-slider [role='slider']")
    assert requests_for(lambda: thumb.send_keys(Keys.ARROW_RIGHT), "head-grid", "Layer 1", "layer change") == 0
    assert graph(duo, "head-grid", "gd.data[0].source") != layer0
    assert graph(duo, "head-grid", "gd.data[0].source") == graph(duo, "head-grid", "gd.layout.meta.sources[1]")
    mark = now(duo)
    select_dropdown(duo, "#head-select", value="Head 4")
    wait_until(lambda: graph(duo, "head-grid", "gd.data[1].textfont.color[4]") == "#e4572e", message="outline moved")
    assert graph(duo, "head-grid", "gd.layout.shapes.length") == 1
    time.sleep(1.0)
    assert requests_since(duo, mark) == 0
    assert requests_for(lambda: open_tab(duo, "Head heatmap"), "head-heatmap", "Layer 1 · Head 4", "tab change") == 1
    # another layer in the heatmap: the head grid holds that layer's picture, the browser moves to it
    assert requests_for(lambda: thumb.send_keys(Keys.ARROW_RIGHT), "head-heatmap", "Layer 2 · Head 4",
                        "layer change in the heatmap") == 0
    assert graph(duo, "head-heatmap", "gd.data[0].source") == graph(duo, "head-grid", "gd.layout.meta.sources[2]")
    # another head of the same layer: the heatmap shows a tile of the layer's picture, moved in the browser
    assert requests_for(lambda: select_dropdown(duo, "#head-select", value="Head 7"), "head-heatmap", "Head 7",
                        "head change in the heatmap") == 0
    # the mean of heads: the heatmap carries every layer's mean picture, the browser shows it
    assert requests_for(lambda: select_dropdown(duo, "#head-select", value="Mean of heads"), "head-heatmap",
                        "Layer 2 · Mean of heads", "the mean of heads, in the browser") == 0
    assert graph(duo, "head-heatmap", "gd.data[0].source") == graph(duo, "head-heatmap", "gd.layout.meta.means[2]")
    assert requests_for(lambda: select_dropdown(duo, "#head-select", value="Head 7"), "head-heatmap",
                        "Layer 2 · Head 7", "back to a head from the mean") == 0
    assert graph(duo, "head-heatmap", "gd.data[0].source") == graph(duo, "head-grid", "gd.layout.meta.sources[2]")
    assert requests_for(lambda: select_dropdown(duo, "#head-select", value="Mean of heads"), "head-heatmap",
                        "Layer 2 · Mean of heads", "the mean again") == 0
    switch = duo.driver.find_element(By.XPATH, "//label[normalize-space()='Hide special tokens']")
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", switch)
    time.sleep(0.3)
    assert requests_for(switch.click, "head-heatmap", "special tokens hidden", "switch") == 1
    assert requests_for(lambda: select_dropdown(duo, "#head-select", value="Head 7"), "head-heatmap", "Head 7",
                        "head change with a switch on: the server draws") == 1
    rollout = duo.driver.find_element(By.XPATH, "//label[normalize-space()='Rollout']")
    assert requests_for(rollout.click, "head-heatmap", "Rollout", "mode") == 1
    # back on the grid with a switch on, a layer change needs the server: one request
    assert requests_for(lambda: open_tab(duo, "Head grid"), "head-grid", "Rollout", "grid in rollout mode") == 1
    # hovering the heatmap draws its tooltip in the browser, with the weight of the cell
    open_tab(duo, "Head heatmap")
    wait_until(lambda: "Rollout" in str(graph(duo, "head-heatmap", "gd.layout.title.text")), message="heatmap")
    mark = now(duo)
    point_at(duo, "head-heatmap", 2, 5)
    tooltip = wait_until(lambda: duo.find_element("#head-heatmap-tooltip").text, message="heatmap tooltip")
    assert " → " in tooltip and 0 <= float(tooltip.rsplit(": ", 1)[1]) <= 1
    assert requests_since(duo, mark) == 0
    severe = [e for e in duo.get_logs() or [] if e.get("level") == "SEVERE"]
    assert severe == []  # no error in the browser's console (a broken callback shows there)


def test_layer_and_head_changes_are_one_browser_step(dash_app):
    """A layer or head change the browser can draw is drawn on the graph div by ONE ``Plotly.update``
    from the gate (no new figure handed to Dash, no whole-figure ``Plotly.react``), and the hover reads
    the figure as drawn."""
    duo = dash_app
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.tiles.length") == 12, message="grid")
    time.sleep(1.0)
    duo.driver.execute_script("""
        window.__calls = {react: 0, update: 0, newPlot: 0};
        window.__updated = [];  // what each Plotly.update changed: [trace attributes, layout keys]
        for (const name of ["react", "update", "newPlot"]) {
            const original = Plotly[name];
            Plotly[name] = function () {
                window.__calls[name] += 1;
                if (name === "update") { window.__updated.push([Object.keys(arguments[1]).sort(), Object.keys(arguments[2]).sort()]); }
                return original.apply(this, arguments);
            };
        }""")
    calls = lambda: duo.driver.execute_script("return Object.assign({}, window.__calls)")  # noqa: E731
    thumb = duo.find_element("#layer-slider [role='slider']")
    thumb.send_keys(Keys.ARROW_RIGHT)
    wait_until(lambda: "Layer 1" in graph(duo, "head-grid", "gd.layout.title.text"), message="layer 1")
    time.sleep(0.5)
    assert calls() == {"react": 0, "update": 1, "newPlot": 0}
    assert graph(duo, "head-grid", "gd.data[0].source") == graph(duo, "head-grid", "gd.layout.meta.sources[1]")
    select_dropdown(duo, "#head-select", value="Head 3")
    wait_until(lambda: graph(duo, "head-grid", "gd.data[1].textfont.color[3]") == "#e4572e", message="outline moved")
    time.sleep(0.5)
    assert calls() == {"react": 0, "update": 2, "newPlot": 0}
    assert graph(duo, "head-grid", "gd.layout.shapes.length") == 1
    # another layer: its picture; another head alone: only the titles' colours (style) and the outline
    # (no redraw of the picture, no relayout of meta, which would redraw the whole plot)
    assert duo.driver.execute_script("return window.__updated") == [
        [["source", "textfont.color"], ["shapes", "title.text"]], [["textfont.color"], ["shapes", "title.text"]]]
    # the hover of the grid reads the layer drawn (1), not the figure Dash was given (layer 0)
    from attention_explorer.services import extract_attention

    att = extract_attention("The cat sat on the mat because it was tired.").attentions
    point_at(duo, "head-grid", *grid_cell(duo, 3, 8, 2))
    tooltip = wait_until(lambda: duo.find_element("#head-grid-tooltip").text, message="grid tooltip")
    assert tooltip.startswith("head 3 · it → cat: ")
    assert float(tooltip.rsplit(": ", 1)[1]) == pytest.approx(float(att[1, 3, 8, 2]), abs=0.006)
    open_tab(duo, "Head heatmap")
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") == "Layer 1 · Head 3", message="heatmap")
    time.sleep(0.5)
    before = calls()
    thumb.send_keys(Keys.ARROW_RIGHT)
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") == "Layer 2 · Head 3", message="layer 2")
    select_dropdown(duo, "#head-select", value="Head 9")
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") == "Layer 2 · Head 9", message="head 9")
    time.sleep(0.5)
    after = calls()
    assert (after["react"] - before["react"], after["update"] - before["update"]) == (0, 2)
    # the heatmap's hover reads the drawn layer and head: layer 2, head 9
    point_at(duo, "head-heatmap", 2, 8)
    tooltip = wait_until(lambda: (lambda t: t if t.startswith("it → cat") else "")(
        duo.find_element("#head-heatmap-tooltip").text), message="heatmap tooltip")
    assert float(tooltip.rsplit(": ", 1)[1]) == pytest.approx(float(att[2, 9, 8, 2]), abs=0.006)
    severe = [e for e in duo.get_logs() or [] if e.get("level") == "SEVERE"]
    assert severe == []


def test_layer_keys_faster_than_the_page_takes_them_each_count(dash_app):
    """Keys that come before the page has taken the one before (a key held down): each is drawn early
    and each counts, and the slider, the URL and the grid agree on where they end (the events handed on
    carry the value itself, and a draw that a newer one replaces never holds the next ones back)."""
    duo = dash_app
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.tiles.length") == 12, message="grid")
    time.sleep(1.0)
    duo.driver.execute_script("""
        const thumb = document.querySelector('#layer-slider [role=slider]');
        thumb.focus();
        for (let i = 0; i < 3; i++) {
            thumb.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', code: 'ArrowRight', bubbles: true,
                                                              cancelable: true}));
        }""")
    wait_until(lambda: duo.find_element("#layer-slider [role='slider']").get_attribute("aria-valuenow") == "3",
               message="the slider at layer 3")
    wait_until(lambda: "layer=3" in duo.driver.current_url, message="the URL at layer 3")
    assert graph(duo, "head-grid", "gd.layout.title.text").startswith("Layer 3 ")
    duo.find_element("#layer-slider [role='slider']").send_keys(Keys.ARROW_RIGHT)  # the early path still works
    wait_until(lambda: "layer=4" in duo.driver.current_url, message="the URL at layer 4")
    assert graph(duo, "head-grid", "gd.layout.title.text").startswith("Layer 4 ")


def test_layer_keys_and_head_options_are_drawn_before_dash_hears_of_them(dash_app):
    """The early path (assets/23-gate.js): a layer key on the slider and a head option the browser can draw
    are drawn on their own DOM event, before Dash's renderer runs the gate; the page then takes the same
    event as usual: the slider, the selector, the URL and every later view agree with what is drawn."""
    duo = dash_app
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.tiles.length") == 12, message="grid")
    time.sleep(1.0)
    duo.driver.execute_script("""
        window.__order = [];
        const update = Plotly.update;
        Plotly.update = function () { window.__order.push("drawn"); return update.apply(this, arguments); };
        const gate = window.dash_clientside.attention.gate;
        window.dash_clientside.attention.gate = function () {
            window.__order.push("gate " + window.dash_clientside.callback_context.triggered.map(t => t.prop_id).join());
            return gate.apply(this, arguments);
        };""")
    order = lambda: duo.driver.execute_script("return window.__order.slice()")  # noqa: E731
    thumb = duo.find_element("#layer-slider [role='slider']")
    for _ in range(3):  # three presses in a row: each drawn at once, the page catches up with all
        thumb.send_keys(Keys.ARROW_RIGHT)
    wait_until(lambda: thumb.get_attribute("aria-valuenow") == "3", message="the slider took the keys")
    wait_until(lambda: "layer=3" in duo.driver.current_url, message="the URL follows")
    time.sleep(0.5)
    assert graph(duo, "head-grid", "gd.layout.title.text").startswith("Layer 3")
    assert graph(duo, "head-grid", "gd.data[0].source") == graph(duo, "head-grid", "gd.layout.meta.sources[3]")
    seen = order()
    # each key drawn before the gate heard of it; the gate then found it drawn (no second draw)
    assert seen.count("drawn") == 3 and seen.count("gate layer-slider.value") == 3, seen
    assert all(seen[:i + 1].count("drawn") >= seen[:i + 1].count("gate layer-slider.value") for i in range(len(seen))
               if seen[i].startswith("gate")), seen
    duo.driver.execute_script("window.__order = []")
    select_dropdown(duo, "#head-select", value="Head 6")
    wait_until(lambda: graph(duo, "head-grid", "gd.data[1].textfont.color[6]") == "#e4572e", message="outline")
    wait_until(lambda: "head=6" in duo.driver.current_url, message="the URL follows the head")
    time.sleep(0.5)
    assert order()[0] == "drawn" and order().count("drawn") == 1, order()
    assert "Head 6" in duo.find_element("#head-select").text  # the selector shows what is drawn
    assert not duo.driver.find_elements("css selector", ".dash-dropdown-options")  # and closed
    # a change the browser cannot draw alone passes through untouched: the server draws it
    open_tab(duo, "Head heatmap")
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") == "Layer 3 · Head 6", message="heatmap")
    switch = duo.driver.find_element(By.XPATH, "//label[normalize-space()='Hide special tokens']")
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", switch)
    time.sleep(0.3)
    switch.click()
    wait_until(lambda: "special tokens hidden" in graph(duo, "head-heatmap", "gd.layout.title.text"), message="switch")
    time.sleep(1.0)
    mark = now(duo)
    thumb.send_keys(Keys.ARROW_LEFT)
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text").startswith("Layer 2 · Head 6"),
               message="the server drew layer 2")
    wait_until(lambda: thumb.get_attribute("aria-valuenow") == "2", message="the slider took the key")
    time.sleep(1.0)
    # asked of the router straight from the key (one direct request), not again by the gate
    sent = duo.driver.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.startTime >= arguments[0])"
        ".map(e => e.name.split('/').pop())", mark)
    assert [name for name in sent if name in ("_ae-view", "_dash-update-component")] == ["_ae-view"], sent
    assert "special tokens hidden" in graph(duo, "head-heatmap", "gd.layout.title.text")
    assert "layer=2" in duo.driver.current_url
    severe = [e for e in duo.get_logs() or [] if e.get("level") == "SEVERE"]
    assert severe == []


def test_heatmap_tooltip_weight_and_row_click_follow_the_token(dash_app):
    duo = dash_app
    select_dropdown(duo, "#head-select", value="Head 2")
    open_tab(duo, "Head heatmap")
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") == "Layer 0 · Head 2", message="head 2")
    from attention_explorer.services import extract_attention

    att = extract_attention("The cat sat on the mat because it was tired.").attentions
    point_at(duo, "head-heatmap", 2, 8)  # query "it" (row 8) -> key "cat" (column 2)
    tooltip = wait_until(lambda: duo.find_element("#head-heatmap-tooltip").text, message="tooltip")
    assert tooltip.startswith("it → cat: ")
    assert float(tooltip.rsplit(": ", 1)[1]) == pytest.approx(float(att[0, 2, 8, 2]), abs=0.006)
    # another head, shown by moving the picture in the browser: the tooltip reads that head's weight
    select_dropdown(duo, "#head-select", value="Head 9")
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") == "Layer 0 · Head 9", message="head 9")
    point_at(duo, "head-heatmap", 2, 8)
    time.sleep(0.5)
    point_at(duo, "head-heatmap", 3, 8)
    tooltip = wait_until(lambda: (lambda t: t if t.startswith("it → sat") else "")(
        duo.find_element("#head-heatmap-tooltip").text), message="tooltip of head 9")
    assert float(tooltip.rsplit(": ", 1)[1]) == pytest.approx(float(att[0, 9, 8, 3]), abs=0.006)
    point_then_click(duo, "head-heatmap", 3, 6)  # row 6: "mat": Inside a head opens on it (the README says so)
    wait_until(lambda: duo.find_element("#view-tabs .nav-link.active").text == "Inside a head", message="Inside a head")
    wait_until(lambda: duo.find_element("#inside-query").text.startswith("mat"), message="inside, for mat")
    open_tab(duo, "Token focus")  # and Token focus follows the same token
    wait_until(lambda: "“mat”" in (graph(duo, "focus-heatmap", "gd.layout.title.text") or ""), message="follows mat")


def test_the_url_is_the_state(dash_app):
    """Opening a URL reproduces its view; changes update the URL without a reload; each analysis is a
    history entry (Back returns to the previous text); junk parameters are harmless."""
    from urllib.parse import parse_qs, urlencode, urlparse

    duo = dash_app
    params = {"text": "A dog ran in the park.", "layer": "3", "head": "5", "view": "heatmap", "mode": "raw",
              "hide_special": "1", "merge": "0", "token": "2"}
    duo.driver.get(duo.server_url + "/?" + urlencode(params))
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") and
               graph(duo, "head-heatmap", "gd.layout.title.text").startswith("Layer 3 · Head 5"), message="heatmap")
    assert "special tokens hidden" in graph(duo, "head-heatmap", "gd.layout.title.text")
    assert duo.find_element("#text-input").get_attribute("value") == "A dog ran in the park."
    assert selected_layer_and_head(duo) == (3, "Head 5")

    def query() -> dict:
        return {k: v[0] for k, v in parse_qs(urlparse(duo.driver.current_url).query).items()}

    assert query()["view"] == "heatmap" and query()["token"] == "2"
    thumb = duo.find_element("#layer-slider [role='slider']")
    entries = duo.driver.execute_script("return history.length")
    thumb.send_keys(Keys.ARROW_LEFT)
    wait_until(lambda: query().get("layer") == "2", message="the URL follows the layer")
    assert duo.driver.execute_script("return history.length") == entries  # replaced, not added
    analyze(duo, "The cat sat.")
    wait_until(lambda: query().get("text") == "The cat sat.", message="the URL names the new text")
    assert duo.driver.execute_script("return history.length") == entries + 1
    duo.driver.back()
    wait_until(lambda: duo.find_element("#text-input").get_attribute("value") == "A dog ran in the park.",
               message="Back returns to the previous text")
    duo.wait_for_contains_text("#status-area", "9 tokens", timeout=TIMEOUT)
    # junk: the page still opens on its first view, with no error
    duo.driver.get(duo.server_url + "/?layer=x&head=%ZZ&view=nope&mode=loud&token=-4&text=" + "y" * 5)
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.title.text") and
               "Layer 0" in graph(duo, "head-grid", "gd.layout.title.text"), message="grid")
    assert "Traceback" not in duo.find_element("body").text
