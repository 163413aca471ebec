"""The code deps in dvc.yaml are exactly each stage's import closure over stages/, the modules import no
circle, and no stage module imports another stage module. Computed from the source with `ast`, so the deps
cannot drift from the code again: a failure lists what to add to or remove from dvc.yaml.

Closure rules: every `import` counts, also one inside a function (it runs when that function does), except
under `if TYPE_CHECKING:` (never at run time); importing `stages.a.b` also runs `stages/a/__init__.py`;
a module that reads files at import time brings them along (DATA_FILES).
"""

from __future__ import annotations

import yaml

from stages.commands.dag import ROOT, closure, differences, dvc_stages, imports, module_name, reruns

PKG = ROOT / "stages"
# stages that make datasets or models; every other stage measures (validate, evaluate, plots)
DATA_STAGES = {"base", "seed", "sft", "prompts", "responses", "judge", "pairs", "meta_judge", "dpo"}


def stage_modules() -> set[str]:
    return {st["module"] for st in dvc_stages().values()}


def test_dvc_yaml_is_what_the_dag_command_writes():
    """Code deps = each stage's import closure; params lists = each stage module's PARAMS."""
    wrong = differences()
    assert not wrong, "run python -m stages.commands.dag write:\n" + "\n".join(wrong)


def test_closure_follows_lazy_imports_and_packages():
    files = closure("stages.responses")
    # make_backend imports the engines inside a function; importing stages.engine.backend.x runs the package __init__
    assert {
        "stages/engine/backend/__init__.py",
        "stages/engine/backend/hf.py",
        "stages/engine/backend/vllm.py",
        "stages/core/rows.py",
    } <= files
    assert "stages/judging/templates" not in files  # responses never renders a template
    assert "stages/engine/backend/hf.py" not in closure(
        "stages.pairs"
    )  # scoring's Backend import is TYPE_CHECKING only


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


def test_no_data_stage_reaches_measure_or_commands():
    """A change to the statistics or to a command never regenerates data or retrains a model."""
    stages = dvc_stages()
    assert DATA_STAGES <= set(stages)
    bad = {
        name: sorted(
            f for f in closure(stages[name]["module"]) if f.startswith(("stages/measure/", "stages/commands/"))
        )
        for name in DATA_STAGES
    }
    assert not any(bad.values()), {k: v for k, v in bad.items() if v}


def test_core_imports_only_core():
    """core/ is every stage's dep: if it imported a library, an edit there would rerun every stage."""
    graph = _graph()
    bad = {
        m: sorted(d for d in deps if not d.startswith("stages.core"))
        for m, deps in graph.items()
        if m.startswith("stages.core")
    }
    assert not any(bad.values()), {k: v for k, v in bad.items() if v}


def test_stage_modules_are_the_top_level_of_stages():
    """stages/ holds only the DVC entry modules; every library module lives in a subpackage."""
    top = {module_name(f) for f in PKG.glob("*.py") if f.name != "__init__.py"}
    assert top == stage_modules()


def _rerun(file: str) -> set[str]:
    return {i.split("@")[0] for i in reruns([file])[0]["instances"]}


def test_rerun_scopes():
    """The issue's rerun table: scoring reruns no SFT; the statistics no judge, pairs or DPO; the templates no
    responses; a command nothing; the engine no pairs and no validate."""
    assert "sft" not in _rerun("stages/judging/scoring.py")
    assert _rerun("stages/measure/stats.py").isdisjoint({"judge", "pairs", "dpo", "sft", "responses"})
    assert "responses" not in _rerun("stages/judging/templates/judge.txt")
    assert _rerun("stages/commands/cli.py") == set()
    assert "pairs" not in _rerun("stages/engine/shards.py")
    assert "validate" not in _rerun("stages/engine/task.py")  # validate reads the judge modes, never runs one
    assert _rerun("stages/core/rows.py") == set(dvc_stages())  # core is every stage's: keep it small


def test_params_yaml_comments_rerun_nothing(tmp_path):
    """DVC compares param values: a comment edit in params.yaml leaves every stage's params unchanged."""
    import yaml

    text = (ROOT / "params.yaml").read_text()
    edited = "\n".join(line.replace("#", "# edited:", 1) if "#" in line else line for line in text.split("\n"))
    assert edited != text and yaml.safe_load(edited) == yaml.safe_load(text)


def test_params_declarations_unpack_the_backend_knobs_once():
    """The backend knobs are declared once (stages/engine/backend PARAMS) and unpacked into each model stage's
    PARAMS; the dag reads them without importing anything."""
    from stages.commands.dag import declared_params
    from stages.engine.backend import PARAMS as BACKEND

    for module, stage in [
        ("stages.judge", "judge"),
        ("stages.prompts", "prompts"),
        ("stages.evaluate", "evaluate_base"),
    ]:
        got = declared_params(module, stage)
        at = got.index(BACKEND[0])  # after seed (and replicate, in the stages that sample within the loop)
        assert got[0] == "seed" and got[at : at + len(BACKEND)] == list(BACKEND) and got.count(BACKEND[0]) == 1
    assert declared_params("stages.pairs", "pairs") == ["pairs"]
