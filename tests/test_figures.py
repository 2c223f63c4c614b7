"""Figure builders, checked against independent numpy computations."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from components import figures


def decode(spec: dict) -> np.ndarray:
    dtype = {"u1": np.uint8, "f4": np.float32, "i4": np.int32, "f8": np.float64}[spec["dtype"]]
    array = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=dtype)
    if "shape" in spec:
        array = array.reshape([int(n) for n in spec["shape"].split(",")])
    return array


def random_attention(heads: int, seq: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(heads, seq, seq)) * 3
    att = np.exp(logits)
    return (att / att.sum(-1, keepdims=True)).astype(np.float32)


def test_typed_array_round_trip():
    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    spec = figures.typed_array(a)
    assert spec["shape"] == "3, 4" and spec["dtype"] == "f4"
    np.testing.assert_array_equal(decode(spec), a)


def test_head_grid_one_trace_per_head_with_quantised_weights():
    att = random_attention(12, 13)
    labels = [f"t{i}" for i in range(13)]
    fig = figures.head_grid_figure(att, labels, layer=3, selected=5)
    assert len(fig["data"]) == 12
    for head, trace in enumerate(fig["data"]):
        z = decode(trace["z"])
        assert z.dtype == np.uint8 and z.shape == (13, 13)
        # independent: weight * 255 rounded, so decoding is within half a step of the true weight
        assert np.abs(z / 255.0 - att[head]).max() <= 0.5 / 255 + 1e-6
    assert fig["layout"]["meta"]["tokens"] == labels and fig["layout"]["meta"]["heads"] == list(range(12))
    assert fig["layout"]["xaxis"]["ticktext"] == labels
    assert "Layer 3" in fig["layout"]["title"]["text"]
    assert fig["layout"]["annotations"][5]["text"] == "<b>head 5</b>"
    assert len(fig["layout"]["shapes"]) == 1


def test_head_grid_pools_long_text():
    att = random_attention(2, 300)
    fig = figures.head_grid_figure(att, ["x"] * 300, layer=0)
    z = decode(fig["data"][0]["z"])
    assert z.shape == (100, 100) and fig["layout"]["meta"]["block"] == 3
    expected = att[0].reshape(100, 3, 100, 3).max(axis=(1, 3))
    assert np.abs(z / 255.0 - expected).max() <= 0.5 / 255 + 1e-6
    assert fig["layout"]["xaxis"]["showticklabels"] is False


def test_heatmap_exact_values_and_unique_labels():
    att = random_attention(1, 5)[0]
    fig = figures.heatmap_figure(att, ["the", "cat", "the", "<b>", "."], "Layer 0 · Head 1")
    trace = fig["data"][0]
    np.testing.assert_array_equal(decode(trace["z"]), att)
    assert len(set(trace["x"])) == 5  # the repeated "the" gets its own column
    assert trace["x"][3] == "&lt;b&gt;"  # HTML in tokens is shown literally
    assert trace["hovertemplate"].startswith("%{y} → %{x}")
    assert fig["layout"]["title"]["text"] == "Layer 0 · Head 1"


def test_select_arcs_matches_a_loop():
    att = random_attention(3, 9, seed=4)
    g, q, k, w = figures.select_arcs(att, top_k=2, min_weight=0.1)
    expected = set()
    for gi in range(3):
        for qi in range(9):
            for ki in np.argsort(-att[gi, qi], kind="stable")[:2]:
                if att[gi, qi, ki] >= 0.1:
                    expected.add((gi, qi, int(ki)))
    assert set(zip(g.tolist(), q.tolist(), k.tolist())) == expected
    assert np.allclose(w, att[g, q, k])
    g, q, k, w = figures.select_arcs(att, top_k=3, min_weight=0.0, focus=4)
    assert set(q.tolist()) == {4} and len(k) == 9


def test_arc_figure_few_traces_and_focus():
    att = random_attention(12, 40)
    labels = [f"w{i}" for i in range(40)]
    fig = figures.arc_figure(att, labels, top_k=3, min_weight=0.0, group_names=[str(h) for h in range(12)])
    assert fig["data"][0]["name"] == "tokens"
    assert len(fig["data"]) <= 1 + 12 * len(figures.ARC_WIDTHS)
    assert fig["layout"]["meta"]["arcs"] == 12 * 40 * 3
    focused = figures.arc_figure(att[:1], labels, top_k=3, min_weight=0.0, focus=7)
    assert focused["layout"]["meta"]["arcs"] == 3
    # every arc drawn starts at token 7's x position
    x7 = figures.token_positions(labels)[7]
    for trace in focused["data"][1:]:
        xs = decode(trace["x"])
        starts = xs[:: figures._ARC_POINTS + 1]
        assert np.allclose(starts, x7, atol=1e-3)


def test_causal_arcs_all_bend_down():
    att = np.tril(np.ones((1, 6, 6)))
    att /= att.sum(-1, keepdims=True)
    fig = figures.arc_figure(att.astype(np.float32), list("abcdef"), top_k=6, min_weight=0.0, causal=True)
    ys = np.concatenate([decode(t["y"]) for t in fig["data"][1:]])
    ys = ys[~np.isnan(ys)]
    loops = ys > 0  # self-loops sit just above the baseline
    assert ys.min() < -0.1 and ys[loops].max() < 0.35
    assert "Causal model" in fig["layout"]["annotations"][0]["text"]


@pytest.mark.parametrize("message", ["plain", "<script>alert(1)</script>"])
def test_empty_figure_escapes(message):
    fig = figures.empty_figure(message)
    assert "<script>" not in fig["layout"]["annotations"][0]["text"]
