"""The interface in two languages (components/i18n.py, components/locales/).

- the 简体中文 catalog translates every message, keeping its ``{placeholders}``, plotly's ``%{...}`` parts
  and its HTML, and the checks below fail on a missing or broken translation;
- the catalogs are current: extracting the strings again finds nothing messages.pot lacks, and the
  committed .mo files hold what compiling the .po files gives;
- the language of a request: ``?lang=``, then the cookie, then ``Accept-Language``, then English;
- the services' messages, the page and its views speak Chinese under ``?lang=zh``, with no English
  interface word left.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import string
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from dash.development.base_component import Component
from flask import Flask

from attention_explorer.components import i18n
from attention_explorer.components.i18n import N_, current_language, error_message, error_title

REPO = Path(__file__).resolve().parents[2]
LOCALES = REPO / "components" / "locales"
POT = LOCALES / "messages.pot"
LOCALE_DIRS = ("en", "zh_Hans")

CJK = re.compile(r"[\u3400-\u9fff]")
PLOTLY_PART = re.compile(r"%\{[^{}]*\}")  # plotly's hover template parts: %{y}, %{z:.3f}
BRACE_PART = re.compile(r"\{[^{}]*\}")  # str.format fields: {model}, {count}
HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
WORD = re.compile(r"[A-Za-z][A-Za-z'’]+")  # two letters or more: q, k, d and x are symbols

# English that may stay in Chinese text: names, symbols, a paper's title, commands and files.
KEPT_PHRASES = (
    "Attention Explorer", "Attention is not only a weight", "Kobayashi", "EMNLP", "Transformer", "softmax",
    "[CLS]", "[SEP]", "[UNK]", "Ctrl+Enter", "Hugging Face", "Hub", "README", "make models", "ATTN_MODELS",
    "decoder_start_token_id", "config.json", "ALiBi", "ID", "PNG", "rollout", "“it”", "English",
    "GPT-2", "SVG", "CSV", "HTML", "JSON", "A − B", "|A − B|",
    # issue 18's head metrics: an author, a paper's title and a library are named as they are
    "Xiao", "Efficient Streaming Language Models with Attention Sinks", "TransformerLens",
)


def po_path(locale: str) -> Path:
    return LOCALES / locale / "LC_MESSAGES" / "messages.po"


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_mo(f) if path.suffix == ".mo" else read_po(f)


def messages(catalog: Catalog) -> dict[str, str]:
    return {m.id: m.string for m in catalog if m.id}


def parts(text: str) -> tuple[list[str], list[str], list[str]]:
    """What a translation must keep of its message: plotly's %{...} parts, the {fields}, the HTML tags."""
    plotly = sorted(PLOTLY_PART.findall(text))
    fields = sorted(BRACE_PART.findall(PLOTLY_PART.sub("", text)))
    return plotly, fields, sorted(HTML_TAG.findall(text))


def english_words(text: str, kept: tuple[str, ...] = KEPT_PHRASES, words: frozenset[str] = frozenset()) -> list[str]:
    """The English words left in ``text`` once placeholders, HTML, ``kept`` phrases and ``words`` (lower
    case: tokens of the text analysed, say) are set aside."""
    text = HTML_TAG.sub(" ", text)
    text = BRACE_PART.sub(" ", PLOTLY_PART.sub(" ", text))
    for phrase in sorted(kept, key=len, reverse=True):
        text = text.replace(phrase, " ")
    return [w for w in WORD.findall(text) if w.lower() not in words]


def catalog_problems(template: Catalog, translations: Catalog) -> list[str]:
    """Every way ``translations`` fails ``template``: a message missing, untranslated or fuzzy, a
    placeholder, plotly part or tag lost, added or renamed, a translation that ``str.format`` cannot
    fill, or English copied where Chinese belongs."""
    problems = []
    for message in template:
        if not message.id:
            continue
        found = translations.get(message.id)
        if found is None:
            problems.append(f"missing: {message.id!r}")
            continue
        text = found.string
        if not text or not text.strip():
            problems.append(f"untranslated: {message.id!r}")
            continue
        if found.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        if parts(text) != parts(message.id):
            problems.append(f"placeholders differ: {message.id!r} -> {text!r}")
            continue
        if "%{" not in message.id:  # filled in with str.format: it must accept the message's own fields
            names = {name for _literal, name, _spec, _conv in string.Formatter().parse(message.id) if name}
            try:
                text.format(**{name: "X" for name in names})
            except (KeyError, IndexError, ValueError) as exc:
                problems.append(f"cannot be formatted ({exc!r}): {text!r}")
        if english_words(message.id) and not CJK.search(text):
            problems.append(f"not Chinese: {message.id!r} -> {text!r}")
    return problems


# ------------------------------------------------------------------------------------ the catalogs


def test_every_message_has_a_chinese_translation_with_its_placeholders():
    problems = catalog_problems(read_catalog(POT), read_catalog(po_path("zh_Hans")))
    assert not problems, "zh_Hans/LC_MESSAGES/messages.po:\n" + "\n".join(problems)
    assert len(messages(read_catalog(POT))) > 200


def test_the_check_fails_on_missing_and_broken_translations():
    template = Catalog()
    for message in ("Head grid", "Layer {layer} · Head {head}", "layer %{y} → %{text}: %{z:.3f}",
                    "layer {layer}<br>{type}", "Tokens", "Analyze"):
        template.add(message)
    broken = Catalog(locale="zh_Hans")
    broken.add("Layer {layer} · Head {head}", "第 {layer} 层 · 头 {heads}")  # a renamed field
    broken.add("layer %{y} → %{text}: %{z:.3f}", "第 %{y} 层 → %{text}")  # a plotly part dropped
    broken.add("layer {layer}<br>{type}", "第 {layer} 层 {type}")  # the line break lost
    broken.add("Tokens", "")  # untranslated
    broken.add("Analyze", "Analyze")  # English copied
    problems = catalog_problems(template, broken)
    assert any(p.startswith("missing: 'Head grid'") for p in problems)
    assert sum(p.startswith("placeholders differ") for p in problems) == 3
    assert any(p.startswith("untranslated: 'Tokens'") for p in problems)
    assert any(p.startswith("not Chinese: 'Analyze'") for p in problems)
    assert len(problems) == 6
    unformattable = Catalog(locale="zh_Hans")
    unformattable.add("{count} tokens", "{count} 个词元 {")  # a stray brace: str.format raises
    template = Catalog()
    template.add("{count} tokens")
    assert catalog_problems(template, unformattable)[0].startswith("cannot be formatted")


def test_english_is_the_source_text():
    """The English catalog holds every message, untranslated: the interface shows the message itself."""
    english = messages(read_catalog(po_path("en")))
    assert set(english) == set(messages(read_catalog(POT)))
    assert not [message for message, text in english.items() if text]


def _makefile_extract(output: Path) -> list[str]:
    """The arguments of the Makefile's ``translations`` target's ``pybabel extract``, writing to ``output``."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    recipe = re.search(r"^translations:[^\n]*\n((?:\t[^\n]*\n?)+)", makefile, re.M)
    assert recipe, "the Makefile has a translations target"
    line = next(line for line in recipe.group(1).splitlines() if "pybabel extract" in line)
    args = shlex.split(line.strip())
    args = args[next(i for i, arg in enumerate(args) if arg.endswith("pybabel")) + 1:]
    assert args[0] == "extract" and "-o" in args
    args[args.index("-o") + 1] = str(output)
    return args


def test_the_catalogs_hold_every_string_of_the_code(tmp_path):
    """Extracting the strings again, as ``make translations`` does, finds nothing that messages.pot
    lacks (and messages.pot holds no string the code lost); the .po files follow messages.pot."""
    output = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).parent / "pybabel"
    command = [str(pybabel)] if pybabel.exists() else [sys.executable, "-c",
                                                       "from babel.messages.frontend import main; main()"]
    done = subprocess.run(command + _makefile_extract(output), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    extracted = set(messages(read_catalog(output)))
    committed = set(messages(read_catalog(POT)))
    assert extracted, "nothing extracted"
    assert not extracted - committed, f"not in messages.pot (run `make translations`): {sorted(extracted - committed)}"
    assert not committed - extracted, f"in messages.pot but no longer in the code: {sorted(committed - extracted)}"
    for locale in LOCALE_DIRS:
        assert set(messages(read_catalog(po_path(locale)))) == committed, f"{locale} .po differs from messages.pot"


@pytest.mark.parametrize("locale", LOCALE_DIRS)
def test_the_committed_mo_is_the_compiled_po(locale):
    compiled = io.BytesIO()
    write_mo(compiled, read_catalog(po_path(locale)))
    compiled.seek(0)
    committed = po_path(locale).with_suffix(".mo")
    assert committed.exists(), f"{committed} is missing: run `make translations`"
    assert messages(read_catalog(committed)) == messages(read_mo(compiled)), f"{committed} is stale"


def test_the_app_reads_the_chinese_catalog():
    """What the interface gets through gettext is the .po's translation, for every message."""
    i18n.reset()
    translations = i18n.catalog("zh")
    wrong = {message: translations.gettext(message) for message, text in messages(read_catalog(po_path("zh_Hans"))).items()
             if translations.gettext(message) != text}
    assert not wrong
    assert i18n.catalog("en").gettext("Head grid") == "Head grid"


# ------------------------------------------------------------------------------ the language chosen

APP = Flask(__name__)


@pytest.fixture
def served(settings) -> Flask:
    """A Flask app with the attention cache bound to it, for requests that analyse."""
    from attention_explorer.services.store import cache

    app = Flask("i18n-tests")
    cache.init_cache(app, settings)
    return app


def language(path: str = "/", **headers) -> str:
    with APP.test_request_context(path, headers=headers):
        return current_language()


def test_language_from_the_address():
    assert language("/?lang=zh") == "zh"
    assert language("/?lang=en") == "en"
    assert language("/?lang=zh-CN") == "zh"
    assert language("/?lang=zh_Hans") == "zh"
    assert language("/?lang=en", **{"Accept-Language": "zh-CN,zh;q=0.9"}) == "en"  # the address wins
    assert language("/?lang=en", Cookie="ae_lang=zh") == "en"
    assert language("/?lang=klingon", **{"Accept-Language": "zh-CN"}) == "zh"  # unknown: the browser's


def test_language_from_the_cookie():
    assert language(Cookie="ae_lang=zh") == "zh"
    assert language(Cookie="ae_lang=en", **{"Accept-Language": "zh-CN,zh;q=0.9"}) == "en"  # the cookie wins
    assert language(Cookie="ae_lang=<script>", **{"Accept-Language": "zh"}) == "zh"


@pytest.mark.parametrize("header, expected", [
    ("zh-CN,zh;q=0.9", "zh"),
    ("en-GB,en;q=0.8", "en"),
    ("fr, zh;q=0.5", "zh"),
    ("fr-CH, fr;q=0.9, de;q=0.7", "en"),
    ("zh;q=0.2, en;q=0.8", "en"),
    ("zh-TW", "zh"),
    ("*", "en"),
    (";;q=abc,,,zh;q=banana", "en"),
    ("x" * 600, "en"),
    ("", "en"),
])
def test_language_from_accept_language(header, expected):
    assert language(**{"Accept-Language": header}) == expected


def test_english_without_anything_or_outside_a_request():
    assert language() == "en"
    assert current_language() == "en"  # a notebook


def test_the_address_language_is_remembered_in_a_cookie(settings):
    from attention_explorer import app as app_module

    client = app_module.create_app(settings).server.test_client()
    cookies = client.get("/?lang=zh").headers.getlist("Set-Cookie")
    assert any(c.startswith(f"{i18n.COOKIE}=zh;") for c in cookies), cookies
    assert not client.get("/?lang=nope").headers.getlist("Set-Cookie")


# ---------------------------------------------------------------------------- services' messages


def test_an_input_error_is_translated_with_its_parameter():
    from attention_explorer.services.errors import InputError
    from attention_explorer.services.validation import validate_text

    with pytest.raises(InputError) as caught:
        validate_text("   ", 100, what=N_("second sentence"))
    with APP.test_request_context("/?lang=zh"):
        message, title = error_message(caught.value), error_title(caught.value)
    assert CJK.search(message) and CJK.search(title)
    assert "第二句" in message and not english_words(message), message
    assert str(caught.value) == "The second sentence is empty. Type a sentence to see what the model attends to."
    with APP.test_request_context("/?lang=en"):
        assert error_message(caught.value) == str(caught.value)
        assert error_title(caught.value) == "Check the text"


def test_a_rate_limit_keeps_its_seconds():
    from attention_explorer.services.errors import RateLimitedError

    error = RateLimitedError(37)
    with APP.test_request_context("/", headers={"Accept-Language": "zh-CN"}):
        message = error_message(error)
    assert "37" in message and CJK.search(message) and not english_words(message), message
    assert "37 s" in str(error)


def test_a_model_error_translates_its_reason_too():
    from attention_explorer.services.errors import ModelLoadError
    from attention_explorer.services.model.loading import HUB_UNAVAILABLE

    error = ModelLoadError(N_("Model “{model}” could not be loaded: {reason}."), model="org/some-model",
                           reason=HUB_UNAVAILABLE)
    with APP.test_request_context("/?lang=zh"):
        message = error_message(error)
    assert "“org/some-model”" in message and not english_words(message, words=frozenset({"org", "some", "model"}))


def test_the_empty_text_alert_is_chinese(served):
    from tests.callbacks.test_callbacks import run_analyze

    with served.test_request_context("/?lang=zh"):
        out = run_analyze("  \n ")
    alert = " ".join(strings(out["status"]))
    assert "文本" in alert and CJK.search(alert) and not english_words(alert), alert


# ------------------------------------------------------------------------------ the page in Chinese


def strings(node, key: str = "") -> list[str]:
    """Every string a person may see in a component tree, a figure or callback outputs: children, labels,
    placeholders, titles, options, dropdown words, the browser-side words, figure titles, axis titles,
    annotations, trace text and hover templates, tables' headers and cells."""
    found: list[str] = []
    if isinstance(node, Component):
        props = node.to_plotly_json()["props"]
        for name, value in props.items():
            if name in ("children", "label", "placeholder", "title", "aria-label"):
                found += strings(value, name)
            elif name == "labels" and isinstance(value, dict):  # a dropdown's own words
                found += [v for v in value.values() if isinstance(v, str)]
            elif name == "options" and isinstance(value, list):
                found += [o["label"] for o in value if isinstance(o, dict) and isinstance(o.get("label"), str)]
            elif name == "columns" and isinstance(value, list):  # a table: its header and its cells
                found += [c["name"] for c in value if isinstance(c, dict) and isinstance(c.get("name"), str)]
                shown = [c.get("id") for c in value if isinstance(c, dict)]
                found += [row[c] for row in props.get("data") or [] for c in shown if isinstance(row.get(c), str)]
            elif name == "figure" and isinstance(value, dict):
                found += figure_strings(value)
            elif name == "data-strings":
                found += list(json.loads(value).values())
    elif isinstance(node, dict):
        if "data" in node and "layout" in node:
            found += figure_strings(node)
        else:
            for name, value in node.items():
                found += strings(value, name if name in ("children", "label", "placeholder", "title") else key)
    elif isinstance(node, (list, tuple)):
        for value in node:
            found += strings(value, key)
    elif isinstance(node, str) and key:
        found.append(node)
    return found


def figure_strings(node, key: str = "") -> list[str]:
    if isinstance(node, dict):
        return [s for name, value in node.items() if name not in ("meta", "source", "bdata")
                for s in figure_strings(value, name)]
    if isinstance(node, (list, tuple)):
        return [s for value in node for s in figure_strings(value, key)]
    if isinstance(node, str) and key in ("text", "hovertemplate", "ticktext"):
        return [node]
    return []


def english_left(texts: list[str], words: frozenset[str], kept: tuple[str, ...]) -> dict[str, list[str]]:
    return {text: left for text in texts if (left := english_words(text, kept, words))}


def text_words(*texts: str) -> frozenset[str]:
    return frozenset(w.lower() for text in texts for w in re.findall(r"[A-Za-z]+", text))


@pytest.fixture
def zh_page(settings, served, default_model):
    """The page of a new visitor with ``?lang=zh`` (the first example analysed), its views in every mode,
    and what may stay English in it: the models' ids and the words of the texts analysed."""
    from attention_explorer.callbacks import analyze, registry
    from attention_explorer.components import ids
    from attention_explorer.components.layout import EXAMPLES, create_layout
    from tests.callbacks.test_callbacks import view

    i18n.reset()
    with served.test_request_context("/?lang=zh"):
        page = analyze.first_page(settings)
        layout = create_layout(settings, page)
        views = {tab: view(page["handle"], tab) for tab in registry.TABS}
        views["rollout"] = view(page["handle"], ids.TAB_GRID, mode="rollout", switches=["hide", "merge"])
        views["value norm"] = view(page["handle"], ids.TAB_HEATMAP, mode="value", head="3")
        views["one head"] = view(page["handle"], ids.TAB_ARCS, head="mean", switches=["hide"])
        views["focus"] = view(page["handle"], ids.TAB_FOCUS, mode="rollout", switches=["merge"])
        index = next(i for i, e in enumerate(EXAMPLES) if e.get("compare"))
        compared = analyze.analyze({"text": "", "model": None, "pair": None, "layer": 0, "head": ids.HEAD_ALL,
                                    "current": None}, example=index)
        views["compare"] = view(compared["handle"], ids.TAB_COMPARE, compare_handle=compared["compare_handle"])
        views["compare status"] = {"status": compared["status"]}
    words = text_words(*(example["text"] + " " + example["pair"] + " " + example.get("compare", "")
                         for example in EXAMPLES))
    texts = tuple(t for e in EXAMPLES for t in (e["text"], e["pair"], e.get("compare", "")) if t)
    from attention_explorer.services.model.loading import display_name

    names = tuple(display_name(m) for m in settings.models)  # the menu names local folders by their name
    kept = tuple(sorted(settings.models + names + texts, key=len, reverse=True)) + KEPT_PHRASES
    return {"layout": layout, "views": views, "words": words, "kept": kept}


def test_the_page_speaks_chinese(zh_page):
    from attention_explorer.components import ids
    from attention_explorer.components.layout import EXAMPLES, HELP

    layout = zh_page["layout"]
    zh = i18n.catalog("zh")
    tabs = [c for c in layout._traverse() if isinstance(c, Component) and type(c).__name__ == "Tab"]
    assert [t.label for t in tabs] == [zh.gettext(n) for n in ("Head grid", "Head heatmap", "Arcs", "Model overview",
                                                               "Head atlas", "Token focus", "Inside a head",
                                                               "Compare", "Generation")]
    assert all(CJK.search(t.label) for t in tabs)
    texts = strings(layout)
    for tab, help_text in HELP.items():
        assert zh.gettext(help_text) in texts and CJK.search(zh.gettext(help_text)), tab
    examples = [c.children for c in layout._traverse()
                if isinstance(getattr(c, "id", None), dict) and c.id.get("type") == ids.EXAMPLE]
    assert examples == [zh.gettext(e["label"]) for e in EXAMPLES] and all(CJK.search(e) for e in examples)
    assert "中文：“它”指什么？" in examples
    marker = next(c for c in layout._traverse() if getattr(c, "id", None) == ids.I18N)
    assert getattr(marker, "data-lang") == "zh-Hans"
    left = english_left(texts, zh_page["words"], zh_page["kept"])
    assert not left, f"English left in the page: {left}"


def test_every_view_speaks_chinese(zh_page):
    for name, outputs in zh_page["views"].items():
        texts = strings(outputs)
        assert any(CJK.search(t) for t in texts), name
        left = english_left(texts, zh_page["words"], zh_page["kept"])
        assert not left, f"English left in {name}: {left}"


def test_the_check_finds_english(zh_page):
    """The page check is not vacuous: English words in a component are found, the allowed ones are not."""
    from dash import html

    planted = html.Div([html.Span("头 3"), html.Label("Head"), html.P("查询“it”：[CLS] · softmax")])
    assert english_left(strings(planted), zh_page["words"], zh_page["kept"]) == {"Head": ["Head"]}
    with APP.test_request_context("/?lang=en"):
        from attention_explorer.components.layout import header

        assert "Attention" in sum(english_left(strings(header()), zh_page["words"], ()).values(), [])


def test_gettext_is_called_on_string_literals_only():
    """``_`` and ``ngettext`` take string literals: the extractor reads those the same way in every
    version of Babel (2.19 stopped reading ``_(example["label"])`` as the message "label"). A message
    defined elsewhere is marked ``N_`` there and shown with ``translate``."""
    import ast

    found = []
    for folder in ("components", "callbacks", "services", "src"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_", "ngettext"):
                    literal = [isinstance(a, ast.Constant) and isinstance(a.value, str)
                               for a in node.args[:2 if node.func.id == "ngettext" else 1]]
                    if not node.args or not all(literal):
                        found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, f"gettext called on something that is not a string literal: {found}"
