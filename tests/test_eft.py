"""EFT examples on hand-made rows: balancing, comparative pairs in both orders, length-contrastive examples."""

import polars as pl
import pytest

from stages.core.errors import SrlmError
from stages.judging import eft
from stages.judging.prompting import judgment_text
from stages.judging.text import loops

SENTENCE = "Water boils at one hundred degrees at sea level because of the air pressure."


def frame(rows):
    return pl.DataFrame(rows, orient="row", schema={"instruction": pl.String, "response": pl.String, "score": pl.Int8})


EFT = frame(
    [
        ("q1", "best", 5),
        ("q1", "mid", 3),
        ("q1", "worst", 1),
        ("q2", "tie-a", 2),
        ("q2", "tie-b", 2),
        ("q3", "alone", 4),
    ]
)


def shown(example):
    text = example["prompt"][0]["content"]
    first = text.split("<answer 1>\n")[1].split("\n</answer 1>")[0]
    second = text.split("<answer 2>\n")[1].split("\n</answer 2>")[0]
    return first, second, example["completion"][0]["content"]


def test_pairs_come_from_one_question_with_different_scores_in_both_orders():
    pairs = eft.human_pairs(EFT, 100, length_balanced=False, cut=1000, seed=0)
    # q1 gives 3 pairs; q2's equal scores and q3's lone answer give none
    assert sorted((b, w) for _, b, w in pairs) == [("best", "mid"), ("best", "worst"), ("mid", "worst")]
    got = [shown(e) for q, b, w in pairs for e in eft.both_orders(q, b, w)]
    rank = {"best": 0, "mid": 1, "worst": 2}
    for first, second, target in got:
        assert target == ("Better answer: 1" if rank[first] < rank[second] else "Better answer: 2")
    assert sorted(t for *_, t in got) == ["Better answer: 1"] * 3 + ["Better answer: 2"] * 3


def test_pairs_are_capped_seeded_and_cut():
    assert len(eft.human_pairs(EFT, 1, False, 1000, seed=0)) == 1
    assert eft.human_pairs(EFT, 2, False, 1000, 3) == eft.human_pairs(EFT, 2, False, 1000, 3)
    assert {len(b) for _, b, _ in eft.human_pairs(EFT, 3, False, cut=2, seed=0)} == {2}


def test_length_balanced_pairs_have_the_shorter_answer_better_half_the_time():
    rows = [("q", "s" * 10, 5), ("q", "m" * 50, 3), ("q", "l" * 90, 1), ("r", "x" * 10, 1), ("r", "y" * 90, 4)]
    pairs = eft.human_pairs(frame(rows), 100, length_balanced=True, cut=1000, seed=0)
    shorter_better = [len(b) < len(w) for _, b, w in pairs]
    # q: 3 pairs with the shorter better; r: 1 with the longer better -> one of each
    assert len(pairs) == 2 and sorted(shorter_better) == [False, True]
    # cut to 20 characters, 50 and 90 look alike: that pair is neither shorter- nor longer-better
    cut = eft.human_pairs(frame(rows), 100, length_balanced=True, cut=20, seed=0)
    assert all(len(b) != len(w) for _, b, w in cut)


def test_score_balance_keeps_equal_rows_per_score():
    rows = [(f"q{i}", f"a{i}", s) for i, s in enumerate([5, 5, 5, 4, 4, 1, 1, 1, 1])]
    kept = eft.balanced(frame(rows), "score", seed=0)
    assert kept.group_by("score").len()["len"].to_list() == [2, 2, 2]
    assert eft.balanced(frame(rows), "none", 0).equals(frame(rows))


def test_length_balance_makes_score_independent_of_length():
    # short answers are mostly 1, long ones mostly 5: length predicts the score
    rows = [(f"q{i}", "x" * (10 + i), 1) for i in range(12)] + [(f"p{i}", "y" * (200 + i), 5) for i in range(12)]
    rows += [(f"r{i}", "z" * (20 + 190 * (i % 2)), 5 if i % 2 == 0 else 1) for i in range(8)]
    kept = eft.balanced(frame(rows), "length", seed=0)
    # the quartiles holding one score only give nothing; the other two give 4 rows of each score
    assert len(kept) == 16
    lengths = kept["response"].str.len_chars()
    for half in (kept.filter(lengths < 100), kept.filter(lengths > 100)):
        assert sorted(half["score"].to_list()) == [1] * 4 + [5] * 4


def test_length_balance_that_keeps_nothing_is_a_clear_error():
    rows = [("q", "x" * 5, 1), ("q2", "x" * 6, 1), ("p", "y" * 500, 5), ("p2", "y" * 501, 5)]
    with pytest.raises(SrlmError, match="sft.balance=length keeps no EFT rows"):
        eft.balanced(frame(rows), "length", seed=0)


def test_degraded_answers_change_length_not_the_question():
    answer = f"{SENTENCE} Add salt if you like. " * 2
    other = "Paris is the capital of France and has been for centuries, with many museums and parks to visit."
    pad = eft.degrade("pad", answer, other, budget=1000)
    assert pad.startswith(answer) and "Paris" in pad and len(pad) > len(answer)
    loop = eft.degrade("loop", answer, other, budget=1000)
    assert loop.startswith(answer) and loops(loop) and not loops(answer)
    assert eft.degrade("offtopic", "short", other, budget=1000) == other
    cut = eft.degrade("cut", answer, other, budget=1000)
    assert answer.startswith(cut) and len(cut) < len(answer) and cut[-1] not in ".!?"
    # each kind knows when it cannot apply: no room in the budget, no long sentence, a shorter "other"
    assert eft.degrade("pad", answer, other, budget=len(answer) + 10) is None
    assert eft.degrade("loop", "Too short to loop.", other, budget=1000) is None
    assert eft.degrade("offtopic", other + " more", other, budget=1000) is None
    assert eft.degrade("cut", "tiny", other, budget=1000) is None
    assert [eft.degraded_score(k, 5) for k in eft.KINDS] == [3, 1, 0, 3]


def test_contrastive_examples_grade_the_degraded_answer_lower_alone_and_side_by_side():
    rows = [(f"q{i}", f"{SENTENCE} Answer number {i} explains it with care and detail.", 5) for i in range(12)]
    rows += [
        (f"d{i}", f"An unrelated but good answer about gardening, number {i}, with tips on soil." * 2, 3)
        for i in range(4)
    ]
    made = eft.contrastive(frame(rows), 8, budget=1500, seed=0)
    assert [m[5] for m in made] == list(eft.KINDS) * 2  # the kinds in turn
    for q, good, worse, score, worse_score, kind in made:
        assert worse_score < score and worse != good
        assert (len(worse) < len(good)) == (kind == "cut")
    assert eft.contrastive(frame(rows), 8, 1500, 0) == made  # seeded
    assert eft.contrastive(frame(rows), 0, 1500, 0) == []


def test_sft_examples_count_every_kind():
    ift = pl.DataFrame({"instruction": ["say hi"], "response": ["hi"]})
    with_judgment = EFT.with_columns(pl.col("score").map_elements(judgment_text, return_dtype=pl.String).alias("j"))
    ex, counts = eft.sft_examples(ift, with_judgment, 1024, compare_pairs=2, balance="none", contrast=0, seed=0)
    assert counts == {
        "ift": 1,
        "eft": 6,
        "compare": 4,
        "compare_shorter_better": counts["compare_shorter_better"],
        "contrastive": 0,
        "contrastive_kinds": {k: 0 for k in eft.KINDS},
    }
    assert len(ex) == 1 + 6 + 4
    assert ex[1]["completion"][0]["content"].startswith("Score: 5\n")
    assert ex[0]["prompt"] == [{"role": "user", "content": "say hi"}]
