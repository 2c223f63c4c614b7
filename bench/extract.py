"""Benchmark: the cost of ``extract_attention`` beside the forward pass it wraps, and of a cached call.

    .venv/bin/python bench/extract.py               # 32, 128 and 512 tokens, 12 runs each
    .venv/bin/python bench/extract.py --runs 20 --sizes 128
    .venv/bin/python bench/extract.py --torch-threads 1   # as a gunicorn worker runs (gunicorn.conf.py)
    .venv/bin/python bench/extract.py --breakdown   # where a new text's time goes, step by step
    .venv/bin/python bench/extract.py --profile 512 # the same under cProfile
    .venv/bin/python bench/extract.py --value-norms # what computing value norms adds to a new text

Default model (the bundled all-MiniLM-L6-v2), file-system cache in a fresh temporary directory, as
the app runs by default. For each size, every run uses new texts of exactly that many tokens
(special tokens included) and measures, interleaved in the same run:

(a) tokenize + forward pass alone: the tokenizer call ``services.forward.compute`` makes and
    ``model(..., output_attentions=True)`` under ``torch.inference_mode()``, on the loaded model;
(b) ``extract_attention`` on another new text: validation, cache key, cache miss, tokenize, forward,
    float16 result, stored in the in-process memo and the file-system cache;
(c) ``extract_attention`` on the same text again: served by the in-process memo;
(d) the same after ``cache.clear_local()``: served by the file-system cache, as another worker
    process on the host would see it.

Budgets (docs/benchmarks.md, ../shared/DESIGN.md): b <= 1.3 x a (medians); c p95 <= 5 ms at 128 tokens.

``--value-norms`` instead times ``services.forward.compute`` (tokenize, forward, float16 result) on new
texts, interleaved: without the hooks (removed from the model; the value norms left out) and with them
(the hooks record each layer's value vectors and the norms are computed, as every analysis does).
Budget (issue 10): with <= 1.1 x without. The verdict uses the median of the per-run ratios: each run
times both back to back (alternating which goes first), so both see the same load from other
processes, which on a shared 2-core machine moves single timings by far more than 10%.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402 - after the path is set
    SIZES,
    TextMaker,
    load_text,
    markdown_table,
    ms,
    print_header,
    setup,
    stats,
    verdict,
)

RATIO_BUDGET = 1.3
VALUE_NORMS_BUDGET = 1.1
CACHED_BUDGET_S = {128: 0.005}
CACHED_REPEATS = 5  # cached calls (c) per run
MAX_RUNS = 50


def forward_only(loaded, text: str):
    """(a): the same tokenizer call and forward pass as ``forward.compute``, nothing else."""
    import torch

    tokenizer = loaded.tokenizer
    enc = tokenizer(
        text, None, add_special_tokens=True, truncation=False, return_tensors="pt",
        return_special_tokens_mask=True, return_offsets_mapping=bool(getattr(tokenizer, "is_fast", False)),
        verbose=False,
    )
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.inference_mode():
        return loaded.model(**inputs, output_attentions=True, return_dict=True)


class ForwardCounter:
    """Counts model runs through ``services.extraction.run_extraction``, so a 'cached' call that
    secretly ran the model is caught instead of timed."""

    def __init__(self) -> None:
        from attention_explorer.services import extraction

        self.module = extraction
        self.original = extraction.run_extraction
        self.calls = 0

        def counted(*args, **kwargs):
            self.calls += 1
            return self.original(*args, **kwargs)

        extraction.run_extraction = counted

    def restore(self) -> None:
        self.module.run_extraction = self.original


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def bench_size(n: int, runs: int, loaded, maker: TextMaker, counter: ForwardCounter) -> dict:
    from attention_explorer.services import extract_attention
    from attention_explorer.services.store import cache

    # Warm-up at this size: first calls allocate buffers of the new shape.
    for _ in range(2):
        forward_only(loaded, maker.make(n))
        extract_attention(maker.make(n))
    a, b, c, d, ratios = [], [], [], [], []
    for run in range(runs):
        text_a, text_b = maker.make(n), maker.make(n)
        gc.collect()
        order = ("a", "b") if run % 2 == 0 else ("b", "a")  # neither always goes first
        for which in order:
            if which == "a":
                t, out = timed(forward_only, loaded, text_a)
                del out
                a.append(t)
            else:
                before = counter.calls
                t, result = timed(extract_attention, text_b)
                assert counter.calls == before + 1, "a new text did not run the model"
                assert result.seq_len == n, f"expected {n} tokens, got {result.seq_len}"
                b.append(t)
        ratios.append(b[-1] / a[-1])
        before = counter.calls
        for _ in range(CACHED_REPEATS):
            t, _ = timed(extract_attention, text_b)
            c.append(t)
        cache.flush()
        cache.clear_local()
        t, _ = timed(extract_attention, text_b)
        d.append(t)
        assert counter.calls == before, "a cached call ran the model"
    return {"a": stats(a), "b": stats(b), "c": stats(c), "d": stats(d), "ratio": stats(ratios)}


def table(results: dict[int, dict]) -> str:
    rows = []
    for n, r in results.items():
        a, b, c, d, ratio = r["a"], r["b"], r["c"], r["d"], r["ratio"]
        median_ratio = b.median / a.median
        rows.append([n, "(a) tokenize + forward pass", ms(a.median), ms(a.p95), "—", "—"])
        rows.append([n, "(b) new text: `extract_attention`", ms(b.median), ms(b.p95), "—", "—"])
        rows.append([n, "b / a (medians; p95 of per-run ratios)", f"{median_ratio:.2f}×", f"{ratio.p95:.2f}×",
                     f"≤ {RATIO_BUDGET}×", verdict(median_ratio, RATIO_BUDGET)])
        limit = CACHED_BUDGET_S.get(n)
        rows.append([n, f"(c) cached, in-process memo (p95 of {c.n})", ms(c.median), ms(c.p95),
                     f"p95 ≤ {limit * 1000:g} ms" if limit else "—", verdict(c.p95, limit)])
        rows.append([n, "(d) cached, file-system (memo cleared)", ms(d.median), ms(d.p95), "—", "—"])
    return markdown_table(["tokens", "measurement", "median (ms)", "p95 (ms)", "budget", "result"], rows)


def profile_new_text(n: int, runs: int, maker: TextMaker) -> None:
    """cProfile of ``extract_attention`` on ``runs`` new texts of ``n`` tokens: where (b) spends its time."""
    from attention_explorer.services import extract_attention

    extract_attention(maker.make(n))
    texts = [maker.make(n) for _ in range(runs)]
    profiler = cProfile.Profile()
    profiler.enable()
    for text in texts:
        extract_attention(text)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    print(f"## cProfile: extract_attention on {runs} new texts of {n} tokens\n")
    print(out.getvalue())


def breakdown(sizes: list[int], runs: int, loaded, maker: TextMaker) -> str:
    """The steps of a new text's ``extract_attention``, timed one by one (median of ``runs``).

    Mirrors ``services.forward.compute`` and the cache write step by step, so the overhead of (b)
    over (a) can be attributed; if ``forward.compute`` changes, update the steps here.
    """
    import numpy as np
    import torch

    from attention_explorer.services.extraction import cache_key
    from attention_explorer.services.store import cache
    from attention_explorer.services.validation import validate_text

    model_id = loaded.model_id
    tokenizer = loaded.tokenizer
    rows = []
    for n in sizes:
        steps: dict[str, list[float]] = {}

        def step(name, fn, *args):
            t, out = timed(fn, *args)
            steps.setdefault(name, []).append(t)
            return out

        for _ in range(runs):
            text = maker.make(n)
            gc.collect()
            step("validate + cache key (model fingerprint)", lambda: (validate_text(text, 5000), cache_key(model_id, text, None)))
            step("cache lookup (miss)", cache.lookup, "bench-miss-" + text[:40])
            step("tokenize without tensors (truncation check)",
                 lambda: tokenizer(text, None, add_special_tokens=True, truncation=False, verbose=False))
            out = step("tokenize + forward pass (a)", forward_only, loaded, text)
            stacked = step("stack layers, to float32 numpy",
                           lambda: torch.stack([a[0] for a in out.attentions]).to(torch.float32).numpy())
            step("causal check: |triu(attn)|.max()", lambda: float(np.abs(np.triu(stacked, k=1)).max()))
            half = step("float32 -> float16 (numpy astype)", stacked.astype, np.float16)
            step("  alternative: stack + float16 in torch",
                 lambda: torch.stack([a[0] for a in out.attentions]).to(torch.float16).numpy())
            result_like = {"attentions": half, "tokens": tokenizer.convert_ids_to_tokens(range(n))}
            key = "bench-breakdown-" + str(maker.count)
            step("store: memo + file-system cache write", cache.store, key, result_like, half.nbytes)
            del out, stacked, half, result_like
        for name, samples in steps.items():
            rows.append([n, name, ms(stats(samples).median)])
    return markdown_table(["tokens", "step", "median (ms)"], rows)


class _NoRecording:
    """Stands in for ``services.hooks`` in ``forward.compute``: no hooks, no value norms."""

    class _Recorder:
        @staticmethod
        def value_norms(num_layers):
            return None, ""

    @classmethod
    def recording(cls, model, want_qk=False):
        import contextlib

        return contextlib.nullcontext(cls._Recorder())


def value_norms_overhead(sizes: list[int], runs: int, loaded, maker: TextMaker) -> str:
    """``forward.compute`` on new texts without and with the value-norm hooks, interleaved (issue 10)."""
    from attention_explorer.services.model import forward, hooks

    real = forward.hooks
    limit = forward.effective_token_limit(loaded.token_limit)

    def without(text):
        hooks.uninstall(loaded.model)
        forward.hooks = _NoRecording
        try:
            return timed(forward.compute, loaded, text, None, limit)
        finally:
            forward.hooks = real

    def with_norms(text):
        hooks.install(loaded.model)
        t, result = timed(forward.compute, loaded, text, None, limit)
        assert result.value_norms is not None, result.value_norms_reason
        return t, result

    rows = []
    for n in sizes:
        for _ in range(2):  # warm-up at this size
            without(maker.make(n))
            with_norms(maker.make(n))
        plain, hooked, ratios = [], [], []
        for run in range(runs):
            gc.collect()
            pair = [(without, plain), (with_norms, hooked)]
            for fn, samples in (pair if run % 2 == 0 else pair[::-1]):
                t, result = fn(maker.make(n))
                assert result.seq_len == n
                samples.append(t)
                del result
            ratios.append(hooked[-1] / plain[-1])
        a, b, r = stats(plain), stats(hooked), stats(ratios)
        ratio = b.median / a.median
        rows.append([n, ms(a.median), ms(b.median), ms(a.minimum), ms(b.minimum), f"{(ratio - 1) * 100:+.1f}%",
                     f"{(b.minimum / a.minimum - 1) * 100:+.1f}%", f"{(r.median - 1) * 100:+.1f}%",
                     f"≤ +{(VALUE_NORMS_BUDGET - 1) * 100:.0f}%", verdict(r.median, VALUE_NORMS_BUDGET)])
        print(f"  {n} tokens done", flush=True)
    hooks.install(loaded.model)
    return markdown_table(["tokens", "without: median (ms)", "with: median (ms)", "without: min", "with: min",
                           "overhead: medians", "overhead: minima", "overhead: paired (median of per-run ratios)",
                           "budget", "result (paired)"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=12, help="timed runs per size (at least 10)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="token counts")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch intra-op threads (0: torch's default, as `make run`; gunicorn workers use 1)")
    parser.add_argument("--breakdown", action="store_true", help="time the steps of a new text instead")
    parser.add_argument("--profile", type=int, metavar="TOKENS", help="profile a new text at this size instead")
    parser.add_argument("--value-norms", action="store_true",
                        help="time forward.compute without and with the value-norm hooks instead")
    args = parser.parse_args(argv)
    runs = min(max(args.runs, 10), MAX_RUNS)

    from attention_explorer.services import extract_attention
    from attention_explorer.services.model.loading import get_model

    with tempfile.TemporaryDirectory(prefix="attn-bench-") as cache_dir:
        settings = setup(cache_dir, "filesystem", torch_threads=max(0, args.torch_threads))
        loaded = get_model(settings.default_model)  # applies torch_threads before the machine report
        print_header("bench/extract.py: extract_attention beside tokenize + forward")
        maker = TextMaker(loaded.tokenizer)
        print(f"model {settings.default_model}: {loaded.num_layers} layers x {loaded.num_heads} heads, "
              f"file-system cache in {cache_dir}, {runs} runs a size\n", flush=True)
        # Warm-up: the first forward passes pay for lazy initialisation.
        for n in (32, 128, 512):
            forward_only(loaded, maker.make(n))
        extract_attention(maker.make(32))
        if args.profile:
            profile_new_text(args.profile, runs, maker)
            return 0
        if args.value_norms:
            print("## Value norms: forward.compute without and with the hooks (new texts, interleaved)\n")
            print(value_norms_overhead(args.sizes, runs, loaded, maker))
            print(f"\nload average at the end: {load_text()}")
            return 0
        if args.breakdown:
            print(breakdown(args.sizes, runs, loaded, maker))
            print(f"\nload average at the end: {load_text()}")
            return 0
        counter = ForwardCounter()
        results = {}
        started = time.perf_counter()
        try:
            for n in args.sizes:
                results[n] = bench_size(n, runs, loaded, maker, counter)
                print(f"  {n} tokens done ({time.perf_counter() - started:.0f} s)", flush=True)
        finally:
            counter.restore()
    print()
    print(table(results))
    print()
    print(f"load average at the end: {load_text()}")
    misses = [n for n, r in results.items() if r["b"].median / r["a"].median > RATIO_BUDGET
              or (n in CACHED_BUDGET_S and r["c"].p95 > CACHED_BUDGET_S[n])]
    print("every budget met" if not misses else f"budget missed at {', '.join(map(str, misses))} tokens")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
