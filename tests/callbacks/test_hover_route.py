"""The exact hover route (callbacks/hover.py, issue 18 item 1): ``GET exact/head`` and ``exact/overview`` answer
the float32 values a short text's picture shows, for every mode and switch, equal to the model's own eager
attention switched by hand (numpy); junk gets a clear 4xx, never a 500."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attention_explorer.callbacks import hover
from attention_explorer.callbacks.boundary import BadExactRequest, ExactRequest
from attention_explorer.components.analysis_figures import OVERVIEW_CELLS
from attention_explorer.services.extraction import analyse
from attention_explorer.services.web import ratelimit
from tests.callbacks.test_long_views import long_handle  # noqa: F401 - a fixture

SENTENCE = "The cat sat on the mat because it was tired."
PAIR = ("The cat sat on the mat.", "It was tired.")


@pytest.fixture
def client(make_app):
    """The app's server, made before any analysis so they share its cache."""
    ratelimit.reset()
    yield make_app().server.test_client()
    ratelimit.reset()


def eager(path: str, text: str, pair: str | None = None):
    """The model's own attention, ``(layers, heads, n, n)`` float64, from transformers' eager attention (not
    the app's code), and its tokens."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    encoded = tokenizer(text, pair, return_tensors="pt")
    with torch.no_grad():
        out = model(**encoded, output_attentions=True)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    return np.stack([a[0].double().numpy() for a in out.attentions]), tokens


def renormalised(m: np.ndarray) -> np.ndarray:
    return m / m.sum(axis=-1, keepdims=True)


def get(client, what: str = "head", **query):
    return client.get(f"/exact/{what}", query_string=query)


def floats(response) -> np.ndarray:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/octet-stream"
    shape = tuple(int(n) for n in response.headers["X-Shape"].split(","))
    return np.frombuffer(response.get_data(), dtype="<f4").reshape(shape)


# ------------------------------------------------------------------------------ values, by hand

def test_head_values_equal_the_models_eager_attention_in_every_mode(client, tiny_models):
    path = tiny_models["bert"]
    key, result = analyse(SENTENCE, path)
    att, tokens = eager(path, SENTENCE)
    assert tokens == result.tokens
    special = np.asarray(result.special_mask, dtype=bool)
    # raw: one head, and the mean of the heads
    raw = floats(get(client, key=key, layer=1, head=2))
    np.testing.assert_allclose(raw, att[1, 2], atol=2e-6)
    np.testing.assert_allclose(floats(get(client, key=key, layer=0, head="mean")), att[0].mean(axis=0), atol=2e-6)
    # the first token left out: column 0 gone, each row renormalised
    first = att[1, 2].copy()
    first[:, 0] = 0
    np.testing.assert_allclose(floats(get(client, key=key, layer=1, head=2, switches="first")), renormalised(first),
                               atol=2e-6)
    # special tokens hidden: their rows and columns gone, each row renormalised
    kept = np.flatnonzero(~special)
    hidden = floats(get(client, key=key, layer=1, head=2, switches="hide"))
    np.testing.assert_allclose(hidden, renormalised(att[1, 2][np.ix_(kept, kept)]), atol=2e-6)
    # weighted by value norm: α_ij ‖f(x_j)‖, rows renormalised (the norms are the recorded ones)
    norms = np.asarray(result.value_norms[1, 2], dtype=np.float64)
    weighted = floats(get(client, key=key, layer=1, head=2, mode="value"))
    np.testing.assert_allclose(weighted, renormalised(att[1, 2] * norms[None, :]), atol=2e-6)
    # both: value norm, then special tokens hidden
    both = floats(get(client, key=key, layer=1, head=2, mode="value", switches=["hide", "first"]))
    by_hand = att[1, 2] * norms[None, :]
    by_hand[:, 0] = 0
    by_hand = renormalised(by_hand)[np.ix_(kept, kept)]
    np.testing.assert_allclose(both, renormalised(by_hand), atol=2e-6)
    # a value the picture's palette could not give: more digits than 1/254 of the scale
    assert not np.allclose(raw, np.round(raw * 254) / 254, atol=1e-5)


def test_a_decoders_values_are_float32_not_the_stored_float16(client, tiny_models):
    path = tiny_models["gpt2"]
    key, result = analyse(SENTENCE, path)
    att, tokens = eager(path, SENTENCE)
    assert tokens == result.tokens
    got = floats(get(client, key=key, layer=1, head=1))
    np.testing.assert_allclose(got, att[1, 1], atol=2e-6)
    assert np.abs(result.attentions[1, 1].astype(np.float64) - att[1, 1]).max() > 2e-6  # float16 would not pass


def test_pair_filter_leaves_other_blocks_blank(client, tiny_models):
    path = tiny_models["bert"]
    key, result = analyse(PAIR[0], path, text_pair=PAIR[1])
    att, tokens = eager(path, *PAIR)
    assert tokens == result.tokens
    got = floats(get(client, key=key, layer=0, head=1, pair="A→B"))
    segments = result.segment_ids
    rows = np.array([s == 0 for s in segments])
    cols = np.array([s == 1 for s in segments])
    inside = rows[:, None] & cols[None, :]
    np.testing.assert_allclose(got[inside], att[0, 1][inside], atol=2e-6)
    assert np.isnan(got[~inside]).all()


def test_overview_row_is_the_pictures_max_pool(client, tiny_models):
    path = tiny_models["bert"]
    key, result = analyse(SENTENCE, path)
    att, _tokens = eager(path, SENTENCE)
    got = floats(get(client, "overview", key=key, layer=1))
    n = result.seq_len
    assert n <= OVERVIEW_CELLS and got.shape == (result.num_heads, n, n)  # cells are tokens
    np.testing.assert_allclose(got, att[1], atol=2e-6)


def test_overview_row_pools_a_longer_text_in_blocks(client, tiny_models):
    path = tiny_models["bert"]
    text = " ".join(["the cat sat on the mat because it was tired"] * 5)
    key, result = analyse(text, path)
    att, tokens = eager(path, text)
    assert tokens == result.tokens and len(tokens) > OVERVIEW_CELLS
    got = floats(get(client, "overview", key=key, layer=0))
    n, block = len(tokens), -(-len(tokens) // OVERVIEW_CELLS)
    cells = -(-n // block)
    assert got.shape == (result.num_heads, cells, cells)
    for h in range(result.num_heads):
        for r in range(cells):
            for c in range(cells):
                expected = att[0, h, r * block:(r + 1) * block, c * block:(c + 1) * block].max()
                assert got[h, r, c] == pytest.approx(expected, abs=2e-6)


# ------------------------------------------------------------------------------ the boundary

@pytest.mark.parametrize("query", [
    {},  # no key
    {"key": "nonsense", "layer": "0"},
    {"key": "bert:" + "0" * 64},  # no layer
    {"key": "bert:" + "0" * 64, "layer": "-1"},
    {"key": "bert:" + "0" * 64, "layer": "1.5"},
    {"key": "bert:" + "0" * 64, "layer": "1e3"},
    {"key": "bert:" + "0" * 64, "layer": "99999"},
    {"key": "bert:" + "0" * 64, "layer": " 1"},
    {"key": "bert:" + "0" * 64, "layer": "0", "head": "all"},
    {"key": "bert:" + "0" * 64, "layer": "0", "head": "-2"},
    {"key": "bert:" + "0" * 64, "layer": "0", "mode": "evil"},
    {"key": "bert:" + "0" * 64, "layer": "0", "switches": "rm -rf"},
    {"key": "bert:" + "0" * 64, "layer": "0", "switches": ["hide"] * 9},
    {"key": "bert:" + "0" * 64, "layer": "0", "kind": "sideways"},
    {"key": "bert:" + "0" * 64, "layer": "0", "pair": "A→C"},
    {"key": "bert:" + "0" * 64, "layer": ["0", "1"]},
    {"key": "bert:" + "0" * 64, "layer": "0", "mode": "x" * 5000},
])
def test_junk_is_refused_with_a_400_and_words(client, query):
    response = get(client, **query)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "text/plain" and "Traceback" not in response.get_data(as_text=True)
    assert len(response.get_data(as_text=True).strip()) > 5


def test_parse_reads_a_good_request_and_refuses_an_unknown_map():
    parsed = ExactRequest.parse("head", {"key": ["bert:" + "a" * 64], "layer": ["3"], "head": ["7"],
                                         "mode": ["value"], "switches": ["hide", "first"], "pair": ["A→B"]})
    assert (parsed.layer, parsed.head, parsed.mode, parsed.switches, parsed.pair) == (
        3, 7, "value", frozenset({"hide", "first"}), "A→B")
    assert ExactRequest.parse("head", {"key": ["bert:" + "a" * 64], "layer": ["0"]}).head is None  # the mean
    with pytest.raises(BadExactRequest):
        ExactRequest.parse("../etc", {"key": ["bert:" + "a" * 64], "layer": ["0"]})
    assert parsed.in_range(4, 8) == "" and "layer 3" in parsed.in_range(3, 8) and "head 7" in parsed.in_range(4, 7)


def test_unknown_what_is_a_400(client, tiny_models):
    key, _result = analyse(SENTENCE, tiny_models["bert"])
    assert get(client, "everything", key=key, layer=0).status_code == 400


def test_an_analysis_not_on_the_server_is_a_404(client):
    response = get(client, key="bert:" + "0" * 64, layer=0, head=0)
    assert response.status_code == 404 and "Analyze" in response.get_data(as_text=True)


def test_layer_head_or_kind_out_of_range_is_a_422(client, tiny_models):
    key, result = analyse(SENTENCE, tiny_models["bert"])
    for query in ({"layer": result.num_layers, "head": 0}, {"layer": 0, "head": result.num_heads},
                  {"layer": 0, "head": 0, "kind": "cross"}, {"layer": 0, "head": 0, "pair": "A→B"}):
        response = get(client, key=key, **query)
        assert response.status_code == 422, (query, response.get_data(as_text=True))
        assert "Traceback" not in response.get_data(as_text=True)
    assert get(client, key=key, layer=result.num_layers - 1, head=result.num_heads - 1).status_code == 200


def test_a_map_larger_than_the_bound_is_a_413(client, tiny_models, monkeypatch):
    key, result = analyse(SENTENCE, tiny_models["bert"])
    monkeypatch.setattr(hover, "MAX_CELLS", result.seq_len ** 2 - 1)
    assert get(client, key=key, layer=0, head=0).status_code == 413


def test_requests_are_counted_per_person(client, tiny_models, monkeypatch):
    key, _result = analyse(SENTENCE, tiny_models["bert"])
    monkeypatch.setattr(hover, "RATE_LIMIT", "2/minute")
    assert [get(client, key=key, layer=0, head=h).status_code for h in range(2)] == [200, 200]
    refused = get(client, key=key, layer=0, head=2)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


# ------------------------------------------------------------------------------ the picture's own numbers

@pytest.mark.parametrize("mode,switches", [
    ("raw", []), ("raw", ["merge"]), ("raw", ["hide", "merge", "first"]), ("rollout", []), ("rollout", ["hide"]),
    ("value", ["merge", "first"]),
])
def test_every_mode_gives_the_matrix_the_picture_is_drawn_from(client, tiny_models, mode, switches):
    """The picture is drawn from ``View.matrix`` (float16 maps as stored): the hover's values are the same
    numbers, to float16's rounding (the hover's come from float32 maps)."""
    from attention_explorer.services.analyses.views import View, ViewOptions

    text = "The cats sat playing on the mat."  # sub-words to merge: cat ##s, play ##ing
    key, result = analyse(text, tiny_models["bert"])
    options = ViewOptions(rollout=mode == "rollout", value_norm=mode == "value", hide_special="hide" in switches,
                          merge_words="merge" in switches, drop_first="first" in switches)
    view = View(result, options, key)
    if "merge" in switches:
        assert len(view.labels) < result.seq_len  # the sub-words were merged: fewer units than tokens
    for head in (0, None):
        drawn, _title = view.matrix(1, head)
        got = floats(get(client, key=key, layer=1, head="mean" if head is None else head, mode=mode, switches=switches))
        assert got.shape == drawn.shape
        np.testing.assert_allclose(got, drawn, atol=2e-3)


def test_cross_attention_is_rectangular(client, s2s):
    key, result = analyse("The cat sat on the mat.", s2s["bart"], target="Le chat.")
    got = floats(get(client, key=key, layer=0, head=1, kind="cross"))
    cross = result.cross_attentions[0, 1].astype(np.float32)
    assert got.shape == cross.shape and got.shape[0] != got.shape[1]
    np.testing.assert_array_equal(got, cross)
    assert get(client, key=key, layer=0, head=1, kind="decoder").status_code == 200


def test_the_tooltips_take_no_dash_callback(make_app):
    """Hover is one step (issue 18 item 1.3): assets/21-hover.js draws the tooltips from plotly.js's own hover
    event; no Dash callback reads the pictures' hoverData or writes their tooltips."""
    from attention_explorer.components import ids

    app = make_app()
    tooltips = {ids.GRID_TOOLTIP, ids.HEATMAP_TOOLTIP, ids.OVERVIEW_TOOLTIP}
    for output, callback in app.callback_map.items():
        assert not any(f"{tip}." in output for tip in tooltips), output
        hovered = {f"{i['id']}.{i['property']}" for i in callback["inputs"]}
        assert not hovered & {f"{g}.hoverData" for g in (ids.HEAD_GRID, ids.HEAD_HEATMAP, ids.OVERVIEW)}, output


def test_a_long_texts_overview_row_is_its_exact_pooled_blocks(client, long_handle):
    """4,096 tokens (maps not held): the overview's row gives each block's exact max, or mean, as the picture
    pools it, checked against one head computed by hand from the kept queries and keys."""
    from attention_explorer.callbacks.boundary import Handle
    from attention_explorer.services.extraction import result_by_key
    from tests.callbacks.test_long_views import by_hand

    handle = Handle.parse(long_handle)
    key, result = result_by_key(handle.key, handle.recipe)
    assert not result.dense
    block = 4096 // OVERVIEW_CELLS
    w = by_hand(result, 1, 2).reshape(OVERVIEW_CELLS, block, OVERVIEW_CELLS, block)
    got = floats(get(client, "overview", key=key, layer=1))
    assert got.shape == (result.num_heads, OVERVIEW_CELLS, OVERVIEW_CELLS)
    np.testing.assert_allclose(got[2], w.max(axis=(1, 3)), atol=2e-6)
    mean = floats(get(client, "overview", key=key, layer=1, switches="mean"))
    np.testing.assert_allclose(mean[2], w.mean(axis=(1, 3)), atol=2e-7)
    assert get(client, key=key, layer=1, head=2).status_code == 413  # its whole map: the heatmap hovers exactly already
    merged = get(client, "overview", key=key, layer=1, switches="merge")  # the page refuses it for a long text
    assert merged.status_code == 422 and "words" in merged.get_data(as_text=True)
