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
    ifeval = {"prompt_level_strict_acc": {"acc": 0.25, "n": 8, "ci95": [0.0709, 0.5907]}}
    write(Path("metrics/base/eval.json"), {"ifeval": ifeval})
    shorter = {"acc": 0.4, "n": 5, "ci95": [0.1176, 0.7693]}
    write(
        Path("metrics/iter0/eval.json"),
        {"human": {"pairwise_accuracy": 0.6125, "length_slices": {"pointwise": {"shorter_preferred": shorter}}}},
    )
    write(Path("metrics/iter1/judge.json"), {"parse_rate": 0.9})
    write(Path("metrics/iter1/validate.json"), {"passed": False, "overridden": True})
    write(
        Path("metrics/iter1/eval.json"),
        {"human": None, "head2head": {"vs_prev": {"win_minus_loss": -0.5}}, "ifeval": None},
    )
    write(Path("models/M1/config.json"), {})
    write(Path("models/base/config.json"), {})
    cli.status(p)
    head, base, m0, it1, it2 = capsys.readouterr().out.splitlines()
    assert head.split()[-8:] == ["judge", "acc", "short-pref", "vs", "prev", "IFEval", "strict", "[95%]"]
    assert base.split() == ["base", "-", "-", "-", "-", "-", "-", "models/base", "-", "-", "-", "0.25", "[0.07-0.59]"]
    assert m0.split() == ["0", "base", "-", "-", "-", "-", "-", "-", "0.613", "0.40", "n=5", "-", "-"]
    assert it1.split() == ["1", "M0", "-", "-", "90%", "-", "forced", "models/M1", "-", "-", "-0.50", "-"]
    assert it2.split() == ["2", "M1", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"]
