"""Compare mode (issue 11): the difference A − B equals the two analyses' attention subtracted
independently (read from the stored arrays, not through the views), the heads that differ most are
the sums of |A − B| per head, texts that do not line up are shown side by side with the reason, and
the trophy / suitcase example opens the Compare tab on "it"."""

from __future__ import annotations

import numpy as np
import pytest
from dash import no_update

from attention_explorer.callbacks import analyze, router
from attention_explorer.callbacks import compare as compare_view
from attention_explorer.callbacks.boundary import Handle
from attention_explorer.components import ids
from attention_explorer.components.layout import EXAMPLES
from attention_explorer.services.extraction import result_by_key
from tests.components.test_figures import decode

BIG = "The trophy doesn't fit into the suitcase because it is too big."
SMALL = "The trophy doesn't fit into the suitcase because it is too small."
ALL = frozenset(router.INPUTS)


def open_compare(handle, handle_b, **values):
    return router.route({"handle": handle, "compare_handle": handle_b, "tab": ids.TAB_COMPARE, "layer": 0,
                         "head": ids.HEAD_ALL, "mode": "raw", "switches": [], **values}, ALL)


def analysed(text, model=None):
    out = analyze.analyze({"text": text, "model": model, "pair": None, "layer": 0, "head": ids.HEAD_ALL,
                           "current": None})
    return out["handle"], result_by_key(Handle.parse(out["handle"]).key)[1]


def test_the_example_opens_compare_on_it_and_the_difference_is_a_minus_b(settings, default_model):
    index = next(i for i, e in enumerate(EXAMPLES) if e.get("compare"))
    out = analyze.analyze({"text": "", "model": None, "pair": None, "layer": 0, "head": ids.HEAD_ALL,
                           "current": None}, example=index)
    assert out["tab"] == ids.TAB_COMPARE and out["compare_text"] == SMALL and out["text"] == BIG
    a = result_by_key(Handle.parse(out["handle"]).key)[1]
    b = result_by_key(Handle.parse(out["compare_handle"]).key)[1]
    assert a.text == BIG and b.text == SMALL and a.seq_len == b.seq_len
    drawn = open_compare(out["handle"], out["compare_handle"], head="3", layer=2)
    it = a.tokens.index("it")
    assert drawn["token"] == it  # it follows "it" by default
    focus = drawn["compare_focus"]
    za, zb, zd = (decode(t["z"]) for t in focus["data"])
    expected_a = a.attentions[:, :, it, :].astype(np.float32).mean(axis=1)
    expected_b = b.attentions[:, :, it, :].astype(np.float32).mean(axis=1)
    np.testing.assert_allclose(za, expected_a, atol=1e-6)
    np.testing.assert_allclose(zb, expected_b, atol=1e-6)
    np.testing.assert_allclose(zd, expected_a - expected_b, atol=1e-6)
    assert "big | small" in focus["data"][2]["x"][-3]
    assert focus["layout"]["coloraxis"]["cmax"] == pytest.approx(max(expected_a.max(), expected_b.max()), rel=1e-5)
    assert focus["layout"]["coloraxis2"]["cmid"] == 0
    assert focus["layout"]["coloraxis2"]["cmin"] == -focus["layout"]["coloraxis2"]["cmax"]
    heads = drawn["compare_heads"]
    diff = decode(heads["data"][2]["z"])
    np.testing.assert_allclose(diff, a.attentions[2, 3].astype(np.float32) - b.attentions[2, 3].astype(np.float32),
                               atol=1e-6)
    rows = drawn["compare_table"][1].data
    gap = np.abs(a.attentions.astype(np.float64) - b.attentions.astype(np.float64)).sum(axis=(-2, -1))
    assert len(rows) == 72 and [r["sum"] for r in rows] == sorted((r["sum"] for r in rows), reverse=True)
    for r in rows:
        assert r["sum"] == pytest.approx(gap[r["layer"], r["head"]], abs=1e-3)
    assert "They differ at: big | small" in str(drawn["compare_status"])
    # a layer or head change redraws the chosen head only: the table and the focus do not depend on it
    moved = router.route({"handle": out["handle"], "compare_handle": out["compare_handle"], "tab": ids.TAB_COMPARE,
                          "layer": 4, "head": "1", "mode": "raw", "switches": [], "token": it}, frozenset({"layer"}))
    assert moved["compare_table"] is no_update and moved["compare_focus"] is no_update
    np.testing.assert_allclose(decode(moved["compare_heads"]["data"][2]["z"]),
                               a.attentions[4, 1].astype(np.float32) - b.attentions[4, 1].astype(np.float32), atol=1e-6)


def test_texts_that_do_not_line_up_are_side_by_side_with_the_reason(settings, default_model):
    handle, a = analysed("The cat sat on the mat.")
    handle_b, b = analysed("A much longer sentence about a dog that ran in the park all day.")
    drawn = open_compare(handle, handle_b)
    assert len(drawn["compare_focus"]["data"]) == 2 and len(drawn["compare_heads"]["data"]) == 2
    assert "different numbers of tokens" in str(drawn["compare_status"]) and drawn["compare_table"] == []


def test_words_line_up_when_sub_words_differ(settings, default_model):
    handle, a = analysed("The hyperparameters cat sat.")
    handle_b, b = analysed("The happy cat sat.")
    assert a.seq_len != b.seq_len  # "hyperparameters" is four pieces
    drawn = open_compare(handle, handle_b)
    assert "word by word" in str(drawn["compare_status"]) and len(drawn["compare_heads"]["data"]) == 3


def test_two_models_of_different_shapes_say_why(settings, default_model, tiny_models):
    handle, _a = analysed("the cat sat on the mat")
    out = compare_view.analyse_b({"text_b": "", "model_b": tiny_models["bert"], "handle": handle,
                                  "text_a": "the cat sat on the mat"})
    handle_b, status, share = out
    assert share["model"] == tiny_models["bert"] and share["text"] == "the cat sat on the mat"
    drawn = open_compare(handle, handle_b)
    assert "different numbers of layers or heads" in str(drawn["compare_status"])


def test_compare_b_refuses_junk_plainly(settings, default_model):
    handle, _a = analysed("the cat sat")
    for junk in ({"text_b": 12}, {"text_b": "x", "model_b": "evil/not-offered"}):
        handle_b, status, _share = compare_view.analyse_b({"handle": handle, "text_a": "the cat sat", **junk})
        assert handle_b is no_update and "Traceback" not in str(status) and status  # no_update + an alert
    drawn = open_compare(handle, {"key": "nope"})
    assert "Type text B" in str(drawn["compare_focus"])


def test_a_link_names_text_b_and_opens_compare(settings, default_model):
    from urllib.parse import urlencode

    search = "?" + urlencode({"text": BIG, "compare": SMALL, "view": "compare", "layer": "2"})
    out = analyze.from_url({"url": {"search": search}, "current": None, "shared": None})
    assert out["tab"] == ids.TAB_COMPARE and out["compare_text"] == SMALL and out["layer"] == 2
    assert result_by_key(Handle.parse(out["compare_handle"]).key)[1].text == SMALL
    assert out["compare_share"] == {"text": SMALL, "model": "all-MiniLM-L6-v2"}
