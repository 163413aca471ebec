"""plots: the per-iteration and per-model numbers the stages already wrote, as tables `dvc plots` can draw,
and the pipeline's DVC metrics (a few numbers per model).

    python -m stages.plots --metrics metrics --out plots --summary metrics/summary

Reads, for the base model, M0 and every iteration of params.yaml `iterations`: metrics/base/eval.json,
metrics/iter0/eval.json, and metrics/iter<t>/{prompts,responses,judge,pairs,dpo,eval}.json (those files are the
stage's deps in dvc.yaml, one set per iteration: `python tests/test_architecture.py` writes them; a missing one
is an error naming it, never a silently shorter plot). Writes:

  plots/scores.csv        iteration, score, grades, share      judge@t's grades of its own responses
  plots/iterations.csv    iteration, then ITER_COLUMNS         one row per iteration's data
  plots/models.csv        model, iteration, then MODEL_COLUMNS one row per model: IFEval and judge agreement,
                                                              each accuracy with its 95% interval (_lo, _hi)
  plots/accuracy.csv      model, measure, acc, low, high       the same accuracies, and dpo@t's reward accuracy on
                                                              its pairs, long, for the interval plot
  plots/judge_scores.csv  model, score, share                  each model's grades of held-out human answers
  metrics/summary/<model>.json   SUMMARY: the DVC metrics, a row per model in `dvc metrics show`

dvc.yaml's top-level `plots:` draws them with the templates in .dvc/plots (ordinal iteration axes, titled axes,
a colour per series); `dvc plots show` renders the workspace, `dvc plots diff main` two revisions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from stages.core import params as P
from stages.core import rows
from stages.core.errors import SrlmError, entry
from stages.measure.metrics import Accuracy, DpoMetrics, EvalMetrics, parse

# the params this stage reads: dvc.yaml's params list and the lineage record (python -m stages.commands.dag write)
PARAMS = ("iterations",)

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
    "length_spearman_within": ("validate", "judge_length", "within"),
    "length_spearman_pooled": ("validate", "judge_length", "pooled"),
    "truncated_share": ("responses", "truncated_share"),
    "loops_share": ("responses", "loops_share"),
    "flawed_prompt_share": ("prompts", "flawed_share"),
    "dpo_loss_after": ("dpo", "loss_pairs_after"),
    # the checks reward (docs/checks.md): constrained answers' mean share met, and the pairs the checks decided
    # and those a degenerate answer decided
    "checks_share_met": ("checks", "share_met_mean"),
    "pairs_by_checks": ("pairs", "decided_by_checks"),
    "pairs_by_degenerate": ("pairs", "decided_by_degenerate"),  # pairs.degenerate_last
}


def _ifeval(name: str):
    return lambda ev: getattr(ev.ifeval, name) if ev.ifeval else None


def _slice(judge: str, part: str):
    return lambda ev: ev.length_slice(judge, part)


def _heldout_constraints(ev: EvalMetrics) -> Accuracy | None:  # the held-out constraint set, prompt level
    return ev.constraints.prompt_level if ev.constraints else None


# per model, from its eval.json: an accuracy gives three columns, name, name_lo, name_hi
MODEL_ACCURACIES = {
    "ifeval_prompt_strict": _ifeval("prompt_level_strict_acc"),
    "ifeval_inst_strict": _ifeval("inst_level_strict_acc"),
    "ifeval_prompt_loose": _ifeval("prompt_level_loose_acc"),
    "heldout_constraints": _heldout_constraints,
    "ifeval_inst_loose": _ifeval("inst_level_loose_acc"),
    "judge_all": _slice("pointwise", "all"),
    "judge_shorter_preferred": _slice("pointwise", "shorter_preferred"),
    "judge_longer_preferred": _slice("pointwise", "longer_preferred"),
    "ab_shorter_preferred": _slice("ab", "shorter_preferred"),
    "longer_wins_all": _slice("longer_wins", "all"),  # the baseline on the same pairs
}
MODEL_SHARES = {"ifeval_cap_hit": _ifeval("cap_hit"), "ifeval_loops": _ifeval("loops")}
MODEL_COLUMNS = [c for name in MODEL_ACCURACIES for c in (name, f"{name}_lo", f"{name}_hi")] + list(MODEL_SHARES)
# the interval plot: measure -> its accuracy, from the model's eval.json and dpo.json (None: not measured)
ACCURACIES = {
    "judge vs human ranks": lambda ev, dpo: ev.length_slice("pointwise", "all"),
    "judge, shorter answer preferred": lambda ev, dpo: ev.length_slice("pointwise", "shorter_preferred"),
    "longer answer wins (baseline, same pairs)": lambda ev, dpo: ev.length_slice("longer_wins", "all"),
    "IFEval prompt-level strict": lambda ev, dpo: ev.ifeval.prompt_level_strict_acc if ev.ifeval else None,
    "held-out constraints met (prompt level)": lambda ev, dpo: _heldout_constraints(ev),
    "DPO reward accuracy on its pairs": lambda ev, dpo: dpo.reward if dpo else None,
}
# metrics/summary/<model>.json, the files `dvc metrics show` / `dvc exp show` list: per model, a few numbers with
# plain names (a rate's 95% interval is a list beside it, which DVC's tables skip)
SUMMARY = {
    "prompts": ("pairs", ("prompts",)),
    "pairs": ("pairs", ("pairs",)),
    "parse_rate": ("judge", ("parse_rate",)),
    "tie_rate": ("pairs", ("tie_rate",)),
    "dpo_loss_after": ("dpo", ("loss_pairs_after",)),
    "reward_accuracy": ("dpo", ("reward_accuracy",)),
    "reward_accuracy_ci95": ("dpo", ("reward_accuracy_ci95",)),
    "judge_accuracy": ("eval", ("human", "pairwise_accuracy")),
    "judge_accuracy_ci95": ("eval", ("human", "pairwise_accuracy_ci95")),
    "longer_wins": ("eval", ("human", "longer_wins_accuracy")),
    "longer_wins_ci95": ("eval", ("human", "longer_wins_accuracy_ci95")),
    "ifeval_strict": ("eval", ("ifeval", "prompt_level_strict_acc", "acc")),
    "ifeval_strict_ci95": ("eval", ("ifeval", "prompt_level_strict_acc", "ci95")),
    "constraints_met": ("eval", ("constraints", "prompt_level", "acc")),
    "constraints_met_ci95": ("eval", ("constraints", "prompt_level", "ci95")),
    "win_vs_prev": ("eval", ("head2head", "vs_prev", "win")),
    "win_vs_prev_ci95": ("eval", ("head2head", "vs_prev", "win_ci95")),
    "loss_vs_prev": ("eval", ("head2head", "vs_prev", "loss")),
    "loss_vs_prev_ci95": ("eval", ("head2head", "vs_prev", "loss_ci95")),
    "answers_changed": ("eval", ("head2head", "vs_prev", "changed")),  # held-out answers unlike M(t-1)'s
}
ITERATION_FILES = ("prompts", "responses", "judge", "checks", "pairs", "validate", "dpo", "eval")
MODELS = {"base": ("metrics/base", ("eval",)), "M0": ("metrics/iter0", ("eval",))}  # before the loop


def _get(d, keys):
    """The value at a path of a metrics file's JSON: ITER_COLUMNS and SUMMARY copy values as written, so they
    name paths (eval.json's accuracies are read through stages/measure/metrics.py)."""
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def dpo_intervals(dpo: dict) -> dict:
    """dpo@t's metrics with the 95% interval of its reward accuracy, from the count it records (a statistic is
    a measuring stage's, so a change to it never retrains)."""
    if "reward_correct" not in dpo:
        return dpo
    interval = parse(dpo, DpoMetrics).reward.ci95
    return {**dpo, "reward_accuracy_ci95": list(interval) if interval else None}


def inputs(iterations: list[int]) -> list[str]:
    """The metrics files the tables are made of, as repo paths (the plots stage's data deps)."""
    before = [f"{folder}/{n}.json" for folder, names in MODELS.values() for n in names]
    return before + [f"metrics/iter{t}/{n}.json" for t in sorted(iterations) for n in ITERATION_FILES]


def read_all(metrics: Path, iterations: list[int]) -> dict[str, tuple[int | None, dict[str, dict]]]:
    """{model: (iteration, {file: its JSON})} for base, M0 and M<t>; SrlmError naming a missing file."""
    where = {
        m: (None if m == "base" else 0, metrics / Path(f).relative_to("metrics"), n) for m, (f, n) in MODELS.items()
    }
    where |= {f"M{t}": (t, metrics / f"iter{t}", ITERATION_FILES) for t in sorted(iterations)}
    found = {}
    for model, (t, folder, names) in where.items():
        got = {}
        for name in names:
            value = rows.read_json(folder / f"{name}.json")
            if value is None:
                raise SrlmError(
                    f"error: {folder / name}.json is missing: run its stage first; if params.yaml has a new "
                    "iteration, `python tests/test_architecture.py` adds its files to the plots stage's deps"
                )
            got[name] = dpo_intervals(value) if name == "dpo" else value
        found[model] = (t, got)
    return found


def _histogram(counts: dict) -> list[tuple[int, int, float]]:
    total = sum(counts.values())
    return [
        (int(s), n, round(n / total, 4) if total else 0.0) for s, n in sorted(counts.items(), key=lambda k: int(k[0]))
    ]


def model_row(name: str, iteration: int | None, ev: EvalMetrics | dict) -> dict:
    """One row of models.csv from an eval.json."""
    ev = parse(ev, EvalMetrics) if isinstance(ev, dict) else ev
    row: dict = {"model": name, "iteration": iteration}
    for col, pick in MODEL_ACCURACIES.items():
        block = pick(ev) or Accuracy()
        lo, hi = block.ci95 or (None, None)
        row |= {col: block.acc, f"{col}_lo": lo, f"{col}_hi": hi}
    for col, pick in MODEL_SHARES.items():
        share = pick(ev)
        row[col] = share.share if share else None
    return row


def accuracy_rows(model: str, got: dict[str, dict]) -> list[dict]:
    ev, dpo = parse(got.get("eval") or {}, EvalMetrics), parse(got.get("dpo"), DpoMetrics)
    out = []
    for measure, pick in ACCURACIES.items():
        block = pick(ev, dpo)
        if block is not None and block.acc is not None:
            low, high = block.ci95 or (None, None)
            out.append({"model": model, "measure": measure, "acc": block.acc, "low": low, "high": high})
    return out


def tables(found: dict[str, tuple[int | None, dict[str, dict]]]) -> dict[str, pl.DataFrame]:
    """{csv name: table} from `read_all`."""
    hist, per_iter, models, acc, judged = [], [], [], [], []
    for model, (t, got) in found.items():
        ev = parse(got["eval"], EvalMetrics)
        models.append(model_row(model, t, ev))
        acc += accuracy_rows(model, got)
        for score, _, share in _histogram((ev.human.score_hist if ev.human else None) or {}):
            judged.append({"model": model, "score": score, "share": share})
        if "judge" not in got:  # base and M0 made no data of their own
            continue
        for score, n, share in _histogram(got["judge"].get("score_hist") or {}):
            hist.append({"iteration": t, "score": score, "grades": n, "share": share})
        per_iter.append({"iteration": t, **{col: _get(got[src], keys) for col, (src, *keys) in ITER_COLUMNS.items()}})
    schema = {"iteration": pl.Int64, "score": pl.Int64, "grades": pl.Int64, "share": pl.Float64}
    return {
        "scores": pl.DataFrame(hist, schema=schema),
        "iterations": pl.DataFrame(per_iter, schema={"iteration": pl.Int64, **{c: pl.Float64 for c in ITER_COLUMNS}}),
        "models": pl.DataFrame(
            models, schema={"model": pl.String, "iteration": pl.Int64, **{c: pl.Float64 for c in MODEL_COLUMNS}}
        ),
        "accuracy": pl.DataFrame(
            acc,
            schema={
                "model": pl.String,
                "measure": pl.String,
                "acc": pl.Float64,
                "low": pl.Float64,
                "high": pl.Float64,
            },
        ),
        "judge_scores": pl.DataFrame(judged, schema={"model": pl.String, "score": pl.Int64, "share": pl.Float64}),
    }


def summary(found: dict[str, tuple[int | None, dict[str, dict]]]) -> dict[str, dict]:
    """{model: {name: value}} of SUMMARY, for the keys each model's files have."""
    out = {}
    for model, (_, got) in found.items():
        values = {name: _get(got.get(src), path) for name, (src, path) in SUMMARY.items()}
        out[model] = {k: v for k, v in values.items() if v is not None}
    return out


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metrics", type=Path, default=Path("metrics"))
    ap.add_argument("--out", type=Path, default=Path("plots"))
    ap.add_argument(
        "--summary", type=Path, help="folder of the headline metrics, one JSON per model (metrics/summary)"
    )
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    found = read_all(args.metrics, [int(t) for t in p.iterations])
    made = tables(found)
    rows.all_or_none(*(args.out / f"{name}.csv" for name in made), args.summary)
    for name, table in made.items():
        rows.write_text(table.write_csv(), args.out / f"{name}.csv")
    if args.summary:  # one file per model: `dvc metrics show` prints a row per file, a column per name
        with rows.atomic_dir(args.summary) as tmp:
            for model, values in summary(found).items():
                rows.write_json(values, tmp / f"{model}.json")
    print(f"plots: {len(found)} models, {len(made['iterations'])} iterations -> {args.out}/*.csv, {args.summary}")


if __name__ == "__main__":
    main()
