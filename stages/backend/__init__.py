"""Generation and scoring engines behind one interface (interface.py): transformers (hf.py) or vLLM (vllm.py).

Choosing one is the single branch in `make_backend`; each engine's heavy imports stay inside its module.
"""

from __future__ import annotations

from pathlib import Path

from ..models import check_model_dir
from ..params import Backend as BackendParams
from .interface import Backend, Completion

__all__ = ["Backend", "Completion", "make_backend"]


def make_backend(cfg: BackendParams, model_path: str | Path) -> Backend:
    model_path = check_model_dir(model_path)
    if cfg.name == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend(cfg, model_path)
    from .hf import HFBackend

    return HFBackend(cfg, model_path)
