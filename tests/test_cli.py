"""srlm status, show, params and base.source on hand-made files: one line per model with 95% intervals, a failed
gate shown as FAILED, every column of a dataset, a closed pipe ends quietly, a missing folder is named."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dvc  # noqa: F401  (`import dvc` binds DVC's log handlers to the streams of the moment: not to a test's capsys)
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


def status_files() -> None:
    """The metrics and model folders of a run, in the current folder."""
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


def test_status_shows_every_rate_with_its_interval(tmp_path, monkeypatch, capsys):
    p = P.load(str(ROOT / "params.yaml"))  # iterations 1 and 2
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    status_files()
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
    monkeypatch.setenv("COLUMNS", "200")
    cli.status(p)
    lines = capsys.readouterr().out.splitlines()  # header, base, M0, 1, 2
    assert lines[3].split()[6] == "ok" and lines[4].split()[6] == "FAILED"


def test_status_shows_the_judge_gate_compactly(tmp_path, monkeypatch, capsys):
    """A column per iteration (ok / warn / FAILED / forced / skip / off) and, under the table, one line per gate
    that did not pass: the numbers of a failed check, the reason of a skip."""
    from stages.measure.judge_gate import judge_verdict

    p = P.load(str(ROOT / "params.yaml"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")  # every column
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


@pytest.mark.parametrize("columns", [80, 120, 200])
def test_status_fits_the_terminal(tmp_path, monkeypatch, capsys, columns):
    """Short headers, then fewer columns, as the terminal narrows; the accuracies with their intervals stay, and
    a hidden column is named."""
    p = P.load(str(ROOT / "params.yaml"))
    monkeypatch.chdir(tmp_path)
    status_files()
    monkeypatch.setenv("COLUMNS", str(columns))
    cli.status(p)
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= columns, "\n".join(lines)
    head, base, m0, it1 = lines[:4]
    assert "0.61 [0.41-0.78]" in m0 and "0.25 [0.07-0.59]" in base and "[95%]" in head
    if columns == 200:  # everything, long headers
        assert len(lines) == 5 and "vs prev: W T L, win [95%], changed" in head and "models/M1" in it1
    else:
        assert "columns hidden at" in " ".join(lines[5:]) and "models/M1" not in it1
    if columns == 80:
        assert head.split()[:1] == ["it"] and "0.40 [0.12-0.77]" in m0  # short headers; short-pref kept


def test_params_prints_the_file_as_it_is_and_flags_go_anywhere(tmp_path, capsys):
    """`srlm params` validates, then prints the file itself (comments, order, spelling); --params before or
    after the command; --version."""
    params = tmp_path / "mine.yaml"
    params.write_text((ROOT / "params.yaml").read_text().replace("seed: 0 ", "seed: 00"))  # valid, unusual spelling
    for argv in (["--params", str(params), "params"], ["params", "--params", str(params)]):
        cli.main(argv)
        assert capsys.readouterr().out == params.read_text()
    params.write_text(params.read_text().replace("  k: 3", "  kk: 3"))
    with pytest.raises(SystemExit, match=r"judge.kk: Extra inputs are not permitted"):
        cli.main(["params", "--params", str(params)])
    assert capsys.readouterr().out == ""  # an invalid file is not printed
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("srlm 0.1.0 (dvc ")


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


FRESH_DVC_YAML = """
stages:
  pairs:
    foreach: ["1"]
    do:
      cmd: PY make.py ${item}
      deps: [make.py, src.parquet]
      outs:
        - data/iter${item}/preferences.parquet
        - metrics/iter${item}/pairs.json: {cache: false}
"""
FRESH_SCRIPT = """import json, os, shutil, sys
os.makedirs(f"data/iter{sys.argv[1]}", exist_ok=True)
os.makedirs(f"metrics/iter{sys.argv[1]}", exist_ok=True)
shutil.copy("src.parquet", f"data/iter{sys.argv[1]}/preferences.parquet")
json.dump({"pairs": 2, "prompts": 2}, open(f"metrics/iter{sys.argv[1]}/pairs.json", "w"))
"""


def test_a_fresh_clone_names_the_dvc_pull_it_needs(tmp_path, monkeypatch, capsys):
    """A clone without the DVC cache, its default remote a folder that is not on this machine (as `offline` in
    ~/.cache is on a new one): status, show, diff and release each say in one line which `dvc pull` (or fetch)
    and which remote they need; after `dvc remote add -d` of a folder holding the data and `dvc pull`, show works."""
    from stages.commands import diff
    from stages.commands.release import ReleaseError, release

    py = [sys.executable, "-m", "dvc"]
    run = lambda cwd, *a: subprocess.run(list(a), cwd=cwd, check=True, capture_output=True, text=True)  # noqa: E731
    origin, remote = tmp_path / "origin", tmp_path / "team-remote"
    origin.mkdir()
    run(origin, "git", "init", "-q")
    run(origin, "git", "config", "user.email", "t@example.com")
    run(origin, "git", "config", "user.name", "t")
    run(origin, *py, "init", "-q")
    run(origin, *py, "remote", "add", "-d", "offline", str(tmp_path / "nowhere"))  # absent on the clone's machine
    conv = lambda role, text: [{"role": role, "content": text}]  # noqa: E731
    pair = {
        "id": "a1", "prompt_id": "p1", "prompt": conv("user", "Hi?"), "chosen": conv("assistant", "Hello."),
        "rejected": conv("assistant", "No."), "chosen_id": "c1", "rejected_id": "r1", "score_chosen": 4.0,
        "score_rejected": 1.0, "iteration": 1,
    }  # fmt: skip
    rows.write(rows.frame([pair], "preferences"), origin / "src.parquet", "preferences")
    (origin / "make.py").write_text(FRESH_SCRIPT)
    (origin / "dvc.yaml").write_text(FRESH_DVC_YAML.replace("PY", sys.executable))
    run(origin, *py, "repro", "-q")
    run(origin, "git", "add", "-A")
    run(origin, "git", "commit", "-qm", "iteration 1")
    run(origin, *py, "push", "-q", "-r", "offline")  # only to make `nowhere` hold data ...
    (tmp_path / "nowhere").rename(remote)  # ... which then lives elsewhere: the clone's default remote is gone
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(origin), str(clone))
    monkeypatch.chdir(clone)
    monkeypatch.setenv("COLUMNS", "200")
    p = P.load(str(ROOT / "params.yaml"))

    cli.status(p)
    out = capsys.readouterr().out
    assert out.splitlines()[3].split()[5] == "2", out  # pairs of iteration 1 from its metrics (in git)
    note = [line for line in out.splitlines() if "not in the workspace" in line]
    assert note and "run `dvc pull` from a remote that holds them: the default remote 'offline' is" in note[0]
    assert "which does not exist on this machine; add one: `dvc remote add -d store /path`" in note[0]

    with pytest.raises(SrlmError) as e:
        cli.show("1", "preferences", 1)
    assert "\n" not in str(e.value) and str(e.value).startswith(
        "error: data/iter1/preferences.parquet is in dvc.lock but not in the workspace (iteration 1's preferences): "
        "run `dvc pull data/iter1/preferences.parquet` from a remote that holds them: the default remote 'offline'"
    ), e.value
    with pytest.raises(SrlmError) as e:
        diff.compare("HEAD:1", "1")
    assert "\n" not in str(e.value) and str(e.value).startswith(
        "error: HEAD:1: data/iter1/preferences.parquet is an output in HEAD's dvc.lock but its bytes are not in "
        "the local DVC cache: run `dvc fetch --all-commits` from a remote that holds them"
    ), e.value
    with pytest.raises(ReleaseError, match=r"is in dvc.lock but not in the workspace: run `dvc pull` from a remote"):
        release(1, "org/name", p, Path("."), dry_run=tmp_path / "out")

    run(clone, *py, "remote", "add", "--local", "-d", "store", str(remote))  # README, "Remote"
    run(clone, *py, "pull", "-q")
    cli.show("1", "preferences", 1)
    assert "assistant: Hello." in capsys.readouterr().out


def test_a_float_dvc_locked_as_a_string_is_not_stale():
    """dvc.lock writes dpo.learning_rate 5.0e-5 as '5e-05': the same value, so no `*` on a freshly built line."""
    from stages.commands import workspace

    lock = {"dpo@1": {"params": {"params.yaml": {"dpo": {"learning_rate": "5e-05", "lora": True, "ld_alpha": None}}}}}
    same = {"dpo": {"learning_rate": 5e-05, "lora": True, "ld_alpha": None}}
    assert workspace.stale(lock, same) == {}
    for changed in (
        {"learning_rate": 6e-05, "lora": True, "ld_alpha": None},
        {"learning_rate": 5e-05, "lora": "true", "ld_alpha": None},
    ):
        assert "dpo@1" in workspace.stale(lock, {"dpo": changed})
    assert not workspace.same_value("abc", 1.0) and not workspace.same_value(None, 0)
