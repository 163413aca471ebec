"""vLLM on the GPU: raw `LLM.generate` vs srlm's VLLMBackend vs the transformers backend, and
the judge's sample (K) vs logprob modes with prefix caching on and off. Results go to BENCHMARKS.md.

Each part is its own process (one engine per process, as in the stages), writing JSON lines to --out:

    python3 -m benchmarks.vllm_gpu --part vllm      --model models/base --prompts P.jsonl --work W --out R.jsonl
    python3 -m benchmarks.vllm_gpu --part vllm --no-judge --rounds 2 ...   # generation only (benchmarks/device.py)
    python3 -m benchmarks.vllm_gpu --part nocache   --model models/base --work W --out R.jsonl
    python3 -m benchmarks.vllm_gpu --part hf        --model models/base --work W --out R.jsonl
    python3 -m benchmarks.vllm_gpu --part report    --out R.jsonl

`vllm`:    one engine (prefix caching on). Warm-up, then alternating rounds of raw generate and
           backend.generate on the same rendered prompts, prefix cache reset before each; then the
           judge in both modes over the responses of the srlm run (saved to --work for the next parts).
`nocache`: a second engine with prefix caching off: the same judge runs.
`hf`:      the transformers backend on a subset of the same prompts (it is ~10x slower), and its
           logprob-mode probabilities against vLLM's for the same judge texts (exactness check).
Tokens/s counts generated tokens (end-of-turn included) over wall time of the generate call.
The engine is built from `--params` (default: params.yaml of the current folder), so it has the run's
backend settings (max_model_len, model_link, vllm_args): the same engine the stages use.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from stages.core import params as P
from stages.engine.backend import Completion
from stages.judging.prompting import judge_messages
from stages.judging.scoring import LOGPROB_PREFILL, judge_logprob, judge_sample

GEN = P.Sampling(temperature=0.7, top_p=0.9, max_new_tokens=256, batch_size=256)
JUDGE = P.Judge(mode="sample", k=3, temperature=0.7, top_p=0.9, max_new_tokens=48, batch_size=64)
N = 4


def emit(out: Path, **row) -> None:
    print(json.dumps(row), flush=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")


def tokens(outs: list[list[Completion]]) -> int:
    return sum(c.n_tokens for o in outs for c in o)


def load_prompts(path: Path, limit: int) -> list[str]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["instruction"] for r in rows][:limit]


def judge_runs(backend, texts: list[str], out: Path, engine: str, caching: str, reset) -> list[list[float]]:
    """Both judge modes over `texts`; returns the logprob-mode probabilities."""
    probs = None
    for mode in ("sample", "logprob"):
        reset()
        t0 = time.perf_counter()
        if mode == "sample":
            grades = judge_sample(backend, texts, JUDGE, seed=1, desc="judge sample")
            parsed = sum(g["score"] is not None for gs in grades for g in gs) / max(1, sum(len(gs) for gs in grades))
        else:
            grades = judge_logprob(backend, texts, JUDGE.model_copy(update={"mode": "logprob"}), desc="judge logprob")
            probs, parsed = [g[0]["probs"] for g in grades], 1.0
        s = time.perf_counter() - t0
        emit(
            out,
            part="judge",
            engine=engine,
            prefix_caching=caching,
            mode=mode,
            k=JUDGE.k if mode == "sample" else 1,
            responses=len(texts),
            seconds=round(s, 2),
            responses_per_s=round(len(texts) / s, 1),
            parse_rate=round(parsed, 3),
        )
    return probs


def part_vllm(args, out: Path) -> None:
    from vllm import SamplingParams

    from stages.engine.backend.vllm import VLLMBackend

    cfg = P.load(args.params).backend.model_copy(update={"name": "vllm", "tensor_parallel_size": args.tp})
    be = VLLMBackend(cfg, args.model)
    prompts = load_prompts(args.prompts, args.n_prompts)
    texts = [be.chat([{"role": "user", "content": q}]) for q in prompts]
    raw_params = SamplingParams(n=N, temperature=GEN.temperature, top_p=GEN.top_p, max_tokens=GEN.max_new_tokens)

    def raw():
        res = be.llm.generate(texts, raw_params, use_tqdm=False)
        return sum(len(c.token_ids) for r in res for c in r.outputs)

    last: dict = {}

    def srlm():
        last["outs"] = be.generate(texts, n=N, sampling=GEN, seed=7, desc="srlm")
        return tokens(last["outs"])

    be.llm.generate(texts[:64], raw_params, use_tqdm=False)  # warm-up: CUDA graphs, allocator
    rates: dict[str, list[float]] = {"raw": [], "srlm": []}
    for r in range(args.rounds):
        for name, fn in (("raw", raw), ("srlm", srlm)) if r % 2 == 0 else (("srlm", srlm), ("raw", raw)):
            be.llm.reset_prefix_cache()
            t0 = time.perf_counter()
            n_tok = fn()
            s = time.perf_counter() - t0
            rates[name].append(n_tok / s)
            emit(
                out,
                part="generate",
                engine=name,
                tp=args.tp,
                round=r,
                prompts=len(texts),
                n=N,
                tokens=n_tok,
                seconds=round(s, 2),
                tokens_per_s=round(n_tok / s),
            )
    med = {k: statistics.median(v) for k, v in rates.items()}
    emit(
        out,
        part="generate_summary",
        tp=args.tp,
        raw_median=round(med["raw"]),
        srlm_median=round(med["srlm"]),
        ratio=round(med["srlm"] / med["raw"], 3),
        max_model_len=be.max_model_len,
        vllm_args=cfg.vllm_args,
        model_link=cfg.model_link,
    )
    if not args.judge:
        be.close()
        return

    # judge inputs: the srlm responses (N per prompt), saved so the other parts use the same texts
    outs = last["outs"]
    judge_texts = [be.chat(judge_messages(q, c.text)) for q, o in zip(prompts, outs) for c in o]
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "judge_texts.json").write_text(json.dumps(judge_texts))
    (args.work / "gen_texts.json").write_text(json.dumps(texts))
    probs = judge_runs(be, judge_texts, out, "vllm", "on", be.llm.reset_prefix_cache)
    (args.work / "vllm_probs.json").write_text(json.dumps(probs))
    be.close()


def part_nocache(args, out: Path) -> None:
    from stages.engine.backend.vllm import VLLMBackend

    backend = P.load(args.params).backend.model_copy(update={"name": "vllm"})
    be = VLLMBackend(backend, args.model, enable_prefix_caching=False)
    texts = json.loads((args.work / "judge_texts.json").read_text())
    be.llm.generate(texts[:64], use_tqdm=False)  # warm-up
    judge_runs(be, texts, out, "vllm", "off", lambda: None)
    be.close()


def part_hf(args, out: Path) -> None:
    from stages.engine.backend.hf import HFBackend

    be = HFBackend(P.load(args.params).backend, args.model)
    texts = json.loads((args.work / "gen_texts.json").read_text())[: args.hf_prompts]
    be.generate(texts[:8], n=N, sampling=GEN.model_copy(update={"max_new_tokens": 16}), seed=0)  # warm-up
    t0 = time.perf_counter()
    n_tok = tokens(be.generate(texts, n=N, sampling=GEN, seed=7, desc="hf"))
    s = time.perf_counter() - t0
    emit(
        out,
        part="generate",
        engine="transformers",
        round=0,
        prompts=len(texts),
        n=N,
        tokens=n_tok,
        seconds=round(s, 2),
        tokens_per_s=round(n_tok / s),
        batch=GEN.batch_size,
    )
    # logprob exactness: the same judge texts through both backends
    judge_texts = json.loads((args.work / "judge_texts.json").read_text())[: args.check]
    vllm_probs = json.loads((args.work / "vllm_probs.json").read_text())[: args.check]
    hf_probs = be.next_token_probs(
        [t + LOGPROB_PREFILL for t in judge_texts], [str(s) for s in range(6)], batch_size=32
    )
    diff = max(abs(a - b) for pa, pb in zip(hf_probs, vllm_probs) for a, b in zip(pa, pb))
    emit(out, part="logprob_check", texts=len(judge_texts), max_abs_diff_vs_transformers=round(diff, 4))


def part_report(args, out: Path) -> None:
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    for r in rows:
        print(" | ".join(f"{k}={v}" for k, v in r.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["vllm", "nocache", "hf", "report"], required=True)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--prompts", type=Path, help="JSONL with an `instruction` field (e.g. oasst2 ift)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/srlm-bench"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n-prompts", type=int, default=512)
    ap.add_argument("--hf-prompts", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--check", type=int, default=256, help="judge texts compared between the backends")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--params", default="params.yaml", help="the backend settings of the engine")
    ap.add_argument("--no-judge", dest="judge", action="store_false", help="part vllm: generation only")
    args = ap.parse_args()
    {"vllm": part_vllm, "nocache": part_nocache, "hf": part_hf, "report": part_report}[args.part](args, args.out)


if __name__ == "__main__":
    main()
