"""Every model stage on a tiny random Llama with the real tokenizer: shapes, ids, determinism."""

import json

import polars as pl
import pytest
import yaml

from stages import dpo, judge, pairs, prompts, responses, seed, sft, validate
from stages.core import rows
from stages.core.errors import SrlmError
from stages.engine import backend as B
from stages.plots import dpo_intervals

from .conftest import knobs, write_params

TINY = """
prompts: {n: 6, fewshot: 3, min_chars: 1, max_chars: 2000, max_similarity: 1.0, max_new_tokens: 12, batch_size: 4, temperature: 1.0,
          top_p: 0.9}
responses: {n: 3, max_new_tokens: 10, batch_size: 6, temperature: 1.0}
judge: {mode: sample, k: 2, max_new_tokens: 6, batch_size: 8}
sft: {max_steps: 2, batch_size: 2, grad_accum: 1, max_length: 256, lora: false, learning_rate: 2.0e-4, compare_pairs: 0}
dpo: {max_steps: 2, batch_size: 2, grad_accum: 1, max_length: 128, lora: true, lora_r: 4, lora_alpha: 8, learning_rate: 1.0e-6}
validate: {allow_failure: true}
pairs: {skip_degenerate: false}  # a random model's answers all stop at the token cap
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model):
    """Seed sets and one iteration's datasets made by the tiny model, in a module-wide folder."""
    d = tmp_path_factory.mktemp("iter")
    cfg = str(write_params(d / "params.yaml", TINY))
    seed.main(["--ift", str(d / "ift.parquet"), "--eft", str(d / "eft.parquet"), "--params", cfg])
    common = ["--iteration", "1", "--model", str(tiny_model), "--params", cfg]
    prompts.main(
        [
            *common,
            "--pool",
            str(d / "ift.parquet"),
            "--out",
            str(d / "prompts.parquet"),
            "--metrics",
            str(d / "pm.json"),
        ]
    )
    responses.main([*common, "--prompts", str(d / "prompts.parquet"), "--out", str(d / "responses.parquet")])
    judge.main(
        [
            *common,
            "--responses",
            str(d / "responses.parquet"),
            "--out",
            str(d / "judgments.parquet"),
            "--metrics",
            str(d / "jm.json"),
        ]
    )
    return d, cfg


def test_backend_is_deterministic_per_seed(tiny_model):
    cfg = knobs("responses", max_new_tokens=8, batch_size=4, temperature=1.0)
    be = B.make_backend(knobs("backend"), tiny_model)
    texts = [be.chat([{"role": "user", "content": q}]) for q in ("hi", "a longer question here", "x")]
    a = be.generate(texts, n=2, sampling=cfg, seed=1)
    assert a == be.generate(texts, n=2, sampling=cfg, seed=1)
    assert a != be.generate(texts, n=2, sampling=cfg, seed=2)
    assert [len(o) for o in a] == [2, 2, 2] and all(0 < c.n_tokens <= 8 for o in a for c in o)
    probs = be.next_token_probs(texts, ["0", "1", "2", "3", "4", "5"], batch_size=2)
    assert all(len(p) == 6 and abs(sum(p) - 1) < 1e-5 for p in probs)
    # batching must not change a row's scores (left padding handled)
    single = be.next_token_probs(texts[:1], ["0", "1", "2", "3", "4", "5"], batch_size=1)
    assert single[0] == pytest.approx(probs[0], abs=1e-5)


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SrlmError, match="not a model folder"):
        B.make_backend(knobs("backend"), tmp_path)


def test_prompt_rows(run):
    d, _ = run
    df = rows.read(d / "prompts.parquet", "prompts")
    m = json.loads((d / "pm.json").read_text())
    assert m["generated"] == 6 and m["kept"] == len(df) and m["kept"] + sum(m["dropped"].values()) == 6
    assert all(i == rows.content_id(p) for i, p in zip(df["id"], df["prompt"]))
    assert all(len(f) == 3 for f in df["fewshot_ids"])


def test_response_rows(run):
    d, _ = run
    p = rows.read(d / "prompts.parquet", "prompts")
    r = rows.read(d / "responses.parquet", "responses")
    assert set(r["prompt_id"]) <= set(p["id"])
    assert r.group_by("prompt_id").len()["len"].max() <= 3
    assert r["id"].n_unique() == len(r)
    assert all(
        i == rows.content_id(pid, t, m) for i, pid, t, m in zip(r["id"], r["prompt_id"], r["response"], r["model"])
    )


def test_sample_mode_keeps_raw_text_and_null_scores(run):
    d, _ = run
    j = rows.read(d / "judgments.parquet", "judgments")
    r = rows.read(d / "responses.parquet", "responses")
    assert len(j) == 2 * len(r) and set(j["sample"]) == {0, 1}
    # a random model does not write "Score: N": those grades are missing with their text, never 0
    missing = j.filter(j["score"].is_null())
    assert len(missing) > 0 and (missing["raw"].str.len_chars() > 0).any()
    assert json.loads((d / "jm.json").read_text())["parse_rate"] == round(1 - len(missing) / len(j), 4)


def judge_in_mode(d, tiny_model, tmp_path, judge_params: str) -> tuple:
    """judge@1 of the run's responses with the tiny model and TINY + this judge section: (params path, judgments)."""
    cfg = str(write_params(tmp_path / "params.yaml", TINY + f"\njudge: {judge_params}\n"))
    out = tmp_path / "j.parquet"
    judge.main(["--iteration", "1", "--model", str(tiny_model), "--params", cfg,
                "--responses", str(d / "responses.parquet"), "--out", str(out)])  # fmt: skip
    return cfg, out


def test_logprob_mode_gives_a_distribution_per_response(run, tiny_model, tmp_path):
    d, _ = run
    _, out = judge_in_mode(d, tiny_model, tmp_path, "{mode: logprob, batch_size: 4}")
    j = rows.read(out, "judgments")
    assert len(j) == len(rows.read(d / "responses.parquet", "responses")) and j["score"].null_count() == 0
    for probs, score in zip(j["probs"], j["score"]):
        assert len(probs) == 6 and abs(sum(probs) - 1) < 1e-6
        assert score == pytest.approx(sum(i * q for i, q in enumerate(probs)))


def test_compare_mode_scores_each_response_by_its_win_probabilities(run, tiny_model, tmp_path):
    d, _ = run
    _, out = judge_in_mode(d, tiny_model, tmp_path, "{mode: compare, batch_size: 4}")
    j = rows.read(out, "judgments")
    r = rows.read(d / "responses.parquet", "responses")
    assert len(j) == len(r) and set(j["mode"]) == {"compare"}
    per_prompt = dict(r.group_by("prompt_id").len().iter_rows())
    for pid, probs, score in zip(j["prompt_id"], j["probs"], j["score"]):
        # one probability per comparison: each other answer of the prompt, in both orders
        assert len(probs) == 2 * (per_prompt[pid] - 1)
        assert score == (pytest.approx(5 * sum(probs) / len(probs)) if len(probs) else None)
    # the probabilities of one pair's two answers, in one order, sum to 1: the mean score is 2.5 per prompt
    means = j.group_by("prompt_id").agg(pl.col("score").mean())
    assert all(m == pytest.approx(2.5) for m in means["score"].drop_nulls())


def test_same_seed_gives_byte_identical_datasets(run, tiny_model, tmp_path):
    d, cfg = run
    out = tmp_path / "responses.parquet"
    responses.main(
        [
            "--iteration",
            "1",
            "--model",
            str(tiny_model),
            "--params",
            cfg,
            "--prompts",
            str(d / "prompts.parquet"),
            "--out",
            str(out),
        ]
    )
    assert out.read_bytes() == (d / "responses.parquet").read_bytes()


def test_pairs_validate_and_dpo(run, tiny_model, tmp_path):
    d, cfg = run
    # the random judge rarely parses: build pairs from logprob grades, which always score
    lp, _ = judge_in_mode(d, tiny_model, tmp_path, "{mode: logprob}")
    pairs.main(
        [
            "--iteration",
            "1",
            "--params",
            lp,
            "--responses",
            str(d / "responses.parquet"),
            "--judgments",
            str(tmp_path / "j.parquet"),
            "--out",
            str(tmp_path / "prefs.parquet"),
        ]
    )
    prefs = rows.read(tmp_path / "prefs.parquet", "preferences")
    assert len(prefs) >= 1 and (prefs["score_chosen"] > prefs["score_rejected"]).all()
    validate.main(
        [
            "--iteration",
            "1",
            "--params",
            lp,
            "--prompts",
            str(d / "prompts.parquet"),
            "--responses",
            str(d / "responses.parquet"),
            "--judgments",
            str(tmp_path / "j.parquet"),
            "--preferences",
            str(tmp_path / "prefs.parquet"),
            "--out",
            str(tmp_path / "v.json"),
        ]
    )
    # a random judge puts every grade near one point: the gate fails it, and the override lets DPO run, on record
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["overridden"] is True and verdict["passed"] is False
    dpo.main(
        [
            "--iteration",
            "1",
            "--params",
            lp,
            "--model",
            str(tiny_model),
            "--preferences",
            str(tmp_path / "prefs.parquet"),
            "--validation",
            str(tmp_path / "v.json"),
            "--out",
            str(tmp_path / "M1"),
            "--metrics",
            str(tmp_path / "dpo.json"),
        ]
    )
    m = json.loads((tmp_path / "dpo.json").read_text())
    assert m["steps"] == 2 and m["pairs"] == len(prefs) and m["validation_overridden"] is True
    assert 0 <= m["reward_accuracy"] <= 1 and m["loss_pairs_after"] > 0
    # the interval is the plots stage's (a statistic never retrains), from the count dpo records
    assert (
        m["reward_correct"] == round(m["reward_accuracy"] * m["pairs"])
        and len(dpo_intervals(m)["reward_accuracy_ci95"]) == 2
    )
    assert "seconds" not in m  # timings are printed, never in a DVC metric
    assert (tmp_path / "M1" / "model.safetensors").exists() and not (tmp_path / "M1" / "adapter_config.json").exists()


def test_dpo_refuses_failed_validation(run, tiny_model, tmp_path):
    d, cfg = run
    v = tmp_path / "v.json"
    v.write_text(json.dumps({"passed": False, "overridden": False}))
    with pytest.raises(SystemExit, match="validation of iteration 1 failed"):
        dpo.main(
            [
                "--iteration",
                "1",
                "--params",
                cfg,
                "--model",
                str(tiny_model),
                "--preferences",
                "x.parquet",
                "--validation",
                str(v),
                "--out",
                str(tmp_path / "M1"),
            ]
        )
    assert not (tmp_path / "M1").exists()


def test_sft_trains_and_saves_a_plain_model(run, tiny_model, tmp_path):
    d, cfg = run
    sft.main(
        [
            "--base",
            str(tiny_model),
            "--ift",
            str(d / "ift.parquet"),
            "--eft",
            str(d / "eft.parquet"),
            "--params",
            cfg,
            "--out",
            str(tmp_path / "M0"),
            "--metrics",
            str(tmp_path / "sft.json"),
        ]
    )
    m = json.loads((tmp_path / "sft.json").read_text())
    assert m["steps"] == 2 and m["examples"] == m["ift"] + m["eft"] and len(m["loss_curve"]) == 2
    assert (tmp_path / "M0" / "config.json").exists()
    B.make_backend(knobs("backend"), tmp_path / "M0")  # loads as a model folder


@pytest.mark.parametrize("train_on", ["eft", "none"])
def test_sft_train_on_for_an_instruction_tuned_or_judge_ready_model(run, tiny_model, tmp_path, train_on):
    """sft.train_on: eft trains the judge only (no IFT example); none makes M0 the base model, byte for byte."""
    d, _ = run
    tiny = yaml.safe_load(TINY)
    tiny["sft"] |= {"train_on": train_on, "max_length": 640}  # room for the rubric: EFT examples are long
    cfg = str(write_params(tmp_path / "params.yaml", yaml.safe_dump(tiny)))
    out = tmp_path / "M0"
    args = ["--base", str(tiny_model), "--ift", str(d / "ift.parquet"), "--eft", str(d / "eft.parquet")]
    sft.main([*args, "--params", cfg, "--out", str(out), "--metrics", str(tmp_path / "sft.json")])
    m = json.loads((tmp_path / "sft.json").read_text())
    if train_on == "none":
        assert m == {"trained": False, "examples": 0, "steps": 0}
        files = lambda root: {f.relative_to(root): f.read_bytes() for f in root.rglob("*") if f.is_file()}  # noqa: E731
        assert files(out) == files(tiny_model)
    else:
        assert m["ift"] == 0 and m["examples"] == m["eft"] > 0 and m["steps"] == 2
