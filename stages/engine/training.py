"""What the sft and dpo stages share: TRL config arguments, LoRA, an atomic save, and the
`accelerate launch` re-run for more than one training process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from stages.core.errors import SrlmError
from stages.core.params import Train


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

    return LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )


def loss_summary(trainer) -> dict:
    logs = [h for h in trainer.state.log_history if "loss" in h]
    return {
        "steps": trainer.state.global_step,
        "loss_first": round(logs[0]["loss"], 4) if logs else None,
        "loss_last": round(logs[-1]["loss"], 4) if logs else None,
        "loss_curve": [round(h["loss"], 4) for h in logs],
    }


def launched() -> bool:
    """True inside a process started by `accelerate launch` / torchrun."""
    return "WORLD_SIZE" in os.environ or "LOCAL_RANK" in os.environ


def accelerate_command(cfg: Train, module: str, argv: list[str]) -> list[str] | None:
    """The `accelerate launch` command that re-runs `python -m module argv` in cfg.num_processes
    processes, or None when the stage should train in this process."""
    if launched() or (cfg.num_processes == 1 and cfg.accelerate_config is None):
        return None
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(cfg.num_processes)]
    if cfg.accelerate_config:
        if not Path(cfg.accelerate_config).is_file():
            raise SrlmError(f"error: accelerate_config {cfg.accelerate_config} does not exist")
        cmd += ["--config_file", cfg.accelerate_config]
    else:
        # DDP through torchrun: NCCL on GPUs, gloo on CPU (TrainingArguments.use_cpu)
        with socket.socket() as s:  # a free port, so two runs on one box do not collide
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd += ["--multi_gpu", "--num_machines", "1", "--main_process_port", str(port)]
    return [*cmd, "-m", module, *argv]


def relaunch(cfg: Train, module: str, argv: list[str] | None) -> bool:
    """Run the stage under `accelerate launch` when more than one process is asked for.
    Returns True when it did (the caller then returns); exits non-zero if the launch failed."""
    cmd = accelerate_command(cfg, module, sys.argv[1:] if argv is None else argv)
    if cmd is None:
        return False
    print("launching:", " ".join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if rc:
        raise SrlmError(f"error: accelerate launch of {module} failed (exit {rc})")
    return True


def is_main_process(trainer) -> bool:
    return trainer.accelerator.is_main_process
