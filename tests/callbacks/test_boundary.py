"""The one boundary for browser values: every field with wrong types, NaN/inf, out-of-range, huge and
missing values gives the documented result, and nothing raises."""

from __future__ import annotations

import math

import pytest

from attention_explorer.callbacks import boundary, registry
from attention_explorer.callbacks.boundary import Dims, Handle, Head, ViewState
from attention_explorer.components import ids

DIMS = Dims(layers=6, heads=12, tokens=13)
JUNK = [None, "", "x", [], {}, [1], {"a": 1}, True, False, float("nan"), float("inf"), -float("inf"), 1e309,
        "1e309", "NaN", 10**400, "9" * 40, object()]


def parse(**values) -> ViewState:
    return ViewState.parse(values, DIMS, registry.TABS)


def test_missing_values_take_the_defaults():
    state = parse()
    assert state == ViewState(tab=ids.TAB_GRID, layer=0, head=Head("all"), mode="raw", hide_special=False,
                              merge=False, top_k=3, min_weight=0.05, arc_focus=None, metric="entropy", window=3,
                              token=None, focus_k=3, notes=())


@pytest.mark.parametrize("value, expected", [(0, 0), (5, 5), ("3", 3), (3.0, 3), (-1, 0), (6, 5), (10**9, 5),
                                             (-10**9, 0), (2.5, 0), *[(j, 0) for j in JUNK]])
def test_layer(value, expected):
    assert parse(layer=value).layer == expected


def test_layer_out_of_range_says_so():
    assert parse(layer=9).notes == ("There is no layer 9: showing layer 5.",)
    assert parse(layer="x").notes and parse(layer=None).notes == ()
    assert parse(layer=3).notes == ()


@pytest.mark.parametrize("value, kind, index", [
    ("all", "all", None), ("mean", "mean", None), ("0", "one", 0), ("11", "one", 11), (11, "one", 11),
    ("12", "all", None),  # a head number equal to the head count does not exist
    (12, "all", None), ("-1", "all", None), (1.5, "all", None), *[(j, "all", None) for j in JUNK],
])
def test_head(value, kind, index):
    head = parse(head=value).head
    assert (head.kind, head.index) == (kind, index)
    assert head.number == (index if kind == "one" else None)
    assert head.value == (str(index) if kind == "one" else kind)


def test_head_out_of_range_says_so():
    assert "no head 12" in parse(head="12").notes[0]
    assert parse(head="all").notes == () and parse(head="mean").notes == ()


@pytest.mark.parametrize("field, good, default, bad", [
    ("tab", ids.TAB_ATLAS, ids.TAB_GRID, ["tab-nope", "TAB-GRID", 3]),
    ("mode", "rollout", "raw", ["ROLLOUT", "Value", "norm", 1]),
    ("metric", "delimiter", "entropy", ["__class__", "delimiters", 0]),
    ("top_k", 10, 3, [4, 11, 10**9, -1, "many"]),
    ("window", 8, 3, [10**9, 9, 0, -3, "8x"]),
    ("focus_k", 8, 3, [10**6, 0, 4]),
])
def test_choices(field, good, default, bad):
    assert getattr(parse(**{field: good}), field) == good
    for value in bad + JUNK:
        assert getattr(parse(**{field: value}), field) == default, value


def test_numeric_choices_accept_their_number_in_any_spelling():
    assert parse(top_k="5").top_k == 5 and parse(window=5.0).window == 5 and parse(focus_k="8").focus_k == 8


@pytest.mark.parametrize("value, expected", [(0, 0.0), (0.25, 0.25), ("0.5", 0.5), (1, 1.0), (5, 1.0), (-2, 0.0),
                                             *[(j, 0.05) for j in JUNK]])
def test_min_weight(value, expected):
    assert parse(min_weight=value).min_weight == expected


@pytest.mark.parametrize("field", ["token", "arc_focus"])
def test_token_indices_are_capped_by_the_text(field):
    assert getattr(parse(**{field: 12}), field) == 12
    for value in [13, -1, 10**9, 2.5, *JUNK]:
        assert getattr(parse(**{field: value}), field) is None, value


def test_switches_keep_known_names_only():
    assert parse(switches=["hide", "merge"]).switches == ["hide", "merge"]
    assert parse(switches=["merge", "evil", 3, None, ["hide"]]).switches == ["merge"]
    for junk in JUNK + ["hide", {"hide": 1}]:
        assert parse(switches=junk).switches == [], junk
    huge = ["x"] * 10**6 + ["hide"]
    assert parse(switches=huge).switches == []  # only the first items are read: bounded work


def test_nothing_raises_for_any_junk_anywhere():
    fields = ["tab", "layer", "head", "mode", "switches", "top_k", "min_weight", "arc_focus", "metric", "window",
              "token", "focus_k"]
    for value in JUNK:
        state = ViewState.parse({f: value for f in fields}, DIMS, registry.TABS)
        assert 0 <= state.layer < 6 and state.window in boundary.WINDOWS and state.top_k in boundary.TOP_K


def test_notes_quote_values_as_short_valid_text():
    """A quoted value must be serialisable (a lone surrogate made the whole answer fail), short, and
    never the text of a container (huge, or nested past the recursion limit)."""
    for value in ("\ud800", "\udfff\ud800x", "a\x00\u202eb", [1] * 10**5, {"a": 1}, 10**400, 10**5000, object()):
        for state in (parse(layer=value), parse(head=value)):
            assert state.notes, value
            note = state.notes[0]
            note.encode("utf-8")  # no lone surrogate
            assert len(note) < 80 and "\x00" not in note and "\u202e" not in note, note
    assert parse(layer="<script>alert(1)</script>").notes == ("There is no layer <script>aler: showing layer 0.",)
    assert parse(head=[1, 2]).notes == ("There is no head […] in this model: showing all heads.",)


def test_handle():
    good = {"key": "attn-v1:" + "a" * 64, "model": "all-MiniLM-L6-v2", "layers": 6, "heads": 12, "tokens": 13}
    handle = Handle.parse(good)
    assert handle == Handle("attn-v1:" + "a" * 64, "all-MiniLM-L6-v2", 6, 12, 13)
    assert Handle.parse(handle.to_client()) == handle
    bad = [None, "x", [], good["key"], {**good, "key": "attn-v1:" + "A" * 64}, {**good, "key": "../../etc/passwd"},
           {**good, "key": "attn-v1:" + "a" * 63}, {**good, "key": 5}, {**good, "model": ""},
           {**good, "model": "m" * 1000}, {**good, "layers": 0}, {**good, "heads": -1}, {**good, "tokens": "x"},
           {**good, "layers": float("nan")}, {**good, "tokens": 10**9}]
    for value in bad:
        assert Handle.parse(value) is None, value
    del good["tokens"]
    assert Handle.parse(good) is None


def test_texts():
    assert boundary.text("hello") == "hello" and boundary.text(None) is None and boundary.text("") == ""
    for junk in (3, [], {}, b"bytes", True):
        with pytest.raises(boundary.TextRefused, match="plain text"):
            boundary.text(junk)
    with pytest.raises(boundary.TextRefused, match="far too long"):
        boundary.text("x" * (boundary.MAX_TEXT_CHARS + 1))


def test_model_ids():
    assert boundary.model_id(" gpt2 ") == "gpt2"
    for junk in (None, "", "   ", 3, ["gpt2"], "m" * 301):
        assert boundary.model_id(junk) is None
    assert boundary.model_id("gpt\ud8002") == "gpt\ufffd2"  # refused later by name, quotable in the message


def test_plotly_points():
    assert boundary.point({"points": [{"x": 3, "y": "4"}]}, "x", "y") == {"x": 3.0, "y": 4.0}
    for junk in (None, [], {"points": []}, {"points": [None]}, {"points": "x"}, {"points": [{"x": 1}]},
                 {"points": [{"x": float("nan"), "y": 1}]}, {"points": [{"x": [1], "y": 1}]}, 7):
        assert boundary.point(junk, "x", "y") is None, junk


def test_whole_and_real_helpers():
    assert boundary.whole("7", 0, 5, 1) == 5 and boundary.whole(True, 0, 5, 1) == 1
    assert boundary.real(math.pi, 0, 1, 0.5) == 1.0 and boundary.real("nan", 0, 1, 0.5) == 0.5
    assert boundary.optional_index(3, 3) is None and boundary.optional_index("2", 3) == 2


# ---------------------------------------------------------------------------------------------- download links

KEY = "attn-v3:" + "ab" * 32


@pytest.mark.parametrize("values", [
    {},
    {"tab": ids.TAB_HEATMAP, "layer": 5, "head": "11", "mode": "rollout", "switches": ["hide", "merge"],
     "min_weight": 0.125, "token": 12, "arc_focus": 3, "arc_start": 2, "top_k": 5, "window": 5, "focus_k": 5},
    {"tab": ids.TAB_ARCS, "head": "mean", "kind": "cross", "pair": "A→B", "step": 4, "metric": "local"},
])
def test_a_download_link_reads_back_into_the_same_view(values):
    """The link the menu makes (``download_query``) holds the parsed view; the route's parse of it gives
    that very view again, through the same ``ViewState.parse``."""
    from werkzeug.datastructures import MultiDict

    state = parse(**values)
    link = MultiDict(boundary.download_query(KEY, state, compare_key=KEY.replace("ab", "cd")))
    request = boundary.DownloadRequest.parse("csv", link)
    assert request.key == KEY and request.compare_key == KEY.replace("ab", "cd")
    again = ViewState.parse(request.values, DIMS, registry.TABS)
    assert again == state


@pytest.mark.parametrize("kind, query", [
    ("csv", {}), ("csv", {"key": ["nope"]}), ("exe", {"key": [KEY]}), (None, {"key": [KEY]}),
    ("csv", {"key": [KEY + "0"]}), ("csv", {"key": ["x" * 100_000]}), ("csv", {"key": [["nested"]]}),
])
def test_a_download_link_that_names_no_analysis_is_refused(kind, query):
    assert boundary.DownloadRequest.parse(kind, query) is None


def test_download_link_values_are_bounded_before_they_are_parsed():
    query = {"key": [KEY, "junk"], "layer": ["1", "5"], "head": ["9" * 500], "switches": ["hide"] * 100 + ["x" * 50],
             "tab": [ids.TAB_HEATMAP], "nonsense": ["1"], "text": ["the cat"]}
    request = boundary.DownloadRequest.parse("json", query)
    assert request.key == KEY and request.values["layer"] == "1"  # the first of a repeated value wins
    assert "head" not in request.values and "text" not in request.values and "nonsense" not in request.values
    assert len(request.values["switches"]) == 16
    assert ViewState.parse(request.values, DIMS, registry.TABS).layer == 1
