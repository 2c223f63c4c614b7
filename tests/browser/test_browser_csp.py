"""The page works under its Content-Security-Policy, in headless Chromium (issue 9).

An init script (installed before any page script runs) records every ``securitypolicyviolation``
event; the test analyses a sentence, waits for the head grid to be drawn, opens the heatmap, and
asserts that no violation happened and the console reports none. A control at the end injects an
inline script: it must be blocked and recorded, proving that the policy is enforced and the recorder
works. Fails on the code before issue 9, which sent no policy (the control script ran).
"""

from __future__ import annotations

import time

import pytest
import requests

from attention_explorer.services.config import DEFAULT_MODEL_ID, Settings
from tests.browser.test_browser import TIMEOUT, analyze, graph, open_tab, wait_until

pytestmark = pytest.mark.browser

RECORDER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sourceFile || ''));
});
"""


@pytest.fixture
def csp_app(dash_duo, tiny_models):
    from attention_explorer.app import create_app

    app = create_app(Settings(models=(DEFAULT_MODEL_ID, tiny_models["gpt2"]), cache_type="simple"))
    dash_duo.start_server(app)
    dash_duo.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORDER})
    dash_duo.driver.get(dash_duo.server_url)  # again, with the recorder in place from the first script on
    dash_duo.wait_for_element("#head-grid .imagelayer", timeout=60)
    return dash_duo


def violations(duo) -> list[str]:
    return duo.driver.execute_script("return window.__cspViolations")


def test_the_page_works_under_its_content_security_policy(csp_app):
    duo = csp_app
    policy = requests.get(duo.server_url, timeout=10).headers["Content-Security-Policy"]
    assert "script-src 'self' 'sha256-" in policy and "'unsafe-eval'" not in policy
    assert violations(duo) == []  # the recorder is there and the page loaded cleanly

    analyze(duo, "The dog ran in the park.")
    tokens = ["[CLS]", "the", "dog", "ran", "in", "the", "park", ".", "[SEP]"]
    wait_until(lambda: graph(duo, "head-grid", "gd.layout.meta.tokens") == tokens, message="grid tokens")
    wait_until(lambda: len(duo.find_elements("#head-grid .imagelayer image")) == 1, message="the head grid drawn")
    assert "9 tokens" in duo.find_element("#status-area").text
    open_tab(duo, "Head heatmap")
    wait_until(lambda: graph(duo, "head-heatmap", "gd.data.length") or 0, message="heatmap drawn")
    time.sleep(0.5)

    assert violations(duo) == []
    console = [entry for entry in duo.get_logs() or [] if "Content Security Policy" in str(entry)]
    assert console == []

    # Control: an injected inline script is refused, and the refusal is seen.
    duo.driver.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.__injected = 1';"
        "document.body.appendChild(s);")
    wait_until(lambda: violations(duo), timeout=TIMEOUT, message="the injected script's violation")
    assert duo.driver.execute_script("return window.__injected === undefined")
    assert any(v.startswith("script-src") for v in violations(duo))
