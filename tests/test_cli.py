"""srlm status, show, params and base.source on hand-made files: one line per model with 95% intervals, a failed
gate shown as FAILED, every column of a dataset, a closed pipe ends quietly, a missing folder is named."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stages.base import resolve
from stages.commands import cli
from stages.core import params as P
from stages.core import rows
from stages.core.errors import SrlmError

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_status_shows_every_rate_with_its_interval(tmp_path, monkeypatch, capsys):
    p = P.load(str(ROOT / "params.yaml"))  # iterations 1 and 2
    monkeypatch.chdir(tmp_path)
    ifeval = {"prompt_level_strict_acc": {"acc": 0.25, "n": 8, "ci95": [0.0709, 0.5907]}}
    write(Path("metrics/base/eval.json"), {"ifeval": ifeval})
    shorter = {"acc": 0.4, "n": 5, "ci95": [0.1176, 0.7693]}
    human = {
        "pairwise_accuracy": 0.6125,
        "pairwise_accuracy_ci95": [0.41, 0.78],
        "length_slices": {"pointwise": {"shorter_preferred": shorter}},
    }
    write(Path("metrics/iter0/eval.json"), {"human": human})
    write(Path("metrics/iter1/judge.json"), {"parse_rate": 0.9})
    write(Path("metrics/iter1/validate.json"), {"passed": False, "overridden": True})
    h2h = {"prompts": 4, "win": 0.25, "win_ci95": [0.0456, 0.6994], "tie": 0.25, "loss": 0.5, "changed": 3}
    write(Path("metrics/iter1/eval.json"), {"human": None, "head2head": {"vs_prev": h2h}, "ifeval": None})
    write(Path("models/M1/config.json"), {})
    write(Path("models/base/config.json"), {})
    cli.status(p)
    head, base, m0, it1, it2 = capsys.readouterr().out.splitlines()
    assert "judge acc [95%]" in head and "short-pref [95%]" in head and "IFEval strict [95%]" in head
    assert "judge gate" in head
    assert base.split() == [
        "base", "-", "-", "-", "-", "-", "-", "-", "models/base", "-", "-", "-", "0.25", "[0.07-0.59]"
    ]  # fmt: skip
    assert m0.split() == [
        "0",
        "base",
        "-",
        "-",
        "-",
        "-",
        "-",
        "-",
        "-",
        "0.61",
        "[0.41-0.78]",
        "0.40",
        "[0.12-0.77]",
        "-",
        "-",
    ]
    assert it1.split() == [
        "1", "M0", "-", "-", "90%", "-", "forced", "-", "models/M1", "-", "-", "W1", "T1", "L2", "0.25", "[0.05-0.70]",
        "3/4", "-"
    ]  # fmt: skip
    assert it2.split() == ["2", "M1", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"]


def test_status_shows_a_failed_gate(tmp_path, monkeypatch, capsys):
    """A failed validate@t leaves no metrics/iter<t>/validate.json (DVC keeps no output of a failed stage):
    the verdict written beside the report says FAILED, not '-'."""
    p = P.load(str(ROOT / "params.yaml"))
    monkeypatch.chdir(tmp_path)
    write(Path("reports/iter2/validation.json"), {"passed": False, "overridden": False})
    write(Path("reports/iter1/validation.json"), {"passed": False, "overridden": False})
    write(Path("metrics/iter1/validate.json"), {"passed": True, "overridden": False})  # a later pass wins
    cli.status(p)
    lines = capsys.readouterr().out.splitlines()  # header, base, M0, 1, 2
    assert lines[3].split()[6] == "ok" and lines[4].split()[6] == "FAILED"


def test_status_shows_the_judge_gate_compactly(tmp_path, monkeypatch, capsys):
    """A column per iteration (ok / warn / FAILED / forced / skip / off) and, under the table, one line per gate
    that did not pass: the numbers of a failed check, the reason of a skip."""
    from stages.measure.judge_gate import judge_verdict

    p = P.load(str(ROOT / "params.yaml"))
    monkeypatch.chdir(tmp_path)
    m0 = json.loads((ROOT / "metrics/iter0/eval.json").read_text())  # the CPU M0: 0.22 on 9 pairs, answer 1 always
    warn = judge_verdict(m0, 9, p.validate_, "metrics/iter0/eval.json")
    write(Path("metrics/iter1/validate.json"), {"passed": True, "overridden": False, "judge": warn})
    skipped = judge_verdict({"iteration": 1, "human": None}, 8, p.validate_, "metrics/iter1/eval.json")
    write(Path("metrics/iter2/validate.json"), {"passed": True, "overridden": False, "judge": skipped})
    cli.status(p)
    lines = capsys.readouterr().out.splitlines()  # header, base, M0, 1, 2, then the notes
    assert [line.split()[7] for line in lines[1:5]] == ["-", "-", "warn", "skip"]
    assert lines[5] == (
        "judge gate@1 (M0): failed (warn): accuracy 0.22 [0.06-0.55] (n=9), needs 95% interval low > 0.5; "
        "answer-1 rate 1.00 [0.82-1.00] (n=18), needs >= 0.2 and <= 0.8"
    )
    assert lines[6] == "judge gate@2 (M1): skipped: no held-out human data in the judge's eval.json"
    assert len(lines) == 7
    fail = p.validate_.model_copy(update={"judge_gate": "fail"})
    failed = judge_verdict(m0, 9, fail, "metrics/iter0/eval.json")
    write(Path("metrics/iter1/validate.json"), {"passed": False, "overridden": True, "judge": failed})
    write(Path("reports/iter2/validation.json"), {"passed": False, "overridden": False, "judge": failed})
    (tmp_path / "metrics/iter2/validate.json").unlink()  # a failed gate leaves only the report's verdict
    cli.status(p)
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].split()[6:8] == ["forced", "forced"] and lines[4].split()[6:8] == ["FAILED", "FAILED"]
    assert lines[5].startswith("judge gate@1 (M0): failed (fail): accuracy 0.22 [0.06-0.55]")


def test_show_prints_every_column_of_preferences(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    conv = lambda role, text: [{"role": role, "content": text}]  # noqa: E731
    row = {
        "id": "a1",
        "prompt_id": "p1",
        "prompt": conv("user", "Name a colour."),
        "chosen": conv("assistant", "Blue, the colour of a clear sky. " * 20),
        "rejected": conv("assistant", "I refuse."),
        "chosen_id": "c1",
        "rejected_id": "r1",
        "score_chosen": 4.5,
        "score_rejected": 1.0,
        "iteration": 2,
    }
    rows.write(rows.frame([row], "preferences"), Path("data/iter2/preferences.parquet"), "preferences")
    cli.show("2", "preferences", 3)
    out = capsys.readouterr().out
    for column in rows.SCHEMAS["preferences"]:
        assert any(line.split()[0] == column for line in out.splitlines()[1:-1] if line.strip()), column
    assert "assistant: I refuse." in out and "user: Name a colour." in out
    assert max(len(line) for line in out.splitlines()) < 330  # long answers are cut
    assert out.splitlines()[-1] == "1 rows"


def test_params_into_a_closed_pipe_ends_without_a_traceback():
    """`srlm params | head`: the reader is gone before srlm writes; no BrokenPipeError traceback."""
    read, write_end = os.pipe()
    os.close(read)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "stages.commands.cli", "params"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    os.close(write_end)
    assert r.returncode == 141 and r.stderr == b"", r.stderr.decode()


def test_base_source_that_is_no_folder_says_so():
    with pytest.raises(SrlmError, match="base.source /nonexistent/model: no such folder"):
        resolve("/nonexistent/model", None)
    assert resolve("HuggingFaceTB/SmolLM2-135M-Instruct", None) == ("HuggingFaceTB/SmolLM2-135M-Instruct", None)
