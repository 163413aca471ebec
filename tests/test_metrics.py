"""The metrics schema (stages/measure/metrics.py): the files a real run wrote (a CPU run's, copied to
tests/fixtures/metrics, and a GPU run's, inside a results tarball) read through it with nothing dropped; old and
partial files read without an error, a missing section as None; and the one 'acc [lo, hi]' formatter."""

from __future__ import annotations

import json
import tarfile

import pytest

from stages.measure.metrics import (
    Accuracy,
    BaseMetrics,
    DpoMetrics,
    EvalMetrics,
    JudgeMetrics,
    PairsMetrics,
    PromptsMetrics,
    ResponsesMetrics,
    Section,
    ValidateMetrics,
    fmt_acc,
    load,
    parse,
)

from .conftest import ROOT

FIXTURES = ROOT / "tests/fixtures/metrics"
GPU_RUN = ROOT / "benchmarks/results/recipes_h100_2026-12-06b/baseline.results.tar.gz"
MODELS = {
    "base": BaseMetrics,
    "prompts": PromptsMetrics,
    "responses": ResponsesMetrics,
    "judge": JudgeMetrics,
    "eval": EvalMetrics,
    "pairs": PairsMetrics,
    "dpo": DpoMetrics,
    "validate": ValidateMetrics,
}


def dropped(model: Section, raw: dict, at: str = "") -> list[str]:
    """The paths of values the file has but the schema read as None (a writer and the schema that disagree:
    leniency would hide it from the readers)."""
    out = []
    for name in type(model).model_fields:
        value, written = getattr(model, name), raw.get(name)
        if written not in (None, {}) and value is None:
            out.append(at + name)
        elif isinstance(value, Section):
            out += dropped(value, written, f"{at}{name}.")
    return out


def real_files() -> list[tuple[str, dict]]:
    return [(p.relative_to(FIXTURES).as_posix(), json.loads(p.read_text())) for p in sorted(FIXTURES.rglob("*.json"))]


@pytest.mark.parametrize("name,raw", real_files(), ids=[n for n, _ in real_files()])
def test_a_cpu_runs_metrics_read_with_nothing_dropped(name, raw):
    model = MODELS[name.rsplit("/", 1)[-1].removesuffix(".json")]
    assert dropped(parse(raw, model), raw) == []


def test_a_cpu_runs_eval_json_reads_as_the_readers_use_it():
    ev = load(FIXTURES / "iter1/eval.json", EvalMetrics)
    assert ev.iteration == 1 and ev.model == "models/M1"
    shorter = ev.length_slice("pointwise", "shorter_preferred")
    assert (shorter.acc, shorter.ci95, shorter.n) == (0.0, (0.0, 0.5615), 3)
    assert ev.length_slice("longer_wins", "all").acc == 0.6667
    assert ev.human.pairwise == Accuracy(acc=0.2222, ci95=(0.0632, 0.5474), n=9)
    assert ev.ifeval.prompt_level_strict_acc.k == 0 and ev.ifeval.cap_hit.share == 0.5
    assert ev.constraints.prompt_level.acc == 0.25 and ev.constraints.passed == [True, False, False, False]
    assert list(ev.head2head.comparisons()) == ["vs_m0", "vs_prev"] and ev.vs_prev.changed == 1
    assert ev.human.model_extra["kendall_tau"] == -0.5  # a key the schema does not name is kept
    assert load(FIXTURES / "base/eval.json", EvalMetrics).human is None  # the base model has no judge
    assert load(FIXTURES / "iter0/eval.json", EvalMetrics).head2head is None  # `{}`: M0 has no previous model


def test_pairs_dpo_and_validate_read_as_the_readers_use_them():
    assert load(FIXTURES / "iter1/pairs.json", PairsMetrics).pairs == 9
    reward = load(FIXTURES / "iter1/dpo.json", DpoMetrics).reward
    assert (reward.acc, reward.k, reward.n, reward.ci95) == (1.0, 9, 9, (0.7008, 1.0))
    # a dpo.json from before dpo@t recorded its count: its own interval
    assert parse({"reward_accuracy": 0.8, "reward_accuracy_ci95": [0.7, 0.9]}, DpoMetrics).reward.ci95 == (0.7, 0.9)
    gate = load(FIXTURES / "iter1/validate.json", ValidateMetrics)
    assert gate.passed is True and gate.judge.status == "failed" and gate.judge.gate == "warn"
    assert gate.judge.shorter_preferred.ci95 == (0.0, 0.5615) and len(gate.judge.checks) == 3


def test_the_loops_files_read_as_the_card_status_and_diff_use_them():
    assert load(FIXTURES / "base.json", BaseMetrics).gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    prompts = load(FIXTURES / "iter1/prompts.json", PromptsMetrics)
    assert (prompts.kept, prompts.cut) == (9, 2)
    assert prompts.content == {"multi_request": 2, "numbered": 4, "scaffolding": 1}  # as written, in its order
    responses = load(FIXTURES / "iter1/responses.json", ResponsesMetrics)
    assert (responses.responses, responses.truncated, responses.loops) == (34, 5, 2)
    judge = load(FIXTURES / "iter1/judge.json", JudgeMetrics)
    assert repr(judge.parse_rate) == "1.0" and judge.score_hist["3"] == 32


def test_a_gpu_runs_metrics_read_with_nothing_dropped():
    with tarfile.open(GPU_RUN) as tar:
        found = {
            m.name.split("run/metrics/", 1)[1]: json.load(tar.extractfile(m))
            for m in tar.getmembers()
            if m.isfile() and "run/metrics/iter" in m.name and m.name.rsplit("/", 1)[1][:-5] in MODELS
        }
    assert {"iter0/eval.json", "iter3/eval.json", "iter3/dpo.json", "iter3/pairs.json", "iter3/validate.json"} <= set(
        found
    )
    for name, raw in found.items():
        model = parse(raw, MODELS[name.rsplit("/", 1)[1][:-5]])
        assert dropped(model, raw) == [], name
    ev = parse(found["iter1/eval.json"], EvalMetrics)
    assert fmt_acc(ev.length_slice("pointwise", "shorter_preferred")) == "0.521 [0.439, 0.603]"  # table.md's
    assert ev.length_slice("pointwise", "shorter_preferred").n == 140 and len(ev.ifeval.prompt_strict) == 541


def test_an_old_or_partial_eval_json_reads_without_an_error():
    old = {
        "iteration": [1],  # not an iteration: reads as none
        "human": None,  # ../shared/data absent
        "head2head": {},
        "ifeval": {"prompt_level_strict_acc": {"acc": 0.25, "n": 4}, "cap_hit": "?"},  # no interval; a bad share
        "skipped": ["human agreement: no data"],
        "constraints": [1, 2],  # another shape
    }
    ev = parse(old, EvalMetrics)
    assert ev.iteration is None and ev.human is None and ev.head2head is None and ev.constraints is None
    assert ev.vs_prev is None and ev.heldout is None
    assert ev.length_slice("pointwise", "shorter_preferred") is None
    assert ev.ifeval.cap_hit is None and ev.ifeval.prompt_level_strict_acc.ci95 is None
    assert fmt_acc(ev.ifeval.prompt_level_strict_acc) == "0.250"
    # only the pointwise judge, only its `all` slice (an eval.json from before the A/B judge and length slices)
    partial = parse({"human": {"length_slices": {"pointwise": {"all": {"acc": 0.61, "n": 30}}}}}, EvalMetrics)
    assert partial.length_slice("pointwise", "all").acc == 0.61
    assert partial.length_slice("pointwise", "shorter_preferred") is None
    assert partial.length_slice("ab", "all") is None and partial.human.pairwise.acc is None
    empty = parse({}, EvalMetrics)
    assert empty.human is None and empty.ifeval is None and empty.length_slice("pointwise", "all") is None


def test_numbers_keep_their_json_type():
    # a reader that prints a value as written (the card's parse rate, recipes' reward accuracy) prints the file's
    h = parse({"human": {"parse_rate": 1, "ab_first_rate": 1.0}}, EvalMetrics).human
    assert repr(h.parse_rate) == "1" and repr(h.ab_first_rate) == "1.0"


def test_load_of_a_missing_file_is_none(tmp_path):
    assert load(tmp_path / "eval.json", EvalMetrics) is None


def test_fmt_acc_missing_values():
    assert fmt_acc(None) == "-"
    assert fmt_acc({}) == "-"
    assert fmt_acc({"acc": None, "ci95": [0.1, 0.2]}) == "-"
    assert fmt_acc(Accuracy()) == "-"
    assert fmt_acc("0.5") == "-"  # not an accuracy block
    assert fmt_acc({"acc": 0.5}) == "0.500"  # no interval recorded
    assert fmt_acc({"acc": 0.5}, no_interval=" (no interval recorded)") == "0.500 (no interval recorded)"


def test_fmt_acc_digits_and_styles():
    block = {"acc": 0.5556, "ci95": [0.5131, 0.5977], "n": 529}
    assert fmt_acc(block) == "0.556 [0.513, 0.598]"
    assert fmt_acc(Accuracy.model_validate(block)) == "0.556 [0.513, 0.598]"
    assert fmt_acc(block, 2, sep="-") == "0.56 [0.51-0.60]"  # srlm status, srlm exp, the judge gate's line
    assert fmt_acc(block, ci_digits=2) == "0.556 [0.51, 0.60]"  # benchmarks/report
    assert fmt_acc(block, with_n=True) == "0.556 [0.513, 0.598] (n=529)"  # the card
    assert fmt_acc({"acc": 1, "ci95": [0, 1]}, 1) == "1.0 [0.0, 1.0]"
