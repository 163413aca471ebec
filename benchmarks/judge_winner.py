"""Pick the judge recipe from the judge grid's results by a rule fixed before the grid ran, and write it as a
profile overlay (so the GPU profile's M0 is the measured winner, with no hand edit between device calls).

    python -m benchmarks.judge_winner GRID/judge_grid.jsonl --out /tmp/judge-winner.yaml

The rule (docs/judge.md "Choosing the recipe"):
1. judge: over every trained variant and both judges the loop can use (`pointwise` = judge.mode logprob,
   `compare` = judge.mode compare), the one whose worse length slice (min of the shorter-preferred and the
   longer-preferred accuracy on the held-out pairs) is highest; ties go to the higher accuracy over all pairs.
   The length slices decide because the whole-set accuracy is passed by a length detector.
2. pair rule: on that judge's simulated iteration, among the rules that pair >= 50% of the prompts and choose no
   answer cut at the cap or looping, the lowest chosen-longer rate; ties go to the larger pair share. If no rule
   qualifies, `skip_degenerate` alone.
The overlay holds the grid's common sft settings, the variant's overrides, judge.mode and the pair knobs; its
header says what was chosen and the numbers behind it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from benchmarks.judge_grid import COMMON, RULES, VARIANTS, merged

JUDGE_MODES = {"pointwise": "logprob", "compare": "compare"}


def worse_slice(slices: dict) -> tuple[float, float]:
    """(min of the two slice accuracies, accuracy over all pairs); missing values rank last."""
    short, long, whole = (slices.get(k, {}).get("acc") for k in ("shorter_preferred", "longer_preferred", "all"))
    if short is None or long is None:
        return (-1.0, -1.0)
    return (min(short, long), whole if whole is not None else -1.0)


def pick_judge(records: list[dict]) -> tuple[dict, str] | None:
    """(record, judge) with the best worse slice among trained variants (the base model is no candidate)."""
    candidates = [
        (worse_slice(r["measured"][judge]["slices"]), r, judge)
        for r in records
        if "measured" in r and VARIANTS.get(r["variant"], (None, None))[1] is not None
        for judge in JUDGE_MODES
        if judge in r["measured"]
    ]
    if not candidates:
        return None
    _, rec, judge = max(candidates, key=lambda c: c[0])
    return rec, judge


def pick_rule(sim: dict | None) -> tuple[str, dict]:
    """(rule name, the rule's select_pairs keywords) from the judge's simulated iteration."""
    rules = (sim or {}).get("rules", {})
    ok = [
        (r.get("chosen_longer_rate") if r.get("chosen_longer_rate") is not None else 1.0, -r["pairs_share"], name)
        for name, r in rules.items()
        if r["pairs_share"] >= 0.5 and r["chosen_truncated"] + r["chosen_loops"] == 0
    ]
    name = min(ok)[2] if ok else "degenerate"
    return name, RULES[name]


def overlay(records: list[dict]) -> tuple[dict, str]:
    """(profile overlay, header comment) for the winner; an empty overlay when nothing was measured."""
    picked = pick_judge(records)
    if picked is None:
        return {}, "# judge grid: no trained variant was measured; the profile's own recipe stands\n"
    rec, judge = picked
    mode = JUDGE_MODES[judge]
    rule, kw = pick_rule(rec["measured"].get("sim", {}).get("logprob" if judge == "pointwise" else "compare"))
    sl = rec["measured"][judge]["slices"]
    over = merged({"sft": COMMON["sft"]}, VARIANTS[rec["variant"]][1] or {})
    over["judge"] = {"mode": mode}
    over["pairs"] = {
        "skip_degenerate": bool(kw.get("skip_degenerate", False)),
        "length_control": float(kw.get("length_control", 0.0)),
        "length_residual": bool(kw.get("length_residual", False)),
    }
    head = (
        f"# judge grid winner (benchmarks/judge_winner.py): variant {rec['variant']}, judge {judge} (judge.mode {mode}),"
        f" pair rule {rule}\n# held-out pairs: all {sl['all']['acc']}, shorter-preferred "
        f"{sl['shorter_preferred']['acc']}, longer-preferred {sl['longer_preferred']['acc']}\n"
    )
    return over, head


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("grid", type=Path, help="judge_grid.jsonl")
    ap.add_argument("--out", type=Path, required=True, help="the overlay YAML to write")
    args = ap.parse_args(argv)
    records = [json.loads(line) for line in args.grid.read_text().splitlines() if line.strip()]
    over, head = overlay(records)
    args.out.write_text(head + yaml.safe_dump(over, sort_keys=False))  # "{}" when nothing won: a valid overlay
    print(head, end="")


if __name__ == "__main__":
    main()
