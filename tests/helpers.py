"""Small helpers several test modules share (fixtures are in tests/conftest.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from attention_explorer.services.result import AttentionResult


def uniform_result(seq: int, text: str) -> AttentionResult:
    """A one-layer, one-head result of ``seq`` tokens attending evenly (``1/seq`` everywhere), for the
    cache's tests: its size is known, its numbers do not matter."""
    return AttentionResult(
        tokens=[f"t{i}" for i in range(seq)], attentions=np.full((1, 1, seq, seq), 1.0 / seq, np.float16),
        model_id="m", truncated=False, special_mask=np.zeros(seq, bool), word_ids=list(range(seq)),
        segment_ids=[0] * seq, is_causal=False, unknown_share=0.0, unknown_count=0,
        token_count_before_truncation=seq, token_limit=512, text=text)


class Gate:
    """A ``step_hook`` that holds each step of a background pass (a layer, a head) until the test lets
    it go: ``entered`` is released and ``steps`` counted as each step arrives, ``go`` opens the gate.
    No timing decides a test that uses it."""

    def __init__(self, wait: float = 120.0) -> None:
        self.entered = threading.Semaphore(0)
        self.go = threading.Event()
        self.steps = 0
        self.wait = wait

    def __call__(self) -> None:
        self.steps += 1
        self.entered.release()
        assert self.go.wait(self.wait)


def wait_for(check: Callable[[], Any], what: str, within: float = 90.0) -> Any:
    """``check()``'s first truthy answer, asked every 50 ms; fails naming ``what`` after ``within`` seconds
    (a bound on a hang, not a timed assertion)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
