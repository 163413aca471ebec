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
Each mode's work and grades are stages/judging/modes.py, which evaluate shares. How closely the scores follow
answer length is validate@t's measurement (validate.json `judge_length`), so a change to the statistics never
reruns the judge.
Work is committed in shards (stages/engine/shards.py): an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.core import lineage, rows
from stages.core import params as P
from stages.core.errors import entry
from stages.engine.backend import PARAMS as BACKEND
from stages.engine.shards import Work
from stages.engine.task import judge_task
from stages.judging.modes import mode_for
from stages.judging.scoring import score_summary

# the params this stage reads: dvc.yaml's params list and the lineage record (python -m stages.commands.dag write)
PARAMS = (
    "seed",
    "replicate",
    *BACKEND,
    "judge",
    "shards.size",
)


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
    cfg, mode = p.judge, mode_for(p.judge.mode)
    responses = rows.read(args.responses, "responses")
    seed = p.loop_seed("judge", args.iteration)
    work = Work(
        f"judge@{args.iteration}",
        mode.items(responses),
        judge_task(mode, cfg),
        seed,
        args.model,
        p.backend,
        p.shards,
        args.workers,
        source=str(args.responses),
    )
    gens = work.run()
    model, grades = work.model_name, mode.grades(responses, gens)
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
