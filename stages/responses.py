"""responses@t: M(t-1) samples N candidate answers per prompt.

    python -m stages.responses --iteration 1 --model models/M0 --prompts data/iter1/prompts.parquet \
        --out data/iter1/responses.parquet --metrics metrics/iter1/responses.json

A response's id hashes its prompt id, text and generating model, so identical samples
collapse into one row (counted as `duplicates`); empty samples are dropped and counted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import params as P
from . import rows
from . import lineage
from .backend import make_backend


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iteration", type=int, required=True)
    ap.add_argument("--model", type=Path, required=True, help="M(t-1) folder")
    ap.add_argument("--prompts", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    cfg = p.responses
    prompts = rows.read(args.prompts, "prompts")
    seed = rows.derive_seed(p.seed, "responses", args.iteration)

    backend = make_backend(p.backend, args.model)
    texts = [backend.chat([{"role": "user", "content": t}]) for t in prompts["prompt"]]
    outs = backend.generate(texts, n=cfg.n, sampling=cfg, seed=seed, desc=f"responses@{args.iteration}")
    backend.close()

    records, seen, empty, dup = [], set(), 0, 0
    for prow, samples in zip(prompts.iter_rows(named=True), outs):
        for k, c in enumerate(samples):
            rid = rows.content_id(prow["id"], c.text, backend.model_name)
            if not c.text.strip():
                empty += 1
            elif rid in seen:
                dup += 1
            else:
                seen.add(rid)
                records.append({"id": rid, "prompt_id": prow["id"], "prompt": prow["prompt"], "response": c.text,
                                "sample": k, "n_tokens": c.n_tokens, "model": backend.model_name, "seed": seed})
    df = rows.write(rows.frame(records, "responses"), args.out, "responses")
    lineage.write(args.out, "responses", stage=f"responses@{args.iteration}", inputs={"model": args.model, "prompts": args.prompts},
                  params=p, sections=("seed", "backend", "responses"), seed=seed)
    tokens = df["n_tokens"]
    metrics = {"prompts": len(prompts), "responses": len(df), "empty": empty, "duplicates": dup,
               "mean_tokens": round(float(tokens.mean() or 0), 1), "max_tokens": int(tokens.max() or 0),
               "truncated": int((tokens >= cfg.max_new_tokens).sum())}
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    print(f"responses@{args.iteration}: {len(df)} responses for {len(prompts)} prompts "
          f"(empty {empty}, duplicates {dup}, mean {metrics['mean_tokens']} tokens) -> {args.out}")


if __name__ == "__main__":
    main()
