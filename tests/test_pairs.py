import math

import polars as pl
import pytest

from stages.core import rows
from stages.judge import score_summary
from stages.judging.scoring import response_scores
from stages.pairs import length_slope, pair_metrics, select_pairs


def make(responses, grades, truncated=(), looping=()):
    """responses: {rid: (prompt_id, text)}, grades: {rid: [score or None, ...]}; the ids in `truncated` and
    `looping` are flagged so"""
    r = rows.frame(
        [
            {
                "id": rid,
                "prompt_id": pid,
                "prompt": f"prompt {pid}",
                "response": text,
                "sample": 0,
                "n_tokens": len(text),
                "truncated": rid in truncated,
                "loops": rid in looping,
                "model": "m",
                "seed": 0,
            }
            for rid, (pid, text) in responses.items()
        ],
        "responses",
    )
    j = rows.frame(
        [
            {
                "id": f"{rid}-{g}",
                "response_id": rid,
                "prompt_id": responses[rid][0],
                "sample": g,
                "score": s,
                "raw": "" if s is None else f"Score: {s}",
                "probs": [],
                "mode": "sample",
                "model": "m",
                "seed": 0,
            }
            for rid, ss in grades.items()
            for g, s in enumerate(ss)
        ],
        "judgments",
    )
    return r, j


def test_highest_vs_lowest_mean_and_missing_grades_skipped():
    r, j = make(
        {"a": ("p", "A"), "b": ("p", "BB"), "c": ("p", "CCC")}, {"a": [5, None, 4], "b": [1, 2, None], "c": [3, 3, 3]}
    )
    prefs, counts = select_pairs(r, j, 0.0, 1)
    assert len(prefs) == 1
    row = prefs.row(0, named=True)
    assert (row["chosen_id"], row["rejected_id"]) == ("a", "b")
    assert row["score_chosen"] == 4.5 and row["score_rejected"] == 1.5  # None is not 0
    assert row["prompt"] == [{"role": "user", "content": "prompt p"}]
    assert row["chosen"] == [{"role": "assistant", "content": "A"}]
    assert counts == {"prompts": 1, "too_few_scored": 0, "degenerate": 0, "ties": 0}


def test_ties_and_unscored_prompts_are_dropped():
    r, j = make(
        {"a": ("tie", "A"), "b": ("tie", "B"), "c": ("one", "C"), "d": ("one", "D"), "e": ("none", "E")},
        {"a": [3, 3], "b": [3, 3], "c": [4], "d": [None], "e": [None]},
    )
    prefs, counts = select_pairs(r, j, 0.0, 1)
    assert prefs.is_empty()
    assert counts == {"prompts": 3, "too_few_scored": 2, "degenerate": 0, "ties": 1}
    m = pair_metrics(prefs, counts)
    assert m["pairs"] == 0 and m["tie_rate"] == round(1 / 3, 4) and m["length_ratio"] is None


def test_min_margin_drops_close_pairs():
    r, j = make({"a": ("p", "A"), "b": ("p", "B")}, {"a": [4], "b": [3.5]})
    assert len(select_pairs(r, j, 0.0, 1)[0]) == 1
    prefs, counts = select_pairs(r, j, 0.5, 1)
    assert prefs.is_empty() and counts["ties"] == 1


def test_equal_best_scores_break_by_id_deterministically():
    r, j = make({"b": ("p", "B"), "a": ("p", "A"), "c": ("p", "C")}, {"a": [5], "b": [5], "c": [1]})
    prefs, _ = select_pairs(r, j, 0.0, 2)
    assert prefs["chosen_id"].to_list() == ["a"] and prefs["iteration"].to_list() == [2]


def test_pair_metrics_length_ratio():
    r, j = make({"a": ("p", "AAAA"), "b": ("p", "BB")}, {"a": [5], "b": [1]})
    m = pair_metrics(*select_pairs(r, j, 0.0, 1))
    assert m["length_ratio"] == 2.0 and m["margin_mean"] == 4.0


def test_score_summary_counts_parse_rate_and_histogram():
    _, j = make({"a": ("p", "A")}, {"a": [5, None, 4, 4.4]})
    s = score_summary(j)
    assert s["parse_rate"] == 0.75 and s["parsed"] == 3
    assert s["score_hist"] == {"0": 0, "1": 0, "2": 0, "3": 0, "4": 2, "5": 1}


def test_equal_scores_go_to_the_shorter_chosen_and_the_longer_rejected():
    r, j = make(
        {"a": ("p", "A" * 900), "b": ("p", "B" * 30), "c": ("p", "C" * 50), "d": ("p", "D" * 10)},
        {"a": [5], "b": [5], "c": [1], "d": [1]},
    )
    row = select_pairs(r, j, 0.0, 1)[0].row(0, named=True)
    assert (row["chosen_id"], row["rejected_id"]) == ("b", "c")


# a prompt whose answers' scores grow with their length: 0..5 points over 10..1000 characters
LADDER = {"s": ("p", "S" * 10), "m": ("p", "M" * 100), "l": ("p", "L" * 1000), "x": ("p", "X" * 400)}
LADDER_SCORES = {"s": [4.2], "m": [4.6], "l": [5.0], "x": [1.0]}


def test_length_control_chooses_the_shortest_near_the_top_and_the_longest_near_the_bottom():
    r, j = make(LADDER, LADDER_SCORES)
    assert select_pairs(r, j, 0.0, 1)[0]["chosen_id"].to_list() == ["l"]  # plain best vs worst
    # score range 4: a band of 0.1 x 4 = 0.4 reaches 4.6 (m), 0.25 x 4 = 1.0 reaches 4.2 (s)
    assert select_pairs(r, j, 0.0, 1, length_control=0.1)[0]["chosen_id"].to_list() == ["m"]
    row = select_pairs(r, j, 0.0, 1, length_control=0.25)[0].row(0, named=True)
    assert (row["chosen_id"], row["rejected_id"], row["score_chosen"]) == ("s", "x", 4.2)  # judge's score kept
    # at the bottom: of two low answers within the band the longer is rejected
    r2, j2 = make({**LADDER, "y": ("p", "Y" * 2000)}, {**LADDER_SCORES, "y": [1.3]})
    assert select_pairs(r2, j2, 0.0, 1, length_control=0.1)[0]["rejected_id"].to_list() == ["y"]
    assert select_pairs(r2, j2, 0.0, 1)[0]["rejected_id"].to_list() == ["x"]


def test_length_slope_is_the_pooled_within_prompt_trend():
    r, j = make(
        {"a": ("p", "A" * 9), "b": ("p", "B" * 99), "c": ("q", "C" * 99), "d": ("q", "D" * 999)},
        {"a": [1], "b": [3], "c": [2], "d": [4]},
    )
    scored = r.join(response_scores(j), left_on="id", right_on="response_id").with_columns(
        (pl.col("response").str.len_chars() + 1).log().alias("log_chars")
    )
    assert length_slope(scored) == pytest.approx(2 / math.log(10))  # 2 points per 10x in both prompts
    assert length_slope(scored.head(1)) == 0.0  # one answer: no trend


def test_length_residual_removes_the_iterations_length_trend_but_keeps_the_judges_order():
    # five prompts where the longer answer scores 1 point more per 10x; in "p" the short answer is 0.5 behind
    answers, scores = {}, {}
    for k in range(5):
        answers |= {f"{k}s": (f"q{k}", "s" * 10), f"{k}l": (f"q{k}", "l" * 100)}
        scores |= {f"{k}s": [2.0], f"{k}l": [3.0]}
    answers |= {"ps": ("p", "s" * 10), "pl": ("p", "l" * 1000), "pz": ("p", "z" * 100)}
    scores |= {"ps": [4.5], "pl": [5.0], "pz": [1.0]}
    r, j = make(answers, scores)
    plain = select_pairs(r, j, 0.0, 1)[0].filter(prefs_of("p"))
    assert plain["chosen_id"].to_list() == ["pl"]
    resid = select_pairs(r, j, 0.0, 1, length_residual=True)[0]
    assert resid.filter(prefs_of("p"))["chosen_id"].to_list() == ["ps"]
    assert resid.filter(prefs_of("p"))["score_chosen"].to_list() == [4.5]  # stored scores stay the judge's
    # every pair still has the judge's higher score chosen
    assert (resid["score_chosen"] > resid["score_rejected"]).all()
    # one two-answer prompt: the fitted trend explains its whole difference, so length alone decided: a tie
    r2, j2 = make({"a": ("p", "A" * 10), "b": ("p", "B" * 5000)}, {"a": [1.0], "b": [5.0]})
    assert select_pairs(r2, j2, 0.0, 1, length_residual=True)[1]["ties"] == 1


def prefs_of(pid):
    return pl.col("prompt_id") == pid


def test_truncated_or_looping_answers_are_never_chosen_and_a_loop_is_rejected_first():
    answers = {"cap": ("p", "C" * 900), "loop": ("p", "L" * 700), "ok": ("p", "O" * 50), "bad": ("p", "B" * 20)}
    scores = {"cap": [5.0], "loop": [3.0], "ok": [4.0], "bad": [1.0]}
    r, j = make(answers, scores, truncated={"cap"}, looping={"loop"})
    assert select_pairs(r, j, 0.0, 1)[0]["chosen_id"].to_list() == ["cap"]  # the plain rule takes the cut-off one
    row = select_pairs(r, j, 0.0, 1, skip_degenerate=True)[0].row(0, named=True)
    assert (row["chosen_id"], row["rejected_id"]) == ("ok", "loop")  # the loop, although "bad" scored lower
    # a loop scored above the chosen one cannot be its rejected: the judge's order must hold
    r2, j2 = make(answers, {**scores, "loop": [4.5]}, truncated={"cap"}, looping={"loop"})
    row = select_pairs(r2, j2, 0.0, 1, skip_degenerate=True)[0].row(0, named=True)
    assert (row["chosen_id"], row["rejected_id"]) == ("ok", "bad")
    # every answer degenerate: no pair, counted
    r3, j3 = make({"a": ("q", "A"), "b": ("q", "B")}, {"a": [5], "b": [1]}, truncated={"a"}, looping={"b"})
    prefs, counts = select_pairs(r3, j3, 0.0, 1, skip_degenerate=True)
    assert prefs.is_empty() and counts["degenerate"] == 1


def test_length_bias_metrics():
    r, j = make(
        {"a": ("p", "AAAA"), "b": ("p", "BB"), "c": ("q", "C"), "d": ("q", "DDDD")},
        {"a": [5], "b": [1], "c": [5], "d": [1]},
    )
    m = pair_metrics(*select_pairs(r, j, 0.0, 1))
    assert m["chosen_longer_rate"] == 0.5 and m["length_ratio_median"] == (2.0 + 0.25) / 2


def test_truncated_and_looping_chosen_and_rejected_are_counted():
    r, j = make(
        {"a": ("p", "AAAA"), "b": ("p", "BB"), "c": ("q", "C"), "d": ("q", "DDDD"), "e": ("s", "E"), "f": ("s", "F")},
        {"a": [5], "b": [1], "c": [5], "d": [1], "e": [4], "f": [2]},
    )
    flagged = {"a": (True, True), "b": (True, False), "d": (False, True), "e": (True, False)}  # (truncated, loops)
    r = r.with_columns(
        truncated=pl.col("id").replace_strict({k: v[0] for k, v in flagged.items()}, default=False),
        loops=pl.col("id").replace_strict({k: v[1] for k, v in flagged.items()}, default=False),
    )
    prefs, counts = select_pairs(r, j, 0.0, 1)  # pairs a>b, c>d, e>f
    m = pair_metrics(prefs, counts, r)
    assert (m["chosen_truncated"], m["rejected_truncated"]) == (2, 1)  # a, e / b
    assert (m["chosen_loops"], m["rejected_loops"]) == (1, 1)  # a / d
    assert "chosen_truncated" not in pair_metrics(prefs, counts)  # without the responses: no flags
