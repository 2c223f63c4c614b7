"""The head atlas's progress bar and Cancel in headless Chromium (issue 18 item 4), on a tiny random
grouped-query Llama whose metric pass is held head by head by a test hook: no timing decides the test."""

from __future__ import annotations

import pytest

from attention_explorer.callbacks import atlas
from attention_explorer.services.config import DEFAULT_MODEL_ID, Settings
from attention_explorer.services.store.memory import memory
from tests import tiny_models as tm
from tests.browser.test_browser import TIMEOUT, analyze, graph, open_tab, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def held(monkeypatch, hold_steps):
    monkeypatch.setattr(atlas, "SYNC_CELLS", 0)  # every metric pass runs in the background
    return hold_steps(atlas)


@pytest.fixture
def llama_app(dash_duo, tmp_path_factory, held):
    from attention_explorer.app import create_app

    llama = str(tm.build("llama", tmp_path_factory.mktemp("llama") / "llama"))
    app = create_app(Settings(models=(llama, DEFAULT_MODEL_ID), default_model=llama, cache_type="simple"))
    dash_duo.start_server(app)
    dash_duo.wait_for_element("#head-grid .imagelayer image", timeout=60)
    return dash_duo


def _visible(duo, selector: str) -> bool:
    return duo.driver.execute_script(
        f"const e = document.querySelector('{selector}'); return !!e && e.offsetParent !== null;")


def _running_job():
    jobs = [job for job in list(memory().jobs._jobs.values()) if job.state == "running"]
    return jobs[0] if len(jobs) == 1 else None


def test_progress_bar_and_cancel_then_measure_again(llama_app, held):
    duo = llama_app
    analyze(duo, " ".join(tm.long_text(120).split()[:120]))
    wait_until(lambda: "tokens" in duo.find_element("#status-area").text, message="the analysis")
    wait_until(lambda: (graph(duo, "head-grid", "gd.layout.meta.tile_names") or [""])[0] == "head 0 · kv 0",
               message="the grid's GQA titles")
    before = graph(duo, "atlas-map", "JSON.stringify(gd.data)")
    open_tab(duo, "Head atlas")
    wait_until(lambda: _visible(duo, "#atlas-progress"), message="the progress bar")
    wait_until(lambda: "0 of 8 heads" in duo.find_element("#atlas-progress-label").text, message="progress text")
    # the figure area says it is measuring (not "Type a sentence..."): the note is what the figure's centre shows
    assert _visible(duo, "#atlas-measuring") and "Measuring" in duo.find_element("#atlas-measuring").text
    assert duo.driver.execute_script(
        "const r = document.getElementById('atlas-map').getBoundingClientRect();"
        "const e = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);"
        "return !!e && !!e.closest('#atlas-measuring');")
    job = wait_until(_running_job, message="the job")
    assert held.steps == 1  # held before recording its first head
    duo.find_element("#atlas-cancel").click()
    wait_until(lambda: not _visible(duo, "#atlas-progress"), message="the progress bar put away")
    assert "cancelled" in duo.find_element("#atlas-progress-text").text
    assert not _visible(duo, "#atlas-measuring")  # the figure is seen again
    assert graph(duo, "atlas-map", "JSON.stringify(gd.data)") == before  # the page as it was
    held.go.set()  # the pass goes on to its next step, sees the Cancel and stops
    job.thread.join(60)
    assert job.state == "cancelled" and job.done == 4  # the first layer's heads, then it stopped
    # opening the tab again measures again; this time it runs to the end
    open_tab(duo, "Head grid")
    open_tab(duo, "Head atlas")
    wait_until(lambda: graph(duo, "atlas-map", "gd.layout.annotations && gd.layout.annotations.map(a => a.text)")
               == ["kv 0", "kv 1"], timeout=TIMEOUT * 2, message="the atlas with its kv groups")
    assert not _visible(duo, "#atlas-progress") and not _visible(duo, "#atlas-measuring")
    rows = duo.find_elements("#atlas-table tbody tr")
    assert len(rows) == 1 + 8  # the header row and one a head
    headers = duo.driver.execute_script(
        "return [...document.querySelectorAll('#atlas-table th .column-header-name')].map(e => e.textContent)")
    assert "sink" in headers and "induction" in headers


def _type_fast(duo, selector: str, text: str) -> None:
    """Puts a long text in a box as typing would (React sees an input event), without typing each key."""
    duo.driver.execute_script(
        "const el = document.querySelector(arguments[0]);"
        "Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set.call(el, arguments[1]);"
        "el.dispatchEvent(new Event('input', {bubbles: true}));", selector, text)


@pytest.fixture
def held_analysis(hold_steps):
    from attention_explorer.callbacks import analyze as analyze_module

    return hold_steps(analyze_module)


def test_a_long_analysis_shows_its_layers_and_can_be_cancelled(llama_app, held_analysis):
    duo = llama_app
    status_before = duo.find_element("#status-area").text
    grid_before = graph(duo, "head-grid", "JSON.stringify(gd.layout.meta.tokens)")
    text = " ".join(tm.long_text(1400).split()[:1400])
    _type_fast(duo, "#text-input", text)
    duo.find_element("#analyze-button").click()
    wait_until(lambda: _visible(duo, "#analyze-progress"), message="the analysis's progress bar")
    wait_until(lambda: "Running the model" in duo.find_element("#analyze-progress-label").text, message="its line")
    job = wait_until(_running_job, message="the job")
    duo.find_element("#analyze-cancel").click()
    wait_until(lambda: not _visible(duo, "#analyze-progress"), message="the progress bar put away")
    assert "cancelled" in duo.find_element("#analyze-progress-text").text
    assert duo.find_element("#status-area").text == status_before  # the page as it was
    assert graph(duo, "head-grid", "JSON.stringify(gd.layout.meta.tokens)") == grid_before
    held_analysis.go.set()
    job.thread.join(60)
    assert job.state == "cancelled" and job.done <= 1  # stopped before its second layer
    # Analyze again, not held: the progress runs to the end and the views show the long text
    duo.find_element("#analyze-button").click()
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.tokens.length") > 1024, timeout=TIMEOUT * 3,
               message="the long text's grid")
    assert not _visible(duo, "#analyze-progress")
    assert "tokens" in duo.find_element("#status-area").text
