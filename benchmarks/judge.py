"""Judge benchmark: agreement with held-out human rankings, sample vs logprob mode on the same answers.

    python benchmarks/judge.py --model models/M0 --prompts 20 --label M0 [--k 3] [--json out.json]

Reads evaluate.human from params.yaml (default: ../shared/data/oasst1_en_validation rank pairs, first turn).
Times the two judge modes on the same rendered prompts in the same process, reports Table-4 metrics for each,
their agreement, the comparative A/B accuracy (both orders) and the longer-answer-wins baseline.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from stages.core import params as P  # noqa: E402
from stages.engine.backend import make_backend  # noqa: E402
from stages.judging.prompting import judge_messages  # noqa: E402
from stages.judging.scoring import judge_logprob, judge_sample  # noqa: E402
from stages.measure import agreement, human  # noqa: E402


def mean_scores(grades: list[list[dict]]) -> list[float | None]:
    out = []
    for gs in grades:
        s = [g["score"] for g in gs if g["score"] is not None]
        out.append(sum(s) / len(s) if s else None)
    return out


def table4(groups: pl.DataFrame, scores: list[float | None]) -> dict:
    scored = groups.with_columns(pl.Series("score", scores, dtype=pl.Float64))
    return agreement.rank_agreement(
        [list(zip(g["rank"], g["score"])) for _, g in scored.group_by("group", maintain_order=True)]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--label", default="")
    ap.add_argument("--prompts", type=int, default=20, help="held-out prompts (0 = all)")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--max-chars", type=int, default=600, help="answers are cut to this many characters (CPU cost)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--sample-n", type=int, default=0, help="sample mode on the first N answers only (0 = all)")
    ap.add_argument("--no-sample", action="store_true", help="logprob and A/B only")
    ap.add_argument(
        "--batch", type=int, default=4, help="judge texts per forward pass (sample mode: this x k sequences)"
    )
    ap.add_argument("--json", type=Path)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    p = P.load(args.params)
    cfg = p.evaluate.model_copy(update={"max_prompts": args.prompts or None, "max_response_chars": args.max_chars})
    groups = human.load_groups(cfg)
    if groups is None:
        sys.exit(f"skip: {cfg.human.path} not found")
    be = make_backend(p.backend, args.model)
    texts = [be.chat(judge_messages(q, r)) for q, r in zip(groups["instruction"], groups["response"])]
    res: dict = {
        "label": args.label,
        "model": args.model,
        "responses": len(texts),
        "machine": f"{platform.machine()} {platform.processor()}",
    }

    lp_cfg = p.judge.model_copy(update={"batch_size": args.batch})
    t = time.perf_counter()
    lp = mean_scores(judge_logprob(be, texts, lp_cfg, "logprob"))
    res["logprob_s"] = round(time.perf_counter() - t, 1)
    res["logprob"] = table4(groups, lp)
    print(json.dumps(res), flush=True)
    if not args.no_sample:
        # both modes on the same answers, timed back to back in this process
        n = args.sample_n or len(texts)
        sub = texts[:n]
        jcfg = p.judge.model_copy(
            update={"k": args.k, "max_new_tokens": args.max_new_tokens, "batch_size": args.batch * args.k}
        )
        # wall and process CPU seconds: on a shared machine the CPU-time ratio is the steadier one
        t, c = time.perf_counter(), time.process_time()
        lp_sub = mean_scores(judge_logprob(be, sub, lp_cfg, "logprob (same answers)"))
        res["logprob_same_s"], res["logprob_same_cpu_s"] = (
            round(time.perf_counter() - t, 1),
            round(time.process_time() - c, 1),
        )
        t, c = time.perf_counter(), time.process_time()
        grades = judge_sample(be, sub, jcfg, 0, "sample")
        res["sample_s"], res["sample_cpu_s"] = round(time.perf_counter() - t, 1), round(time.process_time() - c, 1)
        flat = [g["score"] for gs in grades for g in gs]
        sm = mean_scores(grades)
        res["sample"] = {
            "answers": n,
            "grades": len(flat),
            "parse_rate": round(sum(s is not None for s in flat) / len(flat), 4),
            "example_raw": grades[0][0]["raw"][:160],
        }
        if n == len(texts):
            res["sample"] |= table4(groups, sm)
        res["speedup_logprob_vs_sample"] = round(res["sample_s"] / max(res["logprob_same_s"], 1e-9), 1)
        res["speedup_cpu"] = round(res["sample_cpu_s"] / max(res["logprob_same_cpu_s"], 1e-9), 1)
        both = [(a, b) for a, b in zip(lp_sub, sm) if b is not None]
        res["mode_mean_abs_diff"] = round(sum(abs(a - b) for a, b in both) / len(both), 3) if both else None
        if len(both) > 2 and len({b for _, b in both}) > 1:
            from scipy.stats import spearmanr

            res["mode_spearman"] = round(float(spearmanr([a for a, _ in both], [b for _, b in both]).statistic), 4)
        print(json.dumps(res), flush=True)
    t = time.perf_counter()
    ab = human.ab_test(be, groups, 0, args.batch, "A/B")
    res["longer_wins_accuracy"] = ab.pop("longer_wins_accuracy")
    res["ab"] = ab
    res["ab_s"] = round(time.perf_counter() - t, 1)
    print(json.dumps(res, indent=1))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
