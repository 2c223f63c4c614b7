"""The gate's direct view requests (``POST _ae-view``, callbacks/router.py ``direct``; assets/23-gate.js's
early path): the same answer as the router's Dash callback, the same parse, refusals in plain words, and
the same sign-in as every other route."""

from __future__ import annotations

import json

import pytest

from attention_explorer.callbacks import router
from attention_explorer.components import ids
from tests.callbacks.test_callbacks import SENTENCE, run_analyze
from tests.test_deploy import _dash_call

ROUTE = "/" + router.DIRECT_ROUTE


def _values(handle, **changes) -> dict:
    values = {"analysis-handle.data": handle, "view-tabs.active_tab": ids.TAB_HEATMAP, "layer-slider.value": 2,
              "head-select.value": "4", "attention-mode.value": "raw", "view-switches.value": ["hide"]}
    values.update(changes)
    return values


def test_direct_answers_what_the_dash_callback_answers(make_app, default_model):
    client = make_app().server.test_client()
    handle = run_analyze(SENTENCE)["handle"]
    values = _values(handle)
    answer = client.post(ROUTE, json={"values": values, "changed": ["head-select.value"]})
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    outputs = answer.get_json()["outputs"]
    figure = outputs["head-heatmap.figure"]
    assert figure["layout"]["title"]["text"].startswith("Layer 2 · Head 4")
    assert "special tokens hidden" in figure["layout"]["title"]["text"]
    assert set(outputs) == {"head-heatmap.figure", "view-notice.children"}  # nothing of a closed view
    by_id = {"analysis-handle": handle, "view-tabs": ids.TAB_HEATMAP, "layer-slider": 2, "head-select": "4",
             "attention-mode": "raw", "view-switches": ["hide"]}
    dash = _dash_call(client, {"head-select": "value"}, by_id, "view-request", "head-heatmap")
    assert dash["status"] == 200
    from_dash = json.loads(dash["text"])["response"]["head-heatmap"]["figure"]
    assert figure == from_dash  # the very figure the page's callback draws


def test_direct_refuses_what_it_does_not_serve(make_app, default_model):
    client = make_app().server.test_client()
    handle = run_analyze(SENTENCE)["handle"]
    assert client.post(ROUTE, data="values=1", content_type="application/x-www-form-urlencoded").status_code == 415
    for body in ([], {"values": []}, {"values": {}, "changed": "x"}, "junk"):
        reply = client.post(ROUTE, json=body)
        assert reply.status_code == 400 and "expected" in reply.get_json()["message"], body
    reply = client.post(ROUTE, json={"values": _values(handle, **{"view-tabs.active_tab": ids.TAB_INSIDE}), "changed": []})
    assert reply.status_code == 400 and "callbacks" in reply.get_json()["message"]  # other views: the page's path
    reply = client.post(ROUTE, json={"values": _values("x" * 10_000), "changed": []})
    assert reply.status_code == 400 and "too long" in reply.get_json()["message"]
    # junk inside the values: the router's own parse answers in the view, never a 500
    for junk in ({"layer-slider.value": 10**9}, {"head-select.value": "<b>"}, {"analysis-handle.data": {"key": 1}},
                 {"view-switches.value": {"a": 1}}, {"attention-mode.value": None}):
        reply = client.post(ROUTE, json={"values": _values(handle, **junk), "changed": list(junk)})
        assert reply.status_code == 200, junk
        assert "head-heatmap.figure" in reply.get_json()["outputs"], junk
        assert "Traceback" not in reply.get_data(as_text=True)


def test_the_page_and_the_route_agree_on_which_views_are_direct(make_app, default_model):
    """One declaration (``ViewSpec.direct``): the page reads it from the browser table, the route serves
    exactly those views, and every other view is refused (the page sends it through Dash)."""
    from attention_explorer.callbacks import registry

    client = make_app().server.test_client()
    handle = run_analyze(SENTENCE)["handle"]
    table = json.loads(registry.browser_table())
    assert {tab for tab, view in table.items() if view["direct"]} == {s.tab for s in registry.VIEWS if s.direct}
    assert {view["name"] for view in table.values() if view["direct"]} >= {"grid", "heatmap", "arcs"}
    for spec in registry.VIEWS:
        reply = client.post(ROUTE, json={"values": _values(handle, **{"view-tabs.active_tab": spec.tab}), "changed": []})
        assert reply.status_code == (200 if table[spec.tab]["direct"] else 400), spec.name
        if spec.direct:
            output = spec.outputs[spec.main]
            assert f"{output.component_id}.{output.component_property}" in reply.get_json()["outputs"], spec.name


def test_a_direct_atlas_request_does_not_resend_the_table_the_page_holds(make_app, default_model):
    """The router's states go with a direct request (the gate sends them): the atlas's table and legend
    are sent once for what they measure, as through Dash's callback."""
    client = make_app().server.test_client()
    handle = run_analyze(SENTENCE)["handle"]
    values = _values(handle, **{"view-tabs.active_tab": ids.TAB_ATLAS, "view-switches.value": []})
    first = client.post(ROUTE, json={"values": values, "changed": ["view-tabs.active_tab"]}).get_json()["outputs"]
    assert first["atlas-table-holder.children"] and isinstance(first["atlas-table-for.data"], str)
    held = {**values, "atlas-table-for.data": first["atlas-table-for.data"], "head-select.value": "5"}
    again = client.post(ROUTE, json={"values": held, "changed": ["head-select.value"]}).get_json()["outputs"]
    assert "atlas-map.figure" in again
    assert "atlas-table-holder.children" not in again and "atlas-table-for.data" not in again
