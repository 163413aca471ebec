"""benchmarks/judge_grid.py end to end at toy sizes on a CPU (the GPU grid runs the same code once, unattended)."""

import json
import subprocess
import sys

import pytest

from .conftest import ROOT, SHARED_DATA


@pytest.mark.slow  # trains and measures two variants of a tiny model in a fresh interpreter (about 2 minutes)
@pytest.mark.skipif(not (SHARED_DATA / "oasst2_en").exists(), reason="../shared/data not present")
def test_grid_writes_one_line_and_a_table_row_per_variant(tmp_path, tiny_model):
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "benchmarks/judge_grid.py"), "--smoke", "--base", str(tiny_model)]
    cmd += ["--data", str(SHARED_DATA), "--work", str(tmp_path / "work"), "--out", str(out), "--sim-prompts", "2"]
    done = subprocess.run([*cmd, "--variants", "length+contrastive,base"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    recs = [json.loads(line) for line in (out / "judge_grid.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in recs] == ["length+contrastive", "base"]
    first = recs[0]
    assert first["sft"]["contrastive"] > 0 and first["sft"]["steps"] == 2
    m = first["measured"]
    for key in ("pointwise", "pointwise_residual", "compare", "compare_residual", "ab"):
        assert set(m[key]["slices"]) == {"all", "shorter_preferred", "longer_preferred"}
    assert m["longer_wins"]["all"]["n"] == m["ab"]["slices"]["all"]["n"] > 0
    assert (
        set(m["sim"]["logprob"]["rules"]) == set(m["sim"]["compare"]["rules"])
        and "control0.25" in m["sim"]["compare"]["rules"]
    )
    assert "measured" in recs[1]  # the base model, untrained
    table = (out / "judge_grid.md").read_text()
    assert "| length+contrastive | compare |" in table and "Simulated iteration" in table
