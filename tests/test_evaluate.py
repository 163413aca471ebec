"""evaluate@t: the whole stage on the tiny model in every judge mode, IFEval of the base model, and skipping what is
absent (the measures themselves: test_human.py, test_ifeval.py, test_checks_reward.py)."""

import json

import pytest

from stages import evaluate
from stages.core import rows
from stages.measure import ifeval

from .conftest import write_params


@pytest.mark.parametrize("mode", ["sample", "logprob", "compare"])
def test_stage_on_tiny_model(tmp_path, tiny_model, mode):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": f"q{i}",
                    "chosen": f"good {i}",
                    "rejected": f"bad {i}",
                    "chosen_rank": 0,
                    "rejected_rank": 1,
                }
            )
            + "\n"
            for i in range(2)
        )
    )
    prompts = tmp_path / "q.jsonl"
    prompts.write_text("".join(json.dumps({"question_id": i, "turns": [f"Say {i}"]}) + "\n" for i in range(3)))
    ifeval_path = tmp_path / "ifeval.jsonl"
    ifeval_path.write_text("".join(json.dumps(r) + "\n" for r in IFEVAL_ROWS))
    cfg = write_params(
        tmp_path / "params.yaml",
        f"""
judge: {{mode: {mode}, k: 2, max_new_tokens: 4, batch_size: 4}}
evaluate: {{human: {{path: {pairs}, format: rank_pairs}}, prompts: {{path: {prompts}}}, judge: {tiny_model},
           generation: {{max_new_tokens: 6, batch_size: 4}},
           ifeval: {{source: {{path: {ifeval_path}}}, generation: {{max_new_tokens: 4, batch_size: 4}}}}}}
""",
    )
    common = ["--model", str(tiny_model), "--params", str(cfg)]
    evaluate.main(
        [
            "--iteration",
            "0",
            *common,
            "--heldout",
            str(tmp_path / "h0.parquet"),
            "--out",
            str(tmp_path / "e0.json"),
        ]
    )
    evaluate.main(
        [
            "--iteration",
            "1",
            *common,
            "--heldout",
            str(tmp_path / "h1.parquet"),
            "--out",
            str(tmp_path / "e1.json"),
            "--vs",
            str(tmp_path / "h0.parquet"),
            "--vs-m0",
            str(tmp_path / "h0.parquet"),
        ]
    )
    m = json.loads((tmp_path / "e1.json").read_text())
    h = m["human"]
    assert h["mode"] == mode and h["prompts"] == 2 and h["pairs"] == 2 and h["responses"] == 4
    assert (
        0 <= h["parse_rate"] <= 1 and h["ab_pairs"] == 2 and h["longer_wins_accuracy"] == 1.0
    )  # "good i" is longer than "bad i"
    if mode == "logprob":
        assert h["parse_rate"] == 1.0  # no parse failures by construction
    assert len(rows.read(tmp_path / "h1.parquet", "responses")) == 3 and m["heldout"]["prompts"] == 3
    for side in ("vs_prev", "vs_m0"):
        r = m["head2head"][side]
        assert r["prompts"] == 3 and r["win"] + r["tie"] + r["loss"] == pytest.approx(1.0)
        assert len(r["win_ci95"]) == 2 and len(r["loss_ci95"]) == 2
        # the same model under another iteration number answers the same: one sampling seed for every model
        assert r["changed"] == 0
    assert len(h["pairwise_accuracy_ci95"]) == 2 and len(h["ab_accuracy_ci95"]) == 2 and "seconds" not in m
    if ifeval.missing() is None:
        assert m["ifeval"]["prompts"] == 3 and m["ifeval"]["cap_hit"]["count"] <= 3


IFEVAL_ROWS = [
    {
        "key": 1,
        "prompt": "Write a riddle without commas.",
        "instruction_id_list": ["punctuation:no_comma"],
        "kwargs": [{}],
    },
    {
        "key": 2,
        "prompt": "Answer in lowercase letters only.",
        "instruction_id_list": ["change_case:english_lowercase"],
        "kwargs": [{}],
    },
    {
        "key": 3,
        "prompt": "Write under 300 words.",
        "instruction_id_list": ["length_constraints:number_words"],
        "kwargs": [{"relation": "less than", "num_words": 300}],
    },
]


@pytest.mark.skipif(ifeval.missing() is not None, reason="if-verifiable not installed")
def test_ifeval_of_the_base_model_on_tiny_model(tmp_path, tiny_model, capsys):
    path = tmp_path / "ifeval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in IFEVAL_ROWS))
    cfg = write_params(
        tmp_path / "params.yaml",
        f"evaluate: {{ifeval: {{source: {{path: {path}}}, max_prompts: 2, "
        "generation: {temperature: 0.0, max_new_tokens: 4, batch_size: 2}}}",
    )
    out, answers = tmp_path / "base/eval.json", tmp_path / "base/ifeval.parquet"
    args = ["--iteration", "base", "--model", str(tiny_model), "--ifeval-answers", str(answers)]
    evaluate.main([*args, "--out", str(out), "--params", str(cfg)])
    m = json.loads(out.read_text())
    written = rows.read(answers, "responses")
    ife = m["ifeval"]
    assert m["iteration"] == "base" and m["skipped"] == [] and "human" not in m and "head2head" not in m
    assert ife["prompts"] == 2 and ife["instructions"] == 2 and len(written) == 2
    assert written["prompt"].to_list() == [r["prompt"] for r in IFEVAL_ROWS[:2]]  # the source's first prompts
    # a random 2-layer model does not end its turn within 4 tokens: every answer is a cap hit, and counted
    assert ife["cap_hit"] == {"count": int(written["truncated"].sum()), "share": 1.0} and ife["max_new_tokens"] == 4
    assert ife["loops"]["count"] == int(written["loops"].sum())
    for level in (
        "prompt_level_strict_acc",
        "inst_level_strict_acc",
        "prompt_level_loose_acc",
        "inst_level_loose_acc",
    ):
        assert ife[level]["n"] == 2 and len(ife[level]["ci95"]) == 2
    assert "evaluate_base: IFEval prompt-strict" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # the base model has no held-out answers or judge to measure
        evaluate.main([*args, "--out", str(out), "--heldout", str(tmp_path / "h.parquet"), "--params", str(cfg)])


def test_every_part_is_skipped_with_a_note_without_data(tmp_path, tiny_model, capsys):
    gone = tmp_path / "absent"
    cfg = write_params(
        tmp_path / "params.yaml",
        f"""
evaluate: {{human: {{path: {gone}/pairs.jsonl, format: rank_pairs, optional: true}},
           prompts: {{path: {gone}/q.jsonl, optional: true}}, ifeval: {{source: {{path: {gone}/if.jsonl, optional: true}}}}}}
""",
    )
    out = tmp_path / "e0.json"
    evaluate.main(
        [
            *("--iteration", "0", "--model", str(tiny_model), "--heldout", str(tmp_path / "h0.parquet")),
            *("--ifeval-answers", str(tmp_path / "if0.parquet"), "--out", str(out), "--params", str(cfg)),
        ]
    )
    m = json.loads(out.read_text())
    assert m["human"] is None and m["ifeval"] is None and m["head2head"] == {} and m["heldout"]["prompts"] == 0
    assert [s.split(" (")[0] for s in m["skipped"]] == [
        "human agreement",
        "held-out answers and head-to-head",
        "IFEval",
    ]
    printed = capsys.readouterr().out
    assert f"evaluate@0: skipped IFEval ({gone}/if.jsonl not found)" in printed
    assert rows.read(tmp_path / "if0.parquet", "responses").is_empty()  # the DVC output exists, empty
