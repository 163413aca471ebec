"""The one small interface every stage generates and scores through.

    backend = make_backend(params.backend, "models/M0")
    texts = [backend.chat(messages) for messages in conversations]
    outs = backend.generate(texts, n=4, sampling=params.responses, seed=7)   # [[Completion]*4 per text]
    probs = backend.next_token_probs(texts, ["0", "1", "2"], batch_size=16)  # [[p0, p1, p2] per text]

Choosing an engine is the single branch in `make_backend`; heavy imports stay inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .params import Backend as BackendParams
from .params import Sampling


@dataclass(frozen=True)
class Completion:
    text: str
    n_tokens: int


class Backend(Protocol):
    model_name: str  # recorded in every row this backend produces
    truncated_prompts: int  # prompts cut (from the left) to fit the context so far; read with getattr(..., 0)

    def chat(self, messages: list[dict], prefill: str = "") -> str:
        """Render a conversation with the model's chat template, opening the assistant turn."""

    def generate(self, texts: list[str], n: int, sampling: Sampling, seed: int, desc: str = "generate") -> list[list[Completion]]:
        """`n` sampled completions per rendered prompt; same inputs and seed give the same outputs."""

    def next_token_probs(self, texts: list[str], candidates: list[str], batch_size: int, desc: str = "score") -> list[list[float]]:
        """P(next token = candidate) renormalised over `candidates`, one forward pass per text."""

    def close(self) -> None: ...


def check_model_dir(path: str | Path) -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise SystemExit(f"error: {path} is not a model folder (no config.json); run the stage that makes it first")
    return path


def make_backend(cfg: BackendParams, model_path: str | Path) -> Backend:
    model_path = check_model_dir(model_path)
    if cfg.name == "vllm":
        from .backend_vllm import VLLMBackend

        return VLLMBackend(cfg, model_path)
    from .backend_hf import HFBackend

    return HFBackend(cfg, model_path)
