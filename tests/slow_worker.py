"""A Celery app for tests: the project's worker (``attention_explorer.services.store.tasks``), with texts that
start with "slowly" taking ``ATTN_TEST_SLOW_S`` seconds more (default 4), so that a test can kill the
worker in the middle of a task. ``celery -A tests.slow_worker worker ...``; never used by the app."""

from __future__ import annotations

import os
import time

from attention_explorer.services.store import tasks

_run_local = tasks.run_local


def _slowly(text, *args, **kwargs):
    if isinstance(text, str) and text.startswith("slowly"):
        print(f"slow task started in {os.getpid()}", flush=True)
        time.sleep(float(os.environ.get("ATTN_TEST_SLOW_S", "4")))
    return _run_local(text, *args, **kwargs)


tasks.run_local = _slowly  # extract_task looks it up when it runs
app = tasks.app
