"""DVC side of versioning, on tiny throwaway repos: plots render, push/pull round trip, lineage records,
and `dvc exp run -S judge.k=5` through the real params schema."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from stages import pairs, plots
from stages.core import lineage, rows
from stages.core import params as P
from stages.core.errors import SrlmError

from .conftest import ROOT
from .test_diff import A_ROWS

# dvc runs stage commands (`python -m stages.X`) through the shell: this interpreter must come first on PATH
PATH = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "DVC_NO_ANALYTICS": "1", "PATH": PATH}


@pytest.fixture(autouse=True)
def interpreter_on_path(monkeypatch):
    """For dvc run in this process too."""
    monkeypatch.setenv("PATH", PATH)


def sh(cwd, *cmd) -> str:
    r = subprocess.run(list(cmd), cwd=cwd, env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, f"{cmd}: {r.stdout}\n{r.stderr}"
    return r.stdout


def dvc(cwd, *args) -> None:
    """The dvc CLI in this process: saves importing dvc for every command whose output is not read."""
    from dvc.cli import main

    here = os.getcwd()
    os.chdir(cwd)
    try:
        rc = main(list(args))
    finally:
        os.chdir(here)
    assert rc == 0, f"dvc {args}: exit {rc}"


def dvc_out(cwd, *args) -> str:
    """The dvc CLI in a child process, for commands whose stdout is read (dvc binds its console once per process)."""
    return sh(cwd, sys.executable, "-m", "dvc", *args)


def new_repo(path):
    path.mkdir(exist_ok=True)
    sh(path, "git", "init", "-q")
    sh(path, "git", "config", "user.email", "t@example.com")
    sh(path, "git", "config", "user.name", "t")
    dvc(path, "init", "-q")
    dvc(path, "config", "--local", "core.site_cache_dir", str(path / ".dvc-site"))
    return path


def fake_metrics(root, t, hist, tie, chosen, rejected):
    rows.write_json(
        {"score_hist": hist, "score_mean": 3.0 + t / 10, "parse_rate": 0.9}, root / f"metrics/iter{t}/judge.json"
    )
    rows.write_json(
        {
            "tie_rate": tie,
            "pairs": 10 * t,
            "margin_mean": 1.5,
            "chosen_chars_mean": chosen,
            "rejected_chars_mean": rejected,
            "length_ratio": chosen / rejected,
        },
        root / f"metrics/iter{t}/pairs.json",
    )
    rows.write_json(
        {"loss_pairs_after": round(0.6 - t / 10, 4), "reward_accuracy": 0.7, "reward_accuracy_ci95": [0.4, 0.89]},
        root / f"metrics/iter{t}/dpo.json",
    )
    rows.write_json({"truncated_share": 0.1, "loops_share": 0.05}, root / f"metrics/iter{t}/responses.json")
    rows.write_json({"share_met_mean": 0.5, "constrained": 4}, root / f"metrics/iter{t}/checks.json")
    rows.write_json(
        {"passed": True, "judge_length": {"within": 0.1, "prompts": 3, "pooled": 0.2}},
        root / f"metrics/iter{t}/validate.json",
    )
    rows.write_json({"flawed_share": 0.2}, root / f"metrics/iter{t}/prompts.json")


def fake_eval(root, folder, strict_k, shorter=None, judged=None):
    """An eval.json with an IFEval block of 8 prompts and, for a judge, its agreement with human ranks
    (`judged` = pairwise accuracy over 10 pairs) and the shorter-preferred slice."""

    def acc(k, n):
        return {"acc": k / n, "n": n, "ci95": [round(k / n - 0.2, 4), round(k / n + 0.2, 4)]}

    ev = {
        "ifeval": {
            "prompt_level_strict_acc": acc(strict_k, 8),
            "inst_level_strict_acc": acc(strict_k + 1, 10),
            "cap_hit": {"count": 2, "share": 0.25},
            "loops": {"count": 1, "share": 0.125},
        }
    }
    if shorter is not None:
        ev["human"] = {
            "pairwise_accuracy": judged,
            "pairwise_accuracy_ci95": [round(judged - 0.2, 4), round(judged + 0.2, 4)],
            "longer_wins_accuracy": 0.69,
            "longer_wins_accuracy_ci95": [0.5, 0.83],
            "score_hist": {"0": 0, "1": 1, "2": 2, "3": 3, "4": 1, "5": 0},
            "length_slices": {
                "pointwise": {"all": acc(round(judged * 10), 10), "shorter_preferred": acc(shorter, 4)},
                "longer_wins": {"all": acc(7, 10)},
            },
        }
    rows.write_json(ev, root / f"metrics/{folder}/eval.json")


def fake_run(root):
    fake_metrics(root, 1, {"0": 0, "1": 1, "2": 1, "3": 2, "4": 0, "5": 0}, 0.2, 300.0, 200.0)
    fake_metrics(root, 2, {"0": 0, "1": 0, "2": 1, "3": 1, "4": 2, "5": 0}, 0.1, 420.0, 210.0)
    fake_eval(root, "base", 2)
    fake_eval(root, "iter0", 3, shorter=1, judged=0.5)
    fake_eval(root, "iter1", 3, shorter=2, judged=0.6)
    fake_eval(root, "iter2", 4, shorter=2, judged=0.7)


def test_plot_tables(tmp_path):
    fake_run(tmp_path)
    found = plots.read_all(tmp_path / "metrics", [1, 2])
    made = plots.tables(found)
    per_iter, hist, models = made["iterations"], made["scores"], made["models"]
    assert per_iter["iteration"].to_list() == [1, 2] and per_iter["chosen_chars"].to_list() == [300.0, 420.0]
    assert per_iter["dpo_loss_after"].to_list() == [0.5, 0.4]
    assert hist.filter(iteration=2, score=4)["share"].item() == 0.5 and len(hist) == 12
    assert models["model"].to_list() == ["base", "M0", "M1", "M2"] and models["iteration"].to_list() == [None, 0, 1, 2]
    m0 = models.row(1, named=True)
    assert (m0["ifeval_prompt_strict"], m0["ifeval_prompt_strict_lo"], m0["ifeval_prompt_strict_hi"]) == (
        0.375,
        0.175,
        0.575,
    )
    assert m0["judge_shorter_preferred"] == 0.25 and m0["ifeval_cap_hit"] == 0.25 and m0["ifeval_loops"] == 0.125
    assert models.row(0, named=True)["judge_shorter_preferred"] is None  # the base model is not judged
    assert made["judge_scores"]["model"].unique(maintain_order=True).to_list() == ["M0", "M1", "M2"]
    acc = made["accuracy"]  # every accuracy beside its interval, and the length baseline on the same pairs
    assert acc.filter(model="base")["measure"].to_list() == ["IFEval prompt-level strict"]
    assert acc.filter(model="M0")["measure"].to_list() == [
        "judge vs human ranks",
        "judge, shorter answer preferred",
        "longer answer wins (baseline, same pairs)",
        "IFEval prompt-level strict",
    ]
    assert acc.filter(model="M2", measure="DPO reward accuracy on its pairs").row(0) == (
        "M2", "DPO reward accuracy on its pairs", 0.7, 0.4, 0.89
    )  # fmt: skip
    assert acc["low"].null_count() == 0 and (acc["low"] <= acc["acc"]).all() and (acc["acc"] <= acc["high"]).all()
    # an iteration of params.yaml whose files are missing is an error, not a shorter plot
    with pytest.raises(SrlmError, match="metrics/iter3/prompts.json is missing"):
        plots.read_all(tmp_path / "metrics", [1, 2, 3])
    s = plots.summary(found)  # the DVC metrics: plain names, a rate beside its interval
    assert s["M0"] == {
        "judge_accuracy": 0.5,
        "judge_accuracy_ci95": [0.3, 0.7],
        "longer_wins": 0.69,
        "longer_wins_ci95": [0.5, 0.83],
        "ifeval_strict": 0.375,
        "ifeval_strict_ci95": [0.175, 0.575],
    }
    assert s["M2"]["reward_accuracy"] == 0.7 and s["M2"]["pairs"] == 20 and s["M2"]["dpo_loss_after"] == 0.4
    assert s["base"] == {"ifeval_strict": 0.25, "ifeval_strict_ci95": [0.05, 0.45]}


def _plots_repo(tmp_path):
    """A throwaway DVC repo with the real dvc.yaml plots stage and definitions, templates and offline page."""
    from stages.commands.offline_plots import page

    repo = new_repo(tmp_path / "repo")
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    (repo / "dvc.yaml").write_text(
        yaml.safe_dump({"stages": {"plots": spec["stages"]["plots"]}, "plots": spec["plots"]})
    )
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")
    shutil.copytree(ROOT / ".dvc/plots", repo / ".dvc/plots")
    (repo / ".dvc/offline.html").write_text(page())
    dvc(repo, "config", "plots.html_template", "offline.html")
    for dep in spec["stages"]["plots"]["deps"]:  # the stage's code (its import closure)
        if dep.startswith("stages/"):
            (repo / dep).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / dep, repo / dep)
    fake_run(repo)
    return repo


def test_dvc_plots_render_offline_with_integer_axes_titles_and_colours(tmp_path, monkeypatch):
    """`dvc repro plots` then `dvc plots show`: every plot of dvc.yaml draws; the page loads no script from the
    network; iteration axes are ordinal (no 1.5), axes are titled (never a bare "y"), series are coloured."""
    repo = _plots_repo(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    dvc(repo, "repro", "-q", "plots")
    shown = json.loads(dvc_out(repo, "plots", "show", "--json"))["data"]
    assert set(shown) == {
        "score_histogram", "judge_scores", "accuracy", "score_by_iteration", "length_drift", "rates", "length_bias",
        "truncation", "dpo_loss",
    }  # fmt: skip
    hist = shown["score_histogram"][0]["content"]["data"]["values"]
    assert {(int(d["iteration"]), int(d["score"]), float(d["share"])) for d in hist} >= {(2, 4, 0.5), (1, 3, 0.5)}
    models = {d["model"] for d in shown["judge_scores"][0]["content"]["data"]["values"]}
    assert models == {"M0", "M1", "M2"}  # one set of bars per model, from one table, not a list per iteration
    accs = {(d["model"], d["measure"]) for d in shown["accuracy"][0]["content"]["data"]["values"]}
    assert ("base", "IFEval prompt-level strict") in accs and ("M1", "judge, shorter answer preferred") in accs
    for name, (plot,) in shown.items():
        spec = plot["content"]
        enc = spec.get("encoding") or spec["spec"]["encoding"]
        layers = [enc] + [layer["encoding"] for layer in spec.get("spec", {}).get("layer", [])]
        assert enc["x"]["title"] and enc["x"]["type"] == "ordinal", name
        assert all(e["y"].get("title") not in ("y", "") for e in layers if "title" in e.get("y", {})), name
        assert any(e.get("y", {}).get("title") for e in layers), name
        assert "field" in enc["color"] and enc["color"]["field"] != "rev", name
    dvc(repo, "plots", "show", "-o", "out")
    html = (repo / "out/index.html").read_text()
    assert "Mean chosen and rejected length" in html and "window.vegaEmbed" in html
    scripts = re.findall(r"<script\b[^>]*>", html, flags=re.I)
    assert scripts and not [s for s in scripts if "src" in s.lower()], scripts  # everything inline, no CDN
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", html, flags=re.I)


def test_push_pull_round_trip(tmp_path):
    """dvc push to a folder remote, lose the cache and the file, dvc pull: identical bytes back."""
    repo = new_repo(tmp_path / "repo")
    remote = tmp_path / "remote"
    dvc(repo, "remote", "add", "-d", "tmp", str(remote))
    path = repo / "data/iter1/preferences.parquet"
    rows.write(rows.frame(A_ROWS, "preferences"), path, "preferences")
    before = path.read_bytes()
    dvc(repo, "add", "-q", "data/iter1/preferences.parquet")
    dvc(repo, "push", "-q")
    assert any(p.is_file() for p in remote.rglob("*"))
    shutil.rmtree(repo / ".dvc/cache")
    path.unlink()
    dvc(repo, "pull", "-q")
    assert (
        path.read_bytes() == before and lineage.md5(path) in (repo / "data/iter1/preferences.parquet.dvc").read_text()
    )


def test_default_remote_is_an_offline_folder():
    text = (ROOT / ".dvc/config").read_text()
    assert "remote = offline" in text and "url = ~/.cache/srlm/dvc-remote" in text
    out = dvc_out(ROOT, "remote", "list")
    assert "offline" in out and ".cache/srlm/dvc-remote" in out and "~" not in out  # DVC expands the user's home


def test_lineage_record_of_pairs(in_tmp):
    """pairs@1 on hand-made rows writes a lineage record beside its dataset with DVC md5s and params."""
    resp = rows.frame(
        [
            {
                "id": f"r{i}",
                "prompt_id": "p",
                "prompt": "q",
                "response": f"a{i}",
                "sample": i,
                "n_tokens": 2,
                "truncated": False,
                "loops": False,
                "model": "m",
                "seed": 1,
            }
            for i in range(2)
        ],
        "responses",
    )
    judg = rows.frame(
        [
            {
                "id": f"j{i}",
                "response_id": f"r{i}",
                "prompt_id": "p",
                "sample": 0,
                "score": float(i + 2),
                "raw": "",
                "probs": [],
                "mode": "sample",
                "model": "m",
                "seed": 1,
            }
            for i in range(2)
        ],
        "judgments",
    )
    rows.write(resp, "d/responses.parquet", "responses")
    rows.write(judg, "d/judgments.parquet", "judgments")
    pairs.main(
        [
            "--iteration",
            "1",
            "--responses",
            "d/responses.parquet",
            "--judgments",
            "d/judgments.parquet",
            "--out",
            "d/preferences.parquet",
            "--params",
            str(ROOT / "params.yaml"),
        ]
    )
    rec = lineage.read("d/preferences.parquet")
    assert rec["format"] == lineage.FORMAT and rec["stage"] == "pairs@1"
    assert rec["dataset"] == {
        "path": "d/preferences.parquet",
        "kind": "preferences",
        "rows": 1,
        "md5": lineage.md5("d/preferences.parquet"),
    }
    assert rec["inputs"]["judgments"]["md5"] == lineage.md5("d/judgments.parquet")
    assert rec["params"] == {"pairs": P.load(ROOT / "params.yaml").pairs.model_dump()} and rec[
        "params_hash"
    ] == rows.content_id(rec["params"])
    assert rec["packages"]["polars"] and rec["packages"]["python"]
    first = (in_tmp / "d/preferences.lineage.json").read_bytes()
    pairs.main(
        [
            "--iteration",
            "1",
            "--responses",
            "d/responses.parquet",
            "--judgments",
            "d/judgments.parquet",
            "--out",
            "d/preferences.parquet",
            "--params",
            str(ROOT / "params.yaml"),
        ]
    )
    assert (in_tmp / "d/preferences.lineage.json").read_bytes() == first  # no timestamps: same run, same bytes


def test_folder_md5_matches_dvc(tmp_path):
    repo = new_repo(tmp_path / "repo")
    (repo / "model/sub").mkdir(parents=True)
    (repo / "model/config.json").write_text("{}")
    (repo / "model/sub/weights.bin").write_bytes(b"\x00\x01" * 1000)
    expected = lineage.md5(repo / "model")
    dvc(repo, "add", "-q", "model")
    assert f"md5: {expected}" in (repo / "model.dvc").read_text() and expected.endswith(".dir")


@pytest.mark.slow
def test_exp_run_sets_a_judge_knob(tmp_path, monkeypatch):
    """`dvc exp run -S judge.k=5` passes the params schema and `dvc exp show` lists the judge knobs."""
    repo = new_repo(tmp_path / "repo")
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")
    cmd = "python -c \"from stages.core import params, rows; rows.write_json(params.load().judge.model_dump(), 'judge.json')\""
    (repo / "dvc.yaml").write_text(
        yaml.safe_dump(
            {"stages": {"judge": {"cmd": cmd, "params": ["judge"], "metrics": [{"judge.json": {"cache": False}}]}}}
        )
    )
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    dvc(repo, "repro", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "baseline")
    # a separate process, as a user runs it (in-process dvc state from earlier tests is not involved)
    dvc_out(repo, "exp", "run", "-q", "-S", "judge.k=5", "-n", "k5")
    shown = json.loads(dvc_out(repo, "exp", "show", "--json"))
    exps = [e for entry in shown for e in (entry.get("experiments") or []) for e in e.get("revs", [])]
    params = {e["name"]: e["data"]["params"]["params.yaml"]["data"]["judge"] for e in exps}
    assert params["k5"]["k"] == 5 and {"mode", "temperature", "top_p", "max_new_tokens"} <= set(params["k5"])
    metrics = {e["name"]: e["data"]["metrics"]["judge.json"]["data"] for e in exps}
    assert metrics["k5"]["k"] == 5  # the stage saw the knob through stages.core.params
