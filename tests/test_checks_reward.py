"""The checks reward in the loop, on hand-made rows: prompts@t attaches constraints, checks@t checks every
response, pairs@t decides by constraints met (pairs.reward), the gate checks the checks, evaluate's held-out set."""

import polars as pl
import pytest

from stages import checks as checks_stage
from stages.core import params as P
from stages.core import rows
from stages.core.errors import SrlmError
from stages.judging import checks
from stages.measure import heldout_checks
from stages.measure.quality import checks_frame, preferences_frame
from stages.pairs import pair_metrics, select_pairs
from stages.prompts import attach_constraints

from .conftest import ROOT
from .test_pairs import make

WORDS40 = checks.Constraint("length.words", n=40, relation=checks.AT_MOST)
NO_COMMAS = checks.Constraint("punctuation.no_commas")


def prompts_frame(constraints: dict[str, tuple]):
    return rows.frame(
        [
            {
                "id": pid,
                "prompt": f"prompt {pid}",
                "fewshot_ids": [],
                "constraints": [c.as_row() for c in cons],
                "iteration": 1,
                "model": "m",
                "seed": 0,
            }
            for pid, cons in constraints.items()
        ],
        "prompts",
    )


def test_attach_constraints_share_and_seed():
    cfg = P.Checks(share=0.5, per_prompt=2, kinds=[])
    texts = [f"Tell me about topic {i}." for i in range(200)]
    out, cons = attach_constraints(texts, cfg, seed=7)
    assert (out, cons) == attach_constraints(texts, cfg, seed=7)  # seeded
    with_c = [i for i, c in enumerate(cons) if c]
    assert 70 < len(with_c) < 130  # about half
    for i in with_c:
        assert len(cons[i]) == 2 and out[i] == checks.with_constraints(texts[i], cons[i]) != texts[i]
    assert all(out[i] == texts[i] for i in range(200) if not cons[i])
    none, cons0 = attach_constraints(texts, P.Checks(share=0.0, per_prompt=1, kinds=[]), seed=7)
    assert none == texts and not any(cons0)


def test_attach_constraints_kinds_and_unknown_kind():
    _, cons = attach_constraints(["Say hi."] * 20, P.Checks(share=1.0, per_prompt=1, kinds=["case.lower"]), seed=1)
    assert {c[0].id for c in cons} == {"case.lower"}
    with pytest.raises(SrlmError, match="checks.kinds: unknown constraint kinds \\['case.title'\\]"):
        attach_constraints(["x"], P.Checks(share=1.0, per_prompt=1, kinds=["case.title"]), seed=1)


def test_check_rows_verdicts_and_unconstrained():
    r, _ = make({"a": ("p", "short answer"), "b": ("p", "one, two"), "c": ("q", "free")}, {})
    df = rows.frame(checks_stage.check_rows(prompts_frame({"p": (WORDS40, NO_COMMAS), "q": ()}), r), "checks")
    got = {row["response_id"]: row for row in df.iter_rows(named=True)}
    assert got["a"]["verdicts"] == [True, True] and got["a"]["met"] == 2 and got["a"]["share_met"] == 1.0
    assert got["b"]["verdicts"] == [True, False] and got["b"]["share_met"] == 0.5
    assert got["c"]["total"] == 0 and got["c"]["share_met"] is None and got["c"]["verdicts"] == []
    m = checks_stage.check_metrics(df)
    assert m["constrained"] == 2 and m["all_met"] == 1 and m["pass_rate_by_kind"]["punctuation.no_commas"] == 0.5


def test_check_rows_refuses_a_response_of_another_prompt():
    r, _ = make({"a": ("zz", "x")}, {})
    with pytest.raises(SrlmError, match="prompt zz, which is not in the prompts file"):
        checks_stage.check_rows(prompts_frame({"p": ()}), r)


def checked(r, constraints):
    return rows.frame(checks_stage.check_rows(prompts_frame(constraints), r), "checks")


def test_both_constraints_decide_over_the_judge():
    # the judge prefers the long comma answer; the checks prefer the comma-free one
    r, j = make({"a": ("p", "yes it works"), "b": ("p", "well, it works, mostly")}, {"a": [1], "b": [5]})
    c = checked(r, {"p": (NO_COMMAS,)})
    for reward in ("both", "checks"):
        prefs, _ = select_pairs(r, j, 0.0, 1, checks=c, reward=reward)
        assert prefs["chosen_id"].to_list() == ["a"] and prefs["reward"].to_list() == ["checks"]
    prefs, _ = select_pairs(r, j, 0.0, 1, checks=c, reward="judge")
    assert prefs["chosen_id"].to_list() == ["b"] and prefs["reward"].to_list() == ["judge"]


def test_equal_constraints_met_judge_breaks_ties_under_both_only():
    r, j = make({"a": ("p", "no commas here"), "b": ("p", "none here either")}, {"a": [2], "b": [4]})
    c = checked(r, {"p": (NO_COMMAS,)})
    prefs, _ = select_pairs(r, j, 0.0, 1, checks=c, reward="both")
    assert prefs["chosen_id"].to_list() == ["b"] and prefs["reward"].to_list() == ["judge"]
    prefs, counts = select_pairs(r, j, 0.0, 1, checks=c, reward="checks")
    assert prefs.is_empty() and counts["ties"] == 1


def test_unconstrained_prompt_is_the_judges_under_both_and_no_pair_under_checks():
    r, j = make({"a": ("q", "A"), "b": ("q", "BB")}, {"a": [5], "b": [1]})
    c = checked(r, {"q": ()})
    assert select_pairs(r, j, 0.0, 1, checks=c, reward="both")[0]["reward"].to_list() == ["judge"]
    prefs, counts = select_pairs(r, j, 0.0, 1, checks=c, reward="checks")
    assert prefs.is_empty() and counts["unconstrained"] == 1


def test_checks_never_choose_a_degenerate_answer_and_reject_a_looping_one_first():
    # a: clean, meets; b: cut at the cap, meets (the judge's favourite); c: loops, fails; d: clean, fails
    texts = {"a": ("p", "fine ok"), "b": ("p", "cut off no"), "c": ("p", "loop, loop"), "d": ("p", "x, y, z")}
    r, j = make(texts, {"a": [2], "b": [5], "c": [4], "d": [1]}, truncated={"b"}, looping={"c"})
    prefs, _ = select_pairs(r, j, 0.0, 1, checks=checked(r, {"p": (NO_COMMAS,)}), reward="both", skip_degenerate=True)
    assert prefs.select("chosen_id", "rejected_id", "reward").row(0) == ("a", "c", "checks")


def test_degenerate_last_rejects_a_degenerate_answer_whatever_the_constraints_it_meets():
    # c: clean, meets; a: clean, fails; b: loops, meets (the judge's favourite)
    texts = {"c": ("p", "fine ok"), "a": ("p", "x, y"), "b": ("p", "loop loop")}
    r, j = make(texts, {"c": [2], "a": [1], "b": [5]}, looping={"b"})
    c = checked(r, {"p": (NO_COMMAS,)})
    cols = ("chosen_id", "rejected_id", "reward")
    on = {"skip_degenerate": True, "degenerate_last": True}
    prefs, _ = select_pairs(r, j, 0.0, 1, checks=c, reward="both", skip_degenerate=True)
    assert prefs.select(cols).rows() == [("c", "a", "checks")]  # the knob off: the one meeting fewer
    prefs, _ = select_pairs(r, j, 0.0, 1, checks=c, reward="both", **on)
    assert prefs.select(cols).rows() == [("c", "b", "degenerate")]
    # the cut answer meets more constraints than every clean one, the chosen included
    texts = {"d": ("p", "well, yes"), "a": ("p", "x, y"), "b": ("p", "cut off no")}
    r, j = make(texts, {"d": [4], "a": [1], "b": [5]}, truncated={"b"})
    c = checked(r, {"p": (NO_COMMAS,)})
    assert select_pairs(r, j, 0.0, 1, checks=c, reward="both", skip_degenerate=True)[0].select(cols).rows() == [
        ("d", "a", "judge")  # the knob off: the clean answers meet as many, so the judge decides
    ]
    for reward in ("both", "checks"):  # checks alone: no pair without the knob (a tie)
        prefs, _ = select_pairs(r, j, 0.0, 1, checks=c, reward=reward, **on)
        assert prefs.select(cols).rows() == [("d", "b", "degenerate")]
    # checks alone, a prompt without constraints: no pair without the knob, the degenerate answer's with it
    r, j = make({"e": ("q", "E"), "f": ("q", "FF")}, {"e": [2], "f": [1]}, looping={"f"})
    c = checked(r, {"q": ()})
    assert select_pairs(r, j, 0.0, 1, checks=c, reward="checks", skip_degenerate=True)[1]["unconstrained"] == 1
    prefs, counts = select_pairs(r, j, 0.0, 1, checks=c, reward="checks", **on)
    assert prefs.select(cols).rows() == [("e", "f", "degenerate")] and counts["unconstrained"] == 0


def test_pair_metrics_count_what_decided():
    r, j = make(
        {"a": ("p", "yes"), "b": ("p", "a, b"), "c": ("q", "A"), "d": ("q", "BB")},
        {"a": [1], "b": [5], "c": [5], "d": [1]},
    )
    c = checked(r, {"p": (NO_COMMAS,), "q": ()})
    prefs, counts = select_pairs(r, j, 0.0, 1, checks=c, reward="both")
    m = pair_metrics(prefs, counts, r)
    assert (m["decided_by_checks"], m["decided_by_judge"]) == (1, 1)


def test_reward_checks_needs_the_checks_file():
    r, j = make({"a": ("p", "A"), "b": ("p", "BB")}, {"a": [5], "b": [1]})
    with pytest.raises(SrlmError, match="pairs.reward is checks"):
        select_pairs(r, j, 0.0, 1, reward="checks")


def test_gate_frames():
    r, _ = make({"a": ("p", "yes"), "b": ("p", "a, b"), "c": ("q", "x")}, {})
    c = checked(r, {"p": (NO_COMMAS,), "q": ()})
    f = checks_frame(c, r)
    assert f["checked"].all() and f["known"].all() and f["share_met"].mean() == 0.5
    missing = checks_frame(c.filter(pl.col("response_id") != "b"), r)  # a response without its row
    assert not missing["checked"].all()
    bad = c.with_columns(pl.col("constraint_ids").list.eval(pl.lit("case.title")))
    assert not checks_frame(bad.filter(pl.col("total") > 0), r)["known"].all()
    # the judge's margin only on the pairs the judge decided
    rr, j = make({"a": ("p", "yes"), "b": ("p", "a, b")}, {"a": [1], "b": [5]})
    prefs, _ = select_pairs(rr, j, 0.0, 1, checks=checked(rr, {"p": (NO_COMMAS,)}), reward="both")
    assert preferences_frame(prefs)["margin"].isna().all()


def test_gate_suite_fails_all_fail_and_passes_a_spread(tmp_path):
    from stages.validate import run_gate

    p = P.load(ROOT / "params.yaml")
    r, _ = make({"a": ("p", "yes"), "b": ("p", "a, b")}, {})
    spread = checked(r, {"p": (NO_COMMAS,)})
    res = run_gate({"checks": spread, "responses": r}, p, embedder=None, kinds=("checks",))
    assert res["passed"], res["failures"]
    r2, _ = make({"a": ("p", "a, b"), "b": ("p", "c, d")}, {})
    res = run_gate({"checks": checked(r2, {"p": (NO_COMMAS,)}), "responses": r2}, p, embedder=None, kinds=("checks",))
    assert res["failures"] == ["checks.pass_rate_spread"]
    r3, _ = make({"a": ("q", "x")}, {})
    res = run_gate({"checks": checked(r3, {"q": ()}), "responses": r3}, p, embedder=None, kinds=("checks",))
    assert res["passed"] and "checks.pass_rate_spread" in res["skipped"]


def test_heldout_constraint_set(tmp_path):
    src = tmp_path / "q.jsonl"
    src.write_text('{"turns": ["Name a fruit."]}\n{"turns": ["Name a fruit."]}\n{"turns": ["Name a city."]}\n')
    cfg = P.HeldoutChecks(
        sources=[{"path": str(src), "format": "jsonl"}, {"path": str(tmp_path / "absent.jsonl"), "optional": True}],
        max_prompts=None,
        per_prompt=1,
        generation={"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 8, "batch_size": 1},
    )
    items = heldout_checks.load(cfg, seed=3)
    assert len(items) == 2 and items == heldout_checks.load(cfg, seed=3)  # distinct prompts, seeded
    assert all(t.startswith("Name a") and len(c) == 1 for t, c in items)
    answers = ["", "x"]
    m = heldout_checks.metrics(items, answers)
    assert m["prompt_level"]["n"] == 2 and m["passed"][0] is False  # a blank answer meets nothing
    absent = P.HeldoutChecks(**{**cfg.model_dump(), "sources": [{"path": str(tmp_path / "no"), "optional": True}]})
    assert heldout_checks.load(absent, seed=3) is None
