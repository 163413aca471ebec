"""Generation and scoring engines behind one interface (interface.py): transformers (hf.py) or vLLM (vllm.py).

Choosing one is the single branch in `make_backend`; each engine's heavy imports stay inside its module.
"""

from __future__ import annotations

from pathlib import Path

from stages.core import timing
from stages.core.params import Backend as BackendParams
from stages.engine.backend.interface import Backend, Completion
from stages.engine.models import check_model_dir

__all__ = ["PARAMS", "Backend", "Completion", "make_backend"]

# the backend knobs that change what an engine computes (the per-machine ones change no row: params.yaml's
# header); every stage that generates or scores with a model lists them in its PARAMS
PARAMS = ("backend.name", "backend.dtype", "backend.trust_remote_code", "backend.max_model_len")


def make_backend(cfg: BackendParams, model_path: str | Path) -> Backend:
    """The engine `cfg.name` names, on `model_path`; its imports, model load and start are timed."""
    model_path = check_model_dir(model_path)
    timing.mark("prep")
    if cfg.name == "vllm":
        from stages.engine.backend.vllm import VLLMBackend, import_vllm

        import_vllm(cfg)
        timing.mark("imports")
        backend = VLLMBackend(cfg, model_path)
        timing.mark("engine")  # weights, torch.compile (or its cache), memory profiling, CUDA graph capture
        return backend
    from stages.engine.backend.hf import HFBackend

    timing.mark("imports")
    backend = HFBackend(cfg, model_path)
    timing.mark("load")
    return backend
