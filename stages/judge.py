"""judge@t: M(t-1) grades every response with the additive 5-point rubric (LLM-as-a-Judge).

    python -m stages.judge --iteration 1 --model models/M0 --responses data/iter1/responses.parquet \
        --out data/iter1/judgments.parquet --metrics metrics/iter1/judge.json

judge.mode = sample  (the paper's): K sampled grades per response; `Score: N` is parsed
                     from each; a grade that does not parse is stored with score = null
                     and its raw text, never as 0.
judge.mode = logprob: one forward pass with the assistant turn opened at "Score: ";
                     the next-token distribution over 0..5 is stored, its mean is the score.
judge.mode = compare: every pair of a prompt's responses, in both orders, goes to the comparative
                     judge (N(N-1) forward passes per prompt); a response's score is 5 x its mean
                     probability of being the better one (its probabilities are stored).
Scoring is stages/judging/scoring.py, which evaluate shares. How closely the scores follow answer length is
validate@t's measurement (validate.json `judge_length`), so a change to the statistics never reruns the judge.
Work is committed in shards (stages/engine/shards.py): an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from stages.core import lineage, rows
from stages.core import params as P
from stages.core.errors import entry
from stages.engine.backend import PARAMS as BACKEND
from stages.engine.shards import Task, Work
from stages.judging.prompting import COMPARE_CHOICES, COMPARE_PREFILL, compare_messages, judge_messages
from stages.judging.rubric import SCORES
from stages.judging.scoring import (
    LOGPROB_PREFILL,
    compare_grades,
    logprob_grades,
    ordered_pairs,
    sample_grades,
    score_summary,
)

# the params this stage reads: dvc.yaml's params list and the lineage record (python -m stages.commands.dag write)
PARAMS = (
    "seed",
    *BACKEND,
    "judge",
    "shards.size",
)


def judge_task(cfg: P.Judge) -> Task:
    if cfg.mode == "logprob":
        return Task(cfg, n=0, candidates=tuple(str(s) for s in SCORES), prefill=LOGPROB_PREFILL)
    if cfg.mode == "compare":
        return Task(cfg, n=0, candidates=COMPARE_CHOICES, prefill=COMPARE_PREFILL)
    return Task(cfg, n=cfg.k)


def comparisons(responses: pl.DataFrame) -> dict[str, tuple[str, str]]:
    """judge.mode compare's work: {item id: (response id shown first, response id shown second)}."""
    return {
        rows.content_id(a, b): (a, b)
        for _, g in responses.group_by("prompt_id", maintain_order=True)
        for a, b in ordered_pairs(g["id"].to_list())
    }


def grades_by_response(responses: pl.DataFrame, gens: dict[str, list[dict]], mode: str) -> dict[str, list[dict]]:
    """Each response's grades from the engine's generations (keyed by work item)."""
    if mode == "compare":
        p_first = {pair: gens[item][0]["probs"][0] for item, pair in comparisons(responses).items()}
        out = {}
        for _, g in responses.group_by("prompt_id", maintain_order=True):
            out |= compare_grades(g["id"].to_list(), p_first)
        return out
    if mode == "logprob":
        return {i: logprob_grades(gens[i][0]["probs"]) for i in responses["id"]}
    return {i: sample_grades([g["text"] for g in gens[i]]) for i in responses["id"]}


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iteration", type=int, required=True)
    ap.add_argument("--model", type=Path, required=True, help="M(t-1) folder: the judge")
    ap.add_argument("--responses", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--workers", type=int, help="processes sharing the shards (default: shards.workers)")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    rows.all_or_none(args.out, lineage.path_for(args.out), args.metrics)
    cfg = p.judge
    responses = rows.read(args.responses, "responses")
    seed = rows.derive_seed(p.seed, "judge", args.iteration)

    if cfg.mode == "compare":
        text = dict(zip(responses["id"], responses["response"]))
        prompt = dict(zip(responses["id"], responses["prompt"]))
        items = [(i, compare_messages(prompt[a], text[a], text[b])) for i, (a, b) in comparisons(responses).items()]
    else:
        items = [(r["id"], judge_messages(r["prompt"], r["response"])) for r in responses.iter_rows(named=True)]
    work = Work(
        f"judge@{args.iteration}",
        items,
        judge_task(cfg),
        seed,
        args.model,
        p.backend,
        p.shards,
        args.workers,
        source=str(args.responses),
    )
    gens = work.run()
    model, grades = work.model_name, grades_by_response(responses, gens, cfg.mode)
    # a grade that parses nothing (even a whole batch of them) is stored as null: the validate gate decides
    records = [
        {
            **g,
            "id": rows.content_id(r["id"], g["sample"], model, cfg.mode),
            "response_id": r["id"],
            "prompt_id": r["prompt_id"],
            "mode": cfg.mode,
            "model": model,
            "seed": seed,
        }
        for r in responses.iter_rows(named=True)
        for g in grades[r["id"]]
    ]
    df = rows.write(rows.frame(records, "judgments"), args.out, "judgments")
    lineage.write(
        args.out,
        "judgments",
        stage=f"judge@{args.iteration}",
        inputs={"model": args.model, "responses": args.responses},
        params=p,
        sections=PARAMS,
        seed=seed,
    )
    metrics = {
        "mode": cfg.mode,
        "responses": len(responses),
        **score_summary(df),
        "prompts_cut_to_context": work.truncated_prompts,
    }
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    work.close()
    print(
        f"judge@{args.iteration} ({cfg.mode}): {metrics['grades']} grades, parse rate {metrics['parse_rate']:.0%}, "
        f"mean {metrics['score_mean']}, histogram {metrics['score_hist']} -> {args.out}"
    )


if __name__ == "__main__":
    main()
