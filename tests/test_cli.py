"""srlm status on hand-made metrics files: one line per model, missing files shown as '-'."""

import json
from pathlib import Path

from stages import cli
from stages import params as P

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_status_shows_judge_accuracy_and_head_to_head(tmp_path, monkeypatch, capsys):
    p = P.load(str(ROOT / "params.yaml"))  # iterations 1 and 2
    monkeypatch.chdir(tmp_path)
    write(Path("metrics/iter0/eval.json"), {"human": {"pairwise_accuracy": 0.6125}, "head2head": {}})
    write(Path("metrics/iter1/judge.json"), {"parse_rate": 0.9})
    write(Path("metrics/iter1/validate.json"), {"passed": False, "overridden": True})
    write(Path("metrics/iter1/eval.json"), {"human": None, "head2head": {"vs_prev": {"win_minus_loss": -0.5}}})
    write(Path("models/M1/config.json"), {})
    cli.status(p)
    head, m0, it1, it2 = capsys.readouterr().out.splitlines()
    assert head.split()[-4:] == ["judge", "acc", "vs", "prev"]
    assert m0.split() == ["0", "base", "-", "-", "-", "-", "-", "-", "0.613", "-"]
    assert it1.split() == ["1", "M0", "-", "-", "90%", "-", "forced", "models/M1", "-", "-0.50"]
    assert it2.split() == ["2", "M1", "-", "-", "-", "-", "-", "-", "-", "-"]
