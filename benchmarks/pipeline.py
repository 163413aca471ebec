"""Benchmark: each generating stage's throughput beside raw batched `generate`, same model, same run.

    python benchmarks/pipeline.py --model models/M0 [--prompts 16] [--repeats 3]

Baseline: transformers `model.generate` called directly on left-padded batches of the same
chat-formatted prompts, with the batch size, sampling and token budget of params.yaml's
`responses` section. Then the stages themselves, in-process through their `main()`:
prompts@t, responses@t, judge@t (sample, K from params) and judge@t (logprob). Throughput is
generated tokens per second (judge logprob: responses scored per second, since it generates
none). Medians of `--repeats`; prints a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages import judge, prompts, responses  # noqa: E402
from stages.core import params as P  # noqa: E402
from stages.core import rows  # noqa: E402


def raw_generate(model_dir: Path, texts: list[str], cfg: P.Responses) -> tuple[float, int]:
    """(seconds, generated tokens) for plain batched generate, n samples per prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    per_batch = max(1, cfg.batch_size // cfg.n)
    tokens, t0 = 0, time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(texts), per_batch):
            enc = tok(texts[start : start + per_batch], return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(
                **enc,
                max_new_tokens=cfg.max_new_tokens,
                do_sample=True,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                num_return_sequences=cfg.n,
                pad_token_id=tok.pad_token_id,
            )
            new = out[:, enc["input_ids"].shape[1] :]
            tokens += int((new != tok.pad_token_id).sum())
    return time.perf_counter() - t0, tokens


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models/M0")
    ap.add_argument("--pool", type=Path, default=ROOT / "data/seed/ift.parquet")
    ap.add_argument("--prompts", type=int, default=16, help="prompts per run (responses: x responses.n samples)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    raw_params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = P.Params.model_validate(raw_params)
    pool = rows.read(args.pool, "ift")
    work = Path(tempfile.mkdtemp(prefix="srlm-bench-"))
    cfg_path = work / "params.yaml"
    raw_params["prompts"]["n"] = args.prompts
    cfg_path.write_text(yaml.safe_dump(raw_params))

    # the stage runs on the seed instructions, so raw and stage see the same prompts
    questions = pool["instruction"].head(args.prompts).to_list()
    prompt_file = work / "prompts.parquet"
    rows.write(
        rows.frame(
            [
                {"id": rows.content_id(q), "prompt": q, "fewshot_ids": [], "iteration": 1, "model": "seed", "seed": 0}
                for q in questions
            ],
            "prompts",
        ),
        prompt_file,
        "prompts",
    )
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    texts = [
        tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in questions
    ]

    common = ["--iteration", "1", "--model", str(args.model), "--params", str(cfg_path)]
    lp_path = work / "params-logprob.yaml"
    lp_path.write_text(yaml.safe_dump(dict(raw_params, judge={**raw_params["judge"], "mode": "logprob"})))
    lp_common = ["--iteration", "1", "--model", str(args.model), "--params", str(lp_path)]
    results: dict[str, list[float]] = {}
    resp_file, judg_file = work / "responses.parquet", work / "judgments.parquet"
    for _ in range(args.repeats):
        secs, toks = raw_generate(args.model, texts, params.responses)
        results.setdefault("raw generate (baseline)", []).append(toks / secs)
        secs = timed(lambda: responses.main([*common, "--prompts", str(prompt_file), "--out", str(resp_file)]))
        results.setdefault("responses@t", []).append(float(rows.read(resp_file, "responses")["n_tokens"].sum()) / secs)
        out = work / "new_prompts.parquet"
        secs = timed(lambda: prompts.main([*common, "--pool", str(args.pool), "--out", str(out)]))
        # prompts keeps only the parsed instruction, not the generated tokens: report prompts per second
        results.setdefault("prompts@t (prompts/s)", []).append(args.prompts / secs)
        secs = timed(lambda: judge.main([*common, "--responses", str(resp_file), "--out", str(judg_file)]))
        n_resp = len(rows.read(resp_file, "responses"))
        results.setdefault(f"judge@t sample K={params.judge.k} (responses/s)", []).append(n_resp / secs)
        secs = timed(lambda: judge.main([*lp_common, "--responses", str(resp_file), "--out", str(judg_file)]))
        results.setdefault("judge@t logprob (responses/s)", []).append(n_resp / secs)

    base = statistics.median(results["raw generate (baseline)"])
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"model {args.model}; {args.prompts} prompts; medians of {args.repeats} runs\n"
    )
    print("| what | throughput | vs raw generate |\n|---|---:|---:|")
    for name, vals in results.items():
        med = statistics.median(vals)
        unit = "" if "/s)" in name else " tokens/s"
        ratio = f"{med / base:.2f}x" if unit else "-"
        print(f"| {name} | {med:.1f}{unit} | {ratio} |")
    judge_sample = statistics.median(results[f"judge@t sample K={params.judge.k} (responses/s)"])
    judge_lp = statistics.median(results["judge@t logprob (responses/s)"])
    print(f"\njudge logprob vs sample: {judge_lp / judge_sample:.1f}x faster")


if __name__ == "__main__":
    main()
