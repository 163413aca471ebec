"""The one small interface every stage generates and scores through (implemented by hf.py and vllm.py).

backend = make_backend(params.backend, "models/M0")
texts = [backend.chat(messages) for messages in conversations]
outs = backend.generate(texts, n=4, sampling=params.responses, seed=7)   # [[Completion]*4 per text]
probs = backend.next_token_probs(texts, ["0", "1", "2"], batch_size=16)  # [[p0, p1, p2] per text]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from stages.core.params import Sampling


def prompt_budget(context: int, room: int) -> int:
    """Tokens of a prompt that fit a `context`-token window with `room` tokens left for the answer (at
    least 8). Both engines cut a longer prompt to its last this-many tokens (the end holds the question
    and the instruction) and count it in `truncated_prompts`."""
    return max(context - room, 8)


@dataclass(frozen=True)
class Completion:
    text: str
    n_tokens: int
    truncated: bool = False  # stopped at max_new_tokens, not at the end-of-turn token (finish reason "length")


class Backend(Protocol):
    model_name: str  # recorded in every row this backend produces
    truncated_prompts: int  # prompts cut from the left to fit the context so far (both backends count them)

    def chat(self, messages: list[dict], prefill: str = "") -> str:
        """Render a conversation with the model's chat template, opening the assistant turn."""

    def generate(
        self, texts: list[str], n: int, sampling: Sampling, seed: int, desc: str = "generate"
    ) -> list[list[Completion]]:
        """`n` sampled completions per rendered prompt; same inputs and seed give the same outputs."""

    def next_token_probs(
        self, texts: list[str], candidates: list[str], batch_size: int, desc: str = "score"
    ) -> list[list[float]]:
        """P(next token = candidate) renormalised over `candidates`, one forward pass per text."""

    def close(self) -> None: ...
