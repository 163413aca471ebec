"""evaluate@t: the A/B swap wiring on a scripted judge, and the whole stage on the tiny model in both modes."""

import json

import polars as pl
import pytest

from stages import evaluate
from stages.core import params, rows
from stages.measure import ifeval

from .conftest import SHARED_DATA, knobs, write_params


class ScriptedJudge:
    """Prefers whichever answer contains GOOD, wherever it is shown; grades GOOD 5 and anything else 1."""

    model_name = "scripted"

    def __init__(self):
        self.compared = []

    def chat(self, messages, prefill=""):
        return messages[-1]["content"] + "\n[assistant]" + prefill

    def next_token_probs(self, texts, candidates, batch_size, desc=""):
        out = []
        for t in texts:
            if candidates == ["1", "2"]:
                first = t.split("<answer 1>")[1].split("</answer 1>")[0]
                self.compared.append(("GOOD" in first, t))
                out.append([0.9, 0.1] if "GOOD" in first else [0.2, 0.8])
            else:
                answer = t.split("<answer>")[1].split("</answer>")[0]
                out.append([0, 0, 0, 0, 0, 1.0] if "GOOD" in answer else [0, 1.0, 0, 0, 0, 0])
        return out


def groups_frame(n=6):
    return pl.DataFrame(
        [
            {"group": f"g{i}", "instruction": f"question {i}", "response": text, "rank": rank}
            for i in range(n)
            for text, rank in ((f"GOOD answer {i}", 0), (f"weak answer {i}", 1))
        ]
    )


def test_every_pair_is_judged_in_both_orders(tmp_path):
    p = params.load(write_params(tmp_path / "params.yaml", "judge: {mode: logprob}"))
    judge = ScriptedJudge()
    m = evaluate.human_agreement(judge, groups_frame(), p, seed=3, desc="t")
    assert m["pairwise_accuracy"] == 1.0 and m["spearman"] == 1.0 and m["five_best"] == 1.0 and m["parse_rate"] == 1.0
    assert m["ab_accuracy"] == 1.0 and m["ab_first_rate"] == 0.5 and m["ab_consistency"] == 1.0
    assert len(judge.compared) == 12
    sl = m["length_slices"]
    assert sl["pointwise"]["all"]["acc"] == sl["ab"]["all"]["acc"] == 1.0 and sl["ab"]["all"]["n"] == 6
    assert sl["longer_wins"]["all"]["acc"] == 0.5  # equal lengths: the baseline ties, and no pair is in a slice
    assert sl["pointwise"]["shorter_preferred"]["n"] == sl["pointwise"]["longer_preferred"]["n"] == 0
    shuffled, swapped = judge.compared[:6], judge.compared[6:]
    # the swap shows each pair the other way round; the seeded shuffle put the better answer first in some but not all
    assert [not a for a, _ in shuffled] == [a for a, _ in swapped]
    assert 0 < sum(a for a, _ in shuffled) < 6
    again = ScriptedJudge()
    evaluate.human_agreement(again, groups_frame(), p, seed=3, desc="t")
    assert again.compared == judge.compared  # the shuffle is fixed by the seed


def test_rank_pairs_file_becomes_ranked_groups(tmp_path):
    lines = [
        {"prompt": "q", "chosen": "a", "rejected": "b", "chosen_rank": 0, "rejected_rank": 1, "first_turn": True},
        {"prompt": "q", "chosen": "a", "rejected": "c", "chosen_rank": 0, "rejected_rank": 2, "first_turn": True},
        {"prompt": "q", "chosen": "b", "rejected": "c", "chosen_rank": 1, "rejected_rank": 2, "first_turn": True},
        {"prompt": "later", "chosen": "x", "rejected": "y", "chosen_rank": 0, "rejected_rank": 1, "first_turn": False},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    cfg = knobs("evaluate", human=params.Source(path=str(path), format="rank_pairs"))
    g = evaluate.load_groups(cfg)
    assert sorted(zip(g["response"], g["rank"])) == [("a", 0), ("b", 1), ("c", 2)]  # multi-turn pair left out
    assert (
        evaluate.load_groups(
            knobs(
                "evaluate",
                human=params.Source(path=str(tmp_path / "absent.jsonl"), format="rank_pairs", optional=True),
            )
        )
        is None
    )


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data not present")
def test_real_validation_pairs_load():
    g = evaluate.load_groups(
        knobs(
            "evaluate",
            human=params.Source(
                path=str(SHARED_DATA / "oasst1_en_validation/oasst1_en_validation_rank_pairs.jsonl"),
                format="rank_pairs",
            ),
            max_prompts=None,
        )
    )
    assert g["group"].n_unique() == 186  # first-turn prompts with at least two ranked answers
    pairs = sum(1 for _, grp in g.group_by("group") for _ in evaluate._ordered_pairs(grp))
    assert pairs == 529  # the 531 first-turn pairs of the file less 2 whose answers have identical text


def test_compare_grades_average_each_answers_win_probability_over_both_orders():
    from stages.judging.scoring import compare_grades, ordered_pairs

    assert ordered_pairs(["a", "b", "c"]) == [("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "b")]
    # a judge that always prefers answer 1 (p = 0.9): the position bias cancels, every answer gets 2.5
    biased = compare_grades(["a", "b"], {("a", "b"): 0.9, ("b", "a"): 0.9})
    assert biased["a"][0]["score"] == biased["b"][0]["score"] == pytest.approx(2.5)
    assert biased["a"][0]["probs"] == [0.9, pytest.approx(0.1)]
    sure = compare_grades(["a", "b"], {("a", "b"): 1.0, ("b", "a"): 0.0})
    assert (sure["a"][0]["score"], sure["b"][0]["score"]) == (5.0, 0.0)
    assert compare_grades(["alone"], {})["alone"][0]["score"] is None


def test_compare_mode_ranks_held_out_answers_by_round_robin(tmp_path):
    p = params.load(write_params(tmp_path / "params.yaml", "judge: {mode: compare}"))
    groups = pl.DataFrame(
        [
            {"group": f"g{i}", "instruction": f"question {i}", "response": text, "rank": rank}
            for i in range(4)
            for text, rank in ((f"GOOD answer {i}", 0), (f"fair answer {i}", 1), (f"weak answer {i}", 2))
        ]
    )
    judge = ScriptedJudge()
    m = evaluate.human_agreement(judge, groups, p, seed=3, desc="t")
    # GOOD wins in both orders (0.9 first, 0.8 second): 5 x 0.85; fair vs weak is pure position bias: a tie
    assert m["mode"] == "compare" and m["score_hist"]["4"] == 4 and m["parse_rate"] == 1.0
    assert m["pairwise_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3, abs=1e-4) and m["pairwise_ties"] == 0.3333
    assert len(judge.compared) == 4 * 6 + 2 * 12  # the round robin, then the A/B test in both orders


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
