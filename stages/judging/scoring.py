"""Judge scoring: the grades each judge mode (stages/judging/modes.py) makes of the engine's generations, for
judge@t (the loop's labels) and evaluate (agreement with human rankings).

sample:  K sampled grades per response; `Score: N` is parsed from each; a grade that does not
         parse is kept with score = null and its raw text, never 0.
logprob: one forward pass with the assistant turn opened at "Score: "; the score is the expectation
         of the next-token distribution over 0..5.
compare: the comparative judge sees every pair of a prompt's answers in both orders (P("1") vs P("2") after
         "Better answer: "); an answer's score is 5 x its mean probability of being the better one, so position
         bias cancels and the scale is the rubric's 0..5.
A response's score is the mean of its parsed grades.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import polars as pl

from stages.core import params as P
from stages.core.errors import SrlmError
from stages.judging.rubric import SCORES

if TYPE_CHECKING:  # pairs scores without an engine: no backend import at run time
    from stages.engine.backend import Backend

LOGPROB_PREFILL = "Score: "
_SCORE_RE = re.compile(r"score\s*[:=]\s*\**\s*([0-5](?:\.\d+)?)(?:\s*/\s*5)?", re.IGNORECASE)


def parse_score(text: str) -> float | None:
    """The last `Score: N` in the text (N in 0..5), or None: never a default of 0."""
    found = _SCORE_RE.findall(text or "")
    if not found:
        return None
    value = float(found[-1])
    return value if 0 <= value <= 5 else None


def sample_grades(texts: list[str]) -> list[dict]:
    return [{"sample": g, "score": parse_score(t), "raw": t, "probs": []} for g, t in enumerate(texts)]


def logprob_grades(probs: list[float]) -> list[dict]:
    return [{"sample": 0, "score": sum(s * q for s, q in zip(SCORES, probs)), "raw": "", "probs": probs}]


def ordered_pairs(ids: list[str]) -> list[tuple[str, str]]:
    """Every comparison judge.mode compare makes among one prompt's answers: each pair in both orders."""
    return [(a, b) for a in ids for b in ids if a != b]


def compare_grades(ids: list[str], p_first: dict[tuple[str, str], float]) -> dict[str, list[dict]]:
    """judge.mode compare: per answer one grade whose `probs` are its probabilities of being the better answer in
    each comparison (P("1") when shown first, 1 - P("1") when second) and whose score is 5 x their mean (None
    for a prompt's only answer: nothing to compare with)."""
    wins: dict[str, list[float]] = {i: [] for i in ids}
    for a, b in ordered_pairs(ids):
        wins[a].append(p_first[(a, b)])
        wins[b].append(1.0 - p_first[(a, b)])
    return {
        i: [{"sample": 0, "score": 5 * sum(w) / len(w) if w else None, "raw": "", "probs": w}] for i, w in wins.items()
    }


def judge_sample(backend: Backend, texts: list[str], cfg: P.Judge, seed: int, desc: str) -> list[list[dict]]:
    outs = backend.generate(texts, n=cfg.k, sampling=cfg, seed=seed, desc=desc)
    return [sample_grades([c.text for c in o]) for o in outs]


def judge_logprob(backend: Backend, texts: list[str], cfg: P.Judge, desc: str) -> list[list[dict]]:
    probs = backend.next_token_probs(
        [t + LOGPROB_PREFILL for t in texts], [str(s) for s in SCORES], cfg.batch_size, desc
    )
    return [logprob_grades(p) for p in probs]


def score_summary(judgments: pl.DataFrame) -> dict:
    """Parse rate, mean and histogram (rounded to whole points) of the grades."""
    scores = judgments["score"].drop_nulls()
    hist = {str(s): 0 for s in SCORES}
    for s in scores.round(0).cast(pl.Int64):
        hist[str(s)] += 1
    return {
        "grades": len(judgments),
        "parsed": len(scores),
        "parse_rate": round(len(scores) / len(judgments), 4) if len(judgments) else 0.0,
        "score_mean": round(float(scores.mean()), 4) if len(scores) else None,
        "score_std": round(float(scores.std()), 4) if len(scores) > 1 else None,
        "score_hist": hist,
    }


def response_scores(judgments: pl.DataFrame) -> pl.DataFrame:
    """(response_id, score = mean of the parsed grades or null, parsed = how many) per response."""
    return judgments.group_by("response_id").agg(
        pl.col("score").mean().alias("score"), pl.col("score").count().alias("parsed")
    )


def check_judged(responses: pl.DataFrame, judgments: pl.DataFrame, responses_path, judgments_path) -> None:
    """pairs' inputs must come from one run: responses to pair, and judgments of exactly those responses
    (judgments of other responses would silently give 0 pairs), each score a grade 0..5 or null (unparsed):
    a 9, a -3 or a NaN would make or break pairs before the validate gate ever saw them."""
    if responses.is_empty():
        raise SrlmError(f"error: {responses_path} has no responses to pair")
    if judgments.is_empty():
        raise SrlmError(f"error: {judgments_path} has no judgments; run judge on {responses_path}")
    unknown = judgments.filter(~pl.col("response_id").is_in(responses["id"].implode()))
    if len(unknown):
        raise SrlmError(
            f"error: {len(unknown)} of {len(judgments)} judgments in {judgments_path} grade no response in "
            f"{responses_path}; were they judged from another responses file? rerun judge on it"
        )
    score = judgments["score"]
    bad = (score.is_nan() | (score < min(SCORES)) | (score > max(SCORES))).fill_null(False)
    if bad.any():
        i, n = int(bad.arg_true()[0]), int(bad.sum())
        raise SrlmError(
            f"error: {judgments_path} row {i + 1}: score must be {min(SCORES)}..{max(SCORES)} (or null when the "
            f"grade did not parse), got {score[i]} (judgment {judgments['id'][i]!r})"
            + (f"; {n} rows are out of range" if n > 1 else "")
        )
