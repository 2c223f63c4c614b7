"""Benchmark: the head atlas's metric pass, head by head (issue 18 item 3), and the induction probe.

    .venv/bin/python bench/atlas.py               # the default model at 128 / 256 / 512 tokens, a tiny random
                                                  # GQA Llama at 1,024 / 4,096 tokens
    .venv/bin/python bench/atlas.py --runs 5

Each case analyses a new text once (cached, as after Analyze), then times the metric pass
(``callbacks.atlas._measure``: ``stream_head_metrics`` over every head, plus the model's probe scores,
cached after the first call) ``--runs`` times; beside it the former whole-array pass (``head_metrics`` on
``result.attentions``) where the result holds its maps. A pass over ``callbacks.atlas.SYNC_CELLS`` cells
runs in the background with a progress bar; the column says which. The 4,096-token Llama uses random
weights (tests/tiny_models.py).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import TextMaker, load_text, markdown_table, ms, print_header, setup, stats


def _time(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print_header("Head atlas: the metric pass, head by head")
    from pathlib import Path

    from attention_explorer.callbacks import atlas
    from attention_explorer.services import config
    from attention_explorer.services.analyses import heads
    from attention_explorer.services.extraction import analyse, induction_scores
    from attention_explorer.services.model.loading import get_model
    from tests import tiny_models as tm

    with tempfile.TemporaryDirectory() as tmp:
        settings = setup(str(Path(tmp) / "cache"))
        llama = str(tm.build("llama", Path(tmp) / "llama"))
        config.configure(models=settings.models + (llama,))
        rows = []
        for model, sizes, name in ((settings.default_model, (128, 256, 512), "all-MiniLM-L6-v2"),
                                   (llama, (1024, 4096), "tiny random GQA Llama (2 x 4 heads, 2 kv)")):
            tokenizer = get_model(model).tokenizer
            try:
                make = TextMaker(tokenizer).make
            except RuntimeError:  # the tiny Llama's own tokenizer: generated text, cut to n tokens
                def make(n, tokenizer=tokenizer):
                    ids = tokenizer(tm.long_text(n), add_special_tokens=False)["input_ids"][:n - 1]
                    return tokenizer.decode(ids)
            start = time.perf_counter()
            induction_scores(model)
            probe = time.perf_counter() - start
            for n in sizes:
                _key, result = analyse(make(n), model)
                cells = result.num_layers * result.num_heads * result.seq_len ** 2
                streamed = stats(_time(lambda: atlas._measure(result, 3), args.runs))
                if result.dense:
                    delimiters = heads.delimiter_mask(result.tokens, result.special_mask)
                    result.attentions  # built once, as the views build it
                    whole = ms(stats(_time(lambda: heads.head_metrics(result.attentions, delimiters,
                                                                      causal=result.is_causal), args.runs)).median)
                else:
                    whole = "— (not held)"
                per_head = streamed.median / (result.num_layers * result.num_heads)
                rows.append([name, f"{result.seq_len:,}", f"{result.num_layers} x {result.num_heads}",
                             ms(streamed.median), ms(per_head), whole, ms(probe),
                             "background" if cells > atlas.SYNC_CELLS else "at once"])
                probe = 0.0
        print(markdown_table(["model", "tokens", "heads", "pass (ms, median)", "per head (ms)",
                              "whole-array pass (ms)", "probe, once a model (ms)", "runs"], rows))
        print(f"\nload average: {load_text()}")


if __name__ == "__main__":
    main()
