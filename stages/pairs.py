"""pairs@t: per prompt, the highest- vs the lowest-scored response becomes a DPO pair.

    python -m stages.pairs --iteration 1 --responses data/iter1/responses.parquet \
        --judgments data/iter1/judgments.parquet --out data/iter1/preferences.parquet \
        --metrics metrics/iter1/pairs.json

A response's score is the mean of its parsed grades (missing grades are skipped, not 0).
Dropped, and counted: prompts with fewer than two scored responses, and ties (a margin of
`pairs.min_margin` or less; equal scores never make a pair). Equal best (or worst) scores
are broken by the smaller response id, so the choice is deterministic.

Length-aware options (off by default; docs/judge.md): `pairs.length_penalty` subtracts that many points
per 1,000 characters before best and worst are chosen and the margin is checked (the stored scores stay
the judge's); `pairs.prefer_shorter` breaks equal best scores toward the shorter response and equal
worst scores toward the longer one, so equal grades never reward length.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from . import lineage, rows
from . import params as P
from .errors import entry
from .scoring import check_judged, response_scores


def select_pairs(
    responses: pl.DataFrame,
    judgments: pl.DataFrame,
    min_margin: float,
    iteration: int,
    length_penalty: float = 0.0,
    prefer_shorter: bool = False,
) -> tuple[pl.DataFrame, dict]:
    scored = responses.join(response_scores(judgments), left_on="id", right_on="response_id", how="left")
    scored = scored.filter(pl.col("score").is_not_null()).sort(["prompt_id", "id"])
    chars = pl.col("response").str.len_chars()
    scored = scored.with_columns(
        (pl.col("score") - length_penalty * chars / 1000).alias("rank_score"),
        (chars if prefer_shorter else pl.lit(0)).alias("length_key"),
    )
    counts = {"prompts": responses["prompt_id"].n_unique(), "too_few_scored": 0, "ties": 0}
    records = []
    for (pid,), group in scored.group_by("prompt_id", maintain_order=True):
        if len(group) < 2:
            counts["too_few_scored"] += 1
            continue
        best = group.sort(["rank_score", "length_key", "id"], descending=[True, False, False]).row(0, named=True)
        worst = group.sort(["rank_score", "length_key", "id"], descending=[False, True, False]).row(0, named=True)
        if best["rank_score"] - worst["rank_score"] <= min_margin:  # min_margin >= 0, so equal scores land here
            counts["ties"] += 1
            continue
        records.append(
            {
                "id": rows.content_id(pid, best["id"], worst["id"]),
                "prompt_id": pid,
                "prompt": [{"role": "user", "content": best["prompt"]}],
                "chosen": [{"role": "assistant", "content": best["response"]}],
                "rejected": [{"role": "assistant", "content": worst["response"]}],
                "chosen_id": best["id"],
                "rejected_id": worst["id"],
                "score_chosen": best["score"],
                "score_rejected": worst["score"],
                "iteration": iteration,
            }
        )
    counts["too_few_scored"] += counts["prompts"] - scored["prompt_id"].n_unique()  # prompts with no scored response
    return rows.frame(records, "preferences"), counts


def pair_metrics(prefs: pl.DataFrame, counts: dict, responses: pl.DataFrame | None = None) -> dict:
    """Counts, margins and length bias of the pairs; with `responses`, also how many chosen and rejected
    answers stopped at the token cap (`truncated`) or loop (`loops`, stages/text.py)."""
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
        margin = prefs["score_chosen"] - prefs["score_rejected"]
    return {
        **counts,
        "pairs": n,
        "tie_rate": round(counts["ties"] / counts["prompts"], 4) if counts["prompts"] else 0.0,
        "margin_mean": round(float(margin.mean()), 4) if n else None,
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
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    rows.all_or_none(args.out, lineage.path_for(args.out), args.metrics)
    responses, judgments = rows.read(args.responses, "responses"), rows.read(args.judgments, "judgments")
    check_judged(responses, judgments, args.responses, args.judgments)
    prefs, counts = select_pairs(
        responses,
        judgments,
        p.pairs.min_margin,
        args.iteration,
        p.pairs.length_penalty,
        p.pairs.prefer_shorter,
    )
    rows.write(prefs, args.out, "preferences")
    lineage.write(
        args.out,
        "preferences",
        stage=f"pairs@{args.iteration}",
        inputs={"responses": args.responses, "judgments": args.judgments},
        params=p,
        sections=("pairs",),
    )
    metrics = pair_metrics(prefs, counts, responses)
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    print(
        f"pairs@{args.iteration}: {metrics['pairs']} pairs from {counts['prompts']} prompts "
        f"(ties {counts['ties']}, too few scored {counts['too_few_scored']}; chosen longer "
        f"{metrics['chosen_longer_rate']}, truncated chosen/rejected {metrics['chosen_truncated']}/"
        f"{metrics['rejected_truncated']}, looping {metrics['chosen_loops']}/{metrics['rejected_loops']}) -> {args.out}"
    )


if __name__ == "__main__":
    main()
