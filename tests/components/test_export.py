"""Figure exports and notebook figures (issue 11): file names, download options, standalone HTML,
the figure functions for notebooks, show_dashboard outside Jupyter, and the normalisation check."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import plotly.graph_objects as go
import pytest

from attention_explorer.components import export, notebook
from attention_explorer.components.figures import grid_geometry, grid_source, head_grid_figure, heatmap_figure
from attention_explorer.services import extract_attention
from attention_explorer.services.analyses.measures import NORMALISATION_TOLERANCE, normalisation_check
from attention_explorer.services.result import AttentionResult

SENTENCE = "The cat sat on the mat because it was tired."


def fake_result(seq: int = 6, causal: bool = False) -> AttentionResult:
    rng = np.random.default_rng(2)
    att = rng.random((2, 4, seq, seq)).astype(np.float32)
    if causal:
        att = np.tril(att)
    att = (att / att.sum(-1, keepdims=True)).astype(np.float16)
    tokens = ["[CLS]", "the", "cat", "<b>it</b>", "it", "[SEP]"][:seq]
    return AttentionResult(tokens=tokens, attentions=att, model_id="/home/someone/models/tiny-bert", truncated=False,
                           special_mask=np.array([t.startswith("[") for t in tokens]),
                           word_ids=[None, 0, 1, 2, 3, None][:seq], segment_ids=[None, 0, 0, 0, 0, None][:seq],
                           is_causal=causal, unknown_share=0.0, unknown_count=0, token_count_before_truncation=seq,
                           token_limit=512, text="the cat <b>it</b> it")


# ------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize("model,view,layer,head,ext,expected", [
    ("all-MiniLM-L6-v2", "heatmap", 3, 5, "svg", "all-MiniLM-L6-v2_layer3_head5_heatmap.svg"),
    ("sentence-transformers/all-MiniLM-L6-v2", "grid", 0, "", "png",
     "sentence-transformers_all-MiniLM-L6-v2_layer0_grid.png"),
    ("/home/alice/secret project/bert base", "arcs", 2, "all", "svg", "bert_base_layer2_allheads_arcs.svg"),
    ("C:\\models\\gpt2", "heatmap", 1, None, "png", "gpt2_layer1_mean_heatmap.png"),
    ("../../etc/passwd", "focus", None, "rollout", "csv", "passwd_rollout_focus.csv"),
    ("..", "overview", None, "", "html", "model_overview.html"),
    ("bert-base-chinese", "热图 <script>", 0, 1, "svg", "bert-base-chinese_layer0_head1_script.svg"),
])
def test_file_names_say_what_the_file_shows_and_are_safe(model, view, layer, head, ext, expected):
    name = export.export_filename(model, view, layer, head, ext)
    assert name == expected
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.[a-z]+", name)


def test_unknown_file_types_are_refused():
    with pytest.raises(ValueError):
        export.export_filename("m", "heatmap", 0, 0, "exe")
    with pytest.raises(ValueError):
        export.download_image_options("x.png", "pdf")


def test_download_options_name_the_file_without_its_extension():
    name = export.export_filename("all-MiniLM-L6-v2", "heatmap", 3, 5, "svg")
    assert export.download_image_options(name, "svg") == {
        "format": "svg", "filename": "all-MiniLM-L6-v2_layer3_head5_heatmap", "scale": 2}
    config = export.graph_config(export.file_stem("gpt2", "grid", 1, ""), "png", scale=3,
                                 modeBarButtonsToRemove=["lasso2d"])
    assert config["toImageButtonOptions"] == {"format": "png", "filename": "gpt2_layer1_grid", "scale": 3}
    assert config["displaylogo"] is False and config["showSendToCloud"] is False
    assert config["modeBarButtonsToRemove"] == ["lasso2d"]


# ------------------------------------------------------------------------------------------- standalone HTML


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(page: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def _newplot_figure(page: str) -> tuple[list, dict]:
    """The data and layout plotly.js is given in the page (parsed as JSON, as the browser would)."""
    call = page[page.index("Plotly.newPlot("):]
    decoder = json.JSONDecoder()
    start = call.index("[")
    data, end = decoder.raw_decode(call, start)
    layout, _ = decoder.raw_decode(call, call.index("{", end))
    return data, layout


@pytest.mark.parametrize("plotlyjs", ["cartesian", "full"])
def test_standalone_html_holds_plotly_js_and_the_figure_and_loads_nothing(plotlyjs):
    result = fake_result()
    labels = ["[CLS]", "the", "cat", "<b>it</b>", "it", "[SEP]"]
    figure = heatmap_figure(result.head(1, 2), labels, "Layer 1 · Head 2")
    page = export.figure_html(figure, metadata={"model": result.model_id, "text": "a </script><b>text</b>",
                                                "layer": 1, "head": 2},
                              filename="tiny-bert_layer1_head2_heatmap.png", plotlyjs=plotlyjs)
    assert page.startswith("<!DOCTYPE html>") and "<title>Layer 1 · Head 2</title>" in page
    assert re.search(r"plotly\.js (\(cartesian - minified\) )?v4\.", page)  # the bundle itself, inline
    assert len(page) > (1_000_000 if plotlyjs == "cartesian" else 4_000_000)
    for tag, attrs in _tags(page):
        assert not (tag == "script" and "src" in attrs), attrs  # every script inline
        assert tag not in ("link", "iframe", "img", "object", "embed"), tag
        assert not any(str(v).startswith(("http:", "https:", "//")) for v in attrs.values()), (tag, attrs)
    assert "a </script>" not in page and "&lt;/script&gt;&lt;b&gt;text&lt;/b&gt;" in page  # metadata escaped
    meta = re.search(r'<script type="application/json" id="attention-explorer-metadata">(.*?)</script>', page, re.S)
    info = json.loads(meta.group(1))
    assert info["model"] == result.model_id and info["layer"] == 1 and info["title"] == "Layer 1 · Head 2"
    data, layout = _newplot_figure(page)
    assert data[0]["type"] == "image" and data[0]["source"].startswith("data:image/png;base64,")
    assert layout["meta"]["kind"] == "heatmap"
    assert '"showSendToCloud": false' in page and '"filename": "tiny-bert_layer1_head2_heatmap"' in page
    assert data[0]["text"][3][2] == f"&lt;b&gt;it&lt;/b&gt; → cat: {data[0]['text'][3][2].rsplit(': ', 1)[1]}"


def _levels(source: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))))


def test_an_offline_heatmap_has_hover_text_with_the_weights():
    matrix = np.array([[0.25, 0.75], [1.0, 0.0]], np.float32)
    figure = export.offline_figure(heatmap_figure(matrix, ["a", "b"], "t"))
    trace = figure["data"][0]
    # the weight the picture holds (one of 255 levels: 0.25 -> 64/254), as the app's tooltip shows it
    assert trace["text"] == [["a → a: 0.252", "a → b: 0.748"], ["b → a: 1.000", "b → b: 0.000"]]
    assert trace["hovertemplate"] == "%{text}<extra></extra>" and trace["hoverinfo"] == "text"


def test_a_heatmap_drawn_from_a_grid_picture_is_cut_to_its_head():
    result = fake_result()
    maps = result.attentions[1]
    labels = [f"t{i}" for i in range(6)]
    geometry = grid_geometry(4, 6)
    grid = {"source": grid_source(maps), "meta": geometry, "head": 3, "key": "k", "titles": ["a", "b", "c", "d"]}
    figure = export.offline_figure(heatmap_figure(None, labels, "Layer 1 · Head 3", grid=grid))
    trace = figure["data"][0]
    assert (trace["x0"], trace["y0"]) == (0, 0) and "grid" not in figure["layout"]["meta"]
    alone = heatmap_figure(result.head(1, 3), labels, "Layer 1 · Head 3")["data"][0]["source"]
    np.testing.assert_array_equal(_levels(trace["source"]), _levels(alone))
    assert len(trace["text"]) == 6 and trace["text"][0][0].startswith("t0 → t0: ")


def test_an_offline_grid_drops_the_pictures_of_other_layers_and_names_each_tile():
    result = fake_result()
    figure = head_grid_figure(result.attentions[0], list(result.tokens), 0,
                              extra_meta={"sources": ["data:x"] * 2, "titles": ["a", "b"], "key": "k"})
    offline = export.offline_figure(figure)
    assert "sources" not in offline["layout"]["meta"] and "sources" in figure["layout"]["meta"]  # a copy
    text = np.array(offline["data"][0]["text"], dtype=object)
    assert text.shape == _levels(figure["data"][0]["source"]).shape
    filled = [t for t in text.ravel() if t]
    assert len(filled) == 4 * 6 * 6  # every cell of every tile, nothing in the gaps
    assert any(t.startswith("head 3 · &lt;b&gt;it&lt;/b&gt; → ") for t in filled)


def test_an_offline_page_in_chinese_says_nothing_of_clicks_and_names_cells_in_chinese():
    """The page's hover words follow the language; "click to isolate" (which needs the app) is gone."""
    from flask import Flask

    from attention_explorer.components.figures import arc_figure
    from attention_explorer.components.i18n import _

    result = fake_result()
    with Flask(__name__).test_request_context("/?lang=zh"):
        arcs = arc_figure(result.attentions[0, 1:2].astype(np.float32), list(result.tokens), min_weight=0.0)
        assert "点击" in arcs["data"][0]["hovertemplate"]  # the app's figure invites a click
        offline = export.offline_figure(arcs)
        assert all(t.get("hovertemplate", "<extra></extra>").endswith("<extra></extra>") for t in offline["data"])
        grid = export.offline_figure(head_grid_figure(result.attentions[0], list(result.tokens), 0,
                                                      tiles=[0, 1, 2, 3]))
        assert _("tokens {first}–{last}") != "tokens {first}–{last}"  # the catalog has it
    filled = [t for t in np.array(grid["data"][0]["text"], dtype=object).ravel() if t]
    assert filled and all("head" not in t for t in filled)


# ------------------------------------------------------------------------------------------- notebook figures


def test_notebook_figures_are_plotly_figures_with_the_expected_traces():
    result = fake_result()
    cases = {
        "grid": (notebook.head_grid(result, 1, selected=2), ["image", "scatter", "heatmap", "scatter"]),
        "grid rollout": (notebook.head_grid(result, 1, mode="rollout"), ["image", "scatter", "heatmap", "scatter"]),
        "heatmap": (notebook.head_heatmap(result, 1, 2, hide_special=True), ["image", "heatmap"]),
        "mean": (notebook.head_heatmap(result, 0, "mean", merge=True), ["image", "heatmap"]),
        "arcs": (notebook.arcs(result, 0, "all"), None),
        "arcs one": (notebook.arcs(result, 0, 1, token="it"), None),
        "overview": (notebook.overview(result), ["image", "heatmap", "scatter", "scatter"]),
        "atlas": (notebook.atlas(result, "local"), ["heatmap", "scatter"]),
        "focus": (notebook.token_focus(result, "it", mode="rollout"), ["heatmap"]),
    }
    for name, (figure, traces) in cases.items():
        assert isinstance(figure, go.Figure), name
        types = [t.type for t in figure.data]
        if traces is not None:
            assert types == traces, (name, types)
        json.loads(figure.to_json())  # serialisable as Jupyter's plotly mime type needs
    heatmap = cases["heatmap"][0]
    assert len(heatmap.layout.meta["keys"]) == 4  # [CLS] and [SEP] hidden
    assert heatmap.data[0].text[0][0].startswith("the → the: ")
    arcs = cases["arcs"][0]
    assert types_of(arcs)[0] == "scatter" and len(arcs.data) > 1
    assert "click to isolate" not in (arcs.data[0].hovertemplate or "")
    assert "“it”" in cases["focus"][0].layout.title.text
    assert cases["atlas"][0].data[0].zmax == 1.0


def types_of(figure) -> list[str]:
    return [t.type for t in figure.data]


def test_notebook_figures_check_their_arguments():
    result = fake_result()
    with pytest.raises(ValueError):
        notebook.head_grid(result, 0, mode="sideways")
    with pytest.raises(IndexError):
        notebook.head_heatmap(result, 2, 0)
    with pytest.raises(IndexError):
        notebook.head_heatmap(result, 0, 4)
    with pytest.raises(ValueError):
        notebook.token_focus(result, "dog")
    with pytest.raises(ValueError):
        notebook.atlas(result, "beauty")
    assert notebook.token_index(result, "IT") == 4 and notebook.token_index(result, 2) == 2
    hidden = notebook.token_focus(result, 0, hide_special=True)  # [CLS] hidden: a figure that says so
    assert "hidden" in hidden.layout.annotations[0].text


def test_inside_a_head_for_a_model_it_knows_and_one_it_cannot_load(settings, tiny_models):
    result = extract_attention(SENTENCE, tiny_models["bert"])
    figure = notebook.inside(result, layer=1, head=2, query="it")
    assert isinstance(figure, go.Figure) and types_of(figure)[:2] == ["bar", "bar"]
    weights = np.array(figure.data[1].y)
    np.testing.assert_allclose(weights, result.attentions[1, 2, result.tokens.index("it")].astype(float), atol=1e-3)
    assert "“it”" in figure.layout.title.text
    missing = notebook.inside(fake_result(), 0, 0, 1)  # a result from a file, its model not here
    assert types_of(missing) == [] and "not available" in missing.layout.annotations[0].text


def test_notebook_figures_on_a_causal_model(settings, tiny_models):
    result = extract_attention(SENTENCE, tiny_models["gpt2"])
    heatmap = notebook.head_heatmap(result, 0, 0)
    assert "causal" in heatmap.layout.title.text
    assert isinstance(notebook.arcs(result, 1, "all"), go.Figure)


def test_show_dashboard_outside_jupyter_says_what_to_do_instead():
    assert notebook.in_notebook() is False
    with pytest.raises(RuntimeError, match="attention-explorer"):
        notebook.show_dashboard()


def test_the_app_may_be_framed_only_by_the_pages_configured(settings):
    from attention_explorer import app as app_module
    from attention_explorer.services.config import Settings

    framed = app_module.create_app(settings.replace(frame_ancestors=notebook.NOTEBOOK_FRAME_ANCESTORS))
    response = framed.server.test_client().get("/")
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' http://localhost:* http://127.0.0.1:*" in policy
    assert "X-Frame-Options" not in response.headers
    closed = app_module.create_app(settings).server.test_client().get("/healthz")
    assert "frame-ancestors 'none'" in closed.headers["Content-Security-Policy"]
    assert closed.headers["X-Frame-Options"] == "DENY"
    for bad in ("*", "'none'", "https://a.org; script-src *", "javascript:alert(1) x"):
        with pytest.raises(ValueError):
            Settings(frame_ancestors=(bad,))


def test_frame_ancestors_from_the_environment(monkeypatch):
    from attention_explorer.services.config import Settings

    monkeypatch.setenv("ATTN_FRAME_ANCESTORS", "'self', https://hub.example.org")
    assert Settings.from_env().frame_ancestors == ("'self'", "https://hub.example.org")


# ------------------------------------------------------------------------------------------- normalisation


def test_normalisation_check_of_a_model_and_of_broken_attention(settings, tiny_models):
    result = extract_attention(SENTENCE, tiny_models["bert"])
    check = normalisation_check(result)
    rows = result.attentions.astype(np.float64).sum(-1)
    assert check.value == pytest.approx(float(np.abs(rows - 1).max()), abs=1e-12)  # independently
    assert check.ok and check.threshold == NORMALISATION_TOLERANCE == 1e-3
    assert check.rows == result.num_layers * result.num_heads * result.seq_len
    assert check.value_text == f"{check.value:.1e}" and "sum to 1" in check.message
    broken = result.attentions.astype(np.float32) * 0.9
    bad = normalisation_check(broken)
    assert not bad.ok and bad.value == pytest.approx(0.1, abs=1e-3) and "do not sum to 1" in bad.message
    broken[0, 0, 0, 0] = np.nan
    nan = normalisation_check(broken)
    assert not nan.ok and "NaN" in nan.message and nan.value_text == "not a number"
    edge = np.full((1, 1, 2, 2), 0.5 + 5e-4, np.float64)
    assert normalisation_check(edge).ok and not normalisation_check(edge, threshold=5e-4).ok
