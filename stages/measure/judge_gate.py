"""validate@t's judge checks: before M(t) trains on iteration t's labels, is the model that made them (M(prev),
measured by evaluate on held-out human pairs: metrics/iter<prev>/eval.json) better than a coin, and more than a
length detector? Plain Python beside the GX suites (those check datasets), giving the same check records as
stages/measure/gx.py `check_record` (dataset "judge"), so failure lines, the report and validate.json treat
them alike; `ci95` and `n` are added so that a line can name the interval.

  judge.accuracy           pairwise accuracy on all human pairs: the lower end of its 95% Wilson interval must
                           exceed validate.judge_min_accuracy (a coin on 529 pairs: 0.50 [0.46, 0.54] fails)
  judge.shorter_preferred  the same on the pairs where people preferred the shorter answer: the upper end of its
                           interval may not be below validate.judge_min_shorter_preferred (a length follower
                           scores about 0 there: 0.13 [0.09, 0.20] on 140 pairs fails; 2 of 3 pairs cannot)
  judge.answer1_rate       share of answer 1 picked by the comparative (A/B) judge over both orders of every pair:
                           within [validate.judge_min_answer1_rate, validate.judge_max_answer1_rate]

validate.judge_gate: `fail` (a failed check stops the iteration as a dataset check does, unless
validate.allow_failure), `warn` (recorded as failed, printed, does not stop), `off`. The checks are skipped, and
say why, when validate has no eval.json, the eval.json has no human agreement (../shared/data absent: evaluate
writes `"human": null` and lists it under `skipped`), or no pair of the iteration was decided by the judge (the
preferences' `reward` column, where there is one); a single check with no pairs to count is skipped alone.
"""

from __future__ import annotations

from stages.judging.rewards import decided_by_judge
from stages.measure.metrics import EvalMetrics, Human, JudgeGate, fmt_acc, parse
from stages.measure.stats import ci95

NO_JUDGE_PAIRS = "no pair was decided by the judge"


def judge_pairs(preferences) -> int:
    """Pairs the judge decided: those with reward == "judge", not "checks" or "degenerate" (the preferences'
    `reward` column says what decided each pair, stages/judging/rewards.py; a pair with no reward recorded is the
    judge's, as before pairs.reward existed)."""
    if "reward" in preferences.columns:
        return int(preferences.select(decided_by_judge().sum()).item())
    return len(preferences)


def human_agreement(ev: EvalMetrics | dict) -> tuple[Human | None, str | None]:
    """eval.json's held-out human agreement, or None and why there is none."""
    ev = ev if isinstance(ev, EvalMetrics) else parse(ev, EvalMetrics)
    if ev.human is not None:
        return ev.human, None
    why = [s for s in ev.skipped or [] if s.startswith("human agreement")]
    return None, "no held-out human data" + (f": evaluate skipped {why[0]}" if why else " in the judge's eval.json")


def _record(check, expectation, column, observed, interval, n, threshold, passed, params, description, hint) -> dict:
    return {
        "dataset": "judge",
        "check": check,
        "expectation": expectation,
        "column": column,
        "observed": observed,
        "ci95": interval,
        "n": n,
        "threshold": threshold,
        "rule": None,
        "passed": bool(passed),
        "params": params,
        "examples": [],
        "description": description,
        "hint": "" if passed else hint,  # what a failure means; nothing to say of a pass
    }


def judge_checks(human: Human | dict, cfg, judge: str) -> tuple[list[dict], dict[str, str]]:
    """The check records on eval.json's `human` block, and {check: why skipped} for those with nothing to count.
    `cfg`: the validate section (judge_min_accuracy, judge_min_shorter_preferred, judge_*_answer1_rate)."""
    human = human if isinstance(human, Human) else parse(human, Human)
    checks, skipped = [], {}
    measured = human.pairwise
    slices = human.length_slices.pointwise if human.length_slices else None
    if measured.acc is None and slices and slices.all:
        measured = slices.all
    acc, n = measured.acc, measured.n
    interval = list(measured.ci95) if measured.ci95 else None  # records hold lists, as the JSON they become
    if acc is None or not interval:
        skipped["accuracy"] = "no human pair to count"
    else:
        checks.append(
            _record(
                "accuracy",
                "interval_low_above",
                "human.pairwise_accuracy",
                acc,
                interval,
                n,
                f"95% interval low > {cfg.judge_min_accuracy}",
                interval[0] > cfg.judge_min_accuracy,
                ["judge_min_accuracy"],
                "The judge's pairwise accuracy on held-out human pairs is shown above the threshold (chance: 0.5).",
                f"{judge} labelled this iteration; it is not shown better than a coin on held-out human pairs",
            )
        )
    short = slices.shorter_preferred if slices else None
    if short is None or short.acc is None or not short.ci95:
        skipped["shorter_preferred"] = "no human pair preferred the shorter answer"
    else:
        checks.append(
            _record(
                "shorter_preferred",
                "interval_high_at_least",
                "human.length_slices.pointwise.shorter_preferred",
                short.acc,
                list(short.ci95),
                short.n,
                f"95% interval high >= {cfg.judge_min_shorter_preferred}",
                short.ci95[1] >= cfg.judge_min_shorter_preferred,
                ["judge_min_shorter_preferred"],
                "On the pairs where people preferred the shorter answer the judge is not shown below the threshold "
                "(a judge that follows length scores about 0 there).",
                f"{judge} prefers the longer answer where people preferred the shorter one: it follows length",
            )
        )
    rate, ab_pairs = human.ab_first_rate, human.ab_pairs
    if rate is None or not ab_pairs:
        skipped["answer1_rate"] = "no A/B judgment recorded"
    else:
        lo, hi = cfg.judge_min_answer1_rate, cfg.judge_max_answer1_rate
        checks.append(
            _record(
                "answer1_rate",
                "value_between",
                "human.ab_first_rate",
                rate,
                ci95(rate * 2 * ab_pairs, 2 * ab_pairs),  # every pair in both orders
                2 * ab_pairs,
                f">= {lo} and <= {hi}",
                lo <= rate <= hi,
                ["judge_max_answer1_rate", "judge_min_answer1_rate"],
                "The comparative judge picks answer 1 about as often as answer 2 (0.5 = no position bias).",
                f"{judge}'s comparative judge picks by position, not by content",
            )
        )
    return checks, skipped


def judge_verdict(
    ev: EvalMetrics | dict | None, pairs: int | None, cfg, source: str | None = None, why_no_eval: str = ""
) -> dict:
    """validate.json's `judge` block. `ev`: the eval.json of the model that judged the iteration (None: not
    given, `why_no_eval` says so); `pairs`: how many pairs that judge decided (judge_pairs; None: unknown, the
    checks apply); `cfg`: the validate section. status: passed | failed | skipped | off."""
    ev = ev if isinstance(ev, EvalMetrics) or ev is None else parse(ev, EvalMetrics)
    judge = f"M{ev.iteration}" if ev and isinstance(ev.iteration, int) else None
    block = {
        "gate": cfg.judge_gate,
        "eval": source,
        "judge": judge,
        "judge_pairs": pairs,
        "thresholds": {
            "min_accuracy": cfg.judge_min_accuracy,
            "min_shorter_preferred": cfg.judge_min_shorter_preferred,
            "answer1_rate": [cfg.judge_min_answer1_rate, cfg.judge_max_answer1_rate],
        },
        "accuracy": None,
        "ci95": None,
        "human_pairs": None,
        "shorter_preferred": None,
        "answer1_rate": None,
        "checks": [],
        "skipped": {},
        "failures": [],
        "status": "skipped",
        "reason": None,
    }
    if cfg.judge_gate == "off":
        return {**block, "status": "off", "reason": "validate.judge_gate is off"}
    if pairs == 0:
        return {**block, "reason": NO_JUDGE_PAIRS}
    if ev is None:
        return {**block, "reason": why_no_eval or "no eval.json of the judge given"}
    human, why = human_agreement(ev)
    if human is None:
        return {**block, "reason": why}
    checks, skipped = judge_checks(human, cfg, judge or "the judge")
    by = {c["check"]: c for c in checks}
    block.update(
        checks=checks,
        skipped=skipped,
        failures=[f"judge.{c['check']}" for c in checks if not c["passed"]],
        accuracy=by["accuracy"]["observed"] if "accuracy" in by else None,
        ci95=by["accuracy"]["ci95"] if "accuracy" in by else None,
        human_pairs=by["accuracy"]["n"] if "accuracy" in by else None,
        shorter_preferred=_as_json(ev.length_slice("pointwise", "shorter_preferred")),
        answer1_rate=human.ab_first_rate,
    )
    if not checks:
        return {**block, "reason": "; ".join(skipped.values())}
    return {**block, "status": "failed" if block["failures"] else "passed"}


def _as_json(block) -> dict | None:
    """A section of eval.json as it was read (unknown keys kept, no key added), for validate.json."""
    return None if block is None else block.model_dump(mode="json", exclude_unset=True)


def _observed(c: dict) -> str:
    return fmt_acc({"acc": c["observed"], "ci95": c.get("ci95")}, 2, sep="-")


WHAT = {"accuracy": "accuracy", "shorter_preferred": "shorter-preferred", "answer1_rate": "answer-1 rate"}


def summary(block: JudgeGate | dict | None) -> str:
    """One line of a judge block for people: `passed: accuracy 0.61 [0.52-0.69] ...`, `failed (warn): accuracy
    0.22 [0.06-0.55] needs low > 0.5; ...`, `skipped: why`; '-' for none (a validate.json from before the gate)."""
    block = parse(block, JudgeGate) if isinstance(block, dict) else block
    if block is None or block.status is None:
        return "-"
    status = block.status
    if status in ("skipped", "off"):
        return f"{status}: {block.reason}"
    checks = block.checks or []
    if status == "passed":
        return "passed: " + ", ".join(f"{WHAT.get(c['check'], c['check'])} {_observed(c)}" for c in checks)
    bad = [c for c in checks if not c.get("passed")]
    return f"failed ({block.gate}): " + "; ".join(
        f"{WHAT.get(c['check'], c['check'])} {_observed(c)} (n={c.get('n')}), needs {c['threshold']}" for c in bad
    )
