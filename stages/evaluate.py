"""evaluate@t: how good is M(t) as a judge, and as an assistant (docs/judge.md defines every metric).

    python -m stages.evaluate --iteration 2 --model models/M2 --heldout data/iter2/heldout.parquet \
        --vs data/iter1/heldout.parquet --vs-m0 data/iter0/heldout.parquet --out metrics/iter2/eval.json

1. Agreement with held-out human rankings (`evaluate.human`, never used in training; stages/measure/human.py):
   every answer is graded with the rubric in `judge.mode` (Table-4 metrics), and every human pair is judged
   comparatively in a seeded shuffled A/B order and again swapped (position bias).
2. Held-out prompts (`evaluate.prompts`): M(t) answers each once -> --heldout (responses schema).
3. Head-to-head (with --vs / --vs-m0; stages/measure/headtohead.py): the fixed judge `evaluate.judge` compares
   M(t)'s answers with the other model's in both orders: win/tie/loss and mean answer length.
4. IFEval (`evaluate.ifeval`): M(t) answers the IFEval prompts zero-shot with its chat template; code checks
   the instructions (stages/measure/ifeval.py): prompt- and instruction-level accuracy, strict and loose, with 95%
   intervals, per instruction type, and the shares of answers that hit the token cap or loop.
5. Held-out constraints (`evaluate.constraints`; stages/measure/heldout_checks.py): held-out prompts with library
   constraints attached, answered greedily and checked by code.
`--iteration base` measures the base model from outside the loop: IFEval only (it was never trained to judge).
Absent optional data (../shared/data on a user's box) and a missing IFEval checker are skipped with a note,
not an error; eval.json lists what was skipped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stages.core import params as P
from stages.core import rows, timing
from stages.core.errors import entry
from stages.engine.backend import PARAMS as BACKEND
from stages.engine.backend import make_backend
from stages.measure import headtohead, heldout_checks, human, ifeval
from stages.measure.metrics import EvalMetrics, fmt_acc, parse

# the params this module reads, per stage it runs as (dvc.yaml's params lists: python -m stages.commands.dag write)
PARAMS = {
    "evaluate_base": (
        "seed",
        *BACKEND,
        "evaluate.ifeval",
        "evaluate.constraints",
    ),
    "evaluate_m0": (
        "seed",
        *BACKEND,
        "judge",
        "evaluate",
    ),
    "evaluate": (
        "seed",
        *BACKEND,
        "judge",
        "evaluate",
    ),
}


def _iteration(value: str) -> int | str:
    if value == "base":
        return value
    if value.isdigit():
        return int(value)
    raise argparse.ArgumentTypeError(f"expected t >= 0 (0 = M0) or 'base', got {value!r}")


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--iteration", type=_iteration, required=True, help="t of the model under test (0 = M0), or base (IFEval only)"
    )
    ap.add_argument("--model", type=Path, required=True, help="M(t), the model under test")
    ap.add_argument("--heldout", type=Path, help="where M(t)'s held-out answers go (parquet; not with base)")
    ap.add_argument("--vs", type=Path, help="M(t-1)'s held-out answers, for the head-to-head")
    ap.add_argument("--vs-m0", type=Path, help="M0's held-out answers, for the head-to-head")
    ap.add_argument("--ifeval-answers", type=Path, help="where the IFEval answers go (parquet, responses schema)")
    ap.add_argument("--out", type=Path, required=True, help="metrics JSON (metrics/iter<t>/eval.json)")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    base = args.iteration == "base"
    if base and (args.heldout or args.vs or args.vs_m0):
        ap.error("--iteration base runs IFEval only: no --heldout, --vs or --vs-m0")
    if not base and args.heldout is None:
        ap.error("--heldout is required (except with --iteration base)")
    p = P.load(args.params)
    rows.all_or_none(args.heldout, args.ifeval_answers, args.out)
    cfg, t0, desc = p.evaluate, time.time(), "evaluate_base" if base else f"evaluate@{args.iteration}"
    # one sampling seed for every model's answers (held-out, IFEval): two identical models give identical answers,
    # so answers that differ between M(t-1) and M(t) (head2head `changed`) differ because training changed the model
    seed = rows.derive_seed(p.seed, "evaluate")
    skipped = []  # what this run could not measure, and why: printed and kept in eval.json
    groups = prompts = None
    if not base:
        groups, prompts = human.load_groups(cfg), headtohead.load_prompts(cfg)
        if groups is None:
            skipped.append(f"human agreement ({cfg.human.path} not found)")
        if prompts is None:
            skipped.append(f"held-out answers and head-to-head ({cfg.prompts.path} not found)")
    why = ifeval.missing()
    if_prompts = None if why else ifeval.load(cfg.ifeval)
    if why is None and if_prompts is None:
        why = f"{cfg.ifeval.source.path} not found"
    if why:
        skipped.append(f"IFEval ({why})")
    constrained = heldout_checks.load(cfg.constraints, rows.derive_seed(p.seed, "heldout checks"))
    if constrained is None:
        skipped.append("held-out constraints (no source found)")

    # the base model with nothing to answer is not even loaded
    backend = make_backend(p.backend, args.model) if not base or if_prompts or constrained else None
    model_name = backend.model_name if backend else args.model.as_posix()
    metrics: dict = {"iteration": args.iteration, "model": model_name}
    if not base:
        # one seed for the A/B coin across iterations, so every model sees the same presentation
        metrics["human"] = (
            None if groups is None else human.human_agreement(backend, groups, p, rows.derive_seed(p.seed, "ab"), desc)
        )
        heldout = headtohead.answer_heldout(backend, prompts or [], cfg, seed, args.iteration)
    t_if = time.time()
    answers = ifeval.answer(backend, if_prompts, cfg.ifeval, seed, f"{desc} IFEval") if if_prompts else []
    metrics["constraints"] = (
        heldout_checks.answer(backend, constrained, cfg.constraints, seed, f"{desc} constraints")
        if constrained
        else None
    )
    timing.mark("generate")
    if backend:
        backend.close()
        timing.mark("close")
    metrics["ifeval"] = ifeval.metrics(if_prompts, answers, cfg.ifeval) if if_prompts else None
    timing.mark("score")  # the IFEval checkers
    ifeval_seconds = time.time() - t_if  # printed, never in the metrics file
    if args.ifeval_answers:
        rows.write(ifeval.answer_rows(if_prompts or [], answers, model_name, seed), args.ifeval_answers, "responses")
    if not base:
        rows.write(heldout, args.heldout, "responses")
        metrics["heldout"] = headtohead.heldout_summary(heldout)
        versus = {k: v for k, v in (("vs_prev", args.vs), ("vs_m0", args.vs_m0)) if v is not None}
        metrics["head2head"] = headtohead.measure(p, heldout, versus, args.model, desc)
    metrics["skipped"] = skipped
    rows.write_json(metrics, args.out)
    for what in skipped:
        print(f"{desc}: skipped {what}")
    ife = metrics["ifeval"]
    ife_line = (
        f"IFEval prompt-strict {fmt_acc(ife['prompt_level_strict_acc'], with_n=True)}, cap hit {ife['cap_hit']['count']}, "
        f"loops {ife['loops']['count']} ({ifeval_seconds:.0f}s)"
        if ife
        else "IFEval skipped"
    )
    con = metrics["constraints"]
    ife_line += f", held-out constraints met {fmt_acc(con['prompt_level'], with_n=True)}" if con else ""
    if base:
        print(f"{desc}: {ife_line} -> {args.out}")
        return
    h = metrics["human"] or {}
    shorter = parse(metrics, EvalMetrics).length_slice("pointwise", "shorter_preferred")
    print(
        f"{desc}: pairwise acc {h.get('pairwise_accuracy')} (A/B {h.get('ab_accuracy')}, answer-1 rate "
        f"{h.get('ab_first_rate')}; shorter-preferred pairs {fmt_acc(shorter, with_n=True)}), parse rate {h.get('parse_rate')}, "
        f"head-to-head { ({k: v['win_minus_loss'] for k, v in metrics['head2head'].items() if k != 'judge'}) }, "
        f"{ife_line}, {time.time() - t0:.1f}s -> {args.out}"
    )


if __name__ == "__main__":
    main()
