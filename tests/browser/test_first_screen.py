"""A newcomer's first screen (issue 19) in headless Chromium: on a 1366 x 768 laptop (about 625 px
inside the browser window), the text box, Analyze, the layer slider and the head selector are all on
the first screen, in English and in Chinese, with a target box (an encoder-decoder model) or a
"continue" box (a decoder) shown too."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from attention_explorer.services.config import DEFAULT_MODEL_ID, Settings
from tests.browser.test_browser import wait_until

pytestmark = pytest.mark.browser
FIRST_SCREEN = ("#text-input", "#analyze-button", "#layer-slider", "#head-select")
SOURCE = "The cat sat on the mat because it was tired."


@pytest.fixture
def laptop(dash_duo, tiny_models, tiny_seq2seq_models):
    from attention_explorer.app import create_app

    app = create_app(Settings(models=(DEFAULT_MODEL_ID, tiny_seq2seq_models["bart"], tiny_models["gpt2"]),
                              cache_type="simple", max_new_tokens=6))
    dash_duo.start_server(app)
    dash_duo.driver.set_window_size(1366, 768)
    return dash_duo


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
