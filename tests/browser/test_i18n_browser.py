"""The page in 简体中文 in headless Chromium (dash.testing): ``/?lang=zh`` shows Chinese everywhere a person
looks, and the header's switch changes the language and keeps the analysis and the view."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from attention_explorer.components import i18n
from attention_explorer.components.layout import EXAMPLES, HELP
from attention_explorer.services.config import DEFAULT_MODEL_ID
from tests.browser.test_browser import analyze, graph, open_tab, wait_until
from tests.components.test_i18n import CJK, KEPT_PHRASES, english_words, text_words

pytestmark = pytest.mark.browser
TABS = ("Head grid", "Head heatmap", "Arcs", "Model overview", "Head atlas", "Token focus", "Inside a head", "Compare",
        "Generation")  # Generation is hidden until a model continues a text, but its label is in the page
SENTENCE = "The dog ran in the park."


def zh(message: str) -> str:
    return i18n.catalog("zh").gettext(message)


def html_lang(duo) -> str:
    return duo.driver.execute_script("return document.documentElement.lang")


def open_page(duo, query: str) -> None:
    duo.driver.get(duo.server_url + "/" + query)
    language = "zh-Hans" if "lang=zh" in query else "en"
    wait_until(lambda: html_lang(duo) == language, message=f"<html lang={language}>")
    duo.wait_for_element("#head-grid .heatmaplayer", timeout=60)


@pytest.fixture
def zh_duo(chinese_page):
    open_page(chinese_page, "?lang=zh")
    return chinese_page


def tab_labels(duo) -> list[str]:
    return duo.driver.execute_script("return [...document.querySelectorAll('.nav-link')].map(a => a.textContent.trim())")


def active_tab(duo) -> str:
    return duo.driver.execute_script("return document.querySelector('.nav-link.active').textContent.trim()")


def visible_words(duo) -> str:
    """What a person can read on the page: its rendered text, the figures' SVG text, placeholders and
    the figures' toolbar tips."""
    return "\n".join(duo.driver.execute_script(
        "return [document.body.innerText,"
        " ...[...document.querySelectorAll('svg text')].map(t => t.textContent),"
        " ...[...document.querySelectorAll('[placeholder]')].map(e => e.getAttribute('placeholder')),"
        " ...[...document.querySelectorAll('.modebar-btn')].map(b => b.getAttribute('data-title') || '')]"))


def layer_value(duo) -> str:
    return duo.find_element("#layer-slider [role='slider']").get_attribute("aria-valuenow")


def test_the_page_speaks_chinese(zh_duo):
    duo = zh_duo
    assert html_lang(duo) == "zh-Hans"
    assert tab_labels(duo) == [zh(t) for t in TABS] and all(CJK.search(t) for t in tab_labels(duo))
    help_line = duo.find_element(".tab-pane.active .ae-help")
    assert help_line.is_displayed() and help_line.text == zh(HELP["tab-grid"])
    title = zh("Layer {layer} · all {count} heads").format(layer=0, count=12)
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.title.text") == title, message="Chinese grid title")
    assert title in duo.find_element("#head-grid .gtitle").text
    examples = [b.text for b in duo.find_elements("button[id*='example-button']")]
    assert examples == [zh(e["label"]) for e in EXAMPLES] and "中文：“它”指什么？" in examples
    assert duo.find_element("#analyze-button").text == zh("Analyze")
    assert "注意力" in duo.find_element(".ae-title").text
    wait_until(lambda: duo.driver.title == zh("Attention Explorer") != "Attention Explorer", message="the tab's title")
    words = text_words(*(e["text"] + " " + e["pair"] for e in EXAMPLES))
    left = english_words(visible_words(duo), (DEFAULT_MODEL_ID,) + KEPT_PHRASES, words)
    assert not left, f"English left on the page: {left}"


def test_the_empty_text_error_is_chinese(zh_duo):
    duo = zh_duo
    analyze(duo, "")
    expected = zh("The {what} is empty. Type a sentence to see what the model attends to.").format(what=zh("text"))
    wait_until(lambda: expected in duo.find_element("#status-area").text, message="the Chinese error")
    alert = duo.find_element("#status-area .alert-danger").text
    assert zh("Check the text") in alert and CJK.search(alert)
    assert not english_words(alert), alert


def test_switching_language_keeps_the_analysis_and_the_view(zh_duo):
    duo = zh_duo
    analyze(duo, SENTENCE)
    wait_until(lambda: "dog" in (graph(duo, "head-grid", "gd.layout.meta.tokens") or []), message="analysed")
    thumb = duo.find_element("#layer-slider [role='slider']")
    thumb.click()
    for _ in range(2):
        thumb.send_keys(Keys.ARROW_RIGHT)
    wait_until(lambda: layer_value(duo) == "2", message="layer 2")
    open_tab(duo, zh("Head heatmap"))
    zh_title = zh("Layer {layer} · Mean of heads").format(layer=2)
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") == zh_title, message="the heatmap of layer 2")
    wait_until(lambda: "view=heatmap" in duo.driver.current_url and "layer=2" in duo.driver.current_url,
               message="the state in the URL")

    for code, language, title in (("en", "en", "Layer 2 · Mean of heads"), ("zh", "zh-Hans", zh_title)):
        duo.driver.find_element(By.CSS_SELECTOR, f".ae-languages button[lang='{'zh-Hans' if code == 'zh' else 'en'}']").click()
        wait_until(lambda: html_lang(duo) == language and f"lang={code}" in duo.driver.current_url,
                   message=f"the page in {code}")
        wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.title.text") == title, message=f"the heatmap in {code}")
        assert active_tab(duo) == (zh("Head heatmap") if code == "zh" else "Head heatmap")
        assert duo.find_element("#text-input").get_attribute("value") == SENTENCE
        assert layer_value(duo) == "2"
        wait_until(lambda: duo.driver.title == (zh("Attention Explorer") if code == "zh" else "Attention Explorer"),
                   message=f"the tab's title in {code}")
        assert graph(duo, "head-heatmap", "gd.layout.meta.keys")[:3] == ["[CLS]", "the", "dog"]
        labels = tab_labels(duo)
        assert all(CJK.search(t) for t in labels) if code == "zh" else labels == list(TABS)
        if code == "en":  # the page check above is not blind: it finds the English interface
            assert {"Analyze", "Layer", "Examples"} <= set(english_words(visible_words(duo)))
