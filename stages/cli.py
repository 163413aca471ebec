"""srlm: look at what the self-rewarding pipeline has built.

The pipeline itself runs under DVC:
  dvc repro              build everything (base -> M0 -> iterations)
  dvc repro dpo@2        build exactly what M2 needs
  dvc metrics show       every stage's numbers; `dvc metrics diff` compares commits
  dvc exp run -S judge.k=5   an experiment with one knob changed

This command reads the results:
  srlm status            one line per model (base, M0, M1, ...): prompts, responses, parse rate, pairs,
                         validation, judge accuracy vs human ranks (all pairs, and those where humans preferred
                         the shorter answer), head-to-head vs the previous model, IFEval with its 95% interval
  srlm show 1 preferences [-n 3]   print rows of a dataset
  srlm params            validate params.yaml and print it (YAML)
  srlm release --iteration 1 --repo-id ORG/NAME [--dry-run DIR]   publish the pairs to the Hub (docs/release.md)
  srlm diff 1 2 [--kind judgments] [--format table|json|markdown]   compare iterations or revisions (HEAD~1:2)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import diff, release, rows
from . import params as P
from .errors import SrlmError, entry
from .rows import DATASETS


def _count(path: Path) -> str:
    if not path.exists():
        return "-"
    import polars as pl

    return str(pl.scan_parquet(path).select(pl.len()).collect().item())


def _metric(path: Path, *keys: str):
    """metrics JSON value at keys (nested), or None if the file or any key is missing."""
    try:
        value = rows.read_json(path)
    except SrlmError:  # a corrupt metrics file shows as missing here; the stage that reads it says why
        return None
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _interval(block) -> str:
    """An accuracy block of eval.json ({acc, n, ci95}) as 'acc [lo-hi]'."""
    if not isinstance(block, dict) or block.get("acc") is None:
        return "-"
    lo, hi = block["ci95"]
    return f"{block['acc']:.2f} [{lo:.2f}-{hi:.2f}]"


def _slice(block) -> str:
    if not isinstance(block, dict) or block.get("acc") is None:
        return "-"
    return f"{block['acc']:.2f} n={block['n']}"


def status(p: P.Params) -> None:
    """One line per model, the base model and M0 first: the data M(t-1) made, then M(t) and how it does from
    outside the loop (evaluate@t): judge accuracy against held-out human ranks, and on the human pairs whose
    preferred answer is the shorter one (length alone scores 0 there), head-to-head win minus loss against
    M(t-1), and IFEval prompt-level strict accuracy with its 95% interval."""
    print(
        f"{'iter':>4}  {'from':>4}  {'prompts':>7}  {'responses':>9}  {'parse':>6}  {'pairs':>5}  {'valid':>6}  "
        f"{'model':<11}  {'judge acc':>9}  {'short-pref':>10}  {'vs prev':>7}  {'IFEval strict [95%]':>19}"
    )
    # base: measured once from outside (evaluate_base); iteration 0 is M0 (sft from base): no data of its own
    lines = [("base", "-"), ("0", "base")]
    lines += [(k, f"M{it.prev}") for k, it in sorted(p.iterations.items(), key=lambda kv: int(kv[0]))]
    for key, source in lines:
        data, met = Path(f"data/iter{key}"), Path("metrics/base" if key == "base" else f"metrics/iter{key}")
        parse = _metric(met / "judge.json", "parse_rate")
        passed = _metric(met / "validate.json", "passed")
        overridden = _metric(met / "validate.json", "overridden")
        valid = "-" if passed is None else ("ok" if passed else ("forced" if overridden else "FAILED"))
        model = Path("models/base" if key == "base" else f"models/M{key}")
        acc = _metric(met / "eval.json", "human", "pairwise_accuracy")
        shorter = _metric(met / "eval.json", "human", "length_slices", "pointwise", "shorter_preferred")
        vs_prev = _metric(met / "eval.json", "head2head", "vs_prev", "win_minus_loss")
        ifeval = _metric(met / "eval.json", "ifeval", "prompt_level_strict_acc")
        print(
            f"{key:>4}  {source:>4}  {_count(data / 'prompts.parquet'):>7}  {_count(data / 'responses.parquet'):>9}  "
            f"{_num(parse, '.0%'):>6}  {_count(data / 'preferences.parquet'):>5}  {valid:>6}  "
            f"{str(model) if (model / 'config.json').exists() else '-':<11}  {_num(acc, '.3f'):>9}  "
            f"{_slice(shorter):>10}  {_num(vs_prev, '+.2f'):>7}  {_interval(ifeval):>19}"
        )


def show(iteration: str, kind: str, n: int) -> None:
    import polars as pl

    df = rows.read(Path(f"data/iter{iteration}/{kind}.parquet"), kind)
    with pl.Config(fmt_str_lengths=120, tbl_rows=n, tbl_width_chars=160):
        print(df.head(n))
    print(f"{len(df)} rows")


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="srlm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params.yaml")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="one line per iteration")
    s = sub.add_parser("show", help="print rows of one dataset")
    s.add_argument("iteration")
    s.add_argument("kind", choices=DATASETS)
    s.add_argument("-n", type=int, default=5)
    sub.add_parser("params", help="validate params.yaml and print it (YAML)")
    release.add_parser(sub)
    diff.add_arguments(
        sub.add_parser(
            "diff",
            help="compare a dataset between iterations or revisions",
            description=diff.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    args = ap.parse_args(argv)
    p = P.load(args.params)
    if args.cmd == "status":
        status(p)
    elif args.cmd == "show":
        show(args.iteration, args.kind, args.n)
    elif args.cmd == "release":
        release.run(args, p)
    elif args.cmd == "diff":
        diff.main_args(args, p)
    else:
        print(P.dump(p), end="")


if __name__ == "__main__":
    main()
