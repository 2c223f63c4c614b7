"""``python app.py`` serves Attention Explorer on http://127.0.0.1:8050 (``make run`` does it for you).

A shim: the app is ``attention_explorer.app`` (``create_app(config)``, and ``server`` for gunicorn:
``gunicorn -c gunicorn.conf.py app:server``). The checkout's folders are that package's subpackages
(pyproject.toml maps them), so the code has one import name whether it runs from here or a wheel.
"""

from attention_explorer.app import app, create_app, main, server  # noqa: F401 - gunicorn's app:server

if __name__ == "__main__":
    raise SystemExit(main())
