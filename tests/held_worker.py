"""A Celery app for tests: the project's worker (``attention_explorer.services.store.tasks``), whose forward
passes of texts that start with "held" wait after their first layer until the test sets the Redis key
``HOLD`` + "release" in the broker, so that a test sees a pass in the middle, deterministically.
``celery -A tests.held_worker worker ...``; never used by the app."""

from __future__ import annotations

import os
import time

from attention_explorer.services.model import progress
from attention_explorer.services.store import tasks

HOLD = "attn-test:hold:"
_run_local = tasks.run_local
_layer_done = progress.layer_done
_holding: list[bool] = [False]  # --pool=solo: one task at a time


def _held_run(text, *args, **kwargs):
    _holding[0] = isinstance(text, str) and text.startswith("held")
    try:
        return _run_local(text, *args, **kwargs)
    finally:
        _holding[0] = False


def _held_layer(done: int, total: int) -> None:
    _layer_done(done, total)  # the project's step: publishes the progress, stops a cancelled pass
    if _holding[0] and done == 1:
        print(f"held after layer {done} of {total}", flush=True)
        client = tasks._redis_for(os.environ["ATTN_CELERY_BROKER_URL"])
        try:
            deadline = time.monotonic() + 120
            while not client.exists(HOLD + "release") and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            client.close()


tasks.run_local = _held_run  # extract_task looks it up when it runs
progress.layer_done = _held_layer  # the model's attention functions look it up at each layer
app = tasks.app
