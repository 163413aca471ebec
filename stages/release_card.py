"""The dataset card (README.md) of `srlm release`: Hub YAML metadata plus a lineage section.

Everything here is read from files the pipeline already wrote (params.yaml, dvc.lock, metrics/iter<t>/,
the lineage records beside the datasets when there are any: data/iter<t>/<kind>.lineage.json); nothing is timestamped, so an unchanged
iteration gives a byte-identical card and a re-release makes no commit.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from . import params as P
from . import rows
from .lineage import ITERATION_STAGES, lock_stages, package_versions

DATASET_PARAMS = ("seed", "backend", "base", "prompts", "responses", "judge", "pairs", "meta_judge", "validate")


def size_category(n: int) -> str:
    """The Hub's size_categories bucket for n rows."""
    for limit, name in [
        (1e3, "n<1K"),
        (1e4, "1K<n<10K"),
        (1e5, "10K<n<100K"),
        (1e6, "100K<n<1M"),
        (1e7, "1M<n<10M"),
        (1e8, "10M<n<100M"),
        (1e9, "100M<n<1B"),
    ]:
        if n < limit:
            return name
    return "n>1B"


def _flat(obj, prefix: str = "") -> list[tuple[str, object]]:
    """Scalar leaves of nested dicts as (dotted key, value); lists of scalars are kept whole."""
    if isinstance(obj, dict):
        return [kv for k, v in obj.items() for kv in _flat(v, f"{prefix}{k}.")]
    if isinstance(obj, list) and not all(isinstance(x, (int, float, str, bool)) or x is None for x in obj):
        return []
    return [(prefix.rstrip("."), obj)]


def _table(header: tuple[str, ...], body: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in body])


def git_commit(root: Path) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def dvc_hashes(iteration: int, prev: int, root: Path) -> list[tuple[str, str, str, str]]:
    """(stage, dep/out, path, md5) from dvc.lock: the iteration's stages (their outputs and the data and models
    they read; code deps are covered by the git commit) and the outputs of the stages that made M(prev)."""
    upstream = {"base", "seed", "sft"} | {f"dpo@{t}" for t in range(1, prev + 1)}
    out = []
    for stage, entry in lock_stages(root).items():
        name, _, key = stage.rpartition("@")
        mine = key == str(iteration) and name in ITERATION_STAGES
        if not mine and stage not in upstream:
            continue
        for role in ("deps", "outs") if mine else ("outs",):
            for d in entry.get(role, []):
                if role == "outs" or d["path"].startswith(("data/", "models/")):
                    out.append((stage, role[:-1], d["path"], d.get("md5") or d.get("hash", "")))
    return out


def _acc(block) -> str:
    if not isinstance(block, dict) or block.get("acc") is None:
        return "-"
    lo, hi = block["ci95"]
    return f"{block['acc']:.3f} [{lo:.3f}, {hi:.3f}] (n={block['n']})"


def _share(block) -> str:
    return "-" if not isinstance(block, dict) or block.get("share") is None else f"{block['share']:.0%}"


def outside_section(iteration: int, prev: int, root: Path) -> list[str]:
    """IFEval and the length-sliced judge accuracy of the base model, M(prev) and M(t) (their eval.json), and
    the iteration's own truncation, looping, length-bias and prompt-content counts."""
    models = [("base", "metrics/base/eval.json")] + [
        (f"M{t}", f"metrics/iter{t}/eval.json") for t in (prev, iteration)
    ]
    body = []
    for name, path in models:
        ev = rows.read_json(root / path)
        if ev is None:
            continue
        ife, h = ev.get("ifeval") or {}, ev.get("human") or {}
        sl = h.get("length_slices") or {}
        body.append(
            (
                name,
                _acc(ife.get("prompt_level_strict_acc")),
                _share(ife.get("cap_hit")),
                _share(ife.get("loops")),
                _acc((sl.get("pointwise") or {}).get("shorter_preferred")),
                _acc((sl.get("longer_wins") or {}).get("all")),
            )
        )
    m = {
        k: rows.read_json(root / f"metrics/iter{iteration}/{k}.json") or {} for k in ("prompts", "responses", "pairs")
    }
    r, pr, pt = m["responses"], m["pairs"], m["prompts"]
    facts = [
        f"responses at the token cap: {r.get('truncated', '-')} of {r.get('responses', '-')}, looping: {r.get('loops', '-')}",
        f"pairs whose chosen answer is the longer: {pr.get('chosen_longer_rate', '-')}; truncated chosen / rejected: "
        f"{pr.get('chosen_truncated', '-')} / {pr.get('rejected_truncated', '-')}; looping chosen / rejected: "
        f"{pr.get('chosen_loops', '-')} / {pr.get('rejected_loops', '-')}",
        f"self-made prompts that were not one request (before the cut or drop): {pt.get('content', '-')}, "
        f"cut: {pt.get('cut', '-')}",
    ]
    if not body and not any(m.values()):
        return []
    parts = [
        "### Measured from outside the loop",
        "IFEval (prompt-level strict accuracy, 95% interval; share of answers at the token cap and looping) and "
        "the judge's accuracy on held-out human pairs whose preferred answer is the shorter one (length alone "
        "scores 0 there; the longer-answer-wins baseline over all pairs beside it); docs/judge.md defines them.",
    ]
    if body:
        parts.append(
            _table(("model", "IFEval strict", "at cap", "looping", "judge, shorter preferred", "longer wins"), body)
        )
    return parts + ["\n".join(f"- {f}" for f in facts)]


def card(
    iteration: int,
    repo_id: str,
    tag: str,
    p: P.Params,
    root: Path,
    sizes: dict[str, int],
    validation: dict,
    judge_sizes: dict[str, int] | None = None,
):
    from huggingface_hub import DatasetCard, DatasetCardData

    cfg, prev = p.release, p.iterations[str(iteration)].prev
    name = cfg.pretty_name or f"{repo_id.split('/')[-1]} (iteration {iteration})"
    configs = [{"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in sizes]}]
    if judge_sizes:
        files = [{"split": s, "path": f"meta_judgments/{s}-*.parquet"} for s in judge_sizes]
        configs.append({"config_name": "meta_judgments", "data_files": files})
    data = DatasetCardData(
        license=cfg.license,
        language=cfg.language,
        task_categories=cfg.task_categories,
        tags=cfg.tags,
        size_categories=[size_category(sum(sizes.values()))],
        pretty_name=name,
        configs=configs,
    )
    base = p.base.source + (f" (file {p.base.gguf_file})" if p.base.gguf_file else "")
    v = validation
    verdict = "passed" if v.get("passed") else "FAILED, released under the override validate.allow_failure"
    parts = [
        f"# {name}",
        f"Preference pairs from iteration {iteration} of a Self-Rewarding Language Models run "
        "([Yuan et al., 2024](https://arxiv.org/abs/2401.10020)), built with srlm. "
        f"Model M{prev} wrote the prompts "
        f"(self-instruction), sampled {p.responses.n} responses per prompt and judged them itself "
        f"(LLM-as-a-Judge, {p.judge.mode} mode, k={p.judge.k}); a prompt's highest- and lowest-scored responses "
        "became `chosen` and `rejected`. The text is machine-generated and unreviewed.",
        "## Use",
        f'```python\nfrom datasets import load_dataset\n\nds = load_dataset("{repo_id}", revision="{tag}")\n```',
        "`prompt`, `chosen`, `rejected` are message lists (TRL's conversational preference format, ready for "
        "`trl.DPOTrainer`); `score_chosen`, `score_rejected` are the judge's mean scores (0-5); `id`, `prompt_id`, "
        "`chosen_id`, `rejected_id` are content hashes linking back to the run's responses; `iteration` is t.",
        _table(("split", "pairs"), list(sizes.items())),
        *(
            [
                f"Config `meta_judgments` (Meta-Rewarding, [Wu et al., 2024](https://arxiv.org/abs/2407.19594)): "
                f"{sum(judge_sizes.values())} judge-preference pairs, trained beside the answer pairs. M{prev} "
                "compared its own judgments of an answer in both orders; `prompt` is the judge's prompt, `chosen` "
                "and `rejected` the better and the worse judgment, `score_*` their meta scores (0-5), `graded_*` "
                "the scores they gave the answer."
            ]
            if judge_sizes
            else []
        ),
        "## Lineage",
        "### Models",
        _table(
            ("role", "model"),
            [
                ("base model", f"`{base}`"),
                ("SFT model (M0)", "base + SFT on the seed IFT/EFT data"),
                ("generating and judging model", f"M{prev} (`models/M{prev}`)"),
                ("backend", f"{p.backend.name} ({p.backend.dtype})"),
            ],
        ),
        "### Validation",
        f"Great Expectations gate (validate@{iteration}): **{verdict}**; {v.get('evaluated', '?')} checks evaluated, "
        f"{v.get('failed', '?')} failed"
        + (f" ({', '.join(v['failures'])})" if v.get("failures") else "")
        + (f"; skipped: {', '.join(v['skipped'])}" if v.get("skipped") else "")
        + ".",
        *[f"- warning: {w}" for w in v.get("warnings", [])],
    ]
    observed = [
        (f"{ds}.{check}", value)
        for ds, checks in sorted(v.get("observed", {}).items())
        for check, value in sorted(checks.items())
    ]
    if observed:
        parts.append(_table(("check", "observed"), observed))
    ev = rows.read_json(root / f"metrics/iter{iteration}/eval.json")
    if ev is not None:
        parts += [
            "### Judge agreement and head-to-head",
            f"From `metrics/iter{iteration}/eval.json` (evaluate@{iteration}):",
            _table(("metric", "value"), _flat(ev)),
        ]
    parts += outside_section(iteration, prev, root)
    seeds = [("global (params.yaml seed)", p.seed)] + [
        (f"{stage}@{iteration}", rows.derive_seed(p.seed, stage, iteration))
        for stage in ("prompts", "responses", "judge")
    ]
    parts += [
        "### Seeds",
        _table(("what", "seed"), seeds),
        "### DVC hashes",
        "From `dvc.lock`" + (f" at git commit `{c}`" if (c := git_commit(root)) else "") + ":",
        _table(("stage", "role", "path", "md5"), dvc_hashes(iteration, prev, root)),
        "### Parameters",
        "The sections of `params.yaml` that shape the data:",
        "```yaml\n"
        + yaml.safe_dump(
            {k: v for k, v in p.model_dump(by_alias=True).items() if k in DATASET_PARAMS}
            | {"iterations": {str(iteration): {"prev": prev}}},
            sort_keys=False,
        ).rstrip()
        + "\n```",
        "### Package versions",
        _table(("package", "version"), list(package_versions().items())),
    ]
    records = [
        (f"data/iter{iteration}/{kind}.lineage.json", r)
        for kind in rows.DATASETS
        if (r := rows.read_json(root / f"data/iter{iteration}/{kind}.lineage.json")) is not None
    ]
    if records:
        ds = lambda r: r.get("dataset") or {}
        parts += [
            "### Lineage records",
            "The record beside each dataset of the iteration (`srlm-lineage/1`):",
            _table(
                ("stage", "dataset", "rows", "md5", "params hash", "stage seed"),
                [
                    (
                        r.get("stage"),
                        ds(r).get("path"),
                        ds(r).get("rows"),
                        ds(r).get("md5"),
                        r.get("params_hash"),
                        (r.get("seeds") or {}).get("stage"),
                    )
                    for _, r in records
                ],
            ),
            *[
                f"<details><summary>{path}</summary>\n\n```json\n{json.dumps(r, indent=2, sort_keys=True)}\n```\n"
                "</details>"
                for path, r in records
            ],
        ]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(parts) + "\n")
