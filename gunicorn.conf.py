"""gunicorn's settings for a checkout: ``gunicorn -c gunicorn.conf.py app:server``.

A shim: the settings are ``attention_explorer.gunicorn_conf`` (what an installed wheel uses as
``gunicorn -c python:attention_explorer.gunicorn_conf attention_explorer.app:server``).
"""

from attention_explorer.gunicorn_conf import *  # noqa: F401,F403 - gunicorn reads this module's names
from attention_explorer.gunicorn_conf import post_fork, post_worker_init  # noqa: F401 - server hooks
