"""What the sft and dpo stages share: TRL config arguments, LoRA, and an atomic save."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .params import Train


def trainer_args(cfg: Train, seed: int, workdir: Path) -> dict:
    """Keyword arguments common to TRL's SFTConfig and DPOConfig."""
    import torch

    gpu = torch.cuda.is_available()
    return dict(
        output_dir=str(workdir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        max_length=cfg.max_length,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        bf16=gpu,
        use_cpu=not gpu,
        dataloader_num_workers=0,
        disable_tqdm=False,
        gradient_checkpointing=False,  # TRL turns it on by default; a 135M model fits, and it costs ~30% time
    )


def lora_config(cfg: Train):
    if not cfg.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")


def save_model(model, tokenizer, out: Path) -> None:
    """Merge LoRA (if any) into the weights and swap the folder in atomically."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def loss_summary(trainer) -> dict:
    logs = [h for h in trainer.state.log_history if "loss" in h]
    return {
        "steps": trainer.state.global_step,
        "loss_first": round(logs[0]["loss"], 4) if logs else None,
        "loss_last": round(logs[-1]["loss"], 4) if logs else None,
        "loss_curve": [round(h["loss"], 4) for h in logs],
    }
