"""Issue 13 in headless Chromium: an encoder-decoder model shows its three kinds of attention (the
cross-attention heatmap rectangular, target on y and source on x), changing kind costs one request and
a layer change on a cached result none; a decoder-only continuation opens Generation with a step slider."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from selenium.webdriver.common.by import By

from attention_explorer.services.config import DEFAULT_MODEL_ID
from tests.browser.test_browser import graph, now, open_tab, requests_since, wait_until

pytestmark = pytest.mark.browser
SOURCE = "The cat sat on the mat because it was tired."
TARGET = "Le chat était assis sur le tapis."


@pytest.fixture
def seq2seq_app(seq2seq_page):
    seq2seq_page.wait_for_element("#head-grid .heatmaplayer", timeout=60)
    return seq2seq_page


def visit(duo, **params) -> None:
    duo.driver.get(duo.server_url + "/?" + urlencode(params))


def choose(duo, label: str) -> None:
    element = duo.driver.find_element(By.XPATH, f"//label[normalize-space()='{label}']")
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element)
    time.sleep(0.2)
    element.click()


def test_an_encoder_decoder_model_shows_three_kinds_and_a_rectangular_cross_heatmap(seq2seq_app,
                                                                                   tiny_seq2seq_models):
    duo = seq2seq_app
    visit(duo, text=SOURCE, target=TARGET, model=tiny_seq2seq_models["bart"], view="heatmap", head="1")
    wait_until(lambda: duo.find_element("#attention-kind-wrap").is_displayed(), message="the kind selector")
    assert duo.find_element("#target-wrap").is_displayed()
    assert duo.find_element("#target-input").get_attribute("value") == TARGET
    labels = [e.text for e in duo.driver.find_elements(By.CSS_SELECTOR, "#attention-kind label")]
    assert labels == ["Encoder (source)", "Decoder (target)", "Cross (target → source)"]
    wait_until(lambda: "Head 1" in str(graph(duo, "head-heatmap", "gd.layout.title.text")), message="heatmap")
    encoder = graph(duo, "head-heatmap", "[gd.layout.meta.queries.length, gd.layout.meta.keys.length]")
    assert encoder[0] == encoder[1]
    time.sleep(1.0)
    mark = now(duo)
    choose(duo, "Cross (target → source)")
    wait_until(lambda: "cross-attention" in str(graph(duo, "head-heatmap", "gd.layout.title.text")),
               message="cross-attention drawn")
    time.sleep(1.0)
    assert requests_since(duo, mark) == 1  # a kind change: one request
    rows, cols = graph(duo, "head-heatmap", "[gd.layout.meta.queries.length, gd.layout.meta.keys.length]")
    assert cols == encoder[0] and rows != cols  # source tokens on x, target tokens on y
    # drawn rectangular: the plot's width over its height is keys over queries (square cells)
    ratio = graph(duo, "head-heatmap", "gd._fullLayout.xaxis._length / gd._fullLayout.yaxis._length")
    assert ratio == pytest.approx(cols / rows, rel=0.05)
    assert graph(duo, "head-heatmap", "gd.layout.meta.queries[1]").strip() != ""  # target tokens named
    # the grid in cross kind: a layer change is drawn in the browser from the pictures it holds
    open_tab(duo, "Head grid")
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.attention_kind") == "cross", message="cross grid")
    time.sleep(1.0)
    mark = now(duo)
    duo.find_element("#layer-slider [role='slider']").send_keys("\ue014")  # arrow right
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.layer") == 1, message="layer 1")
    time.sleep(1.0)
    assert requests_since(duo, mark) == 0
    # the decoder's own attention: square and causal
    choose(duo, "Decoder (target)")
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.attention_kind") == "decoder", message="decoder grid")
    assert graph(duo, "head-grid", "gd.layout.meta.cells_x") == graph(duo, "head-grid", "gd.layout.meta.cells_y") == rows
    # arcs of cross-attention: two rows, target above, source below
    choose(duo, "Cross (target → source)")
    open_tab(duo, "Arcs")
    wait_until(lambda: graph(duo, "arc-view", "gd.layout.meta.cross") is True, message="cross arcs")
    assert graph(duo, "arc-view", "gd.data[0].text.length") == rows
    assert graph(duo, "arc-view", "gd.data[1].text.length") == cols
    assert "kind=cross" in duo.driver.current_url and "target=" in duo.driver.current_url
    severe = [e for e in duo.get_logs() or [] if e.get("level") == "SEVERE"]
    assert severe == []


def test_a_continuation_opens_generation_with_a_step_slider(seq2seq_app, tiny_models):
    duo = seq2seq_app
    visit(duo, text="The cat sat on the", model=tiny_models["gpt2"], **{"continue": 4})
    wait_until(lambda: duo.find_element("#generation-heads .js-plotly-plot").is_displayed(), message="generation")
    assert duo.find_element("#continue-wrap").is_displayed()
    assert duo.find_element("#tab-generation-tab").is_displayed()
    wait_until(lambda: "Step 1 of" in str(graph(duo, "generation-heads", "gd.layout.title.text")), message="step 1")
    time.sleep(1.0)
    mark = now(duo)
    handle = duo.find_element("#generation-step [role='slider']")
    handle.send_keys("\ue014")
    wait_until(lambda: "Step 2 of" in str(graph(duo, "generation-heads", "gd.layout.title.text")), message="step 2")
    time.sleep(1.0)
    assert requests_since(duo, mark) == 1
    assert "step=2" in duo.driver.current_url and "continue=4" in duo.driver.current_url
    # another model hides the tab again
    visit(duo, text=SOURCE, model=DEFAULT_MODEL_ID)
    wait_until(lambda: not duo.find_element("#tab-generation-tab").is_displayed(), message="generation tab hidden")


def slider(duo) -> tuple[int, int]:
    thumb = duo.find_element("#layer-slider [role='slider']")
    return int(thumb.get_attribute("aria-valuemax")), int(thumb.get_attribute("aria-valuenow"))


def head_choices(duo) -> int:
    """The heads the head selector offers: its options (less "All heads" and "Mean of heads"), read from
    the props React gave the dropdown."""
    return duo.driver.execute_script(
        "const el = document.getElementById('head-select');"
        "const key = Object.keys(el).find(k => k.startsWith('__reactFiber'));"
        "let f = el[key]; while (f && !(f.memoizedProps && f.memoizedProps.options)) { f = f.return; }"
        "return f ? f.memoizedProps.options.length - 2 : null;")


def test_the_layer_slider_follows_the_depth_of_each_kind(seq2seq_app, tiny_seq2seq_models):
    """Issue 19: the tiny BART's decoder has 3 layers of 2 heads, its encoder 2 of 4. On the decoder's
    last layer, choosing the encoder moves the slider to its last layer (1) and offers 4 heads; back on
    the decoder, 3 layers and 2 heads again. Each change draws once (one request)."""
    duo = seq2seq_app
    visit(duo, text=SOURCE, target=TARGET, model=tiny_seq2seq_models["bart"], kind="decoder", layer=2, head="1",
          view="heatmap")
    wait_until(lambda: "decoder" in str(graph(duo, "head-heatmap", "gd.layout.title.text")), message="decoder heatmap")
    assert slider(duo) == (2, 2) and head_choices(duo) == 2
    time.sleep(1.0)
    mark = now(duo)
    choose(duo, "Encoder (source)")
    wait_until(lambda: slider(duo) == (1, 1), message="the slider fitted to the encoder's 2 layers")
    wait_until(lambda: "Layer 1 · Head 1" in str(graph(duo, "head-heatmap", "gd.layout.title.text"))
               and "encoder" in str(graph(duo, "head-heatmap", "gd.layout.title.text")), message="encoder layer 1")
    assert head_choices(duo) == 4
    time.sleep(1.0)
    assert requests_since(duo, mark) == 1
    assert duo.find_element("#view-notice").text == ""  # no "there is no layer 2" notice
    choose(duo, "Decoder (target)")
    wait_until(lambda: slider(duo) == (2, 1) and head_choices(duo) == 2, message="3 layers and 2 heads again")
