"""Table of where each stage's wall time went, from the records stages/core/timing.py writes
(.srlm/timings/<stage>.json), with vLLM's own start-up lines from a `dvc repro` log when one is given.

    python -m benchmarks.timings [--dir .srlm/timings] [--log dvc-repro.log ...] [--json timings.json]

Columns (seconds): start = interpreter start and module imports before the stage's main; imports = torch /
vLLM / TRL; load = model load (transformers) or engine = vLLM engine start (weights, torch.compile or its
cache, memory profiling, CUDA graphs); work = generate + score + train; other = reading inputs, rendering,
writing outputs; close = engine shutdown. overhead = start + imports + load/engine + close, as a share of
the stage's wall time. From the log, per stage (summed over its engines): vLLM's reported weight load,
torch.compile, CUDA-graph capture and engine-init seconds. Last line: the sum of the stages' wall times
(--json also has the span from the first stage's start to the last one's end; DVC's own work, hashing and
caching outputs, is the span minus the sum when the run had no pauses).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

OVERHEAD = ("start", "imports", "load", "engine", "close")
WORK = ("generate", "score", "train")

# vLLM 0.26 log lines (vllm/v1/worker/gpu/model_runner.py, compilation/monitor.py, v1/engine/core.py)
VLLM_LINES = {
    "weights_s": re.compile(r"Model loading took [\d.]+ GiB(?: memory)? and ([\d.]+) seconds"),
    "compile_s": re.compile(r"torch\.compile took ([\d.]+) s in total"),
    "graphs_s": re.compile(r"Graph capturing finished in ([\d.]+) secs"),
    "engine_init_s": re.compile(r"init engine \(profile, create kv cache, warmup model\) took ([\d.]+) s"),
}
STAGE_HEADER = re.compile(r"^Running stage '([^']+)':", re.MULTILINE)


def load(folder: Path) -> list[dict]:
    recs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return sorted(recs, key=lambda r: r["started_at"])


def vllm_times(log: str) -> dict[str, dict[str, float]]:
    """{stage: {weights_s, compile_s, graphs_s, engine_init_s, engines}} from a `dvc repro` log."""
    out: dict[str, dict[str, float]] = {}
    heads = list(STAGE_HEADER.finditer(log))
    for h, nxt in zip(heads, heads[1:] + [None]):
        section = log[h.end() : nxt.start() if nxt else len(log)]
        found: dict[str, float] = {}
        for key, rx in VLLM_LINES.items():
            values = [float(v) for v in rx.findall(section)]
            if values:
                found[key] = round(sum(values), 2)
        if found:
            found["engines"] = len(VLLM_LINES["engine_init_s"].findall(section))
            out[h.group(1)] = found
    return out


def _s(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def rows(recs: list[dict], vllm: dict[str, dict[str, float]] | None = None) -> list[dict]:
    out = []
    for r in recs:
        ph = r["phases_s"]
        v = (vllm or {}).get(r["stage"], {})
        out.append(
            {
                "stage": r["stage"],
                "status": r["status"],
                "wall_s": r["wall_s"],
                "start_s": ph.get("start"),
                "imports_s": ph.get("imports"),
                "load_s": (ph.get("load") or 0) + (ph.get("engine") or 0) or None,
                "work_s": sum(ph.get(k, 0) for k in WORK) or None,
                "other_s": (ph.get("prep") or 0) + (ph.get("rest") or 0),
                "close_s": ph.get("close"),
                "overhead_share": r["overhead_share"],
                **{f"vllm_{k}": v.get(k) for k in VLLM_LINES},
            }
        )
    return out


def totals(recs: list[dict]) -> dict:
    if not recs:
        return {"stages": 0}
    walls = sum(r["wall_s"] for r in recs)
    span = max(r["started_at"] + r["wall_s"] for r in recs) - min(r["started_at"] for r in recs)
    return {
        "stages": len(recs),
        "sum_wall_s": round(walls, 1),
        "span_s": round(span, 1),
        "between_s": round(span - walls, 1),
    }


def markdown(table: list[dict], tot: dict) -> str:
    head = (
        "| stage | wall s | start | imports | load / engine | work | other | close | overhead | "
        "vLLM weights / compile / graphs / engine init |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in table:
        vl = " / ".join(_s(r[f"vllm_{k}"]) or "-" for k in VLLM_LINES) if r["vllm_engine_init_s"] is not None else ""
        share = "" if r["overhead_share"] is None else f"{r['overhead_share']:.0%}"
        name = r["stage"] + ("" if r["status"] == "ok" else f" ({r['status']})")
        lines.append(
            f"| {name} | {_s(r['wall_s'])} | {_s(r['start_s'])} | {_s(r['imports_s'])} | {_s(r['load_s'])} | "
            f"{_s(r['work_s'])} | {_s(r['other_s'])} | {_s(r['close_s'])} | {share} | {vl} |"
        )
    foot = (
        f"\n{tot['stages']} stages: {tot.get('sum_wall_s')} s in stage processes (each stage's last run).\n"
        if tot["stages"]
        else "\nno timing records\n"
    )
    return head + "\n".join(lines) + "\n" + foot


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path(".srlm/timings"))
    ap.add_argument("--log", type=Path, action="append", default=[], help="a `dvc repro` log (repeatable)")
    ap.add_argument("--json", type=Path, help="also write the rows and totals as JSON")
    args = ap.parse_args(argv)
    recs = load(args.dir)
    vllm: dict = {}
    for log in args.log:
        if log.exists():
            vllm |= vllm_times(log.read_text(errors="replace"))
    table, tot = rows(recs, vllm), totals(recs)
    print(markdown(table, tot), end="")
    if args.json:
        args.json.write_text(json.dumps({"rows": table, "totals": tot}, indent=1) + "\n")


if __name__ == "__main__":
    main()
