"""meta_judge@t: M(t-1) judges its own judgments (Meta-Rewarding, Wu et al. 2024; docs/recipes.md).

    python -m stages.meta_judge --iteration 1 --model models/M0 --responses data/iter1/responses.parquet \
        --judgments data/iter1/judgments.parquet --preferences data/iter1/preferences.parquet \
        --out data/iter1/meta_judgments.parquet --metrics metrics/iter1/meta_judge.json

With `meta_judge.enabled` false it writes an empty dataset and loads no model. Otherwise:
1. Judgment texts: judge.mode sample keeps judge@t's K grades with their raw texts; logprob and compare modes
   keep no text, so this stage samples K judgments per answer itself (the judge prompt and judge.temperature,
   top_p, max_new_tokens, k), one more generation pass over the iteration's answers.
2. Per prompt, the answer whose parsed judgments disagree most (largest score variance; two distinct texts with
   different scores at least): the answers the judge is least sure of, as the paper picks them.
3. M(t-1) compares each two distinct judgments of that answer in both orders (the meta-judge prompt shows the
   judge's own prompt, rubric included, then the two judgments; P("1") vs P("2") after "Better judgment: ", one
   forward pass each). A judgment's meta score is 5 x its mean probability of being the better one: with every
   two compared both ways it orders the judgments as the paper's Elo rating does, and position bias cancels.
4. The best and the worst judgment become a pair (prompt = the judge prompt) when their meta scores differ by
   more than meta_judge.min_margin; the pairs with the largest margins are kept up to meta_judge.max_share of the
   DPO data (answer pairs from pairs@t plus these).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import polars as pl

from stages.core import lineage, rows
from stages.core import params as P
from stages.core.errors import entry
from stages.engine.backend import PARAMS as BACKEND
from stages.engine.shards import Task, Work
from stages.engine.task import judge_task
from stages.judging.modes import mode_for
from stages.judging.prompting import COMPARE_CHOICES, META_PREFILL, judge_messages, meta_judge_messages
from stages.judging.scoring import check_judged, compare_grades, ordered_pairs, parse_score

# the params this stage reads: dvc.yaml's params list and the lineage record (python -m stages.commands.dag write)
PARAMS = (
    "seed",
    "replicate",
    *BACKEND,
    "judge",
    "meta_judge",
    "shards.size",
)

# judgment texts with their scores, whichever step made them: (id, response_id, raw, score)
TEXTS = {"id": pl.String, "response_id": pl.String, "raw": pl.String, "score": pl.Float64}


def cap(answer_pairs: int, share: float) -> int:
    """Most judge pairs that keep their share of answer_pairs + judge pairs at or below `share`."""
    return math.floor(share * answer_pairs / (1 - share) + 1e-9)


def sampled_texts(responses: pl.DataFrame, gens: dict[str, list[dict]], model: str) -> pl.DataFrame:
    """The K judgments this stage sampled per answer (outside judge.mode sample), parsed as judge@t parses."""
    recs = [
        {"id": rows.content_id(rid, k, model, "meta_judge"), "response_id": rid, "raw": g["text"], "score": None}
        for rid in responses["id"]
        for k, g in enumerate(gens[rid])
    ]
    for r in recs:
        r["score"] = parse_score(r["raw"])
    return pl.DataFrame(recs, schema=TEXTS)


def candidates(responses: pl.DataFrame, texts: pl.DataFrame) -> pl.DataFrame:
    """Per prompt the answer whose parsed judgments vary most (population variance; ties to the smaller id) among
    answers with two distinct judgment texts giving different scores, and its distinct judgments (one row per
    text, stripped, the smallest id): response_id, prompt_id, prompt, response, id, text, score."""
    j = (
        texts.filter(pl.col("score").is_not_null())
        .with_columns(text=pl.col("raw").str.strip_chars())
        .filter(pl.col("text") != "")
        .sort("id")
        .unique(["response_id", "text"], keep="first", maintain_order=True)
    )
    spread = j.group_by("response_id").agg(
        var=pl.col("score").var(ddof=0), levels=pl.col("score").n_unique(), n=pl.len()
    )
    answers = responses.select(pl.col("id").alias("response_id"), "prompt_id", "prompt", "response").join(
        spread.filter(pl.col("levels") >= 2), on="response_id"
    )
    picked = answers.sort(["prompt_id", "var", "response_id"], descending=[False, True, False]).unique(
        "prompt_id", keep="first"
    )
    return (
        picked.select("response_id", "prompt_id", "prompt", "response")
        .join(j.select("response_id", "id", "text", "score"), on="response_id")
        .sort("response_id", "id")
    )


def comparisons(cands: pl.DataFrame) -> dict[str, tuple[str, str]]:
    """{item id: (judgment shown first, judgment shown second)}: each two judgments of an answer, both orders."""
    return {
        rows.content_id(a, b): (a, b)
        for _, g in cands.group_by("response_id", maintain_order=True)
        for a, b in ordered_pairs(g["id"].to_list())
    }


def judge_pairs(
    cands: pl.DataFrame,
    p_first: dict[tuple[str, str], float],
    answer_pairs: int,
    cfg: P.MetaJudge,
    iteration: int,
    model: str,
    seed: int,
) -> tuple[pl.DataFrame, dict]:
    """The judge-preference pairs (meta_judgments rows), capped at cfg.max_share of the DPO data, and the counts:
    candidates (answers meta-judged), below_margin, formed, cap, pairs (kept)."""
    records = []
    below = 0
    for (rid,), g in cands.group_by("response_id", maintain_order=True):
        by_id = {r["id"]: r for r in g.iter_rows(named=True)}
        meta = {i: gr[0]["score"] for i, gr in compare_grades(list(by_id), p_first).items()}
        order = sorted(by_id, key=lambda i: (-meta[i], i))
        best, worst = by_id[order[0]], by_id[order[-1]]
        if meta[best["id"]] - meta[worst["id"]] <= cfg.min_margin:
            below += 1
            continue
        records.append(
            {
                "id": rows.content_id(rid, best["id"], worst["id"]),
                "response_id": rid,
                "prompt_id": best["prompt_id"],
                "prompt": judge_messages(best["prompt"], best["response"]),
                "chosen": [{"role": "assistant", "content": best["text"]}],
                "rejected": [{"role": "assistant", "content": worst["text"]}],
                "chosen_id": best["id"],
                "rejected_id": worst["id"],
                "score_chosen": meta[best["id"]],
                "score_rejected": meta[worst["id"]],
                "graded_chosen": best["score"],
                "graded_rejected": worst["score"],
                "judgments": len(by_id),
                "iteration": iteration,
                "model": model,
                "seed": seed,
            }
        )
    most = cap(answer_pairs, cfg.max_share)
    kept = sorted(records, key=lambda r: (r["score_rejected"] - r["score_chosen"], r["id"]))[:most]
    counts = {
        "candidates": cands["response_id"].n_unique(),
        "below_margin": below,
        "formed": len(records),
        "cap": most,
        "pairs": len(kept),
    }
    return rows.frame(sorted(kept, key=lambda r: r["id"]), "meta_judgments"), counts


def meta_metrics(pairs: pl.DataFrame, counts: dict, p_first: dict[tuple[str, str], float], answer_pairs: int) -> dict:
    """How the meta-judge decided (position agreement, answer-1 rate) and what the kept pairs teach: how often the
    better judgment is the more generous one (score inflation) and the longer one."""
    both = [(p, p_first[(b, a)]) for (a, b), p in p_first.items() if a < b]
    n = len(pairs)
    generous = (pairs["graded_chosen"] > pairs["graded_rejected"]).mean() if n else None
    longer = (
        pairs["chosen"].list.first().struct.field("content").str.len_chars()
        > pairs["rejected"].list.first().struct.field("content").str.len_chars()
    ).mean()
    return {
        **counts,
        "comparisons": len(p_first),
        # one judgment wins in both orders (P("1") > 0.5 shown first and < 0.5 shown second)
        "position_agreement": round(sum((x > 0.5) == (y < 0.5) for x, y in both) / len(both), 4) if both else None,
        "first_rate": round(sum(p > 0.5 for p in p_first.values()) / len(p_first), 4) if p_first else None,
        "answer_pairs": answer_pairs,
        "share": round(n / (n + answer_pairs), 4) if n + answer_pairs else 0.0,
        "margin_mean": round(float((pairs["score_chosen"] - pairs["score_rejected"]).mean()), 4) if n else None,
        "generous_rate": round(float(generous), 4) if n else None,
        "chosen_longer_rate": round(float(longer), 4) if n else None,
    }


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iteration", type=int, required=True)
    ap.add_argument("--model", type=Path, required=True, help="M(t-1) folder: judge and meta-judge")
    ap.add_argument("--responses", type=Path, required=True)
    ap.add_argument("--judgments", type=Path, required=True)
    ap.add_argument("--preferences", type=Path, required=True, help="pairs@t's answer pairs (the share's base)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--workers", type=int, help="processes sharing the shards (default: shards.workers)")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    rows.all_or_none(args.out, lineage.path_for(args.out), args.metrics)
    cfg, stage = p.meta_judge, f"meta_judge@{args.iteration}"
    seed = p.loop_seed("meta_judge", args.iteration)

    def finish(df: pl.DataFrame, metrics: dict, inputs: dict) -> None:
        rows.write(df, args.out, "meta_judgments")
        lineage.write(
            args.out,
            "meta_judgments",
            stage=stage,
            inputs=inputs,
            params=p,
            sections=PARAMS,
            seed=seed,
        )
        if args.metrics:
            rows.write_json(metrics, args.metrics)

    if not cfg.enabled:
        finish(rows.empty("meta_judgments"), {"enabled": False}, {})
        print(f"{stage}: off (meta_judge.enabled is false): no judge pairs -> {args.out}")
        return
    responses, judgments = rows.read(args.responses, "responses"), rows.read(args.judgments, "judgments")
    answer_pairs = len(rows.read(args.preferences, "preferences"))
    check_judged(responses, judgments, args.responses, args.judgments)
    works = []
    if mode_for(p.judge.mode).texts:
        texts, source = judgments.select(*TEXTS), "judgments"
    else:  # logprob and compare modes keep no judgment text: sample K per answer, as sample mode would
        sample = mode_for("sample")
        work = Work(f"{stage}/judgments", sample.items(responses), judge_task(sample, p.judge), seed, args.model,
                    p.backend, p.shards, args.workers, source=str(args.responses))  # fmt: skip
        texts, source = sampled_texts(responses, work.run(), args.model.as_posix()), "sampled"
        works.append(work)
    cands = candidates(responses, texts)
    pairs = comparisons(cands)
    p_first: dict[tuple[str, str], float] = {}
    model = args.model.as_posix()
    if pairs:
        text = dict(zip(cands["id"], cands["text"]))
        answer = {r["id"]: r for r in cands.iter_rows(named=True)}
        items = [
            (i, meta_judge_messages(answer[a]["prompt"], answer[a]["response"], text[a], text[b]))
            for i, (a, b) in pairs.items()
        ]
        task = Task(p.judge.model_copy(update={"batch_size": cfg.batch_size}), n=0, candidates=COMPARE_CHOICES,
                    prefill=META_PREFILL)  # fmt: skip
        work = Work(stage, items, task, seed, args.model, p.backend, p.shards, args.workers, source=str(args.out))
        gens = work.run()
        p_first = {pair: gens[i][0]["probs"][0] for i, pair in pairs.items()}
        model = work.model_name
        works.append(work)
    df, counts = judge_pairs(cands, p_first, answer_pairs, cfg, args.iteration, model, seed)
    metrics = {
        "enabled": True,
        "source": source,
        "answers": len(responses),
        **meta_metrics(df, counts, p_first, answer_pairs),
        "prompts_cut_to_context": sum(w.truncated_prompts for w in works),
    }
    finish(
        df,
        metrics,
        {
            "model": args.model,
            "responses": args.responses,
            "judgments": args.judgments,
            "preferences": args.preferences,
        },
    )
    for w in works:
        w.close()
    print(
        f"{stage}: {counts['pairs']} judge pairs (cap {counts['cap']} at {cfg.max_share:.0%} of "
        f"{answer_pairs} answer pairs; formed {counts['formed']}, below margin {counts['below_margin']}) from "
        f"{counts['candidates']} answers, {len(p_first)} comparisons of {source} judgments; position agreement "
        f"{metrics['position_agreement']}, better judgment more generous {metrics['generous_rate']} -> {args.out}"
    )


if __name__ == "__main__":
    main()
