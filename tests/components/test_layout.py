"""The page's layout (components/layout.py): what a newcomer sees first (issue 19)."""

from __future__ import annotations

import pytest
from flask import Flask

from attention_explorer.components import layout
from attention_explorer.services import config

APP = Flask(__name__)


@pytest.fixture
def hub_offered(settings, monkeypatch, tmp_path):
    """The default offer (the bundled model, bert-base-chinese, gpt2, SmolLM2-135M, Qwen2.5-0.5B) on a machine
    without their files."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    return config.configure(models=config.DEFAULT_MODELS)


@pytest.mark.parametrize("lang, mark, bundled", [("en", "(not downloaded)", "(bundled)"), ("zh", "（未下载）", "（内置）")])
def test_models_not_on_this_machine_are_marked_in_the_menu(hub_offered, lang, mark, bundled):
    with APP.test_request_context(f"/?lang={lang}"):
        labels = {o["value"]: o["label"] for o in layout.model_options(hub_offered.models, hub_offered.default_model)}
    hub = ("bert-base-chinese", "gpt2", "HuggingFaceTB/SmolLM2-135M", "Qwen/Qwen2.5-0.5B")
    assert labels == {"all-MiniLM-L6-v2": f"all-MiniLM-L6-v2 {bundled}".replace(" （", "（"),
                      **{model: f"{model} {mark}".replace(" （", "（") for model in hub}}


def test_a_model_on_this_machine_is_not_marked(settings, tiny_models):
    with APP.test_request_context("/"):
        labels = [o["label"] for o in layout.model_options(settings.models, settings.default_model)]
    assert not any("not downloaded" in label for label in labels)


def test_the_readme_and_the_page_say_what_a_heatmap_click_does():
    """Issue 19: a click on a row of the head heatmap opens Inside a head on that row's token (the same
    layer, head and query: where that row's weights come from; tests/browser/test_browser.py clicks it).
    The README's table and the heatmap's own help line say so."""
    from pathlib import Path

    from attention_explorer.components import ids

    root = Path(__file__).resolve().parents[2]
    row = next(line for line in (root / "README.md").read_text(encoding="utf-8").splitlines()
               if line.startswith("| Head heatmap |"))
    assert "Inside a head" in row and "follow that token in Token focus" not in row
    script = (root / "assets" / "24-navigate.js").read_text(encoding="utf-8")
    click = script[script.index("heatmapClick:"):script.index("pickToken:")]
    assert f'"{ids.TAB_INSIDE}"' in click
    assert "click a row" in layout.HELP[ids.TAB_HEATMAP] and "inside the head" in layout.HELP[ids.TAB_HEATMAP]


def test_local_folders_are_offered_by_their_name(settings, tiny_models):
    """Issue 19: the menu names a local folder by its folder's name (or the name ATTN_MODELS gives it),
    never by its full path on the server."""
    configured = config.configure(models=settings.models + (f"tiny english={tiny_models['bert']}",))
    with APP.test_request_context("/"):
        labels = [o["label"] for o in layout.model_options(configured.models, configured.default_model)]
    assert labels[1:] == ["tiny-bert", "tiny-gpt2", "tiny-bert-chinese", "tiny english"]
    assert not any("/" in label for label in labels)


def test_the_arc_views_camera_button_is_gone_and_its_head_chips_are_buttons(settings):
    """Issue 18: the arcs are drawn on the page's canvas, which plotly.js's camera button cannot see (its PNG
    would hold the tokens alone): the arc view has no camera (the Export menu draws the arcs, see
    assets/25-export.js); other graphs keep theirs. The head chips are buttons that say whether they are shown."""
    from attention_explorer.components import ids

    with APP.test_request_context("/"):
        page = layout.create_layout(settings)
        chips = layout.head_legend(["0", "1"], ["#1f77b4", "#ff7f0e"])

    def graphs(node):
        if getattr(node, "id", None) in (ids.ARC_VIEW, ids.HEAD_HEATMAP) and hasattr(node, "config"):
            yield node
        children = getattr(node, "children", None)
        for child in children if isinstance(children, (list, tuple)) else [children] if children is not None else []:
            yield from graphs(child)

    found = {g.id: g.config["modeBarButtonsToRemove"] for g in graphs(page)}
    assert "toImage" in found[ids.ARC_VIEW] and "toImage" not in found[ids.HEAD_HEATMAP]
    buttons = chips[1:]
    assert [b.type for b in buttons] == ["button", "button"]
    assert [getattr(b, "data-head") for b in buttons] == ["0", "1"]
    assert [getattr(b, "aria-pressed") for b in buttons] == ["true", "true"]
