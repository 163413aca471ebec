"""transformers implementation of the Backend interface (CPU or one GPU)."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM

from stages.core import timing
from stages.core.errors import SrlmError, brief
from stages.core.params import Backend as BackendParams
from stages.core.params import Sampling
from stages.core.rows import derive_seed
from stages.engine.backend.interface import Completion, prompt_budget
from stages.engine.models import load_tokenizer


def torch_dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return getattr(torch, name)


class HFBackend:
    def __init__(self, cfg: BackendParams, model_path: Path):
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model_name = model_path.as_posix()
        try:
            self.tok = load_tokenizer(model_path, cfg.trust_remote_code)
            self.model = AutoModelForCausalLM.from_pretrained(
                str(model_path), dtype=torch_dtype(cfg.dtype, self.device), trust_remote_code=cfg.trust_remote_code
            ).to(self.device)
        except Exception as e:  # a corrupt config, tokenizer or weights file: transformers raises many types
            raise SrlmError(f"error: could not load the model in {model_path}: {brief(e)}") from None
        self.tok.padding_side = "left"  # generation continues from the right edge
        self.truncated_prompts = 0
        self.model.eval()
        # the context both engines cut prompts to: backend.max_model_len, else the model's own
        self.max_positions = cfg.max_model_len or getattr(self.model.config, "max_position_embeddings", 2048)

    def chat(self, messages: list[dict], prefill: str = "") -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prefill

    def _encode(self, texts: list[str], room: int):
        # Over-long prompts keep their end (where the question and the instruction are).
        self.tok.truncation_side = "left"
        enc = self.tok(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=prompt_budget(self.max_positions, room),
            add_special_tokens=False,
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    def _by_length(self, texts: list[str], room: int) -> list[int]:
        # Batching similar lengths together wastes less compute on padding; the order is deterministic.
        lengths = [len(ids) for ids in self.tok(texts, add_special_tokens=False)["input_ids"]]
        self.truncated_prompts += sum(n > prompt_budget(self.max_positions, room) for n in lengths)  # cut by _encode
        return sorted(range(len(texts)), key=lambda i: (-lengths[i], i))

    @torch.inference_mode()
    def generate(self, texts, n, sampling: Sampling, seed, desc="generate"):
        timing.mark("prep")
        per_batch = max(1, sampling.batch_size // n)
        order = self._by_length(texts, sampling.max_new_tokens)
        out: list[list[Completion]] = [[] for _ in texts]
        eos = self.tok.eos_token_id
        for b, start in enumerate(tqdm(range(0, len(order), per_batch), desc=desc, unit="batch")):
            idx = order[start : start + per_batch]
            enc = self._encode([texts[i] for i in idx], sampling.max_new_tokens)
            torch.manual_seed(derive_seed(seed, b))  # a batch's samples do not depend on earlier batches
            sample = sampling.temperature > 0
            gen = self.model.generate(
                **enc,
                max_new_tokens=sampling.max_new_tokens,
                num_return_sequences=n,
                do_sample=sample,
                temperature=sampling.temperature if sample else None,
                top_p=sampling.top_p if sample else None,
                top_k=None,
                pad_token_id=self.tok.pad_token_id,
                eos_token_id=eos,
            )
            new = gen[:, enc["input_ids"].shape[1] :].cpu()
            for row, ids in enumerate(new.tolist()):
                stopped = eos in ids
                if stopped:  # count up to and including the end-of-turn token
                    ids = ids[: ids.index(eos) + 1]
                text = self.tok.decode(ids, skip_special_tokens=True).strip()
                out[idx[row // n]].append(Completion(text, len(ids), truncated=not stopped))
        timing.mark("generate")
        return out

    @torch.inference_mode()
    def next_token_probs(self, texts, candidates, batch_size, desc="score"):
        timing.mark("prep")
        cand_ids = [self.tok.encode(c, add_special_tokens=False) for c in candidates]
        if any(len(c) != 1 for c in cand_ids):
            raise ValueError(f"each candidate must be one token for this tokenizer: {candidates}")
        cand = torch.tensor([c[0] for c in cand_ids], device=self.device)
        order = self._by_length(texts, 1)
        out: list[list[float]] = [[] for _ in texts]
        for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
            idx = order[start : start + batch_size]
            enc = self._encode([texts[i] for i in idx], 1)
            # left padding: the last position is every row's next-token slot
            logits = self.model(**enc).logits[:, -1, :].float()
            probs = torch.softmax(logits[:, cand], dim=-1).cpu().tolist()
            for row, p in zip(idx, probs):
                out[row] = p
        timing.mark("score")
        return out

    def close(self) -> None:
        timing.mark("rest")
        del self.model
        timing.mark("close")
