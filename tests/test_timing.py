"""Stage timing (stages/core/timing.py): a stage DVC runs records where its wall time went, outside metrics/;
benchmarks/timings.py and benchmarks/report.py turn the records and metrics into the tables."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import report, timings
from stages.core import timing
from stages.engine import backend as B

from .conftest import ROOT, knobs, write_params


def test_marks_book_time_to_phases_and_overhead_is_the_fixed_part(monkeypatch):
    clock = timing.Clock("x@1", age=2.0)
    t = [100.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: t[0])
    clock.last = 100.0
    for phase, dt in (("imports", 3.0), ("engine", 5.0), ("generate", 8.0), ("generate", 2.0), ("close", 1.0)):
        t[0] += dt
        clock.mark(phase)
    t[0] += 1.0
    rec = clock.record("ok")
    assert rec["phases_s"] == {
        "start": 2.0,
        "imports": 3.0,
        "engine": 5.0,
        "generate": 10.0,
        "close": 1.0,
        "rest": 1.0,
    }
    assert rec["wall_s"] == 22.0 and rec["overhead_s"] == 11.0 and rec["overhead_share"] == 0.5


def test_process_age_is_the_time_since_the_interpreter_started():
    age = timing.process_age()
    assert age is None or 0 <= age < 3600


def _seed(tmp_path, env_extra, params=None):
    cfg = params or write_params(tmp_path / "params.yaml", "")
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_STAGE", "SRLM_TIMING")}
    env.update(env_extra, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "stages.seed", "--ift", "i.parquet", "--eft", "e.parquet", "--params", str(cfg)]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)


def test_a_stage_dvc_runs_writes_its_record_and_one_line(tmp_path):
    r = _seed(tmp_path, {"DVC_STAGE": "seed"})
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / ".srlm/timings/seed.json").read_text())
    assert rec["stage"] == "seed" and rec["status"] == "ok" and rec["phases_s"]["start"] > 0
    assert any(line.startswith("timing seed: ") for line in r.stderr.splitlines())
    assert not (tmp_path / "metrics").exists()  # never in DVC metrics


def test_no_record_outside_dvc_and_a_failed_stage_says_so(tmp_path):
    assert _seed(tmp_path, {}).returncode == 0 and not (tmp_path / ".srlm").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: -1\n")
    r = _seed(tmp_path, {"SRLM_TIMING": "seed.bad", "SRLM_TIMING_DIR": str(tmp_path / "t")}, params=bad)
    assert r.returncode == 1 and json.loads((tmp_path / "t/seed.bad.json").read_text())["status"] == "error"


def test_engine_phases_are_marked(tiny_model, monkeypatch, tmp_path):
    monkeypatch.setenv("SRLM_TIMING", "responses@9")
    clock = timing.begin("__main__")
    assert timing.begin("__main__") is None  # a main inside a timed stage does not restart its clock
    try:
        be = B.make_backend(knobs("backend"), tiny_model)
        be.generate(
            [be.chat([{"role": "user", "content": "hi"}])], n=1, sampling=knobs("responses", max_new_tokens=4), seed=0
        )
        be.next_token_probs([be.chat([{"role": "user", "content": "hi"}])], ["0", "1"], batch_size=1)
        be.close()
    finally:
        rec = timing.end(clock, "ok", tmp_path)
    assert {"imports", "load", "generate", "score", "close", "rest"} <= set(rec["phases_s"])
    assert (tmp_path / "responses@9.json").exists()


def _rec(stage, at, **phases):
    wall = sum(phases.values())
    over = sum(v for k, v in phases.items() if k in timings.OVERHEAD)
    return {"stage": stage, "status": "ok", "started_at": at, "wall_s": wall, "phases_s": phases,
            "overhead_s": over, "overhead_share": round(over / wall, 4)}  # fmt: skip


LOG = """Running stage 'prompts@1':
> python -m stages.prompts ...
INFO [gpu_model_runner.py] Model loading took 0.27 GiB memory and 1.234567 seconds
INFO [monitor.py] torch.compile took 21.50 s in total
INFO [gpu_model_runner.py] Graph capturing finished in 4 secs, took 0.30 GiB
INFO [core.py] init engine (profile, create kv cache, warmup model) took 30.11 s (compilation: 21.50 s)
Running stage 'responses@1':
INFO [monitor.py] torch.compile took 2.10 s in total
INFO [core.py] init engine (profile, create kv cache, warmup model) took 6.00 s (compilation: 2.10 s)
Running stage 'pairs@1':
"""


def test_timings_table_with_vllm_start_up_lines(tmp_path):
    for r in (_rec("prompts@1", 10.0, start=1.0, imports=6.0, engine=30.0, generate=5.0, close=1.0, rest=1.0),
              _rec("pairs@1", 60.0, start=1.0, rest=0.5)):  # fmt: skip
        (tmp_path / f"{r['stage']}.json").write_text(json.dumps(r))
    recs = timings.load(tmp_path)
    v = timings.vllm_times(LOG)
    assert v["prompts@1"] == {
        "weights_s": 1.23,
        "compile_s": 21.5,
        "graphs_s": 4.0,
        "engine_init_s": 30.11,
        "engines": 1,
    }
    assert v["responses@1"]["compile_s"] == 2.1 and "pairs@1" not in v
    md = timings.markdown(timings.rows(recs, v), timings.totals(recs))
    assert "| prompts@1 | 44.0 | 1.0 | 6.0 | 30.0 | 5.0 | 1.0 | 1.0 | 86% | 1.2 / 21.5 / 4.0 / 30.1 |" in md
    assert timings.totals(recs) == {"stages": 2, "sum_wall_s": 45.5, "span_s": 51.5, "between_s": 6.0}


def _acc(a, n):
    return {"acc": a, "n": n, "ci95": [a - 0.05, a + 0.05]}


def test_report_reads_metrics_into_one_row_per_model(tmp_path):
    met = tmp_path / "metrics"
    (met / "iter0").mkdir(parents=True)
    (met / "iter1").mkdir()
    slices = {"pointwise": {"all": _acc(0.66, 529), "shorter_preferred": _acc(0.4, 200), "longer_preferred": _acc(0.8, 329)},
              "longer_wins": {"all": _acc(0.69, 529)}}  # fmt: skip
    ife = {k: _acc(0.2, 541) for k in report.IFEVAL} | {"cap_hit": {"count": 54, "share": 0.1}}
    for t in ("iter0", "iter1"):
        (met / t / "eval.json").write_text(json.dumps({"human": {"length_slices": slices}, "ifeval": ife}))
    (met / "iter1/responses.json").write_text(json.dumps({"mean_tokens": 142.7, "truncated_share": 0.21}))
    (met / "iter1/pairs.json").write_text(json.dumps({"pairs": 480, "prompts": 510, "chosen_longer_rate": 0.71}))
    (met / "iter1/dpo.json").write_text(
        json.dumps(
            {"loss_first": 0.6931, "loss_last": 0.61, "reward_accuracy": 0.75, "reward_accuracy_ci95": [0.5, 0.9]}
        )
    )
    (tmp_path / ".srlm/timings").mkdir(parents=True)
    (tmp_path / ".srlm/timings/dpo@1.json").write_text(json.dumps(_rec("dpo@1", 1.0, start=1.0, train=30.0)))
    md = report.markdown(report.collect(tmp_path))
    row = next(line for line in md.splitlines() if line.startswith("| 1 | M1 |"))
    assert "0.200 [0.15, 0.25]" in row and "0.660 [0.61, 0.71]" in row and "0.400 [0.35, 0.45]" in row
    assert "142.7 | 21.0% | 480 / 510 | 0.71 | 0.693 -> 0.610 | 0.750 [0.50, 0.90] |" in row and "10.0%" in row
    assert "| 1 | - | - | - | - | - | 31 | - | 31 |" in md


@pytest.mark.parametrize("name", ["timings", "report"])
def test_table_scripts_run_on_an_empty_folder(tmp_path, capsys, name):
    (timings.main if name == "timings" else report.main)(["--dir" if name == "timings" else "--repo", str(tmp_path)])
    assert "|" in capsys.readouterr().out


def test_report_extras_raw_start_up_and_dpo_variant(tmp_path):
    res = tmp_path / "results"
    (res / "timings-extra").mkdir(parents=True)
    (res / "raw_vs_srlm.jsonl").write_text(
        json.dumps({"part": "generate_summary", "tp": 1, "raw_median": 16000, "srlm_median": 15500, "ratio": 0.969})
        + "\n"
    )
    (res / "timings-extra/r.json").write_text(
        json.dumps(_rec("responses@1.before", 5.0, start=1.0, engine=40.0, generate=20.0))
    )
    (tmp_path / ".srlm/timings").mkdir(parents=True)
    (tmp_path / ".srlm/timings/r.json").write_text(
        json.dumps(_rec("responses@1", 1.0, start=1.0, engine=8.0, generate=20.0))
    )
    (res / "dpo_lora.json").write_text(json.dumps({"loss_first": 0.69, "loss_last": 0.6, "reward_accuracy": 0.7}))
    (res / "eval_dpo_lora.json").write_text(
        json.dumps({"human": {"length_slices": {"pointwise": {"all": _acc(0.6, 9)}}}})
    )
    md = report.markdown(report.collect(tmp_path, res))
    assert "**srlm / raw = 0.969**" in md
    assert (
        "| responses@1.before | vLLM's defaults, no model link, cold cache (before) | 61.0 | 0.0 | 40.0 | 20.0 | 67% |"
        in md
    )
    assert "| responses@1 | the profile" in md and "DPO variant (lora" in md and "judge acc 0.600" in md
