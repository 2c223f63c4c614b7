"""Benchmark: server time and bytes of the view callbacks on cached text, beside a naive Plotly baseline.

    .venv/bin/python bench/views.py                    # 32, 128 and 512 tokens, 24 runs a case
    .venv/bin/python bench/views.py --sizes 512 --runs 40
    .venv/bin/python bench/views.py --case grid --profile 512   # cProfile of one case

For each size, one new text of exactly that many tokens is analysed once (so it is cached, as after
Analyze), then each case runs ``--runs`` times with a different layer each run. A run's time is what
the server spends: the router (boundary parsing, cache hit by key, slicing, figure building) plus the JSON
serialisation Dash applies to a callback's response (``dash._utils.to_json``, i.e.
``plotly.io.json.to_json_plotly``, orjson when installed), on the response envelope Dash sends.
Bytes are that JSON's length (before any HTTP compression).

Every case goes through ``callbacks.router.route``, the one server callback behind the views, with
the values a browser sends (a handle, not the text): parsing at the boundary, the cache lookup by key
and the figure. Adding a view: write ``def my_view(ctx, run) -> str`` returning ``routed(ctx, tab,
changed_input, **values)``, then append ``Case("name", my_view, Budget(...))`` to ``CASES``.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402 - after the path is set
    SIZES,
    TextMaker,
    kb,
    load_text,
    markdown_table,
    ms,
    print_header,
    setup,
    stats,
    verdict,
)

MAX_RUNS = 200
WARMUP = 2


# ----------------------------------------------------------------------------------- harness


@dataclass
class Context:
    """What a case gets: the handle Analyze stored (the result is cached) and the result itself."""

    handle: dict  # what the browser holds after Analyze (callbacks.boundary.Handle, as JSON)
    result: object  # services.AttentionResult
    tokens: int
    mode: str = "raw"  # the Raw/Rollout/value-norm control
    switches: tuple[str, ...] = ()  # the hide-special / merge-sub-word switches

    def layer(self, run: int) -> int:
        """A different layer from the previous run's, cycling through all of them."""
        return run % self.result.num_layers

    def head(self, run: int) -> int:
        return run % self.result.num_heads


@dataclass(frozen=True)
class Budget:
    """Limits by token count: p95 server time (seconds) and response bytes; absent = no budget."""

    p95_s: dict[int, float] = field(default_factory=dict)
    max_bytes: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """One measured interaction: ``run(ctx, run_index)`` does the server's work and returns the JSON sent."""

    name: str
    run: Callable[[Context, int], str]
    budget: Budget = Budget()
    baseline: bool = False  # a reference, not part of the app


def routed(ctx: Context, tab: str, changed: str, **values) -> str:
    """What the server does for one view request: ``callbacks.router.route`` (the boundary parses the
    values, the result is fetched by the handle's key, the view draws) with ``changed`` the input that
    changed, then the Dash response of the outputs it updates, serialised."""
    from dash import no_update

    from attention_explorer.callbacks import router

    values = {"handle": ctx.handle, "tab": tab, "mode": ctx.mode, "switches": list(ctx.switches), **values}
    response: dict[str, dict] = {}
    for name, value in router.route(values, frozenset({changed})).items():
        if value is not no_update:
            output = router.OUTPUTS[name]
            response.setdefault(output.component_id, {})[output.component_property] = value
    if not any(isinstance(v, dict) and v.get("data") for props in response.values() for v in props.values()):
        raise RuntimeError(f"{tab}: the router drew no figure: {str(response)[:300]}")
    return dash_response(response)


def dash_response(outputs: dict[str, dict]) -> str:
    """Serialises callback outputs as Dash does: ``{"multi": true, "response": {id: {prop: value}}}``
    through ``dash._utils.to_json`` (``plotly.io.json.to_json_plotly``)."""
    try:
        from dash._utils import to_json
    except ImportError:  # a Dash without the private helper: the function it wraps
        from plotly.io.json import to_json_plotly as to_json
    return to_json({"multi": True, "response": outputs})


# The design's budgets (../shared/DESIGN.md, "Performance budgets").
CHANGE_BUDGET = Budget(p95_s={128: 0.050, 512: 0.150})
ANALYSIS_BUDGET = Budget(p95_s={512: 0.300}, max_bytes={512: 2 * 1024 * 1024})  # issue 4
GRID_BUDGET = Budget(p95_s={128: 0.050, 512: 0.150}, max_bytes={128: 300 * 1024, 512: 2 * 1024 * 1024})


# ----------------------------------------------------------------------------------- cases


def grid_layer_change(ctx: Context, run: int) -> str:
    from attention_explorer.components import ids

    return routed(ctx, ids.TAB_GRID, "layer", layer=ctx.layer(run), head=ids.HEAD_ALL)


def heatmap_layer_change(ctx: Context, run: int) -> str:
    from attention_explorer.components import ids

    return routed(ctx, ids.TAB_HEATMAP, "layer", layer=ctx.layer(run), head="3")


def _arcs(ctx: Context, run: int, head: str) -> str:
    from attention_explorer.components import ids

    return routed(ctx, ids.TAB_ARCS, "layer", layer=ctx.layer(run), head=head, top_k=3, min_weight=0.05)


def arcs_one_head_layer_change(ctx: Context, run: int) -> str:
    return _arcs(ctx, run, "0")


def arcs_all_heads_layer_change(ctx: Context, run: int) -> str:
    from attention_explorer.components import ids

    return _arcs(ctx, run, ids.HEAD_ALL)


def overview_head_change(ctx: Context, run: int) -> str:
    from attention_explorer.components import ids

    return routed(ctx, ids.TAB_OVERVIEW, "head", layer=ctx.layer(run), head=str(ctx.head(run)))


def atlas_metric_change(ctx: Context, run: int) -> str:
    from attention_explorer.components import ids
    from attention_explorer.components.layout import ATLAS_METRICS

    metric = ATLAS_METRICS[run % len(ATLAS_METRICS)][0]
    return routed(ctx, ids.TAB_ATLAS, "metric", metric=metric, window=3, layer=ctx.layer(run),
                  head=str(ctx.head(run)))


def focus_token_change(ctx: Context, run: int) -> str:
    from attention_explorer.components import ids

    return routed(ctx, ids.TAB_FOCUS, "token", token=1 + run % (ctx.tokens - 2), focus_k=3)


def grid_with_switches(ctx: Context, run: int) -> str:
    """The head grid with special tokens hidden and sub-words merged (both transforms on every call)."""
    return grid_layer_change(Context(ctx.handle, ctx.result, ctx.tokens, "raw", ("hide", "merge")), run)


def heatmap_rollout(ctx: Context, run: int) -> str:
    return heatmap_layer_change(Context(ctx.handle, ctx.result, ctx.tokens, "rollout", ()), run)


def naive_make_subplots(ctx: Context, run: int) -> str:
    """The naive way: ``make_subplots`` with one float64 ``go.Heatmap`` a head, 4 columns, ``fig.to_json()``."""
    import numpy as np
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    layer = ctx.result.layer(ctx.layer(run)).astype(np.float64)
    heads = layer.shape[0]
    cols = 4
    rows = -(-heads // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"head {h}" for h in range(heads)])
    for h in range(heads):
        fig.add_trace(go.Heatmap(z=layer[h], coloraxis="coloraxis"), row=h // cols + 1, col=h % cols + 1)
    return fig.to_json()


CASES: list[Case] = [
    Case("head grid, layer change (all heads)", grid_layer_change, GRID_BUDGET),
    Case("single-head heatmap, layer change", heatmap_layer_change, CHANGE_BUDGET),
    Case("arcs, one head, layer change", arcs_one_head_layer_change, CHANGE_BUDGET),
    Case("arcs, all heads, layer change", arcs_all_heads_layer_change, CHANGE_BUDGET),
    Case("head grid, hide special + merge sub-words", grid_with_switches, CHANGE_BUDGET),
    Case("single-head heatmap, rollout", heatmap_rollout, CHANGE_BUDGET),
    Case("model overview, head change", overview_head_change, ANALYSIS_BUDGET),
    Case("head atlas, metric change", atlas_metric_change, ANALYSIS_BUDGET),
    Case("token focus, token change", focus_token_change, ANALYSIS_BUDGET),
    Case("baseline: naive make_subplots, 12 float64 heatmaps", naive_make_subplots, baseline=True),
]


# ----------------------------------------------------------------------------------- running


@dataclass
class Row:
    tokens: int
    case: Case
    times: object  # Stats
    nbytes: object  # Stats


def run_case(case: Case, ctx: Context, runs: int) -> Row:
    for i in range(WARMUP):
        case.run(ctx, runs + i)
    gc.collect()  # once a case: a collection inside a run is part of the cost, as on a server
    times, sizes = [], []
    for run in range(runs):
        start = time.perf_counter()
        payload = case.run(ctx, run)
        times.append(time.perf_counter() - start)
        sizes.append(len(payload.encode("utf-8")))
    return Row(ctx.tokens, case, stats(times), stats(sizes))


def analysed(n: int, maker: TextMaker) -> Context:
    from attention_explorer.callbacks.router import handle_of
    from attention_explorer.services.config import get_settings
    from attention_explorer.services.extraction import analyse

    text = maker.make(n)
    key, result = analyse(text, get_settings().default_model)  # the forward pass, once: runs are cache hits
    if result.seq_len != n:
        raise RuntimeError(f"expected {n} tokens, got {result.seq_len}")
    return Context(handle_of(key, result).to_client(), result, n)


def table(rows: list[Row]) -> str:
    out = []
    for row in rows:
        budget = row.case.budget
        limit_s = budget.p95_s.get(row.tokens)
        limit_b = budget.max_bytes.get(row.tokens)
        budgets = []
        if limit_s is not None:
            budgets.append(f"p95 ≤ {limit_s * 1000:g} ms")
        if limit_b is not None:
            budgets.append(f"≤ {limit_b / 1024:,.0f} KB")
        results = []
        if limit_s is not None:
            results.append(verdict(row.times.p95, limit_s))
        if limit_b is not None:
            results.append(verdict(row.nbytes.maximum, limit_b))
        out.append([row.tokens, row.case.name, ms(row.times.median), ms(row.times.p95), kb(row.nbytes.maximum),
                    ", ".join(budgets) or "—", ", ".join(results) or "—"])
    return markdown_table(["tokens", "case", "median (ms)", "p95 (ms)", "KB sent", "budget", "result"], out)


def misses(rows: list[Row]) -> list[str]:
    found = []
    for row in rows:
        limit_s = row.case.budget.p95_s.get(row.tokens)
        limit_b = row.case.budget.max_bytes.get(row.tokens)
        if limit_s is not None and row.times.p95 > limit_s:
            found.append(f"{row.case.name} at {row.tokens} tokens: p95 {ms(row.times.p95)} ms > {limit_s * 1000:g} ms")
        if limit_b is not None and row.nbytes.maximum > limit_b:
            found.append(f"{row.case.name} at {row.tokens} tokens: {kb(row.nbytes.maximum)} KB > {limit_b / 1024:,.0f} KB")
    return found


def profile(case: Case, ctx: Context, runs: int) -> None:
    case.run(ctx, runs)
    profiler = cProfile.Profile()
    profiler.enable()
    for run in range(runs):
        case.run(ctx, run)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    print(f"## cProfile: {case.name}, {runs} runs at {ctx.tokens} tokens (sorted by own time)\n")
    print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=24, help="timed runs per case and size (at least 20)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="token counts")
    parser.add_argument("--case", help="only the cases whose name contains this")
    parser.add_argument("--profile", type=int, metavar="TOKENS", help="cProfile the chosen cases at this size")
    args = parser.parse_args(argv)
    runs = min(max(args.runs, 20), MAX_RUNS)
    cases = [c for c in CASES if not args.case or args.case.lower() in c.name.lower()]
    if not cases:
        parser.error(f"no case matches {args.case!r}")

    print_header("bench/views.py: view callbacks on cached text")
    from attention_explorer.services.model.loading import get_model

    with tempfile.TemporaryDirectory(prefix="attn-bench-") as cache_dir:
        settings = setup(cache_dir, "filesystem")
        loaded = get_model(settings.default_model)
        maker = TextMaker(loaded.tokenizer)
        print(f"model {settings.default_model}: {loaded.num_layers} layers x {loaded.num_heads} heads, "
              f"file-system cache in {cache_dir}, {runs} runs a case\n", flush=True)
        if args.profile:
            ctx = analysed(args.profile, maker)
            for case in cases:
                profile(case, ctx, runs)
            return 0
        rows: list[Row] = []
        started = time.perf_counter()
        for n in args.sizes:
            ctx = analysed(n, maker)
            for case in cases:
                rows.append(run_case(case, ctx, runs))
            print(f"  {n} tokens done ({time.perf_counter() - started:.0f} s)", flush=True)
    print()
    print(table(rows))
    print()
    print(f"load average at the end: {load_text()}")
    missed = misses(rows)
    print("every budget met" if not missed else "budgets missed:\n- " + "\n- ".join(missed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
