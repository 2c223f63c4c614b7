"""``attention-explorer`` (or ``python -m attention_explorer``): the app on http://127.0.0.1:8050.

The same as ``python app.py`` in a checkout: ``ATTN_HOST`` / ``ATTN_PORT`` (or ``--host`` / ``--port``)
say where it listens, every other setting comes from the ``ATTN_*`` variables (see the README). For
a shared server, run gunicorn instead (docs/deployment.md).
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from .app import main as serve  # importing the app builds it: only when asked to serve

    return serve(argv)


if __name__ == "__main__":
    raise SystemExit(main())
