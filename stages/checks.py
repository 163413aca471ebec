"""checks@t: every response checked by code against its prompt's verifiable constraints.

    python -m stages.checks --iteration 1 --prompts data/iter1/prompts.parquet \
        --responses data/iter1/responses.parquet --out data/iter1/checks.parquet --metrics metrics/iter1/checks.json

A row per response: each constraint's verdict (stages/judging/checks.py), how many were met and the share met
(null for a prompt without constraints). A dataset of its own, content-hashed by DVC: a change to the checkers
reruns checks@t and what follows, never generation. pairs@t reads it when `pairs.reward` is checks or both.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import polars as pl

from stages.core import lineage, rows
from stages.core import params as P
from stages.core.errors import SrlmError, entry
from stages.judging import checks

# the params this stage reads: dvc.yaml's params list and the lineage record (python -m stages.commands.dag write)
PARAMS = ()


def check_rows(prompts: pl.DataFrame, responses: pl.DataFrame) -> list[dict]:
    """A checks row per response, in the responses' order; a response whose prompt is not in `prompts` is an
    error (the two files are of different iterations)."""
    constraints = {
        pid: tuple(checks.Constraint.from_row(c) for c in cons or ())
        for pid, cons in zip(prompts["id"], prompts["constraints"].to_list())
    }
    out = []
    for r in responses.select("id", "prompt_id", "response").iter_rows(named=True):
        if r["prompt_id"] not in constraints:
            raise SrlmError(
                f"error: response {r['id']} answers prompt {r['prompt_id']}, which is not in the prompts file"
            )
        cons = constraints[r["prompt_id"]]
        verdicts = checks.verdicts(r["response"], cons)
        out.append(
            {
                "id": rows.content_id(r["id"], [c.as_row() for c in cons]),
                "response_id": r["id"],
                "prompt_id": r["prompt_id"],
                "constraint_ids": [c.id for c in cons],
                "verdicts": list(verdicts),
                "met": sum(verdicts),
                "total": len(cons),
                "share_met": checks.share_met(verdicts),
            }
        )
    return out


def check_metrics(df: pl.DataFrame) -> dict:
    """Pass rates: over constrained responses, per constraint kind, and the spread the gate reads."""
    done = df.filter(pl.col("total") > 0)
    by_kind: Counter = Counter()
    passed: Counter = Counter()
    for ids, verdicts in zip(done["constraint_ids"].to_list(), done["verdicts"].to_list()):
        for i, v in zip(ids, verdicts):
            by_kind[i] += 1
            passed[i] += bool(v)
    n = len(done)
    return {
        "responses": len(df),
        "constrained": n,
        "constraints": int(done["total"].sum()) if n else 0,
        "share_met_mean": round(float(done["share_met"].mean()), 4) if n else None,
        "all_met": int((done["met"] == done["total"]).sum()) if n else 0,
        "none_met": int((done["met"] == 0).sum()) if n else 0,
        "pass_rate_by_kind": {k: round(passed[k] / by_kind[k], 4) for k in sorted(by_kind)},
    }


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iteration", type=int, required=True)
    ap.add_argument("--prompts", type=Path, required=True, help="prompts@t's parquet (the constraints)")
    ap.add_argument("--responses", type=Path, required=True, help="responses@t's parquet (the answers)")
    ap.add_argument("--out", type=Path, required=True, help="checks parquet to write")
    ap.add_argument("--metrics", type=Path, help="pass rates JSON")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    rows.all_or_none(args.out, lineage.path_for(args.out), args.metrics)
    prompts, responses = rows.read(args.prompts, "prompts"), rows.read(args.responses, "responses")
    try:
        df = rows.frame(check_rows(prompts, responses), "checks")
    except ValueError as e:  # a constraint the library does not know (from_row names it)
        raise SrlmError(f"error: {args.prompts}: {e}") from None
    rows.write(df, args.out, "checks")
    lineage.write(
        args.out,
        "checks",
        stage=f"checks@{args.iteration}",
        inputs={"prompts": args.prompts, "responses": args.responses},
        params=p,
        sections=PARAMS,
    )
    metrics = check_metrics(df)
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    print(
        f"checks@{args.iteration}: {metrics['constrained']} of {metrics['responses']} responses constrained, "
        f"{metrics['constraints']} verdicts, mean share met {metrics['share_met_mean']} "
        f"(all met {metrics['all_met']}, none met {metrics['none_met']}) -> {args.out}"
    )


if __name__ == "__main__":
    main()
