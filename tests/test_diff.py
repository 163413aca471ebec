"""srlm diff on hand-made datasets: known added/removed/changed rows, a known score shift, novelty,
pair churn, all three output formats, and a diff across two git commits read through DVC."""

import json
import subprocess

import polars as pl
import pytest

from stages.commands import cli, diff
from stages.core import lineage, rows
from stages.core.errors import SrlmError

from .conftest import ROOT


def pref(pid: str, prompt: str, chosen: str, rejected: str, sc: float, sr: float, it: int = 1) -> dict:
    cid, rid = rows.content_id(pid, chosen), rows.content_id(pid, rejected)
    return {
        "id": rows.content_id(pid, cid, rid),
        "prompt_id": pid,
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "chosen_id": cid,
        "rejected_id": rid,
        "score_chosen": sc,
        "score_rejected": sr,
        "iteration": it,
    }


A_ROWS = [
    pref("p1", "Explain photosynthesis to a child", "Plants eat light.", "No.", 4.0, 1.0),
    pref("p2", "List three prime numbers", "2, 3, 5", "4, 6, 8", 5.0, 2.0),
    pref("p3", "Write a short poem about the sea", "Waves roll in, blue and deep.", "Sea.", 4.0, 2.0),
    pref("p4", "What is the capital of France", "Paris.", "Lyon, I think.", 5.0, 1.0),
]
B_ROWS = [
    A_ROWS[0],  # unchanged
    {**A_ROWS[1], "score_rejected": 3.0},  # changed: same id, new score
    A_ROWS[3],  # unchanged; p3 removed
    pref("p2b", "List three prime numbers", "4, 6, 8", "2, 3, 5", 4.0, 3.0),  # not the same prompt id
    pref(
        "p5",
        "Translate good morning into Japanese",
        "Ohayou gozaimasu, a much longer answer here.",
        "Konnichiwa",
        5.0,
        4.0,
    ),  # added
    pref(
        "p6", "Write a short poem about the sea please", "Blue water sings all night long.", "Water.", 3.0, 1.0
    ),  # near-dup of p3
]


@pytest.fixture
def two_iterations(in_tmp):
    rows.write(rows.frame(A_ROWS, "preferences"), "data/iter1/preferences.parquet", "preferences")
    rows.write(rows.frame(B_ROWS, "preferences"), "data/iter2/preferences.parquet", "preferences")
    rows.write_json({"tie_rate": 0.25}, "metrics/iter1/pairs.json")
    rows.write_json({"tie_rate": 0.1}, "metrics/iter2/pairs.json")
    return in_tmp


def test_rows_added_removed_changed(two_iterations):
    r = diff.compare("1", "2")
    assert {k: r["rows"][k] for k in diff.STATUSES} == {"added": 3, "removed": 1, "changed": 1, "unchanged": 2}
    assert r["rows"]["examples"]["removed"] == [A_ROWS[2]["id"]]
    assert r["rows"]["examples"]["changed"] == [A_ROWS[1]["id"]]
    assert r["rows"]["changed_scores"][0]["score_rejected"] == [2.0, 3.0]
    assert r["rates"]["tie_rate"] == {"a": 0.25, "b": 0.1, "delta": -0.15}


def test_novelty_and_pair_churn(two_iterations):
    r = diff.compare("1", "2", similarity=0.7)
    nv = r["novelty"]
    # B's prompts: p1, p2, p4 (same id), p6 (near-duplicate of p3), p2b (same text as p2), p5 (new)
    assert nv["prompts_b"] == 6 and nv["exact_overlap"] == pytest.approx(3 / 6, abs=1e-4)
    assert nv["near_duplicate_share"] == pytest.approx(5 / 6, abs=1e-4) and nv["novelty"] == pytest.approx(
        1 / 6, abs=1e-4
    )
    p = r["pairs"]
    assert p["prompts_paired_in_both"] == 3 and p["same_pair"] == 3 and p["churn"] == 0.0
    assert p["prompts_paired_only_in_a"] == 1 and p["prompts_paired_only_in_b"] == 3


def test_flipped_pair_counts_as_churn(in_tmp):
    flipped = pref("p1", "Explain photosynthesis to a child", "No.", "Plants eat light.", 3.0, 2.0)
    rows.write(rows.frame(A_ROWS[:2], "preferences"), "data/iter1/preferences.parquet", "preferences")
    rows.write(rows.frame([flipped, A_ROWS[1]], "preferences"), "data/iter2/preferences.parquet", "preferences")
    p = diff.compare("1", "2")["pairs"]
    assert p == {**p, "prompts_paired_in_both": 2, "same_pair": 1, "flipped": 1, "churn": 0.5}


def judgments(scores: list[float | None]) -> pl.DataFrame:
    return rows.frame(
        [
            {
                "id": f"j{i}",
                "response_id": f"r{i}",
                "prompt_id": f"p{i % 3}",
                "sample": 0,
                "score": s,
                "raw": f"Score: {s}",
                "probs": [],
                "mode": "sample",
                "model": "m",
                "seed": 0,
            }
            for i, s in enumerate(scores)
        ],
        "judgments",
    )


def test_known_score_shift(in_tmp):
    a = [1.0, 2.0, 3.0, 4.0] * 5
    rows.write(judgments(a + [None] * 5), "data/iter1/judgments.parquet", "judgments")
    rows.write(judgments([s + 1 for s in a]), "data/iter2/judgments.parquet", "judgments")
    r = diff.compare("1", "2", kind="judgments")
    s = r["scores"]["score"]
    assert s["wasserstein"] == pytest.approx(1.0) and s["mean_delta"] == pytest.approx(1.0)
    assert s["hist_a"] == {"0": 0, "1": 5, "2": 5, "3": 5, "4": 5, "5": 0}
    assert s["hist_b"] == {"0": 0, "1": 0, "2": 5, "3": 5, "4": 5, "5": 5}
    assert s["ks_statistic"] == pytest.approx(0.25)
    assert r["rates"]["parse_rate"] == {"a": 0.8, "b": 1.0, "delta": 0.2}
    # every id j0..j19 is in both with a new score; j20..j24 (unparsed) are only in A
    assert (r["rows"]["changed"], r["rows"]["removed"], r["rows"]["added"]) == (20, 5, 0)
    assert r["novelty"]["exact_overlap"] == 1.0 and r["novelty"]["novelty"] is None  # judgments keep no prompt text


def test_meta_judgments_diff_as_pairs(in_tmp, capsys):
    """meta_judge@t's judge pairs (docs/recipes.md) diff like preferences: meta scores, judgment lengths, churn."""

    def pair(i: int, chosen: str, sc: float) -> dict:
        msg = lambda role, text: [{"role": role, "content": text}]
        return {"id": f"m{i}{chosen[7]}", "response_id": f"r{i}", "prompt_id": f"p{i}", "prompt": msg("user", "Grade"),
                "chosen": msg("assistant", chosen), "rejected": msg("assistant", "Score: 5\nPerfect in every way."),
                "chosen_id": f"j{i}{chosen[7]}", "rejected_id": f"k{i}", "score_chosen": sc, "score_rejected": 1.0,
                "graded_chosen": 3.0, "graded_rejected": 5.0, "judgments": 3, "iteration": 1, "model": "m", "seed": 0}  # fmt: skip

    a = [pair(0, "Score: 3\nFair.", 4.0), pair(1, "Score: 2\nThin.", 3.0)]
    b = [a[0], pair(1, "Score: 1\nWrong.", 5.0), pair(2, "Score: 4\nGood.", 4.0)]
    rows.write(rows.frame(a, "meta_judgments"), "data/iter1/meta_judgments.parquet", "meta_judgments")
    rows.write(rows.frame(b, "meta_judgments"), "data/iter2/meta_judgments.parquet", "meta_judgments")
    r = diff.compare("1", "2", kind="meta_judgments")
    assert {k: r["rows"][k] for k in diff.STATUSES} == {"added": 2, "removed": 1, "changed": 0, "unchanged": 1}
    assert r["scores"]["chosen"]["mean_delta"] == round(13 / 3 - 3.5, 4)
    assert r["pairs"]["prompts_paired_in_both"] == 2 and r["pairs"]["churn"] == 0.5
    assert r["novelty"]["novelty"] is None and r["lengths"]["chosen"]["mean_a"] == 14.0
    cli.main(["--params", str(ROOT / "params.yaml"), "diff", "1", "2", "--kind", "meta_judgments"])
    assert "Pair churn" in capsys.readouterr().out


def test_cli_formats(two_iterations, capsys):
    params = ["--params", str(ROOT / "params.yaml")]
    cli.main([*params, "diff", "1", "2", "--format", "json"])
    r = json.loads(capsys.readouterr().out)
    assert r["rows"]["added"] == 3 and set(r["scores"]) == {"chosen", "rejected", "margin"}
    cli.main([*params, "diff", "1", "2"])
    out = capsys.readouterr().out
    assert "Rows (by content id)" in out and "Pair churn" in out and "Wasserstein" in out

    cli.main([*params, "diff", "1", "2", "--format", "markdown", "-o", "report/diff.md"])
    md = (two_iterations / "report/diff.md").read_text()
    assert md.startswith("## srlm diff 1 → 2 (preferences)") and "| rows A | rows B | added |" in md
    for name in ("diff-scores.png", "diff-lengths.png"):
        assert f"]({name})" in md
        assert (two_iterations / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_side_is_a_clear_error(two_iterations):
    with pytest.raises(SrlmError, match="expected ITER or REV:ITER"):
        diff.compare("1", "HEAD~1:")
    with pytest.raises(Exception, match="data/iter7/preferences.parquet does not exist"):
        diff.compare("1", "7")


def git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_diff_across_two_commits(tmp_path, monkeypatch):
    """v1 committed, data changed, v2 committed: HEAD~1:1 vs HEAD:1 read both through DVC, no checkout."""
    from dvc.repo import Repo

    monkeypatch.chdir(tmp_path)
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    repo = Repo.init(str(tmp_path))
    path = "data/iter1/preferences.parquet"
    for version, data in (("v1", A_ROWS), ("v2", B_ROWS)):
        rows.write(rows.frame(data, "preferences"), path, "preferences")
        rows.write_json(
            {"format": lineage.FORMAT, "params": {"pairs": {"min_margin": 0.0 if version == "v1" else 0.5}}},
            lineage.path_for(path),
        )
        repo.add([path])
        git(tmp_path, "add", "-A")
        git(tmp_path, "commit", "-qm", version)
    repo.close()
    (tmp_path / path).unlink()  # the workspace copy is not needed: bytes come from the DVC cache

    r = diff.compare("HEAD~1:1", "HEAD:1")
    assert {k: r["rows"][k] for k in diff.STATUSES} == {"added": 3, "removed": 1, "changed": 1, "unchanged": 2}
    assert r["lineage"]["differs"] == {"params.pairs.min_margin": [0.0, 0.5]}
    with pytest.raises(SrlmError, match="cannot read"):
        diff.compare("no-such-branch:1", "HEAD:1")
