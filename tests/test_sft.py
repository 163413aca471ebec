"""sft's training examples on hand-made EFT rows: the judgment target and the comparative pairs."""

import polars as pl

from stages import sft
from stages.prompting import judgment_text

EFT = pl.DataFrame(
    {
        "instruction": ["q1", "q1", "q1", "q2", "q2", "q3"],
        "response": ["best", "mid", "worst", "tie-a", "tie-b", "alone"],
        "score": [5, 3, 1, 2, 2, 4],
    }
).with_columns(pl.col("score").map_elements(judgment_text, return_dtype=pl.String).alias("judgment"))
IFT = pl.DataFrame({"instruction": ["say hi"], "response": ["hi"]})


def shown(example):
    text = example["prompt"][0]["content"]
    first = text.split("<answer 1>\n")[1].split("\n</answer 1>")[0]
    second = text.split("<answer 2>\n")[1].split("\n</answer 2>")[0]
    return first, second, example["completion"][0]["content"]


def test_compare_pairs_come_from_one_question_with_different_scores_in_both_orders():
    ex = sft.compare_examples(EFT, pairs=100, max_length=1024, seed=0)
    # q1 gives 3 pairs; q2's equal scores and q3's lone answer give none; each pair twice
    assert len(ex) == 6
    rank = {"best": 0, "mid": 1, "worst": 2}
    got = [shown(e) for e in ex]
    for first, second, target in got:
        assert target == ("Better answer: 1" if rank[first] < rank[second] else "Better answer: 2")
    assert sorted(t for *_, t in got) == ["Better answer: 1"] * 3 + ["Better answer: 2"] * 3
    assert {frozenset((a, b)) for a, b, _ in got} == {
        frozenset(p) for p in [("best", "mid"), ("best", "worst"), ("mid", "worst")]
    }


def test_compare_pairs_are_capped_and_seeded():
    assert len(sft.compare_examples(EFT, pairs=1, max_length=1024, seed=0)) == 2
    assert sft.compare_examples(EFT, 2, 1024, 3) == sft.compare_examples(EFT, 2, 1024, 3)


def test_sft_examples_add_compare_pairs_only_when_asked():
    plain = sft.sft_examples(IFT, EFT)
    assert len(plain) == 1 + len(EFT)
    assert plain[1]["completion"][0]["content"].startswith("Score: 5\n")
    assert len(sft.sft_examples(IFT, EFT, compare_pairs=2)) == len(plain) + 4
