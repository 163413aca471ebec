import json
import math

import polars as pl
import pytest

from stages import pairs as pairs_stage
from stages.core import rows
from stages.core.errors import SrlmError
from stages.judge import score_summary
from stages.judging.scoring import response_scores
from stages.pairs import length_slope, pair_metrics, select_pairs

from .conftest import write_params


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


# ---------------------------------------------------------------------------------------------- degenerate last


def last(r, j, **kw):
    """select_pairs with skip_degenerate and degenerate_last on."""
    return select_pairs(r, j, 0.0, 1, skip_degenerate=True, degenerate_last=True, **kw)


def test_degenerate_last_rejects_a_cut_answer_scored_highest_instead_of_the_lowest_clean_one():
    r, j = make(
        {"cap": ("p", "C" * 900), "ok": ("p", "O" * 50), "bad": ("p", "B" * 20)},
        {"cap": [5.0], "ok": [4.0], "bad": [1.0]},
        truncated={"cap"},
    )
    row = select_pairs(r, j, 0.0, 1, skip_degenerate=True)[0].row(0, named=True)
    assert (row["chosen_id"], row["rejected_id"], row["reward"]) == ("ok", "bad", "judge")  # the knob off
    row = last(r, j)[0].row(0, named=True)
    assert (row["chosen_id"], row["rejected_id"], row["reward"]) == ("ok", "cap", "degenerate")
    assert (row["score_chosen"], row["score_rejected"]) == (4.0, 5.0)  # the judge's scores, kept as they are


def test_degenerate_last_rejects_a_looping_answer_before_a_cut_one_then_the_lowest_then_the_longer():
    # the cut answer scored lower and is longer: the looping one is still rejected first
    answers = {"cap": ("p", "C" * 900), "loop": ("p", "L" * 100), "ok": ("p", "O" * 50)}
    r, j = make(answers, {"cap": [1.0], "loop": [3.0], "ok": [4.0]}, truncated={"cap"}, looping={"loop"})
    assert last(r, j)[0]["rejected_id"].to_list() == ["loop"]
    # only cut answers: the lowest scored, then (equal scores) the longer, then the smaller id
    answers = {"c1": ("p", "C" * 90), "c2": ("p", "C" * 900), "c3": ("p", "D" * 900), "ok": ("p", "O")}
    r, j = make(answers, {"c1": [2.0], "c2": [3.0], "c3": [3.0], "ok": [1.0]}, truncated={"c1", "c2", "c3"})
    assert last(r, j)[0]["rejected_id"].to_list() == ["c1"]
    r, j = make(answers, {"c1": [3.0], "c2": [3.0], "c3": [3.0], "ok": [1.0]}, truncated={"c1", "c2", "c3"})
    assert last(r, j)[0]["rejected_id"].to_list() == ["c2"]


def test_degenerate_last_makes_a_pair_of_a_tie_only_where_an_answer_is_degenerate():
    answers = {"a": ("p", "A"), "b": ("p", "B"), "c": ("q", "C"), "d": ("q", "D")}
    r, j = make(answers, {x: [3.0] for x in "abcd"}, truncated={"b"})
    prefs, counts = last(r, j)  # p's answers tie, one of them cut; q's tie, both clean
    assert prefs.select("prompt_id", "chosen_id", "rejected_id", "reward").rows() == [("p", "a", "b", "degenerate")]
    assert counts == {"prompts": 2, "too_few_scored": 0, "degenerate": 0, "ties": 1}
    r, j = make({"a": ("p", "A"), "b": ("p", "B")}, {"a": [3.0], "b": [3.0]}, looping={"b"})
    prefs, counts = last(r, j)
    assert prefs.select("chosen_id", "rejected_id", "reward").rows() == [("a", "b", "degenerate")]
    prefs, counts = select_pairs(r, j, 0.0, 1, skip_degenerate=True)  # the knob off: a tie
    assert prefs.is_empty() and counts["ties"] == 1


# p: a cut answer scored highest; q: clean answers only; s: a tie with a looping answer; u: every answer degenerate
MIXED = {
    "p1": ("p", "P" * 900), "p2": ("p", "P" * 40), "p3": ("p", "P" * 30),
    "q1": ("q", "Q" * 10), "q2": ("q", "Q" * 20), "q3": ("q", "Q" * 30),
    "s1": ("s", "S" * 10), "s2": ("s", "S" * 700),
    "u1": ("u", "U" * 10), "u2": ("u", "U" * 20),
}  # fmt: skip
MIXED_SCORES = {
    "p1": [5],
    "p2": [4],
    "p3": [1],
    "q1": [2],
    "q2": [5],
    "q3": [1],
    "s1": [3],
    "s2": [3],
    "u1": [5],
    "u2": [1],
}
MIXED_FLAGS = {"truncated": {"p1", "u1"}, "looping": {"s2", "u2"}}


def test_degenerate_last_off_is_todays_pairs_and_on_changes_only_prompts_with_a_degenerate_answer():
    r, j = make(MIXED, MIXED_SCORES, **MIXED_FLAGS)
    cols = ("prompt_id", "chosen_id", "rejected_id", "reward")
    off, off_counts = select_pairs(r, j, 0.0, 1, skip_degenerate=True)
    assert off.equals(select_pairs(r, j, 0.0, 1, skip_degenerate=True, degenerate_last=False)[0])
    assert off.select(cols).rows() == [("p", "p2", "p3", "judge"), ("q", "q2", "q3", "judge")]
    assert off_counts == {"prompts": 4, "too_few_scored": 0, "degenerate": 1, "ties": 1}
    on, on_counts = last(r, j)
    assert on.select(cols).rows() == [("p", "p2", "p1", "degenerate"), ("q", "q2", "q3", "judge"), ("s", "s1", "s2", "degenerate")]  # fmt: skip
    assert on.filter(prefs_of("q")).equals(off.filter(prefs_of("q")))  # no degenerate answer: the same row
    assert on_counts == {"prompts": 4, "too_few_scored": 0, "degenerate": 1, "ties": 0}


def test_pair_metrics_count_the_pairs_a_degenerate_answer_decided():
    from stages.measure.judge_gate import judge_pairs
    from stages.measure.quality import preferences_frame

    r, j = make(MIXED, MIXED_SCORES, **MIXED_FLAGS)
    prefs, counts = last(r, j)
    m = pair_metrics(prefs, counts, r)
    assert (m["decided_by_judge"], m["decided_by_checks"], m["decided_by_degenerate"]) == (1, 0, 2)
    assert (m["rejected_truncated"], m["rejected_loops"]) == (1, 1)
    assert m["margin_mean"] == 4.0  # q's judge pair only: p's reversed (4 - 5) and s's tie carry no judge margin
    off = pair_metrics(*select_pairs(r, j, 0.0, 1, skip_degenerate=True))
    assert (off["decided_by_judge"], off["decided_by_degenerate"]) == (2, 0)
    assert off["margin_mean"] == 3.5
    only_degenerate = prefs.filter(pl.col("reward") == "degenerate")
    assert pair_metrics(only_degenerate, counts)["margin_mean"] is None
    # the judge gate and the margin check count the judge's pairs only (a degenerate pair may tie or be reversed)
    assert judge_pairs(prefs) == 1
    assert preferences_frame(prefs)["margin"].isna().tolist() == [True, False, True]
    # a pair with no reward recorded (before pairs.reward) is the judge's, in the counts as in the margin
    unrecorded = pair_metrics(prefs.with_columns(reward=pl.lit(None, pl.String)), counts)
    assert (unrecorded["decided_by_judge"], unrecorded["decided_by_degenerate"]) == (3, 0)
    assert unrecorded["margin_mean"] == pytest.approx((-1 + 4 + 0) / 3)


def test_degenerate_last_needs_skip_degenerate():
    r, j = make({"a": ("p", "A"), "b": ("p", "B")}, {"a": [5], "b": [1]})
    with pytest.raises(SrlmError, match="pairs.degenerate_last needs pairs.skip_degenerate"):
        select_pairs(r, j, 0.0, 1, degenerate_last=True)


def test_pairs_stage_reads_degenerate_last_and_writes_its_count(tmp_path):
    r, j = make(MIXED, MIXED_SCORES, **MIXED_FLAGS)
    rows.write(r, tmp_path / "r.parquet", "responses")
    rows.write(j, tmp_path / "j.parquet", "judgments")
    cfg = str(write_params(tmp_path / "params.yaml", "pairs: {degenerate_last: true}"))
    pairs_stage.main(
        ["--iteration", "1", "--params", cfg, "--responses", str(tmp_path / "r.parquet"), "--judgments"]
        + [str(tmp_path / "j.parquet"), "--out", str(tmp_path / "p.parquet"), "--metrics", str(tmp_path / "m.json")]
    )
    assert rows.read(tmp_path / "p.parquet", "preferences")["reward"].to_list() == [
        "degenerate",
        "judge",
        "degenerate",
    ]
    assert json.loads((tmp_path / "m.json").read_text())["decided_by_degenerate"] == 2
