"""The device runner (benchmarks/device.py): what it copies, the data it packs, the extras it would run, and
`dvc repro` stopped at the time limit and resumed by the next call, on a toy pipeline with the real runner.
(The whole GPU profile through the runner on a CPU, with a tiny model: docs/gpu.md, "Trying the runner on
a CPU"; minutes, so not in the suite.)"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from benchmarks import device

from .conftest import ROOT


@pytest.mark.parametrize(
    "path, skip",
    [
        ("stages/core/params.py", False),
        ("data/seed/ift.jsonl", False),
        ("data/seed/.gitignore", False),
        (".dvc/config", False),
        ("dvc.yaml", False),
        ("dvc.lock", True),
        ("metrics/iter1/eval.json", True),
        ("data/iter1/prompts.parquet", True),
        ("data/iter1/prompts.lineage.json", True),
        ("models/M0/config.json", True),
        (".git/HEAD", True),
        (".carry/gpu/p1/x", True),
        (".dvc/cache/files/md5/ab", True),
        (".dvc/config.local", True),
        ("stages/__pycache__/x.pyc", True),
        ("srlm.egg-info/PKG-INFO", True),
    ],
)
def test_the_copy_leaves_out_outputs_and_tools(path, skip):
    assert device.skipped(Path(path)) is skip


def test_pack_data_holds_exactly_what_the_profile_reads(tmp_path):
    shared = tmp_path / "shared" / "data"
    params = device.merged_params(device.PROFILES)
    paths = device.shared_paths(params)
    assert "../shared/data/oasst2_en/ift_oasst2_en_top1.jsonl" in paths
    assert "../shared/data/oasst1_en_validation/oasst1_en_validation_rank_pairs.jsonl" in paths
    for p in paths:
        f = shared / p[len(device.SHARED) :]
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{}\n")
        (f.parent / "SOURCE.md").write_text("source\n")
    out = tmp_path / "d.tar.xz"
    names = device.pack_data(device.PROFILES, shared, out)
    with tarfile.open(out) as tar:
        assert sorted(tar.getnames()) == sorted(names)
    assert {f"data/{p[len(device.SHARED) :]}" for p in paths} <= set(names)
    assert all(n.startswith("data/") for n in names)


def test_the_python_on_path_is_this_interpreter_with_its_packages(tmp_path):
    env = device.env_for(tmp_path)
    r = subprocess.run(
        ["python", "-c", "import sys, yaml; print(sys.executable)"], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_CACHE_ROOT"].startswith(str(tmp_path))


def _params(tmp_path, over: dict) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "params.yaml").write_text(yaml.safe_dump(device.merged_params(device.PROFILES) | over))
    return repo


def test_extras_commands_follow_the_run(tmp_path):
    repo = _params(tmp_path, {})
    (raw,) = device.extra_commands("raw", repo, tmp_path)
    assert raw[0][2:4] == ["benchmarks.vllm_gpu", "--part"] and "models/M3" in raw[0] and "--no-judge" in raw[0]
    ((before, env),) = device.extra_commands("before", repo, tmp_path)
    assert env["SRLM_TIMING"] == "responses@1.before" and "vllm-before" in env["VLLM_CACHE_ROOT"]
    vp = yaml.safe_load(Path(before[before.index("--params") + 1]).read_text())
    assert vp["backend"]["model_link"] is None and vp["backend"]["vllm_args"] == {} and vp["backend"]["name"] == "vllm"
    ((nocompile, env),) = device.extra_commands("nocompile", repo, tmp_path)
    cc = yaml.safe_load(Path(nocompile[nocompile.index("--params") + 1]).read_text())["backend"]["vllm_args"]
    assert cc["compilation_config"]["mode"] == 0 and cc["compilation_config"]["cudagraph_capture_sizes"][-1] == 1024
    assert cc["kv_cache_memory_bytes"] and env["SRLM_TIMING"] == "responses@1.nocompile"
    (train, _), (evaluate, _) = device.extra_commands("dpo", repo, tmp_path)
    dp = yaml.safe_load(Path(train[train.index("--params") + 1]).read_text())
    assert (
        dp["dpo"]["lora"] is True
        and evaluate[2] == "stages.evaluate"
        and train[train.index("--out") + 1].endswith("M1-lora")
    )
    hf = _params(tmp_path / "hf", {"backend": {"name": "transformers"}})
    assert device.extra_commands("raw", hf, tmp_path) == "the run's backend is not vllm"
    lora = _params(tmp_path / "lora", {"dpo": {"lora": True}})
    assert "already has dpo.lora" in device.extra_commands("dpo", lora, tmp_path)


TOY = """stages:
  fast:
    cmd: python -c "open('a.txt', 'w').write('a')"
    outs: [a.txt]
  slow:
    cmd: python -c "import os, time; time.sleep(float(os.environ['TOY_SLEEP'])); open('b.txt', 'w').write('b')"
    deps: [a.txt]
    outs: [b.txt]
"""


@pytest.mark.skipif(shutil.which("git") is None, reason="dvc init needs no git, but the toy checkout is made here")
def test_repro_stops_at_the_budget_and_the_next_call_resumes(tmp_path, monkeypatch):
    src = tmp_path / "checkout"
    src.mkdir()
    shutil.copy(ROOT / "params.yaml", src / "params.yaml")
    (src / "dvc.yaml").write_text(TOY)
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=src, check=True)
    monkeypatch.setattr(device, "RESERVE_S", 2)
    monkeypatch.setattr(device, "GRACE_S", 5)
    work, out = tmp_path / "work", tmp_path / "out"
    args = argparse.Namespace(
        out=out, budget=12, until=None, work=work, data=None, profile=device.PROFILES, extras=[], reuse=None
    )

    monkeypatch.setattr(device, "missing_packages", lambda backend: ([], []))  # vllm is not here
    monkeypatch.setenv("TOY_SLEEP", "60")
    device.run(args, src)
    state = json.loads((work / "state.json").read_text())
    assert state["calls"][0]["repro"] == "stopped" and not state["done"]
    summary = (out / "summary.md").read_text()
    assert "call 1 (fresh setup)" in summary and "still to build: slow" in summary and "NOT DONE" in summary
    assert yaml.safe_load((work / "repo/params.yaml").read_text())["backend"]["name"] == "vllm"  # profile applied
    assert "no_scm = true" in (work / "repo/.dvc/config.local").read_text()

    monkeypatch.setenv("TOY_SLEEP", "0")
    args.budget = 60
    device.run(args, src)
    state = json.loads((work / "state.json").read_text())
    assert state["done"] and [c["repro"] for c in state["calls"]] == ["stopped", "done"]
    log = (work / "logs/repro.log").read_text()
    assert log.count("Running stage 'fast'") == 1 and log.count("Running stage 'slow'") == 2  # fast was kept
    summary = (out / "summary.md").read_text()
    assert "call 2 (resumed)" in summary and "stages built: 2 of 2" in summary and "pipeline: DONE" in summary
    with tarfile.open(out / "results.tar.gz") as tar:
        assert {"run/params.yaml", "run/dvc.lock", "state.json", "logs/repro.log"} <= set(tar.getnames())
    assert len(os.listdir(out)) <= 8  # what a device call can bring back


def test_results_carry_each_models_ifeval_answers_without_the_prompts(tmp_path):
    import polars as pl

    repo = tmp_path / "repo"
    answers = pl.DataFrame({"prompt_id": ["p1"], "prompt": ["Write in all caps."], "response": ["OK"]})
    for rel in ("data/iter0/ifeval.parquet", "data/base/ifeval.parquet", "data/iter1/responses.parquet"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        answers.write_parquet(repo / rel)
    (repo / "metrics").mkdir()
    (repo / "metrics/eval.json").write_text("{}")
    with tarfile.open(tmp_path / "r.tar.gz", "w:gz") as tar:
        device.add_run(tar, repo, device.RUN_FILES)
    with tarfile.open(tmp_path / "r.tar.gz") as tar:
        names = {n for n in tar.getnames() if n.endswith((".json", ".parquet"))}
        got = pl.read_parquet(tar.extractfile("run/data/iter0/ifeval.parquet"))
    assert names == {"run/metrics/eval.json", "run/data/iter0/ifeval.parquet", "run/data/base/ifeval.parquet"}
    assert got.columns == ["prompt_id", "response"]  # the evaluation's text stays out


def test_a_machine_without_the_packages_is_told_what_to_carry(tmp_path, monkeypatch):
    monkeypatch.setattr(device, "missing_packages", lambda backend: (["vllm", "trl"], []))
    args = argparse.Namespace(out=tmp_path / "out", budget=60, until=None, work=tmp_path / "w", data=None,
                              profile=device.PROFILES, extras=[], reuse=None)  # fmt: skip
    with pytest.raises(SystemExit, match="lacks vllm, trl"):
        device.run(args)
    assert "NOT RUN" in (tmp_path / "out/summary.md").read_text() and not (tmp_path / "w").exists()


def test_repro_order_measures_each_model_before_the_next_iteration():
    # a run cut short by the time limit must have measured every model it made: M0 before iteration 1, M1 before 2
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    order = device.repro_order(["1", "2"], stages)
    assert order == [["evaluate_base"], ["evaluate_m0"], ["evaluate@1"], ["evaluate@2"], []]
    assert device.repro_order(["1"], yaml.safe_load(TOY)["stages"]) == [[]]  # no evaluate stages: one call


def test_setup_reuses_an_earlier_runs_outputs(tmp_path):
    """A recipe run starts from an earlier run's dvc.lock and outputs (hard links), so it keeps that run's M0."""
    earlier = tmp_path / "w1" / "repo"
    (earlier / "models" / "M0").mkdir(parents=True)
    (earlier / "models" / "M0" / "model.safetensors").write_bytes(b"weights")
    (earlier / "dvc.lock").write_text("schema: '2.0'\n")
    (earlier / ".dvc/cache/files/md5/ab").mkdir(parents=True)  # without it dvc repro reruns base and sft
    (earlier / ".dvc/cache/files/md5/ab/cdef").write_bytes(b"weights")
    (earlier / "data" / "seed").mkdir(parents=True)  # also in the new run's checkout copy: kept, not linked
    shutil.copy(ROOT / "data/seed/.gitignore", earlier / "data/seed/.gitignore")
    state = device.setup(tmp_path / "w2", device.PROFILES, None, reuse=tmp_path / "w1")
    got = tmp_path / "w2" / "repo"
    assert (got / "models/M0/model.safetensors").read_bytes() == b"weights" and (got / "dvc.lock").exists()
    assert (got / "models/M0/model.safetensors").stat().st_ino == (
        earlier / "models/M0/model.safetensors"
    ).stat().st_ino
    # dvc.lock is a copy: DVC rewrites it in place, and the earlier run may still be going
    assert (got / "dvc.lock").stat().st_ino != (earlier / "dvc.lock").stat().st_ino
    assert state["reused"] == f"{tmp_path / 'w1'}: dvc.lock, models, data, .dvc/cache"
    assert (got / ".dvc/cache/files/md5/ab/cdef").stat().st_ino == (
        earlier / ".dvc/cache/files/md5/ab/cdef"
    ).stat().st_ino
    assert device.setup(tmp_path / "w3", device.PROFILES, None)["reused"] is None
    with pytest.raises(SystemExit, match=r"error: --reuse .*nowhere: no earlier run there"):  # a mistyped path
        device.setup(tmp_path / "w4", device.PROFILES, None, reuse=tmp_path / "nowhere")
    assert not (tmp_path / "w4").exists()


def test_recipe_runs_are_named_and_layered_on_the_baseline():
    runs = device.recipe_runs(["profiles/gpu.yaml"], ["checks=profiles/recipe-checks.yaml"])
    assert runs == [["baseline", ["profiles/gpu.yaml"]],
                    ["checks", ["profiles/gpu.yaml", "profiles/recipe-checks.yaml"]]]  # fmt: skip
    # a replicate of a recipe: two overlays
    assert device.recipe_runs(["g.yaml"], ["checks-r1=c.yaml,profiles/replicate-1.yaml"])[1] == [
        "checks-r1",
        ["g.yaml", "c.yaml", "profiles/replicate-1.yaml"],
    ]
    for bad in ("checks", "=x.yaml", "baseline=x.yaml", "a b=x.yaml"):
        with pytest.raises(SystemExit, match="NAME=PROFILE"):
            device.recipe_runs(["profiles/gpu.yaml"], [bad])


def test_the_driver_starts_each_recipe_once_the_baselines_m0_is_measured(tmp_path, monkeypatch):
    """The baseline first; each recipe only once the baseline's dvc.lock records sft and evaluate_m0, from the
    baseline's work folder (--reuse), later recipes at a lower CPU priority; driver.done lists the exit codes."""
    # a stand-in for `benchmarks.device run`: writes its dvc.lock stage by stage, recording its argv
    fake = ("import sys, time, json, pathlib; a = sys.argv[1:]; w = pathlib.Path(a[a.index('--work') + 1]); "
            "(w / 'repo').mkdir(parents=True); (w / 'argv.json').write_text(json.dumps(a)); lock = w / 'repo/dvc.lock'\n"
            "for s in ('base', 'sft', 'evaluate_m0', 'prompts@1'):\n"
            "    time.sleep(0.5); lock.write_text('stages:\\n' + ''.join(f'  {x}: {{}}\\n' for x in "
            "(['base', 'sft', 'evaluate_m0', 'prompts@1'][: ['base', 'sft', 'evaluate_m0', 'prompts@1'].index(s) + 1])))")  # fmt: skip
    monkeypatch.setattr(device, "run_cmd", lambda name, profiles, work, data, reuse: [
        sys.executable, "-c", fake, "--work", str(work / name), *(["--reuse", str(reuse)] if reuse else [])])  # fmt: skip
    runs = device.recipe_runs(["p.yaml"], ["checks=c.yaml", "meta=m.yaml"])
    device.drive(tmp_path, runs, None)
    assert json.loads((tmp_path / "driver.done").read_text()) == {"baseline": 0, "checks": 0, "meta": 0}
    log = (tmp_path / "driver.log").read_text().splitlines()
    assert [x.split(" ", 1)[1] for x in log[:3]] == ["started baseline", "started checks from baseline's M0 (nice 0)",
                                                     "started meta from baseline's M0 (nice 5)"]  # fmt: skip
    assert "--reuse" not in json.loads((tmp_path / "baseline/argv.json").read_text())
    for name in ("checks", "meta"):
        argv = json.loads((tmp_path / name / "argv.json").read_text())
        assert argv[argv.index("--reuse") + 1] == str(tmp_path / "baseline")
        # started only after the baseline's lock recorded M0's training and measurement
        assert (tmp_path / name / "argv.json").stat().st_mtime >= (
            tmp_path / "baseline/argv.json"
        ).stat().st_mtime + 1.0


def test_reuse_takes_over_m0_only(tmp_path):
    """A finished earlier run: its iterations (dvc.lock stages, metrics, data, models) stay behind, so a recipe
    stopped part way cannot show the earlier run's later models as its own."""
    earlier = tmp_path / "w1" / "repo"
    for d in ("models/M0", "models/M1", "metrics/iter0", "metrics/iter1", "data/iter1"):
        (earlier / d).mkdir(parents=True)
        (earlier / d / "f.json").write_text("{}")
    stage = lambda deps, outs: {"deps": [{"path": x} for x in deps], "outs": [{"path": x} for x in outs]}  # noqa: E731
    lock = {
        "schema": "2.0",
        "stages": {
            "sft": stage(["data/seed/ift.jsonl"], ["models/M0"]),
            "evaluate_m0": stage(["models/M0"], ["metrics/iter0/eval.json"]),
            "dpo@1": stage(["models/M0", "data/iter1/preferences.parquet"], ["models/M1"]),
            "evaluate@1": stage(["models/M1"], ["metrics/iter1/eval.json"]),
            "plots": stage(["metrics/iter0/eval.json", "metrics/iter1/eval.json"], ["metrics/summary"]),
        },
    }
    (earlier / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    device.setup(tmp_path / "w2", device.PROFILES, None, reuse=tmp_path / "w1")
    got = tmp_path / "w2" / "repo"
    assert list(yaml.safe_load((got / "dvc.lock").read_text())["stages"]) == ["sft", "evaluate_m0"]
    assert (got / "models/M0/f.json").exists() and (got / "metrics/iter0/f.json").exists()
    assert not any((got / d / "f.json").exists() for d in ("models/M1", "metrics/iter1", "data/iter1"))
    assert list(yaml.safe_load((earlier / "dvc.lock").read_text())["stages"])[-1] == "plots"  # the earlier run's own
