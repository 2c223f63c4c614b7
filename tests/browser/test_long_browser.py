"""Issue 18 item 1 in headless Chromium: a 4,096-token text on a tiny random GQA Llama. The heatmap shows the
map pooled in blocks; a box zoom (a mouse drag, as a person does) fetches the exact tile with the tokens as
labels; the hover reports exact weights at both levels, checked against the map computed by hand."""

from __future__ import annotations

import os
import time
from urllib.parse import urlencode

import numpy as np
import pytest
from selenium.webdriver.common.actions.action_builder import ActionBuilder

from attention_explorer.services.config import Settings
from tests import tiny_models as tm
from tests.browser.test_browser import graph, grid_cell, open_tab, point_at, screen_point, wait_until
from tests.callbacks.test_long_views import by_hand

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("AE_LONG_SCREENSHOTS")  # a folder: save the two screenshots the README shows


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> str:
    # the folder's name is what the page calls the model: the screenshots say the weights are random
    return str(tm.build("llama", tmp_path_factory.mktemp("long-llama-browser") / "tiny-GQA-Llama-random-weights"))


def open_long(dash_duo, llama, tiny_models, **view) -> str:
    """The page on a 4,096-token text of the tiny random GQA Llama, with the view's URL values; its text."""
    from attention_explorer.app import create_app

    app = create_app(Settings(models=(llama, tiny_models["gpt2"]), cache_type="simple"))
    dash_duo.start_server(app)
    text = tm.long_text(3400)
    lang = os.environ.get("AE_LONG_LANG", "en")
    query = urlencode({"text": text, "model": llama, **view, "lang": lang})
    dash_duo.driver.set_window_size(1366, 1000)
    dash_duo.driver.get(dash_duo.server_url + "/?" + query)
    return text


@pytest.fixture
def long_page(dash_duo, llama, tiny_models):
    text = open_long(dash_duo, llama, tiny_models, view="heatmap", layer=1, head=3)
    wait_until(lambda: (graph(dash_duo, "head-heatmap", "gd.layout.meta.exact") or {}).get("block") == 16,
               timeout=240, message="the pooled heatmap of 4,096 tokens")
    return dash_duo, text, llama


def tooltip(duo) -> str:
    return wait_until(lambda: duo.find_element("#head-heatmap-tooltip").text, message="the heatmap's tooltip")


def drag(duo, graph_id: str, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A box zoom as a person makes it: press, move, release (data coordinates)."""
    duo.driver.execute_script(f"document.getElementById('{graph_id}').scrollIntoView({{block: 'center'}})")
    time.sleep(0.3)
    (x0, y0), (x1, y1) = screen_point(duo, graph_id, *start), screen_point(duo, graph_id, *end)
    actions = ActionBuilder(duo.driver)
    actions.pointer_action.move_to_location(x0, y0).pointer_down()
    for i in range(1, 6):
        actions.pointer_action.move_to_location(x0 + (x1 - x0) * i // 5, y0 + (y1 - y0) * i // 5)
    actions.pointer_action.pointer_up()
    actions.perform()


def test_box_zoom_fetches_the_exact_tile_and_hover_is_exact(long_page):
    duo, text, llama = long_page
    from attention_explorer.services import extract_attention

    result = extract_attention(text, model_id=llama)
    assert not result.dense and result.seq_len == 4096
    head = by_hand(result, 1, 3)
    title = graph(duo, "head-heatmap", "gd.layout.title.text")
    assert "each cell: max over 16 × 16 tokens" in title
    if SHOTS:
        duo.driver.save_screenshot(os.path.join(SHOTS, "long-pooled-heatmap.png"))
    # the pooled level: the block's exact max and its token range
    point_at(duo, "head-heatmap", 2007.5, 2999.5)  # the centre of the block of rows 2992-3007, columns 2000-2015
    shown = tooltip(duo)
    assert shown.startswith("tokens #2992–3007") and "→ #2000–2015" in shown
    assert float(shown.rsplit("max ", 1)[1]) == pytest.approx(head[2992:3008, 2000:2016].max(), rel=1e-3, abs=1e-6)
    # a box zoom (Plotly needs 20 px a side: ~140 tokens here): the exact tile, one cell a token
    drag(duo, "head-heatmap", (2860.0, 2860.0), (3100.0, 3100.0))
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.meta.exact.block") == 1, timeout=60,
               message="the exact tile after the zoom")
    wide = graph(duo, "head-heatmap", "gd.layout.meta.exact")
    assert 120 < wide["rows"] <= 256 and abs(wide["r0"] - 2860) < 20
    # a second zoom inside it: few enough tokens to name them
    drag(duo, "head-heatmap", (2980.0, 2980.0), (3020.0, 3020.0))
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.meta.exact.rows") <= 50, timeout=60,
               message="the labelled exact tile after the second zoom")
    exact = graph(duo, "head-heatmap", "gd.layout.meta.exact")
    r0, c0 = exact["r0"], exact["c0"]
    assert 2975 <= r0 <= 2985 and 2975 <= c0 <= 2985 and exact["rows"] <= 50
    ticks = graph(duo, "head-heatmap", "gd.layout.xaxis.ticktext")
    keys = graph(duo, "head-heatmap", "gd.layout.meta.keys")
    assert ticks[:3] == keys[c0:c0 + 3] and len(ticks) == exact["cols"]
    assert "exact tile" in graph(duo, "head-heatmap", "gd.layout.title.text")
    if SHOTS:
        duo.driver.save_screenshot(os.path.join(SHOTS, "long-exact-tile.png"))
    query, key = r0 + 20, c0 + 5
    point_at(duo, "head-heatmap", key, query)
    shown = wait_until(lambda: (lambda t: t if not t.startswith("tokens") else "")(tooltip(duo)), message="tile hover")
    queries = graph(duo, "head-heatmap", "gd.layout.meta.queries")
    assert shown.startswith(f"{queries[query]} → {keys[key]}: ")
    assert float(shown.rsplit(": ", 1)[1]) == pytest.approx(head[query, key], rel=1e-3, abs=1e-7)
    # a double click: the pooled picture again
    x, y = screen_point(duo, "head-heatmap", 3000, 3000)
    actions = ActionBuilder(duo.driver)
    actions.pointer_action.move_to_location(x, y).double_click()
    actions.perform()
    wait_until(lambda: graph(duo, "head-heatmap", "gd.layout.meta.exact.block") == 16, timeout=60,
               message="the pooled picture after a double click")
    # the head grid: every head pooled in 32 x 32 blocks; its hover gives the block's exact max
    open_tab(duo, "Head grid")
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.values && gd.layout.meta.layer") == 1, timeout=120,
               message="the pooled grid of layer 1")
    assert graph(duo, "head-grid", "gd.layout.meta.block") == 32
    if SHOTS:
        duo.driver.save_screenshot(os.path.join(SHOTS, "long-pooled-grid.png"))
    point_at(duo, "head-grid", *grid_cell(duo, tile=2, query=100, key=40))
    shown = wait_until(lambda: duo.find_element("#head-grid-tooltip").text, message="the grid's tooltip")
    # the tile's name says which key/value head it shares (grouped-query attention: 4 heads, 2 kv heads)
    assert shown.startswith("head 2 · kv 1 · tokens #3200–3231") and "→ #1280–1311" in shown
    assert float(shown.rsplit("max ", 1)[1]) == pytest.approx(by_hand(result, 1, 2)[3200:3232, 1280:1312].max(),
                                                               rel=1e-3, abs=1e-6)
    severe = [e for e in duo.get_logs() or [] if e.get("level") == "SEVERE"]
    assert severe == []
    np.testing.assert_equal(result.seq_len, 4096)


@pytest.fixture
def long_grid(dash_duo, llama, tiny_models):
    text = open_long(dash_duo, llama, tiny_models, view="grid", layer=1)
    wait_until(lambda: graph(dash_duo, "head-grid", "gd.layout.meta.values && gd.layout.meta.block") == 32,
               timeout=240, message="the pooled grid of 4,096 tokens")
    return dash_duo, text, llama


def test_box_zoom_in_a_grid_tile_shows_that_region_in_every_tile_down_to_named_tokens(long_grid):
    """Issue 18 item 1 in the head grid: box zooms dragged inside one tile (head 1) narrow every tile to the
    same region, exact, pooled finer while large, until single tokens are named beside the tiles; the hover
    then gives each tile's exact weight; a double click is the whole map again, on the grid."""
    duo, text, llama = long_grid
    from attention_explorer.services import extract_attention

    result = extract_attention(text, model_id=llama)
    meta = graph(duo, "head-grid", "gd.layout.meta")
    assert meta["zoom"]["zoomed"] is False
    blocks = []
    for _round in range(8):  # each box: the middle third of head 1's tile (about 60 px a side)
        meta = graph(duo, "head-grid", "gd.layout.meta")
        if meta["block"] == 1 and max(meta["cells_x"], meta["cells_y"]) <= 24:
            break
        left, top = meta["stride_x"], meta["band"]
        cx, cy = meta["cells_x"], meta["cells_y"]
        before = meta["zoom"]
        drag(duo, "head-grid", (left + cx / 3, top + cy / 3), (left + 2 * cx / 3, top + 2 * cy / 3))
        wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.zoom") not in (None, before), timeout=60,
                   message="the grid after a box zoom")
        blocks.append(graph(duo, "head-grid", "gd.layout.meta.block"))
    meta = graph(duo, "head-grid", "gd.layout.meta")
    zoom = meta["zoom"]
    assert zoom["zoomed"] and meta["block"] == 1 and max(meta["cells_x"], meta["cells_y"]) <= 24
    assert blocks[0] > 1 and blocks == sorted(blocks, reverse=True)  # pooled finer, then exact
    r0, r1, c0, c1 = zoom["r0"], zoom["r1"], zoom["c0"], zoom["c1"]
    assert 1000 < r0 < r1 <= 4096 and 1000 < c0 < c1  # the middle of the map, by thirds of thirds
    # the region's queries named beside the tiles, as the page draws them
    shown = duo.driver.execute_script(
        "return [...document.querySelectorAll('#head-grid .scatterlayer .trace:last-child .textpoint text')]"
        ".map(t => t.textContent)")
    tokens = graph(duo, "head-grid", "gd.layout.meta.tokens")
    assert shown[:r1 - r0] == tokens[r0:r1]
    assert "exact tile" in graph(duo, "head-grid", "gd.layout.title.text")
    # every tile the same region, exact: the hover of head 3's tile, a cell in its middle
    q, k = (r1 - r0) // 2, (c1 - c0) // 2
    point_at(duo, "head-grid", *grid_cell(duo, tile=3, query=q, key=k))
    tip = wait_until(lambda: duo.find_element("#head-grid-tooltip").text, message="the zoomed grid's tooltip")
    keys = graph(duo, "head-grid", "gd.layout.meta.key_tokens")
    assert tip.startswith(f"head 3 · kv 1 · {tokens[r0 + q]} → {keys[c0 + k]}: ")
    assert float(tip.rsplit(": ", 1)[1]) == pytest.approx(by_hand(result, 1, 3)[r0 + q, c0 + k], rel=1e-3, abs=1e-7)
    if SHOTS:
        duo.driver.save_screenshot(os.path.join(SHOTS, "long-zoomed-grid.png"))
    # a double click: the whole pooled map again, and still the grid (its first click opened no head)
    x, y = screen_point(duo, "head-grid", *grid_cell(duo, tile=1, query=q, key=k))
    actions = ActionBuilder(duo.driver)
    actions.pointer_action.move_to_location(x, y).double_click()
    actions.perform()
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.block") == 32, timeout=60,
               message="the pooled grid after a double click")
    time.sleep(1.0)  # longer than a click waits for a second one
    assert duo.driver.execute_script("return document.querySelector('#view-tabs .nav-link.active').textContent") \
        == "Head grid"
    severe = [e for e in duo.get_logs() or [] if e.get("level") == "SEVERE"]
    assert severe == []


def test_box_zoom_inside_one_overview_square_opens_that_heads_heatmap_zoomed(dash_duo, llama, tiny_models):
    """The overview at 4,096 tokens: a box inside layer 1 · head 2's square opens that head's heatmap, zoomed
    to that region, exact (one request: the zoom, layer, head and tab change together)."""
    from attention_explorer.app import create_app

    app = create_app(Settings(models=(llama, tiny_models["gpt2"]), cache_type="simple"))
    dash_duo.start_server(app)
    query = urlencode({"text": tm.long_text(3400), "model": llama, "view": "overview"})
    dash_duo.driver.set_window_size(1366, 1000)
    dash_duo.driver.get(dash_duo.server_url + "/?" + query)
    wait_until(lambda: graph(dash_duo, "model-overview", "gd.layout.meta.zoom && gd.layout.meta.block") == 128,
               timeout=240, message="the pooled overview of 4,096 tokens")
    meta = graph(dash_duo, "model-overview", "gd.layout.meta")
    left, top, cells = 2 * meta["stride"], 1 * meta["stride_y"], meta["cells_x"]
    # the middle half of the square: tokens about 1,024 to 3,072 (each cell is 128 tokens)
    drag(dash_duo, "model-overview", (left + cells / 4, top + cells / 4), (left + 3 * cells / 4, top + 3 * cells / 4))
    wait_until(lambda: (graph(dash_duo, "head-heatmap", "gd.layout.meta.exact") or {}).get("block", 16) < 16,
               timeout=90, message="the heatmap zoomed to the region boxed in the overview")
    exact = graph(dash_duo, "head-heatmap", "gd.layout.meta.exact")
    assert abs(exact["r0"] - 1024) <= 128 and abs(exact["c0"] - 1024) <= 128 and 4 <= exact["block"] <= 10
    assert dash_duo.driver.execute_script(
        "return document.querySelector('#view-tabs .nav-link.active').textContent") == "Head heatmap"
    assert "Layer 1 · Head 2" in graph(dash_duo, "head-heatmap", "gd.layout.title.text")


def test_box_zoom_on_one_compare_panel_zooms_both(dash_duo, llama, tiny_models):
    """Compare of two 4,096-token texts (they line up token by token): a box on A's panel draws A, B and
    A − B of that region, exact; a double click is the whole map again."""
    from attention_explorer.app import create_app

    app = create_app(Settings(models=(llama, tiny_models["gpt2"]), cache_type="simple"))
    dash_duo.start_server(app)
    query = urlencode({"text": tm.long_text(3400), "model": llama, "view": "compare", "layer": 1, "head": 2})
    dash_duo.driver.set_window_size(1366, 1400)
    dash_duo.driver.get(dash_duo.server_url + "/?" + query)
    wait_until(lambda: dash_duo.find_element("#compare-button"), timeout=240, message="the Compare tab")
    wait_until(lambda: "4096" in dash_duo.find_element("#status-area").text, timeout=240, message="text A analysed")
    # text B typed as a person pastes it (two texts this long do not fit in a page address)
    dash_duo.driver.execute_script("window.dash_clientside.set_props('compare-text', {value: arguments[0]})",
                                   tm.long_text(3400, seed=2))
    time.sleep(0.5)
    dash_duo.find_element("#compare-button").click()
    wait_until(lambda: (graph(dash_duo, "compare-heads", "gd.layout.meta.zoom") or {}).get("lined_up"),
               timeout=240, message="Compare's pooled pictures of two 4,096-token texts")
    assert graph(dash_duo, "compare-heads", "gd.layout.meta.zoom.a.block") == 32
    # far down the page (the status names both texts): there at once, not by a smooth scroll
    dash_duo.driver.execute_script(
        "document.getElementById('compare-heads').scrollIntoView({block: 'center', behavior: 'instant'})")
    drag(dash_duo, "compare-heads", (32.0, 32.0), (64.0, 64.0))  # cells of 32 tokens: about 1,024 to 2,048
    wait_until(lambda: graph(dash_duo, "compare-heads", "gd.layout.meta.zoom.zoomed"), timeout=90,
               message="Compare zoomed")
    zoom = graph(dash_duo, "compare-heads", "gd.layout.meta.zoom")
    assert zoom["a"] == zoom["b"] and abs(zoom["a"]["r0"] - 1024) <= 64 and abs(zoom["a"]["c0"] - 1024) <= 64
    assert zoom["a"]["block"] < 32 and graph(dash_duo, "compare-heads", "gd.data.length") == 3
    x, y = screen_point(dash_duo, "compare-heads", 10, 10)
    actions = ActionBuilder(dash_duo.driver)
    actions.pointer_action.move_to_location(x, y).double_click()
    actions.perform()
    wait_until(lambda: graph(dash_duo, "compare-heads", "gd.layout.meta.zoom.zoomed") is False, timeout=90,
               message="Compare whole again after a double click")
