"""The judge grid behind BENCHMARKS.md "Judge: length" and docs/judge.md: which EFT recipe, judge mode and pair
rule read quality rather than length.

For each named variant (an override of params.yaml's sft / judge sections, VARIANTS below) this process
1. trains M0 as `make run-oasst` does: stages.seed on the oasst2 files (IFT top-1 answers; ranked + quality EFT
   rows), then stages.sft with the variant's params (IFT + EFT examples);
2. measures it on all 186 first-turn oasst1 validation prompts (529 human pairs, never trained on): the
   pointwise judge (logprob), the A/B judge in both orders and judge.mode compare (round robin), each as
   accuracy over all pairs and over the shorter-preferred and longer-preferred slices with 95% intervals,
   beside "the longer answer wins" on the same pairs;
3. judges a simulated iteration: answers the base model wrote (N=4, 256 new tokens) to oasst2 IFT prompts,
   scored by this M0 in logprob and compare mode; per pair rule (pairs.length_control, length_residual,
   skip_degenerate) the share of prompts with a pair, the chosen-longer rate and how many chosen answers were
   cut at the cap or looping; and the within-prompt Spearman between score and length.
One JSON line per variant goes to OUT/judge_grid.jsonl as soon as it is done, and a markdown table of all of
them to OUT/judge_grid.md. A variant that fails is recorded with its error and the grid goes on; a variant that
would not finish within --budget-s (judged by the slowest one so far) is skipped and recorded as such.

    python benchmarks/judge_grid.py --data ../shared/data --work /tmp/srlm-grid --out OUT [--variants a,b]
    python benchmarks/judge_grid.py --smoke --base TINY_MODEL_DIR ...   # the same code at toy sizes, on a CPU

On the GPU machine: benchmarks/judge_grid.sh (python3 with the carried wheels on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tarfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402
import yaml  # noqa: E402

from benchmarks.report import acc  # noqa: E402
from stages import pairs  # noqa: E402
from stages.core import params as P  # noqa: E402
from stages.core import rows  # noqa: E402
from stages.engine.backend import make_backend  # noqa: E402
from stages.judging import scoring  # noqa: E402
from stages.judging.modes import mode_for  # noqa: E402
from stages.judging.prompting import judge_messages  # noqa: E402
from stages.judging.text import loops  # noqa: E402
from stages.measure import agreement, headtohead, human  # noqa: E402
from stages.measure.stats import wilson_interval  # noqa: E402

# The training every variant shares (GPU sizes): full fine-tune as in BENCHMARKS.md "Judge", one epoch at twice
# the learning rate of the earlier two-epoch grid, batches of similar length (no padding compute).
COMMON = {
    "backend": {"name": "transformers"},
    "sft": {
        "epochs": 1,
        "max_steps": -1,
        "learning_rate": 6.0e-5,
        "batch_size": 16,
        "grad_accum": 1,
        "max_length": 1024,
        "lora": False,
        "compare_pairs": 2000,
        "balance": "none",
        "contrastive": 0,
        "batching": "grouped",
    },
    "judge": {"mode": "logprob", "batch_size": 64},
    "evaluate": {"max_prompts": None, "max_response_chars": 1500, "compare_batch_size": 32},
}
# name -> (what it tests, overrides merged over COMMON); run in this order, the most telling first
VARIANTS = {
    "length+contrastive": (
        "score independent of length, half the pairs shorter-better, + 1,000 contrastive",
        {"sft": {"balance": "length", "contrastive": 1000}},
    ),
    "baseline": ("make run-oasst's recipe: all EFT rows, 2,000 random pairs", {}),
    "length": ("score independent of length, half the pairs shorter-better", {"sft": {"balance": "length"}}),
    "contrastive": ("all EFT rows and pairs + 1,000 length-contrastive", {"sft": {"contrastive": 1000}}),
    "score": (
        "equal rows per score, pairs among them (score-balanced comparative data)",
        {"sft": {"balance": "score"}},
    ),
    "base": ("the base model, no EFT", None),
}
# pair rules of the simulated iteration: name -> select_pairs keywords
RULES = {
    "plain": {},
    "degenerate": {"skip_degenerate": True},
    "control0.1": {"skip_degenerate": True, "length_control": 0.1},
    "control0.25": {"skip_degenerate": True, "length_control": 0.25},
    "residual": {"skip_degenerate": True, "length_residual": True},
    "control0.25+residual": {"skip_degenerate": True, "length_control": 0.25, "length_residual": True},
}
SMOKE = {  # applied after the variant (then --set): toy sizes and the first rows of each source
    "sft": {"max_steps": 2, "batch_size": 2, "max_length": 512, "compare_pairs": 4},
    "evaluate": {"max_prompts": 3, "max_response_chars": 300, "compare_batch_size": 4},
    "judge": {"batch_size": 4},
}
SMOKE_ROWS = 150


def merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def dotted(assignment: str) -> dict:
    """ "sft.epochs=0.5" -> {"sft": {"epochs": 0.5}} (the value read as YAML)."""
    key, _, value = assignment.partition("=")
    out: dict = yaml.safe_load(value)
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def log(t0: float, *msg) -> None:
    print(f"[{time.time() - t0:6.0f}s]", *msg, flush=True)


def write_params(path: Path, data: Path, overrides: list[dict], limit: int | None = None) -> Path:
    """params.yaml for one run: the repo's, with the oasst files of `make run-oasst`, and `overrides` merged in
    key by key (in order); `limit` keeps the first rows of each source (smoke runs)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    oasst = data / "oasst2_en"
    lim = {"limit": limit} if limit else {}
    raw["seed_data"] |= {
        "ift": [{"path": str(oasst / "ift_oasst2_en_top1.jsonl"), "format": "jsonl", **lim}],
        "eft": [
            {"path": str(oasst / "andriswillow_oasst2_en_firstturn_ranked.jsonl"), "format": "ranked", **lim},
            {"path": str(oasst / "raulc0399_oasst2_en_firstturn_quality.jsonl"), "format": "quality", **lim},
        ],
    }
    human = data / "oasst1_en_validation" / "oasst1_en_validation_rank_pairs.jsonl"
    raw["evaluate"]["human"] = {"path": str(human), "format": "rank_pairs"}
    for o in overrides:
        raw = merged(raw, o)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    P.load(path)  # a bad override fails here, naming the key
    return path


def with_ci(values: list[float]) -> dict:
    n, k = len(values), sum(values)
    lo, hi = wilson_interval(k, n)
    return {"acc": round(k / n, 4) if n else None, "n": n, "ci95": [round(lo, 4), round(hi, 4)]}


def pointwise_metrics(groups: pl.DataFrame, grades: list[list[dict]]) -> dict:
    """Table-4 agreement and length slices of per-answer grades (as stages/measure/human.py computes them)."""
    scores = [None if not gs or gs[0]["score"] is None else sum(g["score"] for g in gs) / len(gs) for gs in grades]
    scored = groups.with_columns(pl.Series("score", scores, dtype=pl.Float64))
    by_group = list(scored.group_by("group", maintain_order=True))
    out = agreement.rank_agreement([list(zip(g["rank"], g["score"])) for _, g in by_group])
    outcomes = agreement.pair_outcomes(
        [list(zip(g["rank"], g["score"], g["response"].str.len_chars())) for _, g in by_group]
    )
    out["length_slices"] = agreement.sliced([o for o, _ in outcomes], [lg for _, lg in outcomes])
    return out


def within_prompt_spearman(responses: pl.DataFrame, scores: dict[str, float]) -> dict:
    """judge.json's score-length Spearman (agreement.length_correlation) of these scores."""
    return agreement.length_correlation(
        responses["prompt_id"].to_list(),
        [scores.get(i) for i in responses["id"]],
        responses["response"].str.len_chars().to_list(),
    )


def judgments_frame(responses: pl.DataFrame, grades: dict[str, list[dict]], mode: str) -> pl.DataFrame:
    return rows.frame(
        [
            {
                **g,
                "id": rows.content_id(r["id"], mode),
                "response_id": r["id"],
                "prompt_id": r["prompt_id"],
                "mode": mode,
                "model": "grid",
                "seed": 0,
            }
            for r in responses.iter_rows(named=True)
            for g in grades[r["id"]]
        ],
        "judgments",
    )


def simulated_pairs(responses: pl.DataFrame, judgments: pl.DataFrame) -> dict:
    """Per pair rule: the share of prompts with a pair and pairs.json's metrics (chosen-longer rate, cut and
    looping answers chosen and rejected)."""
    out = {}
    for name, rule in RULES.items():
        prefs, counts = pairs.select_pairs(responses, judgments, 0.0, 1, **rule)
        m = pairs.pair_metrics(prefs, counts, responses)
        out[name] = {"pairs_share": round(m["pairs"] / max(counts["prompts"], 1), 4)} | {
            k: m[k]
            for k in (
                "pairs",
                "chosen_longer_rate",
                "length_ratio_median",
                "chosen_truncated",
                "chosen_loops",
                "rejected_truncated",
                "rejected_loops",
            )
        }
    return out


def make_sim_responses(base: Path, p: P.Params, prompts: list[str], max_new_tokens: int) -> pl.DataFrame:
    """N=4 answers of the base model per prompt, flagged truncated and looping as responses@t does."""
    be = make_backend(p.backend, base)
    sampling = P.Sampling(temperature=0.7, top_p=0.9, max_new_tokens=max_new_tokens, batch_size=512)
    outs = be.generate([be.chat([{"role": "user", "content": q}]) for q in prompts], 4, sampling, 0, "sim answers")
    be.close()
    records = [
        {
            "id": rows.content_id(rows.content_id(q), c.text, "base"),  # as responses@t: equal texts are one answer
            "prompt_id": rows.content_id(q),
            "prompt": q,
            "response": c.text,
            "sample": k,
            "n_tokens": c.n_tokens,
            "truncated": c.truncated,
            "loops": loops(c.text),
            "model": "base",
            "seed": 0,
        }
        for q, o in zip(prompts, outs)
        for k, c in enumerate(o)
    ]
    return rows.frame(records, "responses").unique("id", keep="first", maintain_order=True)


def residualised(groups: pl.DataFrame, grades: list[list[dict]]) -> list[list[dict]]:
    """The grades less their pooled within-prompt trend on log length (pairs.length_residual's correction,
    fitted on these answers without their human ranks)."""
    scores = [gs[0]["score"] if gs and gs[0]["score"] is not None else None for gs in grades]
    df = pl.DataFrame(
        {
            "prompt_id": groups["group"],
            "score": pl.Series(scores, dtype=pl.Float64),
            "log_chars": (groups["response"].str.len_chars() + 1).log(),
        }
    )
    slope = max(0.0, pairs.length_slope(df.drop_nulls()))
    fixed = df.select(pl.col("score") - slope * (pl.col("log_chars") - pl.col("log_chars").mean().over("prompt_id")))
    return [[{"score": v}] if v is not None else [] for v in fixed["score"]]


def measure(model: Path, p: P.Params, groups: pl.DataFrame, sim: pl.DataFrame | None, t0: float) -> dict:
    """Every judge of one model on the held-out pairs (and the simulated iteration), with the functions
    evaluate_m0 uses: the same pairs, in the same order, for every judge and the longer-wins baseline."""
    be = make_backend(p.backend, model)
    keys = ("pairwise_accuracy", "pairwise_ties", "spearman", "kendall_tau")
    res: dict = {}
    texts = [be.chat(judge_messages(q, r)) for q, r in zip(groups["instruction"], groups["response"])]
    compare = p.judge.model_copy(update={"mode": "compare"})  # the round robin, as evaluate runs judge.mode compare
    for mode, grades in (
        ("pointwise", scoring.judge_logprob(be, texts, p.judge, "pointwise")),
        ("compare", human.grade(be, groups, p.model_copy(update={"judge": compare}), 0, "compare")),
    ):
        for name, g in ((mode, grades), (f"{mode}_residual", residualised(groups, grades))):
            m = pointwise_metrics(groups, g)
            res[name] = {k: m[k] for k in keys} | {"slices": m["length_slices"]}
    log(t0, "  pointwise and compare measured")
    ab = human.ab_test(be, groups, rows.derive_seed(p.seed, "ab"), p.evaluate.compare_batch_size, "A/B")
    longer = [
        lg
        for _, lg in agreement.pair_outcomes(
            [
                [(rank, None, n) for rank, n in zip(g["rank"], g["response"].str.len_chars())]
                for _, g in groups.group_by("group", maintain_order=True)
            ]
        )
    ]
    res["ab"] = {k: ab[k] for k in ("ab_accuracy", "ab_first_rate", "ab_consistency")}
    res["ab"]["slices"] = agreement.sliced(ab["outcomes"], longer)
    res["longer_wins"] = agreement.sliced(ab["longer_wins_outcomes"], longer)
    log(t0, "  A/B measured")
    if sim is not None:
        res["sim"] = {}
        texts = [be.chat(judge_messages(q, r)) for q, r in zip(sim["prompt"], sim["response"])]
        lp = scoring.judge_logprob(be, texts, p.judge, "sim logprob")
        order = list(mode_for("compare").comparisons(sim).values())
        text, prompt = dict(zip(sim["id"], sim["response"])), dict(zip(sim["id"], sim["prompt"]))
        probs = headtohead.prefer_first(
            be,
            [prompt[a] for a, _ in order],
            [text[a] for a, _ in order],
            [text[b] for _, b in order],
            p.evaluate.compare_batch_size,
            "sim compare",
        )
        p_first = dict(zip(order, probs))
        cmp = {}
        for _, g in sim.group_by("prompt_id", maintain_order=True):
            cmp |= scoring.compare_grades(g["id"].to_list(), p_first)
        for mode, grades in (("logprob", dict(zip(sim["id"], lp))), ("compare", cmp)):
            j = judgments_frame(sim, grades, mode)
            score = {i: gs[0]["score"] for i, gs in grades.items() if gs and gs[0]["score"] is not None}
            res["sim"][mode] = {
                "spearman_length": within_prompt_spearman(sim, score),
                "rules": simulated_pairs(sim, j),
            }
        log(t0, "  simulated iteration judged")
    be.close()
    return res


def train(name: str, params: Path, work: Path, base: Path) -> dict:
    from stages import sft

    out = work / name / "M0"
    t = time.time()
    sft.main(
        [
            "--base",
            str(base),
            "--ift",
            str(work / "ift.parquet"),
            "--eft",
            str(work / "eft.parquet"),
            "--out",
            str(out),
            "--metrics",
            str(work / name / "sft.json"),
            "--params",
            str(params),
        ]
    )
    m = json.loads((work / name / "sft.json").read_text())
    keep = ("examples", "ift", "eft", "compare", "compare_shorter_better", "contrastive", "contrastive_kinds")
    return {k: m.get(k) for k in (*keep, "steps", "loss_first", "loss_last")} | {"train_s": round(time.time() - t, 1)}


JUDGES = {  # table row -> (results key, what it is)
    "pointwise": ("pointwise", "logprob score of each answer alone"),
    "pointwise - length trend": ("pointwise_residual", "the same less its within-prompt trend on log length"),
    "A/B": ("ab", "each human pair in both orders"),
    "compare": ("compare", "judge.mode compare: round robin, both orders"),
    "compare - length trend": ("compare_residual", "the same less its within-prompt trend on log length"),
    "longer wins": ("longer_wins", "no model: the longer answer is better"),
}


def table(results: list[dict]) -> str:
    """Markdown: held-out accuracy per variant and judge with 95% intervals; then the simulated iteration."""
    lines = [
        "| variant | judge | all pairs | shorter preferred | longer preferred | answer-1 rate |",
        "|---|---|---|---|---|---|",
    ]
    sim = [
        "| variant | judge | score-length Spearman, within prompt | " + " | ".join(RULES) + " |",
        "|---|---|---|" + "---|" * len(RULES),
    ]
    for r in results:
        if "measured" not in r:
            lines.append(f"| {r['variant']} | {r.get('error') or r.get('skipped')} | | | | |")
            continue
        m = r["measured"]
        for judge, (key, _) in JUDGES.items():
            sl = m[key] if key == "longer_wins" else m[key]["slices"]
            first = f"{m['ab']['ab_first_rate']:.2f}" if key == "ab" else "-"
            lines.append(
                f"| {r['variant']} | {judge} | {acc(sl['all'])} | {acc(sl['shorter_preferred'])} | "
                f"{acc(sl['longer_preferred'])} | {first} |"
            )
        for mode, s in m.get("sim", {}).items():
            cells = [
                f"{x['pairs_share']:.2f} / {x['chosen_longer_rate']} / {x['chosen_truncated'] + x['chosen_loops']}"
                for x in s["rules"].values()
            ]
            sim.append(f"| {r['variant']} | {mode} | {s['spearman_length']['within']} | " + " | ".join(cells) + " |")
    return (
        "\n".join(lines)
        + "\n\nSimulated iteration (base-model answers judged by each M0); per pair rule: share of prompts with a "
        "pair / chosen-longer rate / chosen answers cut at the cap or looping:\n\n" + "\n".join(sim) + "\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = ROOT / "shared" / "data"  # where the device copy of a checkout keeps carried data
    default_data = here if here.is_dir() else ROOT.parent / "shared" / "data"
    ap.add_argument(
        "--data",
        type=Path,
        default=default_data,
        help="../shared/data, or the tar.xz of `python -m benchmarks.device pack-data` (unpacked into WORK)",
    )
    ap.add_argument("--work", type=Path, required=True, help="scratch: base model, seed sets, one folder per variant")
    ap.add_argument("--out", type=Path, required=True, help="results: judge_grid.jsonl, judge_grid.md")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, in order; of {list(VARIANTS)}")
    ap.add_argument("--base", type=Path, help="a base model folder (default: stages.base into WORK/base)")
    ap.add_argument("--sim-prompts", type=int, default=128, help="prompts of the simulated iteration (0 = none)")
    ap.add_argument("--sim-tokens", type=int, default=256, help="max new tokens of its answers")
    ap.add_argument("--budget-s", type=float, default=480, help="start no variant that would end after this")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a params override for every variant, applied after the variant's (e.g. sft.epochs=0.5); repeatable",
    )
    ap.add_argument("--smoke", action="store_true", help="toy sizes, to check the whole script on a CPU")
    args = ap.parse_args()
    t0 = time.time()
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    work, out = args.work.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.data.is_file():  # the device runner's data pack: members data/<folder>/<file>
        with tarfile.open(args.data) as tar:
            tar.extractall(work / "shared", filter="data")
        args.data = work / "shared" / "data"
    last = ([SMOKE] if args.smoke else []) + [dotted(a) for a in args.set]  # --set wins
    limit = SMOKE_ROWS if args.smoke else None
    shared = write_params(work / "params.yaml", args.data.resolve(), [COMMON, *last], limit)
    p = P.load(shared)

    from stages import base as base_stage
    from stages import seed

    base = args.base
    if base is None:
        base = work / "base"
        if not (base / "config.json").is_file():
            base_stage.main(["--out", str(base), "--params", str(shared)])
    seed.main(["--ift", str(work / "ift.parquet"), "--eft", str(work / "eft.parquet"), "--params", str(shared)])
    groups = human.load_groups(p.evaluate)
    if groups is None:
        sys.exit(f"no held-out pairs at {p.evaluate.human.path}")
    log(t0, f"base model, seed sets and {groups['group'].n_unique()} held-out prompts ready")

    sim = None
    if args.sim_prompts:
        pool = rows.read(work / "ift.parquet", "ift")["instruction"].to_list()
        chosen = random.Random(p.seed).sample(pool, min(args.sim_prompts, len(pool)))
        sim = make_sim_responses(base, p, chosen, 16 if args.smoke else args.sim_tokens)
        log(
            t0,
            f"simulated iteration: {len(sim)} base-model answers to {len(chosen)} prompts, "
            f"{int(sim['truncated'].sum())} cut at the cap, {int(sim['loops'].sum())} looping",
        )

    results, slowest = [], 0.0
    jsonl = out / "judge_grid.jsonl"
    for name in names:
        what, over = VARIANTS[name]
        started = time.time()
        rec: dict = {"variant": name, "what": what, "overrides": over}
        if results and started - t0 + slowest > args.budget_s:
            rec["skipped"] = f"skipped: {slowest:.0f}s would pass the {args.budget_s:.0f}s budget"
            log(t0, f"{name}: {rec['skipped']}")
        else:
            log(t0, f"{name}: {what}")
            try:
                vp = write_params(work / name / "params.yaml", args.data.resolve(), [COMMON, over or {}, *last], limit)
                model = base
                if over is not None:
                    rec["sft"] = train(name, vp, work, base)
                    model = work / name / "M0"
                    log(t0, f"  trained: {rec['sft']}")
                rec["measured"] = measure(model, P.load(vp), groups, sim, t0)
            except (Exception, SystemExit) as e:  # one variant failing must not lose the others
                rec["error"] = f"{type(e).__name__}: {e}"
                traceback.print_exc()
            finally:
                gc.collect()
                try:
                    import torch

                    torch.cuda.empty_cache()
                except Exception:
                    pass
            rec["seconds"] = round(time.time() - started, 1)
            slowest = max(slowest, rec["seconds"])
        results.append(rec)
        with jsonl.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        (out / "judge_grid.md").write_text(table(results))
        m = rec.get("measured")
        if m:
            log(
                t0,
                f"{name}: pointwise {acc(m['pointwise']['slices']['all'])}, shorter-preferred "
                f"{acc(m['pointwise']['slices']['shorter_preferred'])} | A/B {acc(m['ab']['slices']['all'])}, "
                f"shorter {acc(m['ab']['slices']['shorter_preferred'])}, answer-1 {m['ab']['ab_first_rate']} | "
                f"compare {acc(m['compare']['slices']['all'])}, shorter "
                f"{acc(m['compare']['slices']['shorter_preferred'])} ({rec['seconds']}s)",
            )
    log(t0, f"done: {jsonl}, {out / 'judge_grid.md'}")
    print(table(results))


if __name__ == "__main__":
    main()
