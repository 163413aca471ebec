"""The recipes of docs/recipes.md compared on the GPU profile: one `dvc exp run` each, then a recipe x iteration table.

    python -m benchmarks.recipes list                       # the recipes and the -S flags of each
    python -m benchmarks.recipes run [NAME ...]             # dvc exp run -n NAME -S ... per recipe, M0 -> M3
    python -m benchmarks.recipes table [NAME ...] [--results NAME=DIR ...] [--baseline NAME] [-o FILE]

A recipe is `baseline` (profiles/gpu.yaml: the paper's loop) or profiles/gpu.yaml plus one overlay
profiles/recipe-NAME.yaml (one switch each). `run` starts every experiment from the committed params.yaml: DVC
leaves a workspace experiment's params in params.yaml, so it refuses to start when params.yaml has uncommitted
changes and restores it before each recipe and at the end. What recipes share (base, SFT, M0's evaluation) is
meant to come from DVC's run cache; on the lent GPU machine it did not (2026-12-06, docs/checks.md), and a
rebuilt M0 is another model (SFT on the GPU is not bit-reproducible): there, benchmarks/device.py `--reuse`
starts each recipe from the first run's outputs. An experiment that already exists is skipped
(--force reruns it).

`table` reads each experiment's metrics from its git ref (refs/exps/.../NAME), or from a folder holding a run's
metrics/ (--results NAME=DIR: benchmarks/device.py's results, unpacked). Per model M0..M3: IFEval prompt-level
strict accuracy with its 95% interval and its difference to the baseline's model of the same iteration (Newcombe
interval), the judge's accuracy on the held-out human pairs (all, and those whose preferred answer is the shorter,
where length alone scores 0), and the mean answer length (IFEval answers, tokens, and its change from M0).
Below it the verdict of issue 17: a recipe whose last model beats the baseline's on IFEval prompt-strict by more
than the interval (the difference's lower bound above 0), with its mean length within +-15% of M0's. Runs named
NAME-rN are draws of one recipe from the same M0 (params.yaml `replicate`): a recipe must then beat every draw of
the baseline in every draw of its own, since two draws of one loop differ beyond the paired interval by chance
(measured 2026-12-06, docs/checks.md). Last, each run against its own M0, each recipe's spread over its draws, and
per run the IFEval instructions met in each IFEval group, M0 -> its last model, and, where a results folder holds
the IFEval answers, how often they carry a format mark where IFEval asked for it and where it did not
(`--draws-only`: that part alone, which holds across runs from different M0s).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import polars as pl

from stages.commands import profile
from stages.core import params as P
from stages.core.rows import content_id
from stages.judging.checks import AT_LEAST, KINDS, Constraint
from stages.measure import ifeval
from stages.measure.metrics import Accuracy, DpoMetrics, EvalMetrics, PairsMetrics, fmt_acc, parse
from stages.measure.stats import difference_interval, paired_difference_interval, wilson_interval

ROOT = Path(__file__).resolve().parents[1]
BASE = ["profiles/gpu.yaml"]
BASELINE = "baseline"
LENGTH_TOLERANCE = 0.15  # mean answer length within +-15% of M0's (issue 17)


# the order `run` takes them in when none are named: the first three after the baseline first
ORDER = ("meta-judge", "temporal", "nll", "reference-m0", "ld-dpo")


def recipes(root: Path = ROOT, base: list[str] = BASE) -> dict[str, list[str]]:
    """{name: profiles, merged in order}: the baseline, then one per profiles/recipe-NAME.yaml (ORDER first)."""
    found = {f.stem.removeprefix("recipe-"): f for f in (root / "profiles").glob("recipe-*.yaml")}
    names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    return {BASELINE: list(base)} | {n: [*base, found[n].relative_to(root).as_posix()] for n in names}


def chosen(names: list[str], known: dict[str, list[str]]) -> list[str]:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"error: unknown recipe(s) {unknown}; choose from {list(known)}")
    return names or list(known)


def exp_command(name: str, profiles: list[str], root: Path = ROOT, force: bool = False) -> list[str]:
    """The `dvc exp run` of one recipe: its profiles as -S flags (stages/commands/profile.py, as make run-gpu)."""
    sets = profile.flags(profile.combined([root / p for p in profiles]))
    return ["dvc", "exp", "run", "-n", name, *(["-f"] if force else []), *[x for s in sets for x in ("-S", s)]]


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=check)


def experiments(root: Path) -> dict[str, str]:
    """{experiment name: commit}, the newest of each name (refs/exps/<baseline>/<name>)."""
    out = git(root, "for-each-ref", "--sort=-committerdate", "--format=%(refname) %(objectname)", "refs/exps")
    found: dict[str, str] = {}
    for line in out.stdout.splitlines():
        ref, sha = line.split()
        if not ref.startswith("refs/exps/exec/"):
            found.setdefault(ref.rsplit("/", 1)[1], sha)
    return found


def run(names: list[str], known: dict[str, list[str]], root: Path = ROOT, force: bool = False) -> None:
    if git(root, "diff", "--quiet", "HEAD", "--", "params.yaml", check=False).returncode:
        raise SystemExit(
            "error: params.yaml differs from git's (each recipe starts from the committed one): commit your edits, "
            "or `git checkout params.yaml` if an earlier `dvc exp run` left its params there"
        )
    have = experiments(root)
    try:
        for name in names:
            if name in have and not force:
                print(f"recipes: {name}: experiment exists ({have[name][:10]}); skipped (--force reruns it)")
                continue
            git(root, "checkout", "HEAD", "--", "params.yaml")  # the previous experiment's params stay there
            cmd = exp_command(name, known[name], root, force=name in have)
            print(f"recipes: {name}: {shlex.join(cmd)}", flush=True)
            rc = subprocess.call([sys.executable, "-m", *cmd], cwd=root)
            if rc:
                raise SystemExit(f"error: recipe {name}: dvc exp run failed (exit {rc}); later recipes not run")
    finally:
        git(root, "checkout", "HEAD", "--", "params.yaml")


# ---------------------------------------------------------------------------------------------- table


def run_folder(folder: Path) -> Path:
    """The run inside a --results folder: its run/ (benchmarks/device.py's results, unpacked) or the folder itself."""
    return folder / "run" if (folder / "run" / "metrics").is_dir() else folder


def reader(root: Path, name: str, results: dict[str, Path]):
    """read(path) -> dict | None for one recipe's files: a results folder, or its experiment's commit."""
    if name in results:
        base = run_folder(results[name])

        def from_folder(path: str):
            try:
                return json.loads((base / path).read_text())
            except (OSError, ValueError):
                return None

        return from_folder
    sha = experiments(root).get(name)
    if sha is None:
        return None

    def from_commit(path: str):
        got = git(root, "show", f"{sha}:{path}", check=False)
        if got.returncode == 0:
            return json.loads(got.stdout)
        from stages.core import rows  # a DVC-tracked file: through the cache

        return rows.read_json(path, rev=sha, repo=str(root))

    return from_commit


# the stages whose time a row counts: M0's making and measuring, or iteration t's (timing records of a results
# folder, .srlm/timings/; an experiment's commit has none)
M0_STAGES = ("base", "seed", "sft", "evaluate_base", "evaluate_m0")
ITER_STAGES = ("prompts", "responses", "judge", "checks", "pairs", "meta_judge", "validate", "dpo", "evaluate")


def stage_seconds(read, t: int) -> float | None:
    names = M0_STAGES if t == 0 else [f"{s}@{t}" for s in ITER_STAGES]
    got = [r["wall_s"] for n in names if isinstance(r := read(f".srlm/timings/{n}.json"), dict) and "wall_s" in r]
    return sum(got) if got else None


def share_interval(share, n: int | None) -> tuple[float, float, float] | None:
    """(share, lower, upper) of a {count, share} record over n answers; no interval without the count."""
    if share is None or share.share is None:
        return None
    if share.count is None or not n:
        return share.share, None, None
    return share.share, *wilson_interval(share.count, n)


def model_row(read, t: int) -> dict | None:
    ev = parse(read(f"metrics/iter{t}/eval.json"), EvalMetrics)
    if ev is None:
        return None
    ife, con = ev.ifeval, ev.constraints
    pairs, dpo = (read(f"metrics/iter{t}/{n}.json") if t else None for n in ("pairs", "dpo"))
    pairs, dpo = parse(pairs or {}, PairsMetrics), parse(dpo, DpoMetrics) if dpo else None
    return {
        "model": f"M{t}",
        "ifeval": ife.prompt_level_strict_acc if ife else None,
        "ifeval_inst": ife.inst_level_strict_acc if ife else None,
        "ifeval_passed": ife.prompt_strict if ife else None,  # per prompt: for paired differences
        "ifeval_groups": ife.by_group() if ife else {},
        "loops": share_interval(ife.loops, ife.prompts) if ife else None,
        "tokens": ife.tokens_mean if ife else None,
        "judge_all": ev.length_slice("pointwise", "all"),
        "judge_shorter": ev.length_slice("pointwise", "shorter_preferred"),
        "judge_longer": ev.length_slice("pointwise", "longer_preferred"),
        "heldout_chars": ev.heldout.chars_mean if ev.heldout else None,
        "constraints": con.prompt_level if con else None,
        "constraints_passed": con.passed if con else None,
        "pairs": pairs.pairs,
        "prompts": pairs.prompts,
        "by_checks": pairs.decided_by_checks,
        "by_degenerate": pairs.decided_by_degenerate,
        "dpo_loss": (dpo.loss_first, dpo.loss_last) if dpo else None,
        "reward_acc": dpo.reward_accuracy if dpo else None,
        "stage_s": stage_seconds(read, t),
    }


def collect(names: list[str], root: Path = ROOT, results: dict[str, Path] | None = None, last: int = 3) -> dict:
    """{recipe: [row of M0..M<last> that exists]}; a recipe with no experiment and no folder is left out."""
    out = {}
    for name in names:
        read = reader(root, name, results or {})
        if read is not None:
            out[name] = [r for t in range(last + 1) if (r := model_row(read, t)) is not None]
    return out


def _k(m: Accuracy) -> int:
    return m.k if m.k is not None else round(m.acc * m.n)


def versus(m, base, passed=None, base_passed=None) -> tuple[float, float, float] | None:
    """(difference, lower, upper) of two IFEval accuracies; paired (Newcombe's method 10 on the per-prompt
    verdicts) when both rows carry them, else the independent interval; None when either is missing."""
    if passed and base_passed and len(passed) == len(base_passed):
        got = paired_difference_interval(passed, base_passed)
        if got is not None:
            return got["diff"], *got["ci95"]
    m, base = (parse(x, Accuracy) if isinstance(x, dict) else x for x in (m, base))
    if not all(x is not None and x.acc is not None and x.n for x in (m, base)):
        return None
    lo, hi = difference_interval(_k(m), m.n, _k(base), base.n)
    return m.acc - base.acc, lo, hi


def length_change(row: dict, m0: dict | None) -> float | None:
    if not m0 or not row.get("tokens") or not m0.get("tokens"):
        return None
    return row["tokens"] / m0["tokens"] - 1


def _share(x) -> str:
    if x is None:
        return "-"
    return f"{x[0]:.1%}" + ("" if x[1] is None else f" [{x[1]:.1%}, {x[2]:.1%}]")


def _diff(d) -> str:
    return "-" if d is None else f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"


def markdown(table: dict, baseline: str = BASELINE) -> str:
    """Per recipe and model: IFEval prompt-strict and its paired differences to the recipe's M0 and to the
    baseline's model of the same iteration, instruction-strict, looping share and mean tokens of the IFEval
    answers, the held-out constraint set (and its paired difference to M0), the judge on both length slices of
    the human pairs, and per iteration the pairs (decided by checks), DPO loss and reward accuracy."""
    base = {r["model"]: r for r in table.get(baseline, [])}
    lines = [
        "| recipe | model | IFEval prompt strict [95%] | vs M0, paired [95%] | vs baseline, paired [95%] "
        "| inst strict | looping | tokens (mean, vs M0) | held-out constraints [95%] | vs M0, paired [95%] "
        "| judge, shorter / longer preferred | pairs / prompts (by checks) [+ by a degenerate answer] | DPO loss first -> last | reward acc "
        "| stage s |",
        "|---|---|---|---|---|---|---:|---:|---|---|---|---|---|---:|---:|",
    ]
    for name, rows in table.items():
        m0 = next((r for r in rows if r["model"] == "M0"), None) or {}
        for r in rows:
            b = base.get(r["model"]) or {}
            vs_m0 = versus(r["ifeval"], m0.get("ifeval"), r["ifeval_passed"], m0.get("ifeval_passed"))
            vs_base = versus(r["ifeval"], b.get("ifeval"), r["ifeval_passed"], b.get("ifeval_passed"))
            con_m0 = versus(
                r["constraints"], m0.get("constraints"), r["constraints_passed"], m0.get("constraints_passed")
            )
            first = r["model"] == "M0"
            lines.append(
                f"| {name} | {r['model']} | {fmt_acc(r['ifeval'])} | {'-' if first else _diff(vs_m0)} | "
                f"{'-' if name == baseline else _diff(vs_base)} | {fmt_acc(r['ifeval_inst'])} | "
                + _share(r["loops"])
                + " | "
                + ("-" if r["tokens"] is None else f"{r['tokens']:.0f}")
                + ("" if (change := length_change(r, m0)) is None or first else f" ({change:+.0%})")
                + f" | {fmt_acc(r['constraints'])} | {'-' if first else _diff(con_m0)} | "
                f"{fmt_acc(r['judge_shorter'])} / {fmt_acc(r['judge_longer'])} | "
                + ("-" if r["pairs"] is None else f"{r['pairs']} / {r['prompts']} ({r['by_checks'] or 0})")
                + (f" + {r['by_degenerate']} degenerate" if r.get("by_degenerate") else "")
                + " | "
                + ("-" if not r["dpo_loss"] else f"{r['dpo_loss'][0]} -> {r['dpo_loss'][1]}")
                + f" | {'-' if r['reward_acc'] is None else r['reward_acc']} | "
                + ("-" if r["stage_s"] is None else f"{r['stage_s']:.0f}")
                + " |"
            )
    return "\n".join(lines) + "\n"


def draws_markdown(table: dict, results: dict[str, Path] | None = None, root: Path = ROOT) -> str:
    """Per run, its last model against its own M0 (paired): IFEval prompt-strict, the looping share and mean tokens
    of the IFEval answers, the held-out constraints; then, per recipe with several draws (NAME-rN), the spread of
    its IFEval change over them at the last model they all reached: what one loop moves by chance. Below, per run,
    IFEval per instruction group and, where `results` folders hold the answers, the format marks (marks_markdown)."""
    lines = [
        "| run | recipe | model | IFEval vs M0, paired [95%] | looping, M0 -> model | tokens, M0 -> model "
        "| held-out constraints vs M0, paired [95%] |",
        "|---|---|---|---|---|---|---|",
    ]
    changes: dict[str, dict[str, dict]] = {}
    for name, rows in table.items():
        m0 = next((r for r in rows if r["model"] == "M0"), None)
        if m0 is None or rows[-1] is m0:
            continue
        mine = changes.setdefault(recipe_of(name), {}).setdefault(name, {})
        for r in rows[1:]:
            mine[r["model"]] = versus(r["ifeval"], m0["ifeval"], r["ifeval_passed"], m0["ifeval_passed"])
        r = rows[-1]
        ife = mine[r["model"]]
        con = versus(r["constraints"], m0["constraints"], r["constraints_passed"], m0["constraints_passed"])
        tokens = "-" if r["tokens"] is None or m0["tokens"] is None else f"{m0['tokens']:.0f} -> {r['tokens']:.0f}"
        loops = "-" if m0["loops"] is None else f"{m0['loops'][0]:.1%} -> {_share(r['loops'])}"
        lines.append(
            f"| {name} | {recipe_of(name)} | {r['model']} | {_diff(ife)} | {loops} | {tokens} | {_diff(con)} |"
        )
    notes = []
    for recipe, runs in changes.items():
        common = set.intersection(*(set(x) for x in runs.values()))
        if len(runs) < 2 or not common:
            continue
        model = max(common, key=lambda m: int(m[1:]))
        got = [d[0] for d in (x[model] for x in runs.values()) if d is not None]
        if len(got) == len(runs):
            notes.append(
                f"- {recipe}: {len(got)} draws, {model} - M0 from {min(got):+.3f} to {max(got):+.3f} "
                f"(mean {sum(got) / len(got):+.3f}; spread {max(got) - min(got):.3f})"
            )
    marks = marks_markdown(table, results or {}, root)
    return "\n".join(lines + ([""] + notes if notes else []) + groups_markdown(table) + marks) + "\n"


def run_ends(table: dict) -> dict[str, tuple[dict, dict]]:
    """{run: (its M0 row, its last model's row)} of the runs that measured M0 and a model after it."""
    return {n: (rows[0], rows[-1]) for n, rows in table.items() if len(rows) > 1 and rows[0]["model"] == "M0"}


def groups_markdown(table: dict) -> list[str]:
    """Per run, IFEval's instructions met (strict) in each IFEval group, its M0 -> its last model, of those scored:
    where a prompt-level change comes from (docs/checks.md names the groups the constraint library overlaps)."""
    ends = run_ends(table)
    groups = sorted({g for m0, last in ends.values() for g in (*m0["ifeval_groups"], *last["ifeval_groups"])})
    if not groups:
        return []
    lines = [
        "",
        "IFEval instructions met (strict), M0 -> model / scored, per IFEval group:",
        "",
        "| run | model | " + " | ".join(groups) + " |",
        "|---|---|" + "---:|" * len(groups),
    ]
    for name, (m0, last) in ends.items():
        cells = []
        for g in groups:
            (a, n), (b, _) = m0["ifeval_groups"].get(g, (None, None)), last["ifeval_groups"].get(g, (None, None))
            cells.append("-" if a is None or b is None else f"{a} -> {b} / {n}")
        lines.append(f"| {name} | {last['model']} | " + " | ".join(cells) + " |")
    return lines


# IFEval instructions that ask for a mark the constraint library checks too: the library's constraint that finds
# the mark (one, where its kind counts), so "has a title" means what the checks reward meant by it
MARKS = {
    "detectable_format:title": Constraint("format.title"),
    "detectable_content:postscript": Constraint("start_end.postscript"),
    "detectable_format:json_format": Constraint("format.json"),
    "detectable_format:number_highlighted_sections": Constraint("format.highlight", n=1, relation=AT_LEAST),
    "detectable_content:number_placeholders": Constraint("format.placeholders", n=1, relation=AT_LEAST),
}


def marks_markdown(table: dict, results: dict[str, Path], root: Path = ROOT) -> list[str]:
    """Per run whose folder holds its IFEval answers (data/iter<t>/ifeval.parquet, prompts joined back by
    prompt_id from the checkout's IFEval source), how many of M0's and of its last model's answers carry each mark
    of MARKS, among the prompts whose IFEval instructions ask for it and among the others. A loop that learned to
    follow the instruction adds the mark where asked; one that learned the mark itself (a reward hack the pass
    rates alone would not show) adds it everywhere."""
    answered = {}  # run -> (its last model, the IFEval answers of M0 and of that model)
    for name, (m0_row, last_row) in run_ends(table).items():
        if name in results:
            base = run_folder(results[name])
            files = [base / f"data/iter{r['model'][1:]}/ifeval.parquet" for r in (m0_row, last_row)]
            if all(f.exists() for f in files):
                answered[name] = last_row["model"], files
    if not answered:
        return []
    try:
        src = P.load(root / "params.yaml").evaluate.ifeval.source
        prompts = None if src.format == "hub" else ifeval.load_prompts(root / src.path)
    except (P.ParamsError, ValueError) as e:  # one extra table: say why it is missing and keep the others
        return ["", f"Format marks not counted: {e}"]
    asked = {content_id(r["prompt"]): set(r["instruction_id_list"]) for r in prompts or []}
    if not asked:  # the optional IFEval source is absent
        return []
    lines = []
    for name, (model, files) in answered.items():
        m0, last = (dict(pl.read_parquet(f, columns=["prompt_id", "response"]).rows()) for f in files)
        both = [pid for pid in m0 if pid in last and pid in asked]
        for iid, c in MARKS.items():
            counts = {True: [0, 0, 0], False: [0, 0, 0]}  # asked -> [M0 has it, last model has it, prompts]
            for pid in both:
                cell = counts[iid in asked[pid]]
                cell[0] += KINDS[c.id].check(m0[pid], c)
                cell[1] += KINDS[c.id].check(last[pid], c)
                cell[2] += 1
            lines.append(f"| {name} | {model} | {iid} | " + " | ".join(
                f"{x} -> {y} / {n}" for x, y, n in (counts[True], counts[False])) + " |")  # fmt: skip
    if not lines:
        return []
    head = [
        "",
        "IFEval answers carrying a format mark (the constraint library's check), M0 -> model / prompts, where "
        "IFEval asked for it and where it did not:",
        "",
        "| run | model | IFEval instruction | asked | not asked |",
        "|---|---|---|---:|---:|",
    ]
    return head + lines


def recipe_of(name: str) -> str:
    """The recipe a run draws: NAME-rN is draw N of NAME (params.yaml `replicate` N, profiles/replicate-N.yaml)."""
    return re.sub(r"-r\d+$", "", name)


def verdict(table: dict, baseline: str = BASELINE) -> str:
    """Issue 17's rule, robust to the loop's own spread: a recipe beats the baseline when every draw of it beats
    every draw of the baseline (the runs NAME-rN, recipe_of) at the last model both reached by more than the
    paired interval, with its mean length within +-15% of M0's. With one draw each it is the plain rule. Another
    draw of the baseline is never a recipe: its difference to the baseline is the loop's spread by chance."""
    if baseline not in table:
        return "No verdict: the baseline has not been run."
    family = recipe_of(baseline)
    base_draws = [n for n in table if recipe_of(n) == family]
    groups: dict[str, list[str]] = {}
    for name in table:
        if recipe_of(name) != family:
            groups.setdefault(recipe_of(name), []).append(name)
    winners, lines = [], []
    for name in base_draws:
        if name != baseline:
            got = compare(table[name], table[baseline])
            lines.append(
                f"- {name}: another draw of the baseline (the loop's spread by chance, not a recipe): "
                + (
                    "no model past M0 to compare"
                    if got is None
                    else f"{got[0]['model']} vs {baseline}'s {_diff(got[1])}"
                )
            )
    for recipe, draws in groups.items():
        verdicts = []
        for name in draws:
            for b in base_draws:
                got = compare(table[name], table[b])
                if got is None:
                    lines.append(f"- {name}: no model past M0 to compare with {b}")
                    continue
                row, d, change = got
                beats, short = d is not None and d[1] > 0, change is not None and abs(change) <= LENGTH_TOLERANCE
                verdicts.append((beats, short, d, row["model"]))
                outcome = (
                    "BEATS it" if beats and short else
                    "beats it on IFEval, but its length moved more than 15% from M0's" if beats else
                    "does not beat it beyond the interval"
                )  # fmt: skip
                lines.append(
                    f"- {name}: {row['model']} IFEval prompt strict vs {'the baseline' if b == baseline else b}'s "
                    f"{_diff(d)}; mean answer length vs M0 {'-' if change is None else f'{change:+.0%}'}: {outcome}"
                )
        if verdicts and all(b and s for b, s, _, _ in verdicts):
            winners.append((min(v[2][0] for v in verdicts), recipe, verdicts[-1][3]))
    draws_note = f" (each of its {len(base_draws)} draws)" if len(base_draws) > 1 else ""
    if winners:
        _, name, model = max(winners)
        head = (
            f"**{name}** beats the baseline's {model}{draws_note} on IFEval prompt-strict by more than the interval in every "
            "draw, with its mean answer length within +-15% of M0's: it becomes the GPU profile's default "
            "(profiles/gpu.yaml)."
        )
    else:
        head = (
            f"None of the recipes beats the baseline{draws_note} on IFEval prompt-strict by more than the interval "
            "in every draw with its mean answer length within +-15% of M0's: the GPU profile keeps the paper's "
            "recipe."
        )
    return "\n".join([head, *lines])


def compare(rows: list[dict], base_rows: list[dict]) -> tuple[dict, tuple | None, float | None] | None:
    """At the last model past M0 that both runs reached: (the run's row, its IFEval difference to the base run's
    row, paired where both carry per-prompt verdicts, and its mean length change from its own M0)."""
    base = {r["model"]: r for r in base_rows}
    both = [r for r in rows if r["model"] in base and r["model"] != "M0"]
    if not both:
        return None
    row, b = both[-1], base[both[-1]["model"]]
    m0 = next((r for r in rows if r["model"] == "M0"), None)
    return row, versus(row["ifeval"], b["ifeval"], row["ifeval_passed"], b["ifeval_passed"]), length_change(row, m0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", type=Path, default=ROOT)
    ap.add_argument("--base", action="append", help=f"the profile(s) every recipe starts from (default {BASE})")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the recipes and the dvc exp run of each")
    r = sub.add_parser("run", help="dvc exp run per recipe (a GPU box with git and the venv)")
    r.add_argument("names", nargs="*")
    r.add_argument("--force", action="store_true", help="rerun recipes whose experiment exists")
    t = sub.add_parser("table", help="the recipe x iteration table and the verdict")
    t.add_argument("names", nargs="*")
    t.add_argument("--results", action="append", default=[], metavar="NAME=DIR", help="a run's folder for NAME")
    t.add_argument("--last", type=int, default=3, help="the last iteration (default 3: M0 -> M3)")
    t.add_argument("-o", "--out", type=Path, help="write the markdown here too")
    t.add_argument("--baseline", default=BASELINE, help=f"the run the others are compared with (default {BASELINE})")
    t.add_argument(
        "--draws-only",
        action="store_true",
        help="only each run against its own M0 (valid across runs from different M0s) and each recipe's spread",
    )
    args = ap.parse_args(argv)
    base = args.base or BASE
    known = recipes(args.repo, base)
    if args.cmd == "list":  # the same command as `run` makes, shorter: stages.commands.profile spells out the -S flags
        for name, profs in known.items():
            own = profile.flags(profile.combined([args.repo / p for p in profs[len(base) :]]))
            print(f"{name}: {' '.join(own) or 'the paper recipe'}")
            print(f"  python -m stages.commands.profile exp-run {' '.join(profs)} -- -n {name}")
        return
    if args.cmd == "run":
        names = chosen(args.names, known)
        run(names, known, args.repo, args.force)
        args.results, args.out, args.last, args.baseline, args.draws_only = [], None, 3, BASELINE, False
    results = {}
    for spec in args.results:
        name, sep, folder = spec.partition("=")
        if not sep:
            raise SystemExit(f"error: --results {spec!r}: expected NAME=DIR")
        results[name] = Path(folder)
    if args.cmd == "table":  # a run folder may carry any name
        names = chosen(args.names, known | dict.fromkeys(results, [])) if args.names else [*known, *results]
        names = list(dict.fromkeys(names))
    table = collect(names, args.repo, results, args.last)
    missing = [n for n in names if n not in table]
    text = draws_markdown(table, results, args.repo)
    if not args.draws_only:
        text = markdown(table, args.baseline) + "\n" + verdict(table, args.baseline) + "\n\n" + text
    if missing:
        text += f"\nnot run (no experiment or folder): {', '.join(missing)}\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
