"""Judge-training (EFT) examples for sft, built so that answer length tells the judge as little as possible.

Three kinds of example come from the EFT rows (human-graded answers, score 0..5; docs/judge.md):
  pointwise    the rubric prompt with one answer -> "Score: N" + justification (what judge.mode sample/logprob read)
  comparative  two answers to one question -> "Better answer: N", every pair in both orders (sft.compare_pairs;
               evaluate's A/B judge and judge.mode compare read it)
  contrastive  a good answer made worse by something that is not quality but changes its length, graded lower
               than the original, alone and side by side with it (sft.contrastive; OffsetBias, RRM):
                 pad       an unrelated passage (from an answer to another question) appended    longer
                 loop      one of its sentences repeated, as a degenerate generation does         longer
                 offtopic  replaced by a good, longer answer to another question                  longer
                 cut       stopped part-way, mid-sentence                                         shorter

sft.balance decides which human rows and pairs are used:
  none    all EFT rows; pairs drawn at random (in the oasst2 files the better answer is the longer one in 78%
          of a question's pairs, and score 0 answers have a median of 38 characters against 927 for score 4)
  score   the same number of rows per score (the paper's balancing); pairs drawn from those rows
  length  within each quartile of answer length the same number of rows per score, so length predicts no
          score; half the pairs have the shorter answer better
"""

from __future__ import annotations

import random
import re

import polars as pl

from stages.core.errors import SrlmError
from stages.judging.prompting import COMPARE_PREFILL, compare_messages, judge_messages, judgment_text
from stages.judging.text import LOOP_SPAN, LOOP_TIMES

LENGTH_BINS = 4  # quartiles of answer length for sft.balance=length: finer bins leave too few rows per score
KINDS = ("pad", "loop", "offtopic", "cut")


def answer_chars(max_length: int) -> int:
    """TRL cuts an over-long example from the right, which would cut "Score: N" off an EFT target; so the
    judged answer is trimmed instead (about 3 characters a token; rubric and judgment take about 300 tokens)."""
    return max(200, (max_length - 300) * 3)


def balanced(eft: pl.DataFrame, mode: str, seed: int) -> pl.DataFrame:
    """The EFT rows sft.balance keeps (module docstring), in a seeded order."""
    if mode == "none" or eft.is_empty():
        return eft
    if mode == "score":
        per = eft.group_by("score").len()["len"].min()
        return pl.concat([g.sample(per, seed=seed) for _, g in eft.group_by("score", maintain_order=True)])
    scores = eft["score"].unique()
    binned = eft.with_columns(
        pl.col("response").str.len_chars().rank("ordinal").alias("_r"),
    ).with_columns(((pl.col("_r") - 1) * LENGTH_BINS // len(eft)).alias("_bin"))
    parts = []
    for _, cell in binned.group_by("_bin", maintain_order=True):
        counts = cell.group_by("score").len()
        # a score missing from this length range would make length predictive there: the bin gives nothing
        per = counts["len"].min() if counts["score"].n_unique() == scores.n_unique() else 0
        parts += [g.sample(per, seed=seed) for _, g in cell.group_by("score", maintain_order=True) if per]
    if not parts:
        raise SrlmError(
            "error: sft.balance=length keeps no EFT rows: no length quartile has an answer of every score "
            f"({len(eft)} rows); use sft.balance=none or score"
        )
    return pl.concat(parts).drop("_r", "_bin")


def human_pairs(eft: pl.DataFrame, n: int, length_balanced: bool, cut: int, seed: int) -> list[tuple[str, str, str]]:
    """Up to `n` (question, better, worse) pairs of answers to one question with different scores, each answer
    cut to `cut` characters. With `length_balanced`, as many pairs have the shorter answer (as shown) better as
    the longer: min(n/2, the scarcer side) of each; pairs shown at equal length are left out."""
    found = []
    for _, g in eft.group_by("instruction", maintain_order=True):
        answers = sorted(zip(g["score"], g["response"].str.slice(0, cut)), key=lambda a: -a[0])
        q = g["instruction"][0]
        found += [(q, a[1], b[1]) for i, a in enumerate(answers) for b in answers[i + 1 :] if a[0] != b[0]]
    rng = random.Random(seed)
    if not length_balanced:
        return rng.sample(found, min(n, len(found)))
    shorter = [p for p in found if len(p[1]) < len(p[2])]
    longer = [p for p in found if len(p[1]) > len(p[2])]
    per = min(n // 2, len(shorter), len(longer))
    return rng.sample(shorter, per) + rng.sample(longer, per)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def degrade(kind: str, answer: str, other: str, budget: int) -> str | None:
    """`answer` made worse in a way that changes its length (module docstring), within `budget` characters;
    None when this answer cannot be degraded that way. `other` is a good answer to another question."""
    if kind == "pad":
        room = budget - len(answer) - 2
        passage = other[: max(0, room)].rsplit(" ", 1)[0]
        return f"{answer}\n\n{passage}" if len(passage) >= 80 else None
    if kind == "loop":
        # the longest sentence of at least LOOP_SPAN words, repeated so that stages.judging.text.loops flags it
        long = [s for s in _sentences(answer) if len(s.split()) >= LOOP_SPAN]
        if not long:
            return None
        looped = answer + " " + " ".join([max(long, key=len)] * (LOOP_TIMES + 1))
        return looped if len(looped) <= budget else None
    if kind == "offtopic":
        return other if len(answer) < len(other) <= budget else None
    if kind == "cut":
        words = answer.split(" ")
        head = " ".join(words[: int(len(words) * 0.45)]).rstrip(".!?,;: \n")
        return head if len(answer) <= budget and len(head) >= 40 else None
    raise ValueError(f"unknown kind {kind!r}")


def degraded_score(kind: str, score: int) -> int:
    """The grade of a degraded answer on the additive rubric: an answer to another question meets no criterion;
    a loop is a broken answer; padding or a cut-off loses "well made" and "expert"."""
    return {"offtopic": 0, "loop": 1}.get(kind, max(0, score - 2))


def contrastive(eft: pl.DataFrame, n: int, budget: int, seed: int) -> list[tuple[str, str, str, int, int, str]]:
    """Up to `n` (question, original, degraded, original score, degraded score, kind), the kinds in turn, from
    EFT answers scored 4 or 5 that fit `budget` characters; the unrelated text is a good (3+) answer to another
    question."""
    if n == 0:
        return []
    rng = random.Random(seed)
    fits = eft.filter(pl.col("response").str.len_chars() <= budget)
    good = list(fits.filter(pl.col("score") >= 4).select("instruction", "response", "score").iter_rows())
    donors = list(fits.filter(pl.col("score") >= 3).select("instruction", "response").iter_rows())
    order = {kind: rng.sample(good, len(good)) for kind in KINDS}  # each kind walks its own seeded order
    out: list[tuple[str, str, str, int, int, str]] = []
    while len(out) < n and any(order.values()):
        for kind in KINDS:
            while order[kind] and len(out) < n:
                q, answer, score = order[kind].pop()
                others = [a for oq, a in rng.sample(donors, min(20, len(donors))) if oq != q]
                other = next((a for a in others if kind != "offtopic" or len(answer) < len(a)), "")
                worse = degrade(kind, answer, other, budget)
                if worse is not None:
                    out.append((q, answer, worse, score, degraded_score(kind, score), kind))
                    break
    return out


def pointwise(instruction: str, response: str, score: int) -> dict:
    return {
        "prompt": judge_messages(instruction, response),
        "completion": [{"role": "assistant", "content": judgment_text(score)}],
    }


def both_orders(instruction: str, better: str, worse: str) -> list[dict]:
    """One comparison shown twice, the better answer first and then second, so neither position wins more often."""
    return [
        {
            "prompt": compare_messages(instruction, first, second),
            "completion": [{"role": "assistant", "content": COMPARE_PREFILL + label}],
        }
        for first, second, label in ((better, worse, "1"), (worse, better, "2"))
    ]


def sft_examples(
    ift: pl.DataFrame,
    eft: pl.DataFrame,
    max_length: int,
    compare_pairs: int,
    balance: str,
    contrast: int,
    seed: int,
) -> tuple[list[dict], dict]:
    """Every sft example (IFT, pointwise, comparative, contrastive) as prompt/completion conversations, and
    how many of each kind."""
    ex = [
        {
            "prompt": [{"role": "user", "content": r["instruction"]}],
            "completion": [{"role": "assistant", "content": r["response"]}],
        }
        for r in ift.iter_rows(named=True)
    ]
    cut = answer_chars(max_length)
    rows = balanced(eft, balance, seed)
    ex += [pointwise(r["instruction"], r["response"][:cut], r["score"]) for r in rows.iter_rows(named=True)]
    # two answers share the compare prompt; score balance draws pairs from the balanced rows, length balance
    # from all rows (it needs every shorter-better pair there is)
    pairs = human_pairs(rows if balance == "score" else eft, compare_pairs, balance == "length", cut // 2, seed)
    for q, better, worse in pairs:
        ex += both_orders(q, better, worse)
    made = contrastive(eft, contrast, cut // 2, seed)
    for q, good, worse, _, score, _ in made:
        ex += [pointwise(q, worse, score), *both_orders(q, good, worse)]
    counts = {
        "ift": len(ift),
        "eft": len(rows),
        "compare": 2 * len(pairs),
        "compare_shorter_better": 2 * sum(len(b) < len(w) for _, b, w in pairs),
        "contrastive": 3 * len(made),
        "contrastive_kinds": {k: sum(m[5] == k for m in made) for k in KINDS},
    }
    return ex, counts
