"""evaluate's agreement with held-out human rankings (stages/measure/human.py): the A/B swap wiring and each judge
mode's grading of the held-out answers on a scripted judge, and loading the rankings."""

import json

import polars as pl
import pytest

from stages.core import params
from stages.measure import human

from .conftest import SHARED_DATA, knobs, write_params


class ScriptedJudge:
    """Prefers whichever answer contains GOOD, wherever it is shown; grades GOOD 5 and anything else 1."""

    model_name = "scripted"

    def __init__(self):
        self.compared = []

    def chat(self, messages, prefill=""):
        return messages[-1]["content"] + "\n[assistant]" + prefill

    def next_token_probs(self, texts, candidates, batch_size, desc=""):
        out = []
        for t in texts:
            if candidates == ["1", "2"]:
                first = t.split("<answer 1>")[1].split("</answer 1>")[0]
                self.compared.append(("GOOD" in first, t))
                out.append([0.9, 0.1] if "GOOD" in first else [0.2, 0.8])
            else:
                answer = t.split("<answer>")[1].split("</answer>")[0]
                out.append([0, 0, 0, 0, 0, 1.0] if "GOOD" in answer else [0, 1.0, 0, 0, 0, 0])
        return out


def groups_frame(n=6):
    return pl.DataFrame(
        [
            {"group": f"g{i}", "instruction": f"question {i}", "response": text, "rank": rank}
            for i in range(n)
            for text, rank in ((f"GOOD answer {i}", 0), (f"weak answer {i}", 1))
        ]
    )


def test_every_pair_is_judged_in_both_orders(tmp_path):
    p = params.load(write_params(tmp_path / "params.yaml", "judge: {mode: logprob}"))
    judge = ScriptedJudge()
    m = human.human_agreement(judge, groups_frame(), p, seed=3, desc="t")
    assert m["pairwise_accuracy"] == 1.0 and m["spearman"] == 1.0 and m["five_best"] == 1.0 and m["parse_rate"] == 1.0
    assert m["ab_accuracy"] == 1.0 and m["ab_first_rate"] == 0.5 and m["ab_consistency"] == 1.0
    assert len(judge.compared) == 12
    sl = m["length_slices"]
    assert sl["pointwise"]["all"]["acc"] == sl["ab"]["all"]["acc"] == 1.0 and sl["ab"]["all"]["n"] == 6
    assert sl["longer_wins"]["all"]["acc"] == 0.5  # equal lengths: the baseline ties, and no pair is in a slice
    assert sl["pointwise"]["shorter_preferred"]["n"] == sl["pointwise"]["longer_preferred"]["n"] == 0
    shuffled, swapped = judge.compared[:6], judge.compared[6:]
    # the swap shows each pair the other way round; the seeded shuffle put the better answer first in some but not all
    assert [not a for a, _ in shuffled] == [a for a, _ in swapped]
    assert 0 < sum(a for a, _ in shuffled) < 6
    again = ScriptedJudge()
    human.human_agreement(again, groups_frame(), p, seed=3, desc="t")
    assert again.compared == judge.compared  # the shuffle is fixed by the seed


def test_rank_pairs_file_becomes_ranked_groups(tmp_path):
    lines = [
        {"prompt": "q", "chosen": "a", "rejected": "b", "chosen_rank": 0, "rejected_rank": 1, "first_turn": True},
        {"prompt": "q", "chosen": "a", "rejected": "c", "chosen_rank": 0, "rejected_rank": 2, "first_turn": True},
        {"prompt": "q", "chosen": "b", "rejected": "c", "chosen_rank": 1, "rejected_rank": 2, "first_turn": True},
        {"prompt": "later", "chosen": "x", "rejected": "y", "chosen_rank": 0, "rejected_rank": 1, "first_turn": False},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    cfg = knobs("evaluate", human=params.Source(path=str(path), format="rank_pairs"))
    g = human.load_groups(cfg)
    assert sorted(zip(g["response"], g["rank"])) == [("a", 0), ("b", 1), ("c", 2)]  # multi-turn pair left out
    assert (
        human.load_groups(
            knobs(
                "evaluate",
                human=params.Source(path=str(tmp_path / "absent.jsonl"), format="rank_pairs", optional=True),
            )
        )
        is None
    )


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data not present")
def test_real_validation_pairs_load():
    g = human.load_groups(
        knobs(
            "evaluate",
            human=params.Source(
                path=str(SHARED_DATA / "oasst1_en_validation/oasst1_en_validation_rank_pairs.jsonl"),
                format="rank_pairs",
            ),
            max_prompts=None,
        )
    )
    assert g["group"].n_unique() == 186  # first-turn prompts with at least two ranked answers
    pairs = sum(1 for _, grp in g.group_by("group") for _ in human._ordered_pairs(grp))
    assert pairs == 529  # the 531 first-turn pairs of the file less 2 whose answers have identical text


def test_compare_grades_average_each_answers_win_probability_over_both_orders():
    from stages.judging.scoring import compare_grades, ordered_pairs

    assert ordered_pairs(["a", "b", "c"]) == [("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "b")]
    # a judge that always prefers answer 1 (p = 0.9): the position bias cancels, every answer gets 2.5
    biased = compare_grades(["a", "b"], {("a", "b"): 0.9, ("b", "a"): 0.9})
    assert biased["a"][0]["score"] == biased["b"][0]["score"] == pytest.approx(2.5)
    assert biased["a"][0]["probs"] == [0.9, pytest.approx(0.1)]
    sure = compare_grades(["a", "b"], {("a", "b"): 1.0, ("b", "a"): 0.0})
    assert (sure["a"][0]["score"], sure["b"][0]["score"]) == (5.0, 0.0)
    assert compare_grades(["alone"], {})["alone"][0]["score"] is None


def test_compare_mode_ranks_held_out_answers_by_round_robin(tmp_path):
    p = params.load(write_params(tmp_path / "params.yaml", "judge: {mode: compare}"))
    groups = pl.DataFrame(
        [
            {"group": f"g{i}", "instruction": f"question {i}", "response": text, "rank": rank}
            for i in range(4)
            for text, rank in ((f"GOOD answer {i}", 0), (f"fair answer {i}", 1), (f"weak answer {i}", 2))
        ]
    )
    judge = ScriptedJudge()
    m = human.human_agreement(judge, groups, p, seed=3, desc="t")
    # GOOD wins in both orders (0.9 first, 0.8 second): 5 x 0.85; fair vs weak is pure position bias: a tie
    assert m["mode"] == "compare" and m["score_hist"]["4"] == 4 and m["parse_rate"] == 1.0
    assert m["pairwise_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3, abs=1e-4) and m["pairwise_ties"] == 0.3333
    assert len(judge.compared) == 4 * 6 + 2 * 12  # the round robin, then the A/B test in both orders
