"""prompts@t: M(t-1) writes new instructions by few-shot self-instruction.

    python -m stages.prompts --iteration 1 --model models/M0 --pool data/seed/ift.parquet \
        --out data/iter1/prompts.parquet --metrics metrics/iter1/prompts.json

Each generation sees `prompts.fewshot` instructions drawn (seeded) from the IFT pool and is
parsed into one new instruction. A small model often continues the numbered examples instead
(stages/judging/prompt_content.py): several requests run together are cut at the first continuation marker
(`prompts.multi_request: cut`, chosen by measurement, BENCHMARKS.md "Prompt content") or dropped (`drop`).
Dropped, and counted by reason: empty, too short or too long, scaffolding (no request: list markers
only, a bare lead-in, the template's own words), multi_request (drop mode), and near-duplicates
(word-level LCS similarity, as Self-Instruct's ROUGE-L filter) of the pool or of a prompt already
kept. Generation is committed in shards of few-shot draws (stages/engine/shards.py): an interrupted run
resumes where it stopped.

Verifiable constraints (docs/checks.md): a seeded `checks.share` of the kept prompts get `checks.per_prompt`
constraints appended in plain words ("Answer in at most 40 words."), drawn from `checks.kinds`; the prompt text
is the request with its constraints, and the `constraints` column holds them for checks@t.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path

from stages.core import lineage, rows
from stages.core import params as P
from stages.core.errors import SrlmError, entry
from stages.engine.backend import PARAMS as BACKEND
from stages.engine.shards import Task, Work
from stages.judging import checks
from stages.judging.prompt_content import classify, cut_at_continuation, numbered
from stages.judging.prompting import parse_instruction, self_instruct_messages
from stages.judging.text import near_duplicate, words

# the params this stage reads: dvc.yaml's params list and the lineage record (python -m stages.commands.dag write)
PARAMS = (
    "seed",
    "replicate",
    *BACKEND,
    "prompts",
    "checks",
    "shards.size",
)


def filter_prompts(candidates: list[str], pool: list[str], cfg: P.Prompts) -> tuple[list[int], Counter]:
    """Indices of the candidates to keep, and the count of each drop reason."""
    reasons: Counter = Counter()
    pool_words = [words(t) for t in pool]
    kept: list[int] = []
    kept_words: list[list[str]] = []
    for i, text in enumerate(candidates):
        if not text:
            reasons["empty"] += 1
        elif len(text) < cfg.min_chars:
            reasons["too_short"] += 1
        elif len(text) > cfg.max_chars:
            reasons["too_long"] += 1
        elif (content := classify(text)) != "ok":
            reasons[content] += 1
        elif near_duplicate(words(text), pool_words, cfg.max_similarity):
            reasons["near_duplicate_of_seed"] += 1
        elif near_duplicate(words(text), kept_words, cfg.max_similarity):
            reasons["near_duplicate_of_kept"] += 1
        else:
            kept.append(i)
            kept_words.append(words(text))
    return kept, reasons


def attach_constraints(
    texts: list[str], cfg: P.Checks, seed: int
) -> tuple[list[str], list[tuple[checks.Constraint, ...]]]:
    """Each text, a seeded `cfg.share` of them with `cfg.per_prompt` constraints appended, and the constraints
    (empty for the others). One rng walks the texts in order, so the draw depends on the seed and texts alone."""
    unknown = checks.check_ids(cfg.kinds)
    if unknown:
        raise SrlmError(
            f"error: params.yaml checks.kinds: unknown constraint kinds {unknown} (known: {', '.join(checks.KINDS)})"
        )
    rng, kinds = random.Random(seed), cfg.kinds or list(checks.KINDS)
    out, attached = [], []
    for text in texts:
        if cfg.share and rng.random() < cfg.share:
            text, cons = checks.attach(text, rng, kinds, cfg.per_prompt)
        else:
            cons = ()
        out.append(text)
        attached.append(cons)
    return out, attached


def cut_multi_requests(texts: list[str], mode: str) -> tuple[list[str], int]:
    """With mode "cut", each multi-request text up to its first continuation marker; and how many were cut.
    With "drop" the texts stay whole and filter_prompts drops the multi-request ones."""
    if mode != "cut":
        return texts, 0
    out = [cut_at_continuation(t) if classify(t) == "multi_request" else t for t in texts]
    return out, sum(a != b for a, b in zip(texts, out))


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iteration", type=int, required=True)
    ap.add_argument("--model", type=Path, required=True, help="M(t-1) folder")
    ap.add_argument("--pool", type=Path, required=True, help="IFT parquet: the few-shot pool")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--workers", type=int, help="processes sharing the shards (default: shards.workers)")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    rows.all_or_none(args.out, lineage.path_for(args.out), args.metrics)
    cfg = p.prompts
    pool = rows.read(args.pool, "ift")
    if len(pool) < cfg.fewshot:
        raise SrlmError(f"error: {args.pool} has {len(pool)} instructions, fewer than prompts.fewshot={cfg.fewshot}")
    seed = p.loop_seed("prompts", args.iteration)
    rng = random.Random(seed)
    shots = [rng.sample(range(len(pool)), cfg.fewshot) for _ in range(cfg.n)]
    instructions, ids = pool["instruction"].to_list(), pool["id"].to_list()

    # a draw's id names its place and its examples, so equal draws stay separate generations
    draws = [rows.content_id(k, [ids[j] for j in s]) for k, s in enumerate(shots)]
    items = [(d, self_instruct_messages([instructions[j] for j in s])) for d, s in zip(draws, shots)]
    work = Work(
        f"prompts@{args.iteration}", items, Task(cfg, n=1), seed, args.model, p.backend, p.shards, args.workers
    )
    outs, model = work.run(), work.model_name
    raw = [outs[d][0]["text"] for d in draws]
    parsed = [parse_instruction(t) for t in raw]
    content = Counter(classify(t) for t in parsed if t)  # an empty generation is counted as dropped "empty"
    candidates, cut = cut_multi_requests(parsed, cfg.multi_request)
    kept, reasons = filter_prompts(candidates, instructions, cfg)
    texts, constraints = attach_constraints([candidates[i] for i in kept], p.checks, rows.derive_seed(seed, "checks"))

    df = rows.frame(
        [
            {
                "id": rows.content_id(text),
                "prompt": text,
                "fewshot_ids": [ids[j] for j in shots[i]],
                "constraints": [c.as_row() for c in cons],
                "iteration": args.iteration,
                "model": model,
                "seed": seed,
            }
            for i, text, cons in zip(kept, texts, constraints)
        ],
        "prompts",
    )
    rows.write(df, args.out, "prompts")
    lineage.write(
        args.out,
        "prompts",
        stage=f"prompts@{args.iteration}",
        inputs={"model": args.model, "pool": args.pool},
        params=p,
        sections=PARAMS,
        seed=seed,
    )
    metrics = {
        "generated": len(candidates),
        "kept": len(df),
        "dropped": dict(sorted(reasons.items())),
        # what the generations were before any cut (stages/judging/prompt_content.py), and what was cut
        "content": {
            "multi_request": content["multi_request"],
            "scaffolding": content["scaffolding"],
            "numbered": sum(numbered(t) for t in raw),
        },
        "flawed_share": round((content["multi_request"] + content["scaffolding"]) / max(len(raw), 1), 4),
        "cut": cut,
        "constrained": sum(bool(c) for c in constraints),  # prompts with constraints appended (checks.share)
        "mean_chars": round(sum(len(t) for t in df["prompt"]) / max(len(df), 1), 1),
        "prompts_cut_to_context": work.truncated_prompts,
    }
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    work.close()
    print(
        f"prompts@{args.iteration}: kept {len(df)} of {len(candidates)} ({dict(reasons) or 'none dropped'}; "
        f"{cut} multi-request generations cut; {metrics['constrained']} with constraints) -> {args.out}"
    )


if __name__ == "__main__":
    main()
