"""dpo@t: train M(t) from M(t-1) on the iteration's preference pairs with TRL's DPOTrainer.

    python -m stages.dpo --iteration 1 --model models/M0 --preferences data/iter1/preferences.parquet \
        --validation metrics/iter1/verdict.json --out models/M1 --metrics metrics/iter1/dpo.json

The reference model is M(t-1) itself (with LoRA: the adapter switched off, so no second
copy is held), or with `dpo.reference: m0` the SFT model M0 (`--reference`, loaded beside the policy).
Refuses to train unless the iteration's validation passed or was explicitly overridden.

Recipes (docs/recipes.md): `--judge-pairs` (meta_judge@t's judge-preference pairs, empty unless
meta_judge.enabled) are trained beside the answer pairs; `dpo.nll_weight` adds the chosen answers' NLL
(Iterative RPO) and `dpo.ld_alpha` down-weights the longer answer's extra tokens (LD-DPO), both TRL options.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl

from stages.core import lineage, rows, timing
from stages.core import params as P
from stages.core.errors import SrlmError, entry, interruptible
from stages.engine.models import check_model_dir, load_model, save_model
from stages.engine.training import is_main_process, lora_config, loss_summary, relaunch, trainer_args

# the params this stage reads: dvc.yaml's params list and the lineage record (python -m stages.commands.dag write)
PARAMS = ("seed", "replicate", "backend.trust_remote_code", "dpo")


def loss_options(cfg: P.Dpo) -> dict:
    """DPOConfig's loss arguments for the dpo knobs: plain sigmoid DPO, + the chosen answers' token-mean NLL
    weighted nll_weight (TRL 1.16 removed rpo_alpha; ["sigmoid", "sft"] with weights [1, alpha] is its
    replacement), and LD-DPO's ld_alpha."""
    out: dict = {"loss_type": ["sigmoid"]}
    if cfg.nll_weight > 0:
        out = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, cfg.nll_weight]}
    if cfg.ld_alpha is not None:
        out["ld_alpha"] = cfg.ld_alpha
    return out


def reference_model(cfg: P.Dpo, policy: Path, m0: Path | None) -> Path | None:
    """The folder of a reference model other than the policy's start, or None (TRL then uses the policy's start:
    M(t-1)). dpo.reference m0 names M0, unless M0 is the policy's start (iteration 1)."""
    if cfg.reference == "previous":
        return None
    if m0 is None:
        raise SrlmError("error: dpo.reference is m0 but dpo was given no --reference (the M0 folder, models/M0)")
    return None if m0.resolve() == policy.resolve() else check_model_dir(m0)


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iteration", type=int, required=True)
    ap.add_argument("--model", type=Path, required=True, help="M(t-1) folder: policy start and reference")
    ap.add_argument("--preferences", type=Path, required=True)
    ap.add_argument("--validation", type=Path, required=True, help="validate@t's verdict JSON (verdict.json)")
    ap.add_argument("--out", type=Path, required=True, help="M(t) folder to write")
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--judge-pairs", type=Path, help="meta_judge@t's judge-preference pairs (meta_judgments)")
    ap.add_argument("--reference", type=Path, help="dpo.reference m0: the M0 folder")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    rows.all_or_none(args.out, args.metrics)
    check_model_dir(args.model)
    reference = reference_model(p.dpo, args.model, args.reference)
    verdict = rows.read_json(args.validation)
    if verdict is None:
        raise SrlmError(f"error: {args.validation} is missing: run validate@{args.iteration} first")
    if not isinstance(verdict, dict) or not isinstance(verdict.get("passed"), bool):
        raise SrlmError(f"error: {args.validation} is not a validate@{args.iteration} result (no passed: true/false)")
    if not (verdict.get("passed") or verdict.get("overridden")):
        raise SrlmError(f"error: validation of iteration {args.iteration} failed; not training")
    prefs = rows.read(args.preferences, "preferences")
    checked = verdict.get("preferences_md5")  # the verdict holds for the file validate checked, not any other
    if checked != lineage.md5(args.preferences):
        raise SrlmError(
            f"error: {args.validation} is not a verdict on {args.preferences}: "
            + (f"it checked a file with md5 {checked}" if checked else "it names no preferences_md5")
            + f"; rerun validate@{args.iteration} on it"
        )
    if prefs.is_empty():
        raise SrlmError(f"error: {args.preferences} has no pairs to train on")
    judge_pairs = rows.read(args.judge_pairs, "meta_judgments") if args.judge_pairs else rows.empty("meta_judgments")
    if relaunch(p.dpo, "stages.dpo", argv):  # dpo.num_processes > 1: the same stage, one process per device
        return

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    timing.mark("imports")
    t0 = time.time()
    tok, model = load_model(args.model, p.backend.trust_remote_code)
    ref = load_model(reference, p.backend.trust_remote_code)[1] if reference else None
    cols = ("prompt", "chosen", "rejected")
    data = Dataset.from_list(pl.concat([prefs.select(cols), judge_pairs.select(cols)]).to_dicts())
    # Ctrl-C: one line and exit 130; the model folder and metrics are not written (rows.all_or_none)
    stop = f"dpo@{args.iteration}: interrupted; no model written, rerun to train again"
    with interruptible(stop), tempfile.TemporaryDirectory() as work:
        trainer = DPOTrainer(
            model=model,
            ref_model=ref,
            processing_class=tok,
            train_dataset=data,
            peft_config=lora_config(p.dpo),
            args=DPOConfig(
                **trainer_args(p.dpo, p.loop_seed("dpo", args.iteration), Path(work)),
                beta=p.dpo.beta,
                per_device_eval_batch_size=1,  # the accuracy is then a plain count over the pairs
                **loss_options(p.dpo),
            ),
        )
        timing.mark("load")  # weights, data, trainer (and LoRA) set up
        trainer.train()
        timing.mark("train")
        # the trained policy on all its pairs (a step's log covers one batch): before training the policy is
        # the reference (dpo.reference previous), so the DPO loss is ln 2 = 0.6931 and no pair is ranked; after,
        # how far it moved. With dpo.nll_weight the loss includes the weighted NLL term.
        after = trainer.evaluate(data)
        timing.mark("score")
        if not is_main_process(trainer):
            return
        save_model(trainer.model, tok, args.out)
    correct = round(after["eval_rewards/accuracies"] * len(data))  # answer and judge pairs alike
    metrics = {
        "pairs": len(data),
        "answer_pairs": len(prefs),
        "judge_pairs": len(judge_pairs),
        "reference": (reference or args.model).as_posix(),
        **loss_summary(trainer),
        "loss_pairs_after": round(after["eval_loss"], 4),  # mean DPO loss on the pairs after training
        "reward_accuracy": round(correct / len(data), 4),  # pairs whose chosen answer gains the larger reward
        "reward_correct": correct,  # its 95% interval is the plots stage's (stages/plots.py: dpo_intervals)
        "reward_margin": round(after["eval_rewards/margins"], 4),
        "validation_overridden": bool(verdict.get("overridden")),
        "processes": trainer.accelerator.num_processes,
    }
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    loss = loss_options(p.dpo)
    print(
        f"dpo@{args.iteration}: {len(prefs)} pairs"
        + (f" + {len(judge_pairs)} judge pairs" if len(judge_pairs) else "")
        + f" (reference {metrics['reference']}, loss {' + '.join(loss['loss_type'])}"
        + (f", ld_alpha {loss['ld_alpha']}" if "ld_alpha" in loss else "")
        + f"), {metrics['steps']} steps, loss {metrics['loss_first']} -> {metrics['loss_last']} (on all pairs "
        f"after: {metrics['loss_pairs_after']}), reward accuracy {metrics['reward_accuracy']} "
        f"({correct}/{len(data)}), {time.time() - t0:.1f}s -> {args.out}"
    )


if __name__ == "__main__":
    main()
