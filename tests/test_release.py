"""srlm release: the gate, the dataset folder and card, and the upload through the real huggingface_hub
client against tests/hub_standin.py (a local stand-in for the Hub API, not the Hub)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from stages.commands import cli
from stages.commands.release import ReleaseError, release
from stages.core import params as P
from stages.core import rows
from tests.conftest import write_params
from tests.hub_standin import HubStandIn

FAKE_TOKEN = "hf_FAKEtokenNEVERtoBEseen0123456789"
REPO = "srlm-org/self-rewarding-iter"
DVC_YAML = """
stages:
  pairs:
    foreach: {"1": {prev: 0}}
    do:
      cmd: python -c "print('pairs')"
      deps:
        - data/iter${key}/responses.txt
      params:
        - pairs
      outs:
        - data/iter${key}/preferences.parquet
  validate:
    foreach: {"1": {prev: 0}}
    do:
      cmd: python -c "print('validate')"
      deps:
        - data/iter${key}/preferences.parquet
      metrics:
        - metrics/iter${key}/validate.json:
            cache: false
"""
VALIDATION = {
    "passed": True,
    "overridden": False,
    "failed": 0,
    "evaluated": 12,
    "failures": [],
    "skipped": [],
    "warnings": [],
    "observed": {"preferences": {"pairs": 6}},
}


def pairs(n: int = 6) -> list[dict]:
    msg = lambda role, text: [{"role": role, "content": text}]
    return [
        {
            "id": f"pair{i}",
            "prompt_id": f"p{i}",
            "prompt": msg("user", f"Question {i}?"),
            "chosen": msg("assistant", f"A careful answer {i}."),
            "rejected": msg("assistant", f"meh {i}"),
            "chosen_id": f"c{i}",
            "rejected_id": f"r{i}",
            "score_chosen": 4.5,
            "score_rejected": 1.0 + i / 10,
            "iteration": 1,
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A tiny real DVC project with iteration 1 built and locked (dvc commit), made once per module."""
    from dvc.repo import Repo

    root = tmp_path_factory.mktemp("project")
    write_params(root / "params.yaml", "release: {retries: 2, retry_wait: 0}")
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "data/iter1").mkdir(parents=True)
    (root / "data/iter1/responses.txt").write_text("responses\n")
    rows.write(rows.frame(pairs(), "preferences"), root / "data/iter1/preferences.parquet", "preferences")
    rows.write_json(VALIDATION, root / "metrics/iter1/validate.json")
    Repo.init(str(root), no_scm=True).close()
    dvc_commit(root, "pairs@1", "validate@1")
    return root


@pytest.fixture
def project(template, tmp_path, monkeypatch) -> Path:
    root = tmp_path / "project"
    shutil.copytree(template, root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    return root


def dvc_commit(root: Path, *stages: str) -> None:
    """Record the current files in dvc.lock, as `dvc commit -f` would (DVC resolves names against the cwd)."""
    from dvc.repo import Repo

    cwd = os.getcwd()
    os.chdir(root)
    try:
        with Repo(".") as repo:
            for stage in stages:
                repo.commit(stage, force=True)
    finally:
        os.chdir(cwd)


def load(root: Path) -> P.Params:
    return P.load(root / "params.yaml")


def test_dry_run_folder_loads_with_datasets_and_card(project, tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    write_params(project / "params.yaml", "release: {test_fraction: 0.5, license: cc-by-4.0}")
    human = {
        "pairwise_accuracy": 0.61,
        "pairwise_accuracy_ci95": [0.43, 0.76],
        "longer_wins_accuracy": 0.69,
        "longer_wins_accuracy_ci95": [0.51, 0.83],
        "pairs": 30,
        "length_slices": {"pointwise": {"all": {"acc": 0.61, "n": 30, "ci95": [0.43, 0.76]}}},
    }
    h2h = {"prompts": 8, "win": 0.62, "win_ci95": [0.31, 0.86], "tie": 0.13, "loss": 0.25, "loss_ci95": [0.07, 0.59]}
    rows.write_json({"human": human, "head2head": {"vs_prev": h2h}}, project / "metrics/iter1/eval.json")
    ifeval = {"prompt_level_strict_acc": {"acc": 0.25, "n": 8, "ci95": [0.0709, 0.5907]}, "cap_hit": {"share": 0.5}}
    rows.write_json({"ifeval": ifeval}, project / "metrics/base/eval.json")
    rows.write_json(
        {"chosen_longer_rate": 0.75, "chosen_truncated": 1, "rejected_truncated": 0},
        project / "metrics/iter1/pairs.json",
    )
    record = {
        "format": "srlm-lineage/1",
        "stage": "pairs@1",
        "params_hash": "4f1e0a9c2d3b5e6f",
        "dataset": {"path": "data/iter1/preferences.parquet", "kind": "preferences", "md5": "9b2cfeed", "rows": 6},
    }
    rows.write_json(record, project / "data/iter1/preferences.lineage.json")  # docs/versioning.md (issue 5)
    out = tmp_path / "release"
    r = release(1, REPO, load(project), project, dry_run=out)
    assert set(r["splits"]) == {"train", "test"} and sum(r["splits"].values()) == 6

    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    assert {s: len(ds[s]) for s in ds} == r["splits"]
    row = ds["train"][0]
    assert row["prompt"][0]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    assert {"score_chosen", "score_rejected", "id", "chosen_id", "rejected_id"} <= set(ds["train"].column_names)
    assert not set(ds["train"]["prompt_id"]) & set(ds["test"]["prompt_id"])  # no prompt in both splits

    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "cc-by-4.0" and card.data.size_categories == ["n<1K"]
    assert card.data.task_categories == ["text-generation"] and "dpo" in card.data.tags
    assert {f["split"] for f in card.data.configs[0]["data_files"]} == {"train", "test"}
    lock = (project / "dvc.lock").read_text()
    md5 = lock.split("data/iter1/preferences.parquet")[1].split("md5: ")[1].split()[0]
    text = card.text
    for needle in (
        "## Lineage",
        md5,
        "**passed**",
        "## Dataset Structure",
        "### Example rows",
        "Question 0?",  # an example row, as it is
        "## Bias, Risks, and Limitations",
        "0.610 [0.430, 0.760]",  # the judge's accuracy beside its interval ...
        "0.690 [0.510, 0.830]",  # ... and the longer-answer baseline on the same pairs
        "0.620 [0.310, 0.860]",  # a win rate with its interval
        "| preferences.pairs | 6 | - |",  # observed value (an older validate.json has no thresholds)
        "@article{yuan2024selfrewarding",
        "Not built in a git checkout",
        "datasets",
        "min_margin",
        "4f1e0a9c2d3b5e6f",
        "9b2cfeed",
        str(rows.derive_seed(0, "responses", 1)),
        f'load_dataset("{REPO}", revision="iter-1")',
        "### Measured from outside the loop",
        "| base | 0.250 [0.071, 0.591] (n=8) | 50% | - | - | - |",
        "pairs whose chosen answer is the longer: 0.75; truncated chosen / rejected: 1 / 0",
    ):
        assert needle in text, needle


def test_meta_judgments_are_their_own_config(project, tmp_path):
    """meta_judge@t's judge pairs (docs/recipes.md) are released beside the answer pairs, as config meta_judgments."""
    import datasets
    from huggingface_hub import DatasetCard

    msg = lambda role, text: [{"role": role, "content": text}]
    judge_pairs = [
        {"id": f"m{i}", "response_id": f"resp{i}", "prompt_id": f"p{i}", "prompt": msg("user", f"Grade answer {i}"),
         "chosen": msg("assistant", "Score: 3\nFair."), "rejected": msg("assistant", "Score: 5\nPerfect."),
         "chosen_id": f"j{i}", "rejected_id": f"k{i}", "score_chosen": 4.0, "score_rejected": 1.0,
         "graded_chosen": 3.0, "graded_rejected": 5.0, "judgments": 3, "iteration": 1, "model": "models/M0", "seed": 0}
        for i in range(2)
    ]  # fmt: skip
    rows.write(
        rows.frame(judge_pairs, "meta_judgments"), project / "data/iter1/meta_judgments.parquet", "meta_judgments"
    )
    out = tmp_path / "release"
    r = release(1, REPO, load(project), project, dry_run=out)
    assert sum(r["splits"].values()) == 6 and set(r["splits"]) == {"train", "test"}
    card = DatasetCard.load(out / "README.md")
    assert [c["config_name"] for c in card.data.configs] == ["default", "meta_judgments"]
    assert "2 judge-preference pairs" in card.text
    ds = datasets.load_dataset(str(out), "meta_judgments", cache_dir=str(tmp_path / "hf-cache"))
    assert sum(map(len, ds.values())) == 2 and ds[next(iter(ds))][0]["graded_rejected"] == 5.0
    pairs_ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    assert sum(map(len, pairs_ds.values())) == 6
    for name in ds:  # a prompt's judge pairs are in the split its answer pairs are in
        other = "test" if name == "train" else "train"
        assert not set(ds[name]["prompt_id"]) & set(pairs_ds[other]["prompt_id"])


def test_same_iteration_gives_identical_folder(project, tmp_path):
    a = release(1, REPO, load(project), project, dry_run=tmp_path / "a")
    b = release(1, REPO, load(project), project, dry_run=tmp_path / "b")
    files = lambda d: {f.relative_to(d): f.read_bytes() for f in Path(d).rglob("*") if f.is_file()}
    assert files(a["folder"]) == files(b["folder"])


def test_card_has_no_template_leftovers_a_fenced_citation_and_its_creators(project, tmp_path):
    """What a reviewer reads: no `[optional]` headings or template guidance comments, BibTeX in a ```bibtex fence
    (else Markdown renders it as one paragraph), machine-generated annotations and language, and the seed sources
    M0 was trained on as `source_datasets` (paths outside the repo by folder and name only)."""
    from huggingface_hub import DatasetCard

    out = tmp_path / "out"
    release(1, REPO, load(project), project, dry_run=out)
    card = DatasetCard.load(out / "README.md")
    text = card.text
    assert "[optional]" not in text and "<!--" not in text and "-->" not in text
    assert "\n\n\n" not in text
    assert "```bibtex\n@article{yuan2024selfrewarding" in text
    bib = text.split("```bibtex\n")[1].split("```")[0]
    assert "@software{srlm" in bib and bib.rstrip().endswith("}")
    assert card.data.annotations_creators == ["machine-generated"]
    assert card.data.language_creators == ["machine-generated"]
    assert card.data.source_datasets == ["seed/ift.jsonl", "seed/eft.jsonl"]  # write_params: absolute ROOT paths
    assert "`seed/ift.jsonl`, `seed/eft.jsonl`" in text
    assert str(Path.home()) not in "\n".join(card.data.source_datasets)


def test_a_test_split_always_or_the_card_says_why(project, tmp_path):
    """The CPU default (test_fraction 0.1, a handful of prompts) used to give no test split at all: with two or
    more prompts each split gets at least one prompt; with one, the card says why there is no test split."""
    from huggingface_hub import DatasetCard

    from stages.commands.release import split

    frame = rows.frame(pairs(2), "preferences")
    parts = split(frame, 0.1, 0)
    assert sorted(len(v) for v in parts.values()) == [1, 1] and set(parts) == {"train", "test"}
    assert set(split(frame, 0.99, 0)) == {"train", "test"}  # never all in test either
    assert set(split(frame.head(1), 0.1, 0)) == {"train"} and set(split(frame, 0.0, 0)) == {"train"}

    r = release(1, REPO, load(project), project, dry_run=tmp_path / "six")  # params.yaml's 0.1, 6 prompts
    assert r["splits"]["test"] >= 1 and r["splits"]["train"] >= 1

    rows.write(rows.frame(pairs(1), "preferences"), project / "data/iter1/preferences.parquet", "preferences")
    dvc_commit(project, "pairs@1", "validate@1")
    r = release(1, REPO, load(project), project, dry_run=tmp_path / "one")
    assert r["splits"] == {"train": 1}
    text = DatasetCard.load(tmp_path / "one/README.md").text
    assert "No test split: the iteration has 1 prompt, and a prompt's pairs are never split." in text


@pytest.mark.parametrize(
    "case, needle",
    [
        ("failed", "failed validation"),
        ("missing_validation", "has not passed validation"),
        ("stale", "stale against dvc.lock"),
        ("stale_params", "stale against dvc.lock"),
        ("no_iteration", "does not exist"),
        ("bad_repo", "invalid --repo-id"),
        ("no_namespace", "must be ORG/NAME"),
        ("not_empty", "holds other files"),
    ],
)
def test_refusals_exit_nonzero_with_a_clear_message(project, tmp_path, case, needle):
    args = ["release", "--iteration", "1", "--repo-id", REPO, "--dry-run", str(tmp_path / "out")]
    if case == "failed":
        rows.write_json(
            {**VALIDATION, "passed": False, "failed": 1, "failures": ["preferences.min_pairs"]},
            project / "metrics/iter1/validate.json",
        )
    elif case == "missing_validation":
        (project / "metrics/iter1/validate.json").unlink()
    elif case == "stale":
        rows.write(rows.frame(pairs(5), "preferences"), project / "data/iter1/preferences.parquet", "preferences")
    elif case == "stale_params":
        write_params(project / "params.yaml", "pairs: {min_margin: 0.5}")
    elif case == "no_iteration":
        args[2] = "7"
    elif case == "bad_repo":
        args[4] = "bad//name"
    elif case == "no_namespace":
        args[4] = "justname"
    elif case == "not_empty":
        (tmp_path / "out").mkdir()
        (tmp_path / "out/keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as e:
        cli.main(args)
    assert isinstance(e.value.code, str) and needle in e.value.code  # a string code exits with status 1
    if case == "not_empty":
        assert (tmp_path / "out/keep.txt").read_text() == "mine"


def test_overridden_validation_is_released_and_recorded(project, tmp_path):
    rows.write_json(
        {**VALIDATION, "passed": False, "overridden": True, "failed": 1, "failures": ["prompts.x"]},
        project / "metrics/iter1/validate.json",
    )
    dvc_commit(project, "validate@1")  # the override run is what dvc.lock records
    out = tmp_path / "out"
    release(1, REPO, load(project), project, dry_run=out)
    assert "FAILED, released under the override" in (out / "README.md").read_text()


def test_card_has_thresholds_provenance_and_the_judges_raw_texts(project, tmp_path):
    """Checks with observed value, threshold and knob; the embedded base model named for what it is; the
    judgments (raw grade texts) as their own config that load_dataset reads."""
    import datasets

    check = {
        "dataset": "preferences",
        "check": "min_pairs",
        "observed": 6,
        "threshold": ">= 2",
        "params": ["validate.min_pairs"],
        "passed": True,
    }
    rows.write_json({**VALIDATION, "checks": [check]}, project / "metrics/iter1/validate.json")
    rows.write_json({"gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}, project / "metrics/base.json")
    judged = [
        {
            "id": f"j{i}",
            "response_id": f"c{i}",
            "prompt_id": f"p{i}",
            "sample": 0,
            "score": 4.0,
            "raw": f"Score: 4\nA fine answer number {i}.",
            "probs": [],
            "mode": "sample",
            "model": "models/M0",
            "seed": 1,
        }
        for i in range(6)
    ]
    rows.write(rows.frame(judged, "judgments"), project / "data/iter1/judgments.parquet", "judgments")
    dvc_commit(project, "validate@1")
    out = tmp_path / "out"
    release(1, REPO, load(project), project, dry_run=out)
    text = (out / "README.md").read_text()
    assert "| preferences.min_pairs | 6 | >= 2 | validate.min_pairs | pass |" in text
    assert "de-quantised to float32 from the Q4_1 GGUF `SmolLM2-135M-Instruct.Q4_1.gguf`" in text
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in text and "judge: Score: 4 A fine answer number 0." in text
    ds = datasets.load_dataset(str(out), "judgments", cache_dir=str(tmp_path / "hf-cache"))
    assert ds["train"]["raw"][0].startswith("Score: 4") and len(ds["train"]) == 6


def test_dirty_lock_is_refused_for_upload_and_stated_in_a_dry_run(project, tmp_path, capsys):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=t@e", "-c", "user.name=t", "add", "-A")
    git("-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "run")
    (project / "dvc.lock").write_text((project / "dvc.lock").read_text() + "\n# edited\n")
    with pytest.raises(ReleaseError, match="uncommitted changes to dvc.lock"):
        release(1, REPO, load(project), project)
    out = tmp_path / "out"
    release(1, REPO, load(project), project, dry_run=out)
    assert "WARNING uncommitted changes to dvc.lock" in capsys.readouterr().err
    assert "**with uncommitted changes** to dvc.lock" in (out / "README.md").read_text()


def test_upload_one_commit_tag_and_noop_rerelease(project, tmp_path, capsys):
    import datasets

    with HubStandIn(token=FAKE_TOKEN) as hub:
        r = release(1, REPO, load(project), project, endpoint=hub.url)
        repo = hub.repos[REPO]
        assert repo.private and len(repo.commits) == 2  # the repo's initial commit + ours
        head = repo.head
        assert r["new_commit"] and r["commit"] == head.oid and repo.tags == {"iter-1": head.oid}
        assert head.summary == "srlm release: iteration 1 (iter-1)"
        assert set(head.files) == {
            ".gitattributes",
            "README.md",
            "data/train-00000-of-00001.parquet",
            "data/test-00000-of-00001.parquet",  # a test split at 0.1 of 6 prompts: at least one prompt
        }
        assert sum(q["route"] == "commit" for q in hub.requests) == 1
        assert all(q["auth"] == f"Bearer {FAKE_TOKEN}" for q in hub.requests)

        again = release(1, REPO, load(project), project, endpoint=hub.url)  # same tag: nothing to do
        assert not again["new_commit"] and not again["tagged"] and len(repo.commits) == 2
        assert sum(q["route"] == "commit" for q in hub.requests) == 1

        write_params(project / "params.yaml", "release: {tags: [dpo, changed], retries: 0}")
        with pytest.raises(ReleaseError, match="tag iter-1 already exists"):  # new content under an old tag
            release(1, REPO, load(project), project, endpoint=hub.url)
        assert len(repo.commits) == 2

    served = tmp_path / "served"  # what arrived loads as the dataset
    for path, data in head.files.items():
        (served / path).parent.mkdir(parents=True, exist_ok=True)
        (served / path).write_bytes(data)
    ds = datasets.load_dataset(str(served), cache_dir=str(tmp_path / "hf-cache"))
    assert sorted([*ds["train"]["id"], *ds["test"]["id"]]) == [f"pair{i}" for i in range(6)]
    assert FAKE_TOKEN not in capsys.readouterr().out


def test_failed_tag_leaves_an_untagged_commit_and_a_rerun_tags_it_without_a_new_commit(project):
    with HubStandIn(token=FAKE_TOKEN) as hub:
        hub.faults["tag"] = 3  # 1 try + 2 retries all dropped
        with pytest.raises(ReleaseError, match="rerun the same command to tag it"):
            release(1, REPO, load(project), project, endpoint=hub.url)
        repo = hub.repos[REPO]
        assert len(repo.commits) == 2 and repo.tags == {}
        r = release(1, REPO, load(project), project, endpoint=hub.url)
        assert not r["new_commit"] and r["tagged"] and repo.tags == {"iter-1": repo.head.oid}
        assert len(repo.commits) == 2
        assert sum(q["route"] == "commit" for q in hub.requests) == 1  # the client skipped the empty commit


def test_network_error_is_retried_then_fails_clearly_and_untagged(project, capsys, caplog):
    with HubStandIn(token=FAKE_TOKEN) as hub:
        hub.faults["commit"] = 1  # one dropped connection: the retry succeeds, one commit
        release(1, REPO, load(project), project, endpoint=hub.url)
        repo = hub.repos[REPO]
        assert len(repo.commits) == 2 and "iter-1" in repo.tags
        assert "retry 1/2" in capsys.readouterr().err

        hub.faults["commit"] = 10  # the network stays down: bounded retries, a clear error, no tag
        rows.write(rows.frame(pairs(4), "preferences"), project / "data/iter1/preferences.parquet", "preferences")
        dvc_commit(project, "pairs@1", "validate@1")
        with pytest.raises(ReleaseError) as e:
            release(1, REPO, load(project), project, tag="iter-1-redo", endpoint=hub.url)
        assert "upload to" in str(e.value) and "failed" in str(e.value)
        assert hub.faults["commit"] == 7  # 1 try + 2 retries
        assert len(repo.commits) == 2 and "iter-1-redo" not in repo.tags
        out = capsys.readouterr()
        for text in (str(e.value), out.out, out.err, caplog.text):
            assert FAKE_TOKEN not in text


def test_token_missing_and_never_written(project, tmp_path, monkeypatch, capsys, caplog):
    import huggingface_hub.constants as C

    with HubStandIn(token=FAKE_TOKEN) as hub:
        release(1, REPO, load(project), project, endpoint=hub.url)
        hub.token = "another-token"  # the Hub rejects ours: the 401 error text must not carry it
        with pytest.raises(ReleaseError) as e:
            release(1, REPO, load(project), project, tag="x", endpoint=hub.url)
        assert "401" in str(e.value) and FAKE_TOKEN not in str(e.value)
    release(1, REPO, load(project), project, dry_run=tmp_path / "dry")
    out = capsys.readouterr()
    assert FAKE_TOKEN not in out.out + out.err + caplog.text
    for f in [*project.rglob("*"), *(tmp_path / "dry").rglob("*")]:  # cards, metrics, dvc.lock, parquet
        if f.is_file():
            assert FAKE_TOKEN.encode() not in f.read_bytes(), f

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(C, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(ReleaseError, match="no Hugging Face token"):
        release(1, REPO, load(project), project, endpoint="http://127.0.0.1:9")


def test_card_says_what_the_judge_gate_found():
    """The judge that labelled the pairs, its verdict with the numbers (or why it was skipped), and its checks in
    the table: recorded only under validate.judge_gate warn."""
    import json

    from stages.commands.release_card import validation_section
    from stages.measure.judge_gate import judge_verdict
    from tests.conftest import ROOT, knobs

    m0 = json.loads((ROOT / "metrics/iter0/eval.json").read_text())  # the CPU M0: 0.22 on 9 pairs
    judge = judge_verdict(m0, 9, knobs("validate_"), "metrics/iter0/eval.json")
    text = validation_section({**VALIDATION, "checks": [], "judge": judge}, 1)
    assert "The judge that labelled these pairs (M0, measured on held-out human pairs: `metrics/iter0/" in text
    assert "`validate.judge_gate: warn`: **failed (warn): accuracy 0.22 [0.06-0.55] (n=9)" in text
    assert "(9 pairs decided by the judge)" in text
    assert "| judge.accuracy | 0.2222 [0.0632, 0.5474] (n=9) | 95% interval low > 0.5 |" in text
    assert "FAIL (recorded only)" in text
    skipped = judge_verdict({"iteration": 0, "human": None}, 9, knobs("validate_"), "metrics/iter0/eval.json")
    assert "**skipped: no held-out human data" in validation_section({**VALIDATION, "judge": skipped}, 1)
