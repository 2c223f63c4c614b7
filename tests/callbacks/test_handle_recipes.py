"""Every web process can serve every analysis: the page's handle carries the analysis's recipe, signed
(issue 19, item 1).

Before: the handle held only the result's key. When the shared cache could not give the result (Redis
down, a full or read-only disk, a refused folder) a web process that had not run the analysis itself
answered "This analysis is no longer on the server" (25-50 % of view requests under gunicorn with 2
workers). Here "another web process" is this process with its memory of analyses cleared and the
shared cache emptied or down: the view must be drawn from the handle alone, by one forward pass of the
same text, and a handle whose recipe was changed or forged must be refused.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from dash import no_update

from attention_explorer.callbacks import analyze, router
from attention_explorer.callbacks.boundary import Handle
from attention_explorer.callbacks.common import EXPIRED, UNREADABLE
from attention_explorer.components import ids
from attention_explorer.services import config, extraction
from attention_explorer.services.store import cache, recipes, share
from attention_explorer.services.store.recipes import Recipe

SENTENCE = "The cat sat on the mat because it was tired."


def _analyze(text: str, model: str, **values) -> dict:
    out = analyze.analyze({"text": text, "model": model, "layer": 0, "head": ids.HEAD_ALL, **values})
    assert isinstance(out["handle"], dict), out["status"]
    return out


def _view(handle, tab=ids.TAB_HEATMAP, **values) -> dict:
    return router.route({"handle": handle, "tab": tab, "layer": 1, "head": "1", "mode": "raw", "switches": [],
                         **values}, frozenset(router.INPUTS))


def _another_process() -> None:
    """What a web process that did not run the analysis sees when the shared cache cannot help."""
    cache.clear_local()
    cache.cache.clear()


def _drawn(out: dict) -> np.ndarray:
    figure = out["heatmap"]
    assert figure["data"], f"no figure: {str(figure)[-300:]}"
    return figure


def test_a_view_is_drawn_from_the_handle_when_the_cache_has_nothing(settings, tiny_models, compute_calls):
    handle = _analyze(SENTENCE, tiny_models["bert"])["handle"]
    here = _drawn(_view(handle))
    _another_process()
    out = _view(handle)
    assert _drawn(out) == here  # the same picture, computed again from the recipe
    assert compute_calls == [SENTENCE, SENTENCE]  # one forward pass of the same text, no more
    assert out["handle"] is no_update  # the same key: the page keeps its handle
    _view(handle, layer=0)
    assert len(compute_calls) == 2  # then remembered, as any analysis


def test_a_continuation_and_a_target_are_computed_again_as_asked(settings, tiny_models, tiny_seq2seq_models):
    config.configure(models=(*settings.models, tiny_seq2seq_models["bart"]))
    for text, model, extra, tab in (
            ("The cat sat on the", tiny_models["gpt2"], {"continue": 3}, ids.TAB_GENERATION),
            (SENTENCE, tiny_seq2seq_models["bart"], {"target": "Le chat était assis."}, ids.TAB_HEATMAP)):
        handle = _analyze(text, model, **extra)["handle"]
        key = handle["key"]
        first = extraction.result_by_key(key)[1]
        _another_process()
        again = extraction.result_by_key(key, Handle.parse(handle).recipe)
        assert again is not None and again.key == key  # the same key: the same target, the same steps
        assert again.result.tokens == first.tokens and again.result.target_tokens == first.target_tokens
        np.testing.assert_array_equal(again.result.attentions, first.attentions)


@pytest.mark.parametrize("how", ["text changed", "signature changed", "another server's secret", "unsigned"])
def test_a_changed_or_forged_recipe_is_refused(settings, tiny_models, compute_calls, how):
    handle = _analyze(SENTENCE, tiny_models["bert"])["handle"]
    forged = copy.deepcopy(handle)
    sealed = handle["recipe"]
    payload, signature = sealed.rsplit(".", 1)
    if how == "text changed":  # someone else's text with this handle's signature
        other = recipes.seal(Recipe(tiny_models["bert"], "Someone else's private text."))
        forged["recipe"] = other.rsplit(".", 1)[0] + "." + signature
    elif how == "signature changed":
        forged["recipe"] = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    elif how == "another server's secret":
        forged["recipe"] = recipes.seal(Recipe(tiny_models["bert"], "Someone else's private text."),
                                        settings.replace(secret_key="another server's secret, 32 characters or more"))
    else:
        import base64
        import json

        forged["recipe"] = base64.urlsafe_b64encode(json.dumps([1, tiny_models["bert"], "x"]).encode()).decode()
    assert Handle.parse(forged) is None
    _another_process()
    out = _view(forged)
    assert out["heatmap"]["data"] == [] and str(UNREADABLE)[:40] in str(out["heatmap"])
    assert compute_calls == [SENTENCE]  # nothing computed for the forged handle


def test_a_long_text_is_named_by_its_short_id(settings, tiny_models, compute_calls):
    long_text = " ".join(["the cat sat on the mat"] * 60)  # over the URL limit: links use a short id
    assert share.needs_short_id(long_text)
    handle = _analyze(long_text, tiny_models["bert"])["handle"]
    recipe = Handle.parse(handle).recipe
    assert recipe.text is None and share.is_share_id(recipe.share_id) and len(handle["recipe"]) < 300
    key = handle["key"]
    cache.clear_local()
    cache.cache.delete(key)  # the result evicted; the short id's entry is still kept
    cache.cache.delete(extraction._recipe_key(key))
    assert _drawn(_view(handle)) and compute_calls == [long_text, long_text]
    _another_process()  # the short id's entry gone too, and no recipe kept: expired, said so
    out = _view(handle)
    assert out["heatmap"]["data"] == [] and str(EXPIRED)[:40] in str(out["heatmap"])


def test_a_long_text_is_sealed_whole_when_the_cache_cannot_keep_it(settings, tiny_models, compute_calls, monkeypatch):
    long_text = " ".join(["the dog ran in the park"] * 60)
    monkeypatch.setattr(cache, "store", lambda *args, **kwargs: False)  # the shared cache refuses every write
    handle = _analyze(long_text, tiny_models["bert"])["handle"]
    assert Handle.parse(handle).recipe.text == long_text
    _another_process()
    assert _drawn(_view(handle)) and compute_calls == [long_text, long_text]


def test_recomputing_counts_against_the_persons_limit(settings, tiny_models, compute_calls):
    from attention_explorer.services.web import ratelimit

    ratelimit.reset()
    config.configure(rate_limit="1/minute")
    try:
        handle = _analyze(SENTENCE, tiny_models["bert"])["handle"]  # the one analysis allowed
        assert _drawn(_view(handle))  # cached: not counted
        _another_process()
        out = _view(handle)  # would be a second forward pass within the minute
        assert out["heatmap"]["data"] == [] and "Too many new analyses" in str(out["heatmap"])
        assert compute_calls == [SENTENCE]
    finally:
        config.configure(rate_limit="")
        ratelimit.reset()


def test_a_handle_from_before_recipes_is_still_read(settings, tiny_models):
    handle = _analyze(SENTENCE, tiny_models["bert"])["handle"]
    old = {k: v for k, v in handle.items() if k != "recipe"}
    assert Handle.parse(old).recipe is None
    assert _drawn(_view(old))  # served while the cache has it
    _another_process()
    assert str(EXPIRED)[:40] in str(_view(old)["heatmap"])  # and explained once it has not
