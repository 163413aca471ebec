"""Model folders: what every stage that reads or writes one shares (generation, training, the base model).

A model folder is a plain `save_pretrained` folder (config.json, weights, tokenizer). Writers fill a
temporary folder and swap it in (rows.atomic_dir), so a crash never leaves half a model behind.
"""

from __future__ import annotations

from pathlib import Path

from stages.core.errors import SrlmError, brief
from stages.core.rows import atomic_dir


def check_model_dir(path: str | Path) -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise SrlmError(f"error: {path} is not a model folder (no config.json); run the stage that makes it first")
    return path


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str | Path, trust_remote_code: bool = False, **kwargs):
    """(tokenizer, model) of a model folder for training; a corrupt folder (a truncated model.safetensors, a
    broken config) is one error naming it, as the generation backends report it."""
    check_model_dir(path)
    from transformers import AutoModelForCausalLM

    try:
        tok = load_tokenizer(path, trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(str(path), trust_remote_code=trust_remote_code, **kwargs)
    except Exception as e:  # transformers, safetensors and tokenizers raise many types for a damaged file
        raise SrlmError(f"error: could not load the model in {path}: {brief(e)}") from None
    return tok, model


def save_model(model, tokenizer, out: Path) -> None:
    """Merge LoRA (if any) into the weights and swap the folder in atomically."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    # TRL switches the KV cache off for training; saved that way, M0..M(t) would differ from the base model's
    # config, and vLLM keys its compile cache by the config: the trained models keep the base's setting
    if getattr(model.config, "use_cache", None) is False:
        model.config.use_cache = True
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
