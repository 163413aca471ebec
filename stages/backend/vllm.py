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
"""

from __future__ import annotations

import gc
import math
from pathlib import Path

from ..errors import SrlmError
from ..models import load_tokenizer
from ..params import Backend as BackendParams
from ..params import Sampling
from ..rows import derive_seed
from .interface import Completion

INSTALL_HINT = "pip install 'srlm[vllm]' (vLLM needs a CUDA GPU)"


def import_vllm():
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
        vllm = import_vllm()
        self.model_name = model_path.as_posix()
        self.tok = load_tokenizer(model_path, cfg.trust_remote_code)
        kwargs = dict(
            model=str(model_path),
            tokenizer=str(model_path),
            # the stage folders hold float32 weights; "auto" means bfloat16 on the GPU, as in backend/hf.py
            dtype="bfloat16" if cfg.dtype == "auto" else cfg.dtype,
            tensor_parallel_size=cfg.tensor_parallel_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            trust_remote_code=cfg.trust_remote_code,
            enable_prefix_caching=True,
            seed=0,
        )
        kwargs.update(engine_kwargs)
        self.llm = vllm.LLM(**kwargs)
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        self.truncated_prompts = 0

    def chat(self, messages: list[dict], prefill: str = "") -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prefill

    def _prompts(self, texts: list[str], room: int) -> list[dict]:
        # As backend/hf.py: no special tokens added (the chat template has them); over-long prompts keep their end.
        keep = max(self.max_model_len - room, 8)
        encoded = self.tok(texts, add_special_tokens=False)["input_ids"]
        self.truncated_prompts += sum(len(ids) > keep for ids in encoded)
        return [{"prompt_token_ids": ids[-keep:]} for ids in encoded]

    def _progress(self, desc: str):
        from functools import partial

        from tqdm.auto import tqdm

        return partial(tqdm, desc=desc)

    def generate(self, texts, n, sampling: Sampling, seed, desc="generate"):
        from vllm import SamplingParams

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
        return [
            [
                Completion(next(decoded).strip(), len(c.token_ids), truncated=c.finish_reason == "length")
                for c in o.outputs
            ]
            for o in outs
        ]

    def next_token_probs(self, texts, candidates, batch_size, desc="score"):
        """`batch_size` is unused: vLLM schedules its own batches."""
        from vllm import SamplingParams

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
        return probs

    def close(self) -> None:
        # The EngineCore (and, with tensor parallelism, its workers) are separate processes:
        # stop them explicitly, or they outlive the stage and hold the GPU.
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        llm.llm_engine.engine_core.shutdown()
        del self.llm
        gc.collect()
