"""The code deps in dvc.yaml are exactly each stage's import closure over stages/, the modules import no
circle, and no stage module imports another stage module. Computed from the source with `ast`, so the deps
cannot drift from the code again: a failure lists what to add to or remove from dvc.yaml.

Closure rules: every `import` counts, also one inside a function (it runs when that function does), except
under `if TYPE_CHECKING:` (never at run time); importing `stages.a.b` also runs `stages/a/__init__.py`;
a module that reads files at import time brings them along (DATA_FILES).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "stages"
DATA_FILES = {"stages/prompting.py": ["stages/templates"]}  # the rubric, self-instruct and compare templates


def module_file(name: str) -> Path | None:
    """stages.a.b -> stages/a/b.py or stages/a/b/__init__.py (None outside the package)."""
    parts = name.split(".")
    if parts[0] != "stages":
        return None
    base = ROOT.joinpath(*parts)
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test)


def imports(path: Path) -> set[str]:
    """Modules of the stages package that `path` imports (explicit edges only)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
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
            found.update(f"{mod}.{a.name}" for a in node.names)  # `from . import rows` names a module
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if module_file(m) is not None}


def closure(module: str) -> set[str]:
    """Files (repo-relative) that running `python -m module` can execute or read, within stages/."""
    todo, seen = [module], set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        parts = mod.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages' __init__ run first
        todo += sorted(imports(module_file(mod)))
    files = {module_file(m).relative_to(ROOT).as_posix() for m in seen}
    return files | {d for f in files for d in DATA_FILES.get(f, [])}


def dvc_stages() -> dict[str, tuple[str, set[str]]]:
    """{stage name: (module its cmd runs, its deps under stages/)}; foreach stages once (all keys share them)."""
    out = {}
    for name, st in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        body = st.get("do", st)
        module = re.search(r"python -m (stages\.\w+)", body["cmd"]).group(1)
        out[name] = (module, {d for d in body.get("deps", []) if str(d).startswith("stages/")})
    return out


def stage_modules() -> set[str]:
    return {m for m, _ in dvc_stages().values()}


def test_dvc_code_deps_are_each_stages_import_closure():
    wrong = []
    for name, (module, deps) in dvc_stages().items():
        want = closure(module)
        if deps != want:
            wrong.append(f"{name}: add {sorted(want - deps)}, remove {sorted(deps - want)}")
    assert not wrong, "dvc.yaml code deps differ from the import closure:\n" + "\n".join(wrong)


def test_closure_follows_lazy_imports_and_packages():
    files = closure("stages.responses")
    # make_backend imports the engines inside a function; importing stages.backend.x runs the package __init__
    assert {"stages/backend/__init__.py", "stages/backend/hf.py", "stages/backend/vllm.py", "stages/rows.py"} <= files
    assert "stages/templates" not in files  # responses never renders a template
    assert "stages/backend/hf.py" not in closure("stages.pairs")  # scoring's Backend import is TYPE_CHECKING only


def plots_inputs() -> list[str]:
    """The metrics files the plots stage reads for params.yaml's iterations (stages/plots.py: inputs)."""
    from stages.plots import inputs

    iterations = yaml.safe_load((ROOT / "params.yaml").read_text())["iterations"]
    return inputs(sorted(int(t) for t in iterations))


def test_plots_deps_are_the_files_it_reads():
    """Each iteration's metrics files, not the metrics/ folder (which makes every stage a parent of plots)."""
    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["plots"]["deps"]
    data = [d for d in deps if not d.startswith("stages/")]
    assert data == plots_inputs(), f"run python tests/test_architecture.py: plots deps {data} != {plots_inputs()}"


def _graph() -> dict[str, set[str]]:
    return {module_name(f): imports(f) for f in PKG.rglob("*.py")}


def test_no_import_cycles():
    graph, state, cycles = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_stage_imports_another_stage():
    stages, graph = stage_modules(), _graph()
    edges = [f"{a} -> {b}" for a in sorted(stages) for b in sorted(graph[a] & stages) if a != b]
    assert not edges, (
        "a stage module imports another stage module (move the shared code to a library module):\n" + "\n".join(edges)
    )


if __name__ == "__main__":  # `python tests/test_architecture.py`: rewrite dvc.yaml's code deps to the closures
    # and the plots stage's data deps to the metrics files of params.yaml's iterations
    import sys

    sys.path.insert(0, str(ROOT))  # this checkout's stages package, not whichever one the venv installed
    stages, out, current = dvc_stages(), [], None
    for line in (ROOT / "dvc.yaml").read_text().split("\n"):
        if (m := re.match(r"^  (\w+):\s*$", line)) and m.group(1) in stages:
            current, written = m.group(1), False
        if (d := re.match(r"^(\s+)- stages/\S+\s*$", line)) and current:
            if not written:
                out += [f"{d.group(1)}- {f}" for f in sorted(closure(stages[current][0]))]
                if current == "plots":
                    out += [f"{d.group(1)}- {f}" for f in plots_inputs()]
                written = True
            continue
        if current == "plots" and re.match(r"^\s+- metrics/\S+\.json\s*$", line):
            continue
        out.append(line)
    (ROOT / "dvc.yaml").write_text("\n".join(out))
    print("dvc.yaml: code deps rewritten to each stage's import closure, plots deps to the iterations' metrics")
