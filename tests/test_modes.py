"""The judge modes and reward sources (stages/judging/modes.py, rewards.py) on hand-made answers and generations:
each mode's work items, its grades, its resolution, and a clear error for a name that is none of them."""

import polars as pl
import pytest

from stages.core.errors import SrlmError
from stages.engine.task import judge_task, run
from stages.judging.modes import MODES, mode_for
from stages.judging.prompting import COMPARE_PREFILL
from stages.judging.rewards import REWARDS, reward_for
from stages.judging.scoring import LOGPROB_PREFILL

from .conftest import knobs


def answers() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": ["a", "b", "c"],
            "prompt_id": ["p", "p", "q"],
            "prompt": ["question p", "question p", "question q"],
            "response": ["first answer", "second answer", "lone answer"],
        }
    )


def gen(text: str = "", probs: list[float] | None = None) -> dict:
    return {"text": text, "n_tokens": 0, "truncated": False, "probs": probs or []}


def test_the_names_are_the_params_choices():
    from typing import get_args

    from stages.core.params import Judge, Pairs

    assert tuple(MODES) == get_args(Judge.model_fields["mode"].annotation)
    assert tuple(REWARDS) == get_args(Pairs.model_fields["reward"].annotation)
    assert all(mode_for(name).name == name for name in MODES)


def test_an_unknown_name_is_a_one_line_error():
    with pytest.raises(SrlmError) as e:
        mode_for("pairwise")
    assert str(e.value) == "error: unknown judge mode 'pairwise'; expected one of sample, logprob, compare"
    with pytest.raises(SrlmError, match=r"^error: unknown pairs.reward 'human'; expected one of judge, checks, both$"):
        reward_for("human")


def test_sample_parses_each_grade_and_keeps_an_unparsed_one_as_null():
    mode, cfg = mode_for("sample"), knobs("judge", k=2)
    task = judge_task(mode, cfg)
    assert (task.n, task.candidates, task.prefill) == (2, (), "")
    items = mode.items(answers())
    assert [i for i, _ in items] == ["a", "b", "c"] and "first answer" in items[0][1][0]["content"]
    gens = {"a": [gen("Score: 4"), gen("no grade here")], "b": [gen("Score: 2"), gen("score = 3/5")], "c": [gen("")]}
    grades = mode.grades(answers(), gens)
    assert [g["score"] for g in grades["a"]] == [4.0, None] and grades["a"][1]["raw"] == "no grade here"
    assert [g["score"] for g in grades["b"]] == [2.0, 3.0] and [g["sample"] for g in grades["b"]] == [0, 1]
    assert mode.decimals == 0 and mode.texts and not mode.pairwise
    assert mode.card(cfg) == "sample mode, k=2"


def test_logprob_scores_the_expected_grade():
    mode, cfg = mode_for("logprob"), knobs("judge")
    task = judge_task(mode, cfg)
    assert (task.n, task.candidates, task.prefill) == (0, ("0", "1", "2", "3", "4", "5"), LOGPROB_PREFILL)
    gens = {i: [gen(probs=[0, 0, 0, 0.5, 0.5, 0])] for i in "abc"}
    grades = mode.grades(answers(), gens)
    assert grades["a"] == [{"sample": 0, "score": 3.5, "raw": "", "probs": [0, 0, 0, 0.5, 0.5, 0]}]
    assert mode.decimals == 1 and not mode.texts and not mode.pairwise
    assert mode.card(cfg) == "logprob mode"


def test_compare_judges_each_pair_of_a_prompts_answers_in_both_orders():
    mode, cfg = mode_for("compare"), knobs("judge")
    task = judge_task(mode, cfg)
    assert (task.n, task.candidates, task.prefill) == (0, ("1", "2"), COMPARE_PREFILL)
    pairs = mode.comparisons(answers())
    assert list(pairs.values()) == [("a", "b"), ("b", "a")]  # c is alone with its prompt: nothing to compare
    items = dict(mode.items(answers()))
    first = items[next(i for i, pair in pairs.items() if pair == ("a", "b"))][0]["content"]
    assert first.index("first answer") < first.index("second answer")
    # a shown first wins with 0.8, shown second with 1 - 0.4: a's score is 5 x 0.7
    p_first = {("a", "b"): 0.8, ("b", "a"): 0.4}
    gens = {i: [gen(probs=[p_first[pair], 1 - p_first[pair]])] for i, pair in pairs.items()}
    grades = mode.grades(answers(), gens)
    assert grades["a"][0]["score"] == pytest.approx(3.5) and grades["b"][0]["score"] == pytest.approx(1.5)
    assert grades["a"][0]["probs"] == [0.8, pytest.approx(0.6)] and grades["c"][0]["score"] is None
    assert mode.decimals == 1 and not mode.texts and mode.pairwise
    assert mode.card(cfg) == "compare mode"


class EchoBackend:
    """Records what it is asked; each text's probabilities are its position, its samples its index."""

    def __init__(self):
        self.asked = []

    def chat(self, messages, prefill=""):
        return messages[-1]["content"] + "|" + prefill

    def next_token_probs(self, texts, candidates, batch_size, desc=""):
        self.asked.append(("probs", texts, candidates, batch_size))
        return [[float(i)] * len(candidates) for i in range(len(texts))]

    def generate(self, texts, n, sampling, seed, desc=""):
        from stages.engine.backend import Completion

        self.asked.append(("generate", texts, n, seed))
        return [[Completion(f"{t} #{k}", 1, False) for k in range(n)] for t in texts]


def test_one_pass_run_asks_the_backend_once_in_item_order():
    be = EchoBackend()
    mode = mode_for("logprob")
    gens = run(be, judge_task(mode, knobs("judge", batch_size=3)), mode.items(answers()), 7, "t")
    ((kind, texts, candidates, batch),) = be.asked
    assert kind == "probs" and batch == 3 and candidates == ["0", "1", "2", "3", "4", "5"]
    assert all(t.endswith("|" + LOGPROB_PREFILL) for t in texts)
    assert [g[0]["probs"][0] for g in gens.values()] == [0.0, 1.0, 2.0] and list(gens) == ["a", "b", "c"]
    be = EchoBackend()
    gens = run(be, judge_task(mode_for("sample"), knobs("judge", k=2)), mode_for("sample").items(answers()), 7, "t")
    assert be.asked[0][2:] == (2, 7) and [g["text"].endswith("#1") for g in gens["c"]] == [False, True]


def test_reward_sources():
    judge, checks, both = reward_for("judge"), reward_for("checks"), reward_for("both")
    assert (judge.checks, judge.judge) == (False, True)
    assert (checks.checks, checks.judge) == (True, False)
    assert (both.checks, both.judge) == (True, True)
