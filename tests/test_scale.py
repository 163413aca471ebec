"""Past one process: `accelerate launch` from the training stages, and the optional vLLM backend."""

import importlib.util
import json

import pytest

from stages import dpo
from stages.core import lineage, rows
from stages.core.errors import SrlmError
from stages.engine import backend as B
from stages.engine import training

from .conftest import knobs, write_params

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_one_process_trains_in_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert training.accelerate_command(knobs("dpo"), "stages.dpo", ["--x"]) is None


def test_more_processes_relaunch_under_accelerate(monkeypatch, tmp_path):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    cmd = training.accelerate_command(knobs("dpo", num_processes=2), "stages.dpo", ["--iteration", "1"])
    assert cmd[1:4] == ["-m", "accelerate.commands.launch", "--num_processes"] and cmd[4] == "2"
    assert "--multi_gpu" in cmd and cmd[-4:] == ["-m", "stages.dpo", "--iteration", "1"]
    # a user's accelerate config (FSDP, DeepSpeed, several machines) is passed through instead
    cfg = tmp_path / "fsdp.yaml"
    cfg.write_text("distributed_type: FSDP\n")
    cmd = training.accelerate_command(knobs("sft", num_processes=4, accelerate_config=str(cfg)), "stages.sft", [])
    assert cmd[cmd.index("--config_file") + 1] == str(cfg) and "--multi_gpu" not in cmd
    with pytest.raises(SrlmError, match="does not exist"):
        training.accelerate_command(knobs("sft", accelerate_config=str(tmp_path / "nope.yaml")), "stages.sft", [])
    # inside a launched process the stage trains instead of launching again
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert training.accelerate_command(knobs("dpo", num_processes=2), "stages.dpo", []) is None


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed: this checks the error without it")
def test_vllm_backend_without_vllm_is_a_clear_error(tiny_model):
    with pytest.raises(SrlmError, match=r"vllm cannot be imported.*srlm\[vllm\]"):
        B.make_backend(knobs("backend", name="vllm"), tiny_model)


def _prefs(n: int) -> list[dict]:
    out = []
    for i in range(n):
        q = f"Question {i}: name a colour{'!' * i}"
        good, bad = f"Blue is a colour, number {i}.", "no" * (i + 1)
        out.append(
            {
                "id": rows.content_id(q, good, bad),
                "prompt_id": rows.content_id(q),
                "prompt": [{"role": "user", "content": q}],
                "chosen": [{"role": "assistant", "content": good}],
                "rejected": [{"role": "assistant", "content": bad}],
                "chosen_id": rows.content_id(good),
                "rejected_id": rows.content_id(bad),
                "score_chosen": 4.0,
                "score_rejected": 1.0,
                "iteration": 1,
            }
        )
    return out


@pytest.mark.slow
def test_two_process_dpo_matches_one_process(tiny_model, tmp_path):
    """DDP over 2 gloo processes with per-device batch 1 sees the same global batches as one
    process with batch 2: the loss curves agree up to rounding."""
    rows.write(rows.frame(_prefs(8), "preferences"), tmp_path / "prefs.parquet", "preferences")
    md5 = lineage.md5(tmp_path / "prefs.parquet")
    (tmp_path / "v.json").write_text(json.dumps({"passed": True, "overridden": False, "preferences_md5": md5}))
    curves = {}
    for procs, batch in ((1, 2), (2, 1)):
        cfg = write_params(
            tmp_path / f"p{procs}.yaml",
            "dpo: {max_steps: 3, batch_size: %d, grad_accum: 1, max_length: 64, "
            "lora: true, lora_r: 4, lora_alpha: 8, learning_rate: 0.01, num_processes: %d}" % (batch, procs),
        )
        metrics = tmp_path / f"dpo{procs}.json"
        dpo.main(
            [
                "--iteration",
                "1",
                "--params",
                str(cfg),
                "--model",
                str(tiny_model),
                "--preferences",
                str(tmp_path / "prefs.parquet"),
                "--validation",
                str(tmp_path / "v.json"),
                "--out",
                str(tmp_path / f"M{procs}"),
                "--metrics",
                str(metrics),
            ]
        )
        m = json.loads(metrics.read_text())
        assert m["processes"] == procs and m["steps"] == 3 and (tmp_path / f"M{procs}" / "config.json").exists()
        curves[procs] = m["loss_curve"]
    assert curves[2] == pytest.approx(curves[1], abs=2e-3)
    assert curves[1][0] != curves[1][-1]  # it trained: a flat curve would match trivially
