"""srlm diff on two synthetic 1,000,000-row preference datasets (target: under 20 s on a 2-core CPU).

    python benchmarks/diff.py [--rows 1000000] [--repeats 3]

B keeps 80% of A's pairs (1 in 8 of them with a new rejected score), drops the rest and adds 20%
new ones. Timed, median of --repeats runs each:
  cli      `python -m stages.commands.cli diff 1 2 --format json` end to end (interpreter start, imports, output)
  compare  `stages.commands.diff.compare("1", "2")` in this process (imports already paid)
  read     baseline in the same run: reading the two datasets with rows.read, the I/O floor
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from stages.commands import diff  # noqa: E402
from stages.core import rows  # noqa: E402

WORDS = (
    "the a model answer question data river light number simple explain write list short poem about why how".split()
)


def sentence(key: pl.Expr, n_words: int) -> pl.Expr:
    """A deterministic pseudo-random sentence of `n_words` words picked by hashing `key`."""
    return pl.concat_str(
        [pl.lit(WORDS).list.get((key.hash(k) % len(WORDS)).cast(pl.Int64)) for k in range(n_words)], separator=" "
    )


def synthetic(n: int, start: int, iteration: int, rescore_every: int = 0, topics: int = 500_000) -> pl.DataFrame:
    i = pl.int_range(start, start + n, dtype=pl.Int64)
    pid = i.hash(101).cast(pl.String).str.slice(0, 16)
    chosen, rejected = sentence(i, 40), sentence(i + 7, 28)
    score_r = (i.hash(3) % 4).cast(pl.Float64)
    if rescore_every:
        score_r = pl.when(i % rescore_every == 0).then(score_r + 0.5).otherwise(score_r)
    df = pl.select(
        id=i.hash(202).cast(pl.String).str.slice(0, 16),
        prompt_id=pid,
        prompt=pl.concat_list(pl.struct(role=pl.lit("user"), content=sentence(i % topics + 11, 14))),
        chosen=pl.concat_list(pl.struct(role=pl.lit("assistant"), content=chosen)),
        rejected=pl.concat_list(pl.struct(role=pl.lit("assistant"), content=rejected)),
        chosen_id=i.hash(303).cast(pl.String).str.slice(0, 16),
        rejected_id=i.hash(404).cast(pl.String).str.slice(0, 16),
        score_chosen=(score_r.floor() + 1 + i.hash(5) % 2).cast(pl.Float64),
        score_rejected=score_r,
        iteration=pl.lit(iteration, pl.Int32),
    )
    return rows.conform(df, "preferences")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n = args.rows
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        t0 = time.perf_counter()
        rows.write(synthetic(n, 0, 1), "data/iter1/preferences.parquet", "preferences")
        keep = int(n * 0.8)  # B = A's last 80% (1 in 8 rescored) + 20% new
        b = pl.concat([synthetic(keep, n - keep, 2, rescore_every=8), synthetic(n - keep, n, 2)])
        rows.write(b.with_columns(iteration=pl.lit(1, pl.Int32)), "data/iter2/preferences.parquet", "preferences")
        del b
        sizes = [os.path.getsize(f"data/iter{t}/preferences.parquet") / 2**20 for t in (1, 2)]
        print(
            f"generated 2 x {n:,} rows ({sizes[0]:.0f} + {sizes[1]:.0f} MiB parquet) in {time.perf_counter() - t0:.1f} s"
        )

        wall = {"read": [], "compare": [], "cli": []}
        cpu = {"read": [], "compare": [], "cli": []}
        cmd = [
            sys.executable,
            "-m",
            "stages.commands.cli",
            "--params",
            str(ROOT / "params.yaml"),
            "diff",
            "1",
            "2",
            "--format",
            "json",
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}

        def children_cpu() -> float:
            u = resource.getrusage(resource.RUSAGE_CHILDREN)
            return u.ru_utime + u.ru_stime

        for _ in range(args.repeats):
            t, c = time.perf_counter(), children_cpu()
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
            wall["cli"].append(time.perf_counter() - t)
            cpu["cli"].append(children_cpu() - c)
            t, c = time.perf_counter(), time.process_time()
            rows.read("data/iter1/preferences.parquet", "preferences")
            rows.read("data/iter2/preferences.parquet", "preferences")
            wall["read"].append(time.perf_counter() - t)
            cpu["read"].append(time.process_time() - c)
            t, c = time.perf_counter(), time.process_time()
            r = diff.compare("1", "2")
            wall["compare"].append(time.perf_counter() - t)
            cpu["compare"].append(time.process_time() - c)
        rw = r["rows"]
        print(
            f"rows: added {rw['added']:,} removed {rw['removed']:,} changed {rw['changed']:,} unchanged {rw['unchanged']:,}; "
            f"churn {r['pairs']['churn']}, novelty {r['novelty']['novelty']}"
        )
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, polars {pl.__version__}"
        )
        base = statistics.median(wall["read"])
        for name, label in (
            ("read", "read both (baseline)"),
            ("compare", "compare (in process)"),
            ("cli", "srlm diff (CLI, e2e)"),
        ):
            m = statistics.median(wall[name])
            print(
                f"{label:22s} wall median {m:6.2f} s {[round(x, 2) for x in wall[name]]}  {m / base:5.1f}x read;"
                f"  CPU (user+sys) median {statistics.median(cpu[name]):6.2f} s"
            )


if __name__ == "__main__":
    main()
