"""Fault injection on the tiny model: a generation stage killed part-way (SIGKILL, SIGINT) resumes
to the same rows as an uninterrupted run; N worker processes give the same rows as one."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from stages import responses
from stages.core import params, rows
from stages.engine.shards import Task, Work

from .conftest import ROOT, write_params

SMALL = """
responses: {n: 2, max_new_tokens: 12, batch_size: 4, temperature: 1.0}
shards: {size: 2}
"""
N_PROMPTS, N_SHARDS = 16, 8


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Every run here (in-process, subprocess, worker) on one torch thread: the same arithmetic
    everywhere, and no thread-pool spinning on a crowded 2-core machine."""
    import torch

    before, os.environ["OMP_NUM_THREADS"] = torch.get_num_threads(), "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    del os.environ["OMP_NUM_THREADS"]


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("prompts")
    texts = [f"Question {i}: " + " ".join(["explain"] * (i % 7 + 1)) for i in range(N_PROMPTS)]
    df = rows.frame(
        [
            {"id": rows.content_id(t), "prompt": t, "fewshot_ids": [], "iteration": 1, "model": "hand", "seed": 0}
            for t in texts
        ],
        "prompts",
    )
    return rows.write(df, d / "prompts.parquet", "prompts") is not None and d / "prompts.parquet"


def argv(d, model, prompts, out="out.parquet"):
    return [
        "--iteration",
        "1",
        "--model",
        str(model),
        "--prompts",
        str(prompts),
        "--out",
        str(d / out),
        "--params",
        str(d / "params.yaml"),
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model, prompts_file):
    """One uninterrupted single-process run, in its own folder (its own work area)."""
    d = tmp_path_factory.mktemp("reference")
    write_params(d / "params.yaml", SMALL)
    cwd = os.getcwd()
    os.chdir(d)
    try:
        responses.main(argv(d, tiny_model, prompts_file))
    finally:
        os.chdir(cwd)
    assert not (d / ".srlm" / "work" / "responses@1").exists()  # the work area is gone once the output exists
    return (d / "out.parquet").read_bytes()


def start_and_stop(d, model, prompts, sig):
    """Run the stage as a process; `sig` it as soon as a shard is committed, before the last one."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.responses", *argv(d, model, prompts)],
        cwd=d,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    work = d / ".srlm" / "work" / "responses@1"
    while proc.poll() is None and not list(work.rglob("part-*.parquet")):
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    kept = list(work.rglob("part-*.parquet"))
    assert 1 <= len(kept) < N_SHARDS, "the stage was not stopped part-way"
    assert not (d / "out.parquet").exists()
    return proc.returncode, err, len(kept)


def resume(d, model, prompts, monkeypatch, capsys):
    monkeypatch.chdir(d)
    responses.main(argv(d, model, prompts))
    return capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_run_resumes_to_identical_rows(
    sig, reference, tiny_model, prompts_file, tmp_path, monkeypatch, capsys
):
    write_params(tmp_path / "params.yaml", SMALL)
    rc, err, kept = start_and_stop(tmp_path, tiny_model, prompts_file, sig)
    if sig == signal.SIGINT:
        assert rc == 130 and "Traceback" not in err
        assert re.search(rf"responses@1: interrupted; (\d+) of {N_SHARDS} shards kept, rerun to resume", err)
    else:
        assert rc == -signal.SIGKILL
    log = resume(tmp_path, tiny_model, prompts_file, monkeypatch, capsys)
    done = int(re.search(rf"resuming, (\d+) of {N_SHARDS} shards already done", log).group(1))
    assert done >= kept  # a shard finishing between the signal and the exit is kept too
    out = rows.read(tmp_path / "out.parquet", "responses")
    assert out["id"].n_unique() == len(out)
    assert (tmp_path / "out.parquet").read_bytes() == reference
    assert not list((tmp_path / ".srlm").rglob("*.parquet"))


@pytest.mark.slow  # starts two fresh interpreters that each import torch and load the model
def test_two_workers_give_the_rows_of_one(reference, tiny_model, prompts_file, tmp_path, monkeypatch):
    write_params(tmp_path / "params.yaml", SMALL)
    monkeypatch.chdir(tmp_path)
    responses.main([*argv(tmp_path, tiny_model, prompts_file), "--workers", "2"])
    assert (tmp_path / "out.parquet").read_bytes() == reference


def test_changed_params_never_reuse_parts(tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = params.Params.model_validate({**params.load(ROOT / "params.yaml").model_dump(by_alias=True)})
    items = [("a", [{"role": "user", "content": "hi"}])]
    old = Work("responses@1", items, Task(p.responses, n=2), 1, tiny_model, p.backend, p.shards)
    (old.dir / "part-00000.parquet").write_bytes(b"stale")
    hotter = p.responses.model_copy(update={"temperature": 1.5})
    new = Work("responses@1", items, Task(hotter, n=2), 1, tiny_model, p.backend, p.shards)
    assert new.dir != old.dir and not old.dir.exists() and new.done() == []
    assert Work("responses@1", items, Task(hotter, n=2), 2, tiny_model, p.backend, p.shards).dir != new.dir  # seed


def test_prompt_longer_than_the_context_is_cut_and_counted(tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml", SMALL)
    long = "word " * 3000  # about 3000 tokens; the tiny model's context is 2048
    df = rows.frame(
        [
            {"id": rows.content_id(t), "prompt": t, "fewshot_ids": [], "iteration": 1, "model": "hand", "seed": 0}
            for t in (long, "short question")
        ],
        "prompts",
    )
    rows.write(df, tmp_path / "prompts.parquet", "prompts")
    responses.main([*argv(tmp_path, tiny_model, tmp_path / "prompts.parquet"), "--metrics", str(tmp_path / "m.json")])
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["prompts_cut_to_context"] == 1 and metrics["prompts"] == 2
    assert set(rows.read(tmp_path / "out.parquet", "responses")["prompt_id"]) <= set(df["id"])
