"""Dash's callback endpoint with malformed requests: a 4xx with a plain message, never a 500."""

from __future__ import annotations

import json

import pytest

from attention_explorer.components import ids
from attention_explorer.services.config import Settings

ENDPOINT = "/_dash-update-component"


@pytest.fixture(scope="module")
def app_and_client(tiny_models):
    from attention_explorer.app import create_app
    from attention_explorer.services import config

    original = config._settings
    app = create_app(Settings(models=(tiny_models["bert"],), default_model=tiny_models["bert"], cache_type="simple"))
    client = app.server.test_client()
    client.get("/")  # Dash sets itself up on the first request
    yield app, client
    config._settings = original


def router_output(app) -> str:
    return next(key for key in app.callback_map if f"..{ids.HEAD_GRID}.figure" in key or
                key.startswith(f"..{ids.VIEW_NOTICE}.children"))


def router_body(app, **changes) -> dict:
    output = router_output(app)
    spec = app.callback_map[output]
    values = {"analysis-handle": None, ids.TABS: ids.TAB_GRID, ids.LAYER: 0, ids.HEAD: "all",
              ids.VIEW_REQUEST: {"changed": [f"{ids.LAYER}.value"], "n": 1}}
    inputs = [{"id": i["id"], "property": i["property"], "value": values.get(i["id"])} for i in spec["inputs"]]
    state = [{"id": i["id"], "property": i["property"], "value": values.get(i["id"])} for i in spec["state"]]
    body = {"output": output, "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]}
                                          for o in output.strip(".").split("...")],
            "inputs": inputs, "changedPropIds": [f"{ids.VIEW_REQUEST}.data"], "state": state}
    body.update(changes)
    return body


def post(client, body, raw: bool = False):
    data = body if raw else json.dumps(body)
    return client.post(ENDPOINT, data=data, content_type="application/json")


def test_a_well_formed_request_works(app_and_client):
    app, client = app_and_client
    response = post(client, router_body(app))
    assert response.status_code == 200, response.data[:300]
    assert b"press Analyze" in response.data


@pytest.mark.parametrize("junk", [
    b"", b"not json", b"[]", b"null", b"3", b'"x"', b"{", b"\xff\xfe", b'{"output": 3}',
    b'{"output": "nope.children", "inputs": []}', b"[" * 100_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
])
def test_junk_bodies_get_400(app_and_client, junk):
    _, client = app_and_client
    response = post(client, junk, raw=True)
    assert response.status_code == 400
    assert b"Traceback" not in response.data


@pytest.mark.parametrize("change", [
    {"inputs": None}, {"inputs": "x"}, {"inputs": [1, 2]}, {"inputs": []}, {"inputs": [{"id": 1}]},
    {"state": "x"}, {"changedPropIds": "layer"}, {"changedPropIds": [1]}, {"outputs": 5},
])
def test_malformed_callback_requests_get_400(app_and_client, change):
    app, client = app_and_client
    body = router_body(app, **change)
    response = post(client, body)
    assert response.status_code == 400, change
    assert "message" in response.get_json()


def test_missing_inputs_key_gets_400(app_and_client):
    app, client = app_and_client
    body = router_body(app)
    del body["inputs"]
    assert post(client, body).status_code == 400


def test_wrong_values_in_a_well_formed_request_never_give_500(app_and_client):
    app, client = app_and_client
    for value in ("x", {}, [], 1e308, None, -5, "9" * 30, {"key": "attn-v1:" + "0" * 64}):
        body = router_body(app)
        for item in body["inputs"] + body["state"]:
            item["value"] = value
        response = post(client, body)
        assert response.status_code in (200, 204), (value, response.status_code, response.data[:200])
        assert b"Traceback" not in response.data


def test_the_server_still_serves_after_junk(app_and_client):
    app, client = app_and_client
    post(client, b"\x00" * 1000, raw=True)
    assert client.get("/").status_code == 200
    assert post(client, router_body(app)).status_code == 200


def test_script_paths_dash_does_not_serve_get_404(app_and_client):
    """Dash raises for an unknown /_dash-component-suites/ path (a 500 before): a traversal, an
    unknown package, a junk fingerprint."""
    _, client = app_and_client
    for path in ("/_dash-component-suites/dash/../../../../etc/passwd", "/_dash-component-suites/os/path.js",
                 "/_dash-component-suites/dash/..%2f..%2fapp.py", "/_dash-component-suites/dash/deps/x.v9_9m9.min.js"):
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert b"Traceback" not in response.data and b"registered" not in response.data


# ---------------------------------------------------------------------------------------------- a person's text in logs

MARKER = "private words of a person"


def _analyze_body(client, values: dict) -> dict:
    deps = client.get("/_dash-dependencies").get_json()
    spec = next(d for d in deps if any(i["id"] == ids.MODEL for i in d["inputs"]) and f"{ids.STATUS}." in d["output"])
    output = spec["output"]
    outputs = [dict(zip(("id", "property"), part.rsplit(".", 1))) for part in output[2:-2].split("...")]

    def items(kind):
        return [{"id": i["id"], "property": i["property"], "value": values.get(i["id"])} for i in spec[kind]]

    return {"output": output, "outputs": outputs, "inputs": items("inputs"), "state": items("state"),
            "changedPropIds": [f"{ids.ANALYZE}.n_clicks"]}


def test_a_lone_surrogate_in_the_target_is_a_message_on_screen_and_never_logged(make_app, s2s, caplog):
    """Issue 19: a lone surrogate in an encoder-decoder's target box answered HTTP 400 (the answer,
    echoing the target, could not be encoded), nothing on screen, and the log line quoted the text."""
    from attention_explorer.services import config

    client = make_app(models=config.get_settings().models, max_new_tokens=6).server.test_client()
    values = {ids.TEXT: "The cat sat on the mat.", ids.ANALYZE: 1, ids.LAYER: 0, ids.HEAD: ids.HEAD_ALL,
              ids.MODEL: s2s["bart"], ids.TARGET: f"{MARKER} \ud83d and more"}
    caplog.set_level("DEBUG")
    response = post(client, _analyze_body(client, values))
    assert response.status_code == 200, response.data[:300]
    status = json.dumps(response.get_json()["response"][ids.STATUS]["children"], ensure_ascii=False)
    assert "broken character at position 27" in status and "target" in status
    assert ids.HANDLE not in response.get_json()["response"]  # refused: nothing analysed
    assert MARKER not in caplog.text
    good = post(client, _analyze_body(client, {**values, ids.TARGET: "le chat"}))  # the control: it runs
    assert good.status_code == 200 and ids.HANDLE in good.get_json()["response"]


def test_a_callback_answer_dash_cannot_send_is_logged_without_its_values(make_app, monkeypatch, caplog):
    """Whatever a callback returns that Dash cannot serialise: 400, and the log names the failure and
    the callback, never the values (Dash's own message quotes them all)."""
    from dash import no_update

    from attention_explorer.callbacks import analyze

    client = make_app().server.test_client()
    monkeypatch.setattr(analyze, "analyze", lambda values, example=None: {
        **{name: no_update for name in analyze.OUTPUTS}, "share": {"text": f"{MARKER} \ud800"}})
    caplog.set_level("DEBUG")
    response = post(client, _analyze_body(client, {ids.TEXT: "the cat", ids.ANALYZE: 1}))
    assert response.status_code == 400 and b"Traceback" not in response.data
    assert "malformed callback request answered 400: InvalidCallbackReturnValue in the callback for .." in caplog.text
    assert MARKER not in caplog.text


def test_an_unexpected_failure_logs_where_but_not_what(make_app, caplog):
    from attention_explorer.callbacks.protocol import where

    app = make_app()

    @app.server.get("/_boom")
    def boom():
        try:
            raise KeyError(MARKER)
        except KeyError as exc:
            raise ValueError(f"while reading {MARKER}") from exc

    caplog.set_level("DEBUG")
    response = app.server.test_client().get("/_boom")
    assert response.status_code == 500 and MARKER.encode() not in response.data
    assert "request failed: ValueError" in caplog.text and "in boom" in caplog.text and "builtins.KeyError" in caplog.text
    assert MARKER not in caplog.text
    try:
        raise RuntimeError(MARKER)
    except RuntimeError as exc:
        assert MARKER not in where(exc) and where(exc).endswith("builtins.RuntimeError")
