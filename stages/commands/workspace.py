"""What the workspace holds against what dvc.lock and params.yaml say, for the user's commands (no DVC repo is
opened on the common path, so `srlm status` stays fast):

- `stale(lock, params)`: the stages whose outputs were built from other params than `params` or from an input
  that another stage has rebuilt since (an experiment that reran only `evaluate_m0` leaves iteration 1 made by
  the old M0); `row_of` maps a stage to `srlm status`'s line.
- `missing(lock, root)`: DVC outputs that dvc.lock names but the workspace lacks (a fresh clone before
  `dvc pull`), and `pull_hint`: the one line that says which remote `dvc pull` reads and how to add one.
- `need(path, kind)`: a dataset a command reads, or that one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from stages.core.errors import SrlmError

_UNSET = object()


def load_lock(root: Path = Path("."), text: str | None = None) -> dict:
    """dvc.lock's `stages` ({} when there is none): from the workspace, or from `text` (another revision)."""
    if text is None:
        path = root / "dvc.lock"
        if not path.exists():
            return {}
        text = path.read_text(encoding="utf-8")
    return (yaml.safe_load(text) or {}).get("stages", {}) or {}


def _lookup(params: dict, dotted: str):
    value = params
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _UNSET
        value = value[part]
    return value


def same_value(locked, current) -> bool:
    """A param as dvc.lock records it against params.yaml's: DVC writes some floats as strings (5.0e-5 is locked
    as '5e-05'), so a number and a string that reads as the same number are the same value."""
    if locked == current:
        return True
    if (
        isinstance(locked, str) != isinstance(current, str)
        and not isinstance(locked, bool | None)
        and not isinstance(current, bool | None)
    ):
        try:
            return float(locked) == float(current)
        except (TypeError, ValueError):
            return False
    if isinstance(locked, dict) and isinstance(current, dict):
        return locked.keys() == current.keys() and all(same_value(locked[k], current[k]) for k in locked)
    if isinstance(locked, list) and isinstance(current, list):
        return len(locked) == len(current) and all(map(same_value, locked, current))
    return False


def _md5(entry: dict) -> str | None:
    return entry.get("md5") or entry.get("etag") or entry.get("checksum")


def row_of(stage: str) -> str:
    """`srlm status`'s line of a stage: base (base, evaluate_base), 0 (seed, sft, evaluate_m0), or t (name@t)."""
    if stage in ("base", "evaluate_base"):
        return "base"
    if stage in ("seed", "sft", "evaluate_m0"):
        return "0"
    return stage.rpartition("@")[2] if "@" in stage else stage


def stale(lock: dict, params: dict) -> dict[str, str]:
    """{stage: why} for every stage of dvc.lock whose outputs are not what `params` and the other stages'
    locked outputs make: a param it read differs from `params` (params.yaml), or a dep that another stage
    writes has a different md5 than that stage's locked output, or a stage upstream is stale. Code deps are
    `dvc status`'s business (it hashes files); this reads two YAML files only."""
    producer = {o["path"]: (name, _md5(o)) for name, e in lock.items() for o in e.get("outs") or []}
    why: dict[str, str] = {}
    for name, entry in lock.items():
        for file, values in (entry.get("params") or {}).items():
            if file != "params.yaml":
                continue
            changed = [k for k, v in values.items() if not same_value(v, _lookup(params, k))]
            if changed:
                why[name] = "params " + ", ".join(sorted(changed)) + " differ from params.yaml"
                break
        if name in why:
            continue
        for dep in entry.get("deps") or []:
            made = producer.get(dep["path"])
            if made and made[1] != _md5(dep):
                why[name] = f"{dep['path']} was rebuilt by {made[0]} since"
                break
    changed = True
    while changed:  # downstream of a stale stage is stale too
        changed = False
        for name, entry in lock.items():
            if name in why:
                continue
            for dep in entry.get("deps") or []:
                made = producer.get(dep["path"])
                if made and made[0] in why:
                    why[name] = f"{dep['path']} comes from {made[0]}, which is stale"
                    changed = True
                    break
    return why


def stale_note(why: dict[str, str], rows: list[str]) -> str | None:
    """One line naming the status lines built from other params or inputs, with the first reason of each."""
    if not why:
        return None
    first: dict[str, str] = {}
    for stage, reason in why.items():
        first.setdefault(row_of(stage), f"{stage}: {reason}")
    marked = [r for r in rows if r in first]
    if not marked:
        return None
    shown = "; ".join(first[r] for r in marked[:2]) + ("; ..." if len(marked) > 2 else "")
    return (
        f"* lines {', '.join(marked)}: not what params.yaml builds ({shown}); `dvc status` lists every change, "
        "`dvc repro` rebuilds them"
    )


def missing(lock: dict, root: Path = Path("."), prefixes: tuple[str, ...] = ("data/", "models/")) -> list[str]:
    """Paths under `prefixes` that dvc.lock lists as a stage's output but the workspace does not have."""
    return [p for p in sorted(outputs(lock)) if p.startswith(prefixes) and not (root / p).exists()]


def default_remote(root: Path = Path(".")) -> tuple[str, str] | None:
    """(name, url) of the default DVC remote (config.local over config; the user's and the system's DVC config
    are not read, as `dvc remote default` would), or None."""
    from configobj import ConfigObj

    name, remotes = None, {}
    for file in (root / ".dvc/config", root / ".dvc/config.local"):
        if not file.exists():
            continue
        try:
            conf = ConfigObj(str(file))
        except Exception:  # a malformed config: DVC itself will say what is wrong with it
            continue
        name = (conf.get("core") or {}).get("remote", name)
        for section, values in conf.items():
            if section.startswith("remote "):
                remotes[section.split('"')[1]] = dict(values)
    if not name:
        return None
    return name, (remotes.get(name) or {}).get("url", "?")


def pull_hint(paths: list[str] | None = None, root: Path = Path("."), command: str | None = None) -> str:
    """The command that brings DVC outputs into the workspace (or `command`), and the remote it reads, in one
    line; whether that remote exists is checked for a local folder (a cloud url is taken as it is)."""
    command = command or "dvc pull" + (" " + paths[0] if paths and len(paths) == 1 else "")
    remote = default_remote(root)
    how = "add one: `dvc remote add -d store /path` or `s3://bucket/path` (README, Remote)"
    if remote is None:
        return f"run `{command}` once a DVC remote holds them (no default remote is set; {how})"
    name, url = remote
    folder = Path(os.path.expanduser(url))
    if "://" not in url and not folder.is_absolute():
        folder = root / ".dvc" / folder  # DVC resolves a relative remote url against .dvc/
    if "://" not in url and not folder.exists():
        return (
            f"run `{command}` from a remote that holds them: the default remote {name!r} is {url}, which does not "
            f"exist on this machine; {how}"
        )
    return f"run `{command}` (default remote {name!r}: {url})"


def need(path: str | Path, what: str, root: Path = Path(".")) -> None:
    """Refuse in one line when a dataset a command reads is absent: a DVC output not pulled yet (dvc.lock lists
    it) names the remote to pull from; one never built names the stage to run."""
    path = Path(path)
    if (root / path).exists():
        return
    rel = path.as_posix()
    if rel in outputs(load_lock(root)) or (root / f"{rel}.dvc").is_file():
        raise SrlmError(f"error: {rel} is in dvc.lock but not in the workspace ({what}): {pull_hint([rel], root)}")
    raise SrlmError(f"error: {rel} does not exist ({what}): no stage has made it yet (`dvc repro`; `srlm status`)")


def outputs(lock: dict) -> set[str]:
    return {o["path"] for e in lock.values() for o in e.get("outs") or []}


def git_show(rev: str, path: str, root: Path = Path(".")) -> str | None:
    """A file's text at a git revision, or None (no such revision or file, no git)."""
    import subprocess

    try:
        r = subprocess.run(
            ["git", "-C", str(root), "show", f"{rev}:{path}"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def lock_at(rev: str, root: Path = Path(".")) -> dict:
    """dvc.lock's stages at a git revision ({} when the revision or its dvc.lock does not exist)."""
    text = git_show(rev, "dvc.lock", root)
    return load_lock(root, text) if text is not None else {}


def missing_at(rev: str, path: str, root: Path = Path(".")) -> str | None:
    """After DVC failed to read `path` at `rev`: the one-line reason when the revision's dvc.lock lists it as an
    output (so its bytes are missing from the local cache and the remote, not from the revision), else None."""
    if path not in outputs(lock_at(rev, root)) and git_show(rev, f"{path}.dvc", root) is None:
        return None
    return f"{path} is an output in {rev}'s dvc.lock but its bytes are not in the local DVC cache: " + pull_hint(
        root=root, command="dvc fetch --all-commits"
    )
