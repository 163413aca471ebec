"""evaluate's held-out answers and head-to-head (docs/judge.md): M(t) answers each held-out prompt
(`evaluate.prompts`) once, and the fixed judge `evaluate.judge` compares those answers with another model's
(M(t-1)'s, M0's) in both orders: win/tie/loss and mean answer length.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from stages.core import params as P
from stages.core import rows
from stages.engine.backend import Backend, make_backend
from stages.judging.prompting import COMPARE_CHOICES, COMPARE_PREFILL, compare_messages
from stages.judging.sources import SourceError, load_source
from stages.judging.text import loops
from stages.measure import agreement


def prefer_first(
    backend: Backend, instruction: list[str], first: list[str], second: list[str], batch_size: int, desc: str
) -> list[float]:
    """P(answer 1 is better) per comparison, from one forward pass each (the comparative judge)."""
    texts = [
        backend.chat(compare_messages(q, a, b), prefill=COMPARE_PREFILL) for q, a, b in zip(instruction, first, second)
    ]
    return [p[0] for p in backend.next_token_probs(texts, list(COMPARE_CHOICES), batch_size, desc)]


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


def heldout_summary(heldout: pl.DataFrame) -> dict:
    """eval.json's `heldout` block: how many held-out answers, their mean characters and tokens."""
    return {
        "prompts": len(heldout),
        "chars_mean": round(float(heldout["response"].str.len_chars().mean()), 1) if len(heldout) else None,
        "tokens_mean": round(float(heldout["n_tokens"].mean()), 1) if len(heldout) else None,
    }


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


def measure(p: P.Params, heldout: pl.DataFrame, versus: dict[str, Path], model: Path, desc: str) -> dict:
    """eval.json's `head2head` block: M(t)'s held-out answers against each of `versus` (name: that model's
    held-out answers), judged by `evaluate.judge`, loaded here once for all; {} with nothing to compare."""
    cfg, out = p.evaluate, {}
    if not versus or not len(heldout):
        return out
    if Path(cfg.judge).resolve() == model.resolve():
        print(f"{desc}: warning: the head-to-head judge {cfg.judge} is the model under test")
    judge = make_backend(p.backend, cfg.judge)
    for name, path in versus.items():
        out[name] = head2head(judge, heldout, rows.read(path, "responses"), cfg.compare_batch_size, f"{desc} {name}")
    judge.close()
    out["judge"] = judge.model_name
    return out
