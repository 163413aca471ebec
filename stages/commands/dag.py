"""dvc.yaml's generated parts, and what an edit to a file reruns.

    python -m stages.commands.dag write     # rewrite each stage's code deps and params list in dvc.yaml
    python -m stages.commands.dag check     # exit 1 naming what `write` would change (a test runs this)
    python -m stages.commands.dag reruns [--timings .srlm/timings] [--files stages/judging/scoring.py ...]

Code deps: a stage's deps under stages/ are exactly its import closure (every `import`, also inside a function,
except under `if TYPE_CHECKING:`; importing stages.a.b runs stages/a/__init__.py; a module that reads files at
import time brings them, DATA_FILES). Params: each stage module declares the params it reads once, as `PARAMS`
(a tuple of dotted names, or {stage name: tuple} where one module runs as several stages); dvc.yaml's params
lists and the lineage record (stages/core/lineage.py) both come from it. The plots stage's data deps are the
metrics files of params.yaml's iterations (stages/plots.py: inputs).

`reruns` prints, for each file under stages/ (or the --files given), the stage instances an edit to it reruns
directly (params.yaml's iterations unrolled) and, with timings (.srlm/timings of a finished run), their seconds.
A comment in params.yaml reruns nothing: DVC compares param values, not text.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "stages"
DATA_FILES = {"stages/judging/prompting.py": ["stages/judging/templates"]}  # the rubric and prompt templates
CMD = re.compile(r"python -m (stages\.\w+)")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """stages.a.b -> stages/a/b.py or stages/a/b/__init__.py (None outside the package)."""
    parts = name.split(".")
    if parts[0] != "stages":
        return None
    base = root.joinpath(*parts)
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test)


def imports(path: Path, root: Path = ROOT) -> set[str]:
    """Modules of the stages package that `path` imports (explicit edges only)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # `from stages.core import rows` names a module
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if module_file(m, root) is not None}


def closure(module: str, root: Path = ROOT) -> set[str]:
    """Files (repo-relative) that running `python -m module` can execute or read, within stages/."""
    todo, seen = [module], set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        parts = mod.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages' __init__ run first
        todo += sorted(imports(module_file(mod, root), root))
    files = {module_file(m, root).relative_to(root).as_posix() for m in seen}
    return files | {d for f in files for d in DATA_FILES.get(f, [])}


def _constant(module: str, name: str, root: Path):
    """A module-level constant of tuples, dicts and strings, read with ast (no import). `*NAME` inside it is
    unpacked from NAME, a constant of the same module or one it imports with `from stages.x import NAME [as N]`."""
    tree = ast.parse(module_file(module, root).read_text(encoding="utf-8"))
    imported = {
        (a.asname or a.name): (node.module, a.name)
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stages")
        for a in node.names
    }

    def value(node):
        if isinstance(node, ast.Tuple | ast.List):
            out = []
            for e in node.elts:
                out += value(e.value) if isinstance(e, ast.Starred) else [value(e)]
            return tuple(out)
        if isinstance(node, ast.Dict):
            return {value(k): value(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Name):
            return _constant(*imported[node.id], root) if node.id in imported else _constant(module, node.id, root)
        return ast.literal_eval(node)

    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return value(node.value)
    raise KeyError(f"{module} defines no {name}")


def declared_params(module: str, stage: str, root: Path = ROOT) -> list[str] | None:
    """The module's PARAMS for `stage` (read with ast: no import), None if it declares none."""
    try:
        value = _constant(module, "PARAMS", root)
    except KeyError:
        return None
    return list(value[stage] if isinstance(value, dict) else value)


def dvc_stages(root: Path = ROOT) -> dict[str, dict]:
    """{stage name: {module, deps (under stages/), params}}; a foreach stage once (all its keys share them)."""
    out = {}
    for name, st in yaml.safe_load((root / "dvc.yaml").read_text())["stages"].items():
        body = st.get("do", st)
        out[name] = {
            "module": CMD.search(body["cmd"]).group(1),
            "deps": [d for d in body.get("deps", []) if str(d).startswith("stages/")],
            "params": body.get("params", []),
            "foreach": "foreach" in st,
        }
    return out


def wanted(root: Path = ROOT) -> dict[str, dict]:
    """What `write` puts in dvc.yaml per stage: sorted code deps, the declared params list."""
    out = {}
    for name, st in dvc_stages(root).items():
        params = declared_params(st["module"], name, root)
        out[name] = {"deps": sorted(closure(st["module"], root)), "params": params if params is not None else None}
    return out


def differences(root: Path = ROOT) -> list[str]:
    have, want = dvc_stages(root), wanted(root)
    wrong = []
    for name, w in want.items():
        deps = set(have[name]["deps"])
        if deps != set(w["deps"]):
            wrong.append(
                f"{name}: code deps: add {sorted(set(w['deps']) - deps)}, remove {sorted(deps - set(w['deps']))}"
            )
        if w["params"] is None:
            wrong.append(f"{name}: {have[name]['module']} declares no PARAMS")
        elif have[name]["params"] != w["params"]:
            wrong.append(f"{name}: params {have[name]['params']} -> {w['params']}")
    return wrong


def write(root: Path = ROOT) -> None:
    """Rewrite dvc.yaml's code deps, params lists and the plots stage's metrics deps, keeping every other line."""
    from stages.plots import inputs

    iterations = sorted(int(t) for t in yaml.safe_load((root / "params.yaml").read_text())["iterations"])
    want, out, current, in_params = wanted(root), [], None, False
    lines = (root / "dvc.yaml").read_text().split("\n")
    for line in lines:
        if (m := re.match(r"^  (\w+):\s*$", line)) and m.group(1) in want:
            current, deps_written, in_params = m.group(1), False, False
        if current and (p := re.match(r"^(\s+)params:\s*$", line)):
            out.append(line)
            out += [f"{p.group(1)}  - {name}" for name in want[current]["params"] or []]
            in_params = True
            continue
        if in_params:
            if re.match(r"^\s+- ", line):
                continue
            in_params = False
        if (d := re.match(r"^(\s+)- stages/\S+\s*$", line)) and current:
            if not deps_written:
                out += [f"{d.group(1)}- {f}" for f in want[current]["deps"]]
                if current == "plots":
                    out += [f"{d.group(1)}- {f}" for f in inputs(iterations)]
                deps_written = True
            continue
        if current == "plots" and re.match(r"^\s+- metrics/\S+\.json\s*$", line):
            continue
        out.append(line)
    (root / "dvc.yaml").write_text("\n".join(out))


def instances(root: Path = ROOT) -> dict[str, list[str]]:
    """{stage name: its instances} with params.yaml's iterations unrolled (judge -> judge@1, judge@2)."""
    keys = [str(k) for k in yaml.safe_load((root / "params.yaml").read_text())["iterations"]]
    return {n: [f"{n}@{k}" for k in keys] if st["foreach"] else [n] for n, st in dvc_stages(root).items()}


def reruns(files: list[str], root: Path = ROOT, seconds: dict[str, float] | None = None) -> list[dict]:
    """For each file: the stage instances whose code deps hold it (or a folder holding it), and their seconds."""
    stages, inst = dvc_stages(root), instances(root)
    rows = []
    for f in files:
        hit = [
            i for n, st in stages.items() for i in inst[n] if any(f == d or f.startswith(d + "/") for d in st["deps"])
        ]
        secs = round(sum(seconds.get(i, 0.0) for i in hit), 1) if seconds else None
        rows.append(
            {"file": f, "instances": hit, "count": len(hit), "of": sum(map(len, inst.values())), "seconds": secs}
        )
    return rows


def stage_seconds(folder: Path) -> dict[str, float]:
    """{stage instance: wall seconds} from the timing records stages/core/timing.py writes."""
    out = {}
    for p in sorted(folder.glob("*.json")):
        rec = json.loads(p.read_text())
        out[rec["stage"]] = rec.get("wall_s", 0.0)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("write", help="rewrite dvc.yaml's code deps and params lists")
    sub.add_parser("check", help="exit 1 if dvc.yaml's code deps or params lists are not what `write` makes")
    r = sub.add_parser("reruns", help="which stage instances an edit to each file reruns")
    r.add_argument("--files", nargs="*", help="repo-relative files (default: every file under stages/)")
    r.add_argument("--timings", type=Path, help="a run's .srlm/timings folder, for seconds per file")
    args = ap.parse_args(argv)
    if args.cmd == "write":
        write()
        print("dvc.yaml: code deps = each stage's import closure, params = each stage module's PARAMS")
    elif args.cmd == "check":
        wrong = differences()
        if wrong:
            sys.exit("dvc.yaml is not what `python -m stages.commands.dag write` makes:\n" + "\n".join(wrong))
        print("dvc.yaml: code deps and params lists up to date")
    else:
        files = args.files or sorted(
            p.relative_to(ROOT).as_posix() for p in PKG.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
        secs = stage_seconds(args.timings) if args.timings else None
        print(
            "| file | stage instances rerun | "
            + ("seconds |" if secs else "")
            + "\n|---|---|"
            + ("---|" if secs else "")
        )
        for row in reruns(files, seconds=secs):
            extra = f" {row['seconds']} |" if secs else ""
            print(f"| {row['file']} | {row['count']} of {row['of']} |{extra}")


if __name__ == "__main__":
    main()
