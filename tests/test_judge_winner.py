"""The judge grid's winner rule on hand-made grid records: the best worse length slice wins, not the best total."""

import yaml

from benchmarks import judge_winner


def sl(short, long, whole):
    return {"slices": {"shorter_preferred": {"acc": short}, "longer_preferred": {"acc": long}, "all": {"acc": whole}}}


def rules(**over):
    base = {"pairs_share": 0.9, "chosen_longer_rate": 0.8, "chosen_truncated": 0, "chosen_loops": 0}
    return {name: base | over.get(name, {}) for name in judge_winner.RULES}


RECORDS = [
    # the length detector: best over all pairs, worst on the shorter-preferred slice
    {"variant": "baseline", "measured": {"pointwise": sl(0.30, 0.85, 0.69), "compare": sl(0.40, 0.80, 0.68)}},
    {
        "variant": "length",
        "measured": {
            "pointwise": sl(0.52, 0.62, 0.59),
            "compare": sl(0.56, 0.66, 0.63),
            "sim": {
                "compare": {
                    "rules": rules(
                        plain={"chosen_longer_rate": 0.5, "chosen_loops": 2},  # chooses a looping answer
                        **{"control0.25": {"chosen_longer_rate": 0.55}, "residual": {"pairs_share": 0.3}},
                    )
                }
            },
        },
    },
    {"variant": "base", "measured": {"pointwise": sl(0.9, 0.9, 0.9)}},  # no EFT: never a candidate
    {"variant": "score", "error": "CUDA out of memory"},
]


def test_the_worse_slice_decides_and_degenerate_or_sparse_rules_are_out(tmp_path):
    over, head = judge_winner.overlay(RECORDS)
    assert "variant length, judge compare" in head and "pair rule control0.25" in head
    assert over["judge"] == {"mode": "compare"} and over["sft"]["balance"] == "length"
    assert over["pairs"] == {"skip_degenerate": True, "length_control": 0.25, "length_residual": False}
    grid = tmp_path / "g.jsonl"
    grid.write_text("".join(__import__("json").dumps(r) + "\n" for r in RECORDS))
    judge_winner.main([str(grid), "--out", str(tmp_path / "w.yaml")])
    assert yaml.safe_load((tmp_path / "w.yaml").read_text()) == over


def test_nothing_measured_leaves_the_profile_alone():
    assert judge_winner.overlay([{"variant": "baseline", "error": "x"}])[0] == {}
