"""What the model is asked: the judge rubric, the self-instruct, compare and meta-judge prompts, the EFT target
text, and how a self-instruct generation is read back (grades are read in stages/judging/scoring.py).

The same functions serve training (sft), generation (prompts, judge) and evaluation,
so a rubric change reaches all of them; dvc.yaml lists the template files as deps.
"""

from __future__ import annotations

import re
from importlib import resources

from stages.judging.rubric import SCORES


def _template(name: str) -> str:
    return resources.files("stages.judging").joinpath("templates").joinpath(name).read_text(encoding="utf-8")


JUDGE_TEMPLATE = _template("judge.txt")
SELF_INSTRUCT_TEMPLATE = _template("self_instruct.txt")
COMPARE_TEMPLATE = _template("compare.txt")
META_JUDGE_TEMPLATE = _template("meta_judge.txt")
# Comparative judging (evaluate, head2head) reads P("1") vs P("2") after this prefill: digits are
# single tokens in the tokenizers we use, and the space before them is its own token.
COMPARE_PREFILL = "Better answer: "
COMPARE_CHOICES = ("1", "2")
# meta_judge@t reads P("1") vs P("2") after this prefill, as the comparative judge does
META_PREFILL = "Better judgment: "

# Short justification per score. The EFT target is "Score: N\n<justification>": score first, so that
# logprob mode (the next token after "Score: ") reads the very distribution EFT trains. Measured on the GPU
# (BENCHMARKS.md "Judge"): pairwise accuracy 0.67 score-first vs 0.62 with the justification first.
JUSTIFICATIONS = {
    0: "The answer does not address the question, so it meets none of the criteria.",
    1: "The answer is related to the question but leaves most of it unanswered.",
    2: "The answer is relevant and covers part of the question, but it does not resolve the core of it.",
    3: "The answer is relevant, covers much of the question and helps with its core, but it is not complete or well organised.",
    4: "The answer is relevant, substantial and useful, and it is clear and well organised, though short of expert quality.",
    5: "The answer is relevant, thorough, useful, well organised and of expert quality, with no filler.",
}


def judge_messages(instruction: str, response: str) -> list[dict]:
    text = JUDGE_TEMPLATE.format(instruction=instruction.strip(), response=response.strip())
    return [{"role": "user", "content": text}]


def compare_messages(instruction: str, first: str, second: str) -> list[dict]:
    text = COMPARE_TEMPLATE.format(instruction=instruction.strip(), first=first.strip(), second=second.strip())
    return [{"role": "user", "content": text}]


def meta_judge_messages(instruction: str, response: str, first: str, second: str) -> list[dict]:
    """Which of two judgments grades the answer better; the task shown is the judge's own prompt, rubric included."""
    task = judge_messages(instruction, response)[0]["content"]
    text = META_JUDGE_TEMPLATE.format(task=task, first=first.strip(), second=second.strip())
    return [{"role": "user", "content": text}]


def judgment_text(score: int) -> str:
    if score not in JUSTIFICATIONS:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    return f"Score: {score}\n{JUSTIFICATIONS[score]}"


def self_instruct_messages(examples: list[str]) -> list[dict]:
    listed = "\n".join(f"{i}. {' '.join(e.split())}" for i, e in enumerate(examples, 1))
    return [{"role": "user", "content": SELF_INSTRUCT_TEMPLATE.format(examples=listed)}]


_LEAD_RE = re.compile(r"^\s*(?:\d+[.)]|[-*]|(?:new\s+)?(?:request|task|instruction)\s*\d*\s*:)\s*", re.IGNORECASE)


def parse_instruction(text: str) -> str:
    """First paragraph of a generation, without list markers, labels or wrapping quotes."""
    text = (text or "").strip()
    para = re.split(r"\n\s*\n", text, maxsplit=1)[0] if text else ""
    para = _LEAD_RE.sub("", para).strip()
    if len(para) >= 2 and para[0] == para[-1] and para[0] in "\"'`":
        para = para[1:-1].strip()
    return para
