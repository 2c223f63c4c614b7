"""The dashboard in headless Chromium (dash.testing): what a person does and sees."""

from __future__ import annotations

import time

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from services.config import DEFAULT_MODEL_ID, Settings

pytestmark = pytest.mark.browser
TIMEOUT = 30


@pytest.fixture
def dash_app(dash_duo, tiny_models, tmp_path):
    from app import create_app

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


def open_tab(duo, label: str) -> None:
    duo.driver.find_element(By.XPATH, f"//a[contains(@class,'nav-link') and normalize-space()='{label}']").click()


def test_grid_shows_every_head_with_the_tokens(dash_app):
    duo = dash_app
    analyze(duo, "The dog ran in the park.")
    tokens = ["[CLS]", "the", "dog", "ran", "in", "the", "park", ".", "[SEP]"]
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.tokens") == tokens, message="grid tokens")
    assert graph(duo, "head-grid", "gd.data.length") == 12
    assert len(duo.find_elements("#head-grid .heatmaplayer image")) == 12
    assert "9 tokens" in duo.find_element("#status-area").text
    ticks = [t.text for t in duo.find_elements("#head-grid .xaxislayer-above .xtick text")][:9]
    assert ticks == tokens


def test_layer_slider_changes_the_grid(dash_app):
    duo = dash_app
    wait_until(lambda: "Layer 0" in graph(duo, "head-grid", "gd.layout.title.text"), message="layer 0")
    before = graph(duo, "head-grid", "gd.data[0].z.bdata || JSON.stringify(gd.data[0].z)")
    thumb = duo.find_element("#layer-slider [role='slider']")
    thumb.click()
    for _ in range(3):
        thumb.send_keys(Keys.ARROW_RIGHT)
    wait_until(lambda: "Layer 3" in graph(duo, "head-grid", "gd.layout.title.text"), message="layer 3 title")
    after = graph(duo, "head-grid", "gd.data[0].z.bdata || JSON.stringify(gd.data[0].z)")
    assert after != before


def test_clicking_a_tile_or_picking_a_head_opens_it(dash_app):
    duo = dash_app
    duo.select_dcc_dropdown("#head-select", value="Head 4")
    open_tab(duo, "Head heatmap")
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") == "Layer 0 · Head 4", message="head 4")
    open_tab(duo, "Head grid")
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.annotations[4].text") == "<b>head 4</b>",
               message="grid re-drawn with head 4 selected")
    tile = duo.find_element("#head-grid rect.nsewdrag[data-subplot='x7y7']")  # plotly's hit area of tile 6
    hover_then_click(duo, tile)
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") == "Layer 0 · Head 6",
               message="click on tile 6 opens head 6")


def test_arcs_draw_and_clicking_a_token_isolates_it(dash_app):
    duo = dash_app
    duo.select_dcc_dropdown("#head-select", value="Head 1")
    open_tab(duo, "Arcs")
    wait_until(lambda: "Head 1" in (graph(duo, "arc-view", "gd.layout.title.text") or ""), message="arcs drawn")
    all_arcs = graph(duo, "arc-view", "gd.layout.meta.arcs")
    assert all_arcs > 13
    points = duo.find_elements("#arc-view .scatterlayer .trace:first-child .point")
    assert len(points) == 13
    hover_then_click(duo, points[8])
    wait_until(lambda: graph(duo, "arc-view", "gd.layout.meta.focus") == 8, message="token 8 focused")
    assert graph(duo, "arc-view", "gd.layout.meta.arcs") <= 3
    assert "“it”" in duo.find_element("#arc-hint").text
    points = duo.find_elements("#arc-view .scatterlayer .trace:first-child .point")
    hover_then_click(duo, points[8])
    time.sleep(1.0)
    # still hovering it, its arcs stay; moving away shows every token's arcs again
    assert graph(duo, "arc-view", "gd.layout.meta.focus") == 8
    ActionChains(duo.driver).move_to_element(duo.find_element(".ae-title")).perform()
    wait_until(lambda: graph(duo, "arc-view", "gd.layout.meta.focus") is None, message="released")
    assert graph(duo, "arc-view", "gd.layout.meta.arcs") == all_arcs


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
    wait_until(lambda: graph(duo, "head-heatmap", "gd.data[0].x[1]") == "&lt;", message="escaped label")
    wait_until(lambda: {"<", "script"} <= {t.text for t in duo.find_elements("#head-heatmap .xtick text")},
               message="literal token labels on the axis")


def test_broken_model_alert_then_default_still_works(dash_app, tiny_models):
    duo = dash_app
    duo.select_dcc_dropdown("#model-select", index=2)
    duo.wait_for_contains_text("#status-area", "could not be loaded", timeout=TIMEOUT)
    assert "broken-model" in duo.find_element("#status-area").text
    duo.select_dcc_dropdown("#model-select", index=1)  # the tiny GPT-2
    duo.wait_for_contains_text("#status-area", "causal", timeout=TIMEOUT)
    assert graph(duo, "head-grid", "gd.data.length") == 4
    duo.select_dcc_dropdown("#model-select", index=0)
    duo.wait_for_contains_text("#status-area", "6 layers × 12 heads", timeout=TIMEOUT)
    wait_until(lambda: graph(duo, "head-grid", "gd.data.length") == 12, message="default model grid")


def test_ctrl_enter_analyzes_and_grid_hover_shows_weight(dash_app):
    duo = dash_app
    box = duo.find_element("#text-input")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("A dog ran.")
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.tokens") == ["[CLS]", "a", "dog", "ran", ".", "[SEP]"],
               message="ctrl+enter analysis")
    tile = duo.find_element("#head-grid rect.nsewdrag[data-subplot='xy']")
    ActionChains(duo.driver).move_to_element(tile).perform()
    tooltip = wait_until(lambda: duo.find_element("#head-grid-tooltip").text, message="tooltip")
    assert tooltip.startswith("head 0 · ") and "→" in tooltip
    assert 0.0 <= float(tooltip.rsplit(": ", 1)[1]) <= 1.0


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
    duo.select_dcc_dropdown("#focus-token", value="it (#8)")
    wait_until(lambda: "“it”" in (graph(duo, "focus-heatmap", "gd.layout.title.text") or ""), message="focus on it")
    rows = duo.find_elements("#focus-tables > div:first-child tbody tr")
    assert len(rows) == 6
    # hide special tokens: the figure says so and [CLS] leaves the columns
    switch = duo.driver.find_element(By.XPATH, "//label[normalize-space()='Hide special tokens']")
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", switch)
    time.sleep(0.3)
    switch.click()
    wait_until(lambda: "renormalised" in graph(duo, "focus-heatmap", "gd.layout.title.text"), message="note")
    assert "[CLS]" not in graph(duo, "focus-heatmap", "gd.data[0].x")
