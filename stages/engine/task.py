"""What the engine is asked for each work item, and asking it in one pass (without shards: evaluate's judge).

A work item is (id, chat messages). `Task` says what to generate for it; `run` renders every item with the
chat template, asks the backend once for all of them and returns each item's generations in sample order,
as stages/engine/shards.py's resumable Work returns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from stages.core import params as P

if TYPE_CHECKING:  # no backend import at run time; the judge modes are data to the engine, not a dependency
    from stages.engine.backend import Backend
    from stages.judging.modes import Mode


@dataclass(frozen=True)
class Task:
    """What to ask the engine for each item: `n` sampled completions, or (n = 0) the next-token
    probabilities of `candidates` after the rendered prompt plus `prefill`."""

    sampling: P.Sampling
    n: int = 1
    candidates: tuple[str, ...] = ()
    prefill: str = ""


def judge_task(mode: Mode, cfg: P.Judge) -> Task:
    """What judge mode `mode` asks for each of its items: the probabilities of its candidates after its prefill,
    or (a mode with none) `judge.k` sampled grades."""
    return Task(cfg, n=0 if mode.candidates else cfg.k, candidates=mode.candidates, prefill=mode.prefill)


def run(
    backend: Backend, task: Task, items: list[tuple[str, list[dict]]], seed: int, desc: str
) -> dict[str, list[dict]]:
    """{item id: [{"text", "n_tokens", "truncated", "probs"} per sample]}, the items in the order given."""
    texts = [backend.chat(messages, task.prefill) for _, messages in items]
    if task.n == 0:
        probs = backend.next_token_probs(texts, list(task.candidates), task.sampling.batch_size, desc)
        return {i: [{"text": "", "n_tokens": 0, "truncated": False, "probs": p}] for (i, _), p in zip(items, probs)}
    outs = backend.generate(texts, n=task.n, sampling=task.sampling, seed=seed, desc=desc)
    return {
        i: [{"text": c.text, "n_tokens": c.n_tokens, "truncated": c.truncated, "probs": []} for c in o]
        for (i, _), o in zip(items, outs)
    }
