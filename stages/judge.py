"""judge@t: M(t-1) grades every response with the additive 5-point rubric (LLM-as-a-Judge).

    python -m stages.judge --iteration 1 --model models/M0 --responses data/iter1/responses.parquet \
        --out data/iter1/judgments.parquet --metrics metrics/iter1/judge.json

judge.mode = sample  (the paper's): K sampled grades per response; `Score: N` is parsed
                     from each; a grade that does not parse is stored with score = null
                     and its raw text, never as 0.
judge.mode = logprob: one forward pass with the assistant turn opened at "Score: ";
                     the next-token distribution over 0..5 is stored, its mean is the score.
Scoring is stages/scoring.py, which evaluate shares. The metrics also say how closely the scores follow
answer length (agreement.length_correlation: Spearman within a prompt, and pooled).
Work is committed in shards (stages/shards.py): an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import lineage, rows
from . import params as P
from .agreement import length_correlation
from .errors import entry
from .prompting import judge_messages
from .scoring import LOGPROB_PREFILL, SCORES, logprob_grades, response_scores, sample_grades, score_summary
from .shards import Task, Work


def judge_task(cfg: P.Judge) -> Task:
    if cfg.mode == "logprob":
        return Task(cfg, n=0, candidates=tuple(str(s) for s in SCORES), prefill=LOGPROB_PREFILL)
    return Task(cfg, n=cfg.k)


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
    gens, model = work.run(), work.model_name

    def grades(gs: list[dict]) -> list[dict]:
        return logprob_grades(gs[0]["probs"]) if cfg.mode == "logprob" else sample_grades([g["text"] for g in gs])

    # a grade that parses nothing (even a whole batch of them) is stored as null: the validate gate decides
    records = [
        {
            **g,
            "id": rows.content_id(r["id"], g["grade"], model, cfg.mode),
            "response_id": r["id"],
            "prompt_id": r["prompt_id"],
            "mode": cfg.mode,
            "model": model,
            "seed": seed,
        }
        for r in responses.iter_rows(named=True)
        for g in grades(gens[r["id"]])
    ]
    df = rows.write(rows.frame(records, "judgments"), args.out, "judgments")
    lineage.write(
        args.out,
        "judgments",
        stage=f"judge@{args.iteration}",
        inputs={"model": args.model, "responses": args.responses},
        params=p,
        sections=("seed", "backend", "judge"),
        seed=seed,
    )
    scored = responses.join(response_scores(df), left_on="id", right_on="response_id", how="left")
    length = length_correlation(
        scored["prompt_id"].to_list(), scored["score"].to_list(), scored["response"].str.len_chars().to_list()
    )
    metrics = {
        "mode": cfg.mode,
        "responses": len(responses),
        **score_summary(df),
        # Spearman of score vs answer characters: within a prompt (mean over prompts) and over all answers
        "length_spearman_within": length["within"],
        "length_spearman_prompts": length["prompts"],
        "length_spearman_pooled": length["pooled"],
        "prompts_cut_to_context": work.truncated_prompts,
    }
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    work.close()
    print(
        f"judge@{args.iteration} ({cfg.mode}): {metrics['grades']} grades, parse rate {metrics['parse_rate']:.0%}, "
        f"mean {metrics['score_mean']}, histogram {metrics['score_hist']}, score-length Spearman within a prompt "
        f"{metrics['length_spearman_within']} ({length['prompts']} prompts) -> {args.out}"
    )


if __name__ == "__main__":
    main()
