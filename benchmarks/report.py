"""The per-iteration tables of a run (README "GPU profile", BENCHMARKS.md), as markdown, from its metrics/
and timing records; benchmarks/device.py puts them in its summary, so the numbers are pasted, not typed.

    python -m benchmarks.report [--repo .] [--results DIR]

Row t reads: the model M(t) as measured by evaluate (IFEval, judge agreement with held-out human pairs:
whole set and both length slices, with 95% Wilson intervals, beside the longer-answer-wins baseline on the
same pairs), and iteration t's data, made by M(t-1) and trained into M(t) (answer length and truncation
share of responses@t, pairs@t and how often the chosen answer is the longer one, dpo@t's loss and reward
accuracy). Row 0 is M0 (evaluate_m0, sft). The wall-time table has one row per iteration. With --results
(benchmarks/device.py's folder): raw vLLM vs srlm, the start-up before/after and the DPO variant.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from benchmarks import timings
from stages.measure.metrics import DpoMetrics, EvalMetrics, PairsMetrics, fmt_acc, parse

IFEVAL = ("prompt_level_strict_acc", "prompt_level_loose_acc", "inst_level_strict_acc", "inst_level_loose_acc")
STAGES = ("prompts", "responses", "judge", "pairs", "validate", "dpo", "evaluate")


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _get(d, *keys):
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def acc(m) -> str:
    """These tables' way: 0.123 [0.10, 0.15], the rate to 3 places and its interval to 2; '-' when absent."""
    return fmt_acc(m, ci_digits=2)


def num(v, fmt: str = ".3f") -> str:
    return "-" if v is None else format(v, fmt)


def model_row(key: str, name: str, ev=None, resp=None, pairs=None, dpo=None) -> dict:
    ev = parse(ev or {}, EvalMetrics)
    pairs, dpo = parse(pairs or {}, PairsMetrics), parse(dpo or {}, DpoMetrics)
    ife = ev.ifeval
    return {
        "iteration": key,
        "model": name,
        **{k: getattr(ife, k) if ife else None for k in IFEVAL},
        "ifeval_cap_hit": ife.cap_hit.share if ife and ife.cap_hit else None,
        "judge_all": ev.length_slice("pointwise", "all"),
        "judge_shorter_preferred": ev.length_slice("pointwise", "shorter_preferred"),
        "judge_longer_preferred": ev.length_slice("pointwise", "longer_preferred"),
        "longer_wins_all": ev.length_slice("longer_wins", "all"),
        "answer_tokens_mean": _get(resp, "mean_tokens"),
        "truncated_share": _get(resp, "truncated_share"),
        "pairs": pairs.pairs,
        "prompts": pairs.prompts,
        "chosen_longer_rate": pairs.chosen_longer_rate,
        "dpo_loss_first": dpo.loss_first,
        "dpo_loss_last": dpo.loss_last,
        # on all of iteration t's pairs after training, with its 95% interval (stages/dpo.py)
        "dpo_reward_accuracy": dpo.reward,
        "dpo_loss_after": dpo.loss_pairs_after,
        "vs_prev": ev.vs_prev,
    }


def folder_row(key: str, name: str, met: Path) -> dict:
    return model_row(key, name, *(_json(met / f"{k}.json") for k in ("eval", "responses", "pairs", "dpo")))


def collect(repo: Path, results: Path | None = None) -> dict:
    met = repo / "metrics"
    iters = sorted(int(m.group(1)) for p in met.glob("iter*") if (m := re.fullmatch(r"iter(\d+)", p.name)))
    rows = []
    # the base model's evaluation, wherever its stage writes it (a path with "base" in it)
    base = next((p.parent for p in sorted(met.rglob("eval.json")) if "base" in p.relative_to(met).as_posix()), None)
    if base is not None:
        rows.append(folder_row("base", "base", base))
    rows += [folder_row(str(t), f"M{t}", met / f"iter{t}") for t in iters]
    recs = timings.load(repo / ".srlm" / "timings") if (repo / ".srlm" / "timings").is_dir() else []
    out = {
        "models": rows,
        "sft": _json(met / "sft.json"),
        "walls": {r["stage"]: r["wall_s"] for r in recs},
        "totals": timings.totals(recs),
        "iterations": iters,
    }
    if results is not None and results.is_dir():
        out["extras"] = extras(results, recs)
    return out


def extras(res: Path, recs: list[dict]) -> dict:
    out: dict = {}
    raw = res / "raw_vs_srlm.jsonl"
    if raw.exists():
        rows = [json.loads(x) for x in raw.read_text().splitlines() if x.strip()]
        out["raw_vs_srlm"] = next((r for r in rows if r.get("part") == "generate_summary"), None)
    extra = timings.load(res / "timings-extra") if (res / "timings-extra").is_dir() else []
    by = {r["stage"]: r for r in recs + extra}
    starts = [k for k in ("prompts@1", "responses@1", "responses@1.before", "responses@1.nocompile") if k in by]
    if any("." in k for k in starts):
        out["start_up"] = {k: by[k] for k in starts}
    for tag in ("lora", "full"):
        if (res / f"dpo_{tag}.json").exists():
            dpo = _json(res / f"dpo_{tag}.json")
            out["dpo_variant"] = {
                "tag": tag,
                "dpo": dpo,
                "eval": model_row("1", f"M1 ({tag})", ev=_json(res / f"eval_dpo_{tag}.json"), dpo=dpo),
            }
    return out


def markdown(data: dict) -> str:
    rows = data["models"]
    lines = [
        "| iter | model | IFEval prompt strict | prompt loose | instruction strict | instruction loose | IFEval cap hit | "
        "judge acc, all pairs | shorter preferred | longer preferred | longer-wins baseline | answer tokens (mean) | "
        "truncated | pairs / prompts | chosen longer | DPO loss first -> last (all pairs after) | DPO reward acc | "
        "vs M(t-1): W T L, win, answers changed |",
        "|---|---|---|---|---|---|---:|---|---|---|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        pairs = "-" if r["pairs"] is None else f"{r['pairs']} / {r['prompts']}"
        loss = "-" if r["dpo_loss_first"] is None else f"{r['dpo_loss_first']:.3f} -> {r['dpo_loss_last']:.3f}"
        if r["dpo_loss_after"] is not None:
            loss += f" ({r['dpo_loss_after']:.3f})"
        vs = r["vs_prev"]
        n = (vs.prompts if vs else None) or 0
        versus = (
            f"W{round(vs.win * n)} T{round(vs.tie * n)} L{round(vs.loss * n)}, "
            f"{acc(vs.win_rate)}, {vs.changed if 'changed' in vs.model_fields_set else '-'}/{n}"
            if n
            else "-"
        )
        lines.append(
            f"| {r['iteration']} | {r['model']} | "
            + " | ".join(acc(r[k]) for k in IFEVAL)
            + f" | {num(r['ifeval_cap_hit'], '.1%')} | {acc(r['judge_all'])} | {acc(r['judge_shorter_preferred'])} | "
            f"{acc(r['judge_longer_preferred'])} | {acc(r['longer_wins_all'])} | {num(r['answer_tokens_mean'], '.1f')} | "
            f"{num(r['truncated_share'], '.1%')} | {pairs} | {num(r['chosen_longer_rate'], '.2f')} | {loss} | "
            f"{acc(r['dpo_reward_accuracy'])} | {versus} |"
        )
    sft = data.get("sft") or {}
    if sft:
        lines.append(
            f"\nM0 = base + SFT: {sft.get('examples')} examples ({sft.get('ift')} IFT, {sft.get('eft')} EFT, "
            f"{sft.get('compare')} comparative), {sft.get('steps')} steps, loss {sft.get('loss_first')} -> "
            f"{sft.get('loss_last')}. Row t: M(t) measured by evaluate; answers, pairs and DPO of iteration t "
            "(made by M(t-1), trained into M(t))."
        )
    walls = data["walls"]
    if walls:
        lines += [
            "",
            "Wall time per stage (s, process start to exit; DVC's own work between stages not included):",
            "",
        ]
        lines += ["| iter | " + " | ".join(STAGES) + " | total |", "|---|" + "---:|" * (len(STAGES) + 1)]
        first = [s for s in ("base", "seed", "sft", "evaluate_m0") if s in walls]
        if first:
            lines.append(f"| 0 | {', '.join(f'{s} {walls[s]:.0f}' for s in first)} |" + " |" * len(STAGES))
        for t in data["iterations"]:
            if t == 0:
                continue
            cells = [walls.get(f"{s}@{t}") for s in STAGES]
            total = sum(c for c in cells if c is not None)
            lines.append(f"| {t} | " + " | ".join(num(c, ".0f") for c in cells) + f" | {total:.0f} |")
        lines.append(f"\nAll stages: {data['totals'].get('sum_wall_s')} s in stage processes.")
    ex = data.get("extras") or {}
    if ex.get("raw_vs_srlm"):
        r = ex["raw_vs_srlm"]
        lines.append(
            f"\nraw vLLM vs srlm (same engine, same {r.get('tp', 1)}-GPU settings, same prompts, median of rounds): "
            f"raw {r['raw_median']} tokens/s, srlm {r['srlm_median']} tokens/s, **srlm / raw = {r['ratio']}**."
        )
    if ex.get("start_up"):
        what = {
            "prompts@1": "the run's first vLLM stage (compiles, cold cache)",
            "responses@1": "the profile, compile cache warm (prompts@1 filled it)",
            "responses@1.before": "vLLM's defaults, no model link, cold cache (before)",
            "responses@1.nocompile": "no torch.compile, decode CUDA graphs only, cold",
        }
        lines += [
            "",
            "| stage | engine settings | wall s | imports | engine start | work | overhead |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for k, rec in ex["start_up"].items():
            ph = rec["phases_s"]
            work = sum(ph.get(w, 0) for w in timings.WORK)
            lines.append(
                f"| {k} | {what[k]} | {rec['wall_s']:.1f} | {ph.get('imports', 0):.1f} | {ph.get('engine', 0):.1f} | "
                f"{work:.1f} | {rec['overhead_share']:.0%} |"
            )
    if ex.get("dpo_variant"):
        v = ex["dpo_variant"]
        d, e = parse(v["dpo"] or {}, DpoMetrics), v["eval"]
        lines.append(
            f"\nDPO variant ({v['tag']}, iteration 1, same pairs): loss {d.loss_first} -> {d.loss_last}, "
            f"reward acc on its pairs {acc(d.reward)}; "
            "its M1: IFEval prompt strict "
            f"{acc(e['prompt_level_strict_acc'])}, judge acc {acc(e['judge_all'])} (shorter preferred "
            f"{acc(e['judge_shorter_preferred'])}, longer preferred {acc(e['judge_longer_preferred'])})."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", type=Path, default=Path("."))
    ap.add_argument("--results", type=Path, help="benchmarks/device.py's results folder (extras)")
    args = ap.parse_args(argv)
    print(markdown(collect(args.repo, args.results)), end="")


if __name__ == "__main__":
    main()
