"""Attention Explorer: ``create_app(config)`` builds the Dash app; ``server`` is for gunicorn.

    python app.py                      # http://127.0.0.1:8050 (app.py in a checkout is a shim of this module)
    attention-explorer                 # the same, installed
    gunicorn -c gunicorn.conf.py app:server   # see docs/deployment.md
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from pathlib import Path
from typing import Any

from dash import Dash
from flask import has_request_context, jsonify, request

from .callbacks import hover, register_callbacks, registry
from .callbacks.analyze import first_page
from .callbacks.protocol import harden
from .components.i18n import COOKIE, normalise
from .components.layout import create_layout, validation_layout
from .services.config import Settings, configure, get_settings
from .services.store import cache, secret
from .services.web import security
from .services.web.health import health_report

log = logging.getLogger(__name__)


def assets_folder() -> str:
    """The ``assets/`` folder: the package ``attention_explorer.assets`` (the repository's folder in a
    checkout, mapped by pyproject.toml; the wheel's copy when installed)."""
    from . import assets

    return str(Path(assets.__file__).resolve().parent)


def create_app(config: Settings | dict[str, Any] | None = None) -> Dash:
    """A new app. ``config`` is a ``Settings``, a dict of settings to change, or ``None`` (environment)."""
    if isinstance(config, Settings):
        settings = configure(config)
    elif isinstance(config, dict):
        settings = configure(Settings.from_env(), **config)
    else:
        settings = configure(Settings.from_env())
    secret.check_settings(settings)  # several web hosts need ATTN_SECRET_KEY: refuse to start without it
    app = Dash(
        __name__,
        assets_folder=assets_folder(),
        title="Attention Explorer",
        # Bootstrap (Bootswatch Flatly, MIT) and plotly.js's cartesian bundle (MIT: every trace type
        # the views draw, a third of the full bundle) are served from assets/: no CDN, works offline.
        update_title=None,
        compress=True,  # flask-compress: gzip/brotli for the page, scripts and callback responses
    )
    # Sign-in, body limit and security headers first (Flask runs before_request hooks in order: nobody
    # who is not signed in reaches the callback endpoint's checks); the page's inline scripts are
    # allowed by their hashes.
    security.install(app.server, settings, script_hashes=app.csp_hashes)
    harden(app)
    cache.init_cache(app.server, settings)  # never raises: an unusable cache folder is logged, then skipped
    # Every component a callback names, the atlas's table (sent later) included. Set first: given no
    # validation layout, Dash would call the layout function right now, i.e. analyse at import time.
    views = registry.browser_table()  # what the browser needs of each view (the page's data-views)
    app.validation_layout = validation_layout(settings, views)

    def layout():
        # The page a visitor gets embeds the first analysis; Dash also calls this once to check the
        # layout on the server's first request (/healthz, say), which must not wait for a model.
        serving = has_request_context() and request.path.endswith("_dash-layout")
        return create_layout(settings, first_page(settings) if serving else None, views)

    app.layout = layout
    register_callbacks(app)
    hover.register(app)  # GET exact/<what>: the exact values a picture's hover shows (callbacks/hover.py)

    @app.server.after_request
    def remember_language(response):
        # ?lang= on the page's address: remembered, so the page's callbacks answer in that language too
        chosen = normalise(request.args.get("lang"))
        if chosen and request.cookies.get(COOKIE) != chosen:
            response.set_cookie(COOKIE, chosen, max_age=365 * 24 * 3600, samesite="Lax", httponly=True,
                                secure=request.is_secure)
        return response

    @app.server.get("/healthz")
    def healthz():
        # Open to all without sign-in, but the details only for signed-in users and loopback clients.
        return jsonify(health_report(detailed=security.may_see_details())), 200

    return app


app = create_app()
server = app.server


def warm_up(settings: Settings | None = None) -> threading.Thread:
    """Loads the default model and draws the first page in the background, so the first visitor does
    not wait for it (the server listens meanwhile; a request that needs the model waits for it)."""
    settings = settings or get_settings()

    def run() -> None:
        try:
            first_page(settings)
        except Exception as exc:  # noqa: BLE001 - a failed warm-up only means a slower first page
            log.warning("warm-up failed: %s", exc)

    thread = threading.Thread(target=run, name="attention-warm-up", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    """``python app.py`` / ``attention-explorer``: serves the app (``--host``/``--port``, or ``ATTN_HOST``/
    ``ATTN_PORT``; every other setting comes from the ``ATTN_*`` variables, see the README)."""
    parser = argparse.ArgumentParser(prog="attention-explorer", description="Serve Attention Explorer.")
    parser.add_argument("--host", default=os.environ.get("ATTN_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("ATTN_PORT", "8050")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    warm_up()
    app.run(host=args.host, port=args.port, debug=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
