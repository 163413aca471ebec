"""Benchmark: IFEval of one or more model folders through the evaluate stage itself, IFEval only.

    python benchmarks/ifeval.py --model models/base --model models/M0 --out benchmarks/results/ifeval.jsonl \
        [--profile profiles/gpu.yaml] [--max-prompts 0] [--max-new-tokens 1024] [--batch-size 64] [-S key=value]

Each model runs `python -m stages.evaluate --iteration base --model M` (the IFEval-only mode) with params.yaml,
merged with the --profile files (stages/commands/profile.py) and then the overrides given here (`--max-prompts 0` = all
541; `-S key=value` for any other knob, YAML values),
in its own process, timed. One JSON line per model goes to --out (the model, the settings, the machine, the
whole `ifeval` block of eval.json and the wall seconds), and a markdown table row per model is printed for
BENCHMARKS.md: the four accuracies with their 95% intervals, cap hits, loops, mean answer tokens, seconds.
The answers are kept beside --out (<out stem>.<model name>.parquet, responses schema) for reading.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.commands.profile import combined, merge  # noqa: E402
from stages.measure.metrics import fmt_acc  # noqa: E402

LEVELS = ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc")


def override(params: dict, dotted: str, value) -> None:
    *path, last = dotted.split(".")
    node = params
    for key in path:
        node = node[key]
    node[last] = value


def cell(block: dict) -> str:
    return fmt_acc(block)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, action="append", required=True, help="a model folder (repeatable)")
    ap.add_argument("--out", type=Path, required=True, help="JSON lines, one per model")
    ap.add_argument("--max-prompts", type=int, help="evaluate.ifeval.max_prompts (0 = all)")
    ap.add_argument("--max-new-tokens", type=int, help="evaluate.ifeval.generation.max_new_tokens")
    ap.add_argument("--batch-size", type=int, help="evaluate.ifeval.generation.batch_size")
    ap.add_argument("-S", dest="sets", action="append", default=[], help="another knob: key=value (YAML value)")
    ap.add_argument("--profile", action="append", default=[], help="a params profile to merge (repeatable)")
    args = ap.parse_args()
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), combined(args.profile))
    if args.max_prompts is not None:
        override(params, "evaluate.ifeval.max_prompts", args.max_prompts or None)
    if args.max_new_tokens is not None:
        override(params, "evaluate.ifeval.generation.max_new_tokens", args.max_new_tokens)
    if args.batch_size is not None:
        override(params, "evaluate.ifeval.generation.batch_size", args.batch_size)
    for s in args.sets:
        key, _, value = s.partition("=")
        override(params, key, yaml.safe_load(value))
    work = Path(tempfile.mkdtemp(prefix="srlm-ifeval-"))
    cfg = work / "params.yaml"
    cfg.write_text(yaml.safe_dump(params, sort_keys=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print("| model | prompt strict | inst strict | prompt loose | inst loose | at cap | looping | tokens | s |")
    print("|---|---|---|---|---|---|---|---:|---:|")
    for model in args.model:
        out = work / model.name / "eval.json"
        answers = args.out.with_name(f"{args.out.stem}.{model.name}.parquet")
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "stages.evaluate", "--iteration", "base", "--model", str(model)]
        cmd += ["--ifeval-answers", str(answers), "--out", str(out), "--params", str(cfg)]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        seconds = round(time.perf_counter() - t0, 1)
        ife = json.loads(out.read_text())["ifeval"]
        if ife is None:
            raise SystemExit(f"{model}: IFEval was skipped (see the stage's output above)")
        record = {
            "model": str(model),
            "ifeval": params["evaluate"]["ifeval"],
            "backend": params["backend"]["name"],
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "seconds": seconds,
            "result": ife,
        }
        with args.out.open("a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        print(
            f"| {model} | " + " | ".join(cell(ife[k]) for k in LEVELS) + f" | {ife['cap_hit']['share']:.0%} | "
            f"{ife['loops']['share']:.0%} | {ife['tokens_mean']} | {seconds} |"
        )


if __name__ == "__main__":
    main()
