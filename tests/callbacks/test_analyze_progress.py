"""A long analysis in the background (issue 18 item 4): the forward pass reports each layer and stops
between two layers when cancelled; the page keeps what it shows, then shows the result once done."""

from __future__ import annotations


import pytest
from dash import no_update

from attention_explorer.callbacks import analyze
from attention_explorer.services import config
from attention_explorer.services.errors import Cancelled
from attention_explorer.services.extraction import analyse, cached_analysis
from attention_explorer.services.model.progress import layer_steps
from attention_explorer.services.store.memory import memory
from tests import tiny_models as tm


@pytest.fixture
def offered(settings, llama):
    return config.configure(models=settings.models + (llama,))


def _text(words: int) -> str:
    return " ".join(tm.long_text(words).split()[:words])


def test_the_forward_pass_reports_each_layer_recorded_or_eager(offered, llama, tiny_models):
    for model, layers in ((llama, 2), (tiny_models["bert"], None), (None, 6)):
        steps = []
        with layer_steps(lambda done, total: steps.append((done, total))):
            result = analyse(_text(30) + " " + str(layers), model)[1]
        layers = result.num_layers
        # every layer once, in order (the eager hooks tell a layer done when the next starts: all but the last)
        assert [d for d, _t in steps] in (list(range(1, layers + 1)), list(range(0, layers)))
        assert {t for _d, t in steps} == {layers}


def test_a_cancel_stops_the_pass_between_layers_and_keeps_nothing(offered, llama):
    text = _text(40)
    seen = []

    def stop(done, total):
        seen.append(done)
        if done == 1:
            raise Cancelled

    with pytest.raises(Cancelled), layer_steps(stop):
        analyse(text, llama)
    assert seen == [1]  # the second layer never ran
    assert cached_analysis(text, llama) is None
    assert analyse(text, llama)[1].num_layers == 2  # and it can be run again


@pytest.fixture
def held(hold_steps):
    return hold_steps(analyze)


def _job(out):
    return memory().jobs.get(out["analyze_job"]["id"])


def test_a_long_text_runs_in_the_background_with_progress_and_cancel(offered, llama, held):
    text = _text(1200)
    assert len(text) >= 4 * analyze.BACKGROUND_TOKENS
    out = analyze.analyze({"text": text, "model": llama, "layer": 0, "head": "all"})
    assert out["handle"] is no_update and out["status"] is no_update  # the page keeps what it shows
    assert out["analyze_poll"] is False and out["analyze_progress"] == {}
    job = _job(out)
    assert held.entered.acquire(timeout=60)  # layer 1 ran; held before its progress is recorded
    running = analyze.poll(out["analyze_job"], None)
    assert running["analyze_progress_label"] == "Running the model: 0 of … layers…"
    assert set(running) == {"analyze_progress_bar", "analyze_progress_label"}  # inside the area only
    held.go.set()
    held.go.clear()
    assert held.entered.acquire(timeout=60)  # layer 2 ran
    assert analyze.poll(out["analyze_job"], None)["analyze_progress_label"] == "Running the model: 1 of 2 layers…"
    cancelled = analyze.cancel(1, out["analyze_job"])
    assert cancelled["analyze_poll"] is True and "cancelled" in cancelled["analyze_progress_text"]
    assert "handle" not in cancelled
    held.go.set()
    job.thread.join(60)
    assert job.state == "cancelled"
    assert cached_analysis(text, llama) is None  # nothing kept
    assert "cancelled" in analyze.poll(out["analyze_job"], None)["analyze_progress_text"]


def test_a_finished_background_analysis_is_shown(offered, llama, monkeypatch):
    text = _text(1100)
    out = analyze.analyze({"text": text, "model": llama, "layer": 0, "head": "all"})
    job = _job(out)
    job.thread.join(120)
    assert job.state == "done"
    done = analyze.poll(out["analyze_job"], {"n": 2})
    assert done["ready"] == {"n": 3} and done["analyze_poll"] is True and done["analyze_progress"] == {"display": "none"}
    shown = analyze.analyze({"text": text, "model": llama, "layer": 0, "head": "all", "synchronous": True})
    assert shown["handle"]["tokens"] > 1024 and shown["analyze_job"] is None
    # the same text again is cached: no background
    again = analyze.analyze({"text": text, "model": llama, "layer": 0, "head": "all"})
    assert again["handle"] is not no_update and again["analyze_job"] is None


def test_short_texts_and_bert_sized_models_answer_at_once(settings, tiny_models):
    assert not analyze.long_analysis("short", None, tiny_models["gpt2"])
    assert not analyze.long_analysis("word " * 2000, None, None)  # the default model reads 512 tokens at most


def test_a_cancel_while_the_model_loads_does_not_switch_it_to_eager(settings, tmp_path):
    """Loading tries a recording pass; a Cancel there would read as "cannot be recorded". The trial pass
    reports no progress, so the Cancel reaches the analysis's own pass."""
    from attention_explorer.services.model.loading import get_model

    fresh = str(tm.build("llama", tmp_path / "fresh-llama", seed=3))
    config.configure(models=settings.models + (fresh,))

    def stop(done, total):
        raise Cancelled

    with pytest.raises(Cancelled), layer_steps(stop):
        analyse(_text(20), fresh)
    assert get_model(fresh).recorded
