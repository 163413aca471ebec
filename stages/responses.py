"""responses@t: M(t-1) samples N candidate answers per prompt.

    python -m stages.responses --iteration 1 --model models/M0 --prompts data/iter1/prompts.parquet \
        --out data/iter1/responses.parquet --metrics metrics/iter1/responses.json

A response's id hashes its prompt id, text and generating model, so identical samples
collapse into one row (counted as `duplicates`); empty samples are dropped and counted.
Work is committed in shards (stages/engine/shards.py): an interrupted run resumes where it stopped;
`--workers N` splits the shards over N processes with the same rows as one.

With `pairs.temporal` (docs/recipes.md) the anchor model (`--anchor`, models/M0) answers the same prompts too,
N samples each, in the same file (its rows' `model` is the anchor's folder); where the anchor is M(t-1) itself
(iteration 1) nothing more is sampled. The metrics describe M(t-1)'s answers, the anchor's under `anchor`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from stages.core import lineage, rows
from stages.core import params as P
from stages.core.errors import SrlmError, entry
from stages.engine.backend import PARAMS as BACKEND
from stages.engine.shards import Task, Work
from stages.judging.text import loops

# the params this stage reads: dvc.yaml's params list and the lineage record (python -m stages.commands.dag write)
PARAMS = (
    "seed",
    "replicate",
    *BACKEND,
    "responses",
    "pairs.temporal",
    "shards.size",
)


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iteration", type=int, required=True)
    ap.add_argument("--model", type=Path, required=True, help="M(t-1) folder")
    ap.add_argument("--prompts", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--anchor", type=Path, help="pairs.temporal: the anchor model folder (models/M0)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--workers", type=int, help="processes sharing the shards (default: shards.workers)")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    rows.all_or_none(args.out, lineage.path_for(args.out), args.metrics)
    cfg = p.responses
    prompts = rows.read(args.prompts, "prompts")
    seed = p.loop_seed("responses", args.iteration)

    items = [(i, [{"role": "user", "content": t}]) for i, t in zip(prompts["id"], prompts["prompt"])]
    models = [(f"responses@{args.iteration}", args.model, seed)]
    if p.pairs.temporal:
        if args.anchor is None:
            raise SrlmError("error: pairs.temporal is true but responses was given no --anchor (e.g. models/M0)")
        if args.anchor.resolve() != args.model.resolve():
            models.append((f"responses@{args.iteration}/anchor", args.anchor, rows.derive_seed(seed, "anchor")))
    works = [
        Work(stage, items, Task(cfg, n=cfg.n), s, m, p.backend, p.shards, args.workers, source=str(args.prompts))
        for stage, m, s in models
    ]
    records, seen, counts = [], set(), []
    for work, (_, _, s) in zip(works, models):
        outs, model, empty, dup = work.run(), work.model_name, 0, 0
        for prow in prompts.iter_rows(named=True):
            for k, c in enumerate(outs[prow["id"]]):
                rid = rows.content_id(prow["id"], c["text"], model)
                if not c["text"].strip():
                    empty += 1
                elif rid in seen:
                    dup += 1
                else:
                    seen.add(rid)
                    records.append(
                        {
                            "id": rid,
                            "prompt_id": prow["id"],
                            "prompt": prow["prompt"],
                            "response": c["text"],
                            "sample": k,
                            "n_tokens": c["n_tokens"],
                            "truncated": c["truncated"],
                            "loops": loops(c["text"]),
                            "model": model,
                            "seed": s,
                        }
                    )
        counts.append((model, empty, dup))
    df = rows.write(rows.frame(records, "responses"), args.out, "responses")
    lineage.write(
        args.out,
        "responses",
        stage=f"responses@{args.iteration}",
        inputs={"model": args.model, "prompts": args.prompts} | ({"anchor": args.anchor} if len(works) > 1 else {}),
        params=p,
        sections=PARAMS,
        seed=seed,
    )
    (model, empty, dup), *anchor = counts
    metrics = {"prompts": len(prompts), **answer_metrics(df.filter(pl.col("model") == model), empty, dup)}
    metrics["prompts_cut_to_context"] = sum(w.truncated_prompts for w in works)
    if anchor:
        a_model, a_empty, a_dup = anchor[0]
        metrics["anchor"] = {"model": a_model, **answer_metrics(df.filter(pl.col("model") == a_model), a_empty, a_dup)}
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    for work in works:
        work.close()
    print(
        f"responses@{args.iteration}: {metrics['responses']} responses for {len(prompts)} prompts "
        f"(empty {empty}, duplicates {dup}, mean {metrics['mean_tokens']} tokens, {len(works[0].shards)} shards, "
        f"{works[0].resumed} resumed)"
        + (f", and {metrics['anchor']['responses']} of the anchor {anchor[0][0]}" if anchor else "")
        + f" -> {args.out}"
    )


def answer_metrics(df: pl.DataFrame, empty: int, dup: int) -> dict:
    """Count, length, truncation and looping of one model's answers."""
    tokens = df["n_tokens"]
    return {
        "responses": len(df),
        "empty": empty,
        "duplicates": dup,
        "mean_tokens": round(float(tokens.mean() or 0), 1),
        "max_tokens": int(tokens.max() or 0),
        "truncated": int(df["truncated"].sum()),  # stopped at max_new_tokens
        "truncated_share": round(float(df["truncated"].mean() or 0), 4),
        "loops": int(df["loops"].sum()),  # repeat a span of themselves (stages/judging/text.py)
        "loops_share": round(float(df["loops"].mean() or 0), 4),
    }


if __name__ == "__main__":
    main()
