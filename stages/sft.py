"""sft: M0 = the base model fine-tuned with TRL on IFT (instruction following) and
EFT (LLM-as-a-Judge) examples, as prompt/completion conversations so the loss covers only
the assistant's reply. The EFT examples (pointwise grades, comparative pairs in both orders,
length-contrastive examples; sft.balance, sft.compare_pairs, sft.contrastive) are built by
stages/judging/eft.py. sft.batching decides how examples share a batch (random and padded, grouped by
length, or packed into max_length rows padding-free): the same loss, less compute on padding.

    python -m stages.sft --base models/base --ift data/seed/ift.parquet --eft data/seed/eft.parquet \
        --out models/M0 --metrics metrics/sft.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from stages.core import params as P
from stages.core import rows, timing
from stages.core.errors import SrlmError, entry, interruptible
from stages.engine.models import check_model_dir, load_model, save_model
from stages.engine.training import is_main_process, lora_config, loss_summary, relaunch, trainer_args
from stages.judging.eft import sft_examples

# the params this stage reads: dvc.yaml's params list and the lineage record (python -m stages.commands.dag write)
PARAMS = ("seed", "backend.trust_remote_code", "sft")


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
    if p.sft.train_on == "none":  # an already capable judge: M0 is the base model, byte for byte
        with rows.atomic_dir(args.out) as tmp:
            shutil.copytree(args.base, tmp, dirs_exist_ok=True)
        if args.metrics:
            rows.write_json({"trained": False, "examples": 0, "steps": 0}, args.metrics)
        print(f"sft: sft.train_on is none: M0 = {args.base} as it is -> {args.out}")
        return
    if p.sft.train_on == "eft":  # instruction-tuned already: train the judge only
        ift = ift.head(0)
    if ift.is_empty() and eft.is_empty():  # TRL would end in a StopIteration traceback
        why = (
            f"sft.train_on is eft (judge data only) and {args.eft} has no rows; give seed_data.eft a source (an "
            f"optional one that is absent gives none), or set sft.train_on: ift_eft"
            if p.sft.train_on == "eft"
            else f"{args.ift} and {args.eft} have no rows"
        )
        raise SrlmError(f"error: sft has nothing to train on: {why}")
    if relaunch(p.sft, "stages.sft", argv):  # sft.num_processes > 1: the same stage, one process per device
        return

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    timing.mark("imports")
    t0 = time.time()
    tok, model = load_model(args.base, p.backend.trust_remote_code)
    cfg = p.sft
    examples, counts = sft_examples(ift, eft, cfg.max_length, cfg.compare_pairs, cfg.balance, cfg.contrastive, p.seed)
    if not examples:
        raise SrlmError(f"error: sft has nothing to train on: {args.ift} and {args.eft} give no examples")
    data = Dataset.from_list(examples).shuffle(seed=p.seed)
    # Ctrl-C: one line and exit 130; the model folder and metrics are not written (rows.all_or_none)
    with (
        interruptible("sft: interrupted; no model written, rerun to train again"),
        tempfile.TemporaryDirectory() as work,
    ):
        trainer = SFTTrainer(
            model=model,
            processing_class=tok,
            train_dataset=data,
            peft_config=lora_config(p.sft),
            args=SFTConfig(
                **trainer_args(cfg, p.seed, Path(work)),
                completion_only_loss=True,
                # labels are masked before packing, so the loss stays on the completions; padding-free rows carry
                # position_ids, from which transformers keeps packed examples from attending to each other
                packing=cfg.batching == "packed",
                packing_strategy="bfd",
                train_sampling_strategy="group_by_length" if cfg.batching == "grouped" else "random",
                # tokenising thousands of chat examples takes tens of seconds in one process; the rows do not
                # depend on how many processes share it
                dataset_num_proc=min(8, os.cpu_count() or 1) if len(examples) >= 4096 else None,
            ),
        )
        timing.mark("load")  # weights, data, trainer (and LoRA) set up
        trainer.train()
        timing.mark("train")
        if not is_main_process(trainer):
            return
        save_model(trainer.model, tok, args.out)
    metrics = {
        "examples": len(data),
        **counts,
        **loss_summary(trainer),
        "processes": trainer.accelerator.num_processes,
    }
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    print(
        f"sft: {counts['ift']} IFT + {counts['eft']} EFT + {counts['compare']} comparative + "
        f"{counts['contrastive']} contrastive examples, {metrics['steps']} steps, "
        f"loss {metrics['loss_first']} -> {metrics['loss_last']}, {time.time() - t0:.1f}s -> {args.out}"
    )


if __name__ == "__main__":
    main()
