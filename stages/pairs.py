"""pairs@t: per prompt, one highly scored response (chosen) and one lowly scored (rejected) become a DPO pair.

    python -m stages.pairs --iteration 1 --responses data/iter1/responses.parquet \
        --judgments data/iter1/judgments.parquet --out data/iter1/preferences.parquet \
        --metrics metrics/iter1/pairs.json

A response's score is the mean of its parsed grades (missing grades are skipped, not 0). Dropped, and
counted: prompts with fewer than two scored responses, prompts whose every answer is degenerate, and ties (no
answer scored more than `pairs.min_margin` below the chosen one; equal scores never make a pair).

Length rules (docs/judge.md), so that the pairs do not teach DPO that longer is better:
- `pairs.length_control` (Meta-Rewarding, Wu et al. 2024): the chosen answer is the shortest of those scored
  within that fraction of the prompt's score range below the top, the rejected the longest of those within it
  above the bottom. At 0 only equal scores are decided by length (the paper's best vs worst otherwise).
- `pairs.length_residual`: answers are ranked by their score less the iteration's pooled within-prompt slope
  of score on log length (when it is positive), so a longer answer must beat the length trend to be chosen.
  The judge's own scores must still put the chosen above the rejected, and the stored scores stay the judge's.
- `pairs.skip_degenerate`: an answer cut at the token cap (`truncated`) or looping (`loops`) is never chosen,
  and a looping answer scored below the chosen one is rejected before any other.
- `pairs.degenerate_last` (needs skip_degenerate): a degenerate answer ranks below every clean one. Where the
  rejected side has one, it is the rejected answer against the chosen one of the rules here, whatever the scores
  or constraints met (ties too): a looping one before a cut one, then the lowest rank, the longer. The pair's
  `reward` is `degenerate`; a prompt without a degenerate answer is decided as without the knob.
- `pairs.temporal` (Temporal Self-Rewarding, docs/recipes.md): the chosen answer is one of M(t-1)'s, the rejected
  one of the anchor's (M0's answers to the same prompts, which responses@t samples too and judge@t grades with
  the rest; `--anchor` names the anchor's folder as the rows' `model` column records it). Where M(t-1) is the
  anchor (iteration 1) both come from all answers, as in the plain rule. The rules above apply within each side.
- `pairs.reward` (docs/checks.md): `judge` (the paper) uses the scores alone. `checks` and `both` use checks@t's
  verdicts where the prompt has constraints: chosen = a clean answer meeting the most constraints (the judge's
  rank breaks ties), rejected = one meeting fewer (a looping one first, else one meeting the fewest, the lowest
  ranked of those). When every answer meets as many, `checks` makes no pair (a tie) and `both` lets the judge
  decide by the rules above; a prompt without constraints is the judge's under `both` and makes no pair under
  `checks`. The `reward` column says which decided each pair.
Remaining equal choices fall to the smaller response id, so the pairs are deterministic.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from stages.core import lineage, rows
from stages.core import params as P
from stages.core.errors import SrlmError, entry
from stages.judging.rewards import CHECKS, DECIDED, DEGENERATE, JUDGE, Reward, decided_by, judge_margin, reward_for
from stages.judging.scoring import check_judged, response_scores

# the params this stage reads: dvc.yaml's params list and the lineage record (python -m stages.commands.dag write)
PARAMS = ("pairs",)


def length_slope(scored: pl.DataFrame) -> float:
    """Least-squares slope of score on log(1 + characters) with each prompt's means removed: the points the
    judge gives per e-fold of length among one prompt's answers, pooled over the prompts."""
    d = scored.select(
        (pl.col("log_chars") - pl.col("log_chars").mean().over("prompt_id")).alias("x"),
        (pl.col("score") - pl.col("score").mean().over("prompt_id")).alias("y"),
    )
    den = float((d["x"] ** 2).sum())
    return float((d["x"] * d["y"]).sum()) / den if den > 1e-12 else 0.0


def select_pairs(
    responses: pl.DataFrame,
    judgments: pl.DataFrame,
    min_margin: float,
    iteration: int,
    *,
    length_control: float = 0.0,
    length_residual: bool = False,
    skip_degenerate: bool = False,
    anchor: str | None = None,
    checks: pl.DataFrame | None = None,
    reward: str = "judge",
    degenerate_last: bool = False,
) -> tuple[pl.DataFrame, dict]:
    """The pairs and the counts of dropped prompts; the keyword rules are the `pairs` knobs (module docstring),
    their defaults the paper's plain best vs worst. `anchor` (pairs.temporal): the model whose answers are the
    rejected side. `checks` (checks@t's rows) with `reward` checks or both: constraints met decide first.
    `degenerate_last` (needs `skip_degenerate`): a degenerate answer on the rejected side is the rejected one."""
    source = reward_for(reward)
    if degenerate_last and not skip_degenerate:
        raise SrlmError(
            "error: pairs.degenerate_last needs pairs.skip_degenerate (a degenerate answer is never chosen)"
        )
    if source.checks and checks is None:
        raise SrlmError(f"error: pairs.reward is {reward} but pairs was given no checks (--checks)")
    scored = responses.join(response_scores(judgments), left_on="id", right_on="response_id", how="left")
    met = checks.select("response_id", "met", "total") if checks is not None else None
    scored = (
        scored.join(met, left_on="id", right_on="response_id", how="left")
        if met is not None
        else scored.with_columns(pl.lit(0).alias("met"), pl.lit(0).alias("total"))
    ).with_columns(pl.col("met").fill_null(0), pl.col("total").fill_null(0))
    scored = scored.filter(pl.col("score").is_not_null()).sort(["prompt_id", "id"])
    # temporal: the anchor's answers are the rejected side, the others the chosen side; when every answer is the
    # anchor's (it is M(t-1)), both sides are all answers
    temporal = anchor is not None and (responses["model"] != anchor).any()
    anchored = pl.col("model") == anchor if temporal else pl.lit(False)
    scored = scored.with_columns(
        pl.col("response").str.len_chars().alias("chars"),
        (pl.col("response").str.len_chars() + 1).log().alias("log_chars"),
        ((pl.col("truncated") | pl.col("loops")) & skip_degenerate).alias("degenerate"),
        (pl.col("loops") & skip_degenerate).alias("looping"),
        (~anchored if temporal else pl.lit(True)).alias("chooses"),
        (anchored if temporal else pl.lit(True)).alias("rejects"),
    )
    slope = max(0.0, length_slope(scored)) if length_residual else 0.0
    scored = scored.with_columns(
        (pl.col("score") - slope * (pl.col("log_chars") - pl.col("log_chars").mean().over("prompt_id"))).alias("rank")
    )
    counts = {
        "prompts": responses["prompt_id"].n_unique(),
        "too_few_scored": 0,
        "degenerate": 0,
        "ties": 0,
    } | ({} if source.judge else {"unconstrained": 0})  # prompts without constraints make no pair
    records = []
    for (pid,), group in scored.group_by("prompt_id", maintain_order=True):
        side = group.filter(pl.col("chooses")), group.filter(pl.col("rejects"))
        if len(group) < 2 or side[0].is_empty() or side[1].is_empty():
            counts["too_few_scored"] += 1
            continue
        clean = side[0].filter(~pl.col("degenerate"))
        if clean.is_empty():
            counts["degenerate"] += 1
            continue
        constrained = group["total"].max() > 0
        best, worst, decided = rule_pair(clean, side[1], source, constrained, length_control, min_margin)
        broken = side[1].filter(pl.col("degenerate")) if degenerate_last else side[1].clear()
        if not broken.is_empty():  # pairs.degenerate_last: a broken answer is the rejected one, whatever its scores
            worst, decided = last_degenerate(broken), DEGENERATE
        if worst is None:
            counts[decided] += 1  # ties, or unconstrained (checks alone)
            continue
        records.append(pair_record(pid, best, worst, decided, iteration))
    counts["too_few_scored"] += counts["prompts"] - scored["prompt_id"].n_unique()  # prompts with no scored response
    return rows.frame(records, "preferences"), counts


def rule_pair(
    clean: pl.DataFrame,
    rejects: pl.DataFrame,
    source: Reward,
    constrained: bool,
    length_control: float,
    min_margin: float,
) -> tuple[dict, dict | None, str]:
    """One prompt's pair by pairs.reward and the length rules: (chosen, rejected, what decided: judge | checks),
    or (chosen, None, why no pair: ties | unconstrained). The chosen is the answer the rules choose even where
    they make no pair: pairs.degenerate_last rejects a degenerate answer against it there too."""
    if source.checks and constrained:
        best, worst = checks_pair(clean, rejects)
        if worst is not None:
            return best, worst, CHECKS
        if not source.judge:
            return best, None, "ties"
    elif not source.judge:  # a prompt without constraints: every answer meets as many (none)
        return checks_pair(clean, rejects)[0], None, "unconstrained"
    top, bottom = clean["rank"].max(), rejects["rank"].min()
    # under pairs.temporal the rejected side may rank wholly above the chosen side: no band then, and no pair
    band = length_control * max(top - bottom, 0.0)
    best = clean.filter(pl.col("rank") >= top - band).sort(["chars", "id"]).row(0, named=True)
    # min_margin >= 0, so equal scores never pass; the judge's scores must agree with the ranking
    below = rejects.filter(
        (best["rank"] - pl.col("rank") > min_margin) & (best["score"] - pl.col("score") > min_margin)
    )
    pool = below.filter(pl.col("looping"))
    if pool.is_empty():
        pool = below.filter(pl.col("rank") <= bottom + band)
    if pool.is_empty():
        return best, None, "ties"
    return best, pool.sort(["chars", "id"], descending=[True, False]).row(0, named=True), JUDGE


def checks_pair(clean: pl.DataFrame, rejects: pl.DataFrame) -> tuple[dict, dict | None]:
    """(chosen, rejected) by constraints met: the clean answer meeting the most (judge rank, then the shorter,
    then the smaller id breaking ties) against one meeting fewer (looping first, else the fewest met, the lowest
    rank, the longer); the rejected is None when no answer meets fewer."""
    most = clean["met"].max()
    best = (
        clean.filter(pl.col("met") == most)
        .sort(["rank", "chars", "id"], descending=[True, False, False])
        .row(0, named=True)
    )
    below = rejects.filter(pl.col("met") < most)
    if below.is_empty():
        return best, None
    pool = below.filter(pl.col("looping"))
    if pool.is_empty():
        pool = below.filter(pl.col("met") == below["met"].min())
    worst = pool.sort(["rank", "chars", "id"], descending=[False, True, False]).row(0, named=True)
    return best, worst


def last_degenerate(broken: pl.DataFrame) -> dict:
    """pairs.degenerate_last's rejected answer among a prompt's degenerate ones: a looping one before one cut at
    the cap, then the lowest judge rank, the longer, the smaller id."""
    return broken.sort(["loops", "rank", "chars", "id"], descending=[True, False, True, False]).row(0, named=True)


def pair_record(pid: str, best: dict, worst: dict, decided: str, iteration: int) -> dict:
    return {
        "id": rows.content_id(pid, best["id"], worst["id"]),
        "prompt_id": pid,
        "prompt": [{"role": "user", "content": best["prompt"]}],
        "chosen": [{"role": "assistant", "content": best["response"]}],
        "rejected": [{"role": "assistant", "content": worst["response"]}],
        "chosen_id": best["id"],
        "rejected_id": worst["id"],
        "score_chosen": best["score"],
        "score_rejected": worst["score"],
        "reward": decided,
        "iteration": iteration,
    }


def pair_metrics(prefs: pl.DataFrame, counts: dict, responses: pl.DataFrame | None = None) -> dict:
    """Counts, margins and length bias of the pairs; with `responses`, also how many chosen and rejected
    answers stopped at the token cap (`truncated`) or loop (`loops`, stages/judging/text.py)."""
    n = len(prefs)
    flags = {}
    if responses is not None:
        by_id = responses.select("id", "truncated", "loops")
        for side in ("chosen", "rejected"):
            got = prefs.select(pl.col(f"{side}_id").alias("id")).join(by_id, on="id", how="left")
            flags[f"{side}_truncated"] = int(got["truncated"].sum())
            flags[f"{side}_loops"] = int(got["loops"].sum())
    if n:
        chosen_len = prefs["chosen"].list.first().struct.field("content").str.len_chars()
        rejected_len = prefs["rejected"].list.first().struct.field("content").str.len_chars()
        margin = prefs.select(judge_margin()).to_series().drop_nulls()  # the judge's pairs only
    return {
        **counts,
        "pairs": n,
        # what decided the pairs: the judge's scores, the constraints met (pairs.reward) or a degenerate answer
        # rejected (pairs.degenerate_last)
        **{f"decided_by_{d}": int(prefs.select((decided_by() == d).sum()).item()) for d in DECIDED},
        "tie_rate": round(counts["ties"] / counts["prompts"], 4) if counts["prompts"] else 0.0,
        "margin_mean": round(float(margin.mean()), 4) if n and len(margin) else None,
        "chosen_chars_mean": round(float(chosen_len.mean()), 1) if n else None,
        "rejected_chars_mean": round(float(rejected_len.mean()), 1) if n else None,
        "length_ratio": round(float(chosen_len.mean() / max(rejected_len.mean(), 1)), 4) if n else None,
        # per-pair view of length bias: the typical ratio, and how often the longer answer was chosen
        "length_ratio_median": round(float((chosen_len / rejected_len.clip(1)).median()), 4) if n else None,
        "chosen_longer_rate": round(float((chosen_len > rejected_len).mean()), 4) if n else None,
        **flags,
    }


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iteration", type=int, required=True)
    ap.add_argument("--responses", type=Path, required=True)
    ap.add_argument("--judgments", type=Path, required=True)
    ap.add_argument("--checks", type=Path, help="checks@t's parquet (read when pairs.reward is checks or both)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path)
    ap.add_argument(
        "--anchor", type=Path, help="pairs.temporal: the anchor's folder (models/M0), as responses@t ran it"
    )
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    if p.pairs.temporal and args.anchor is None:
        raise SrlmError(
            "error: pairs.temporal is true but pairs was given no --anchor (the model folder, e.g. models/M0)"
        )
    rows.all_or_none(args.out, lineage.path_for(args.out), args.metrics)
    responses, judgments = rows.read(args.responses, "responses"), rows.read(args.judgments, "judgments")
    check_judged(responses, judgments, args.responses, args.judgments)
    checked = None
    if reward_for(p.pairs.reward).checks:
        if args.checks is None:
            raise SrlmError(f"error: pairs.reward is {p.pairs.reward} but pairs was given no --checks file")
        checked = rows.read(args.checks, "checks")
    prefs, counts = select_pairs(
        responses,
        judgments,
        p.pairs.min_margin,
        args.iteration,
        length_control=p.pairs.length_control,
        length_residual=p.pairs.length_residual,
        skip_degenerate=p.pairs.skip_degenerate,
        degenerate_last=p.pairs.degenerate_last,
        anchor=args.anchor.as_posix() if p.pairs.temporal else None,
        checks=checked,
        reward=p.pairs.reward,
    )
    rows.write(prefs, args.out, "preferences")
    lineage.write(
        args.out,
        "preferences",
        stage=f"pairs@{args.iteration}",
        inputs={"responses": args.responses, "judgments": args.judgments}
        | ({"checks": args.checks} if checked is not None else {}),
        params=p,
        sections=PARAMS,
    )
    metrics = pair_metrics(prefs, counts, responses)
    if p.pairs.temporal:  # how many rejected answers are the anchor's (none where M(t-1) is the anchor)
        anchor_ids = responses.filter(pl.col("model") == args.anchor.as_posix())["id"].implode()
        metrics["rejected_from_anchor"] = int(prefs["rejected_id"].is_in(anchor_ids).sum())
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    print(
        f"pairs@{args.iteration}: {metrics['pairs']} pairs from {counts['prompts']} prompts "
        f"({metrics['decided_by_checks']} decided by checks, {metrics['decided_by_degenerate']} by a degenerate one) "
        f"(ties {counts['ties']}, too few scored {counts['too_few_scored']}, all degenerate {counts['degenerate']}; "
        f"chosen longer {metrics['chosen_longer_rate']}, truncated chosen/rejected {metrics['chosen_truncated']}/"
        f"{metrics['rejected_truncated']}, looping {metrics['chosen_loops']}/{metrics['rejected_loops']}) -> {args.out}"
    )


if __name__ == "__main__":
    main()
