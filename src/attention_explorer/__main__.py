"""``attention-explorer`` (or ``python -m attention_explorer``): the app on http://127.0.0.1:8050.

The same as ``python app.py`` in a checkout: ``ATTN_HOST`` / ``ATTN_PORT`` (or ``--host`` / ``--port``)
say where it listens, every other setting comes from the ``ATTN_*`` variables (see the README). For
a shared server, run gunicorn instead (docs/deployment.md).
"""

from __future__ import annotations

import argparse
import logging
import os


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="attention-explorer", description="Serve Attention Explorer.")
    parser.add_argument("--host", default=os.environ.get("ATTN_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("ATTN_PORT", "8050")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from . import app as app_module  # the wheel: attention_explorer.app
    except ImportError:  # an editable install run from the checkout: its app.py
        import app as app_module
    app_module.app.run(host=args.host, port=args.port, debug=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
