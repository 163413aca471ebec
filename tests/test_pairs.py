import polars as pl

from stages import rows
from stages.judge import score_summary
from stages.pairs import pair_metrics, select_pairs


def make(responses, grades):
    """responses: {rid: (prompt_id, text)}, grades: {rid: [score or None, ...]}"""
    r = rows.frame(
        [
            {
                "id": rid,
                "prompt_id": pid,
                "prompt": f"prompt {pid}",
                "response": text,
                "sample": 0,
                "n_tokens": len(text),
                "truncated": False,
                "loops": False,
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
                "grade": g,
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
    assert counts == {"prompts": 1, "too_few_scored": 0, "ties": 0}


def test_ties_and_unscored_prompts_are_dropped():
    r, j = make(
        {"a": ("tie", "A"), "b": ("tie", "B"), "c": ("one", "C"), "d": ("one", "D"), "e": ("none", "E")},
        {"a": [3, 3], "b": [3, 3], "c": [4], "d": [None], "e": [None]},
    )
    prefs, counts = select_pairs(r, j, 0.0, 1)
    assert prefs.is_empty()
    assert counts == {"prompts": 3, "too_few_scored": 2, "ties": 1}
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


def test_length_rules_are_off_by_default_and_prefer_shorter_among_equal():
    r, j = make(
        {"a": ("p", "A" * 900), "b": ("p", "B" * 30), "c": ("p", "C" * 50), "d": ("p", "D" * 10)},
        {"a": [5], "b": [5], "c": [1], "d": [1]},
    )
    row = select_pairs(r, j, 0.0, 1)[0].row(0, named=True)
    assert (row["chosen_id"], row["rejected_id"]) == ("a", "c")  # by id: length plays no part
    row = select_pairs(r, j, 0.0, 1, prefer_shorter=True)[0].row(0, named=True)
    assert (row["chosen_id"], row["rejected_id"]) == ("b", "c")  # shorter best, longer worst


def test_length_penalty_can_turn_a_pair_and_keeps_judge_scores():
    r, j = make(
        {"long": ("p", "L" * 3000), "short": ("p", "S" * 100), "bad": ("p", "X" * 100)},
        {"long": [5], "short": [4], "bad": [1]},
    )
    assert select_pairs(r, j, 0.0, 1)[0]["chosen_id"].to_list() == ["long"]
    prefs, _ = select_pairs(r, j, 0.0, 1, length_penalty=0.5)  # long: 5 - 1.5 = 3.5 < short: 4 - 0.05
    row = prefs.row(0, named=True)
    assert (row["chosen_id"], row["score_chosen"]) == ("short", 4.0)
    # the margin is checked on penalised scores: 3 - 0.5*4 = 1.0 vs 1 - 0.5*0.01 -> too close at min_margin 0.1
    r2, j2 = make({"long": ("p", "L" * 4000), "bad": ("p", "X" * 10)}, {"long": [3], "bad": [1]})
    assert select_pairs(r2, j2, 0.1, 1)[1]["ties"] == 0
    assert select_pairs(r2, j2, 0.1, 1, length_penalty=0.5)[1]["ties"] == 1


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
