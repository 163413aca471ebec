"""vLLM implementation of the Backend interface (one or more GPUs; `pip install 'srlm[vllm]'`).

One engine per stage process, built in __init__ and shut down in close(). Prompts are
rendered and tokenised by the same transformers tokenizer as backend/hf.py, and completions
are decoded by it, so both backends produce rows of the same shape from the same texts.

- generate: one SamplingParams(n=N, seed=...) per prompt. The seed hashes the stage seed
  and the prompt text, so a prompt's samples do not depend on its batch or position (a
  prompt split off to another engine samples the same way). vLLM gives the i-th of the N
  children seed+i.
- next_token_probs: one greedy step with `logprob_token_ids` = the candidate tokens, which
  returns the exact log-probabilities of those ids (not a top-k cut), then renormalised
  over the candidates: the same quantity as backend/hf.py's softmax over the candidate logits.
  A candidate absent from the returned dict would count as probability 0 before
  renormalising; with `logprob_token_ids` vLLM returns all of them.
- Prefix caching is on: the judge rubric and the self-instruct template are long shared
  prefixes, so their KV blocks are computed once per engine.
- Start-up: every model is loaded through one path, `backend.model_link` (a symlink repointed at
  the stage's model). vLLM keys its torch.compile cache by the model path string, so with one path
  the graph compiled for M0 is loaded from the cache for M1, M2, ... (same architecture, same
  engine arguments) instead of compiled again per model. `backend.max_model_len` sets the context,
  `backend.vllm_args` passes more `vllm.LLM` arguments (CUDA-graph capture sizes, KV-cache bytes
  that skip memory profiling), `backend.vllm_env` sets vLLM's environment variables.
- Prompts longer than the context lose their beginning (`cut_prompts`), as in backend/hf.py, and
  are counted in `truncated_prompts`.
"""

from __future__ import annotations

import gc
import math
import os
from pathlib import Path

from stages.core import timing
from stages.core.errors import SrlmError
from stages.core.params import Backend as BackendParams
from stages.core.params import Sampling
from stages.core.rows import derive_seed
from stages.engine.backend.interface import Completion, prompt_budget
from stages.engine.models import load_tokenizer

INSTALL_HINT = "pip install 'srlm[vllm]' (vLLM needs a CUDA GPU)"


def cut_prompts(encoded: list[list[int]], context: int, room: int) -> tuple[list[dict], int]:
    """vLLM prompts from token ids, each cut to its last `prompt_budget(context, room)` tokens (as
    backend/hf.py cuts them), and how many were cut."""
    keep = prompt_budget(context, room)
    return [{"prompt_token_ids": ids[-keep:]} for ids in encoded], sum(len(ids) > keep for ids in encoded)


def link_model(model_path: Path, link: str | None) -> Path:
    """The path vLLM loads `model_path` through: `link`, a symlink atomically repointed at the model, or the
    folder itself when `link` is None. Stages run one at a time (DVC's lock), and a stage's workers load
    the same model, so repointing never pulls a model from under an engine that is starting."""
    if link is None:
        return model_path
    at = Path(link).absolute()
    if at.exists() and not at.is_symlink():
        raise SrlmError(f"error: backend.model_link {link} exists and is not a symlink; remove it or set another path")
    at.parent.mkdir(parents=True, exist_ok=True)
    tmp = at.with_name(f".{at.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(model_path.resolve(), target_is_directory=True)
    os.replace(tmp, at)
    return at


def import_vllm(cfg: BackendParams | None = None):
    if cfg is not None:
        os.environ.update(cfg.vllm_env)  # vLLM reads some of its variables when imported
    try:
        import vllm
    except ImportError as e:
        raise SrlmError(
            f"error: backend.name is vllm but vllm cannot be imported ({e}); {INSTALL_HINT}, "
            "or set backend.name: transformers"
        ) from None
    return vllm


class VLLMBackend:
    def __init__(self, cfg: BackendParams, model_path: Path, **engine_kwargs):
        """`engine_kwargs` override vllm.LLM arguments (benchmarks turn prefix caching off with them)."""
        vllm = import_vllm(cfg)
        self.model_name = model_path.as_posix()  # rows record the model folder, not the link
        self.tok = load_tokenizer(model_path, cfg.trust_remote_code)
        path = str(link_model(model_path, cfg.model_link))
        kwargs = dict(
            model=path,
            tokenizer=path,
            # the stage folders hold float32 weights; "auto" means bfloat16 on the GPU, as in backend/hf.py
            dtype="bfloat16" if cfg.dtype == "auto" else cfg.dtype,
            tensor_parallel_size=cfg.tensor_parallel_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            trust_remote_code=cfg.trust_remote_code,
            enable_prefix_caching=True,
            seed=0,
        )
        if cfg.max_model_len is not None:
            kwargs["max_model_len"] = cfg.max_model_len
        kwargs.update(cfg.vllm_args)
        kwargs.update(engine_kwargs)
        try:
            self.llm = vllm.LLM(**kwargs)
        except TypeError as e:
            if "unexpected keyword argument" not in str(e):
                raise
            raise SrlmError(f"error: backend.vllm_args: this vLLM does not take an argument: {e}") from None
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        self.truncated_prompts = 0

    def chat(self, messages: list[dict], prefill: str = "") -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prefill

    def _prompts(self, texts: list[str], room: int) -> list[dict]:
        # As backend/hf.py: no special tokens added (the chat template has them); over-long prompts keep their end.
        prompts, cut = cut_prompts(self.tok(texts, add_special_tokens=False)["input_ids"], self.max_model_len, room)
        self.truncated_prompts += cut
        return prompts

    def _progress(self, desc: str):
        from functools import partial

        from tqdm.auto import tqdm

        return partial(tqdm, desc=desc)

    def generate(self, texts, n, sampling: Sampling, seed, desc="generate"):
        from vllm import SamplingParams

        timing.mark("prep")
        sample = sampling.temperature > 0
        params = [
            SamplingParams(
                n=n,
                temperature=sampling.temperature if sample else 0.0,
                top_p=sampling.top_p if sample else 1.0,
                max_tokens=sampling.max_new_tokens,
                seed=derive_seed(seed, text),
                detokenize=False,
            )
            for text in texts
        ]
        outs = self.llm.generate(self._prompts(texts, sampling.max_new_tokens), params, use_tqdm=self._progress(desc))
        # vLLM keeps the end-of-turn token in token_ids, as backend/hf.py counts it; decoding skips it
        ids = [list(c.token_ids) for o in outs for c in o.outputs]
        decoded = iter(self.tok.batch_decode(ids, skip_special_tokens=True))
        done = [
            [
                Completion(next(decoded).strip(), len(c.token_ids), truncated=c.finish_reason == "length")
                for c in o.outputs
            ]
            for o in outs
        ]
        timing.mark("generate")
        return done

    def next_token_probs(self, texts, candidates, batch_size, desc="score"):
        """`batch_size` is unused: vLLM schedules its own batches."""
        from vllm import SamplingParams

        timing.mark("prep")
        cand_ids = [self.tok.encode(c, add_special_tokens=False) for c in candidates]
        if any(len(c) != 1 for c in cand_ids):
            raise ValueError(f"each candidate must be one token for this tokenizer: {candidates}")
        ids = [c[0] for c in cand_ids]
        params = SamplingParams(n=1, temperature=0.0, max_tokens=1, logprob_token_ids=ids)
        outs = self.llm.generate(self._prompts(texts, 1), params, use_tqdm=self._progress(desc))
        probs = []
        for o in outs:
            step = o.outputs[0].logprobs[0]  # {token_id: Logprob} of the one generated position
            p = [math.exp(step[i].logprob) if i in step else 0.0 for i in ids]
            total = sum(p)
            probs.append([q / total for q in p] if total > 0 else [1.0 / len(ids)] * len(ids))
        timing.mark("score")
        return probs

    def close(self) -> None:
        # The EngineCore (and, with tensor parallelism, its workers) are separate processes:
        # stop them explicitly, or they outlive the stage and hold the GPU.
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        timing.mark("rest")
        llm.llm_engine.engine_core.shutdown()
        del self.llm
        gc.collect()
        timing.mark("close")
