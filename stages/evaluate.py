"""evaluate@t: how good is M(t) as a judge, and as an assistant (docs/judge.md defines every metric).

    python -m stages.evaluate --iteration 2 --model models/M2 --heldout data/iter2/heldout.parquet \
        --vs data/iter1/heldout.parquet --vs-m0 data/iter0/heldout.parquet --out metrics/iter2/eval.json

1. Agreement with held-out human rankings (`evaluate.human`, never used in training): every answer is
   graded with the rubric in `judge.mode` (Table-4 metrics), and every human pair is judged comparatively
   in a seeded shuffled A/B order and again swapped (position bias).
2. Held-out prompts (`evaluate.prompts`): M(t) answers each once -> --heldout (responses schema).
3. Head-to-head (with --vs / --vs-m0): the fixed judge `evaluate.judge` compares M(t)'s answers with
   the other model's in both orders: win/tie/loss and mean answer length.
4. IFEval (`evaluate.ifeval`): M(t) answers the IFEval prompts zero-shot with its chat template; code checks
   the instructions (stages/measure/ifeval.py): prompt- and instruction-level accuracy, strict and loose, with 95%
   intervals, per instruction type, and the shares of answers that hit the token cap or loop.
`--iteration base` measures the base model from outside the loop: IFEval only (it was never trained to judge).
Absent optional data (../shared/data on a user's box) and a missing IFEval checker are skipped with a note,
not an error; eval.json lists what was skipped.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import polars as pl

from stages.core import params as P
from stages.core import rows, timing
from stages.core.errors import entry
from stages.engine.backend import PARAMS as BACKEND
from stages.engine.backend import Backend, make_backend
from stages.engine.backend.interface import Completion
from stages.judging.prompting import COMPARE_CHOICES, COMPARE_PREFILL, compare_messages, judge_messages
from stages.judging.scoring import compare_grades, judge_logprob, judge_sample, ordered_pairs, score_summary
from stages.judging.sources import SourceError, load_source, need, ranked_groups
from stages.judging.text import loops
from stages.measure import agreement, heldout_checks, ifeval

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


def load_groups(cfg: P.Evaluate) -> pl.DataFrame | None:
    """Held-out human rankings as (group, instruction, response, rank) rows, at most `max_prompts` groups."""
    df = load_source(cfg.human)
    if df is None:
        return None
    df = ranked_groups(df, cfg.human, cfg.first_turn_only)
    df = df.filter(pl.col("rank").n_unique().over("group") >= 2)  # a lone answer has no human order
    keep = df["group"].unique(maintain_order=True).head(cfg.max_prompts or len(df))
    return df.filter(pl.col("group").is_in(keep.implode())).with_columns(
        pl.col("response").str.slice(0, cfg.max_response_chars)
    )


def load_prompts(cfg: P.Evaluate) -> list[str] | None:
    """Held-out prompts: a `turns` list (Vicuna-80, MT-Bench: first turn), or an instruction/prompt/question column."""
    df = load_source(cfg.prompts)
    if df is None:
        return None
    col = next((c for c in ("turns", "instruction", "prompt", "question") if c in df.columns), None)
    if col is None:
        raise SourceError(
            f"error: {cfg.prompts.path}: needs a turns, instruction, prompt or question column; has {df.columns}"
        )
    texts = df[col].list.first() if col == "turns" else df[col]
    return texts.drop_nulls().head(cfg.max_heldout_prompts or len(df)).to_list()


def load_ifeval(cfg: P.IFEval) -> list[dict] | None:
    """IFEval rows (key, prompt, instruction_id_list, kwargs), the source's first `max_prompts`; None when the
    optional source is absent. Polars gives every kwargs dict all the keys of the file, None where unused,
    which the checker drops (as with the Hub's parquet)."""
    df = load_source(cfg.source)
    if df is None:
        return None
    need(df, list(ifeval.REQUIRED_FIELDS), cfg.source)
    return df.head(cfg.max_prompts or len(df)).select(ifeval.REQUIRED_FIELDS).to_dicts()


def answer_ifeval(backend: Backend, prompts: list[dict], cfg: P.IFEval, seed: int, desc: str) -> list[Completion]:
    """One answer per IFEval prompt: the prompt as the only user turn, no system prompt, no examples."""
    texts = [backend.chat([{"role": "user", "content": r["prompt"]}]) for r in prompts]
    return [o[0] for o in backend.generate(texts, n=1, sampling=cfg.generation, seed=seed, desc=desc)]


def ifeval_metrics(prompts: list[dict], answers: list[Completion], cfg: P.IFEval) -> dict:
    """stages/measure/ifeval.py's scores with the cap hits (Completion.truncated) and loops (text.loops) of the answers."""
    texts = [a.text for a in answers]
    out = ifeval.score(prompts, texts, cap_hit=[a.truncated for a in answers], loops=[loops(t) for t in texts])
    out["max_new_tokens"] = cfg.generation.max_new_tokens
    out["tokens_mean"] = round(sum(a.n_tokens for a in answers) / len(answers), 1) if answers else None
    return out


def ifeval_rows(prompts: list[dict], answers: list[Completion], model: str, seed: int) -> pl.DataFrame:
    """The IFEval answers in the responses schema, for reading what the model wrote."""
    return rows.frame(
        [
            {
                "id": rows.content_id(rows.content_id(r["prompt"]), a.text, model),
                "prompt_id": rows.content_id(r["prompt"]),
                "prompt": r["prompt"],
                "response": a.text,
                "sample": 0,
                "n_tokens": a.n_tokens,
                "truncated": a.truncated,
                "loops": loops(a.text),
                "model": model,
                "seed": seed,
            }
            for r, a in zip(prompts, answers)
        ],
        "responses",
    )


def prefer_first(
    backend: Backend, instruction: list[str], first: list[str], second: list[str], batch_size: int, desc: str
) -> list[float]:
    """P(answer 1 is better) per comparison, from one forward pass each."""
    texts = [
        backend.chat(compare_messages(q, a, b), prefill=COMPARE_PREFILL) for q, a, b in zip(instruction, first, second)
    ]
    return [p[0] for p in backend.next_token_probs(texts, list(COMPARE_CHOICES), batch_size, desc)]


def round_robin(backend: Backend, groups: pl.DataFrame, batch_size: int, desc: str) -> list[list[dict]]:
    """judge.mode compare on the held-out answers: every pair of a prompt's answers in both orders; per answer
    (in row order) its grade from stages/judging/scoring.py: compare_grades."""
    rows_of = groups.with_row_index("row").group_by("group", maintain_order=True).agg("row")["row"]
    by_group = [[str(r) for r in g] for g in rows_of]
    pairs = [pair for g in by_group for pair in ordered_pairs(g)]
    text, q = groups["response"].to_list(), groups["instruction"].to_list()
    first, second = [text[int(a)] for a, _ in pairs], [text[int(b)] for _, b in pairs]
    probs = dict(zip(pairs, prefer_first(backend, [q[int(a)] for a, _ in pairs], first, second, batch_size, desc)))
    grades: dict[str, list[dict]] = {}
    for g in by_group:
        grades |= compare_grades(g, probs)
    return [grades[str(i)] for i in range(len(groups))]


def human_agreement(backend: Backend, groups: pl.DataFrame, p: P.Params, seed: int, desc: str) -> dict:
    if p.judge.mode == "compare":
        grades = round_robin(backend, groups, p.evaluate.compare_batch_size, desc)
    else:
        texts = [backend.chat(judge_messages(q, r)) for q, r in zip(groups["instruction"], groups["response"])]
        grades = (
            judge_logprob(backend, texts, p.judge, desc)
            if p.judge.mode == "logprob"
            else judge_sample(backend, texts, p.judge, seed, desc)
        )
    flat = pl.DataFrame(
        [{"row": i, "score": g["score"]} for i, gs in enumerate(grades) for g in gs],
        schema={"row": pl.Int64, "score": pl.Float64},
    )
    scores = [
        None if s is None else float(s) for s in flat.group_by("row").agg(pl.col("score").mean()).sort("row")["score"]
    ]
    scores5 = [all(g["score"] is not None and round(g["score"]) == 5 for g in gs) for gs in grades]
    scored = groups.with_columns(pl.Series("score", scores, dtype=pl.Float64))
    by_group = [list(zip(g["rank"], g["score"])) for _, g in scored.group_by("group", maintain_order=True)]
    with_length = [
        list(zip(g["rank"], g["score"], g["response"].str.len_chars()))
        for _, g in scored.group_by("group", maintain_order=True)
    ]
    summary = score_summary(flat)
    out = {
        **agreement.rank_agreement(by_group),
        "mode": p.judge.mode,
        "responses": len(groups),
        "parse_rate": summary["parse_rate"],
        "score_mean": summary["score_mean"],
        "score_std": summary["score_std"],
        "score_hist": summary["score_hist"],
        "all5_rate": round(sum(scores5) / len(scores5), 4) if scores5 else None,
    }
    ab = ab_test(backend, groups, seed, p.evaluate.compare_batch_size, f"{desc} A/B")
    pointwise = agreement.pair_outcomes(with_length)
    out["length_slices"] = {  # the same pairs in the same order for all three
        "pointwise": agreement.sliced([o for o, _ in pointwise], [lg for _, lg in pointwise]),
        "ab": agreement.sliced(ab.pop("outcomes"), [lg for _, lg in pointwise]),
        "longer_wins": agreement.sliced(ab.pop("longer_wins_outcomes"), [lg for _, lg in pointwise]),
    }
    return out | ab


def ab_test(backend: Backend, groups: pl.DataFrame, seed: int, batch_size: int, desc: str) -> dict:
    """The comparative judge on every human pair, shown in a seeded order and then swapped, beside the
    longer-answer-wins baseline on the same pairs."""
    pairs = [
        (q, a, b, len(a), len(b))
        for (_, g) in groups.group_by("group", maintain_order=True)
        for q, (ra, a), (rb, b) in _ordered_pairs(g)
    ]  # better answer first
    coin = random.Random(seed)
    chosen_first = [coin.random() < 0.5 for _ in pairs]
    shown = [(a, b) if cf else (b, a) for (_, a, b, *_), cf in zip(pairs, chosen_first)]
    qs = [q for q, *_ in pairs]
    both = prefer_first(
        backend,
        qs + qs,
        [s[0] for s in shown] + [s[1] for s in shown],
        [s[1] for s in shown] + [s[0] for s in shown],
        batch_size,
        desc,
    )
    lengths = [(la, lb) for *_, la, lb in pairs]
    return {
        **agreement.ab_agreement(chosen_first, both[: len(pairs)], both[len(pairs) :]),
        "longer_wins_accuracy": agreement.longer_wins_accuracy(lengths),
        "longer_wins_accuracy_ci95": agreement.longer_wins_ci95(lengths),
        # per pair, for the length slices (popped by human_agreement)
        "outcomes": agreement.ab_outcomes(chosen_first, both[: len(pairs)], both[len(pairs) :]),
        "longer_wins_outcomes": [agreement.longer_wins_accuracy([pair]) for pair in lengths],
    }


def _ordered_pairs(group: pl.DataFrame):
    answers = list(zip(group["rank"], group["response"]))
    q = group["instruction"][0]
    for i, a in enumerate(answers):
        for b in answers[i + 1 :]:
            if a[0] != b[0]:
                yield (q, *((a, b) if a[0] < b[0] else (b, a)))


def answer_heldout(backend: Backend, prompts: list[str], cfg: P.Evaluate, seed: int, iteration: int) -> pl.DataFrame:
    if not prompts:
        return rows.empty("responses")
    texts = [backend.chat([{"role": "user", "content": q}]) for q in prompts]
    outs = backend.generate(texts, n=1, sampling=cfg.generation, seed=seed, desc=f"evaluate@{iteration} answers")
    records = [
        {
            "id": rows.content_id(rows.content_id(q), o[0].text, backend.model_name),
            "prompt_id": rows.content_id(q),
            "prompt": q,
            "response": o[0].text,
            "sample": 0,
            "n_tokens": o[0].n_tokens,
            "truncated": o[0].truncated,
            "loops": loops(o[0].text),
            "model": backend.model_name,
            "seed": seed,
        }
        for q, o in zip(prompts, outs)
    ]
    return rows.frame(records, "responses")


def head2head(judge: Backend, mine: pl.DataFrame, theirs: pl.DataFrame, batch_size: int, desc: str) -> dict:
    both = mine.join(theirs, on="prompt_id", suffix="_y")
    q, x, y = both["prompt"].to_list(), both["response"].to_list(), both["response_y"].to_list()
    probs = prefer_first(judge, q + q, x + y, y + x, batch_size, desc)
    return {
        **agreement.head_to_head(probs[: len(q)], probs[len(q) :]),
        "changed": int((both["response"] != both["response_y"]).sum()),  # prompts whose answers differ at all
        "chars_mean": round(float(both["response"].str.len_chars().mean()), 1) if len(q) else None,
        "chars_mean_other": round(float(both["response_y"].str.len_chars().mean()), 1) if len(q) else None,
    }


def _iteration(value: str) -> int | str:
    if value == "base":
        return value
    if value.isdigit():
        return int(value)
    raise argparse.ArgumentTypeError(f"expected t >= 0 (0 = M0) or 'base', got {value!r}")


def _acc(m: dict | None) -> str:
    """An accuracy block of eval.json as 'acc [lo, hi]' (n)."""
    if not m or m.get("acc") is None:
        return "-"
    return f"{m['acc']:.3f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}] (n={m['n']})"


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
        groups, prompts = load_groups(cfg), load_prompts(cfg)
        if groups is None:
            skipped.append(f"human agreement ({cfg.human.path} not found)")
        if prompts is None:
            skipped.append(f"held-out answers and head-to-head ({cfg.prompts.path} not found)")
    why = ifeval.missing()
    if_prompts = None if why else load_ifeval(cfg.ifeval)
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
            None if groups is None else human_agreement(backend, groups, p, rows.derive_seed(p.seed, "ab"), desc)
        )
        heldout = answer_heldout(backend, prompts or [], cfg, seed, args.iteration)
    t_if = time.time()
    answers = answer_ifeval(backend, if_prompts, cfg.ifeval, seed, f"{desc} IFEval") if if_prompts else []
    if constrained:  # greedy, so every model answers the same held-out set the same way twice
        texts = [backend.chat([{"role": "user", "content": t}]) for t, _ in constrained]
        outs = backend.generate(texts, n=1, sampling=cfg.constraints.generation, seed=seed, desc=f"{desc} constraints")
        metrics["constraints"] = heldout_checks.metrics(constrained, [o[0].text for o in outs])
    else:
        metrics["constraints"] = None
    timing.mark("generate")
    if backend:
        backend.close()
        timing.mark("close")
    metrics["ifeval"] = ifeval_metrics(if_prompts, answers, cfg.ifeval) if if_prompts else None
    timing.mark("score")  # the IFEval checkers
    ifeval_seconds = time.time() - t_if  # printed, never in the metrics file
    if args.ifeval_answers:
        rows.write(ifeval_rows(if_prompts or [], answers, model_name, seed), args.ifeval_answers, "responses")
    if not base:
        rows.write(heldout, args.heldout, "responses")
        metrics["heldout"] = {
            "prompts": len(heldout),
            "chars_mean": round(float(heldout["response"].str.len_chars().mean()), 1) if len(heldout) else None,
            "tokens_mean": round(float(heldout["n_tokens"].mean()), 1) if len(heldout) else None,
        }
        versus = {k: v for k, v in (("vs_prev", args.vs), ("vs_m0", args.vs_m0)) if v is not None}
        metrics["head2head"] = {}
        if versus and len(heldout):
            if Path(cfg.judge).resolve() == args.model.resolve():
                print(f"{desc}: warning: the head-to-head judge {cfg.judge} is the model under test")
            judge = make_backend(p.backend, cfg.judge)
            for name, path in versus.items():
                metrics["head2head"][name] = head2head(
                    judge, heldout, rows.read(path, "responses"), cfg.compare_batch_size, f"{desc} {name}"
                )
            judge.close()
            metrics["head2head"]["judge"] = judge.model_name
    metrics["skipped"] = skipped
    rows.write_json(metrics, args.out)
    for what in skipped:
        print(f"{desc}: skipped {what}")
    ife = metrics["ifeval"]
    ife_line = (
        f"IFEval prompt-strict {_acc(ife['prompt_level_strict_acc'])}, cap hit {ife['cap_hit']['count']}, "
        f"loops {ife['loops']['count']} ({ifeval_seconds:.0f}s)"
        if ife
        else "IFEval skipped"
    )
    con = metrics["constraints"]
    ife_line += f", held-out constraints met {_acc(con['prompt_level'])}" if con else ""
    if base:
        print(f"{desc}: {ife_line} -> {args.out}")
        return
    h = metrics["human"] or {}
    shorter = ((h.get("length_slices") or {}).get("pointwise") or {}).get("shorter_preferred")
    print(
        f"{desc}: pairwise acc {h.get('pairwise_accuracy')} (A/B {h.get('ab_accuracy')}, answer-1 rate "
        f"{h.get('ab_first_rate')}; shorter-preferred pairs {_acc(shorter)}), parse rate {h.get('parse_rate')}, "
        f"head-to-head { ({k: v['win_minus_loss'] for k, v in metrics['head2head'].items() if k != 'judge'}) }, "
        f"{ife_line}, {time.time() - t0:.1f}s -> {args.out}"
    )


if __name__ == "__main__":
    main()
