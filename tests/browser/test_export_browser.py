"""Figure exports in headless Chromium (issue 11): the SVG plotly.js makes of our figures holds the
attention picture and the tokens as text, and a standalone HTML file draws offline, with hover text."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urlencode

import numpy as np
import pytest

from attention_explorer.components.export import figure_html, graph_config
from attention_explorer.components.figures import head_grid_figure, heatmap_figure
from tests.helpers import wait_for

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
LABELS = ["[CLS]", "the", "cat", "<b>sat</b>", "on", "mat", "[SEP]"]
XLINK = "{http://www.w3.org/1999/xlink}href"


def _attention(seq: int, heads: int = 4) -> np.ndarray:
    rng = np.random.default_rng(5)
    att = rng.random((heads, seq, seq)).astype(np.float32) ** 4
    return att / att.sum(-1, keepdims=True)


def _wait(predicate, timeout: float = 30.0, what: str = "condition"):
    return wait_for(predicate, what, within=timeout)


def _svg(driver, selector: str) -> ET.Element:
    """``Plotly.toImage(gd, {format: "svg"})`` of the graph at ``selector``, parsed as XML."""
    url = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const gd = document.querySelector(arguments[0]);"
        "Plotly.toImage(gd, {format: 'svg'}).then(done, e => done('error: ' + e));", selector)
    assert url.startswith("data:image/svg+xml,"), url[:200]
    root = ET.fromstring(unquote(url.split(",", 1)[1]))  # well-formed XML, or this raises
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def _pictures(root: ET.Element, cells: int) -> list[tuple[int, int]]:
    """The sizes of the embedded PNG pictures of at least ``cells`` pixels a side: the attention maps
    (the colour bar's helper, a 2 x 1 heatmap, is drawn as a tiny picture too)."""
    import base64
    import io

    from PIL import Image

    sizes = []
    for el in root.iter():
        if el.tag.endswith("}image"):
            href = el.get(XLINK) or el.get("href") or ""
            assert href.startswith("data:image/png;base64,"), href[:60]  # embedded, never a link
            size = Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1]))).size
            if min(size) >= cells:
                sizes.append(size)
    return sizes


def _text(root: ET.Element) -> str:
    return " ".join("".join(el.itertext()) for el in root.iter() if el.tag.endswith("}text"))


def test_svg_of_a_heatmap_and_a_grid_holds_the_pictures_and_the_tokens(dash_duo):
    from dash import Dash, dcc, html

    # The app's own plotly.js (assets/), not its browser code or styles: only the figures are under test.
    app = Dash(__name__, assets_folder=str(ROOT / "assets"), assets_ignore=r"clientside\.js|.*\.css")
    att = _attention(len(LABELS))
    app.layout = html.Div([
        dcc.Graph(id="heatmap", figure=heatmap_figure(att[1], LABELS, "Layer 0 · Head 1"),
                  config=graph_config("tiny_layer0_head1_heatmap.svg", "svg")),
        dcc.Graph(id="grid", figure=head_grid_figure(att, LABELS, 0, selected=1)),
    ])
    dash_duo.start_server(app)
    driver = dash_duo.driver
    for graph in ("heatmap", "grid"):
        _wait(lambda: driver.execute_script(
            f"const gd = document.querySelector('#{graph} .js-plotly-plot'); return !!(gd && gd._fullLayout);"),
            what=f"the {graph} drawn")
    heatmap = _svg(driver, "#heatmap .js-plotly-plot")
    assert len(_pictures(heatmap, len(LABELS))) == 1  # the attention map itself, as a picture in the SVG
    text = _text(heatmap)
    for token in LABELS:
        assert token in text, token  # tokens as vector text, "<b>" literal
    assert "Layer 0 · Head 1" in text and "attention weight" in text
    grid = _svg(driver, "#grid .js-plotly-plot")
    assert len(_pictures(grid, len(LABELS))) == 1 and "head 3" in _text(grid) and "cat" in _text(grid)
    options = driver.execute_script(
        "return document.querySelector('#heatmap .js-plotly-plot')._context.toImageButtonOptions")
    assert options == {"format": "svg", "filename": "tiny_layer0_head1_heatmap", "scale": 2}


def test_a_standalone_html_file_draws_offline_with_hover_text(dash_duo, tmp_path):
    att = _attention(len(LABELS))
    page = tmp_path / "tiny_layer0_head1_heatmap.html"
    page.write_text(figure_html(heatmap_figure(att[1], LABELS, "Layer 0 · Head 1"),
                                metadata={"model": "tiny", "text": "the cat sat on the mat"}), encoding="utf-8")
    driver = dash_duo.driver
    driver.get(page.as_uri())
    _wait(lambda: driver.execute_script(
        "const gd = document.querySelector('.plotly-graph-div'); return !!(gd && gd._fullLayout && "
        "gd.querySelector('.imagelayer image'));"), what="the standalone figure drawn")
    loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not [name for name in loaded if name.startswith(("http:", "https:"))], loaded
    assert driver.title == "Layer 0 · Head 1"
    hover = driver.execute_script(
        "const gd = document.querySelector('.plotly-graph-div');"
        "Plotly.Fx.hover(gd, {xval: 2, yval: 3});"
        "const label = document.querySelector('.hoverlayer .hovertext');"
        "return label ? label.textContent : null;")
    expected = f"<b>sat</b> → cat: {round(float(att[1, 3, 2]) * 254) / 254:.3f}"
    assert hover == expected
    svg = _svg(driver, ".plotly-graph-div")
    assert len(_pictures(svg, len(LABELS))) == 1 and "mat" in _text(svg)


def test_the_export_menu_downloads_named_files_of_the_open_view(dash_duo, tmp_path):
    """The page's Export menu: SVG and PNG drawn by plotly.js, CSV, HTML and JSON from the server, each
    named after what it shows; the SVG holds the tokens, the CSV equals the stored attention read
    independently (csv module), the JSON loads back into the same arrays."""
    import base64
    import csv
    import io
    import json

    from selenium.webdriver.common.by import By

    from attention_explorer.app import create_app
    from attention_explorer.components.export import export_filename
    from attention_explorer.services.config import DEFAULT_MODEL_ID, Settings
    from attention_explorer.services.extraction import analyse
    from attention_explorer.services.result import AttentionResult

    app = create_app(Settings(models=(DEFAULT_MODEL_ID,), cache_type="simple"))
    dash_duo.start_server(app)
    driver = dash_duo.driver
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.get(dash_duo.server_url + "/?view=heatmap&layer=3&head=5")
    _wait(lambda: "Layer 3 · Head 5" in str(driver.execute_script(
        "const gd = document.querySelector('#head-heatmap .js-plotly-plot');"
        "return gd && gd.layout && gd.layout.title && gd.layout.title.text")),  # (a figure half drawn has no title)
        what="the heatmap of layer 3, head 5")

    def download(item: str, ext: str) -> Path:
        driver.find_element(By.CSS_SELECTOR, "#export-menu .dropdown-toggle").click()
        _wait(lambda: driver.find_element(By.ID, item).is_displayed(), what="the menu open")
        driver.find_element(By.ID, item).click()
        name = export_filename(DEFAULT_MODEL_ID, "analysis" if ext == "json" else "heatmap",
                               None if ext == "json" else 3, "" if ext == "json" else 5, ext)
        path = downloads / name
        _wait(lambda: path.exists() and path.stat().st_size > 0 and not list(downloads.glob("*.crdownload")),
              what=f"{name} downloaded")
        return path

    svg = ET.parse(download("export-svg", "svg")).getroot()
    assert svg.tag.endswith("svg") and "because" in _text(svg) and "Layer 3 · Head 5" in _text(svg)
    assert download("export-png", "png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _key, result = analyse("The cat sat on the mat because it was tired.", DEFAULT_MODEL_ID)
    rows = list(csv.DictReader(io.StringIO(download("export-csv", "csv").read_text(encoding="utf-8"))))
    seq = result.seq_len
    assert len(rows) == seq * seq and {r["layer"] for r in rows} == {"3"} and {r["head"] for r in rows} == {"5"}
    for r in rows:
        assert float(r["weight"]) == pytest.approx(float(result.attentions[3, 5, int(r["query_index"]),
                                                                           int(r["key_index"])]), abs=1e-6)
    assert rows[8]["query_token"] == "[CLS]" and rows[seq * 8]["query_token"] == "it"
    page = download("export-html", "html").read_text(encoding="utf-8")
    assert "<script src" not in page and "Layer 3 · Head 5" in page
    whole = json.loads(download("export-json", "json").read_text(encoding="utf-8"))
    text = json.dumps(whole)
    assert result.tokens[8] in text
    encoded = whole["result"]["queries"]  # a recorded result: its queries and keys, the maps computed from them
    assert encoded["shape"] == list(result.queries.shape)
    stored = np.frombuffer(base64.b64decode(encoded["data"]), dtype="<f4").reshape(encoded["shape"])
    np.testing.assert_array_equal(stored, result.queries)
    np.testing.assert_array_equal(AttentionResult.from_json(json.dumps(whole)).attentions, result.attentions)
    assert driver.find_element(By.ID, "export-status").text == ""
    # Compare: the picture is the comparison (A, B, A − B), named as the server names its CSV
    trophy = "The trophy doesn't fit into the suitcase because it is too big."
    driver.get(dash_duo.server_url + "/?" + urlencode({"text": trophy, "compare": trophy.replace("big", "small"),
                                                       "view": "compare", "layer": 1, "head": 2}))
    _wait(lambda: driver.execute_script(
        "const gd = document.querySelector('#compare-heads .js-plotly-plot'); return gd && gd.data.length === 3"),
        what="the comparison drawn")

    def download_compare(item: str, ext: str) -> Path:
        driver.find_element(By.CSS_SELECTOR, "#export-menu .dropdown-toggle").click()
        _wait(lambda: driver.find_element(By.ID, item).is_displayed(), what="the menu open")
        driver.find_element(By.ID, item).click()
        path = downloads / export_filename(DEFAULT_MODEL_ID, "compare", 1, 2, ext)
        _wait(lambda: path.exists() and path.stat().st_size > 0 and not list(downloads.glob("*.crdownload")),
              what=f"{path.name} downloaded")
        return path

    assert "A − B" in _text(ET.parse(download_compare("export-svg", "svg")).getroot())
    compared = list(csv.DictReader(io.StringIO(download_compare("export-csv", "csv").read_text(encoding="utf-8"))))
    assert compared and set(compared[0]) >= {"weight_a", "weight_b", "a_minus_b"}


def _walk(value):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)
