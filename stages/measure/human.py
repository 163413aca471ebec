"""evaluate's agreement with held-out human rankings (`evaluate.human`, never used in training; docs/judge.md):
every answer is graded in `judge.mode` (stages/judging/modes.py; Table-4 metrics), and every human pair is judged
comparatively in a seeded shuffled A/B order and again swapped (position bias), each beside the
longer-answer-wins baseline on the same pairs, overall and split by whether people preferred the shorter answer.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import polars as pl

from stages.core import params as P
from stages.engine import task as engine
from stages.judging.modes import mode_for
from stages.judging.scoring import score_summary
from stages.judging.sources import load_source, ranked_groups
from stages.measure import agreement
from stages.measure.headtohead import prefer_first

if TYPE_CHECKING:
    from stages.engine.backend import Backend


def load_groups(cfg: P.Evaluate) -> pl.DataFrame | None:
    """Held-out human rankings as (group, instruction, response, rank) rows, at most `max_prompts` groups."""
    df = load_source(cfg.human)
    if df is None:
        return None
    df = ranked_groups(df, cfg.human, cfg.first_turn_only)
    df = df.filter(pl.col("rank").n_unique().over("group") >= 2)  # a lone answer has no human order
    keep = df["group"].unique(maintain_order=True).head(cfg.max_prompts or len(df))
    return df.filter(pl.col("group").is_in(keep.implode())).with_columns(
        pl.col("response").str.slice(0, cfg.max_response_chars)
    )


def grade(backend: Backend, groups: pl.DataFrame, p: P.Params, seed: int, desc: str) -> list[list[dict]]:
    """Each held-out answer's grades in `judge.mode`, in row order: the mode's work run in one pass (the row
    number is the answer's id, the group its prompt), comparisons at `evaluate.compare_batch_size`."""
    mode = mode_for(p.judge.mode)
    answers = groups.select(
        pl.int_range(pl.len()).cast(pl.String).alias("id"),
        pl.col("group").alias("prompt_id"),
        pl.col("instruction").alias("prompt"),
        "response",
    )
    cfg = p.judge.model_copy(update={"batch_size": p.evaluate.compare_batch_size}) if mode.pairwise else p.judge
    gens = engine.run(backend, engine.judge_task(mode, cfg), mode.items(answers), seed, desc)
    grades = mode.grades(answers, gens)
    return [grades[i] for i in answers["id"]]


def human_agreement(backend: Backend, groups: pl.DataFrame, p: P.Params, seed: int, desc: str) -> dict:
    grades = grade(backend, groups, p, seed, desc)
    flat = pl.DataFrame(
        [{"row": i, "score": g["score"]} for i, gs in enumerate(grades) for g in gs],
        schema={"row": pl.Int64, "score": pl.Float64},
    )
    scores = [
        None if s is None else float(s) for s in flat.group_by("row").agg(pl.col("score").mean()).sort("row")["score"]
    ]
    scores5 = [all(g["score"] is not None and round(g["score"]) == 5 for g in gs) for gs in grades]
    scored = groups.with_columns(pl.Series("score", scores, dtype=pl.Float64))
    by_group = [list(zip(g["rank"], g["score"])) for _, g in scored.group_by("group", maintain_order=True)]
    with_length = [
        list(zip(g["rank"], g["score"], g["response"].str.len_chars()))
        for _, g in scored.group_by("group", maintain_order=True)
    ]
    summary = score_summary(flat)
    out = {
        **agreement.rank_agreement(by_group),
        "mode": p.judge.mode,
        "responses": len(groups),
        "parse_rate": summary["parse_rate"],
        "score_mean": summary["score_mean"],
        "score_std": summary["score_std"],
        "score_hist": summary["score_hist"],
        "all5_rate": round(sum(scores5) / len(scores5), 4) if scores5 else None,
    }
    ab = ab_test(backend, groups, seed, p.evaluate.compare_batch_size, f"{desc} A/B")
    pointwise = agreement.pair_outcomes(with_length)
    out["length_slices"] = {  # the same pairs in the same order for all three
        "pointwise": agreement.sliced([o for o, _ in pointwise], [lg for _, lg in pointwise]),
        "ab": agreement.sliced(ab.pop("outcomes"), [lg for _, lg in pointwise]),
        "longer_wins": agreement.sliced(ab.pop("longer_wins_outcomes"), [lg for _, lg in pointwise]),
    }
    return out | ab


def ab_test(backend: Backend, groups: pl.DataFrame, seed: int, batch_size: int, desc: str) -> dict:
    """The comparative judge on every human pair, shown in a seeded order and then swapped, beside the
    longer-answer-wins baseline on the same pairs."""
    pairs = [
        (q, a, b, len(a), len(b))
        for (_, g) in groups.group_by("group", maintain_order=True)
        for q, (ra, a), (rb, b) in _ordered_pairs(g)
    ]  # better answer first
    coin = random.Random(seed)
    chosen_first = [coin.random() < 0.5 for _ in pairs]
    shown = [(a, b) if cf else (b, a) for (_, a, b, *_), cf in zip(pairs, chosen_first)]
    qs = [q for q, *_ in pairs]
    both = prefer_first(
        backend,
        qs + qs,
        [s[0] for s in shown] + [s[1] for s in shown],
        [s[1] for s in shown] + [s[0] for s in shown],
        batch_size,
        desc,
    )
    lengths = [(la, lb) for *_, la, lb in pairs]
    return {
        **agreement.ab_agreement(chosen_first, both[: len(pairs)], both[len(pairs) :]),
        "longer_wins_accuracy": agreement.longer_wins_accuracy(lengths),
        "longer_wins_accuracy_ci95": agreement.longer_wins_ci95(lengths),
        # per pair, for the length slices (popped by human_agreement)
        "outcomes": agreement.ab_outcomes(chosen_first, both[: len(pairs)], both[len(pairs) :]),
        "longer_wins_outcomes": [agreement.longer_wins_accuracy([pair]) for pair in lengths],
    }


def _ordered_pairs(group: pl.DataFrame):
    answers = list(zip(group["rank"], group["response"]))
    q = group["instruction"][0]
    for i, a in enumerate(answers):
        for b in answers[i + 1 :]:
            if a[0] != b[0]:
                yield (q, *((a, b) if a[0] < b[0] else (b, a)))
