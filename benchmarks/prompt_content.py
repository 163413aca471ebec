"""Benchmark: what prompts@t keeps of a model's self-instruct generations, before and after the prompt-content rules.

    python benchmarks/prompt_content.py --model models/base --n 48 [--iteration 1] [--out content.json]

Runs prompts@t itself (params.yaml with prompts.n = N, in a scratch folder) and keeps its committed shards: the
raw generations. Then it replays them, in the stage's order, through the stage's own functions three ways:
  before  parse_instruction and the length / near-duplicate filters only (prompts@t before stages/judging/prompt_content.py)
  cut     prompts.multi_request: cut (several requests run together are cut at the first continuation marker)
  drop    prompts.multi_request: drop
and prints, for each, how many prompts are kept, why the others were dropped, how many kept prompts are not one
request (stages/judging/prompt_content.py: classify), and the kept prompts. --out writes the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages import prompts  # noqa: E402
from stages.core import params as P  # noqa: E402
from stages.core import rows  # noqa: E402
from stages.engine import shards  # noqa: E402
from stages.judging.prompt_content import classify, numbered  # noqa: E402
from stages.judging.prompting import parse_instruction  # noqa: E402


def replay(parsed: list[str], pool: list[str], cfg: P.Prompts, mode: str) -> dict:
    if mode == "before":
        classify_now, prompts.classify = prompts.classify, lambda text: "ok"  # the content rules off
        try:
            kept, reasons = prompts.filter_prompts(parsed, pool, cfg)
        finally:
            prompts.classify = classify_now
        texts, cut = parsed, 0
    else:
        texts, cut = prompts.cut_multi_requests(parsed, mode)
        kept, reasons = prompts.filter_prompts(texts, pool, cfg.model_copy(update={"multi_request": mode}))
    return {
        "kept": len(kept),
        "cut": cut,
        "dropped": dict(sorted(reasons.items())),
        "kept_not_one_request": dict(Counter(c for i in kept if (c := classify(texts[i])) != "ok")),
        "prompts": [texts[i] for i in kept],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--n", type=int, default=48, help="prompts.n: generations asked for")
    ap.add_argument("--iteration", type=int, default=1)
    ap.add_argument("--pool", type=Path, default=ROOT / "data/seed/ift.jsonl", help="the seed IFT set (jsonl)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    model, out = args.model.resolve(), args.out.resolve() if args.out else None
    raw_params = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw_params["prompts"]["n"] = args.n
    work = Path(tempfile.mkdtemp(prefix="srlm-content-"))
    os.chdir(work)
    Path("params.yaml").write_text(yaml.safe_dump(raw_params, sort_keys=False))
    pool = [json.loads(line)["instruction"] for line in args.pool.read_text().splitlines() if line.strip()]
    ids = [rows.content_id(i) for i in pool]
    rows.write(
        rows.frame([{"id": i, "instruction": t, "response": "", "source": "seed"} for i, t in zip(ids, pool)], "ift"),
        "pool.parquet",
        "ift",
    )
    shards.Work.close = lambda self: None  # keep the committed shards: they hold the raw generations
    prompts.main(
        [
            "--iteration",
            str(args.iteration),
            "--model",
            str(model),
            "--pool",
            "pool.parquet",
            "--out",
            "prompts.parquet",
        ]
    )
    p = P.load("params.yaml")
    # the stage's draws, in its order (stages/prompts.py)
    rng = random.Random(rows.derive_seed(p.seed, "prompts", args.iteration))
    shots = [rng.sample(range(len(pool)), p.prompts.fewshot) for _ in range(p.prompts.n)]
    draws = [rows.content_id(k, [ids[j] for j in s]) for k, s in enumerate(shots)]
    gens = pl.concat([pl.read_parquet(f) for f in sorted(Path(p.shards.work_dir).rglob("part-*.parquet"))])
    text = dict(zip(gens["item"], gens["text"]))
    raw = [text[d] for d in draws]
    parsed = [parse_instruction(t) for t in raw]
    result = {
        "model": str(args.model),
        "generations": len(raw),
        "numbered": sum(numbered(t) for t in raw),
        "content": dict(Counter(classify(t) for t in parsed if t)),
        **{mode: replay(parsed, pool, p.prompts, mode) for mode in ("before", "cut", "drop")},
    }
    for mode in ("before", "cut", "drop"):
        r = result[mode]
        print(
            f"\n== {mode}: kept {r['kept']} of {len(raw)}, cut {r['cut']}, dropped {r['dropped']}, "
            f"kept but not one request {r['kept_not_one_request']}"
        )
        for t in r["prompts"]:
            print(f"   {t[:110]!r}")
    print(f"\n{len(raw)} generations: {result['numbered']} start with a list marker; content {result['content']}")
    if out:
        out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
