"""validate@t's judge checks on hand-made eval.json dicts: a judge above chance passes, a coin fails, a length
follower fails, a judge that picks by position fails, missing human data skips, the checks apply only when the
judge decided a pair, and a failure line names the accuracy, its interval and the threshold."""

from __future__ import annotations

import json

import polars as pl
import pytest

from stages.measure.judge_gate import NO_JUDGE_PAIRS, judge_checks, judge_pairs, judge_verdict, summary
from stages.measure.report import failure_line, report_html

from .conftest import ROOT, knobs


def block(acc, ci, n):
    return {"acc": acc, "ci95": ci, "n": n}


def eval_json(acc=0.64, ci=(0.60, 0.68), n=529, shorter=(0.55, (0.47, 0.63), 140), ab_first=0.48, iteration=0):
    """eval.json as evaluate writes it, with only what the judge checks read (and the longer-preferred slice)."""
    return {
        "iteration": iteration,
        "model": f"models/M{iteration}",
        "human": {
            "pairs": n,
            "pairwise_accuracy": acc,
            "pairwise_accuracy_ci95": list(ci),
            "ab_pairs": n,
            "ab_first_rate": ab_first,
            "length_slices": {
                "pointwise": {
                    "all": block(acc, list(ci), n),
                    "shorter_preferred": block(shorter[0], list(shorter[1]), shorter[2]),
                    "longer_preferred": block(0.7, [0.65, 0.75], n - shorter[2]),
                }
            },
        },
        "skipped": [],
    }


CFG = knobs("validate_", judge_gate="fail")


def verdict(ev, pairs=12, cfg=CFG):
    return judge_verdict(ev, pairs, cfg, "metrics/iter0/eval.json")


def test_a_judge_above_chance_passes():
    v = verdict(eval_json())
    assert v["status"] == "passed" and v["failures"] == [] and v["judge"] == "M0" and v["judge_pairs"] == 12
    assert [c["check"] for c in v["checks"]] == ["accuracy", "shorter_preferred", "answer1_rate"]
    assert v["accuracy"] == 0.64 and v["ci95"] == [0.60, 0.68] and v["human_pairs"] == 529
    assert v["thresholds"] == {"min_accuracy": 0.5, "min_shorter_preferred": 0.5, "answer1_rate": [0.2, 0.8]}
    assert summary(v).startswith("passed: accuracy 0.64 [0.60-0.68]")


def test_a_coin_fails_on_accuracy():
    v = verdict(eval_json(acc=0.5, ci=(0.4, 0.6), n=96, shorter=(0.5, (0.35, 0.65), 40), ab_first=0.5))
    assert v["status"] == "failed" and v["failures"] == ["judge.accuracy"]
    (c,) = [c for c in v["checks"] if not c["passed"]]
    assert c["dataset"] == "judge" and c["observed"] == 0.5 and c["ci95"] == [0.4, 0.6]
    assert c["threshold"] == "95% interval low > 0.5" and c["params"] == ["judge_min_accuracy"]
    # the interval decides, not the point value: 0.56 on 96 pairs is not shown above chance either
    assert verdict(eval_json(acc=0.56, ci=(0.46, 0.66)))["failures"] == ["judge.accuracy"]


def test_a_length_follower_fails_on_the_shorter_preferred_pairs():
    # the GPU grid's `baseline` judge: above chance overall by reading length, 0.13 where people preferred shorter
    v = verdict(eval_json(acc=0.64, ci=(0.60, 0.68), shorter=(0.132, (0.09, 0.20), 140)))
    assert v["status"] == "failed" and v["failures"] == ["judge.shorter_preferred"]
    c = next(c for c in v["checks"] if c["check"] == "shorter_preferred")
    assert c["observed"] == 0.132 and c["ci95"] == [0.09, 0.20] and c["n"] == 140
    assert c["threshold"] == "95% interval high >= 0.5" and v["shorter_preferred"]["acc"] == 0.132
    # 0 of 3 shorter-preferred pairs cannot show a length follower: [0.00, 0.56] reaches 0.5
    assert verdict(eval_json(shorter=(0.0, (0.0, 0.5615), 3)))["status"] == "passed"


def test_a_judge_that_picks_by_position_fails():
    v = verdict(eval_json(ab_first=1.0, n=9, acc=0.9, ci=(0.57, 0.98)))
    assert v["failures"] == ["judge.answer1_rate"] and v["answer1_rate"] == 1.0
    c = next(c for c in v["checks"] if c["check"] == "answer1_rate")
    assert c["n"] == 18 and c["threshold"] == ">= 0.2 and <= 0.8" and c["ci95"][0] > 0.8  # both orders
    loose = knobs("validate_", judge_gate="fail", judge_min_answer1_rate=0.0, judge_max_answer1_rate=1.0)
    assert verdict(eval_json(ab_first=1.0, n=9, acc=0.9, ci=(0.57, 0.98)), cfg=loose)["status"] == "passed"


def test_the_committed_cpu_m0_fails():
    """The CPU default's M0 (metrics/iter0/eval.json: 0.222 on 9 pairs, answer 1 every time) is no judge to
    train on: the accuracy and answer-1 checks fail (params.yaml's judge_gate warn records it)."""
    ev = json.loads((ROOT / "metrics/iter0/eval.json").read_text())
    v = verdict(ev, cfg=knobs("validate_"))
    assert v["gate"] == "warn" and v["status"] == "failed"
    assert v["failures"] == ["judge.accuracy", "judge.answer1_rate"]
    assert v["accuracy"] == pytest.approx(0.2222) and v["ci95"][1] < 0.6


@pytest.mark.parametrize(
    "ev,reason",
    [
        (
            {"iteration": 0, "human": None, "skipped": ["human agreement (../shared/data/oasst1 not found)"]},
            "no held-out human data: evaluate skipped human agreement (../shared/data/oasst1 not found)",
        ),
        ({"iteration": 0, "ifeval": None}, "no held-out human data in the judge's eval.json"),
        (None, "no eval.json of the judge given"),
    ],
    ids=["evaluate-skipped", "no-human-block", "no-eval"],
)
def test_no_human_data_skips_and_says_why(ev, reason):
    v = verdict(ev)
    assert v["status"] == "skipped" and v["reason"] == reason and v["checks"] == [] and v["failures"] == []
    assert summary(v) == f"skipped: {reason}"


def test_a_check_with_nothing_to_count_is_skipped_alone():
    ev = eval_json()
    del ev["human"]["length_slices"]["pointwise"]["shorter_preferred"]
    ev["human"]["ab_pairs"] = 0
    checks, skipped = judge_checks(ev["human"], CFG, "M0")
    assert [c["check"] for c in checks] == ["accuracy"]
    assert set(skipped) == {"shorter_preferred", "answer1_rate"}
    assert verdict(ev)["status"] == "passed"


def test_off_reads_nothing():
    v = judge_verdict(None, 12, knobs("validate_", judge_gate="off"))
    assert v["status"] == "off" and v["reason"] == "validate.judge_gate is off" and v["checks"] == []


def prefs(rewards=None, n=3) -> pl.DataFrame:
    df = pl.DataFrame({"id": [f"p{i}" for i in range(n)]})
    return df if rewards is None else df.with_columns(reward=pl.Series(rewards, dtype=pl.String))


def test_reward_column_decides_whose_pairs_they_are():
    assert judge_pairs(prefs()) == 3  # no reward column: every pair is the judge's
    assert judge_pairs(prefs(["judge", "checks", "judge"])) == 2
    assert judge_pairs(prefs(["checks", "checks", "checks"])) == 0
    assert judge_pairs(prefs([], n=0)) == 0
    coin = eval_json(acc=0.5, ci=(0.4, 0.6))
    # some pairs decided by the judge: its checks apply, and validate.json says how many
    v = verdict(coin, judge_pairs(prefs(["judge", "checks", "judge"])))
    assert v["status"] == "failed" and v["judge_pairs"] == 2
    # every pair decided by the checks: the judge's numbers do not matter
    v = verdict(coin, judge_pairs(prefs(["checks", "checks", "checks"])))
    assert v["status"] == "skipped" and v["reason"] == NO_JUDGE_PAIRS == "no pair was decided by the judge"
    assert v["judge_pairs"] == 0


def test_failure_line_names_accuracy_interval_and_threshold():
    v = verdict(eval_json(acc=0.5, ci=(0.4, 0.6), n=96))
    line = failure_line(1, v["checks"][0])
    assert line.startswith(
        "validate@1: FAILED judge.accuracy: interval_low_above(human.pairwise_accuracy): "
        "observed value 0.5 [0.4, 0.6] (n=96), threshold 95% interval low > 0.5; knobs: validate.judge_min_accuracy; "
        "M0 labelled this iteration"
    )
    assert failure_line(1, v["checks"][0], "WARNING").startswith("validate@1: WARNING judge.accuracy")
    assert summary(v) == "failed (fail): accuracy 0.50 [0.40-0.60] (n=96), needs 95% interval low > 0.5"


def test_failure_line_and_report_print_observed_values_to_4_places():
    """A record a writer left unrounded prints as validate.json keeps values; a count or an error as it is."""
    base = {"passed": False, "overridden": False, "failed": 1, "evaluated": 3, "skipped": [], "warnings": []}
    c = {**verdict(eval_json())["checks"][0], "observed": 2 / 3, "ci95": [0.612345678, 0.7123456789], "passed": False}
    assert "observed value 0.6667 [0.6123, 0.7123] (n=529), threshold" in failure_line(1, c)
    page = report_html({**base, "checks": [], "judge": {**verdict(eval_json()), "checks": [c]}}, 1)
    assert "0.6667 [0.6123, 0.7123] (n=529)" in page and "0.66666" not in page
    gx_like = {**c, "dataset": "responses", "ci95": None, "n": None}
    assert "observed value 8, threshold" in failure_line(1, {**gx_like, "observed": 8})
    assert "observed value error: no column, threshold" in failure_line(1, {**gx_like, "observed": "error: no column"})


def test_report_shows_the_judge_beside_the_datasets():
    base = {"passed": True, "overridden": False, "failed": 0, "evaluated": 3, "skipped": [], "warnings": []}
    judge = judge_verdict(eval_json(acc=0.5, ci=(0.4, 0.6)), 12, knobs("validate_"), "metrics/iter0/eval.json")
    page = report_html({**base, "checks": [], "judge": judge}, 1)
    assert "judge: M0, which labelled iteration 1" in page and "validate.judge_gate: warn" in page
    assert "0.5 [0.4, 0.6] (n=529)" in page and "banner over" in page  # passed, with the judge recorded as failed
    skipped = judge_verdict({"human": None}, 12, knobs("validate_"))
    assert "Judge checks skipped: no held-out human data" in report_html({**base, "checks": [], "judge": skipped}, 1)
