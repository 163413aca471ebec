"""srlm: look at what the self-rewarding pipeline has built.

The pipeline itself runs under DVC:
  dvc repro              build everything (base -> M0 -> iterations)
  dvc repro dpo@2        build exactly what M2 needs
  dvc metrics show       a row per model (metrics/summary/); `dvc metrics diff` compares commits
  dvc exp run -S judge.k=5   an experiment with one knob changed

This command reads the results:
  srlm status            one line per model (base, M0, M1, ...): prompts, responses, parse rate, pairs,
                         validation, the judge gate, judge accuracy vs human ranks (all pairs, and those where
                         humans preferred the shorter answer), head-to-head vs the previous model, IFEval; rates
                         with 95% intervals; below, one line per judge gate that did not pass
  srlm show 1 preferences [-n 3]   print rows of a dataset
  srlm params            validate params.yaml and print it as it is (comments and order kept)
  srlm exp               DVC experiments side by side: changed params, each model's accuracies with 95% intervals
  srlm --version         srlm's, DVC's and Python's versions
  srlm release --iteration 1 --repo-id ORG/NAME [--dry-run DIR]   publish the pairs to the Hub (docs/release.md)
  srlm diff 1 2 [--kind judgments] [--format table|json|markdown]   compare iterations or revisions (HEAD~1:2)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.commands import diff, experiments, release, workspace
from stages.commands.tables import fit, terminal_width
from stages.core import params as P
from stages.core import rows
from stages.core.errors import SrlmError, entry
from stages.core.rows import DATASETS
from stages.measure.judge_gate import summary
from stages.measure.metrics import (
    EvalMetrics,
    HeadToHead,
    JudgeMetrics,
    PairsMetrics,
    PromptsMetrics,
    ResponsesMetrics,
    Section,
    ValidateMetrics,
    fmt_acc,
    load,
)


def _count(path: Path, recorded=None) -> str:
    """Rows of a dataset; where the file is absent (a fresh clone before `dvc pull`), `recorded`: the count its
    stage wrote in its metrics file (committed in git), else '-'."""
    if not path.exists():
        return "-" if recorded is None else str(recorded)
    import polars as pl

    return str(pl.scan_parquet(path).select(pl.len()).collect().item())


def _metric(path: Path, model: type[Section]):
    """A metrics file read through its schema, or None if it is missing."""
    try:
        return load(path, model)
    except SrlmError:  # a corrupt metrics file shows as missing here; the stage that reads it says why
        return None


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _interval(block) -> str:
    """A rate beside its 95% Wilson interval, this table's way: 'acc [lo-hi]' to 2 places; '-' when absent."""
    return fmt_acc(block, 2, sep="-")


def _gate(met: Path, key: str) -> ValidateMetrics | None:
    """validate@t's verdict: metrics/iter<t>/validate.json, or, when a failed gate left none (DVC keeps no output
    of a failed stage), the verdict validate wrote beside its report."""
    for path in (met / "validate.json", Path(f"reports/iter{key}/validation.json")):
        gate = _metric(path, ValidateMetrics)
        if gate is not None and gate.passed is not None:
            return gate
    return None


def _verdict(gate: ValidateMetrics | None) -> str:
    """ok / forced / FAILED / -"""
    if gate is None:
        return "-"
    return "ok" if gate.passed else ("forced" if gate.overridden else "FAILED")


def _judge_gate(gate: ValidateMetrics | None) -> str:
    """The judge checks of validate@t: ok / warn (failed, recorded only) / FAILED / forced (failed, trained under
    validate.allow_failure) / skip / off / - (no verdict, or one from before the judge checks)."""
    judge = gate.judge if gate else None
    if judge is None or judge.status is None:
        return "-"
    if judge.status == "failed":
        return "warn" if judge.gate != "fail" else ("forced" if gate.overridden else "FAILED")
    return {"passed": "ok", "skipped": "skip"}.get(judge.status, judge.status)


def _versus(h2h: HeadToHead | None) -> str:
    """W1 T3 L0 0.25 [0.05-0.70] 3/4: head-to-head wins, ties, losses, the win rate with its 95% interval, and
    how many held-out answers changed at all."""
    if h2h is None or not h2h.prompts:
        return "-"
    n = h2h.prompts
    w, t, lo = (round((share or 0) * n) for share in (h2h.win, h2h.tie, h2h.loss))
    changed = f" {h2h.changed}/{n}" if "changed" in h2h.model_fields_set else ""
    return f"W{w} T{t} L{lo} {_interval(h2h.win_rate)}{changed}"


# srlm status's columns: (header, short header, right-aligned, drop rank: narrow terminals drop the lowest first;
# None = always shown)
STATUS_COLUMNS = (
    ("iter", "it", True, None),
    ("from", "from", True, 0),
    ("prompts", "prm", True, 3),
    ("responses", "resp", True, 1),
    ("parse", "parse", True, 4),
    ("pairs", "pairs", True, 5),
    ("valid", "gate", True, 6),
    ("judge gate", "judge", True, 6),
    ("model", "model", False, 2),
    ("judge acc [95%]", "judge [95%]", False, None),
    ("short-pref [95%]", "short [95%]", False, 9),
    ("vs prev: W T L, win [95%], changed", "vs prev W T L win chg", False, 7),
    ("IFEval strict [95%]", "IFEval [95%]", False, 8),
)


def status(p: P.Params, params_path: str | Path = "params.yaml") -> None:
    """One line per model, the base model and M0 first: the data M(t-1) made, then M(t) and how it does from
    outside the loop (evaluate@t), every rate with its 95% Wilson interval (few prompts give wide intervals:
    read them before the point value): judge accuracy against held-out human ranks, and on the human pairs
    whose preferred answer is the shorter one (length alone scores 0 there), the head-to-head against M(t-1)
    (wins, ties, losses, win rate, answers changed), and IFEval prompt-level strict accuracy. `judge gate`: what
    validate@t found of the judge that labelled iteration t (M(t-1), measured on the line above); one line under
    the table per gate that did not pass, with the numbers or the reason. The table fits
    the terminal (short headers, then fewer columns); a line built from other params or inputs than
    params.yaml and dvc.lock's chain is marked `*`, and outputs dvc.lock names but the workspace lacks (a
    fresh clone) are named with the `dvc pull` that brings them."""
    import textwrap

    import yaml

    lock = workspace.load_lock()
    try:
        raw = yaml.safe_load(Path(params_path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):  # P.load has read it already; a race is no reason to fail here
        raw = {}
    why = workspace.stale(lock, raw)
    marked = {workspace.row_of(stage) for stage in why}
    # base: measured once from outside (evaluate_base); iteration 0 is M0 (sft from base): no data of its own
    lines = [("base", "-"), ("0", "base")]
    lines += [(k, f"M{it.prev}") for k, it in sorted(p.iterations.items(), key=lambda kv: int(kv[0]))]
    body, notes = [], []
    for key, source in lines:
        data, met = Path(f"data/iter{key}"), Path("metrics/base" if key == "base" else f"metrics/iter{key}")
        prompts = _metric(met / "prompts.json", PromptsMetrics)
        responses = _metric(met / "responses.json", ResponsesMetrics)
        judged = _metric(met / "judge.json", JudgeMetrics)
        model = Path("models/base" if key == "base" else f"models/M{key}")
        ev = _metric(met / "eval.json", EvalMetrics) or EvalMetrics()
        pairs = _metric(met / "pairs.json", PairsMetrics)
        gate = _gate(met, key) if key not in ("base", "0") else None
        judge = _judge_gate(gate)
        if judge not in ("ok", "-"):
            notes.append(f"judge gate@{key} ({source}): {summary(gate.judge)}")
        built = (model / "config.json").exists()
        body.append(
            [
                key + ("*" if key in marked else ""),
                source,
                _count(data / "prompts.parquet", prompts.kept if prompts else None),
                _count(data / "responses.parquet", responses.responses if responses else None),
                _num(judged.parse_rate if judged else None, ".0%"),
                _count(data / "preferences.parquet", pairs.pairs if pairs else None),
                _verdict(gate),
                judge,
                (str(model), model.name) if built else "-",
                _interval(ev.human.pairwise if ev.human else None),
                _interval(ev.length_slice("pointwise", "shorter_preferred")),
                _versus(ev.vs_prev),
                _interval(ev.ifeval.prompt_level_strict_acc if ev.ifeval else None),
            ]
        )
    width = terminal_width()
    table, hidden = fit(STATUS_COLUMNS, body, width)
    print("\n".join(table))
    if hidden:  # prose, wrapped to the terminal; the notes below hold commands and paths, so they stay one line
        hint = f"({len(hidden)} columns hidden at {width} columns: {', '.join(hidden)}; COLUMNS=200 shows all)"
        print(textwrap.fill(hint, width, break_on_hyphens=False))
    for line in notes:
        print(line)
    note = workspace.stale_note(why, [key for key, _ in lines])
    if note:
        print(note)
    absent = workspace.missing(lock)
    if absent:
        shown = ", ".join(absent[:3]) + (", ..." if len(absent) > 3 else "")
        print(f"{len(absent)} outputs in dvc.lock are not in the workspace ({shown}): {workspace.pull_hint()}")


def _cell(value, width: int = 300) -> str:
    """One value on one line: a conversation as `role: text` turns, long text cut at `width` characters."""
    if isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0]:
        text = " | ".join(f"{m['role']}: {m['content']}" for m in value)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def show(iteration: str, kind: str, n: int) -> None:
    """The first n rows, one block per row and one line per column: every column is shown (a table of
    preferences is too wide for a terminal, and polars would elide the middle columns, `rejected` among them)."""
    path = Path(f"data/iter{iteration}/{kind}.parquet")
    workspace.need(path, f"iteration {iteration}'s {kind}")
    df = rows.read(path, kind)
    pad = max(len(c) for c in df.columns)
    for i, row in enumerate(df.head(n).iter_rows(named=True)):
        print(f"-- row {i + 1} of {len(df)} " + "-" * 40)
        for name, value in row.items():
            print(f"{name:>{pad}}  {_cell(value)}")
    print(f"{len(df)} rows")


def version() -> str:
    """srlm's version and those of what shapes a run's bytes and commands (DVC, Python)."""
    import platform
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    def of(name: str) -> str:
        try:
            return installed(name)
        except PackageNotFoundError:
            return "not installed"

    return f"srlm {of('srlm')} (dvc {of('dvc')}, python {platform.python_version()})"


def print_params(path: str | Path) -> None:
    """Validate the params file, then print it as it is: comments, order and spelling kept."""
    P.load(path)
    print(Path(path).read_text(encoding="utf-8"), end="")


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="srlm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--version", action="version", version=version())
    ap.add_argument("--params", default="params.yaml", help="the params file (before or after the command)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="one line per model: data, gate, judge accuracy, head-to-head, IFEval")
    s = sub.add_parser("show", help="print rows of one dataset")
    s.add_argument("iteration")
    s.add_argument("kind", choices=DATASETS)
    s.add_argument("-n", type=int, default=5)
    sub.add_parser("params", help="validate params.yaml and print it as it is (comments kept)")
    experiments.add_parser(sub)
    release.add_parser(sub)
    diff.add_arguments(
        sub.add_parser(
            "diff",
            help="compare a dataset between iterations or revisions",
            description=diff.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    for command in sub.choices.values():  # `srlm status --params p.yaml` as well as `srlm --params p.yaml status`
        command.add_argument("--params", default=argparse.SUPPRESS, help="the params file (default params.yaml)")
    args = ap.parse_args(argv)
    if args.cmd == "params":
        print_params(args.params)
        return
    if args.cmd == "exp":  # reads each experiment's own params.yaml from git, not the workspace's
        experiments.run(args)
        return
    p = P.load(args.params)
    if args.cmd == "status":
        status(p, args.params)
    elif args.cmd == "show":
        show(args.iteration, args.kind, args.n)
    elif args.cmd == "release":
        release.run(args, p)
    elif args.cmd == "diff":
        diff.main_args(args, p)


if __name__ == "__main__":
    main()
