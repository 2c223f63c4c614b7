"""The Export menu's server side (callbacks/exports.py): the menu's callback checks and gives a link, the
download route streams the file (issue 19: never inside a Dash answer). Named files, the numbers of the
open view (checked against the stored attention), bounds, rate limits, and plain messages instead of
errors."""

from __future__ import annotations

import csv
import io
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
from dash import no_update

from attention_explorer.callbacks import exports
from attention_explorer.callbacks.boundary import Handle
from attention_explorer.components import ids
from attention_explorer.services.extraction import analyse, result_by_key

SENTENCE = "The cat sat on the mat because it was tired."


def values(handle, tab, **extra):
    return {"handle": handle, "tab": tab, "layer": 0, "head": ids.HEAD_ALL, "mode": "raw", "switches": [], **extra}


@pytest.fixture
def client(make_app):
    """The app's server (its download route), made before any analysis so they share its cache."""
    return make_app().server.test_client()


@pytest.fixture
def bert(client, tiny_models):
    from attention_explorer.callbacks.router import handle_of

    key, result = found = analyse(SENTENCE, tiny_models["bert"])
    return handle_of(key, result, found.recipe).to_client(), result


class Fetched:
    def __init__(self, link: dict, response) -> None:
        self.link, self.response = link, response
        self.filename = response.headers.get("Content-Disposition", "").partition("filename=")[2]
        self.text = response.get_data(as_text=True)

    def rows(self) -> list[dict]:
        return list(csv.DictReader(io.StringIO(self.text)))


def fetch(client, kind: str, browser_values: dict, **headers) -> Fetched:
    """What the page does: the menu's callback answers a link, the browser follows it."""
    with client.application.test_request_context("/_dash-update-component", headers=headers):
        link, status, picture = exports.export(kind, browser_values)
    assert status == "" and picture is no_update and link["url"].startswith(f"download/{kind}?"), status
    response = client.get("/" + link["url"], headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.is_streamed and response.headers["Cache-Control"] == "no-store"
    fetched = Fetched(link, response)
    assert fetched.filename == link["filename"] and response.headers["Content-Disposition"].startswith("attachment")
    return fetched


def test_csv_of_each_view_is_named_and_holds_its_numbers(client, bert):
    handle, result = bert
    seq, heads = result.seq_len, result.num_heads
    grid = fetch(client, "csv", values(handle, ids.TAB_GRID, layer=1))
    assert grid.filename.endswith("_layer1_allheads_grid.csv") and grid.response.mimetype == "text/csv"
    assert len(grid.rows()) == heads * seq * seq
    heat = fetch(client, "csv", values(handle, ids.TAB_HEATMAP, layer=1, head="2"))
    assert heat.filename.endswith("_layer1_head2_heatmap.csv")
    assert len(heat.rows()) == seq * seq
    for row in heat.rows():
        assert float(row["weight"]) == pytest.approx(
            float(result.attentions[1, 2, int(row["query_index"]), int(row["key_index"])]), abs=1e-6)
    inside = fetch(client, "csv", values(handle, ids.TAB_INSIDE, token=8))  # no head chosen: head 0
    assert inside.filename.endswith("_layer0_head0_inside_query8.csv"), inside.filename
    assert {(r["head"], r["query_index"], r["query_token"]) for r in inside.rows()} == {("0", "8", "it")}
    focus = fetch(client, "csv", values(handle, ids.TAB_FOCUS, token=8))
    focus_rows = focus.rows()
    assert {r["query_token"] for r in focus_rows} == {"it"} and len(focus_rows) == result.num_layers * seq
    expected = result.attentions[:, :, 8, :].astype(np.float32).mean(axis=1)
    for row in focus_rows:
        assert float(row["weight"]) == pytest.approx(float(expected[int(row["layer"]), int(row["key_index"])]), abs=1e-5)
    atlas = fetch(client, "csv", values(handle, ids.TAB_ATLAS))
    assert atlas.filename.endswith("_atlas.csv") and len(atlas.rows()) == result.num_layers * heads
    page = fetch(client, "html", values(handle, ids.TAB_ARCS))
    assert page.filename.endswith("_layer0_allheads_arcs.html") and page.response.mimetype == "text/html"
    assert "<script src" not in page.text and "Plotly.newPlot" in page.text and "Layer 0 · all heads" in page.text
    assert page.response.headers["Content-Length"] == str(len(page.response.get_data()))
    whole = fetch(client, "json", values(handle, ids.TAB_GRID))
    assert whole.filename.endswith("_analysis.json") and whole.text == result.to_json()
    assert whole.response.headers["Content-Length"] == str(len(whole.response.get_data()))
    assert type(result).from_json(whole.text).tokens == result.tokens


def test_the_link_carries_the_key_and_the_parsed_view_never_the_text(client, bert):
    handle, result = bert
    link, _, _ = exports.export("csv", values(handle, ids.TAB_HEATMAP, layer="1", head=2, switches=["merge", "junk"],
                                             min_weight="0.25", token=8.0))
    query = dict(parse_qsl(urlsplit(link["url"]).query))
    assert query["key"] == handle["key"] and query["layer"] == "1" and query["head"] == "2"
    assert query["min_weight"] == "0.25" and query["token"] == "8" and query["switches"] == "merge"
    assert "cat" not in link["url"] and "text" not in query  # a link lands in access logs: no one's text


@pytest.mark.parametrize("query", [
    "layer=999&head=999", "layer=-5&head=-1", "layer=NaN&head=Infinity", "layer=1e400", "layer=%ff%fe",
    "head=" + "9" * 200, "switches=hide&switches=merge&switches=" + "x" * 5000, "tab=../../etc/passwd",
    "mode=<script>", "token=1e9&arc_focus=-1", "min_weight=nan&top_k=1e9&window=0", "kind=cross&pair=A→B",
    "step=99999999999999999999999", "layer=1&layer=0&layer=x",
])
def test_the_route_parses_junk_query_values_at_the_boundary(client, bert, query):
    """A hand-made link: every value clamped or dropped as the router does, never an error."""
    handle, result = bert
    response = client.get(f"/download/csv?key={handle['key']}&{query}")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert rows and {int(r["layer"]) for r in rows} <= set(range(result.num_layers))


@pytest.mark.parametrize("path,status", [
    ("/download/csv", 404), ("/download/csv?key=nope", 404), ("/download/exe?key=attn-v1:" + "0" * 64, 404),
    ("/download/csv?key=attn-v1:" + "0" * 64, 404), ("/download/json?key=" + "x" * 5000, 404),
])
def test_the_route_refuses_links_to_nothing_with_a_message(client, bert, path, status):
    response = client.get(path)
    assert response.status_code == status and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert text.strip() and "Traceback" not in text and "Content-Disposition" not in response.headers


def test_inside_a_head_exports_every_step(client, bert):
    """Issue 19: Inside a head's CSV holds steps 1-3 too (the query and key vectors, their products), and
    the scores, weights, value norms, each checked here against an independent route: q and k from the
    hooks (services.inside_head), the weights from the stored attention."""
    from attention_explorer.services.inside import inside_head

    handle, result = bert
    rows = fetch(client, "csv", values(handle, ids.TAB_INSIDE, layer=1, head="2", token=8)).rows()
    by_step: dict[str, list[dict]] = {}
    for row in rows:
        by_step.setdefault(row["step"], []).append(row)
    h = inside_head(SENTENCE, 1, 2, 8, model_id=result.model_id)
    seq, d = result.seq_len, h.d_head
    assert [len(by_step[s]) for s in ("query", "key", "product", "scale", "score", "weight", "model_weight")] == [
        d, seq * d, seq * d, 1, seq, seq, seq]
    q = np.array([float(r["value"]) for r in by_step["query"]])
    k = np.array([float(r["value"]) for r in by_step["key"]]).reshape(seq, d)
    products = np.array([float(r["value"]) for r in by_step["product"]]).reshape(seq, d)
    np.testing.assert_allclose(q, h.query_vector, rtol=1e-6)
    np.testing.assert_allclose(k, h.key_vectors, rtol=1e-6)
    np.testing.assert_allclose(products, q[None, :] * k, rtol=1e-5, atol=1e-7)
    scale = float(by_step["scale"][0]["value"])
    scores = np.array([float(r["value"]) for r in by_step["score"]])
    np.testing.assert_allclose(scores, (k @ q) * scale, rtol=1e-4, atol=1e-6)
    weights = np.array([float(r["value"]) for r in by_step["weight"]])
    np.testing.assert_allclose(weights, result.attentions[1, 2, 8].astype(np.float32), atol=1e-3)
    assert [r["key_token"] for r in by_step["weight"]] == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "because",
                                                           "it", "was", "tired", ".", "[SEP]"]
    page = fetch(client, "html", values(handle, ids.TAB_INSIDE, layer=1, head="2", token=8))
    html_text = page.text
    assert page.filename.endswith("_layer1_head2_inside_query8.html")
    assert html_text.count("Plotly.newPlot") == 2  # steps 1-3 (the vectors, their products), then the weights
    assert "1-2. query and keys (dimensions)" in html_text and "3. q × k, dimension by dimension" in html_text


def test_a_too_large_csv_is_refused_with_a_message(client, bert, monkeypatch):
    handle, _result = bert
    good, _, _ = exports.export("csv", values(handle, ids.TAB_OVERVIEW))
    monkeypatch.setattr(exports, "MAX_CSV_ROWS", 100)
    download, status, _picture = exports.export("csv", values(handle, ids.TAB_OVERVIEW))
    assert download is no_update and "Too many numbers" in status and "JSON" in status
    refused = client.get("/" + good["url"])  # the link, followed anyway
    assert refused.status_code == 413 and "Too many numbers" in refused.get_data(as_text=True)


def test_a_too_large_json_or_html_is_refused_with_a_message(client, bert, monkeypatch):
    """The size cap: the JSON's exact size is known before a byte is written."""
    handle, result = bert
    json_link, _, _ = exports.export("json", values(handle, ids.TAB_GRID))
    html_link, _, _ = exports.export("html", values(handle, ids.TAB_HEATMAP))
    size = len(result.to_json().encode())
    monkeypatch.setattr(exports, "export_limit_bytes", lambda: size - 1)
    download, status, _picture = exports.export("json", values(handle, ids.TAB_GRID))
    assert download is no_update and "more than the" in status and "MB" in status
    for link in (json_link, html_link):
        refused = client.get("/" + link["url"])
        assert refused.status_code == 413 and "more than the" in refused.get_data(as_text=True)
    monkeypatch.setattr(exports, "export_limit_bytes", lambda: size)
    assert client.get("/" + json_link["url"]).status_code == 200  # exactly at the cap: sent


def test_downloads_are_rate_limited_per_person(make_app, tiny_models):
    from attention_explorer.callbacks.router import handle_of
    from attention_explorer.services.web import ratelimit

    ratelimit.reset()
    client = make_app(export_rate_limit="3/minute").server.test_client()
    key, result = found = analyse(SENTENCE, tiny_models["bert"])
    browser = values(handle_of(key, result, found.recipe).to_client(), ids.TAB_HEATMAP)
    someone = {"REMOTE_ADDR": "10.0.0.1"}
    with client.application.test_request_context("/", environ_base=someone):
        link, _, _ = exports.export("csv", browser)
    for _ in range(3):
        assert client.get("/" + link["url"], environ_base=someone).status_code == 200
    refused = client.get("/" + link["url"], environ_base=someone)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "Too many downloads from you" in refused.get_data(as_text=True)
    with client.application.test_request_context("/", environ_base=someone):  # the menu says so in the page
        nothing, status, _ = exports.export("json", browser)
    assert nothing is no_update and "Too many downloads from you" in status
    assert client.get("/" + link["url"], environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 200  # another person
    ratelimit.reset()


def test_downloads_need_sign_in_like_every_page(make_app, tiny_models, tmp_path):
    from attention_explorer.callbacks.router import handle_of
    from attention_explorer.services.web.users import add_user

    users = tmp_path / "users"
    add_user(str(users), "alice", "alice's long password")
    client = make_app(auth="basic", users_file=str(users)).server.test_client()
    key, result = found = analyse(SENTENCE, tiny_models["bert"])
    link, _, _ = exports.export("json", values(handle_of(key, result, found.recipe).to_client(), ids.TAB_GRID))
    assert client.get("/" + link["url"], environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 401


@pytest.mark.parametrize("handle", [None, {"key": "nope"}, "x" * 500, 7])
def test_junk_handles_give_a_message_not_an_error(settings, handle):
    download, status, _picture = exports.export("csv", values(handle, ids.TAB_HEATMAP))
    assert download is no_update and status and "Traceback" not in status


def test_cross_attention_and_a_generation_step_export(make_app, seq2seq_settings, tiny_seq2seq_models, tiny_models):
    from attention_explorer.callbacks.router import handle_of
    from attention_explorer.services import config

    client = make_app(models=config.get_settings().models).server.test_client()
    key, result = found = analyse(SENTENCE, tiny_seq2seq_models["bart"], target="Le chat était assis.")
    handle = handle_of(key, result, found.recipe).to_client()
    cross = fetch(client, "csv", values(handle, ids.TAB_HEATMAP, kind="cross", layer=1, head="1"))
    assert cross.filename.endswith("_layer1_head1_heatmap_cross.csv")
    rows = cross.rows()
    assert len(rows) == result.target_len * result.seq_len
    assert {r["key_token"] for r in rows} >= {"cat", "tired"}  # the source tokens, as the tokenizer spells them
    for row in rows:
        assert float(row["weight"]) == pytest.approx(
            float(result.cross_attentions[1, 1, int(row["query_index"]), int(row["key_index"])]), abs=1e-6)
    key, steps = found = analyse("The cat sat on the", tiny_models["gpt2"], steps=3)
    generated = handle_of(key, steps, found.recipe).to_client()
    step = fetch(client, "csv", values(generated, ids.TAB_GENERATION, step=2))
    rows = step.rows()
    row = steps.prompt_length + 1
    assert step.filename.endswith("_generation_step2.csv") and len(rows) == steps.num_layers * steps.num_heads * (row + 1)
    for r in rows:
        assert int(r["query_index"]) == row and float(r["weight"]) == pytest.approx(
            float(steps.attentions[int(r["layer"]), int(r["head"]), row, int(r["key_index"])]), abs=1e-6)
    assert result_by_key(Handle.parse(generated).key) is not None


def test_compare_exports_a_b_and_their_difference(client, bert, tiny_models):
    """On the Compare tab the CSV holds A, B and A − B of the chosen head, each checked against the
    stored attention of its own analysis; the HTML page is the comparison figure. The link names B by
    its key, and a link whose B is gone says so."""
    from attention_explorer.callbacks.router import handle_of

    handle, a = bert
    key_b, b = found = analyse(SENTENCE.replace("cat", "dog"), tiny_models["bert"])
    compared = values(handle, ids.TAB_COMPARE, layer=1, head="3",
                      compare_handle=handle_of(key_b, b, found.recipe).to_client())
    download = fetch(client, "csv", compared)
    assert download.filename.endswith("_layer1_head3_compare.csv")
    assert dict(parse_qsl(urlsplit(download.link["url"]).query))["compare"] == key_b
    rows = download.rows()
    assert len(rows) == a.seq_len * a.seq_len
    assert {r["query_token"] for r in rows} >= {"cat | dog", "tired"}
    for row in rows:
        q, k = int(row["query_index"]), int(row["key_index"])
        wa, wb = float(a.attentions[1, 3, q, k]), float(b.attentions[1, 3, q, k])
        assert float(row["weight_a"]) == pytest.approx(wa, abs=1e-6)
        assert float(row["weight_b"]) == pytest.approx(wb, abs=1e-6)
        assert float(row["a_minus_b"]) == pytest.approx(wa - wb, abs=1e-6)
    assert any(abs(float(r["a_minus_b"])) > 1e-4 for r in rows)  # the texts differ, so do some weights
    page = fetch(client, "html", compared)
    assert page.filename.endswith("_layer1_head3_compare.html") and "A − B" in page.text
    nothing, message, _picture = exports.export("csv", values(handle, ids.TAB_COMPARE))
    assert nothing is no_update and "Compare" in message
    query = [(name, "attn-v3:" + "0" * 64 if name == "compare" else value)
             for name, value in parse_qsl(urlsplit(download.link["url"]).query)]
    gone = client.get("/download/csv", query_string=query)
    assert gone.status_code == 404 and "no longer on the server" in gone.get_data(as_text=True)
