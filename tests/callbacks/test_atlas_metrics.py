"""The head atlas of issue 18: sink and induction columns, GQA groups marked, the metric pass in the
background with progress and Cancel (callbacks/atlas.py, services/store/jobs.py)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from dash import no_update

from attention_explorer.callbacks import atlas
from attention_explorer.components import ids
from attention_explorer.services import config, extract_attention
from attention_explorer.services.analyses import heads
from attention_explorer.services.analyses.views import View, ViewOptions
from attention_explorer.services.result import AttentionTooLarge
from attention_explorer.services.extraction import induction_scores
from attention_explorer.services.store import jobs as jobs_module
from attention_explorer.services.store.memory import memory
from tests import tiny_models as tm
from tests.callbacks.test_callbacks import run_analyze, view
from tests.components.test_figures import decode


@pytest.fixture
def offered(settings, llama):
    return config.configure(models=settings.models + (llama,))


def _text(words: int) -> str:
    return " ".join(tm.long_text(words).split()[:words])


def _numpy_maps(result, layer: int) -> np.ndarray:
    """Every head of a layer from the kept queries and keys, in plain numpy (float64): softmax of
    q·k × scaling over the keys a query sees (causal). The tiny Llama has no window, cap or sinks."""
    q = result.queries[layer].astype(np.float64)
    k = result.keys[layer].astype(np.float64)
    group = result.num_heads // result.num_kv_heads
    k = np.repeat(k, group, axis=0)
    scores = q @ k.transpose(0, 2, 1) * float(result.scaling[layer])
    n = q.shape[1]
    scores = np.where(np.tril(np.ones((n, n), bool)), scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    w = np.exp(scores)
    return w / w.sum(axis=-1, keepdims=True)


def test_atlas_shows_sink_induction_and_kv_groups_of_a_gqa_llama(offered, llama):
    handle = run_analyze(_text(60), llama)["handle"]
    out = view(handle, ids.TAB_ATLAS, metric="sink")
    result = extract_attention(_text(60), llama)
    rows = out["atlas_table"].data
    assert len(rows) == 8 and {"sink", "induction"} <= set(rows[0])
    z = decode(out["atlas_map"]["data"][0]["z"])
    probe = induction_scores(llama)
    for layer in range(2):
        maps = _numpy_maps(result, layer)
        for head in range(4):
            sink = maps[head, 1:, 0].mean()  # every query but the first (it sees only the first token)
            assert z[layer, head] == pytest.approx(sink, abs=2e-3)
            row = next(r for r in rows if r["id"] == f"{layer}-{head}")
            assert row["sink"] == pytest.approx(sink, abs=2e-3)
            assert row["induction"] == pytest.approx(probe[layer, head], abs=1e-3)
    texts = [a["text"] for a in out["atlas_map"]["layout"]["annotations"]]
    assert texts == ["kv 0", "kv 1"]  # 4 query heads, 2 key/value heads: heads 0-1 and 2-3
    assert "key/value head 1 (shared by heads 2–3)" in out["atlas_map"]["data"][0]["text"][0][3]
    induction = view(handle, ids.TAB_ATLAS, metric="induction", triggered={"metric"})
    np.testing.assert_allclose(decode(induction["atlas_map"]["data"][0]["z"]), probe, atol=1e-6)
    grid = view(handle, ids.TAB_GRID)["grid"]
    assert grid["layout"]["meta"]["tile_names"] == ["head 0 · kv 0", "head 1 · kv 0", "head 2 · kv 1", "head 3 · kv 1"]
    assert grid["data"][1]["text"][3] == "head 3 · kv 1"


def test_no_kv_marks_without_grouped_query_attention(settings, tiny_models):
    handle = run_analyze("the cat sat on the mat", tiny_models["gpt2"])["handle"]
    out = view(handle, ids.TAB_ATLAS)
    assert not out["atlas_map"]["layout"].get("annotations")
    assert "kv" not in " ".join(view(handle, ids.TAB_GRID)["grid"]["layout"]["meta"]["tile_names"])


def test_atlas_csv_has_sink_and_induction(offered, llama):
    from attention_explorer.services.analyses.exports import atlas_csv

    result = extract_attention(_text(30), llama)
    metrics, labels, _rows = atlas.atlas_data(result, 3, None)
    text = atlas_csv(metrics, labels)
    header = text.splitlines()[0].split(",")
    assert header[:3] == ["layer", "head", "type"] and "sink" in header and "induction" in header
    line = text.splitlines()[1 + 4 * 1 + 2].split(",")  # layer 1, head 2
    assert float(line[header.index("induction")]) == pytest.approx(induction_scores(llama)[1, 2])


def _wait_for(job_id: str) -> None:
    job = memory().jobs.get(job_id)
    job.thread.join(120)
    assert not job.thread.is_alive()


@pytest.fixture
def background(monkeypatch, hold_steps):
    monkeypatch.setattr(atlas, "SYNC_CELLS", 0)  # every pass goes to the background
    return hold_steps(atlas)


def test_a_long_pass_runs_in_the_background_with_progress_and_cancel(offered, llama, background):
    handle = run_analyze(_text(80), llama)["handle"]
    first = view(handle, ids.TAB_ATLAS, triggered={"tab"})
    # the atlas keeps what it showed; the progress bar and the poll start
    assert first["atlas_map"] is no_update and first["atlas_table"] is no_update
    assert first["atlas_poll"] is False and first["atlas_progress"] == {"display": "block"}
    assert first["atlas_measuring"] == {"display": "flex"}  # the figure area says it is measuring
    job_id = first["atlas_job"]["id"]
    assert len(job_id) == 32
    assert background.entered.acquire(timeout=60)  # the first head is measured, held before its step
    polled = atlas.poll(1, {"id": job_id}, {"n": 4})
    assert polled["atlas_progress_label"] == "Measuring every head of this text: 0 of 8 heads…"
    assert polled["atlas_progress_bar"] == 0
    # a "running" answer touches only what is inside the progress area: arriving after a Cancel (polls
    # and clicks are answered in parallel), it can neither show the area again nor hide how the pass ended
    assert set(polled) == {"atlas_progress_bar", "atlas_progress_label"}
    # a layer change while it runs joins the same job
    assert view(handle, ids.TAB_ATLAS, triggered={"layer"}, layer=1)["atlas_job"]["id"] == job_id
    cancelled = atlas.cancel(1, {"id": job_id})
    assert cancelled["atlas_poll"] is True and cancelled["atlas_job"] is None
    assert cancelled["atlas_progress"] == {"display": "none"} and "cancelled" in cancelled["atlas_progress_text"]
    assert "atlas_map" not in cancelled  # the page stays as it was
    assert cancelled["atlas_measuring"] == {"display": "none"}  # and its figure is seen again
    # a poll answered before the pass reaches its next head no longer says it measures
    assert "cancelled" in atlas.poll(2, {"id": job_id}, {"n": 4})["atlas_progress_text"]
    background.go.set()
    _wait_for(job_id)
    job = memory().jobs.get(job_id)
    # stopped at its next step: the first layer's 4 heads measured (held maps go layer by layer)
    assert job.state == "cancelled" and job.done == 4
    assert atlas.known(handle["key"], 3, False, "decoder") is None  # nothing kept of a cancelled pass
    # a head clicked does not start it again; opening the tab again does
    clicked = view(handle, ids.TAB_ATLAS, triggered={"head"}, head="1")
    assert clicked["atlas_job"] is None and "cancelled" in clicked["atlas_progress_text"]
    again = view(handle, ids.TAB_ATLAS, triggered={"tab"})
    second = again["atlas_job"]["id"]
    assert second != job_id
    _wait_for(second)
    done = atlas.poll(2, {"id": second}, {"n": 4})
    assert done["request"] == {"changed": [f"{ids.ATLAS_WINDOW}.value"], "n": 5}  # the router draws the atlas
    assert done["atlas_poll"] is True and done["atlas_job"] is None
    assert done["atlas_measuring"] == {"display": "none"}
    drawn = view(handle, ids.TAB_ATLAS, triggered={"window"}, metric="sink")
    result = extract_attention(_text(80), llama)
    expected, labels, _rows = atlas._measure(result, 3)
    np.testing.assert_allclose(decode(drawn["atlas_map"]["data"][0]["z"]), expected["sink"], atol=1e-6)
    assert len(drawn["atlas_table"].data) == 8


def test_progress_and_cancel_reach_a_job_from_another_worker(offered, llama, background):
    """A poll or a Cancel reaching another process: it reads and writes the job's state in the shared
    cache (here flask-caching's simple cache; the file-system cache or Redis in production)."""
    handle = run_analyze(_text(50), llama)["handle"]
    job_id = view(handle, ids.TAB_ATLAS, triggered={"tab"})["atlas_job"]["id"]
    assert background.entered.acquire(timeout=60)
    other = jobs_module.JobRegistry()  # another worker's registry: it does not run the job
    assert other.get(job_id) is None
    assert other.status(job_id) == {"state": "running", "done": 0, "total": 8}
    assert other.cancel(job_id)
    assert other.status(job_id)["state"] == "cancelled"  # at once, though the pass is still held
    background.go.set()
    _wait_for(job_id)
    assert memory().jobs.get(job_id).state == "cancelled"
    assert other.status(job_id)["state"] == "cancelled"


def test_measurements_are_read_back_from_the_shared_cache(offered, llama):
    handle = run_analyze(_text(40), llama)["handle"]
    first = view(handle, ids.TAB_ATLAS, metric="induction")
    memory().derived.clear()  # another worker: nothing in its memory
    found = atlas.known(handle["key"], 3, False, "decoder")
    assert found is not None
    result = extract_attention(_text(40), llama)
    expected, labels, _ = atlas._measure(result, 3)
    for name in heads.ALL_METRICS:
        np.testing.assert_allclose(found[0][name], expected[name], atol=1e-12)
    assert (found[1] == labels).all()
    again = view(handle, ids.TAB_ATLAS, metric="induction")
    assert decode(again["atlas_map"]["data"][0]["z"]).tolist() == decode(first["atlas_map"]["data"][0]["z"]).tolist()


@pytest.mark.parametrize("junk", [None, "", "[]", "{}", json.dumps({"metrics": {}, "labels": [["sink"]]}),
                                  json.dumps({"metrics": {n: [[0.1]] for n in heads.ALL_METRICS}, "labels": [["rm -rf"]]}),
                                  json.dumps({"metrics": {n: [["x"]] for n in heads.ALL_METRICS}, "labels": [["sink"]]}),
                                  json.dumps({"metrics": {n: [[0.1, 0.2]] for n in heads.ALL_METRICS},
                                              "labels": [["sink"]]})])
def test_junk_measurements_in_the_shared_cache_are_ignored(junk):
    assert atlas._from_json(junk) is None
    good = json.dumps({"metrics": {n: [[0.25]] for n in heads.ALL_METRICS}, "labels": [["sink"]]})
    assert atlas._from_json(good)[0]["sink"][0, 0] == 0.25


def test_the_page_cannot_name_a_job_that_is_not_a_job_id(settings):
    for junk in (None, 3, "x" * 32, {"id": "../../etc"}, {"id": "A" * 32}, ["0" * 32]):
        assert atlas.poll(1, junk, None)["atlas_poll"] is True  # polling stops, nothing is looked up
        assert atlas.cancel(1, junk)["atlas_job"] is no_update


def test_registry_is_bounded_and_refuses_too_many_running():
    registry = jobs_module.JobRegistry(limit=3, running=2)
    hold = threading.Event()
    running = [registry.start(("k", i), lambda step: hold.wait(60)) for i in range(2)]
    with pytest.raises(jobs_module.Busy):
        registry.start(("k", 9), lambda step: None)
    assert registry.start(("k", 0), lambda step: None) is running[0]  # the same key joins its job
    hold.set()
    for job in running:
        job.thread.join(60)
    for i in range(5):
        registry.start(("done", i), lambda step: None).thread.join(60)
    assert len(registry) == 3


@pytest.mark.parametrize("text", [None, "", "{", '{"state": "running", "done": 3, "total": 2}',
                                  '{"state": "pwned", "done": 0, "total": 1}', '{"state": "done", "done": true, "total": 1}',
                                  "x" * 600])
def test_published_status_is_parsed(text):
    assert jobs_module.parse_status(text) is None
    assert jobs_module.parse_status('{"state": "done", "done": 2, "total": 2}') == {"state": "done", "done": 2, "total": 2}


def _numpy_rows(result, layer: int, head: int, q0: int, q1: int) -> np.ndarray:
    """Rows ``q0:q1`` of one head from the kept queries and keys, in plain numpy (float64)."""
    q = result.queries[layer, head, q0:q1].astype(np.float64)
    k = result.keys[layer, result.kv_head(head)].astype(np.float64)
    scores = q @ k.T * float(result.scaling[layer])
    scores = np.where(np.arange(k.shape[0])[None, :] <= np.arange(q0, q1)[:, None], scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    w = np.exp(scores)
    return w / w.sum(axis=-1, keepdims=True)


def test_the_atlas_at_4096_tokens_is_measured_head_by_head_without_the_whole_array(offered, llama):
    from attention_explorer.services.extraction import analyse

    key, result = analyse(_text(3000), llama)
    assert result.seq_len == 4096 and not result.dense  # 2 x 4 x 4096^2 cells: more than a result holds whole
    steps = []
    metrics, labels, rows = atlas.atlas_data(result, 3, key, step=lambda done, total: steps.append((done, total)))
    assert steps == [(i, 8) for i in range(1, 9)]  # progress after each head
    assert "_dense" not in result.__dict__  # the whole array was never built
    for layer, head in [(0, 0), (1, 3)]:
        sink = previous = 0.0
        for q0 in range(0, 4096, 512):
            w = _numpy_rows(result, layer, head, q0, q0 + 512)
            picked = np.arange(q0, q0 + 512)
            sink += w[picked >= 1, 0].sum()
            previous += w[picked >= 1, picked[picked >= 1] - 1].sum()
        assert metrics["sink"][layer, head] == pytest.approx(sink / 4095, abs=1e-4)
        assert metrics["previous"][layer, head] == pytest.approx(previous / 4095, abs=1e-4)
    assert atlas.known(key, 3, False, "decoder") is not None


def test_the_atlas_tab_at_4096_tokens_measures_in_the_background_then_draws(offered, llama):
    """Through the router, as the page asks: a 4,096-token text's atlas goes to the background (its maps
    are not held), then draws with the sink and induction columns and the kv groups."""
    from attention_explorer.callbacks import analyze

    handle = analyze.analyze({"text": _text(3000), "model": llama, "synchronous": True})["handle"]
    assert handle["tokens"] == 4096
    first = view(handle, ids.TAB_ATLAS, triggered={"tab"}, metric="sink")
    assert first["atlas_map"] is no_update and first["atlas_poll"] is False
    _wait_for(first["atlas_job"]["id"])
    done = atlas.poll(1, first["atlas_job"], None)
    assert done["request"]["changed"] == [f"{ids.ATLAS_WINDOW}.value"]
    drawn = view(handle, ids.TAB_ATLAS, triggered={"window"}, metric="sink")
    assert len(drawn["atlas_table"].data) == 8 and {"sink", "induction"} <= set(drawn["atlas_table"].data[0])
    assert [a["text"] for a in drawn["atlas_map"]["layout"]["annotations"]] == ["kv 0", "kv 1"]
    assert np.isfinite(decode(drawn["atlas_map"]["data"][0]["z"])).all()


def _independent_pair_share(result, query_segment: int, key_segment: int) -> np.ndarray:
    """The pair filter's share in plain numpy (float64), head by head from the kept queries and keys:
    softmax of q·k × scaling over the keys each query sees (causal), summed over the key sentence's
    tokens, averaged over the query sentence's tokens."""
    segments = np.array([-1 if s is None else s for s in result.segment_ids])
    rows, cols = np.flatnonzero(segments == query_segment), np.flatnonzero(segments == key_segment)
    group = result.num_heads // result.num_kv_heads
    share = np.zeros((result.num_layers, result.num_heads))
    for layer in range(result.num_layers):
        k = result.keys[layer].astype(np.float64)
        for head in range(result.num_heads):
            q = result.queries[layer, head, rows].astype(np.float64)
            scores = q @ k[head // group].T * float(result.scaling[layer])
            scores = np.where(np.arange(result.seq_len)[None, :] <= rows[:, None], scores, -np.inf)
            w = np.exp(scores - scores.max(axis=-1, keepdims=True))
            w /= w.sum(axis=-1, keepdims=True)
            share[layer, head] = w[:, cols].sum(axis=-1).mean()
    return share


def test_the_pair_share_of_a_long_pair_is_read_head_by_head(offered, llama):
    words = tm.long_text(3000).split()
    result = extract_attention(" ".join(words[:1500]), llama, text_pair=" ".join(words[1500:3000]))
    assert result.seq_len == 4096 and not result.dense  # over the dense bound: no whole array
    with pytest.raises(AttentionTooLarge):
        result.attentions
    for pair, (a, b) in {"B→A": (1, 0), "B→B": (1, 1)}.items():
        share = atlas.pair_share(View(result, ViewOptions(), pair=pair))
        expected = _independent_pair_share(result, a, b)
        assert share.shape == (2, 4) and 0.01 < expected.mean() < 0.99
        np.testing.assert_allclose(share, expected, atol=2e-4)
