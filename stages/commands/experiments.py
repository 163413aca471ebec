"""srlm exp: DVC experiments side by side, in 120 columns, every accuracy with its 95% interval.

    srlm exp                 the experiments of HEAD (as `dvc exp show` lists them) and HEAD itself
    srlm exp mine gpu        only these (names or experiment shas)
    srlm exp -A              experiments of every commit

A block per revision: a heading line (name, sha, the params it changed against its baseline), then a line
per model (base, M0, M1, ...) read from that revision's own metrics (metrics/<model>/eval.json, pairs.json,
dpo.json, committed with each experiment), so an experiment that stopped before `plots` (e.g. `... -- -n mine
evaluate_m0`) shows its M0 all the same. A model whose files that experiment did not rebuild (they are its
baseline's, made from other params or an older model, by dvc.lock's record) is marked `*`. Reads git refs
(`refs/exps/...`, where DVC keeps experiments) and `git show`; nothing is checked out.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import yaml

from stages.commands import workspace
from stages.commands.tables import fit, terminal_width
from stages.core.errors import SrlmError
from stages.measure.metrics import DpoMetrics, EvalMetrics, PairsMetrics, fmt_acc, parse

# the metrics files a model line reads (metrics/<model>/<name>.json)
FILES = {"eval": EvalMetrics, "pairs": PairsMetrics, "dpo": DpoMetrics}
# (header, short header, right-aligned, drop rank): the model lines of a block
EXP_COLUMNS = (
    ("model", "model", False, None),
    ("pairs", "pairs", True, 0),
    ("judge [95%]", "judge [95%]", False, None),
    ("short-pref [95%]", "short [95%]", False, 4),
    ("long-wins [95%]", "long [95%]", False, 3),
    ("IFEval [95%]", "IFEval [95%]", False, 5),
    ("DPO rew [95%]", "DPO rew [95%]", False, 1),
    ("win/prev [95%]", "win/prev [95%]", False, 2),
)


def git(*args: str, root: Path = Path(".")) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def experiments(root: Path = Path("."), all_commits: bool = False) -> list[tuple[str, str, str]]:
    """(name, sha, baseline sha) of DVC's experiment refs, oldest first; only HEAD's unless all_commits."""
    out = git("for-each-ref", "--sort=creatordate", "--format=%(refname) %(objectname)", "refs/exps", root=root)
    head = (git("rev-parse", "HEAD", root=root) or "").strip()
    found = []
    for line in (out or "").splitlines():
        ref, _, sha = line.partition(" ")
        parts = ref.split("/")  # refs/exps/<baseline[:2]>/<baseline[2:]>/<name> (dvc.repo.experiments.refs)
        if len(parts) != 5 or len(parts[2]) != 2 or not all(c in "0123456789abcdef" for c in parts[2] + parts[3]):
            continue
        baseline = parts[2] + parts[3]
        if all_commits or baseline == head:
            found.append((parts[4], sha, baseline))
    return found


def _flat(d, prefix: str = "") -> dict:
    if not isinstance(d, dict):
        return {prefix[:-1]: d}
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_params(base: dict, exp: dict) -> list[str]:
    """`key=value` for every leaf of exp's params.yaml that differs from the baseline's (a removed key: `key=-`)."""
    a, b = _flat(base), _flat(exp)
    text = lambda v: json.dumps(v) if not isinstance(v, str) else v  # noqa: E731
    return [
        f"{k}={text(b[k]) if k in b else '-'}" for k in sorted(a.keys() | b.keys()) if a.get(k, ...) != b.get(k, ...)
    ]


def _json(rev: str, path: str, root: Path) -> dict:
    text = git("show", f"{rev}:{path}", root=root)
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _rate(block) -> str:
    """This table's way: 'acc [lo-hi]' to 2 places."""
    return fmt_acc(block, 2, sep="-")


def block(rev: str, root: Path) -> tuple[dict, list[list[str]], set[str]]:
    """(params, model lines, models marked stale) of one revision."""
    params = yaml.safe_load(git("show", f"{rev}:params.yaml", root=root) or "") or {}
    lock = workspace.load_lock(root, git("show", f"{rev}:dvc.lock", root=root) or "")
    stale = {workspace.row_of(s) for s in workspace.stale(lock, params)}
    iterations = sorted((params.get("iterations") or {}), key=lambda k: int(k) if str(k).isdigit() else 0)
    models = [("base", "metrics/base"), ("0", "metrics/iter0")] + [(str(t), f"metrics/iter{t}") for t in iterations]
    body, marked = [], set()
    for key, met in models:
        # base and M0 made no pairs and trained no DPO
        made = key not in ("base", "0")
        found = [_json(rev, f"{met}/{name}.json", root) if name == "eval" or made else {} for name in FILES]
        if not any(found):
            continue
        ev, pairs, dpo = (parse(obj, model) for obj, model in zip(found, FILES.values()))
        name = "base" if key == "base" else f"M{key}"
        if key in stale:
            marked.add(name)
        body.append(
            [
                name + ("*" if key in stale else ""),
                "-" if pairs.pairs is None else str(pairs.pairs),
                _rate(ev.human.pairwise if ev.human else None),
                _rate(ev.length_slice("pointwise", "shorter_preferred")),
                _rate(ev.human.longer_wins if ev.human else None),
                _rate(ev.ifeval.prompt_level_strict_acc if ev.ifeval else None),
                # dpo@t records its count; the interval is a measuring reader's (a statistic never retrains)
                _rate(dpo.reward),
                _rate(ev.vs_prev.win_rate if ev.vs_prev else None),
            ]
        )
    return params, body, marked


def show(names: list[str], all_commits: bool = False, root: Path = Path("."), width: int | None = None) -> None:
    width = min(width or terminal_width(), 120)
    found = experiments(root, all_commits)
    if names:
        found = [e for e in found if e[0] in names or any(e[1].startswith(n) for n in names)]
        unknown = [n for n in names if not any(e[0] == n or e[1].startswith(n) for e in found)]
        if unknown:
            raise SrlmError(f"error: no DVC experiment named {', '.join(unknown)} (`dvc exp list` lists them)")
    head = (git("rev-parse", "HEAD", root=root) or "").strip()
    if not head:
        raise SrlmError("error: not a git repository with a commit (srlm exp reads DVC's experiment refs)")
    revs = ([] if names or all_commits else [("HEAD", head, head)]) + found
    baselines: dict[str, dict] = {}
    notes = False
    for name, sha, baseline in revs:
        if baseline not in baselines:
            baselines[baseline] = yaml.safe_load(git("show", f"{baseline}:params.yaml", root=root) or "") or {}
        params, body, marked = block(sha, root)
        changes = changed_params(baselines[baseline], params) if sha != baseline else []
        heading = f"{name}  {sha[:7]}" + (f" (of {baseline[:7]})" if all_commits else "") + "  "
        heading += ", ".join(changes) if changes else "(baseline)" if sha == baseline else "(no params changed)"
        print(textwrap.fill(heading, width, subsequent_indent="    ", break_on_hyphens=False))
        if body:
            print("\n".join(fit(EXP_COLUMNS, body, width)[0]))
        else:
            print("  (no model metrics in this revision)")
        notes |= bool(marked)
    tail = []
    if notes:
        tail.append(
            "* not rebuilt by that revision's run: its files are from other params or an older model (dvc.lock); "
            "rerun the experiment without a target to measure it"
        )
    if not found:
        tail.append(
            "(no DVC experiments" + ("" if all_commits else " of HEAD") + ": python -m stages.commands.profile "
            "exp-run PROFILE.yaml -- -n NAME, or dvc exp run -n NAME -S key=value)"
        )
    for line in tail:
        print(textwrap.fill(line, width, break_on_hyphens=False))


def add_parser(sub) -> None:
    import argparse

    e = sub.add_parser(
        "exp",
        help="DVC experiments side by side: changed params, each model's accuracies with 95% intervals",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("names", nargs="*", help="experiment names or shas (default: all of HEAD, and HEAD)")
    e.add_argument("-A", "--all-commits", action="store_true", help="experiments of every commit")


def run(args) -> None:
    show(args.names, args.all_commits)
