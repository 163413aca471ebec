"""plots: the per-iteration numbers the stages already wrote, as tables `dvc plots` can draw.

    python -m stages.plots --metrics metrics --out plots

Reads metrics/iter<t>/judge.json (score_hist, score_mean, parse_rate) and pairs.json (tie_rate,
chosen/rejected lengths) for every iteration present and writes two small CSVs:

  plots/scores.csv      iteration, score, grades, share      score histogram per iteration
  plots/iterations.csv  iteration, score_mean, parse_rate, tie_rate, pairs, margin_mean,
                        chosen_chars, rejected_chars, length_ratio

dvc.yaml's top-level `plots:` draws them (score histogram, score by iteration, length drift,
tie/parse rates); `dvc plots show` renders the workspace, `dvc plots diff main` two revisions.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import polars as pl

from . import rows
from .errors import entry

ITER_COLUMNS = {
    "score_mean": ("judge", "score_mean"),
    "parse_rate": ("judge", "parse_rate"),
    "tie_rate": ("pairs", "tie_rate"),
    "pairs": ("pairs", "pairs"),
    "margin_mean": ("pairs", "margin_mean"),
    "chosen_chars": ("pairs", "chosen_chars_mean"),
    "rejected_chars": ("pairs", "rejected_chars_mean"),
    "length_ratio": ("pairs", "length_ratio"),
}


def tables(metrics: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    iters = sorted(int(m.group(1)) for d in metrics.glob("iter*") if (m := re.fullmatch(r"iter(\d+)", d.name)))
    hist, per_iter = [], []
    for t in iters:
        found = {name: rows.read_json(metrics / f"iter{t}" / f"{name}.json") or {} for name in ("judge", "pairs")}
        if not any(found.values()):
            continue
        counts = found["judge"].get("score_hist", {})
        total = sum(counts.values())
        hist += [
            {"iteration": t, "score": int(s), "grades": n, "share": round(n / total, 4) if total else 0.0}
            for s, n in sorted(counts.items(), key=lambda kv: int(kv[0]))
        ]
        per_iter.append({"iteration": t, **{col: found[src].get(key) for col, (src, key) in ITER_COLUMNS.items()}})
    hist_schema = {"iteration": pl.Int64, "score": pl.Int64, "grades": pl.Int64, "share": pl.Float64}
    iter_schema = {"iteration": pl.Int64, **{c: pl.Float64 for c in ITER_COLUMNS}}
    return pl.DataFrame(hist, schema=hist_schema), pl.DataFrame(per_iter, schema=iter_schema)


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metrics", type=Path, default=Path("metrics"))
    ap.add_argument("--out", type=Path, default=Path("plots"))
    args = ap.parse_args(argv)
    hist, per_iter = tables(args.metrics)
    rows.all_or_none(args.out / "scores.csv", args.out / "iterations.csv")
    rows.write_text(hist.write_csv(), args.out / "scores.csv")
    rows.write_text(per_iter.write_csv(), args.out / "iterations.csv")
    print(f"plots: {len(per_iter)} iterations -> {args.out}/scores.csv, {args.out}/iterations.csv")


if __name__ == "__main__":
    main()
