"""plots: the per-iteration and per-model numbers the stages already wrote, as tables `dvc plots` can draw.

    python -m stages.plots --metrics metrics --out plots

Reads, for every iteration present, metrics/iter<t>/prompts.json (flawed_share), responses.json
(truncated and looping shares), judge.json (score_hist, score_mean, parse_rate, score-length Spearman)
and pairs.json (tie_rate, chosen/rejected lengths, chosen-longer rate, truncated chosen/rejected), and
every model's eval.json (metrics/base/eval.json, metrics/iter<t>/eval.json; t = 0 is M0), and writes:

  plots/scores.csv      iteration, score, grades, share      score histogram per iteration
  plots/iterations.csv  iteration, then ITER_COLUMNS         one row per iteration's data
  plots/models.csv      model, iteration, then MODEL_COLUMNS one row per model: IFEval and judge agreement,
                                                            each accuracy with its 95% interval (_lo, _hi)

dvc.yaml's top-level `plots:` draws them (score histogram, score by iteration, length drift,
tie/parse rates, length bias, truncation, IFEval and the shorter-preferred judge accuracy per model);
`dvc plots show` renders the workspace, `dvc plots diff main` two revisions.
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
    "chosen_longer_rate": ("pairs", "chosen_longer_rate"),
    "chosen_truncated": ("pairs", "chosen_truncated"),
    "rejected_truncated": ("pairs", "rejected_truncated"),
    "length_spearman_within": ("judge", "length_spearman_within"),
    "length_spearman_pooled": ("judge", "length_spearman_pooled"),
    "truncated_share": ("responses", "truncated_share"),
    "loops_share": ("responses", "loops_share"),
    "flawed_prompt_share": ("prompts", "flawed_share"),
}
# per model, from its eval.json: an accuracy block ({acc, n, ci95}) gives three columns, name, name_lo, name_hi
MODEL_ACCURACIES = {
    "ifeval_prompt_strict": ("ifeval", "prompt_level_strict_acc"),
    "ifeval_inst_strict": ("ifeval", "inst_level_strict_acc"),
    "ifeval_prompt_loose": ("ifeval", "prompt_level_loose_acc"),
    "ifeval_inst_loose": ("ifeval", "inst_level_loose_acc"),
    "judge_all": ("human", "length_slices", "pointwise", "all"),
    "judge_shorter_preferred": ("human", "length_slices", "pointwise", "shorter_preferred"),
    "judge_longer_preferred": ("human", "length_slices", "pointwise", "longer_preferred"),
    "ab_shorter_preferred": ("human", "length_slices", "ab", "shorter_preferred"),
    "longer_wins_all": ("human", "length_slices", "longer_wins", "all"),  # the baseline on the same pairs
}
MODEL_SHARES = {"ifeval_cap_hit": ("ifeval", "cap_hit"), "ifeval_loops": ("ifeval", "loops")}
MODEL_COLUMNS = [c for name in MODEL_ACCURACIES for c in (name, f"{name}_lo", f"{name}_hi")] + list(MODEL_SHARES)


def _get(d, keys):
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def model_row(name: str, iteration: int | None, ev: dict) -> dict:
    """One row of models.csv from an eval.json."""
    row: dict = {"model": name, "iteration": iteration}
    for col, keys in MODEL_ACCURACIES.items():
        block = _get(ev, keys) or {}
        lo, hi = block.get("ci95") or (None, None)
        row |= {col: block.get("acc"), f"{col}_lo": lo, f"{col}_hi": hi}
    for col, keys in MODEL_SHARES.items():
        row[col] = (_get(ev, keys) or {}).get("share")
    return row


def models_table(metrics: Path) -> pl.DataFrame:
    """One row per evaluated model: base (metrics/base/eval.json), then M0, M1, ... (metrics/iter<t>/eval.json)."""
    iters = sorted(int(m.group(1)) for d in metrics.glob("iter*") if (m := re.fullmatch(r"iter(\d+)", d.name)))
    found = [("base", None, rows.read_json(metrics / "base" / "eval.json"))]
    found += [(f"M{t}", t, rows.read_json(metrics / f"iter{t}" / "eval.json")) for t in iters]
    schema = {"model": pl.String, "iteration": pl.Int64, **{c: pl.Float64 for c in MODEL_COLUMNS}}
    return pl.DataFrame([model_row(n, t, ev) for n, t, ev in found if ev is not None], schema=schema)


def tables(metrics: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    iters = sorted(int(m.group(1)) for d in metrics.glob("iter*") if (m := re.fullmatch(r"iter(\d+)", d.name)))
    hist, per_iter = [], []
    for t in iters:
        found = {
            name: rows.read_json(metrics / f"iter{t}" / f"{name}.json") or {}
            for name in ("prompts", "responses", "judge", "pairs")
        }
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
    models = models_table(args.metrics)
    rows.all_or_none(args.out / "scores.csv", args.out / "iterations.csv", args.out / "models.csv")
    rows.write_text(hist.write_csv(), args.out / "scores.csv")
    rows.write_text(per_iter.write_csv(), args.out / "iterations.csv")
    rows.write_text(models.write_csv(), args.out / "models.csv")
    print(
        f"plots: {len(per_iter)} iterations, {len(models)} models -> {args.out}/scores.csv, "
        f"{args.out}/iterations.csv, {args.out}/models.csv"
    )


if __name__ == "__main__":
    main()
