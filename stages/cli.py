"""srlm: look at what the self-rewarding pipeline has built.

The pipeline itself runs under DVC:
  dvc repro              build everything (base -> M0 -> iterations)
  dvc repro dpo@2        build exactly what M2 needs
  dvc metrics show       every stage's numbers; `dvc metrics diff` compares commits
  dvc exp run -S judge.k=5   an experiment with one knob changed

This command reads the results:
  srlm status            one line per iteration: prompts, responses, parse rate, pairs, validation, model
  srlm show 1 preferences [-n 3]   print rows of a dataset
  srlm params            validate params.yaml and print it with defaults filled in
  srlm release --iteration 1 --repo-id ORG/NAME [--dry-run DIR]   publish the pairs to the Hub (docs/release.md)
  srlm diff 1 2 [--kind judgments] [--format table|json|markdown]   compare iterations or revisions (HEAD~1:2)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import params as P
from . import diff, release, rows

KINDS = ("prompts", "responses", "judgments", "preferences")


def _count(path: Path) -> str:
    if not path.exists():
        return "-"
    import polars as pl

    return str(pl.scan_parquet(path).select(pl.len()).collect().item())


def _metric(path: Path, key: str):
    try:
        return json.loads(path.read_text()).get(key)
    except (OSError, json.JSONDecodeError):
        return None


def status(p: P.Params) -> None:
    print(f"{'iter':>4}  {'from':>4}  {'prompts':>7}  {'responses':>9}  {'parse':>6}  {'pairs':>5}  {'valid':>6}  model")
    for key, it in sorted(p.iterations.items(), key=lambda kv: int(kv[0])):
        data, met = Path(f"data/iter{key}"), Path(f"metrics/iter{key}")
        parse = _metric(met / "judge.json", "parse_rate")
        passed = _metric(met / "validate.json", "passed")
        overridden = _metric(met / "validate.json", "overridden")
        valid = "-" if passed is None else ("ok" if passed else ("forced" if overridden else "FAILED"))
        model = Path(f"models/M{key}")
        print(f"{key:>4}  {'M' + str(it.prev):>4}  {_count(data / 'prompts.parquet'):>7}  {_count(data / 'responses.parquet'):>9}  "
              f"{'-' if parse is None else f'{parse:.0%}':>6}  {_count(data / 'preferences.parquet'):>5}  {valid:>6}  "
              f"{model if (model / 'config.json').exists() else '-'}")


def show(iteration: str, kind: str, n: int) -> None:
    import polars as pl

    df = rows.read(Path(f"data/iter{iteration}/{kind}.parquet"), kind)
    with pl.Config(fmt_str_lengths=120, tbl_rows=n, tbl_width_chars=160):
        print(df.head(n))
    print(f"{len(df)} rows")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="srlm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="one line per iteration")
    s = sub.add_parser("show", help="print rows of one dataset")
    s.add_argument("iteration")
    s.add_argument("kind", choices=KINDS)
    s.add_argument("-n", type=int, default=5)
    sub.add_parser("params", help="validate params.yaml and print it with defaults")
    release.add_parser(sub)
    diff.add_arguments(sub.add_parser("diff", help="compare a dataset between iterations or revisions",
                                      description=diff.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
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
        print(p.model_dump_json(indent=2, by_alias=True))


if __name__ == "__main__":
    main()
