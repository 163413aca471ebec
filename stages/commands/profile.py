"""Profiles: a YAML file of only the params that differ from params.yaml (e.g. profiles/gpu.yaml), applied
one way everywhere.

    python -m stages.commands.profile apply profiles/gpu.yaml [more.yaml ...] [--params params.yaml]
    python -m stages.commands.profile flags profiles/gpu.yaml            # the same change as `dvc exp run -S` flags
    python -m stages.commands.profile exp-run profiles/gpu.yaml -- -n gpu   # `dvc exp run` with those flags (make run-gpu)

`merge` is the one rule: mappings merge key by key (a profile names only what it changes, and may add keys
such as a new iteration), anything else (scalars, lists) replaces. `apply` writes the merged params.yaml
(a scratch copy without git: benchmarks/device.py); `flags` spells the same change as Hydra overrides for
`dvc exp run -S`, which records an experiment; `exp-run` puts params.yaml back as it was afterwards (DVC leaves
a workspace experiment's values in it). Either way the result is validated by stages/core/params.py, so a
mistyped key in a profile is an error naming it.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from stages.core import params as P
from stages.core.errors import SrlmError, entry


def merge(base, over):
    """`base` with `over` merged in: mappings key by key (recursively), anything else replaced by `over`."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return over


def read(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SrlmError(f"error: profile {path} not found") from None
    except yaml.YAMLError as e:
        raise SrlmError(f"error: profile {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise SrlmError(f"error: profile {path} must be a mapping of params keys")
    return data


def combined(profiles: list[str | Path]) -> dict:
    """Several profiles as one (later ones win), e.g. profiles/gpu.yaml then profiles/gpu-hub.yaml."""
    out: dict = {}
    for path in profiles:
        out = merge(out, read(path))
    return out


def apply(params_path: str | Path, profiles: list[str | Path]) -> P.Params:
    """Rewrite `params_path` as itself merged with `profiles`; validated before anything is written."""
    params_path = Path(params_path)
    base = yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}
    text = yaml.safe_dump(merge(base, combined(profiles)), sort_keys=False, allow_unicode=True)
    tmp = params_path.with_name(params_path.name + ".profile-tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        checked = P.load(tmp)  # names the key of a mistyped profile entry
        tmp.replace(params_path)
    finally:
        tmp.unlink(missing_ok=True)
    return checked


_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _value(v) -> str:
    """A value in Hydra's override grammar (https://hydra.cc/docs/advanced/override_grammar/basic/)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):  # Hydra reads an exponent without a point (5e-06) as a string
        mantissa, e, exponent = repr(v).partition("e")
        return mantissa + (".0" if e and "." not in mantissa else "") + e + exponent
    if isinstance(v, str):
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(v, list):
        return "[" + ",".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{_key(k)}:{_value(x)}" for k, x in v.items()) + "}"
    raise SrlmError(f"error: a profile value must be YAML data, got {type(v).__name__}: {v!r}")


def _key(k) -> str:
    k = str(k)
    if not _BARE.fullmatch(k):  # Hydra keys are identifiers; quoted names are not part of its grammar
        raise SrlmError(f"error: profile key {k!r} cannot be passed as a `dvc exp run -S` flag")
    return k


def flags(profile: dict, prefix: str = "") -> list[str]:
    """`dvc exp run -S` values with the effect of `merge(params, profile)`: one `++key=value` per leaf
    (`++` adds a key params.yaml lacks, e.g. a third iteration); lists go whole, as merge replaces them."""
    out = []
    for key, value in profile.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += flags(value, f"{name}.")
        else:
            # iteration keys are digits: Hydra reads `iterations.3` as a key path, so they need no quoting
            path = ".".join(_key(p) if not p.isdigit() else p for p in name.split("."))
            out.append(f"++{path}={_value(value)}")
    return out


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.commands.profile", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("apply", help="merge profiles into a params file (in place), validated")
    a.add_argument("profiles", nargs="+")
    a.add_argument("--params", default="params.yaml")
    f = sub.add_parser("flags", help="print the profiles as `dvc exp run -S` flags, one per line")
    f.add_argument("profiles", nargs="+")
    f.add_argument("--json", action="store_true", help="a JSON list instead")
    e = sub.add_parser("exp-run", help="dvc exp run -S ... for the profiles; arguments after -- go to dvc")
    e.add_argument("profiles", nargs="+")
    argv = sys.argv[1:] if argv is None else list(argv)
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []  # for dvc, not for us
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if rest and args.cmd != "exp-run":
        ap.error(f"unrecognised arguments: {' '.join(rest)}")
    if args.cmd == "apply":
        p = apply(args.params, args.profiles)
        print(
            f"profile: {' + '.join(args.profiles)} -> {args.params} (backend {p.backend.name}, {len(p.iterations)} iterations)"
        )
        return
    sets = flags(combined(args.profiles))
    if args.cmd == "flags":
        print(json.dumps(sets) if args.json else "\n".join(sets))
        return
    cmd = [sys.executable, "-m", "dvc", "exp", "run", *[x for s in sets for x in ("-S", s)], *rest]
    print("running: dvc exp run with", len(sets), "params from", " + ".join(args.profiles), flush=True)
    raise SystemExit(exp_run(cmd))


def exp_run(cmd: list[str], params_path: Path = Path("params.yaml")) -> int:
    """Run `dvc exp run` and leave params.yaml byte for byte as it was: DVC writes an experiment's -S values into
    the workspace's params.yaml and keeps them there after a workspace run, so a later `dvc repro` would quietly
    build the experiment again (its params live on in the experiment's commit: `srlm exp`, `dvc exp show`,
    `dvc exp apply NAME`). Restored however the run ends; --temp and --queue runs never touch it."""
    before = params_path.read_bytes() if params_path.is_file() else None
    try:
        return _dvc(cmd)
    finally:
        if before is not None and (not params_path.is_file() or params_path.read_bytes() != before):
            tmp = params_path.with_name(params_path.name + ".exp-tmp")
            tmp.write_bytes(before)
            tmp.replace(params_path)
            print(
                f"{params_path} restored as it was before the experiment (its params are in the experiment: srlm exp; "
                "the workspace keeps the experiment's outputs until `dvc repro`)",
                flush=True,
            )


def _dvc(cmd: list[str]) -> int:
    """The child's exit status; Ctrl-C reaches DVC too (same process group), so wait for it to stop cleanly."""
    proc = subprocess.Popen(cmd)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


if __name__ == "__main__":
    main()
