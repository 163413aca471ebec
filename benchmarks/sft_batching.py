"""sft.batching: the compute of one forward and backward pass over the same EFT/IFT examples, batched padded,
grouped by length, or packed (TRL's collators, sdpa attention). Timing only: SmolLM2-135M's shapes with fewer
layers and random weights, so it runs on a CPU in minutes.

    python -u benchmarks/sft_batching.py --base models/base --examples 16 --layers 4 [--repeats 2]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages import seed  # noqa: E402
from stages.core import params as P  # noqa: E402
from stages.judging.eft import sft_examples  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="a model folder (its config and tokenizer are used)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "oasst2_en")
    ap.add_argument("--examples", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8, help="examples per padded / grouped batch")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import torch
    from datasets import Dataset
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    d = args.data
    eft = seed.build(
        [
            P.Source(path=str(d / "andriswillow_oasst2_en_firstturn_ranked.jsonl"), format="ranked"),
            P.Source(path=str(d / "raulc0399_oasst2_en_firstturn_quality.jsonl"), format="quality"),
        ],
        "eft",
    )
    ift = seed.build([P.Source(path=str(d / "ift_oasst2_en_top1.jsonl"), format="jsonl")], "ift")
    ex, _ = sft_examples(ift, eft, 1024, 2000, "none", 0, 0)  # the grid's baseline examples
    ex = random.Random(0).sample(ex, args.examples)
    tok = AutoTokenizer.from_pretrained(args.base)
    cfg = AutoConfig.from_pretrained(args.base)
    cfg.num_hidden_layers = args.layers
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")

    def prepared(packing: bool):
        sft = SFTConfig(
            output_dir="/tmp/sft-batching",
            max_length=1024,
            completion_only_loss=True,
            use_cpu=not torch.cuda.is_available(),
            report_to="none",
            packing=packing,
            packing_strategy="bfd",
        )
        tr = SFTTrainer(model=model, processing_class=tok, train_dataset=Dataset.from_list(ex), args=sft)
        return tr.data_collator, list(tr.train_dataset)

    pad, rows = prepared(False)
    pack, packed = prepared(True)

    def run(batches, collate) -> str:
        t, slots = time.time(), 0
        for b in batches:
            batch = collate(b)
            inp = {
                k: v.to(model.device)
                for k, v in batch.items()
                if k in ("input_ids", "attention_mask", "position_ids", "labels")
            }
            model(**inp).loss.backward()
            model.zero_grad()
            slots += inp["input_ids"].numel()
        return f"{time.time() - t:.1f} s, {slots} token slots"

    print(f"{sum(len(r['input_ids']) for r in rows)} tokens in {len(rows)} examples, {len(packed)} packed rows")
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    by_length = sorted(rows, key=lambda r: len(r["input_ids"]))
    n = args.batch
    for rep in range(args.repeats):
        print(f"repeat {rep + 1}")
        print("  padded: ", run([shuffled[i : i + n] for i in range(0, len(rows), n)], pad), flush=True)
        print("  grouped:", run([by_length[i : i + n] for i in range(0, len(rows), n)], pad), flush=True)
        print("  packed, one flattened batch:", run([packed], pack), flush=True)
        print("  packed, one row per batch:  ", run([[r] for r in packed], pack), flush=True)


if __name__ == "__main__":
    main()
