"""The judge modes (`judge.mode`): each is one object with what the stages ask of it, and `mode_for` is the only
place the name is looked up.

sample:  K sampled grades per response; `Score: N` is parsed from each; a grade that does not parse is kept
         with score = null and its raw text, never 0.
logprob: one forward pass with the assistant turn opened at "Score: "; the score is the expectation of the
         next-token distribution over 0..5 (its probabilities are kept).
compare: every pair of a prompt's answers, in both orders, goes to the comparative judge (N(N-1) forward passes
         per prompt); an answer's score is 5 x its mean probability of being the better one.

Each mode gives: the engine work for grading a set of answers (`items`, and `candidates` and `prefill`, which
stages/engine/task.py's judge_task makes a Task of: judge@t runs it in resumable shards, evaluate in one pass;
plain data, so validate, which reads `decimals`, never imports the engine), per-answer grades from the
generations (`grades`, stages/judging/scoring.py), the resolution at which its grades can decide a pair
(`decimals`, validate's score_point), whether its grades keep the judge's text (`texts`, what meta_judge@t
reads), whether its work items are comparisons (`pairwise`: evaluate runs those at its comparison batch size)
and its wording on the dataset card (`card`).
The answers are a frame with id, prompt_id, prompt and response columns (the responses schema).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from stages.core import params as P
from stages.core import rows
from stages.core.errors import SrlmError
from stages.judging.prompting import COMPARE_CHOICES, COMPARE_PREFILL, compare_messages, judge_messages
from stages.judging.rubric import SCORES
from stages.judging.scoring import LOGPROB_PREFILL, compare_grades, logprob_grades, ordered_pairs, sample_grades

Items = list[tuple[str, list[dict]]]  # (work item id, chat messages)
Gens = dict[str, list[dict]]  # the engine's generations per work item id


def _rubric_items(answers: pl.DataFrame) -> Items:
    """The rubric prompt with each answer, keyed by the answer's id."""
    return [(r["id"], judge_messages(r["prompt"], r["response"])) for r in answers.iter_rows(named=True)]


@dataclass(frozen=True)
class Sample:
    name: str = "sample"
    decimals: int = 0  # sampled grades are whole points
    texts: bool = True
    pairwise: bool = False
    candidates: tuple[str, ...] = ()  # none: K sampled grades
    prefill: str = ""

    def items(self, answers: pl.DataFrame) -> Items:
        return _rubric_items(answers)

    def grades(self, answers: pl.DataFrame, gens: Gens) -> dict[str, list[dict]]:
        return {i: sample_grades([g["text"] for g in gens[i]]) for i in answers["id"]}

    def card(self, cfg: P.Judge) -> str:
        return f"{self.name} mode, k={cfg.k}"


@dataclass(frozen=True)
class Logprob:
    name: str = "logprob"
    decimals: int = 1  # expected grades are continuous: 3.1 and 3.3 make a pair that 3 and 3 would not
    texts: bool = False
    pairwise: bool = False
    candidates: tuple[str, ...] = tuple(str(s) for s in SCORES)
    prefill: str = LOGPROB_PREFILL

    def items(self, answers: pl.DataFrame) -> Items:
        return _rubric_items(answers)

    def grades(self, answers: pl.DataFrame, gens: Gens) -> dict[str, list[dict]]:
        return {i: logprob_grades(gens[i][0]["probs"]) for i in answers["id"]}

    def card(self, cfg: P.Judge) -> str:
        return f"{self.name} mode"


@dataclass(frozen=True)
class Compare:
    name: str = "compare"
    decimals: int = 1  # 5 x a mean probability: continuous, as logprob's
    texts: bool = False
    pairwise: bool = True  # its work items are comparisons of two answers, not one answer each
    candidates: tuple[str, ...] = COMPARE_CHOICES
    prefill: str = COMPARE_PREFILL

    def comparisons(self, answers: pl.DataFrame) -> dict[str, tuple[str, str]]:
        """{item id: (answer id shown first, answer id shown second)}: each two of a prompt's answers, both orders."""
        return {
            rows.content_id(a, b): (a, b)
            for _, g in answers.group_by("prompt_id", maintain_order=True)
            for a, b in ordered_pairs(g["id"].to_list())
        }

    def items(self, answers: pl.DataFrame) -> Items:
        text = dict(zip(answers["id"], answers["response"]))
        prompt = dict(zip(answers["id"], answers["prompt"]))
        return [(i, compare_messages(prompt[a], text[a], text[b])) for i, (a, b) in self.comparisons(answers).items()]

    def grades(self, answers: pl.DataFrame, gens: Gens) -> dict[str, list[dict]]:
        p_first = {pair: gens[item][0]["probs"][0] for item, pair in self.comparisons(answers).items()}
        out = {}
        for _, g in answers.group_by("prompt_id", maintain_order=True):
            out |= compare_grades(g["id"].to_list(), p_first)
        return out

    def card(self, cfg: P.Judge) -> str:
        return f"{self.name} mode"


Mode = Sample | Logprob | Compare
MODES: dict[str, Mode] = {m.name: m for m in (Sample(), Logprob(), Compare())}


def mode_for(name: str) -> Mode:
    """The judge mode called `name` (params.yaml judge.mode, or a judgments row's `mode`)."""
    if name not in MODES:
        raise SrlmError(f"error: unknown judge mode {name!r}; expected one of {', '.join(MODES)}")
    return MODES[name]
