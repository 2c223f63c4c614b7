"""Exact hover at a short text (issue 18 item 1, callbacks/hover.py and assets/21-hover.js): the grid, the
heatmap (value-weighted too: the share and the product) and the overview's tooltips give the weight the
model computed, to 4 digits, checked against the model's own eager attention (transformers, not the app)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from selenium.webdriver.common.by import By

from attention_explorer.services.config import DEFAULT_MODEL_ID, Settings
from tests.browser.test_browser import analyze, graph, grid_cell, open_tab, point_at, select_dropdown, wait_until

pytestmark = pytest.mark.browser
TEXT = "The cat sat on the mat because it was tired."  # the first page's text
EXACT = re.compile(r"^(0|[01]\.\d{4}|\d\.\d{3}e-\d+)$")  # assets/29-zoom.js AE.exactText, never "≈0.12"


@pytest.fixture
def page(dash_duo, tiny_models):
    from attention_explorer.app import create_app

    dash_duo.start_server(create_app(Settings(models=(DEFAULT_MODEL_ID, tiny_models["gpt2"]), cache_type="simple")))
    dash_duo.wait_for_element("#head-grid .heatmaplayer", timeout=60)
    wait_until(lambda: graph(dash_duo, "head-grid", "gd.layout.meta.tiles.length") == 12, message="default model grid")
    return dash_duo


def attention_of(text: str):
    """The default model's attention on ``text`` from transformers' eager attention, float64, and its tokens."""
    from transformers import AutoModel, AutoTokenizer

    from attention_explorer.services.model.loading import bundled_model_dir

    path = str(bundled_model_dir())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    encoded = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        out = model(**encoded, output_attentions=True)
    return np.stack([a[0].double().numpy() for a in out.attentions]), tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])


@pytest.fixture(scope="module")
def eager():
    return attention_of(TEXT)


def tooltip_of(duo, graph_id: str, starts: str) -> str:
    return wait_until(lambda: (lambda t: t if t.startswith(starts) else "")(
        duo.find_element(f"#{graph_id}-tooltip").text), message=f"{graph_id} tooltip starting {starts!r}")


def exact(text: str) -> float:
    assert EXACT.match(text), text
    return float(text)


def test_grid_heatmap_and_overview_hovers_give_the_exact_weight(page, eager):
    duo = page
    att, tokens = eager
    assert tokens[8] == "it" and tokens[2] == "cat"
    # the grid, layer 0 head 3: query "it" -> key "cat"
    point_at(duo, "head-grid", *grid_cell(duo, tile=3, query=8, key=2))
    shown = tooltip_of(duo, "head-grid", "head 3 · it → cat: ")
    assert exact(shown.rsplit(": ", 1)[1]) == pytest.approx(att[0, 3, 8, 2], abs=5.1e-5)
    # the heatmap, weighted by value norm: the share of the row, and the product α·‖f(x)‖
    select_dropdown(duo, "#head-select", value="Head 2")
    open_tab(duo, "Head heatmap")
    label = duo.driver.find_element(By.XPATH, "//label[normalize-space()='Weighted by value norm']")
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", label)
    label.click()
    wait_until(lambda: "value norm" in str(graph(duo, "head-heatmap", "gd.layout.title.text")), message="value mode")
    point_at(duo, "head-heatmap", 2, 8)
    shown = tooltip_of(duo, "head-heatmap", "it → cat: ")
    found = re.fullmatch(r"it → cat: (\S+) of the row \(α·‖f\(x\)‖ = (\S+)\)", shown)
    assert found, shown
    from attention_explorer.services import extract_attention

    norms = extract_attention(TEXT).value_norms[0, 2].astype(np.float64)
    product = att[0, 2] * norms[None, :]
    assert exact(found[1]) == pytest.approx(product[8, 2] / product[8].sum(), abs=5.1e-5)
    assert float(found[2]) == pytest.approx(product[8, 2], rel=2e-3)
    # the overview: layer 1 · head 4, its cell under the pointer (12 tokens: each cell a token)
    open_tab(duo, "Model overview")
    wait_until(lambda: graph(duo, "model-overview", "gd.layout.meta.kind") == "overview", message="overview")
    meta = graph(duo, "model-overview", "gd.layout.meta")
    assert meta["block"] == 1
    point_at(duo, "model-overview", 4 * meta["stride"] + 2, 1 * meta["stride_y"] + 8)
    shown = tooltip_of(duo, "model-overview", "layer 1 · head 4 · it → cat: ")
    value = shown.rsplit(": ", 1)[1].split(" ")[0]
    assert exact(value) == pytest.approx(att[1, 4, 8, 2], abs=5.1e-5)
    severe = [e for e in duo.get_logs() or [] if e.get("level") == "SEVERE"]
    assert severe == []


def test_a_pooled_grid_cell_gives_its_blocks_exact_max(page):
    """A text over 128 tokens: the grid's tiles are max-pooled; the hover gives the block's exact max."""
    duo = page
    text = "the cat sat on the mat because it was tired . " * 16
    att, tokens = attention_of(text)
    analyze(duo, text)
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.seq") == len(tokens), message="the long grid")
    meta = graph(duo, "head-grid", "gd.layout.meta")
    b = meta["block"]
    assert b > 1 and len(tokens) > 128
    point_at(duo, "head-grid", *grid_cell(duo, tile=5, query=40, key=3))
    shown = tooltip_of(duo, "head-grid", "head 5 · tokens ")
    found = re.fullmatch(r"head 5 · tokens (\d+)–(\d+) → (\d+)–(\d+): max (\S+)", shown)
    assert found, shown
    q0, q1, k0, k1 = (int(found[i]) for i in range(1, 5))
    assert (q0, q1, k0, k1) == (40 * b, 40 * b + b - 1, 3 * b, 3 * b + b - 1)
    assert exact(found[5]) == pytest.approx(att[0, 5, q0:q1 + 1, k0:k1 + 1].max(), abs=5.1e-5)


def test_a_pointer_move_while_a_new_picture_decodes_raises_nothing(page):
    """plotly.js 4.1.1 reads an image trace's decoded picture on hover before it exists ("Cannot read
    properties of undefined (reading 'el')", an error seen once in ~6 browser runs): assets/21-hover.js
    keeps such a move from plotly.js. A pointer move made right after the grid's picture changes raises no
    error, and once the picture is decoded a hover answers again."""
    duo = page
    duo.driver.execute_script("document.getElementById('head-grid').scrollIntoView({block: 'center'})")
    script = """
      const done = arguments[arguments.length - 1];
      const gd = document.querySelector('#head-grid .js-plotly-plot');
      const errors = [];
      window.addEventListener('error', function (e) { errors.push(String(e.message)); });
      const drag = gd.querySelector('.nsewdrag'), box = drag.getBoundingClientRect();
      const move = function (dx) {
        drag.dispatchEvent(new MouseEvent('mousemove', {bubbles: true, cancelable: true, view: window,
          clientX: box.left + box.width * 0.1 + dx, clientY: box.top + box.height * 0.2}));
      };
      let hovered = 0;
      gd.on('plotly_hover', function () { hovered += 1; });
      const data = gd.data.slice(), layout = Object.assign({}, gd.layout);
      window.Plotly.react(gd, [], layout).then(function () {
        window.Plotly.react(gd, data, layout);  /* a picture drawn anew: plotly.js decodes it (async) */
        const pending = gd._fullData[0]._hasSource && !gd._fullData[0]._canvas;
        move(0);
        setTimeout(function () { move(3); setTimeout(function () {
          done({pending: pending, errors: errors, hovered: hovered}); }, 300); }, 600);
      });
    """
    duo.driver.set_script_timeout(20)
    got = duo.driver.execute_async_script(script)
    assert got["pending"]  # the move came while the picture was still being decoded
    assert got["errors"] == []
    assert got["hovered"] >= 1  # decoded: a move hovers as usual
