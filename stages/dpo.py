"""dpo@t: train M(t) from M(t-1) on the iteration's preference pairs with TRL's DPOTrainer.

    python -m stages.dpo --iteration 1 --model models/M0 --preferences data/iter1/preferences.parquet \
        --validation metrics/iter1/validate.json --out models/M1 --metrics metrics/iter1/dpo.json

The reference model is M(t-1) itself (with LoRA: the adapter switched off, so no second
copy is held). Refuses to train unless the iteration's validation passed or was
explicitly overridden.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from . import params as P
from . import rows, timing
from .errors import SrlmError, entry
from .models import check_model_dir, load_model, save_model
from .stats import ci95
from .training import is_main_process, lora_config, loss_summary, relaunch, trainer_args


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iteration", type=int, required=True)
    ap.add_argument("--model", type=Path, required=True, help="M(t-1) folder: policy start and reference")
    ap.add_argument("--preferences", type=Path, required=True)
    ap.add_argument("--validation", type=Path, required=True, help="validate@t result JSON")
    ap.add_argument("--out", type=Path, required=True, help="M(t) folder to write")
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    rows.all_or_none(args.out, args.metrics)
    check_model_dir(args.model)
    verdict = rows.read_json(args.validation)
    if verdict is None:
        raise SrlmError(f"error: {args.validation} is missing: run validate@{args.iteration} first")
    if not isinstance(verdict, dict) or not isinstance(verdict.get("passed"), bool):
        raise SrlmError(f"error: {args.validation} is not a validate@{args.iteration} result (no passed: true/false)")
    if not (verdict.get("passed") or verdict.get("overridden")):
        raise SrlmError(f"error: validation of iteration {args.iteration} failed; not training")
    prefs = rows.read(args.preferences, "preferences")
    if prefs.is_empty():
        raise SrlmError(f"error: {args.preferences} has no pairs to train on")
    if relaunch(p.dpo, "stages.dpo", argv):  # dpo.num_processes > 1: the same stage, one process per device
        return

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    timing.mark("imports")
    t0 = time.time()
    tok, model = load_model(args.model, p.backend.trust_remote_code)
    data = Dataset.from_list(prefs.select("prompt", "chosen", "rejected").to_dicts())
    with tempfile.TemporaryDirectory() as work:
        trainer = DPOTrainer(
            model=model,
            ref_model=None,
            processing_class=tok,
            train_dataset=data,
            peft_config=lora_config(p.dpo),
            args=DPOConfig(
                **trainer_args(p.dpo, rows.derive_seed(p.seed, "dpo", args.iteration), Path(work)),
                beta=p.dpo.beta,
                per_device_eval_batch_size=1,  # the accuracy is then a plain count over the pairs
            ),
        )
        timing.mark("load")  # weights, data, trainer (and LoRA) set up
        trainer.train()
        timing.mark("train")
        # the trained policy on all its pairs (a step's log covers one batch): before training the policy is
        # the reference, so the loss is ln 2 = 0.6931 and no pair is ranked; after, how far it moved
        after = trainer.evaluate(data)
        timing.mark("score")
        if not is_main_process(trainer):
            return
        save_model(trainer.model, tok, args.out)
    correct = round(after["eval_rewards/accuracies"] * len(prefs))
    metrics = {
        "pairs": len(prefs),
        **loss_summary(trainer),
        "loss_pairs_after": round(after["eval_loss"], 4),  # mean DPO loss on the pairs after training
        "reward_accuracy": round(correct / len(prefs), 4),  # pairs whose chosen answer gains the larger reward
        "reward_accuracy_ci95": ci95(correct, len(prefs)),
        "reward_margin": round(after["eval_rewards/margins"], 4),
        "validation_overridden": bool(verdict.get("overridden")),
        "processes": trainer.accelerator.num_processes,
    }
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    print(
        f"dpo@{args.iteration}: {len(prefs)} pairs, {metrics['steps']} steps, loss {metrics['loss_first']} -> "
        f"{metrics['loss_last']} (on all pairs after: {metrics['loss_pairs_after']}), reward accuracy "
        f"{metrics['reward_accuracy']} {metrics['reward_accuracy_ci95']}, {time.time() - t0:.1f}s -> {args.out}"
    )


if __name__ == "__main__":
    main()
