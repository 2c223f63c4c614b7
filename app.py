"""Attention Explorer: ``create_app(config)`` builds the Dash app; ``server`` is for gunicorn.

    python app.py                      # http://127.0.0.1:8050
    gunicorn app:server -w 2 -b :8050  # see the README's deployment section
"""

from __future__ import annotations

import logging
import os
from typing import Any

from dash import Dash
from flask import jsonify

from callbacks import register_callbacks
from components.layout import create_layout
from services import cache, security
from services.config import Settings, configure
from services.health import health_report

log = logging.getLogger(__name__)


def create_app(config: Settings | dict[str, Any] | None = None) -> Dash:
    """A new app. ``config`` is a ``Settings``, a dict of settings to change, or ``None`` (environment)."""
    if isinstance(config, Settings):
        settings = configure(config)
    elif isinstance(config, dict):
        settings = configure(Settings.from_env(), **config)
    else:
        settings = configure(Settings.from_env())
    app = Dash(
        __name__,
        title="Attention Explorer",
        # Bootstrap (Bootswatch Flatly, MIT) is served from assets/: no CDN, so it works offline.
        update_title=None,
    )
    cache.init_cache(app.server, settings)  # never raises: an unusable cache folder is logged, then skipped
    app.layout = lambda: create_layout(settings)
    register_callbacks(app)
    # Body limit, sign-in, security headers; the page's inline scripts are allowed by their hashes.
    security.install(app.server, settings, script_hashes=app.csp_hashes)

    @app.server.get("/healthz")
    def healthz():
        # Open to all without sign-in, but the details only for signed-in users and loopback clients.
        return jsonify(health_report(detailed=security.may_see_details())), 200

    return app


app = create_app()
server = app.server

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app.run(host=os.environ.get("ATTN_HOST", "127.0.0.1"), port=int(os.environ.get("ATTN_PORT", "8050")), debug=False)
