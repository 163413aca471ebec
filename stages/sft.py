"""sft: M0 = the base model fine-tuned with TRL on IFT (instruction following) and
EFT (LLM-as-a-Judge) rows, as prompt/completion conversations so the loss covers only
the assistant's reply. With sft.compare_pairs, EFT answers of one question also become
"which answer is better" examples in both orders (the comparative judge of evaluate).

    python -m stages.sft --base models/base --ift data/seed/ift.parquet --eft data/seed/eft.parquet \
        --out models/M0 --metrics metrics/sft.json
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from . import params as P
from . import rows, timing
from .errors import entry
from .models import check_model_dir, load_model, save_model
from .prompting import COMPARE_PREFILL, compare_messages, judge_messages
from .training import is_main_process, lora_config, loss_summary, relaunch, trainer_args


def eft_answer_chars(max_length: int) -> int:
    """TRL cuts an over-long example from the right, which would cut "Score: N" off an EFT target; so the
    judged answer is trimmed instead (about 3 characters a token; rubric and judgment take about 300 tokens)."""
    return max(200, (max_length - 300) * 3)


def compare_examples(eft, pairs: int, max_length: int, seed: int) -> list[dict]:
    """Up to `pairs` (better, worse) answer pairs of one question, from EFT rows whose scores differ, each
    shown in both orders so that neither position is the better one more often."""
    found = []
    for _, g in eft.group_by("instruction", maintain_order=True):
        answers = list(zip(g["score"], g["response"]))
        found += [(g["instruction"][0], a, b) for i, a in enumerate(answers) for b in answers[i + 1 :] if a[0] != b[0]]
    chosen = random.Random(seed).sample(found, min(pairs, len(found)))
    cut = eft_answer_chars(max_length) // 2  # two answers share the prompt
    ex = []
    for q, (sa, ra), (sb, rb) in chosen:
        better_first = sa > sb
        for first, second, label in ((ra, rb, "1" if better_first else "2"), (rb, ra, "2" if better_first else "1")):
            ex.append(
                {
                    "prompt": compare_messages(q, first[:cut], second[:cut]),
                    "completion": [{"role": "assistant", "content": COMPARE_PREFILL + label}],
                }
            )
    return ex


def sft_examples(ift, eft, max_length: int = 100_000, compare_pairs: int = 0, seed: int = 0) -> list[dict]:
    ex = [
        {
            "prompt": [{"role": "user", "content": r["instruction"]}],
            "completion": [{"role": "assistant", "content": r["response"]}],
        }
        for r in ift.iter_rows(named=True)
    ]
    cut = eft_answer_chars(max_length)
    ex += [
        {
            "prompt": judge_messages(r["instruction"], r["response"][:cut]),
            "completion": [{"role": "assistant", "content": r["judgment"]}],
        }
        for r in eft.iter_rows(named=True)
    ]
    return ex + compare_examples(eft, compare_pairs, max_length, seed)


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--ift", type=Path, required=True)
    ap.add_argument("--eft", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    rows.all_or_none(args.out, args.metrics)
    check_model_dir(args.base)
    ift, eft = rows.read(args.ift, "ift"), rows.read(args.eft, "eft")
    if relaunch(p.sft, "stages.sft", argv):  # sft.num_processes > 1: the same stage, one process per device
        return

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    timing.mark("imports")
    t0 = time.time()
    tok, model = load_model(args.base, p.backend.trust_remote_code)
    data = Dataset.from_list(sft_examples(ift, eft, p.sft.max_length, p.sft.compare_pairs, p.seed)).shuffle(
        seed=p.seed
    )
    with tempfile.TemporaryDirectory() as work:
        trainer = SFTTrainer(
            model=model,
            processing_class=tok,
            train_dataset=data,
            peft_config=lora_config(p.sft),
            args=SFTConfig(**trainer_args(p.sft, p.seed, Path(work)), completion_only_loss=True),
        )
        timing.mark("load")  # weights, data, trainer (and LoRA) set up
        trainer.train()
        timing.mark("train")
        if not is_main_process(trainer):
            return
        save_model(trainer.model, tok, args.out)
    metrics = {
        "examples": len(data),
        "ift": len(ift),
        "eft": len(eft),
        "compare": len(data) - len(ift) - len(eft),
        **loss_summary(trainer),
        "seconds": round(time.time() - t0, 1),
        "processes": trainer.accelerator.num_processes,
    }
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    print(
        f"sft: {len(ift)} IFT + {len(eft)} EFT examples, {metrics['steps']} steps, "
        f"loss {metrics['loss_first']} -> {metrics['loss_last']}, {metrics['seconds']}s -> {args.out}"
    )


if __name__ == "__main__":
    main()
