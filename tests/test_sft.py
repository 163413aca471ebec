"""sft on the tiny model: packed batches give the padded loss, and every batching trains (EFT examples:
tests/test_eft.py)."""

import json

import pytest

from stages import seed, sft

from .conftest import write_params

EXAMPLES = [
    {
        "prompt": [{"role": "user", "content": f"Question {i}: " + "what is this about? " * (i % 4 + 1)}],
        "completion": [{"role": "assistant", "content": f"Answer {i}. " + "It is about that. " * (i % 3 + 1)}],
    }
    for i in range(9)
]


def prepared(tiny_model, tmp_path, packing: bool):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(str(tiny_model)),
        processing_class=AutoTokenizer.from_pretrained(str(tiny_model)),
        train_dataset=Dataset.from_list(EXAMPLES),
        args=SFTConfig(
            output_dir=str(tmp_path / f"out{packing}"),
            max_length=256,
            completion_only_loss=True,
            packing=packing,
            packing_strategy="bfd",
            use_cpu=True,
            report_to="none",
        ),
    )
    return trainer.model, trainer.data_collator, list(trainer.train_dataset)


def summed_loss(model, batch):
    import torch

    labels = batch.pop("labels")
    with torch.no_grad():
        logits = model(
            **{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")}
        ).logits
    lp = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum"
    )
    return float(lp), int((labels[:, 1:] != -100).sum())


def test_packed_padding_free_batch_gives_the_padded_loss(tiny_model, tmp_path):
    """Completion-only labels survive TRL's best-fit-decreasing packing, and the position_ids of a padding-free
    batch keep packed examples from attending to each other (sdpa, float32): same summed loss, same tokens."""
    model, pad_collate, rows = prepared(tiny_model, tmp_path, packing=False)
    _, pack_collate, packed = prepared(tiny_model, tmp_path, packing=True)
    assert len(packed) < len(rows)  # several examples per packed row
    padded_loss, padded_tokens = summed_loss(model, pad_collate(rows))
    packed_loss, packed_tokens = summed_loss(model, pack_collate(packed))
    assert "position_ids" in pack_collate(packed) and "attention_mask" not in pack_collate(packed)
    assert packed_tokens == padded_tokens > 0
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)


@pytest.mark.parametrize("batching", ["grouped", "packed"])
def test_sft_trains_with_each_batching(tmp_path, tiny_model, batching):
    cfg = write_params(
        tmp_path / "params.yaml",
        f"sft: {{max_steps: 2, batch_size: 2, grad_accum: 1, max_length: 1024, lora: false, learning_rate: 1.0e-4, "
        f"compare_pairs: 2, contrastive: 2, batching: {batching}}}",
    )
    seed.main(["--ift", str(tmp_path / "ift.parquet"), "--eft", str(tmp_path / "eft.parquet"), "--params", str(cfg)])
    sft.main(
        [
            "--base",
            str(tiny_model),
            "--ift",
            str(tmp_path / "ift.parquet"),
            "--eft",
            str(tmp_path / "eft.parquet"),
            "--out",
            str(tmp_path / "M0"),
            "--metrics",
            str(tmp_path / "sft.json"),
            "--params",
            str(cfg),
        ]
    )
    m = json.loads((tmp_path / "sft.json").read_text())
    assert m["steps"] == 2 and m["compare"] == 4 and m["contrastive"] == 6
    assert (tmp_path / "M0" / "config.json").exists()
