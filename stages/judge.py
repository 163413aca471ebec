"""judge@t: M(t-1) grades every response with the additive 5-point rubric (LLM-as-a-Judge).

    python -m stages.judge --iteration 1 --model models/M0 --responses data/iter1/responses.parquet \
        --out data/iter1/judgments.parquet --metrics metrics/iter1/judge.json

judge.mode = sample  (the paper's): K sampled grades per response; `Score: N` is parsed
                     from each; a grade that does not parse is stored with score = null
                     and its raw text, never as 0.
judge.mode = logprob: one forward pass with the assistant turn opened at "Score: ";
                     the next-token distribution over 0..5 is stored, its mean is the score.
Work is committed in shards (stages/shards.py): an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from . import params as P
from . import rows
from . import lineage
from .backend import Backend
from .prompting import SCORES, judge_messages, parse_score
from .shards import Task, Work

LOGPROB_PREFILL = "Score: "


def sample_grades(texts: list[str]) -> list[dict]:
    return [{"grade": g, "score": parse_score(t), "raw": t, "probs": []} for g, t in enumerate(texts)]


def logprob_grades(probs: list[float]) -> list[dict]:
    return [{"grade": 0, "score": sum(s * q for s, q in zip(SCORES, probs)), "raw": "", "probs": probs}]


def judge_sample(backend: Backend, texts: list[str], cfg: P.Judge, seed: int, desc: str) -> list[list[dict]]:
    outs = backend.generate(texts, n=cfg.k, sampling=cfg, seed=seed, desc=desc)
    return [sample_grades([c.text for c in o]) for o in outs]


def judge_logprob(backend: Backend, texts: list[str], cfg: P.Judge, desc: str) -> list[list[dict]]:
    probs = backend.next_token_probs([t + LOGPROB_PREFILL for t in texts], [str(s) for s in SCORES], cfg.batch_size, desc)
    return [logprob_grades(p) for p in probs]


def judge_task(cfg: P.Judge) -> Task:
    if cfg.mode == "logprob":
        return Task(cfg, n=0, candidates=tuple(str(s) for s in SCORES), prefill=LOGPROB_PREFILL)
    return Task(cfg, n=cfg.k)


def score_summary(judgments: pl.DataFrame) -> dict:
    """Parse rate, mean and histogram (rounded to whole points) of the grades."""
    scores = judgments["score"].drop_nulls()
    hist = {str(s): 0 for s in SCORES}
    for s in scores.round(0).cast(pl.Int64):
        hist[str(s)] += 1
    return {
        "grades": len(judgments),
        "parsed": len(scores),
        "parse_rate": round(len(scores) / len(judgments), 4) if len(judgments) else 0.0,
        "score_mean": round(float(scores.mean()), 4) if len(scores) else None,
        "score_std": round(float(scores.std()), 4) if len(scores) > 1 else None,
        "score_hist": hist,
    }


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
    cfg = p.judge
    responses = rows.read(args.responses, "responses")
    seed = rows.derive_seed(p.seed, "judge", args.iteration)

    items = [(r["id"], judge_messages(r["prompt"], r["response"])) for r in responses.iter_rows(named=True)]
    work = Work(f"judge@{args.iteration}", items, judge_task(cfg), seed, args.model, p.backend, p.shards,
                args.workers, source=str(args.responses))
    gens, model = work.run(), work.model_name

    def grades(gs: list[dict]) -> list[dict]:
        return logprob_grades(gs[0]["probs"]) if cfg.mode == "logprob" else sample_grades([g["text"] for g in gs])

    # a grade that parses nothing (even a whole batch of them) is stored as null: the validate gate decides
    records = [{
        **g, "id": rows.content_id(r["id"], g["grade"], model, cfg.mode),
        "response_id": r["id"], "prompt_id": r["prompt_id"], "mode": cfg.mode, "model": model, "seed": seed,
    } for r in responses.iter_rows(named=True) for g in grades(gens[r["id"]])]
    df = rows.write(rows.frame(records, "judgments"), args.out, "judgments")
    lineage.write(args.out, "judgments", stage=f"judge@{args.iteration}", inputs={"model": args.model, "responses": args.responses},
                  params=p, sections=("seed", "backend", "judge"), seed=seed)
    metrics = {"mode": cfg.mode, "responses": len(responses), **score_summary(df), "prompts_cut_to_context": work.truncated_prompts}
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    work.close()
    print(f"judge@{args.iteration} ({cfg.mode}): {metrics['grades']} grades, parse rate {metrics['parse_rate']:.0%}, "
          f"mean {metrics['score_mean']}, histogram {metrics['score_hist']} -> {args.out}")


if __name__ == "__main__":
    main()
