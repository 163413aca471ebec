"""The recipes of docs/recipes.md on hand-made rows: temporal pairs, the meta-judge's selection, comparisons,
pairs, cap and gate, the DPO loss and reference switches, and the recipe x iteration table; the stages that
load a model run on the tiny random Llama (conftest.py)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import polars as pl
import pytest

from benchmarks import recipes
from stages import dpo, meta_judge, pairs, responses, validate
from stages.core import lineage, rows
from stages.core import params as P
from stages.core.errors import SrlmError
from stages.judging.prompting import META_PREFILL, judge_messages, meta_judge_messages
from stages.measure import gx
from stages.measure.stats import difference_interval

from .conftest import ROOT, knobs, write_params

M0, M1 = "models/M0", "models/M1"


def answers(spec: dict[str, tuple[str, str, str]], **flags) -> pl.DataFrame:
    """spec: {response id: (prompt id, text, model)}; flags: truncated / loops = ids."""
    return rows.frame(
        [
            {
                "id": rid,
                "prompt_id": pid,
                "prompt": f"prompt {pid}",
                "response": text,
                "sample": 0,
                "n_tokens": len(text),
                "truncated": rid in flags.get("truncated", ()),
                "loops": rid in flags.get("loops", ()),
                "model": model,
                "seed": 0,
            }
            for rid, (pid, text, model) in spec.items()
        ],
        "responses",
    )


def grades(spec: dict[str, list], responses: pl.DataFrame, texts: dict[str, list[str]] | None = None) -> pl.DataFrame:
    """spec: {response id: [score, ...]}: sample-mode judgments, raw text "Score: N" (or texts[rid][k])."""
    prompt = dict(zip(responses["id"], responses["prompt_id"]))
    return rows.frame(
        [
            {
                "id": f"{rid}-j{k}",
                "response_id": rid,
                "prompt_id": prompt[rid],
                "sample": k,
                "score": s,
                "raw": (texts or {}).get(rid, [None] * len(ss))[k] or ("" if s is None else f"Score: {s}\nBecause."),
                "probs": [],
                "mode": "sample",
                "model": "m",
                "seed": 0,
            }
            for rid, ss in spec.items()
            for k, s in enumerate(ss)
        ],
        "judgments",
    )


# ---------------------------------------------------------------------------------------------- temporal pairs


def test_temporal_rejects_the_anchors_answer_and_chooses_the_current_models():
    r = answers({"a": ("p", "A", M1), "b": ("p", "B", M1), "c": ("p", "C", M0), "d": ("p", "D", M0)})
    j = grades({"a": [4], "b": [1], "c": [3], "d": [2]}, r)
    plain, _ = pairs.select_pairs(r, j, 0.0, 2)
    assert (plain["chosen_id"][0], plain["rejected_id"][0]) == ("a", "b")  # best vs worst of all four
    temporal, counts = pairs.select_pairs(r, j, 0.0, 2, anchor=M0)
    assert (temporal["chosen_id"][0], temporal["rejected_id"][0]) == ("a", "d")  # best of M1 vs worst of M0
    assert counts == {"prompts": 1, "too_few_scored": 0, "degenerate": 0, "ties": 0}


def test_temporal_never_chooses_the_anchor_and_needs_both_sides():
    r = answers(
        {
            "a": ("p", "A", M1),
            "c": ("p", "C", M0),
            "d": ("p", "D", M0),  # p: the anchor's best beats M1's only answer, its worst does not
            "e": ("q", "E", M1),
            "f": ("q", "F", M1),  # q: no anchor answer
            "g": ("r", "G", M1),
            "h": ("r", "H", M0),  # r: the anchor's only answer scores as high as M1's
        }
    )
    j = grades({"a": [2], "c": [5], "d": [1], "e": [4], "f": [1], "g": [3], "h": [3]}, r)
    prefs, counts = pairs.select_pairs(r, j, 0.0, 2, anchor=M0)
    assert prefs.select("chosen_id", "rejected_id").rows() == [("a", "d")]
    assert counts == {"prompts": 3, "too_few_scored": 1, "degenerate": 0, "ties": 1}


def test_temporal_where_the_anchor_is_the_current_model_is_the_plain_rule():
    r = answers({"a": ("p", "A", M0), "b": ("p", "B", M0), "c": ("p", "C", M0)})
    j = grades({"a": [4], "b": [1], "c": [3]}, r)
    assert pairs.select_pairs(r, j, 0.0, 1, anchor=M0)[0].equals(pairs.select_pairs(r, j, 0.0, 1)[0])


def test_temporal_keeps_the_other_rules_within_each_side():
    r = answers({"a": ("p", "A", M1), "b": ("p", "BB", M1), "c": ("p", "C", M0)}, truncated={"a"})
    j = grades({"a": [5], "b": [4], "c": [1]}, r)
    prefs, _ = pairs.select_pairs(r, j, 0.0, 2, skip_degenerate=True, anchor=M0)
    assert (prefs["chosen_id"][0], prefs["rejected_id"][0]) == ("b", "c")  # the cut answer is never chosen


def test_temporal_with_length_control_where_the_anchor_ranks_above_every_current_answer():
    # the band from the prompt's score range would be negative (the anchor's worst above M1's best): a tie, not a crash
    r = answers({"a": ("p", "A", M1), "b": ("p", "BB", M1), "c": ("p", "C", M0), "d": ("p", "D", M0)})
    j = grades({"a": [2], "b": [1], "c": [4], "d": [3]}, r)
    prefs, counts = pairs.select_pairs(r, j, 0.0, 2, anchor=M0, length_control=0.25)
    assert prefs.is_empty() and counts["ties"] == 1


def test_temporal_with_degenerate_last_rejects_only_the_anchors_degenerate_answers():
    # M1's looping answer is on the chosen side: never chosen, never rejected; M0's cut one scored highest is rejected
    r = answers(
        {"a": ("p", "A", M1), "b": ("p", "BB", M1), "c": ("p", "C", M0), "d": ("p", "D", M0)},
        truncated={"d"},
        loops={"b"},
    )
    j = grades({"a": [3], "b": [1], "c": [2], "d": [5]}, r)
    cols = ("chosen_id", "rejected_id", "reward")
    prefs, _ = pairs.select_pairs(r, j, 0.0, 2, skip_degenerate=True, anchor=M0)
    assert prefs.select(cols).rows() == [("a", "c", "judge")]  # the knob off
    prefs, _ = pairs.select_pairs(r, j, 0.0, 2, skip_degenerate=True, degenerate_last=True, anchor=M0)
    assert prefs.select(cols).rows() == [("a", "d", "degenerate")]
    # only M1's answer degenerate: the anchor's clean answers are decided as without the knob
    r = r.with_columns(truncated=pl.lit(False))
    on = pairs.select_pairs(r, j, 0.0, 2, skip_degenerate=True, degenerate_last=True, anchor=M0)[0]
    assert on.equals(pairs.select_pairs(r, j, 0.0, 2, skip_degenerate=True, anchor=M0)[0])
    assert on.select(cols).rows() == [("a", "c", "judge")]


def test_pairs_stage_temporal_needs_the_anchor_and_counts_its_rejections(tmp_path):
    r = answers({"a": ("p", "A", M1), "b": ("p", "B", M1), "c": ("p", "C", M0)})
    rows.write(r, tmp_path / "r.parquet", "responses")
    rows.write(grades({"a": [4], "b": [2], "c": [1]}, r), tmp_path / "j.parquet", "judgments")
    cfg = str(write_params(tmp_path / "params.yaml", "pairs: {temporal: true}"))
    args = ["--iteration", "2", "--params", cfg, "--responses", str(tmp_path / "r.parquet")]
    args += ["--judgments", str(tmp_path / "j.parquet"), "--out", str(tmp_path / "p.parquet")]
    with pytest.raises(SystemExit, match="no --anchor"):
        pairs.main(args)
    pairs.main([*args, "--anchor", M0, "--metrics", str(tmp_path / "m.json")])
    assert rows.read(tmp_path / "p.parquet", "preferences")["rejected_id"].to_list() == ["c"]
    assert json.loads((tmp_path / "m.json").read_text())["rejected_from_anchor"] == 1


# ---------------------------------------------------------------------------------------------- meta-judge


def meta_inputs():
    r = answers(
        {
            "r1": ("p1", "One answer", M0),
            "r2": ("p1", "Another answer", M0),
            "r3": ("p2", "Third", M0),
            "r4": ("p2", "Fourth", M0),
            "r5": ("p3", "Fifth", M0),
        }
    )
    same = "Score: 4\nGood."
    j = grades(
        {"r1": [2, 4, 4], "r2": [3, 3, 3], "r3": [1, 5, None], "r4": [2, 3, 3], "r5": [3, 3, 3]},
        r,
        texts={"r1": [None, same, same]},
    )
    return r, j


def test_candidates_are_each_prompts_most_disputed_answer_with_distinct_judgments():
    r, j = meta_inputs()
    cands = meta_judge.candidates(r, j.select(*meta_judge.TEXTS))
    # p1: r1 (2, 4, 4 with the two 4s one text); r2 agrees with itself. p2: r3 (1 vs 5) over r4. p3: none.
    assert cands.select("response_id", "id", "score").rows() == [
        ("r1", "r1-j0", 2.0),
        ("r1", "r1-j1", 4.0),
        ("r3", "r3-j0", 1.0),
        ("r3", "r3-j1", 5.0),
    ]
    items = meta_judge.comparisons(cands)
    assert sorted(items.values()) == [("r1-j0", "r1-j1"), ("r1-j1", "r1-j0"), ("r3-j0", "r3-j1"), ("r3-j1", "r3-j0")]


def test_judge_pairs_rank_judgments_by_both_orders_and_keep_the_margin_and_cap():
    r, j = meta_inputs()
    cands = meta_judge.candidates(r, j.select(*meta_judge.TEXTS))
    # r1: j0 wins shown first and second (meta 5 x 0.8 = 4 vs 1); r3: a coin flip (position bias only)
    p_first = {("r1-j0", "r1-j1"): 0.9, ("r1-j1", "r1-j0"): 0.3, ("r3-j0", "r3-j1"): 0.6, ("r3-j1", "r3-j0"): 0.6}
    cfg = knobs("meta_judge", enabled=True, min_margin=0.5, max_share=0.15)
    df, counts = meta_judge.judge_pairs(cands, p_first, 17, cfg, 1, M0, 7)
    assert counts == {"candidates": 2, "below_margin": 1, "formed": 1, "cap": 3, "pairs": 1}
    row = df.row(0, named=True)
    assert (row["chosen_id"], row["rejected_id"]) == ("r1-j0", "r1-j1")
    assert row["score_chosen"] == pytest.approx(4.0) and row["score_rejected"] == pytest.approx(1.0)
    assert (row["graded_chosen"], row["graded_rejected"], row["judgments"]) == (2.0, 4.0, 2)
    assert row["prompt"] == judge_messages("prompt p1", "One answer")  # the judge's own prompt
    assert row["chosen"] == [{"role": "assistant", "content": "Score: 2\nBecause."}]
    # the cap: 0.15 of the DPO data; with 5 answer pairs not even one judge pair fits
    assert meta_judge.judge_pairs(cands, p_first, 5, cfg, 1, M0, 7)[1]["pairs"] == 0
    m = meta_judge.meta_metrics(df, counts, p_first, 17)
    assert m["position_agreement"] == 0.5 and m["first_rate"] == 0.75 and m["share"] == round(1 / 18, 4)
    assert m["generous_rate"] == 0.0 and m["comparisons"] == 4


def test_cap_keeps_the_share_at_or_below_max_share():
    for n in range(0, 300, 7):
        for share in (0.0, 0.1, 0.15, 0.5):
            k = meta_judge.cap(n, share)
            assert k / (k + n or 1) <= share + 1e-12 and (k + 1) / (k + 1 + n) > share
    assert meta_judge.cap(17, 0.15) == 3  # 0.15 x 17 / 0.85 is 3.0000000000000004 or 2.9999999999999996


def test_the_largest_margins_are_kept_under_the_cap():
    cands = pl.DataFrame(
        {
            "response_id": ["a", "a", "b", "b"],
            "prompt_id": ["pa", "pa", "pb", "pb"],
            "prompt": ["q"] * 4,
            "response": ["x"] * 4,
            "id": ["a0", "a1", "b0", "b1"],
            "text": ["Score: 1", "Score: 3", "Score: 2", "Score: 5"],
            "score": [1.0, 3.0, 2.0, 5.0],
        }
    )
    p_first = {("a0", "a1"): 0.7, ("a1", "a0"): 0.3, ("b0", "b1"): 0.1, ("b1", "b0"): 0.9}
    df, counts = meta_judge.judge_pairs(cands, p_first, 6, knobs("meta_judge", max_share=0.15), 3, M0, 0)
    assert counts["cap"] == 1 and df["chosen_id"].to_list() == ["b1"]  # margin 4 over 2


def test_meta_judge_prompt_shows_the_judge_prompt_and_both_judgments():
    text = meta_judge_messages("Why?", "Because.", "Score: 1", "Score: 5")[0]["content"]
    assert judge_messages("Why?", "Because.")[0]["content"] in text
    assert text.index("Score: 1") < text.index("Score: 5") and "Better judgment: N" in text
    assert META_PREFILL == "Better judgment: "


def test_meta_judge_needs_two_judgments_per_answer(tmp_path):
    path = write_params(tmp_path / "p.yaml", "meta_judge: {enabled: true}\njudge: {k: 1}")
    with pytest.raises(SrlmError, match="meta_judge.enabled needs judge.k >= 2"):
        P.load(path)


def test_meta_judge_stage_off_writes_an_empty_dataset_without_a_model(tmp_path):
    cfg = str(write_params(tmp_path / "params.yaml", ""))
    meta_judge.main(
        ["--iteration", "1", "--model", str(tmp_path / "no-model"), "--responses", "x", "--judgments", "x",
         "--preferences", "x", "--out", str(tmp_path / "mj.parquet"), "--metrics", str(tmp_path / "m.json"),
         "--params", cfg]
    )  # fmt: skip
    assert rows.read(tmp_path / "mj.parquet", "meta_judgments").is_empty()
    assert json.loads((tmp_path / "m.json").read_text()) == {"enabled": False}
    assert (tmp_path / "mj.lineage.json").exists()


def test_meta_judge_stage_on_the_tiny_model(tmp_path, tiny_model):
    r, j = meta_inputs()
    prefs = rows.frame(
        [
            {"id": f"x{i}", "prompt_id": f"p{i}", "prompt": [{"role": "user", "content": "q"}],
             "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}],
             "chosen_id": f"c{i}", "rejected_id": f"r{i}", "score_chosen": 4.0, "score_rejected": 1.0, "iteration": 1}
            for i in range(40)
        ],
        "preferences",
    )  # fmt: skip
    rows.write(r, tmp_path / "r.parquet", "responses")
    rows.write(j, tmp_path / "j.parquet", "judgments")
    rows.write(prefs, tmp_path / "p.parquet", "preferences")
    # judge@t's own sampled judgments: sample mode (the default is logprob)
    cfg = str(
        write_params(tmp_path / "params.yaml", "meta_judge: {enabled: true, min_margin: 0.0}\njudge: {mode: sample}")
    )
    args = ["--iteration", "1", "--model", str(tiny_model), "--responses", str(tmp_path / "r.parquet"),
            "--judgments", str(tmp_path / "j.parquet"), "--preferences", str(tmp_path / "p.parquet"),
            "--out", str(tmp_path / "mj.parquet"), "--metrics", str(tmp_path / "m.json"), "--params", cfg]  # fmt: skip
    meta_judge.main(args)
    df = rows.read(tmp_path / "mj.parquet", "meta_judgments")
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["source"] == "judgments" and m["candidates"] == 2 and m["comparisons"] == 4 and m["cap"] == 7
    assert len(df) == m["pairs"] == m["formed"] and set(df["response_id"]) <= {"r1", "r3"}
    assert (df["score_chosen"] > df["score_rejected"]).all() and (df["model"] == str(tiny_model)).all()
    meta_judge.main([*args[: args.index("--out") + 1], str(tmp_path / "again.parquet"), "--params", cfg])
    assert (tmp_path / "again.parquet").read_bytes() == (tmp_path / "mj.parquet").read_bytes()  # deterministic


def test_meta_judge_samples_its_own_judgments_outside_sample_mode(tmp_path, tiny_model):
    r, j = meta_inputs()
    rows.write(r, tmp_path / "r.parquet", "responses")
    rows.write(j.with_columns(mode=pl.lit("logprob"), raw=pl.lit("")), tmp_path / "j.parquet", "judgments")
    rows.write(rows.empty("preferences"), tmp_path / "p.parquet", "preferences")
    cfg = str(
        write_params(
            tmp_path / "params.yaml", "meta_judge: {enabled: true}\njudge: {mode: logprob, k: 2, max_new_tokens: 6}"
        )
    )
    meta_judge.main(
        ["--iteration", "1", "--model", str(tiny_model), "--responses", str(tmp_path / "r.parquet"),
         "--judgments", str(tmp_path / "j.parquet"), "--preferences", str(tmp_path / "p.parquet"),
         "--out", str(tmp_path / "mj.parquet"), "--metrics", str(tmp_path / "m.json"), "--params", cfg]
    )  # fmt: skip
    m = json.loads((tmp_path / "m.json").read_text())
    # a random model writes no "Score: N": its sampled judgments parse to nothing, so nothing to compare
    assert m["source"] == "sampled" and m["candidates"] == 0 and m["pairs"] == 0 and m["cap"] == 0


# ---------------------------------------------------------------------------------------------- gate


def meta_rows(n: int = 6, **change) -> pl.DataFrame:
    recs = [
        {
            "id": f"m{i}",
            "response_id": f"r{i}",
            "prompt_id": f"p{i}",
            "prompt": judge_messages(f"Question {i}?", f"Answer {i}."),
            "chosen": [{"role": "assistant", "content": f"Score: {i % 3 + 1}\nIt helps."}],
            "rejected": [{"role": "assistant", "content": f"Score: {(i + 1) % 3 + 2}\nIt is thorough and expert."}],
            "chosen_id": f"c{i}",
            "rejected_id": f"x{i}",
            "score_chosen": 4.0,
            "score_rejected": 1.0,
            "graded_chosen": float(i % 3 + 1),
            "graded_rejected": float((i + 1) % 3 + 2),
            "judgments": 3,
            "iteration": 1,
            "model": M0,
            "seed": 0,
        }
        for i in range(n)
    ]
    return rows.frame([{**r, **{k: f(r) for k, f in change.items()}} for r in recs], "meta_judgments")


def answer_pairs(n: int) -> pl.DataFrame:
    return rows.frame(
        [
            {"id": f"a{i}", "prompt_id": f"p{i}", "prompt": [{"role": "user", "content": "q"}],
             "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}],
             "chosen_id": f"c{i}", "rejected_id": f"r{i}", "score_chosen": 4.0, "score_rejected": 1.0, "iteration": 1}
            for i in range(n)
        ],
        "preferences",
    )  # fmt: skip


FAILING = {
    "min_judge_pairs": (lambda: meta_rows(0), 40),
    "judgments_differ": (lambda: meta_rows(rejected=lambda r: r["chosen"]), 40),
    "meta_margin": (lambda: meta_rows(score_rejected=lambda r: 4.0), 40),
    "graded_range": (lambda: meta_rows(graded_chosen=lambda r: 7.0), 40),
    "one_per_answer": (lambda: meta_rows(response_id=lambda r: "r0"), 40),
    "share_of_dpo_data": (lambda: meta_rows(), 20),
    "generous_rate": (lambda: meta_rows(30, graded_chosen=lambda r: 5.0), 200),
    "chosen_longer_rate": (lambda: meta_rows(30, chosen=lambda r: [{"role": "assistant", "content": "x" * 99}]), 200),
}


@pytest.fixture(scope="module")
def gate_params():
    return P.load(ROOT / "params.yaml").model_copy(update={"meta_judge": knobs("meta_judge", enabled=True)})


def gate(df: pl.DataFrame, n_answers: int, p) -> set[str]:
    result = validate.run_gate(
        {"meta_judgments": df, "preferences": answer_pairs(n_answers)}, p, None, kinds=("meta_judgments",)
    )
    return {c["check"] for c in result["checks"] if not c["passed"]}


def test_meta_judgments_suite_passes_good_pairs(gate_params):
    assert gate(meta_rows(), 40, gate_params) == set()
    assert set(FAILING) == {e["meta"]["check"] for e in gx.load_suite("meta_judgments")["expectations"]}


@pytest.mark.parametrize("check", list(FAILING))
def test_meta_judgments_suite_fails_each_check_for_its_own_reason(gate_params, check):
    make, n_answers = FAILING[check]
    assert gate(make(), n_answers, gate_params) == {check}


def test_validate_gates_meta_judgments_only_when_enabled():
    p = P.load(ROOT / "params.yaml")
    assert validate.gated(p) == rows.KINDS
    on = p.model_copy(update={"meta_judge": knobs("meta_judge", enabled=True)})
    assert validate.gated(on) == rows.DATASETS
    temporal = p.model_copy(update={"pairs": knobs("pairs", temporal=True)})
    assert validate.suite_parameters(temporal)["responses_n"] == 2 * p.responses.n


# ---------------------------------------------------------------------------------------------- responses


def test_responses_with_temporal_sample_the_anchor_too(tmp_path, tiny_model):
    anchor = tmp_path / "anchor"
    shutil.copytree(tiny_model, anchor)
    prompts = rows.frame(
        [{"id": rows.content_id(q), "prompt": q, "fewshot_ids": [], "iteration": 2, "model": "m", "seed": 0}
         for q in ("Name a colour.", "Say hello.")],
        "prompts",
    )  # fmt: skip
    rows.write(prompts, tmp_path / "prompts.parquet", "prompts")
    tiny = "responses: {n: 2, max_new_tokens: 6, batch_size: 4, temperature: 1.0}\n"
    common = ["--iteration", "2", "--model", str(tiny_model), "--prompts", str(tmp_path / "prompts.parquet")]
    for temporal, anchor_dir, out in ((False, anchor, "off"), (True, anchor, "on"), (True, tiny_model, "same")):
        cfg = str(write_params(tmp_path / f"{out}.yaml", tiny + f"pairs: {{temporal: {str(temporal).lower()}}}"))
        responses.main([*common, "--anchor", str(anchor_dir), "--out", str(tmp_path / f"{out}.parquet"),
                        "--metrics", str(tmp_path / f"{out}.json"), "--params", cfg])  # fmt: skip
    off, on, same = (rows.read(tmp_path / f"{x}.parquet", "responses") for x in ("off", "on", "same"))
    assert set(off["model"]) == set(same["model"]) == {str(tiny_model)}
    assert set(on["model"]) == {str(tiny_model), str(anchor)}
    assert on.filter(pl.col("model") == str(tiny_model)).equals(off)  # the current model's rows are unchanged
    m = json.loads((tmp_path / "on.json").read_text())
    assert m["responses"] == len(off) and m["anchor"]["responses"] == len(on) - len(off)
    assert "anchor" not in json.loads((tmp_path / "same.json").read_text())


# ---------------------------------------------------------------------------------------------- dpo


def test_loss_options_map_the_knobs_to_trl():
    from trl import DPOConfig

    assert dpo.loss_options(knobs("dpo")) == {"loss_type": ["sigmoid"]}
    both = dpo.loss_options(knobs("dpo", nll_weight=0.5, ld_alpha=0.3))
    assert both == {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.5], "ld_alpha": 0.3}
    c = DPOConfig(output_dir="/tmp/unused", report_to="none", use_cpu=True, bf16=False, **both)
    assert (c.loss_type, c.loss_weights, c.ld_alpha) == (["sigmoid", "sft"], [1.0, 0.5], 0.3)


def test_reference_model_is_m0_only_when_asked_and_not_the_policy(tmp_path, tiny_model):
    assert dpo.reference_model(knobs("dpo"), tiny_model, tiny_model) is None
    m0 = knobs("dpo", reference="m0")
    assert dpo.reference_model(m0, tiny_model, tiny_model) is None  # iteration 1: M(t-1) is M0
    other = tmp_path / "M0"
    shutil.copytree(tiny_model, other)
    assert dpo.reference_model(m0, tiny_model, other) == other
    with pytest.raises(SrlmError, match="no --reference"):
        dpo.reference_model(m0, tiny_model, None)


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory, tiny_model):
    """dpo.main on the tiny model, one optimiser step over 4 answer pairs (+ 2 judge pairs): its metrics."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = tmp_path_factory.mktemp("dpo")
    rows.write(answer_pairs(4), d / "p.parquet", "preferences")
    rows.write(meta_rows(2), d / "mj.parquet", "meta_judgments")
    (d / "v.json").write_text(
        json.dumps({"passed": True, "overridden": False, "preferences_md5": lineage.md5(d / "p.parquet")})
    )
    m0 = d / "M0"  # a fixed reference other than the policy's start: the tiny model with its weights perturbed
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    torch.manual_seed(1)
    with torch.no_grad():
        for w in model.parameters():
            w.add_(0.05 * torch.randn_like(w))
    model.save_pretrained(m0)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(m0)

    def train(name: str, judge: bool = False, **dpo_knobs) -> dict:
        knobs_ = {"max_steps": 1, "batch_size": 6, "grad_accum": 1, "max_length": 512, "lora": True, "lora_r": 4,
                  "lora_alpha": 8, **dpo_knobs}  # fmt: skip
        cfg = str(write_params(d / f"{name}.yaml", json.dumps({"dpo": knobs_})))
        dpo.main(
            ["--iteration", "2", "--model", str(tiny_model), "--preferences", str(d / "p.parquet"),
             "--validation", str(d / "v.json"), "--out", str(d / name), "--metrics", str(d / f"{name}.json"),
             "--reference", str(m0), "--params", cfg, *(["--judge-pairs", str(d / "mj.parquet")] if judge else [])]
        )  # fmt: skip
        return json.loads((d / f"{name}.json").read_text())

    return train, m0


def test_dpo_plain_starts_at_ln2(dpo_run, tiny_model):
    train, _ = dpo_run
    m = train("plain")
    # the reference is the policy's start (the LoRA adapter switched off), so every log-ratio is 0 at step 1
    assert m["loss_first"] == pytest.approx(math.log(2), abs=1e-3) and m["reference"] == str(tiny_model)
    assert (m["pairs"], m["answer_pairs"], m["judge_pairs"]) == (4, 4, 0)


def test_dpo_nll_adds_the_chosen_answers_nll(dpo_run):
    train, _ = dpo_run
    m = train("nll", nll_weight=1.0)
    assert m["loss_first"] > math.log(2) + 5  # a random model's token NLL is near ln(vocabulary size) = 10.8


def test_dpo_reference_m0_is_the_other_model(dpo_run):
    train, m0 = dpo_run
    m = train("ref", reference="m0")
    assert m["reference"] == str(m0) and abs(m["loss_first"] - math.log(2)) > 1e-3


def test_dpo_trains_judge_pairs_beside_the_answer_pairs(dpo_run):
    train, _ = dpo_run
    m = train("judge", judge=True)
    assert (m["pairs"], m["answer_pairs"], m["judge_pairs"]) == (6, 4, 2)


# ---------------------------------------------------------------------------------------------- the table


def test_difference_interval_is_newcombes():
    lo, hi = difference_interval(56, 70, 48, 80)  # Newcombe (1998), example (a), method 10
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)


def eval_json(strict_k: int, tokens: float, n: int = 541) -> dict:
    acc = lambda k, m: {"acc": round(k / m, 4), "k": k, "n": m, "ci95": [0.0, 1.0]}  # noqa: E731
    return {
        "ifeval": {
            "prompt_level_strict_acc": acc(strict_k, n),
            "prompt_level_loose_acc": acc(strict_k, n),
            "inst_level_strict_acc": acc(strict_k, n),
            "inst_level_loose_acc": acc(strict_k, n),
            "tokens_mean": tokens,
        },
        "human": {"length_slices": {"pointwise": {"all": acc(300, 529), "shorter_preferred": acc(50, 140)}}},
        "heldout": {"chars_mean": 900.0},
    }


def folders(tmp_path, runs: dict[str, list[tuple[int, float]]]) -> dict:
    out = {}
    for name, models in runs.items():
        for t, (k, tokens) in enumerate(models):
            rows.write_json(eval_json(k, tokens), tmp_path / name / f"metrics/iter{t}/eval.json")
        out[name] = tmp_path / name
    return out


def test_table_and_verdict_from_run_folders(tmp_path):
    m0 = (100, 200.0)
    runs = folders(
        tmp_path,
        {
            "baseline": [m0, (100, 210.0), (95, 230.0), (90, 260.0)],
            "meta-judge": [m0, (110, 205.0), (120, 210.0), (140, 220.0)],  # +0.092 at M3, length +10%
            "nll": [m0, (150, 300.0), (160, 320.0), (170, 400.0)],  # far better, but twice as long
            "temporal": [m0, (100, 200.0), (99, 200.0), (95, 200.0)],  # within the interval
        },
    )
    table = recipes.collect(list(runs), tmp_path, runs)
    text = recipes.markdown(table)
    assert text.count("\n") == 2 + 16 and "| meta-judge | M3 | 0.259 [0.000, 1.000] | " in text
    assert (
        "| meta-judge | M3 | 0.259 [0.000, 1.000] | +0.074 [+0.024, +0.123] |" in text
    )  # vs its M0 (no per-prompt verdicts: independent)
    assert "| +0.092 [+0.044, +0.141] |" in text.split("| meta-judge | M3 |")[1].split("\n")[0]  # vs the baseline
    assert "| nll | M3 |" in text and " 400 (+100%) |" in text
    v = recipes.verdict(table)
    assert v.startswith("**meta-judge** beats the baseline's M3")
    assert "nll: M3" in v and "length moved more than 15%" in v and "temporal: M3" in v
    assert recipes.verdict({k: table[k] for k in ("baseline", "temporal")}).startswith("None of the recipes")
    assert recipes.verdict({"temporal": table["temporal"]}).startswith("No verdict")
    out = tmp_path / "table.md"  # the command: run folders under any name, the table written to a file too
    recipes.main(
        ["table", "--results", f"baseline={runs['baseline']}", "--results", f"mine={runs['nll']}", "-o", str(out)]
    )
    text = out.read_text()
    assert "| mine | M3 |" in text and "- mine: M3" in text and "not run (no experiment or folder)" in text


def test_the_verdict_asks_every_draw_to_beat_every_draw_of_the_baseline(tmp_path):
    """Draws NAME-rN of one recipe: a second draw of the baseline is its spread, never a winner, and a recipe
    wins only when each of its draws beats each of the baseline's."""
    m0 = (100, 200.0)
    runs = folders(
        tmp_path,
        {
            "baseline-r1": [m0, (100, 200.0)],
            "baseline-r2": [m0, (130, 200.0)],  # the same loop by chance +0.055: beyond the interval
            "checks-r1": [m0, (160, 200.0)],  # beats both draws
            "checks-r2": [m0, (140, 200.0)],  # beats r1's, not r2's
            "nll": [m0, (170, 200.0)],  # one draw: beats both of the baseline's
        },
    )
    table = recipes.collect(list(runs), tmp_path, runs)
    v = recipes.verdict(table, "baseline-r1")
    assert v.startswith("**nll** beats the baseline's M1 (each of its 2 draws)"), v
    assert "- baseline-r2: another draw of the baseline (the loop's spread by chance, not a recipe): M1 vs " in v
    assert "- checks-r2: M1 IFEval prompt strict vs baseline-r2's +0.018" in v and v.count("- checks-r") == 4
    del table["nll"]
    assert recipes.verdict(table, "baseline-r1").startswith("None of the recipes beats the baseline (each of its 2")
    assert recipes.recipe_of("checks-r12") == "checks" and recipes.recipe_of("ld-dpo") == "ld-dpo"
    out = tmp_path / "draws.md"  # each run against its own M0 only, and each recipe's spread over its draws
    recipes.main(
        ["table", "--draws-only", *(f"--results={n}={runs[n]}" for n in ("checks-r1", "checks-r2")), "-o", str(out)]
    )
    text = out.read_text()
    assert "| checks-r2 | checks | M1 | +0.074 [" in text and "IFEval prompt strict [95%]" not in text
    assert "- checks: 2 draws, M1 - M0 from +0.074 to +0.111 (mean +0.092; spread 0.037)" in text


def test_the_table_gives_the_looping_share_an_interval_and_each_iteration_its_stage_seconds(tmp_path):
    ev = eval_json(100, 200.0)
    ev["ifeval"] |= {"prompts": 541, "loops": {"count": 249, "share": 0.4603}}
    rows.write_json(ev, tmp_path / "run/metrics/iter1/eval.json")
    for stage, s in (("prompts@1", 30.5), ("dpo@1", 45.0), ("prompts@2", 99.0)):  # iteration 2's is not M1's
        rows.write_json({"stage": stage, "wall_s": s}, tmp_path / f"run/.srlm/timings/{stage}.json")
    pairs = {"prompts": 300, "pairs": 250, "decided_by_checks": 120, "decided_by_degenerate": 40}
    rows.write_json(pairs, tmp_path / "run/metrics/iter1/pairs.json")
    row = recipes.collect(["x"], tmp_path, {"x": tmp_path / "run"})["x"][0]
    assert row["loops"][0] == 0.4603 and row["loops"][1] < 0.4603 < row["loops"][2]  # Wilson over 541 answers
    assert row["stage_s"] == 75.5
    line = recipes.markdown({"x": [row]}).splitlines()[2]
    assert "| 46.0% [41.9%, 50.2%] |" in line and line.endswith("| 76 |")
    assert "| 250 / 300 (120) + 40 degenerate |" in line  # pairs.degenerate_last's pairs beside the checks'


def test_recipes_are_the_overlays_and_each_is_one_switch_off_by_default():
    known = recipes.recipes()
    assert list(known)[:4] == ["baseline", "meta-judge", "temporal", "nll"]
    p = P.load(ROOT / "params.yaml")
    defaults = {"meta_judge.enabled": False, "pairs.temporal": False, "dpo.nll_weight": 0.0,
                "dpo.reference": "previous", "dpo.ld_alpha": None, "checks.share": 0.0,
                "pairs.reward": "judge", "pairs.degenerate_last": False}  # fmt: skip
    for key, value in defaults.items():
        section, knob = key.split(".")
        assert getattr(getattr(p, section), knob) == value  # the paper's recipe: every switch off
    for name, profs in known.items():
        flags = recipes.profile.flags(recipes.profile.combined([ROOT / x for x in profs[1:]]))
        # one switch each; the checks recipe's is the reward and what it needs (constraints on prompts)
        assert len(flags) == {"baseline": 0, "checks": 3}.get(name, 1)
        cmd = recipes.exp_command(name, profs)
        assert cmd[:5] == ["dvc", "exp", "run", "-n", name] and (not flags or flags[0] in cmd)


def test_run_starts_every_experiment_from_the_committed_params(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    git = lambda *a: subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *a], cwd=tmp_path, check=True)  # noqa: E731
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "init")
    calls = []

    def fake_call(cmd, cwd):
        calls.append(((tmp_path / "params.yaml").read_text() == (ROOT / "params.yaml").read_text(), cmd[3:8]))
        (tmp_path / "params.yaml").write_text("changed by the experiment\n")
        return 0

    monkeypatch.setattr(recipes.subprocess, "call", fake_call)
    known = recipes.recipes(tmp_path)
    recipes.run(["baseline", "nll"], known, tmp_path)
    assert calls == [(True, ["exp", "run", "-n", "baseline", "-S"]), (True, ["exp", "run", "-n", "nll", "-S"])]
    assert (tmp_path / "params.yaml").read_text() == (ROOT / "params.yaml").read_text()  # restored at the end
    (tmp_path / "params.yaml").write_text("edited\n")
    with pytest.raises(SystemExit, match="differs from git"):
        recipes.run(["nll"], known, tmp_path)


def test_draws_show_where_ifeval_moved_per_instruction_group(tmp_path):
    tally = lambda k, n: {"n": n, "strict_k": k, "loose_k": k, "unscored": 0}  # noqa: E731
    for t, (fmt, kw) in enumerate(((3, 5), (7, 2))):
        ev = eval_json(100 + t, 200.0)
        ev["ifeval"]["by_instruction"] = {
            "detectable_format:title": tally(fmt, 10),
            "detectable_format:json_format": tally(1, 4),
            "keywords:existence": tally(kw, 6),
        }
        rows.write_json(ev, tmp_path / f"run/metrics/iter{t}/eval.json")
    table = recipes.collect(["x-r1"], tmp_path, {"x-r1": tmp_path / "run"}, last=1)
    assert table["x-r1"][0]["ifeval_groups"] == {"detectable_format": (4, 14), "keywords": (5, 6)}
    text = recipes.draws_markdown(table)
    assert "| run | model | detectable_format | keywords |" in text
    assert "| x-r1 | M1 | 4 -> 8 / 14 | 5 -> 2 / 6 |" in text
    plain = folders(tmp_path / "plain", {"y": [(100, 200.0), (101, 200.0)]})  # an eval.json without the tallies
    assert "per IFEval group" not in recipes.draws_markdown(recipes.collect(["y"], tmp_path, plain))


def test_draws_count_format_marks_where_ifeval_asked_and_where_it_did_not(tmp_path):
    repo, shared = tmp_path / "repo", tmp_path / "shared/data/ifeval"
    repo.mkdir()
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")  # its IFEval source: ../shared/data/ifeval
    shared.mkdir(parents=True)
    asks = {"Write a poem.": ["detectable_format:title"], "Name a fruit.": ["keywords:existence"]}
    shared.joinpath("input_data.jsonl").write_text(
        "".join(
            json.dumps({"key": i, "prompt": p, "instruction_id_list": ids, "kwargs": [{}]}) + "\n"
            for i, (p, ids) in enumerate(asks.items())
        )
    )
    for t, mark in enumerate(("", "<<My Title>>\n")):  # M1 learned the mark itself: a title on every answer
        rows.write_json(eval_json(100 + t, 200.0), tmp_path / f"run/metrics/iter{t}/eval.json")
        answers = {"prompt_id": [rows.content_id(p) for p in asks], "response": [mark + "Roses.", mark + "A pear."]}
        (tmp_path / f"run/data/iter{t}").mkdir(parents=True)
        pl.DataFrame(answers).write_parquet(tmp_path / f"run/data/iter{t}/ifeval.parquet")
    results = {"x": tmp_path / "run"}
    text = recipes.draws_markdown(recipes.collect(["x"], repo, results, last=1), results, repo)
    assert "| x | M1 | detectable_format:title | 0 -> 1 / 1 | 0 -> 1 / 1 |" in text
    assert "| x | M1 | detectable_content:postscript | 0 -> 0 / 0 | 0 -> 0 / 2 |" in text
    (repo / "params.yaml").unlink()  # the checkout's IFEval source unknown: one line says so, the rest stands
    text = recipes.draws_markdown(recipes.collect(["x"], repo, results, last=1), results, repo)
    assert f"Format marks not counted: error: {repo / 'params.yaml'} not found" in text and "| x | x | M1 |" in text
    shutil.rmtree(tmp_path / "run/data")  # a results folder without the answers (runs before 2026-12-06): no table
    text = recipes.draws_markdown(recipes.collect(["x"], repo, results, last=1), results, repo)
    assert "format mark" not in text.lower()
