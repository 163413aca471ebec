"""EFT on real human rankings for the judge benchmark: build judge-training rows with stages.seed's
converters, cap and trim them, and fine-tune with stages.sft (EFT rows only), so each config is one command.

    python benchmarks/judge_eft.py --base models/base --out /tmp/eft-a --rows 200 --epochs 1 --lr 3e-4 [--full]
    python benchmarks/judge.py --model /tmp/eft-a --prompts 12 --label eft-a

Sources default to ../shared/data/oasst2_en (ranked + quality files); prompts of evaluate.human never occur
there (oasst2 train vs oasst1 validation, see ../shared/data/README.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402
import yaml  # noqa: E402

from stages import params as P  # noqa: E402
from stages import rows, seed, sft  # noqa: E402
from stages.prompting import JUSTIFICATIONS  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "oasst2_en"
SOURCES = {
    "ranked": P.Source(path=str(DATA / "andriswillow_oasst2_en_firstturn_ranked.jsonl"), format="ranked"),
    "quality": P.Source(path=str(DATA / "raulc0399_oasst2_en_firstturn_quality.jsonl"), format="quality"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sources", default="ranked,quality")
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--max-chars", type=int, default=800, help="answers are cut so 'Score: N' survives max_length")
    ap.add_argument("--balance", action="store_true", help="equal rows per score (as the paper balanced EFT scores)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--full", action="store_true", help="full fine-tune instead of LoRA")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument(
        "--batch", type=int, default=1, help="per-device batch; the optimizer step sees --batch x --accum rows"
    )
    ap.add_argument("--accum", type=int, default=8)
    ap.add_argument(
        "--ift-rows", type=int, default=0, help="also train on this many oasst2 top-1 IFT rows, as M0 does"
    )
    ap.add_argument(
        "--reason-first",
        action="store_true",
        help="target the justification, then 'Score: N' (the default target is score first)",
    )
    ap.add_argument(
        "--compare-pairs", type=int, default=0, help="sft.compare_pairs: comparative EFT pairs, both orders"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = Path(args.out + ".work")
    work.mkdir(parents=True, exist_ok=True)
    eft = seed.build([SOURCES[s] for s in args.sources.split(",")], "eft")
    # the lone-answer rule gives 3 to a ranked answer with no sibling: no information, so drop it here
    eft = eft.with_columns(pl.col("response").str.slice(0, args.max_chars))
    if args.balance:
        per = max(1, args.rows // eft["score"].n_unique())
        eft = pl.concat(
            [g.sample(min(per, len(g)), seed=args.seed) for _, g in eft.group_by("score", maintain_order=True)]
        )
    eft = eft.sample(min(args.rows, len(eft)), seed=args.seed, shuffle=True)
    if args.reason_first:  # seed.build already wrote the default (score-first) judgment
        eft = eft.with_columns(
            pl.col("score")
            .map_elements(lambda s: f"{JUSTIFICATIONS[int(s)]}\nScore: {int(s)}", return_dtype=pl.String)
            .alias("judgment")
        )
    rows.write(eft, work / "eft.parquet", "eft")
    ift = rows.empty("ift")
    if args.ift_rows:
        ift = seed.build([P.Source(path=str(DATA / "ift_oasst2_en_top1.jsonl"), format="jsonl")], "ift")
        ift = ift.sample(min(args.ift_rows, len(ift)), seed=args.seed)
    rows.write(ift, work / "ift.parquet", "ift")
    base = yaml.safe_load(Path("params.yaml").read_text())
    base["sft"] = {
        "epochs": args.epochs,
        "learning_rate": args.lr,
        "batch_size": args.batch,
        "grad_accum": args.accum,
        "max_length": args.max_length,
        "lora": not args.full,
        "lora_r": 16,
        "lora_alpha": 32,
        "compare_pairs": args.compare_pairs,
    }
    base["seed"] = args.seed
    (work / "params.yaml").write_text(yaml.safe_dump(base))
    hist = {int(s): int(c) for s, c in eft.group_by("score").len().sort("score").iter_rows()}
    print(f"judge_eft: {len(eft)} EFT rows, scores {hist}; {len(ift)} IFT rows")
    sft.main(
        [
            "--base",
            args.base,
            "--ift",
            str(work / "ift.parquet"),
            "--eft",
            str(work / "eft.parquet"),
            "--out",
            args.out,
            "--metrics",
            str(work / "sft.json"),
            "--params",
            str(work / "params.yaml"),
        ]
    )


if __name__ == "__main__":
    main()
