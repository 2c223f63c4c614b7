"""What the benchmarks share: the machine report, settings and cache binding, texts of an exact
token count, statistics and markdown tables."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZES = (32, 128, 512)

# Common English words; only those the tokenizer keeps as one token are used, so a text of n words
# is n tokens and its length can be set exactly.
WORDS = (
    "the a an and or but because while when after before if then so that this these those it they we you she "
    "he people students teachers scientists children dogs cats birds cars trains books songs ideas models "
    "attention language words sentences meaning context memory river city garden window table letter story "
    "walked read wrote saw heard found built learned forgot remembered explained asked answered carried "
    "quickly slowly carefully quietly often never always sometimes together alone again early late "
    "small large old new bright dark warm cold happy tired curious strange simple difficult important "
    "in on under over near through across between behind beside into from with without about of to for "
    "house school road forest mountain sea morning evening night summer winter music paper friend family "
    "open close give take make keep run sit stand think know want need like love"
).split()


# ----------------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def machine_lines() -> list[str]:
    """Machine, versions and load, one ``- key: value`` line each (markdown-ready)."""
    import torch

    lines = [
        f"- date: {_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- cpus: {os.cpu_count()} (usable: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}), "
        f"{_cpu_model()}",
        f"- ram: {_ram_gb():.1f} GB",
        f"- python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads)",
    ]
    try:
        import dash
        import numpy
        import plotly
        import transformers

        lines.append(f"- transformers {transformers.__version__}, numpy {numpy.__version__}, "
                     f"dash {dash.__version__}, plotly {plotly.__version__}")
    except ImportError:
        pass
    lines.append(f"- load average (1, 5, 15 min): {load_text()}")
    return lines


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    text = f"{one:.2f} {five:.2f} {fifteen:.2f}"
    if one > 1.0:
        text += "  (busy machine: other processes were running; times are pessimistic)"
    return text


def print_header(title: str) -> None:
    print(f"# {title}\n")
    for line in machine_lines():
        print(line)
    print(flush=True)


# ----------------------------------------------------------------------------------- settings


def setup(cache_dir: str, cache_type: str = "filesystem", **changes):
    """Configures the services in code and binds the shared cache, as the app factory does.

    ``changes`` are further ``Settings`` fields (e.g. ``torch_threads``)."""
    import flask

    from attention_explorer.services.config import Settings, configure
    from attention_explorer.services.store import cache

    settings = configure(Settings(cache_type=cache_type, cache_dir=cache_dir, **changes))
    cache.init_cache(flask.Flask("bench"), settings)
    return settings


# ----------------------------------------------------------------------------------- texts


class TextMaker:
    """New texts of exactly ``n`` tokens (special tokens included) for one tokenizer.

    Every call returns a text never returned before (a counter seeds the word choice), so nothing
    is ever served from a cache by accident.
    """

    def __init__(self, tokenizer, words: list[str] | tuple[str, ...] = WORDS) -> None:
        self.tokenizer = tokenizer
        special = len(tokenizer("x", add_special_tokens=True)["input_ids"]) - len(
            tokenizer("x", add_special_tokens=False)["input_ids"])
        self.special = special
        self.words = [w for w in dict.fromkeys(words)
                      if len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) == 1]
        if len(self.words) < 50:
            raise RuntimeError("too few single-token words for this tokenizer")
        self.count = 0

    def tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"])

    def make(self, n: int) -> str:
        """A new sentence-like text of exactly ``n`` tokens: words, a full stop every 12 or so."""
        self.count += 1
        rng = random.Random(f"{n}:{self.count}")
        body = n - self.special
        # One token a unit: a word, or a full stop (attached to the word before it) every 13th.
        units = [("." if i % 13 == 12 and i < body - 1 else rng.choice(self.words)) for i in range(body)]
        text = " ".join(units).replace(" .", ".")
        while self.tokens(text) > n:  # never expected; kept so a tokenizer quirk cannot loop
            text = text.rsplit(" ", 1)[0]
        while self.tokens(text) < n:
            text += " " + rng.choice(self.words)
        got = self.tokens(text)
        if got != n:
            raise RuntimeError(f"could not build a text of {n} tokens (got {got})")
        return text


# ----------------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Stats:
    n: int
    median: float
    p95: float
    minimum: float
    maximum: float


def stats(samples: list[float]) -> Stats:
    """Median and p95 (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    rank = max(1, -(-95 * len(ordered) // 100))  # ceil(0.95 n)
    return Stats(len(ordered), statistics.median(ordered), ordered[rank - 1], ordered[0], ordered[-1])


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def kb(nbytes: float) -> str:
    return f"{nbytes / 1024:,.0f}" if nbytes >= 10 * 1024 else f"{nbytes / 1024:.1f}"


def verdict(value: float, limit: float | None) -> str:
    if limit is None:
        return "—"
    return "PASS" if value <= limit else f"MISS (+{(value / limit - 1) * 100:.0f}%)"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
