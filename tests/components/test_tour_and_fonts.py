"""The guided tour (components/tour.py, assets/11-tour.js), Chinese that renders with a real font
(assets/05-fonts.css, the Makefile's CJK font) and ``make models`` (scripts/download_models.py), issue 12.

The browser tests use the page ``create_app`` builds, its header's tour offered to their automated browser
(``tour_components(offer_under_automation=True)``; mounting a second tour beside the page's own gave every
tour element two ids, and a callback during the tour then stopped the page).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest

from attention_explorer.services.config import DEFAULT_MODEL_ID, DEFAULT_MODELS, Settings

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "download_models.py"
TIMEOUT = 30
CJK_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC")


# ---------------------------------------------------------------- the tour's steps, in Python

def _tree(component):
    """Every component of a Dash layout tree."""
    yield component
    children = getattr(component, "children", None)
    if children is None:
        return
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if hasattr(child, "to_plotly_json"):
            yield from _tree(child)


def test_the_steps_are_few_short_and_point_at_real_parts_of_the_page(settings):
    from dash import dcc

    from attention_explorer.components.layout import create_layout
    from attention_explorer.components.tour import TOUR_STEPS

    assert 5 <= len(TOUR_STEPS) <= 8
    page = list(_tree(create_layout(settings)))
    ids = {c.id for c in page if isinstance(getattr(c, "id", None), str)}
    classes = {name for c in page for attr in ("className", "class_name")
               for name in (getattr(c, attr, None) or "").split()}
    tab_labels = {getattr(c, "label", None) for c in page if type(c).__name__ == "Tab"}
    for step in TOUR_STEPS:
        assert step.title and step.text and len(step.text) < 320, step
        kind, name = step.selector[0], step.selector[1:]
        assert kind in "#." and name.replace("-", "").isalnum(), step.selector  # one id or one class
        assert name in (ids if kind == "#" else classes), f"{step.selector} is not on the page"
        if step.tab:
            assert step.tab in tab_labels, f"no tab labelled {step.tab!r}"
    covered = {step.selector for step in TOUR_STEPS}
    assert {"#text-input", "#layer-slider", "#head-grid"} <= covered
    assert {"Arcs", "Token focus"} <= {step.tab for step in TOUR_STEPS}
    assert any(isinstance(c, dcc.Slider) and c.id == "layer-slider" for c in page)


def test_the_tour_is_translated_when_the_page_is_made(monkeypatch):
    """Every visible string of the tour goes through ``_`` when ``tour_components()`` runs (not at import):
    a catalog that marks what it translates shows on every title, text, button and label."""
    from attention_explorer.components import i18n
    from attention_explorer.components.tour import TOUR_BUTTON, TOUR_DATA, TOUR_OFFER, TOUR_STEPS, tour_components

    class Marking:
        def gettext(self, message):
            return "«" + message + "»"

    english = tour_components()
    monkeypatch.setattr(i18n, "catalog", lambda language: Marking())
    marked = tour_components()
    by_id = {c.id: c for part in marked for c in _tree(part) if getattr(c, "id", None)}
    assert by_id[TOUR_BUTTON].children == "«Tour»"
    data = by_id[TOUR_DATA].to_plotly_json()["props"]
    steps, labels = json.loads(data["data-steps"]), json.loads(data["data-labels"])
    assert [s["title"] for s in steps] == ["«" + s.title + "»" for s in TOUR_STEPS]
    assert all(s["text"].startswith("«") and s["text"].endswith("»") for s in steps)
    assert [s.get("tab") for s in steps] == [("«" + s.tab + "»") if s.tab else None for s in TOUR_STEPS]
    assert labels and all(v.startswith("«") for v in labels.values())
    assert set(labels) >= {"next", "previous", "done", "close", "progress"}
    offer_texts = [c.children for c in _tree(by_id[TOUR_OFFER]) if isinstance(c.children, str)]
    assert len(offer_texts) == 3 and all(t.startswith("«") for t in offer_texts)
    assert by_id[TOUR_OFFER].to_plotly_json()["props"]["aria-label"].startswith("«")
    # and back in English once the catalog is the real one again
    monkeypatch.undo()
    assert tour_components()[0].children == english[0].children == "Tour"


def test_the_progress_label_keeps_its_placeholders():
    from attention_explorer.components.tour import tour_labels

    assert "{current}" in tour_labels()["progress"] and "{total}" in tour_labels()["progress"]


def test_driver_js_is_vendored_with_its_licence_and_loads_before_the_tour():
    assets = sorted(p.name for p in (ROOT / "assets").iterdir())
    js = [name for name in assets if name.endswith(".js")]
    assert js.index("10-driver.js.iife.js") < js.index("11-tour.js")
    css = [name for name in assets if name.endswith(".css")]
    assert css.index("00-bootstrap-flatly.min.css") < css.index("05-fonts.css") < css.index("10-driver.css")
    licence = (ROOT / "assets" / "DRIVER-LICENSE.txt").read_text()
    assert "MIT License" in licence and "Kamran Ahmed" in licence
    for name in ("10-driver.js.iife.js", "10-driver.css"):  # unchanged since vendored
        digest = hashlib.sha256((ROOT / "assets" / name).read_bytes()).hexdigest()
        assert f"-> {name}\n    sha256 {digest}" in licence, name
    script = (ROOT / "assets" / "10-driver.js.iife.js").read_text()
    assert script.startswith("this.driver=this.driver||{},this.driver.js=")
    addresses = re.findall(r"https?://[^`'\"\s]+", script)
    assert set(addresses) <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}  # namespaces only


# ---------------------------------------------------------------- make models

def _run_script(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    environment.update(env)
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=environment,
                          timeout=120, cwd=ROOT)


def test_download_models_offline_fails_with_one_plain_message(tmp_path):
    done = _run_script("--dest", str(tmp_path / "models"), HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    message = done.stderr.strip()
    assert message.count("\n") == 0, message  # one line
    assert "bert-base-chinese" in message and "HF_HUB_OFFLINE" in message and "make models" in message
    assert "ATTN_MODELS=" not in done.stdout
    assert not (tmp_path / "models").exists()


def _script_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("download_models", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_download_models_gets_the_offered_hub_models_and_prints_attn_models(tmp_path, monkeypatch, capsys, tiny_models):
    """With the hub replaced by a copy of a tiny model: the offered models minus the bundled one, each in
    its own folder, only the files the app needs, and an ATTN_MODELS line the app's settings accept."""
    import shutil

    import huggingface_hub

    module = _script_module()
    assert module.default_models() == [m for m in DEFAULT_MODELS if m != DEFAULT_MODEL_ID]
    assert "bert-base-chinese" in module.default_models()
    fetched = []

    class FakeApi:
        def list_repo_files(self, repo_id):
            return ["config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5", "vocab.txt"]

    def fake_snapshot(repo_id, local_dir, allow_patterns):
        fetched.append((repo_id, allow_patterns))
        shutil.copytree(tiny_models["chinese"], local_dir, dirs_exist_ok=True)
        return local_dir

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    _no_network(monkeypatch)
    dest = tmp_path / "models"
    assert module.main(["--dest", str(dest)]) == 0
    assert [repo for repo, _ in fetched] == module.default_models()
    patterns = fetched[0][1]
    assert "*.safetensors" in patterns and not any("bin" in p or "h5" in p for p in patterns)
    line = [row.strip() for row in capsys.readouterr().out.splitlines() if row.strip().startswith("ATTN_MODELS=")]
    assert len(line) == 1
    models = line[0].split("=", 1)[1].split(",")
    assert models == [DEFAULT_MODEL_ID, *(str((dest / module.folder_name(m)).resolve()) for m in module.default_models())]

    from attention_explorer.services import config
    from attention_explorer.services.model import loading as model_service

    original = config._settings
    try:
        config.configure(Settings(models=tuple(models), cache_type="simple"))
        assert model_service.resolve_source(models[1]) == models[1]  # a local folder the app loads
    finally:
        config._settings = original
    # a second run finds them there, even offline
    fetched.clear()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert module.main(["--dest", str(dest)]) == 0 and fetched == []


def _no_network(monkeypatch) -> None:
    """Any connection the script would open fails: the hub stays out of reach even if a fake is missed."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_download_models_says_so_when_the_hub_cannot_be_reached(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    module = _script_module()

    class Unreachable:
        def list_repo_files(self, repo_id):
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except OSError as exc:
                raise RuntimeError("request failed") from exc

    monkeypatch.setattr(huggingface_hub, "HfApi", Unreachable)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    _no_network(monkeypatch)
    assert module.main(["--dest", str(tmp_path), "gpt2"]) == 1
    err = capsys.readouterr().err
    assert "gpt2" in err and "could not be reached" in err and "Traceback" not in err


# ---------------------------------------------------------------- in the browser

RECORDER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || ''));
});
"""


def _start(duo, tiny_models, monkeypatch, offer_under_automation=True):
    import functools

    from attention_explorer.app import create_app
    from attention_explorer.components import layout, tour

    # the page's own tour pieces (its header mounts them), offered to this automated browser or not
    monkeypatch.setattr(layout, "tour_components",
                        functools.partial(tour.tour_components, offer_under_automation=offer_under_automation))
    app = create_app(Settings(models=(DEFAULT_MODEL_ID, tiny_models["chinese"]), cache_type="simple"))
    duo.start_server(app)
    duo.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORDER})
    duo.driver.get(duo.server_url)
    duo.wait_for_element("#head-grid .main-svg", timeout=60)
    return duo


@pytest.fixture
def tour_app(dash_duo, tiny_models, monkeypatch):
    return _start(dash_duo, tiny_models, monkeypatch)


def _wait(predicate, message, timeout=TIMEOUT):
    from tests.browser.test_browser import wait_until

    return wait_until(predicate, timeout=timeout, message=message)


def _offer_decision(duo) -> str:
    """What the tour script decided about the first-visit offer, once the page was drawn."""
    return _wait(lambda: duo.driver.execute_script(
        "return document.documentElement.getAttribute('data-ae-tour-offer')"), "the offer decision")


def _popover(duo):
    """The open tour step: title, progress, the highlighted element, and the gap between the popover and
    that element (0 when they touch), or None when no tour is open."""
    return duo.driver.execute_script("""
        const p = document.querySelector('.driver-popover');
        if (!p || !document.body.classList.contains('driver-active')) { return null; }
        const el = document.querySelector('.driver-active-element');
        const a = p.getBoundingClientRect(), b = el ? el.getBoundingClientRect() : null;
        const gap = b ? Math.max(0, a.left - b.right, b.left - a.right, a.top - b.bottom, b.top - a.bottom) : null;
        return {title: p.querySelector('.driver-popover-title').textContent,
                progress: p.querySelector('.driver-popover-progress-text').textContent,
                id: el ? el.id : null, text: el ? el.textContent.trim() : null, gap: gap,
                close: p.querySelector('.driver-popover-close-btn').getAttribute('aria-label'),
                step: document.documentElement.getAttribute('data-ae-tour-step')};
    """)


def _at_step(duo, index):
    """Waits for the tour to show step ``index`` of TOUR_STEPS, settled (driver.js moves between steps
    with a short animation and ignores keys meanwhile; the tour script marks the step once it is shown):
    its title, over its element. Returns what ``_popover`` sees."""
    from attention_explorer.components.tour import TOUR_STEPS

    step = TOUR_STEPS[index]

    def there():
        shown = _popover(duo)
        if not shown or shown["step"] != str(index) or shown["title"] != step.title:
            return None
        if step.tab:  # the tab's own link, not the whole tab bar
            return shown if shown["text"] == step.tab else None
        if step.selector.startswith("#"):
            return shown if shown["id"] == step.selector[1:] else None
        return shown if shown["gap"] is not None else None

    return _wait(there, f"step {index} (“{step.title}” over {step.selector})")


def _key(duo, key):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(duo.driver).send_keys(key).perform()


def _aria(duo):
    """aria-haspopup / -expanded / -controls of every element the tour points at (driver.js changes them)."""
    return duo.driver.execute_script("""
        return [...document.querySelectorAll('#text-input, #head-select, #layer-slider, #head-grid, #view-tabs a, .ae-footer')]
            .map(e => ['aria-haspopup', 'aria-expanded', 'aria-controls'].map(a => e.getAttribute(a)).join('|'));
    """)


def _stored(duo):
    return duo.driver.execute_script("return window.localStorage.getItem('attention-explorer.tour')")


def _offer_visible(duo) -> bool:
    return duo.driver.execute_script(
        "const o = document.getElementById('tour-offer'); return !!o && !o.hidden && o.getClientRects().length > 0")


@pytest.mark.browser
def test_the_tour_opens_steps_over_the_page_and_closes_with_escape(tour_app):
    from selenium.webdriver.common.keys import Keys

    from attention_explorer.components.tour import TOUR_STEPS

    duo = tour_app
    assert _offer_decision(duo) == "shown"
    assert _popover(duo) is None
    aria_before = _aria(duo)
    duo.find_element("#tour-button").click()
    assert not _offer_visible(duo)  # starting the tour puts the offer away
    first = _at_step(duo, 0)
    assert first["id"] == "text-input" and first["progress"] == f"1 of {len(TOUR_STEPS)}"
    assert first["close"] == "Close"
    assert first["gap"] < 40  # beside the text box

    duo.find_element(".driver-popover-next-btn").click()  # the Next button
    second = _at_step(duo, 1)
    assert second["progress"].startswith("2 ")
    _key(duo, Keys.ARROW_RIGHT)  # and the keyboard
    third = _at_step(duo, 2)
    assert third["id"] == "layer-slider" and third["gap"] < 40
    _key(duo, Keys.ARROW_LEFT)
    _at_step(duo, 1)
    for index in range(2, len(TOUR_STEPS)):
        _key(duo, Keys.ARROW_RIGHT)
        assert _at_step(duo, index)["gap"] < 40, f"the popover away from {TOUR_STEPS[index].selector}"
    assert _stored(duo) is None  # not closed yet

    _key(duo, Keys.ESCAPE)
    _wait(lambda: _popover(duo) is None and not duo.find_elements(".driver-popover"), "the tour closed")
    assert _stored(duo) == "done"
    assert duo.driver.execute_script("return document.activeElement.id") == "tour-button"  # focus back
    assert _aria(duo) == aria_before  # the page's own aria-* attributes, back as they were
    assert duo.driver.execute_script("return window.__cspViolations") == []

    duo.driver.refresh()
    duo.wait_for_element("#head-grid .main-svg", timeout=60)
    assert _offer_decision(duo) == "seen"
    assert not _offer_visible(duo)
    duo.find_element("#tour-button").click()  # the button still works
    _at_step(duo, 0)


@pytest.mark.browser
def test_each_step_opens_its_tab_and_never_covers_analyze(tour_app):
    """Issue 19: on a 1366 x 768 laptop, a step about a tab opens that tab (its view is drawn), and no
    step's popover covers the Analyze button."""
    from selenium.webdriver.common.keys import Keys

    from attention_explorer.components.tour import TOUR_STEPS

    duo = tour_app
    duo.driver.set_window_size(1366, 768)
    graphs = {"Arcs": "arc-view", "Token focus": "focus-heatmap"}
    duo.find_element("#tour-button").click()
    for index, step in enumerate(TOUR_STEPS):
        if index:
            _key(duo, Keys.ARROW_RIGHT)
        _at_step(duo, index)
        overlap = duo.driver.execute_script("""
            const a = document.querySelector('.driver-popover').getBoundingClientRect();
            const b = document.querySelector('#analyze-button').getBoundingClientRect();
            return Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left))
                 * Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top));""")
        assert overlap == 0, f"step {index} ({step.selector}) covers the Analyze button"
        if step.tab:
            _wait(lambda: duo.find_element("#view-tabs .nav-link.active").text == step.tab, f"{step.tab} opened")
            _wait(lambda: duo.driver.execute_script(
                f"const g = document.querySelector('#{graphs[step.tab]} .main-svg'); return !!g && g.getClientRects().length > 0"),
                f"the {step.tab} view drawn")
    _key(duo, Keys.ESCAPE)


@pytest.mark.browser
def test_the_close_button_and_the_keyboard_alone(tour_app):
    """A keyboard user: the Tour button is a real button (Enter opens the tour), the close button ends it."""
    from selenium.webdriver.common.keys import Keys

    duo = tour_app
    button = duo.find_element("#tour-button")
    assert button.tag_name == "button"
    duo.driver.execute_script("arguments[0].focus()", button)
    _key(duo, Keys.ENTER)
    _at_step(duo, 0)
    # focus is inside the popover, on one of its buttons
    assert duo.driver.execute_script("return !!document.activeElement.closest('.driver-popover')")
    duo.find_element(".driver-popover-close-btn").click()
    _wait(lambda: _popover(duo) is None, "the tour closed")
    assert _stored(duo) == "done"


@pytest.mark.browser
def test_the_first_visit_offer_and_no_thanks(tour_app):

    duo = tour_app
    assert _offer_decision(duo) == "shown"
    offer = duo.find_element("#tour-offer")
    assert _offer_visible(duo)
    assert offer.get_attribute("role") == "region" and offer.get_attribute("aria-live") == "polite"
    assert "New here?" in offer.text
    assert _popover(duo) is None  # an offer, not a tour that takes over the page
    assert not duo.find_elements(".driver-overlay")
    duo.find_element("#analyze-button").click()  # the page stays usable while it is shown

    duo.find_element("#tour-offer-dismiss").click()
    _wait(lambda: not _offer_visible(duo), "the offer gone")
    assert _stored(duo) == "done"
    duo.driver.refresh()
    duo.wait_for_element("#head-grid .main-svg", timeout=60)
    assert _offer_decision(duo) == "seen" and not _offer_visible(duo)
    duo.find_element("#tour-button").click()
    _at_step(duo, 0)


@pytest.mark.browser
def test_start_the_tour_from_the_offer(tour_app):

    duo = tour_app
    assert _offer_decision(duo) == "shown"
    duo.find_element("#tour-offer-start").click()
    _at_step(duo, 0)
    assert not _offer_visible(duo)
    duo.find_element(".driver-popover-close-btn").click()
    _wait(lambda: _popover(duo) is None, "the tour closed")
    assert _stored(duo) == "done"


@pytest.mark.browser
def test_automated_browsers_are_not_offered_the_tour_by_default(dash_duo, tiny_models, monkeypatch):
    duo = _start(dash_duo, tiny_models, monkeypatch, offer_under_automation=False)
    assert _offer_decision(duo) == "automation" and not _offer_visible(duo)
    duo.find_element("#tour-button").click()
    _at_step(duo, 0)


@pytest.mark.browser
def test_chinese_renders_with_a_real_font(tour_app, tiny_models):
    """A CJK font is installed and in the page's font list, so 猫 is a character, not the fallback box:
    drawn with the page's fonts it differs from an unassigned code point (U+0378) and from 它, and it
    is the glyph of the first CJK font of the list that is installed. The head grid's Chinese token
    labels are full-width characters."""
    duo = tour_app
    found = duo.driver.execute_script("""
        const fonts = arguments[0];
        const canvas = document.createElement('canvas'); canvas.width = 160; canvas.height = 100;
        const g = canvas.getContext('2d', {willReadFrequently: true});
        const width = (font, text) => { g.font = font; return g.measureText(text).width; };
        const sample = 'mmmmmmmmmmlli WMW 猫它';
        // A font is installed when naming it first changes how text measures against the fallback alone.
        const installed = fonts.filter(f => ['monospace', 'serif'].some(
            base => width(`72px '${f}', ${base}`, sample) !== width(`72px ${base}`, sample)));
        const family = getComputedStyle(document.body).fontFamily;
        const pixels = (font, ch) => {
            // on the alphabetic baseline: where the glyph sits does not depend on the first font's metrics
            g.clearRect(0, 0, 160, 100); g.font = font; g.fillStyle = '#000'; g.textBaseline = 'alphabetic';
            g.fillText(ch, 10, 80); return Array.from(g.getImageData(0, 0, 160, 100).data).join(',');
        };
        const body = '64px ' + family;
        return {installed: installed, family: family,
                check: installed.length ? document.fonts.check(`16px '${installed[0]}'`, '猫') : false,
                cat: pixels(body, '猫'), it: pixels(body, '它'), unassigned: pixels(body, '\\u0378'),
                catInFirst: installed.length ? pixels(`64px '${installed[0]}'`, '猫') : null,
                catWidth: width(body, '猫'), unassignedWidth: width(body, '\\u0378')};
    """, list(CJK_FONTS))
    assert found["installed"], "no CJK font installed (make system-test-deps installs fonts-noto-cjk)"
    assert found["check"]
    assert all(f"\"{font}\"" in found["family"] for font in CJK_FONTS)  # 05-fonts.css is in effect
    assert found["cat"] != found["unassigned"] and found["catWidth"] != found["unassignedWidth"]
    assert found["cat"] != found["it"]  # boxes would all be alike
    assert found["cat"] == found["catInFirst"]  # drawn by the CJK font the page names

    from tests.browser.test_browser import graph

    duo.driver.get(duo.server_url + "/?" + urlencode({"text": "猫坐在垫子上因为它累了。", "model": tiny_models["chinese"]}))
    _wait(lambda: "猫" in (graph(duo, "head-grid", "gd.layout.meta.tokens") or []), "the Chinese grid")
    widths = _wait(lambda: duo.driver.execute_script("""
        const labels = [...document.querySelectorAll('#head-grid .main-svg text')]
            .filter(t => /^[\\u4e00-\\u9fff]$/.test(t.textContent));
        return labels.length ? labels.map(t => t.getComputedTextLength() / parseFloat(getComputedStyle(t).fontSize)) : null;
    """), "Chinese labels in the grid")
    assert min(widths) > 0.9  # a CJK character is one em wide; the fallback box is about a third of that
