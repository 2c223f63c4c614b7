"""The arc view's rows (``services.analyses.arcs.window_rows``): only the window's rows are read, and
they equal the whole matrices ``View`` shows (every switch), and on a long result (maps not held) the
model's own eager attention."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from attention_explorer.components import figures
from attention_explorer.services import config, extract_attention
from attention_explorer.services import result as result_module
from attention_explorer.services.analyses import arcs as arcs_module
from attention_explorer.services.analyses.arcs import window_rows
from attention_explorer.services.analyses.kinds import OnDemandMaps
from attention_explorer.services.analyses.views import View, ViewOptions
from attention_explorer.services.result import AttentionResult, AttentionTooLarge
from tests import tiny_models as tm
from tests.services.analyses.test_views import translation

# A sentence pair of an encoder: [CLS] un ##believ ##able cats [SEP] they sleep ##ing [SEP]
TOKENS = ["[CLS]", "un", "##believ", "##able", "cats", "[SEP]", "they", "sleep", "##ing", "[SEP]"]
WORD_IDS = [None, 0, 0, 0, 1, None, 0, 1, 1, None]
SEGMENTS = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]


def pair_result() -> AttentionResult:
    rng = np.random.default_rng(3)
    n, layers, heads = len(TOKENS), 2, 3
    att = rng.random((layers, heads, n, n)) ** 4
    att = (att / att.sum(-1, keepdims=True)).astype(np.float16)
    return AttentionResult(
        tokens=TOKENS, attentions=att, model_id="tiny-bert", truncated=False,
        special_mask=np.array([t.startswith("[") for t in TOKENS]), word_ids=WORD_IDS, segment_ids=SEGMENTS,
        is_causal=False, unknown_share=0.0, unknown_count=0, token_count_before_truncation=n, token_limit=64,
        text="unbelievable cats", value_norms=rng.random((layers, heads, n)).astype(np.float32) + 0.1)


OPTIONS = [ViewOptions(), ViewOptions(hide_special=True), ViewOptions(merge_words=True),
           ViewOptions(hide_special=True, merge_words=True), ViewOptions(value_norm=True),
           ViewOptions(value_norm=True, hide_special=True, merge_words=True)]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: o.note or "raw")
@pytest.mark.parametrize("pair", [None, "A→B"])
def test_the_windows_rows_are_the_views_matrices(options, pair):
    """Every switch, the pair filter, one head, every head and the mean: the rows read for a window are
    those rows of the whole matrices the other views show."""
    view = View(pair_result(), options, pair=pair)
    units = len(view.labels)
    for layer, (first, end) in itertools.product(range(2), [(0, units), (1, units - 1), (units - 2, units)]):
        every = view.layer(layer)
        np.testing.assert_allclose(window_rows(view, layer, [0, 1, 2], first, end), every[:, first:end], atol=1e-6)
        np.testing.assert_allclose(window_rows(view, layer, [2], first, end), every[2:3, first:end], atol=1e-6)
        mean, _title = view.matrix(layer, None)
        np.testing.assert_allclose(window_rows(view, layer, None, first, end), mean[None, first:end], atol=1e-6)


@pytest.mark.parametrize("kind", ["decoder", "cross"])
@pytest.mark.parametrize("options", [ViewOptions(), ViewOptions(hide_special=True, merge_words=True)],
                         ids=["raw", "hidden-merged"])
def test_the_windows_rows_of_an_encoder_decoder_model(kind, options):
    view = View(translation(), options, kind=kind)
    rows = len(view.labels)
    every = view.layer(1)
    np.testing.assert_allclose(window_rows(view, 1, [0, 1, 2], 1, rows), every[:, 1:rows], atol=1e-6)
    assert window_rows(view, 1, [0], 1, rows).shape[-1] == len(view.col_labels)


# ------------------------------------------------------------------ a long result: maps not held


@pytest.fixture
def offered(settings, llama):
    return config.configure(models=settings.models + (llama,))


def _eager(path: str, text: str) -> list[np.ndarray]:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    enc = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_attentions=True)
    return [a[0].numpy() for a in out.attentions]


def test_a_long_results_arcs_are_the_top_keys_of_the_models_own_rows(offered, llama, monkeypatch):
    """Maps not held (``dense`` False: every whole map refused): the arc rows of a window are computed
    from the kept queries and keys and equal the model's eager attention; the figure's arcs are each
    query's top k keys of those rows (chosen over the whole row), the hover their exact weights."""
    text = " ".join(tm.long_text(200).split()[:200])
    result = extract_attention(text, model_id=llama)
    monkeypatch.setattr(result_module, "DENSE_CELLS", 1000)
    long = dataclasses.replace(result)
    assert not long.dense
    eager = _eager(llama, text)
    view = View(long, ViewOptions())
    assert isinstance(view.kv.attentions, OnDemandMaps) and view.kv.attentions.shape[2] == long.seq_len
    with pytest.raises(AttentionTooLarge):
        np.asarray(view.kv.attentions)  # no view gets every map by accident
    n = long.seq_len
    labels = view.labels
    for start in (0, 70, n - 64):  # the window slides
        first, end = figures.arc_window(n, start)
        assert end - first == figures.ARC_WINDOW
        rows = window_rows(view, 1, list(range(long.num_heads)), first, end)
        np.testing.assert_allclose(rows, eager[1][:, first:end], atol=1e-3)
        fig = figures.arc_figure(rows, labels, top_k=3, min_weight=0.0, first=first, causal=True,
                                 group_names=[str(h) for h in range(long.num_heads)])
        assert fig["layout"]["meta"]["first"] == first and fig["data"][0]["text"] == [
            figures.safe_label(t) for t in labels[first:end]]
        drawn = {}
        for line in figures.decoded_arc_lines(fig):
            for q, k, text_ in zip(line["queries"], line["keys"], line["text"]):
                assert text_.split("\n")[0].startswith(f"{labels[first + q]} → {labels[k]}")
                drawn[(line["head"], first + q, k)] = float(text_.split("\n")[1].split()[1])
        meta = fig["layout"]["meta"]
        # every arc is drawn: to keys in the window as arcs, to the others dotted to the window's edge
        assert len(drawn) == meta["arcs"] + meta["outside"] and meta["arcs"] > 0
        assert (meta["outside"] > 0) == (first > 0)  # causal: no key after the window
        assert meta["outside"] == sum(not first <= k < end for (_h, _q, k) in drawn)
        for head, q in itertools.product(range(long.num_heads), range(first, end)):
            row = eager[1][head, q]
            mine = {k: w for (h, qq, k), w in drawn.items() if (h, qq) == (head, q)}
            third = np.sort(row)[-3]
            for k, w in mine.items():  # each arc is one of the row's 3 largest (up to 1e-3), its weight exact
                assert w == pytest.approx(row[k], abs=1e-3) and row[k] >= third - 1e-3
            # the row's clear top 3 (not a near-tie at the 3rd place) are all drawn
            assert {int(k) for k in np.flatnonzero(row > third + 1e-3)} <= set(mine)
            assert len(mine) == min(3, int((row > 0).sum()))  # causal: the first rows see fewer keys


# ------------------------------------------------------------------ the arcs picked from kept row tops


def _expected_arcs(rows: np.ndarray, top_k: int, min_weight: float, focus: int | None = None) -> dict:
    """``{(group, query, key): weight}`` by a plain loop over whole rows (``(groups, queries, keys)``): each
    query's ``top_k`` largest weights that are >= ``min_weight`` and > 0."""
    out = {}
    for g, q in itertools.product(range(rows.shape[0]), range(rows.shape[1])):
        if focus is not None and q != focus:
            continue
        row = rows[g, q].astype(np.float64)
        for key in sorted(range(len(row)), key=lambda j: -row[j])[:top_k]:
            if row[key] >= min_weight and row[key] > 0:
                out[(g, q, key)] = float(row[key])
    return out


def _as_dict(picked) -> dict:
    g, q, k, w = picked
    assert len(set(zip(g.tolist(), q.tolist(), k.tolist()))) == len(g)  # no arc twice
    return {(int(a), int(b), int(c)): float(v) for a, b, c, v in zip(g, q, k, w)}


@pytest.mark.parametrize("options", [ViewOptions(), ViewOptions(hide_special=True), ViewOptions(value_norm=True)],
                         ids=["raw", "hidden", "value"])
def test_window_arcs_are_each_rows_top_k_of_the_whole_matrices(options):
    """The arcs of a window (from the row tops kept a block at a time) are, for every switch, top k,
    minimum weight and focus, each query's top k of the whole matrix the other views show, exact."""
    view = View(pair_result(), options, key=f"arcs-tops-{options.note}")
    units = len(view.labels)
    every = view.layer(1)
    mean, _title = view.matrix(1, None)
    for (first, end), top_k, min_weight in itertools.product([(0, units), (2, units - 1)], [1, 3, 10], [0.0, 0.2]):
        want = _expected_arcs(every[:, first:end], top_k, min_weight)
        got = _as_dict(arcs_module.window_arcs(view, 1, [0, 1, 2], first, end, top_k, min_weight))
        assert got.keys() == want.keys() and all(got[a] == pytest.approx(want[a], abs=1e-6) for a in want)
        alone = _as_dict(arcs_module.window_arcs(view, 1, None, first, end, top_k, min_weight, focus=1))
        assert alone.keys() == _expected_arcs(mean[None, first:end], top_k, min_weight, focus=1).keys()


def test_a_long_results_window_arcs_across_blocks_are_the_models_own(offered, llama, monkeypatch):
    """A long result (maps not held): windows that start anywhere (across the blocks of 64 rows the tops
    are kept in) give each query's top k keys of the model's eager rows; a window seen again, or moved
    within the blocks read, computes no row again."""
    text = " ".join(tm.long_text(200).split()[:200])
    result = extract_attention(text, model_id=llama)
    monkeypatch.setattr(result_module, "DENSE_CELLS", 1000)
    long = dataclasses.replace(result)
    assert not long.dense
    eager = _eager(llama, text)[0]
    view = View(long, ViewOptions(), key="arcs-long-blocks")
    n = long.seq_len
    computed = []
    real_rows = arcs_module.window_rows
    monkeypatch.setattr(arcs_module, "window_rows", lambda *a: computed.append(a[3:]) or real_rows(*a))
    heads = list(range(long.num_heads))
    for first in (0, 30, 64, 100, n - 64):
        end = first + figures.ARC_WINDOW
        got = _as_dict(arcs_module.window_arcs(view, 0, heads, first, end, 3, 0.01))
        for (h, q, k), w in got.items():  # exact weights, each among its row's 3 largest
            row = eager[h, first + q]
            assert w == pytest.approx(row[k], abs=1e-3) and row[k] >= np.sort(row)[-3] - 1e-3
        for h, q in itertools.product(heads, range(end - first)):  # the row's clear top 3 are all there
            row = eager[h, first + q]
            clear = {int(k) for k in np.flatnonzero(row > np.sort(row)[-3] + 1e-3) if row[k] >= 0.01 + 1e-3}
            assert clear <= {k for (hh, qq, k) in got if (hh, qq) == (h, q)}
    assert computed == [(0, 64), (64, 128), (128, 192), (192, 256), (256, n)][:len(computed)]
    assert len(computed) == len(range(0, n, arcs_module.ARC_BLOCK))  # each block once
    before = len(computed)
    arcs_module.window_arcs(view, 0, heads, 31, 95, 3, 0.01)  # moved back: kept
    arcs_module.window_arcs(view, 0, heads, 30, 94, 10, 0.0)  # other top k and weight: the same tops
    assert len(computed) == before
    arcs_module.window_arcs(view, 1, heads, 30, 94, 3, 0.01)  # another layer: its own
    assert len(computed) == before + 2


def test_more_arcs_a_token_than_kept_reads_the_rows():
    view = View(pair_result(), ViewOptions(), key="arcs-many")
    every = view.layer(0)
    top_k = arcs_module.ARC_TOP_MAX + 2  # the page offers at most ARC_TOP_MAX; the code stays right beyond
    got = _as_dict(arcs_module.window_arcs(view, 0, [0, 1, 2], 0, 10, top_k, 0.0))
    assert got.keys() == _expected_arcs(every, top_k, 0.0).keys()


def test_a_views_axes_are_remembered_per_analysis(monkeypatch):
    """A 4,096-token text's labels cost ~20 ms a request: a view of the same analysis (key) and switches
    reads them from memory; other switches, or a result without a key, make their own."""
    from attention_explorer.services.analyses import views as views_module

    calls = []
    real = views_module.display_token
    monkeypatch.setattr(views_module, "display_token", lambda t: calls.append(t) or real(t))
    result = pair_result()
    first = View(result, ViewOptions(), key="axes-once").labels
    assert len(calls) == len(TOKENS)
    again = View(result, ViewOptions(), key="axes-once")
    assert again.labels is first and len(calls) == len(TOKENS)
    hidden = View(result, ViewOptions(hide_special=True), key="axes-once").labels
    assert len(calls) == 2 * len(TOKENS) and hidden == [t for t in first if not t.startswith("[")]
    View(result, ViewOptions()).labels  # no key: nothing remembered
    View(result, ViewOptions()).labels
    assert len(calls) == 4 * len(TOKENS)
