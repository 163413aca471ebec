"""The metrics files as their readers see them (srlm status, the card, srlm exp, srlm diff, the plots, the judge
gate, benchmarks/report and recipes): a typed, read-side schema, the one formatter of an accuracy with its 95%
interval, and the rounding of a check's observed value.

The writers (base, prompts, responses, judge, pairs, dpo, evaluate, validate) build plain dicts; these models
read them back. Metrics files grow and old ones stay in git, so reading is lenient: unknown keys are kept, every
field may be missing, and a missing, empty or malformed section reads as None rather than failing a table.
Numbers keep their JSON type (`1` stays an int) so that a reader printing one as written prints what the file
says.

    ev = load("metrics/iter1/eval.json", EvalMetrics)      # None when the file is absent
    fmt_acc(ev.length_slice("pointwise", "shorter_preferred"))   # '0.000 [0.000, 0.562]', '-' when missing
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar, Union

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from stages.core import rows
from stages.measure.stats import ci95 as wilson_ci95

# int before float: pydantic's smart union keeps an int an int and a float a float (a plain float field would
# turn 1 into 1.0)
Number = Union[int, float]
Interval = tuple[Number, Number]  # a 95% interval, [low, high]


class Section(BaseModel):
    """A part of a metrics file: any key may be missing or be one this schema does not know."""

    model_config = ConfigDict(extra="allow", frozen=True)

    @field_validator("*", mode="wrap")
    @classmethod
    def _none_if_empty_or_invalid(cls, value, handler):
        # an old or partial file (`"human": null`, `"head2head": {}`, a section of another shape) reads as "not
        # measured", as the readers' `.get(...) or {}` chains did, never as an error that hides the whole table
        if value == {}:
            return None
        try:
            return handler(value)
        except ValidationError:
            return None


S = TypeVar("S", bound=Section)


def _by_name(section: Section, part: type[S]) -> dict[str, S]:
    """The parts of a section that are objects of one kind, named in the schema or not, sorted by name as the
    writers sort keys (rows.write_json)."""
    found = {}
    for name, value in section:  # the fields, then the unknown keys (left as read: plain JSON)
        if isinstance(value, dict) and value:
            value = part.model_validate(value)
        if isinstance(value, part):
            found[name] = value
    return dict(sorted(found.items()))


class Accuracy(Section):
    """A rate with its 95% Wilson interval: eval.json's blocks ({acc, n, ci95}, IFEval's also k), or a rate
    and its `<rate>_ci95` sibling put together (Human.pairwise, HeadToHead.win_rate, DpoMetrics.reward)."""

    acc: Number | None = None
    ci95: Interval | None = None
    n: int | None = None
    k: Number | None = None


class Share(Section):
    """How many answers, and what share of them ({count, share}): IFEval's cap_hit, loops, empty_answers."""

    count: int | None = None
    share: Number | None = None


class Slices(Section):
    """One judge's accuracy over all human pairs and over those whose preferred answer is the shorter or the
    longer one (stages/measure/agreement.py: sliced)."""

    all: Accuracy | None = None
    shorter_preferred: Accuracy | None = None
    longer_preferred: Accuracy | None = None


class LengthSlices(Section):
    """The same human pairs sliced for the pointwise judge, the A/B judge and the longer-answer-wins baseline."""

    pointwise: Slices | None = None
    ab: Slices | None = None
    longer_wins: Slices | None = None

    def judges(self) -> dict[str, Slices]:
        """{judge: slices} in the file's (sorted) key order, including judges this schema does not name."""
        return _by_name(self, Slices)


class Human(Section):
    """eval.json `human`: the judge's agreement with held-out human rankings."""

    pairs: int | None = None
    pairwise_accuracy: Number | None = None
    pairwise_accuracy_ci95: Interval | None = None
    longer_wins_accuracy: Number | None = None
    longer_wins_accuracy_ci95: Interval | None = None
    ab_pairs: int | None = None
    ab_accuracy: Number | None = None
    ab_accuracy_ci95: Interval | None = None
    ab_first_rate: Number | None = None
    parse_rate: Number | None = None
    responses: int | None = None
    score_hist: dict[str, int] | None = None
    length_slices: LengthSlices | None = None

    @property
    def pairwise(self) -> Accuracy:
        return Accuracy(acc=self.pairwise_accuracy, ci95=self.pairwise_accuracy_ci95, n=self.pairs)

    @property
    def longer_wins(self) -> Accuracy:
        return Accuracy(acc=self.longer_wins_accuracy, ci95=self.longer_wins_accuracy_ci95, n=self.pairs)

    @property
    def ab(self) -> Accuracy:
        return Accuracy(acc=self.ab_accuracy, ci95=self.ab_accuracy_ci95, n=self.ab_pairs)


class InstructionTally(Section):
    """eval.json `ifeval.by_instruction`, per IFEval instruction id: how many were scored and met."""

    n: int | None = None
    strict_k: int | None = None
    loose_k: int | None = None
    unscored: int | None = None


class IFEval(Section):
    """eval.json `ifeval`: IFEval's four accuracies and what the answers looked like."""

    prompt_level_strict_acc: Accuracy | None = None
    prompt_level_loose_acc: Accuracy | None = None
    inst_level_strict_acc: Accuracy | None = None
    inst_level_loose_acc: Accuracy | None = None
    prompt_strict: list[bool | None] | None = None  # per prompt, for paired differences
    prompts: int | None = None
    tokens_mean: Number | None = None
    cap_hit: Share | None = None
    loops: Share | None = None
    empty_answers: Share | None = None
    by_instruction: dict[str, InstructionTally] | None = None

    def by_group(self) -> dict[str, tuple[int, int]]:
        """{IFEval group (an instruction id's part before ':'): (instructions met strictly, instructions scored)}."""
        out: dict[str, tuple[int, int]] = {}
        for name, t in (self.by_instruction or {}).items():
            group = name.split(":")[0]
            met, n = out.get(group, (0, 0))
            out[group] = (met + (t.strict_k or 0), n + (t.n or 0))
        return dict(sorted(out.items()))


class Constraints(Section):
    """eval.json `constraints`: the held-out constraint set (stages/measure/heldout_checks.py)."""

    prompt_level: Accuracy | None = None
    constraint_level: Accuracy | None = None
    passed: list[bool | None] | None = None  # per prompt, for paired differences


class HeadToHead(Section):
    """One comparison of eval.json `head2head` (vs_prev, vs_m0): shares of the held-out prompts."""

    prompts: int | None = None
    win: Number | None = None
    win_ci95: Interval | None = None
    tie: Number | None = None
    loss: Number | None = None
    loss_ci95: Interval | None = None
    changed: int | None = None  # held-out answers unlike the other model's
    chars_mean: Number | None = None
    chars_mean_other: Number | None = None

    @property
    def win_rate(self) -> Accuracy:
        return Accuracy(acc=self.win, ci95=self.win_ci95, n=self.prompts)

    @property
    def loss_rate(self) -> Accuracy:
        return Accuracy(acc=self.loss, ci95=self.loss_ci95, n=self.prompts)


class HeadToHeads(Section):
    """eval.json `head2head`: `judge` names the model that judged, every other object is a comparison."""

    judge: str | None = None
    vs_m0: HeadToHead | None = None
    vs_prev: HeadToHead | None = None

    def comparisons(self) -> dict[str, HeadToHead]:
        """{name: comparison} in the file's (sorted) key order, including ones this schema does not name."""
        return _by_name(self, HeadToHead)


class Heldout(Section):
    """eval.json `heldout`: the answers to the held-out prompts."""

    prompts: int | None = None
    chars_mean: Number | None = None
    tokens_mean: Number | None = None


class EvalMetrics(Section):
    """metrics/<model>/eval.json (evaluate, evaluate_m0, evaluate_base)."""

    model: str | None = None
    iteration: int | str | None = None  # t, or "base" for the base model
    skipped: list[str] | None = None
    human: Human | None = None
    ifeval: IFEval | None = None
    constraints: Constraints | None = None
    head2head: HeadToHeads | None = None
    heldout: Heldout | None = None

    def length_slice(self, judge: str, part: str) -> Accuracy | None:
        """human.length_slices.<judge>.<part>: judge pointwise | ab | longer_wins, part all | shorter_preferred |
        longer_preferred; None when not measured."""
        slices = self.human.length_slices if self.human else None
        by_judge = getattr(slices, judge) if slices else None
        return getattr(by_judge, part) if by_judge else None

    @property
    def vs_prev(self) -> HeadToHead | None:
        return self.head2head.vs_prev if self.head2head else None


class BaseMetrics(Section):
    """metrics/base.json (base): what the base model was made from."""

    source: str | None = None
    gguf_file: str | None = None  # the GGUF it was de-quantised from, if any
    parameters: int | None = None


class PromptsMetrics(Section):
    """metrics/iter<t>/prompts.json (prompts@t)."""

    generated: int | None = None
    kept: int | None = None
    dropped: dict[str, int] | None = None  # {reason: prompts}
    content: dict[str, int] | None = None  # multi_request, scaffolding, numbered: the generations before any cut
    flawed_share: Number | None = None
    cut: int | None = None
    constrained: int | None = None
    mean_chars: Number | None = None
    prompts_cut_to_context: int | None = None


class ResponsesMetrics(Section):
    """metrics/iter<t>/responses.json (responses@t): M(t-1)'s answers (an anchor model's, if any, as `anchor`)."""

    prompts: int | None = None
    responses: int | None = None
    empty: int | None = None
    duplicates: int | None = None
    mean_tokens: Number | None = None
    max_tokens: int | None = None
    truncated: int | None = None
    truncated_share: Number | None = None
    loops: int | None = None
    loops_share: Number | None = None
    prompts_cut_to_context: int | None = None


class JudgeMetrics(Section):
    """metrics/iter<t>/judge.json (judge@t)."""

    mode: str | None = None
    responses: int | None = None
    grades: int | None = None
    parsed: int | None = None
    parse_rate: Number | None = None
    score_mean: Number | None = None
    score_std: Number | None = None
    score_hist: dict[str, int] | None = None  # whole points "0".."5"
    prompts_cut_to_context: int | None = None


class PairsMetrics(Section):
    """metrics/iter<t>/pairs.json (pairs@t)."""

    pairs: int | None = None
    prompts: int | None = None
    ties: int | None = None
    tie_rate: Number | None = None
    decided_by_checks: int | None = None
    decided_by_judge: int | None = None
    decided_by_degenerate: int | None = None
    chosen_longer_rate: Number | None = None
    chosen_truncated: int | None = None
    rejected_truncated: int | None = None
    chosen_loops: int | None = None
    rejected_loops: int | None = None


class DpoMetrics(Section):
    """metrics/iter<t>/dpo.json (dpo@t): the reward accuracy after training, on the pairs it trained on."""

    pairs: int | None = None
    reward_accuracy: Number | None = None
    reward_correct: int | None = None
    reward_accuracy_ci95: Interval | None = None  # written by dpo@t before it recorded reward_correct
    loss_first: Number | None = None
    loss_last: Number | None = None
    loss_pairs_after: Number | None = None

    @property
    def reward(self) -> Accuracy:
        """The reward accuracy with its 95% interval, from the count dpo@t records (a statistic is a measuring
        stage's, so a change to it never retrains); an older file's own interval where it has no count."""
        if self.reward_correct is not None and self.pairs is not None:
            interval = wilson_ci95(self.reward_correct, self.pairs)
        else:
            interval = self.reward_accuracy_ci95
        return Accuracy(acc=self.reward_accuracy, ci95=interval, n=self.pairs, k=self.reward_correct)


class JudgeGate(Section):
    """validate.json `judge`: the judge gate's verdict (stages/measure/judge_gate.py: judge_verdict)."""

    status: str | None = None  # passed | failed | skipped | off
    gate: str | None = None  # validate.judge_gate: fail | warn | off
    reason: str | None = None
    judge: str | None = None
    eval: str | None = None
    judge_pairs: int | None = None
    checks: list[dict] | None = None  # check records (stages/measure/gx.py check_record), plus ci95 and n
    failures: list[str] | None = None
    skipped: dict[str, str] | None = None
    accuracy: Number | None = None
    ci95: Interval | None = None
    human_pairs: int | None = None
    shorter_preferred: Accuracy | None = None
    answer1_rate: Number | None = None


class ValidateMetrics(Section):
    """metrics/iter<t>/validate.json (validate@t), or the verdict a failed gate left beside its report."""

    passed: bool | None = None
    overridden: bool | None = None
    evaluated: int | None = None
    failed: int | None = None
    failures: list[str] | None = None
    skipped: list[str] | None = None
    warnings: list[str] | None = None
    checks: list[dict] | None = None
    observed: dict[str, dict] | None = None  # {dataset: {check: observed value}}
    judge: JudgeGate | None = None


M = TypeVar("M", bound=Section)


def parse(obj: dict | None, model: type[M]) -> M | None:
    """A metrics file's JSON object, already read, as `model`; None for None."""
    return None if obj is None else model.model_validate(obj)


def load(path: str | Path, model: type[M], rev: str | None = None, repo: str | None = None) -> M | None:
    """A metrics file as `model`; None when the file is absent (rows.read_json: an error names a corrupt one)."""
    return parse(rows.read_json(path, rev, repo), model)


def rounded(v):
    """A check's observed value as validate keeps and prints it: a float to 4 places, anything else as it is."""
    return round(v, 4) if isinstance(v, float) else v


def fmt_acc(
    value: Accuracy | dict | None,
    digits: int = 3,
    *,
    ci_digits: int | None = None,
    sep: str = ", ",
    with_n: bool = False,
    no_interval: str = "",
) -> str:
    """'0.556 [0.513, 0.598]': an accuracy and its 95% interval; '-' when there is no accuracy.

    The tables differ in style and keep it: `digits` for the rate, `ci_digits` for the interval (default the
    same), `sep` between its ends ('-' in srlm status and srlm exp), `with_n` adds ' (n=9)', and `no_interval`
    is what follows a rate that has no interval recorded."""
    block = value if isinstance(value, Accuracy) else parse(value if isinstance(value, dict) else None, Accuracy)
    if block is None or block.acc is None:
        return "-"
    at = digits if ci_digits is None else ci_digits
    text = f"{block.acc:.{digits}f}"
    text += f" [{block.ci95[0]:.{at}f}{sep}{block.ci95[1]:.{at}f}]" if block.ci95 else no_interval
    return text + (f" (n={block.n})" if with_n else "")
