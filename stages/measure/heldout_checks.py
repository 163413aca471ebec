"""The held-out constraint set of evaluate: held-out prompts (Vicuna-80, oasst1 validation; never the loop's own
prompts) with library constraints attached (stages/judging/checks.py), the same for every model, answered
greedily and checked by code. Beside IFEval it asks whether the checks reward generalises to requests and
constraint wordings of our own library that the loop never trained on.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING

from stages.core import params as P
from stages.judging import checks
from stages.judging.sources import SourceError, load_source
from stages.measure.stats import ci95

if TYPE_CHECKING:  # the answers come from a backend evaluate hands in: no engine import here
    from stages.engine.backend import Backend

COLUMNS = ("turns", "instruction", "prompt", "question")


def load(cfg: P.HeldoutChecks, seed: int) -> list[tuple[str, tuple[checks.Constraint, ...]]] | None:
    """[(prompt with its constraints, the constraints)] over the sources' distinct prompts, the first
    `max_prompts`; None when every (optional) source is absent. One seeded draw: every model gets the same set."""
    texts: list[str] = []
    found = False
    for src in cfg.sources:
        df = load_source(src)
        if df is None:
            continue
        found = True
        col = next((c for c in COLUMNS if c in df.columns), None)
        if col is None:
            raise SourceError(
                f"error: {src.path}: needs a turns, instruction, prompt or question column; has {df.columns}"
            )
        texts += (df[col].list.first() if col == "turns" else df[col]).drop_nulls().to_list()
    if not found:
        return None
    texts = [t for t in dict.fromkeys(t.strip() for t in texts) if t][: cfg.max_prompts or None]
    rng = random.Random(seed)
    return [checks.attach(t, rng, list(checks.KINDS), cfg.per_prompt) for t in texts]


def answer(
    backend: Backend,
    items: list[tuple[str, tuple[checks.Constraint, ...]]],
    cfg: P.HeldoutChecks,
    seed: int,
    desc: str,
) -> dict:
    """The model's answer to each prompt (greedy, so every model answers the same set the same way twice), checked."""
    texts = [backend.chat([{"role": "user", "content": t}]) for t, _ in items]
    outs = backend.generate(texts, n=1, sampling=cfg.generation, seed=seed, desc=desc)
    return metrics(items, [o[0].text for o in outs])


def metrics(items: list[tuple[str, tuple[checks.Constraint, ...]]], answers: list[str]) -> dict:
    """Pass rates with 95% intervals: prompts whose every constraint is met, constraints met, and per kind."""
    prompt_pass, met, total = 0, 0, 0
    kind_n: Counter = Counter()
    kind_met: Counter = Counter()
    per_prompt = []
    for (_, cons), answer in zip(items, answers):
        v = checks.verdicts(answer, cons)
        per_prompt.append(all(v))
        prompt_pass += all(v)
        met += sum(v)
        total += len(v)
        for c, ok in zip(cons, v):
            kind_n[c.id] += 1
            kind_met[c.id] += ok
    n = len(items)
    return {
        "prompt_level": {"acc": round(prompt_pass / n, 4) if n else None, "n": n, "ci95": ci95(prompt_pass, n)},
        "constraint_level": {"acc": round(met / total, 4) if total else None, "n": total, "ci95": ci95(met, total)},
        "by_kind": {k: {"met": kind_met[k], "n": kind_n[k]} for k in sorted(kind_n)},
        "passed": per_prompt,  # per prompt, in order: for paired differences between models
    }
