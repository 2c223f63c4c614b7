"""Long inputs (issue 17): attention computed on demand from the kept queries and keys.

    .venv/bin/python bench/long.py [--sizes 512 1024 4096 8192] [--reps 2]

On a random Llama with the SmolLM2-135M shape (30 layers x 9 heads, 3 key/value heads, head dim 64,
hidden 576; a small vocabulary), built once into a temp folder (tests/tiny_models.py), loaded by the app
itself (``services.model.loading``: the recording attention function, SDPA underneath). Per length n,
each measurement in a fresh process (one pass's allocator caches cannot hide another's memory):

- **plain**: the same loaded model, one forward pass outside a recording (stock SDPA, no weights kept);
- **analysis**: ``services.model.forward.compute``: tokenize, ONE recording pass, the result built (the
  queries, keys, recipe and value norms); budget <= 1.5 x plain + 1 s;
- **peak**: resident memory above the loaded model during the analysis (the kernel's VmHWM, reset by
  writing 5 to /proc/self/clear_refs after loading and a warm-up); budget <= 1 GB at 4,096;
- **stored**: what the cache stores (``stored_nbytes``) against all maps in float16 (L x H x n^2 x 2);
  budget <= 10 % at 4,096;
- **head / tile / rows / pooled**: one head's whole map (budget <= 300 ms at 4,096), a 256 x 256 tile,
  16 rows, and the block-32 max-pooled summary of every head of a layer (budget <= 1 s at 4,096), on
  layer 15, best of ``--reps`` calls.

Prints a markdown table (with the machine and its load) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, markdown_table, print_header

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _status() -> dict[str, int]:
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            key, value = line.split(":")
            found[key] = int(value.split()[0]) * 1024
    return found


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _best(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def worker(kind: str, folder: str, n: int, reps: int) -> dict:
    """One measurement in this process: ``plain`` or ``analysis`` (with the accessors)."""
    import torch

    from attention_explorer.services import config
    from attention_explorer.services.model import forward
    from attention_explorer.services.model.loading import get_model
    from tests import tiny_models as tm

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    config.configure(config.Settings(models=(folder,), default_model=folder, cache_type="null", max_tokens=n))
    loaded = get_model(folder)
    text = " ".join(tm.long_text(int(n * 0.8) + 200, seed=3).split()[: int(n * 0.8) + 200])
    enc = forward.encode(loaded.tokenizer, text, None, n)
    assert enc["input_ids"].shape[1] == n, enc["input_ids"].shape
    ids = enc["input_ids"]
    with torch.inference_mode():
        loaded.model(input_ids=ids[:, :64], use_cache=False)  # warm-up
    before = _status()["VmRSS"]
    _reset_peak()
    if kind == "plain":
        start = time.perf_counter()
        with torch.inference_mode():
            loaded.model(input_ids=ids, use_cache=False)
        seconds = time.perf_counter() - start
        peak = _status()["VmHWM"] - before
        seconds = min(seconds, _best(lambda: loaded.model(input_ids=ids, use_cache=False), reps - 1) if reps > 1
                      else seconds)
        return {"seconds": seconds, "peak": peak}
    start = time.perf_counter()
    result = forward.compute(loaded, text, None, n)
    seconds = time.perf_counter() - start
    peak = _status()["VmHWM"] - before
    assert result.seq_len == n and result.recorded and not result.dense
    for _ in range(reps - 1):
        start = time.perf_counter()
        forward.compute(loaded, text, None, n)
        seconds = min(seconds, time.perf_counter() - start)
    layer = min(15, result.num_layers - 1)
    return {
        "seconds": seconds, "peak": peak, "stored": result.stored_nbytes, "dense": result.dense_cells * 2,
        "head": _best(lambda: result.head(layer, 4), reps),
        "tile": _best(lambda: result.tile(layer, 4, n // 2, n // 2 + 256, n // 4, n // 4 + 256), reps),
        "rows": _best(lambda: result.rows(layer, 4, list(range(n - 16, n))), reps),
        "pooled": _best(lambda: result.pooled(layer, None, 32), reps),
        "self_check": float(max(result.self_check)),
    }


def _run(kind: str, folder: str, n: int, reps: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", kind, folder, str(n), str(reps)],
                          capture_output=True, text=True, cwd=ROOT, timeout=3600)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 4096, 8192])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--folder", help="a built model (default: built into a temp folder)")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, folder, n, reps = args.worker
        print(json.dumps(worker(kind, folder, int(n), int(reps))))
        return 0
    sys.path.insert(0, str(ROOT))
    from tests import tiny_models as tm

    folder = args.folder or str(tm.build("smollm2", Path(tempfile.mkdtemp(prefix="smollm2-shape-")) / "model"))
    print_header("Long inputs: SmolLM2-135M shape (30 layers x 9 heads, 3 KV heads, head dim 64), random weights")
    rows, failures, measured = [], [], False
    for n in args.sizes:
        plain = _run("plain", folder, n, args.reps)
        analysis = _run("analysis", folder, n, args.reps)
        budget = 1.5 * plain["seconds"] + 1.0
        share = analysis["stored"] / analysis["dense"]
        rows.append([
            f"{n:,}", f"{plain['seconds']:.2f}", f"{analysis['seconds']:.2f}", f"{budget:.2f}",
            f"{analysis['peak'] / 2**20:,.0f}", f"{analysis['stored'] / 2**20:,.0f}",
            f"{analysis['dense'] / 2**30:,.2f}", f"{100 * share:.1f} %",
            f"{1000 * analysis['head']:.0f}", f"{1000 * analysis['tile']:.1f}", f"{1000 * analysis['rows']:.1f}",
            f"{1000 * analysis['pooled']:.0f}", f"{analysis['self_check']:.1e}",
        ])
        if n == 4096:
            measured = True
            checks = [("analysis <= 1.5 x plain + 1 s", analysis["seconds"] <= budget),
                      ("peak <= 1 GB", analysis["peak"] <= 2**30), ("stored <= 10 %", share <= 0.10),
                      ("head <= 300 ms", analysis["head"] <= 0.3), ("pooled layer <= 1 s", analysis["pooled"] <= 1.0)]
            failures += [name for name, ok in checks if not ok]
    print()
    print(markdown_table(["tokens", "plain s", "analysis s", "budget s", "peak MB", "stored MB", "all maps GiB",
                          "stored / maps", "head ms", "tile ms", "16 rows ms", "pooled layer ms", "self-check"], rows))
    print()
    if not measured:
        print("4,096-token budgets: not measured (add 4096 to --sizes)")
    else:
        print("4,096-token budgets: " + ("all met" if not failures else "MISSED: " + ", ".join(failures)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
