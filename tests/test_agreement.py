"""Judge metrics on hand-made rankings whose answers are worked out by hand (docs/judge.md)."""

import pytest

from stages.measure.agreement import (
    ab_agreement,
    head_to_head,
    length_correlation,
    longer_wins_accuracy,
    longer_wins_ci95,
    rank_agreement,
)
from stages.measure.stats import ci95


def test_perfect_judge():
    m = rank_agreement([[(0, 5.0), (1, 3.0), (2, 1.0)], [(0, 4.0), (1, 2.0)]])
    assert m["pairs"] == 4 and m["pairwise_accuracy"] == 1.0 and m["pairwise_ties"] == 0.0
    assert m["spearman"] == 1.0 and m["kendall_tau"] == 1.0 and m["exact_match"] == 1.0
    assert m["five_best"] == 1.0 and m["fives"] == 1


def test_reversed_judge():
    m = rank_agreement([[(0, 1.0), (1, 3.0), (2, 5.0)]])
    assert m["pairwise_accuracy"] == 0.0 and m["spearman"] == -1.0 and m["kendall_tau"] == -1.0
    assert m["exact_match"] == 0.0 and m["five_best"] == 0.0


def test_constant_judge_is_chance_with_zero_correlation():
    m = rank_agreement([[(0, 3.0), (1, 3.0), (2, 3.0)]])
    assert m["pairwise_accuracy"] == 0.5 and m["pairwise_ties"] == 1.0
    assert m["spearman"] == 0.0 and m["kendall_tau"] == 0.0 and m["exact_match"] == 0.0
    assert m["five_best"] is None


def test_mixed_ranking_known_values():
    # human order a > b > c, judge 4, 5, 1: pairs (a,b) wrong, (a,c) right, (b,c) right
    m = rank_agreement([[(0, 4.0), (1, 5.0), (2, 1.0)]])
    assert m["pairwise_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["spearman"] == 0.5  # rank differences 1, -1, 0: 1 - 6*2/(3*8)
    assert m["kendall_tau"] == pytest.approx(1 / 3, abs=1e-4)  # 2 concordant, 1 discordant
    assert m["exact_match"] == 0.0 and m["five_best"] == 0.0  # its 5 went to the human's second


def test_missing_score_is_a_tie_and_leaves_correlations():
    m = rank_agreement([[(0, None), (1, 2.0)], [(0, 5.0), (1, 1.0)]])
    assert m["pairwise_accuracy"] == 0.75 and m["pairwise_ties"] == 0.5
    assert m["spearman"] == 1.0 and m["exact_match"] == 1.0  # only the fully scored prompt counts


def test_ab_position_biased_judge_is_exposed_by_the_swap():
    chosen_first = [True, False, True, False]
    always_first = [0.9] * 4
    m = ab_agreement(chosen_first, always_first, always_first)
    assert m["ab_accuracy_shuffled"] == 0.5 and m["ab_accuracy_swapped"] == 0.5 and m["ab_accuracy"] == 0.5
    assert m["ab_first_rate"] == 1.0 and m["ab_consistency"] == 0.0


def test_ab_good_judge_and_one_sided_shuffle():
    chosen_first = [True, False, True, False]
    shuffled = [0.9 if cf else 0.2 for cf in chosen_first]
    swapped = [0.3 if cf else 0.8 for cf in chosen_first]  # now the chosen answer is in the other slot
    m = ab_agreement(chosen_first, shuffled, swapped)
    assert m["ab_accuracy"] == 1.0 and m["ab_first_rate"] == 0.5 and m["ab_consistency"] == 1.0
    # a judge right only when the better answer comes first: 100% in one order would hide this
    m = ab_agreement([True, True], [0.9, 0.9], [0.9, 0.9])
    assert m["ab_accuracy_shuffled"] == 1.0 and m["ab_accuracy_swapped"] == 0.0 and m["ab_accuracy"] == 0.5
    with pytest.raises(ValueError):
        ab_agreement([True], [0.5], [])


def test_head_to_head_counts_inconsistent_orders_as_ties():
    assert head_to_head([0.8, 0.8], [0.2, 0.2]) == {
        "prompts": 2,
        "win": 1.0,
        "win_ci95": [0.3424, 1.0],  # Wilson 95%, 2 of 2
        "tie": 0.0,
        "loss": 0.0,
        "loss_ci95": [0.0, 0.6576],
        "win_minus_loss": 1.0,
    }
    m = head_to_head([0.8, 0.1, 0.7], [0.9, 0.9, 0.4])  # biased to slot 1, then a loss, then a win
    assert (m["win"], m["tie"], m["loss"]) == (round(1 / 3, 4), round(1 / 3, 4), round(1 / 3, 4))


def test_longer_wins_baseline():
    assert longer_wins_accuracy([(10, 5), (5, 10), (7, 7)]) == 0.5
    assert longer_wins_accuracy([]) is None
    assert longer_wins_ci95([(10, 5), (5, 10), (7, 7)]) == ci95(1.5, 3) and longer_wins_ci95([]) is None


def test_every_accuracy_has_its_interval():
    m = rank_agreement([[(0, 5.0), (1, 3.0), (2, 1.0)], [(0, 4.0), (1, 2.0)]])
    assert m["pairwise_accuracy_ci95"] == ci95(4, 4) == [0.5101, 1.0]
    ab = ab_agreement([True, True], [0.9, 0.9], [0.9, 0.9])  # right in one order only: half a success per pair
    assert ab["ab_accuracy"] == 0.5 and ab["ab_accuracy_ci95"] == ci95(1, 2)
    assert ci95(0, 0) is None


def test_length_slices_split_pairs_by_the_longer_answer_being_preferred():
    from stages.measure.agreement import pair_outcomes, sliced

    # one prompt, ranks 0 < 1 < 2: the best answer is the shortest, the worst the longest
    groups = [[(0, 5.0, 10), (1, 3.0, 50), (2, 1.0, 90)], [(0, 2.0, 80), (1, 4.0, 20)]]
    outcomes = pair_outcomes(groups)
    assert outcomes == [(1.0, False), (1.0, False), (1.0, False), (0.0, True)]
    s = sliced([o for o, _ in outcomes], [lg for _, lg in outcomes])
    assert s["all"]["acc"] == 0.75 and s["all"]["n"] == 4
    assert s["shorter_preferred"] == {"acc": 1.0, "n": 3, "ci95": [0.4385, 1.0]}  # Wilson, k = n = 3
    assert s["longer_preferred"]["acc"] == 0.0 and s["longer_preferred"]["n"] == 1
    # a length detector fails exactly the slice where humans preferred the shorter answer
    longer = [1.0 if lg else 0.0 for _, lg in outcomes]
    assert sliced(longer, [lg for _, lg in outcomes])["shorter_preferred"]["acc"] == 0.0
    assert sliced([], [])["all"] == {"acc": None, "n": 0, "ci95": [0.0, 1.0]}


def test_length_correlation_within_a_prompt_and_pooled():
    # p: the judge ranks by length (rho 1); q: by shortness (rho -1); r: one score for all (0);
    # s: two scored answers only, t: equal lengths -> neither counts within a prompt
    ids = ["p"] * 3 + ["q"] * 3 + ["r"] * 3 + ["s"] * 3 + ["t"] * 3
    scores = [1, 2, 3, 3, 2, 1, 4, 4, 4, 5, None, 1, 2, 3, 4]
    lengths = [10, 20, 30, 10, 20, 30, 10, 20, 30, 10, 20, 30, 50, 50, 50]
    m = length_correlation(ids, scores, lengths)
    assert m["within"] == 0.0 and m["prompts"] == 3 and m["answers"] == 14
    assert length_correlation(ids[:3], scores[:3], lengths[:3]) == {
        "within": 1.0,
        "prompts": 1,
        "pooled": 1.0,
        "answers": 3,
    }
    # pooled over all answers: longer answers score higher across prompts even where no prompt shows it
    m = length_correlation(["a", "a", "b", "b"], [1, 2, 4, 5], [10, 20, 100, 200])
    assert m["within"] is None and m["prompts"] == 0 and m["pooled"] == 1.0
    assert length_correlation([], [], [])["pooled"] is None
