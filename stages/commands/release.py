"""srlm release: publish an iteration's preference pairs as a Hugging Face Hub dataset with a lineage card.

    srlm release --iteration 1 --repo-id ORG/NAME [--public] [--revision-tag iter-1] [--dry-run DIR]

Gate: the iteration must exist, its validation must have passed (or been overridden with
validate.allow_failure, which the card records) and `dvc status` of its stages must be clean,
so the released bytes are the ones dvc.lock names; dvc.lock, params.yaml and the iteration's files must be
committed in git (else refused, or --allow-dirty, which the card states; a dry run warns). Folder: data/{train,test}-NNNNN-of-NNNNN.parquet
in TRL's conversational preference format (prompt/chosen/rejected message lists) plus scores and
ids, and README.md, a dataset card (stages/commands/release_card.py). Upload: one commit of the whole folder
through huggingface_hub, then a tag; identical content makes no new commit. The token is whatever
huggingface_hub resolves (HF_TOKEN or `hf auth login`); it is never printed or written, and is
scrubbed from error text. See docs/release.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from stages.commands import workspace
from stages.core import params as P
from stages.core import rows
from stages.core.errors import SrlmError, brief
from stages.core.lineage import ITERATION_STAGES, lock_stages

KEEP_REMOTE = (".gitattributes",)


class ReleaseError(SrlmError):
    """A refusal or failure with a message for the user; exits non-zero."""


def check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ReleaseError(f"release: invalid --repo-id {repo_id!r}: {e}") from None
    if "/" not in repo_id:
        raise ReleaseError(f"release: --repo-id {repo_id!r} must be ORG/NAME (or USER/NAME)")


def check_validation(iteration: int, root: Path) -> dict:
    path = root / f"metrics/iter{iteration}/validate.json"
    try:
        result = rows.read_json(path)
    except SrlmError as e:
        raise ReleaseError(f"release: {e}".replace("release: error: ", "release: ")) from None
    if result is None:
        raise ReleaseError(
            f"release: iteration {iteration} has not passed validation ({path} is missing; "
            f"run `dvc repro validate@{iteration}`)"
        )
    if not result.get("passed") and not result.get("overridden"):
        failures = ", ".join(result.get("failures", [])) or "see the report"
        raise ReleaseError(
            f"release: iteration {iteration} failed validation ({result.get('failed', '?')} check(s): "
            f"{failures}); fix the data, or set validate.allow_failure: true and rerun validate@{iteration}"
        )
    return result


def stale_stages(iteration: int, root: Path) -> dict[str, list]:
    """`dvc status` of the iteration's dataset stages: {stage: changes}; a stage never run counts as stale."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    cwd = os.getcwd()
    os.chdir(root)  # DVC resolves stage names and paths against the cwd, not the repo it was opened on
    try:
        repo = Repo(".")
    except NotDvcRepoError:
        raise ReleaseError(f"release: {root} is not a DVC project (no .dvc/); run from the repo root") from None
    try:
        targets = [
            s.name
            for s in repo.index.stages
            if s.name.rpartition("@")[::2] in {(name, str(iteration)) for name in ITERATION_STAGES}
        ]
        if f"pairs@{iteration}" not in targets:
            raise ReleaseError(
                f"release: dvc.yaml has no stage pairs@{iteration}; is iteration {iteration} in params.yaml?"
            )
        locked = lock_stages(Path("."))
        stale = {name: ["not in dvc.lock (never run)"] for name in targets if name not in locked}
        stale.update(repo.status(targets=[t for t in targets if t in locked]))
    finally:
        repo.close()
        os.chdir(cwd)
    return stale


def gate(iteration: int, p: P.Params, root: Path) -> dict:
    """Refuse (ReleaseError) unless the iteration exists, is validated and is up to date; return the validation.
    The workspace files are compared with dvc.lock; whether dvc.lock itself is committed is `check_clean`'s."""
    if str(iteration) not in p.iterations:
        raise ReleaseError(
            f"release: iteration {iteration} does not exist (params.yaml iterations: "
            f"{', '.join(sorted(p.iterations, key=int))})"
        )
    prefs = root / f"data/iter{iteration}/preferences.parquet"
    if not prefs.exists():
        rel = prefs.relative_to(root).as_posix()
        if rel in workspace.outputs(workspace.load_lock(root)):  # a fresh clone: the bytes are in a DVC remote
            raise ReleaseError(
                f"release: {rel} is in dvc.lock but not in the workspace: {workspace.pull_hint(root=root)}"
            )
        raise ReleaseError(
            f"release: iteration {iteration} has no {prefs.relative_to(root)}; run `dvc repro validate@{iteration}`"
        )
    validation = check_validation(iteration, root)
    stale = stale_stages(iteration, root)
    if stale:
        lines = [f"  {stage}: {json.dumps(changes)}" for stage, changes in sorted(stale.items())]
        # the stale stages themselves: evaluate@t is no dependency of validate@t, so `dvc repro validate@t` would
        # leave it stale (DVC reruns what a named stage needs first)
        rank = {name: i for i, name in enumerate(ITERATION_STAGES)}
        order = sorted(stale, key=lambda s: (rank.get(s.rpartition(":")[2].rpartition("@")[0], len(rank)), s))
        absent = [p for p in workspace.missing(workspace.load_lock(root), root) if f"iter{iteration}/" in p]
        raise ReleaseError(
            f"release: iteration {iteration}'s outputs are stale against dvc.lock:\n"
            + "\n".join(lines)
            + (
                f"\n{', '.join(absent)} not in the workspace: {workspace.pull_hint(root=root)}"
                if absent
                else f"\nrun `dvc repro {' '.join(order)}` (and commit dvc.lock) before releasing"
            )
        )
    return validation


def check_clean(iteration: int, root: Path, allow_dirty: bool, dry_run: bool) -> list[str] | None:
    """The card names a git commit: refuse an upload when dvc.lock, params.yaml, dvc.yaml or the iteration's
    tracked files differ from it (unless --allow-dirty, which the card then states); a dry run only warns."""
    from stages.commands.release_card import git_dirty

    dirty = git_dirty(root, iteration)
    if dirty:
        listed = ", ".join(line[3:] for line in dirty)
        if not (allow_dirty or dry_run):
            raise ReleaseError(
                f"release: uncommitted changes to {listed} (git status): the card would name a commit whose "
                "dvc.lock differs; commit them first, or pass --allow-dirty (the card then says so)"
            )
        print(f"release: WARNING uncommitted changes to {listed}; the card says so", file=sys.stderr)
    return dirty


def split(df, test_fraction: float, seed: int, like=None) -> dict:
    """{split: frame}; a prompt's pairs all land in one split (no prompt leaks from train into test). Each
    prompt draws a seeded number; those below test_fraction are the test split. With two or more prompts each
    split gets at least one (a dozen CPU prompts at 10% would often give none): the lowest draw goes to test,
    the highest to train. One prompt, or test_fraction 0, gives a train split only (the card says why).
    `like`: another frame whose prompts decide (meta_judgments split as the answer pairs are)."""
    import polars as pl

    if test_fraction <= 0:
        return {"train": df}
    test = test_prompts(df["prompt_id"] if like is None else like["prompt_id"], test_fraction, seed)
    if like is not None:  # prompts only `df` has: by their draw alone
        known = set(like["prompt_id"])
        test |= {pid for pid in set(df["prompt_id"]) - known if _draw(seed, pid) < test_fraction}
    in_test = df["prompt_id"].is_in(pl.Series(sorted(test), dtype=pl.String))
    parts = {"train": df.filter(~in_test), "test": df.filter(in_test)}
    return {k: v for k, v in parts.items() if not v.is_empty()}


def _draw(seed: int, prompt_id: str) -> float:
    return rows.derive_seed(seed, "release-split", prompt_id) / 0x7FFFFFFF


def test_prompts(prompt_ids, test_fraction: float, seed: int) -> set[str]:
    """The prompts of the test split (see `split`)."""
    draw = {pid: _draw(seed, pid) for pid in set(prompt_ids)}
    test = {pid for pid, d in draw.items() if d < test_fraction}
    if len(draw) >= 2:
        order = sorted(draw, key=lambda pid: (draw[pid], pid))
        test = (test | {order[0]}) - {order[-1]}
    return test


# configs beside the pairs: the judge's raw texts and the answers they grade (distilabel-style sets ship them),
# and meta_judge@t's judge pairs when the recipe is on
EXTRA_CONFIGS = ("judgments", "responses", "meta_judgments")


def write_folder(
    iteration: int,
    repo_id: str,
    tag: str,
    p: P.Params,
    root: Path,
    out: Path,
    validation: dict,
    dirty: list[str] | None = None,
) -> dict:
    """Write shards and README.md into `out` (replaced atomically); return {split: rows} of the pairs."""
    from stages.commands.release_card import card

    df = rows.read(root / f"data/iter{iteration}/preferences.parquet", "preferences").sort("id")
    splits = split(df, p.release.test_fraction, p.seed)
    extra = {
        kind: {"train": rows.read(path, kind).sort("id")}
        for kind in EXTRA_CONFIGS
        if (path := root / f"data/iter{iteration}/{kind}.parquet").exists()
    }
    # meta_judge@t's judge pairs (trained beside the answer pairs, docs/recipes.md) split by prompt as the answer
    # pairs are; meta_judge@t writes an empty file when the recipe is off, which is no config
    if "meta_judgments" in extra:
        judge = extra.pop("meta_judgments")["train"]
        if not judge.is_empty():
            extra["meta_judgments"] = split(judge, p.release.test_fraction, p.seed, like=df)
    if out.is_dir() and {f.name for f in out.iterdir()} - {"README.md", "data", *EXTRA_CONFIGS}:
        raise ReleaseError(f"release: {out} exists and holds other files; choose an empty or new folder")
    with rows.atomic_dir(out) as tmp:
        for folder, kind, parts in [("data", "preferences", splits)] + [(k, k, f) for k, f in extra.items()]:
            for name, frame in parts.items():
                n = max(1, -(-len(frame) // p.release.shard_rows))
                for i in range(n):
                    shard = frame.slice(i * p.release.shard_rows, p.release.shard_rows)
                    rows.write(shard, tmp / f"{folder}/{name}-{i:05d}-of-{n:05d}.parquet", kind)
        sizes = {k: len(v) for k, v in splits.items()}
        extra_rows = {k: {name: len(f) for name, f in parts.items()} for k, parts in extra.items()}
        card(iteration, repo_id, tag, p, root, sizes, validation, extra_rows, dirty).save(tmp / "README.md")
    return sizes


def transient(e: BaseException) -> bool:
    """A network error (huggingface_hub's httpx TransportError) or a 429/5xx answer: worth retrying."""
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(e, HfHubHTTPError):
        return e.response is not None and (e.response.status_code == 429 or e.response.status_code >= 500)
    return isinstance(e, (ConnectionError, TimeoutError)) or any(
        c.__name__ == "TransportError" for c in type(e).__mro__
    )


def retry(what: str, fn, cfg: P.Release):
    for attempt in range(cfg.retries + 1):
        try:
            return fn()
        except Exception as e:
            if not transient(e) or attempt == cfg.retries:
                raise
            wait = cfg.retry_wait * 2**attempt
            print(
                f"release: {what} failed ({type(e).__name__}); retry {attempt + 1}/{cfg.retries} in {wait:g}s",
                file=sys.stderr,
            )
            time.sleep(wait)


def same_content(info, folder: Path) -> bool:
    """Do the remote files of `info` (a DatasetInfo with blob metadata) equal the folder's files?"""
    from huggingface_hub.utils.sha import git_hash, sha_fileobj

    remote = {s.rfilename: s for s in info.siblings or [] if s.rfilename not in KEEP_REMOTE}
    local = {f.relative_to(folder).as_posix(): f for f in folder.rglob("*") if f.is_file()}
    if remote.keys() != local.keys():
        return False
    for name, f in local.items():
        s = remote[name]
        if s.lfs is not None:
            with f.open("rb") as fh:
                if sha_fileobj(fh).hex() != s.lfs.sha256:
                    return False
        elif git_hash(f.read_bytes()) != s.blob_id:
            return False
    return True


def upload(
    folder: Path, repo_id: str, tag: str, iteration: int, private: bool, cfg: P.Release, endpoint: str | None = None
) -> dict:
    """One commit of `folder` to the dataset repo, then `tag` on it. Returns {commit, new_commit, tagged}."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api, kw = HfApi(endpoint=endpoint), {"repo_type": "dataset"}
    url = retry("create_repo", lambda: api.create_repo(repo_id, private=private, exist_ok=True, **kw), cfg)
    tags = {t.name: t.target_commit for t in retry("list refs", lambda: api.list_repo_refs(repo_id, **kw), cfg).tags}
    if tag in tags:
        info = retry("repo info", lambda: api.dataset_info(repo_id, revision=tags[tag], files_metadata=True), cfg)
        if same_content(info, folder):
            return {"url": str(url), "commit": tags[tag], "new_commit": False, "tagged": False}
        raise ReleaseError(
            f"release: tag {tag} already exists on {repo_id} at {tags[tag][:10]} with different content; "
            "choose another --revision-tag (e.g. iter-T.1) or delete the tag on the Hub"
        )
    head = retry("repo info", lambda: api.dataset_info(repo_id, files_metadata=False), cfg)
    if head.private is not None and head.private != private:
        print(
            f"release: WARNING {repo_id} exists and is {'private' if head.private else 'public'}; "
            "visibility is only set on creation (change it in the repo settings)",
            file=sys.stderr,
        )
    local = sorted(f.relative_to(folder).as_posix() for f in folder.rglob("*") if f.is_file())
    ours = tuple(f"{d}/" for d in ("data", *EXTRA_CONFIGS))
    stale = [s.rfilename for s in head.siblings or [] if s.rfilename.startswith(ours) and s.rfilename not in local]

    def commit():  # fresh operations per attempt; the client drops unchanged files, so a retry cannot duplicate
        ops = [CommitOperationDelete(path) for path in stale] + [
            CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(folder / path)) for path in local
        ]
        return api.create_commit(
            repo_id,
            ops,
            commit_message=f"srlm release: iteration {iteration} ({tag})",
            commit_description=f"Preference pairs of iteration {iteration}; lineage in README.md.",
            **kw,
        )

    info = retry("commit", commit, cfg)
    try:
        retry(
            "create_tag",
            lambda: api.create_tag(
                repo_id, tag=tag, revision=info.oid, exist_ok=False, tag_message=f"srlm iteration {iteration}", **kw
            ),
            cfg,
        )
    except Exception as e:
        raise ReleaseError(
            f"release: commit {info.oid[:10]} is on {repo_id} but tagging it {tag} failed "
            f"({brief(e)}); rerun the same command to tag it (no new commit is made)"
        ) from None
    return {"url": str(url), "commit": info.oid, "new_commit": info.oid != head.sha, "tagged": True}


def scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "<token>") if secret else text


def release(
    iteration: int,
    repo_id: str,
    p: P.Params,
    root: Path = Path("."),
    tag: str | None = None,
    private: bool = True,
    dry_run: Path | None = None,
    endpoint: str | None = None,
    allow_dirty: bool = False,
) -> dict:
    from huggingface_hub import get_token

    check_repo_id(repo_id)
    tag = tag or f"iter-{iteration}"
    validation = gate(iteration, p, root)
    dirty = check_clean(iteration, root, allow_dirty, dry_run is not None)
    token = None if dry_run else get_token()
    if dry_run is None and not token:
        raise ReleaseError(
            "release: no Hugging Face token: set HF_TOKEN or run `hf auth login` (or use --dry-run DIR)"
        )
    work = Path(dry_run) if dry_run else Path(tempfile.mkdtemp(prefix="srlm-release-")) / "dataset"
    try:
        sizes = write_folder(iteration, repo_id, tag, p, root, work, validation, dirty)
        if token and any(token.encode() in f.read_bytes() for f in work.rglob("*") if f.is_file()):
            raise ReleaseError("release: the token appears in the dataset folder; refusing to upload")
        result = {"iteration": iteration, "repo_id": repo_id, "tag": tag, "splits": sizes, "folder": str(work)}
        if dry_run is not None:
            return result
        try:
            result.update(upload(work, repo_id, tag, iteration, private, p.release, endpoint))
        except ReleaseError as e:
            raise ReleaseError(scrub(str(e), token)) from None
        except Exception as e:  # the client's own errors: keep type and text, never the token
            raise ReleaseError(scrub(f"release: upload to {repo_id} failed: {brief(e)}", token)) from None
        return result
    finally:
        if dry_run is None:
            shutil.rmtree(work.parent, ignore_errors=True)


def run(args: argparse.Namespace, p: P.Params) -> None:
    r = release(
        args.iteration,
        args.repo_id,
        p,
        Path("."),
        args.revision_tag,
        args.private,
        args.dry_run,
        None,
        args.allow_dirty,
    )
    sizes = ", ".join(f"{k} {v}" for k, v in r["splits"].items())
    if args.dry_run is not None:
        print(
            f"release: dry run: {sizes} pairs of iteration {r['iteration']} -> {r['folder']} "
            f"(load with datasets.load_dataset({str(r['folder'])!r}))"
        )
    elif not r["new_commit"] and not r["tagged"]:
        print(f"release: {r['repo_id']}@{r['tag']} already holds this content ({r['commit'][:10]}); nothing to do")
    else:
        what = "new commit" if r["new_commit"] else "unchanged content, no new commit"
        print(
            f"release: {sizes} pairs of iteration {r['iteration']} -> {r['url']} ({what} {r['commit'][:10]}, "
            f"tag {r['tag']}{', private' if args.private else ', public'})"
        )


def add_parser(sub) -> None:
    s = sub.add_parser(
        "release",
        help="publish an iteration's preference pairs to the Hugging Face Hub",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--iteration", type=int, required=True)
    s.add_argument("--repo-id", required=True, help="ORG/NAME of the dataset repo (created if absent)")
    vis = s.add_mutually_exclusive_group()
    vis.add_argument(
        "--private", dest="private", action="store_true", default=True, help="new repo is private (default)"
    )
    vis.add_argument("--public", dest="private", action="store_false", help="new repo is public")
    s.add_argument("--revision-tag", help="tag of the release commit (default iter-T)")
    s.add_argument("--dry-run", type=Path, metavar="DIR", help="write the dataset folder to DIR and upload nothing")
    s.add_argument(
        "--allow-dirty",
        action="store_true",
        help="upload although dvc.lock, params.yaml or the iteration's files have uncommitted changes (the card says so)",
    )
