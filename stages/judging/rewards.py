"""What decides a pair (`pairs.reward`, docs/checks.md): each reward source is one object, and `reward_for` is the
only place the name is looked up.

judge:  the judge's scores alone (the paper).
checks: checks@t's verdicts where the prompt has constraints; a prompt without constraints, or whose answers all
        meet as many, makes no pair.
both:   the verdicts first; where they decide nothing the judge's scores do.

What decided each pair is the preferences' `reward` column (DECIDED, its only allowed values): `judge`, `checks`,
or `degenerate` (pairs.degenerate_last: a looping or cut answer rejected against a clean one, whatever the scores
or constraints met).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from stages.core.errors import SrlmError


@dataclass(frozen=True)
class Reward:
    name: str
    checks: bool  # reads checks@t's verdicts (pairs needs --checks)
    judge: bool  # the judge's scores decide where the verdicts do not


REWARDS = {
    r.name: r for r in (Reward("judge", False, True), Reward("checks", True, False), Reward("both", True, True))
}


# the values of the preferences' `reward` column (stages/core/rows.py); pairs.json counts each as decided_by_<value>
JUDGE, CHECKS, DEGENERATE = "judge", "checks", "degenerate"
DECIDED = (JUDGE, CHECKS, DEGENERATE)


def decided_by() -> pl.Expr:
    """Per preference row: what decided it, one of DECIDED (a pair with no reward recorded is the judge's, as
    before pairs.reward existed)."""
    return pl.col("reward").fill_null(JUDGE)


def decided_by_judge() -> pl.Expr:
    """Per preference row: the judge decided it; only such a pair has a judge's margin, and only such pairs count
    for the judge gate."""
    return decided_by() == JUDGE


def judge_margin() -> pl.Expr:
    """Per preference row: score_chosen - score_rejected where the judge decided the pair, else null (a pair the
    constraints or a degenerate answer decided may have chosen the lower score: its margin says nothing of the
    judge)."""
    return pl.when(decided_by_judge()).then(pl.col("score_chosen") - pl.col("score_rejected"))


def reward_for(name: str) -> Reward:
    if name not in REWARDS:
        raise SrlmError(f"error: unknown pairs.reward {name!r}; expected one of {', '.join(REWARDS)}")
    return REWARDS[name]
