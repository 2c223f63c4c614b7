"""The URL is the state: parsing a query string at the boundary, and opening one (Analyze's URL path)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from dash import no_update

from attention_explorer.callbacks import analyze, urlstate
from attention_explorer.callbacks.boundary import Handle
from attention_explorer.components import ids
from attention_explorer.components.layout import EXAMPLES

SENTENCE = "The cat sat on the mat because it was tired."


def open_url(params: dict | str, current=None, shared=None, text="", model=None):
    search = params if isinstance(params, str) else "?" + urlencode(params)
    return analyze.from_url({"url": {"search": search, "n": 1}, "text": text, "pair": "", "model": model,
                             "layer": 0, "head": "all", "current": current, "shared": shared})


def test_parse_every_parameter():
    state = urlstate.parse("?" + urlencode({
        "text": SENTENCE, "pair": "It slept.", "model": "gpt2", "layer": "3", "head": "mean", "view": "focus",
        "mode": "rollout", "hide_special": "1", "merge": "0", "token": "8", "lang": "zh"}))
    assert (state.text, state.pair, state.model, state.lang) == (SENTENCE, "It slept.", "gpt2", "zh")
    assert state.controls == {"layer": "3", "head": "mean", "tab": ids.TAB_FOCUS, "mode": "rollout",
                              "switches": ["hide"], "token": "8"}


def test_the_first_of_a_repeated_parameter_wins():
    """``?layer=1&layer=5`` opens layer 1: for every name given twice, the value read is the first one
    written (found here by splitting the query string by hand), never the last."""
    assert urlstate.parse("?layer=1&layer=5").controls["layer"] == "1"
    search = ("?text=The+cat+sat.&text=A+dog+ran.&model=gpt2&model=bert-base-chinese&layer=1&layer=5"
              "&head=mean&head=3&view=focus&view=arcs&mode=rollout&mode=raw&token=2&token=7&lang=zh&lang=en")
    first: dict[str, str] = {}
    for part in search[1:].split("&"):
        name, value = part.split("=")
        first.setdefault(name, value.replace("+", " "))
    state = urlstate.parse(search)
    assert (state.text, state.model, state.lang) == (first["text"], first["model"], first["lang"]) \
        == ("The cat sat.", "gpt2", "zh")
    assert state.controls == {"layer": first["layer"], "head": first["head"], "tab": urlstate.VIEWS[first["view"]],
                              "mode": first["mode"], "token": first["token"]}
    assert state.controls["tab"] == ids.TAB_FOCUS


@pytest.mark.parametrize("search", [
    None, 3, "", "?", "?view=nope&mode=loud&hide_special=maybe&merge=2", "?unknown=1&x=y",
    "?" + "&".join(f"f{i}=1" for i in range(100)), "?text=" + "x" * 50_000, "?%ZZ=%ZZ", "?model=" + "m" * 400,
])
def test_junk_falls_back_to_defaults(search):
    state = urlstate.parse(search)
    assert state.text is None and state.model is None
    assert "tab" not in state.controls and "mode" not in state.controls and "switches" not in state.controls


def test_opening_a_url_reproduces_the_view(settings, default_model):
    out = open_url({"text": SENTENCE, "layer": "4", "head": "5", "view": "heatmap", "mode": "value",
                    "hide_special": "1", "merge": "1", "token": "8"})
    handle = Handle.parse(out["handle"])
    assert handle.tokens == 13 and out["text"] == SENTENCE and out["model"] == "all-MiniLM-L6-v2"
    assert (out["layer"], out["head"], out["tab"], out["mode"]) == (4, "5", ids.TAB_HEATMAP, "value")
    assert sorted(out["switches"]) == ["hide", "merge"] and out["token"] == 8
    assert out["share"] == {"text": SENTENCE, "pair": None, "model": "all-MiniLM-L6-v2", "from_url": True}


def test_out_of_range_url_values_are_clamped(settings, default_model):
    out = open_url({"text": SENTENCE, "layer": "99", "head": "12", "token": "500", "view": "nope"})
    assert out["layer"] == 5 and out["head"] == "all" and out["tab"] is no_update and out["token"] is None


def test_a_url_without_text_keeps_the_page_text(settings, default_model):
    out = open_url({"layer": "2", "view": "arcs"}, text="A dog ran.")
    assert Handle.parse(out["handle"]).tokens == 6 and out["text"] is no_update
    assert out["layer"] == 2 and out["tab"] == ids.TAB_ARCS


def test_back_to_the_bare_address_is_the_first_page(settings, default_model):
    first = {"text": EXAMPLES[0]["text"], "pair": None, "model": "all-MiniLM-L6-v2"}
    assert all(v is no_update for v in open_url("", shared=first).values())  # already there: nothing to do
    out = open_url("", shared={"text": "A dog ran.", "pair": None, "model": "all-MiniLM-L6-v2"})
    assert out["text"] == EXAMPLES[0]["text"] and out["layer"] == 0 and out["tab"] == ids.TAB_GRID


def test_long_texts_are_shared_by_id_and_expired_ids_are_explained(settings, default_model):
    from attention_explorer.services.store import cache, share

    long_text = " ".join(["The cat sat on the mat."] * 80)  # over 1,500 characters once encoded
    out = analyze.analyze({"text": long_text, "model": None, "pair": "", "layer": 0, "head": "all"})
    shared = out["share"]
    assert set(shared) == {"id", "model"} and share.is_share_id(shared["id"])
    opened = open_url({"id": shared["id"], "view": "grid"})
    assert opened["text"] == long_text and Handle.parse(opened["handle"]).key == Handle.parse(out["handle"]).key
    cache.clear_local()
    cache.cache.clear()
    gone = open_url({"id": shared["id"]}, current=out["handle"])
    assert gone["handle"] is no_update and "no longer kept on the server" in str(gone["status"])
    junk = open_url({"id": "../../etc/passwd"})
    assert junk["handle"] is no_update and "not one this server makes" in str(junk["status"])


def test_an_unknown_model_in_a_url_is_explained(settings, default_model):
    out = open_url({"text": SENTENCE, "model": "evil/model"})
    assert out["handle"] is no_update and "not one of the models" in str(out["status"])
