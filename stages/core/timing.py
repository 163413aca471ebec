"""Where a stage process's wall time goes: fixed overhead (process start and imports, model load, engine
start, shutdown) against the work it runs for (generation, scoring, training), recorded outside DVC metrics.

A stage that DVC runs (DVC_STAGE is set; SRLM_TIMING=name times a hand-run one) is timed by @entry
(stages/core/errors.py). The engines and trainers call `mark(phase)`, which books the time since the previous
mark to `phase`; what follows the last mark is booked to "rest" (writing outputs). At exit the stage prints
one line to stderr and writes .srlm/timings/<stage>.json: timings vary from run to run, so they stay out of
metrics/ and dvc.lock. benchmarks/timings.py tables them. Standard library only: errors.py imports this.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# fixed costs of a stage process, whatever its size; everything else counts as work
OVERHEAD = ("start", "imports", "load", "engine", "close")
FOLDER = ".srlm/timings"  # SRLM_TIMING_DIR puts the records elsewhere (benchmarks/device.py's extra runs)


def process_age() -> float | None:
    """Seconds since this process started (interpreter start, before any import), from /proc; None elsewhere."""
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        return None
    started = int(stat.rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    return max(0.0, uptime - started)


class Clock:
    def __init__(self, stage: str, age: float | None):
        self.stage = stage
        self.t_entry = time.perf_counter()
        self.started_at = time.time() - (age or 0.0)
        self.phases: dict[str, float] = {"start": age} if age is not None else {}
        self.last = self.t_entry

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self.last
        self.last = now

    def record(self, status: str) -> dict:
        self.mark("rest")
        wall = sum(self.phases.values())
        overhead = sum(v for k, v in self.phases.items() if k in OVERHEAD)
        return {
            "stage": self.stage,
            "status": status,
            "started_at": round(self.started_at, 3),
            "wall_s": round(wall, 3),
            "phases_s": {k: round(v, 3) for k, v in self.phases.items()},
            "overhead_s": round(overhead, 3),
            "overhead_share": round(overhead / wall, 4) if wall else None,
            "argv": sys.argv,
        }


_clock: Clock | None = None


def stage_name() -> str | None:
    """The DVC stage this process runs (DVC sets DVC_STAGE), SRLM_TIMING for a hand-run one, else None;
    a training process started by `accelerate launch` adds its rank."""
    name = os.environ.get("SRLM_TIMING") or os.environ.get("DVC_STAGE")
    if name and "LOCAL_RANK" in os.environ:
        name += f".rank{os.environ['LOCAL_RANK']}"
    return name


def begin(main_module: str) -> Clock | None:
    """Start timing a stage's `main` when it is the process's own entry point (`python -m stages.X`);
    returns the clock to hand to `end`, or None (not a stage process, or a main called inside one)."""
    global _clock
    name = stage_name()
    if _clock is not None or not name or main_module != "__main__":
        return None
    _clock = Clock(name, process_age())
    return _clock


def mark(phase: str) -> None:
    if _clock is not None:
        _clock.mark(phase)


def end(clock: Clock | None, status: str, folder: Path | None = None) -> dict | None:
    """Write `clock`'s record and its one stderr line (never fails the stage: a timing is not worth an error)."""
    global _clock
    if clock is None or clock is not _clock:
        return None
    _clock = None
    rec = clock.record(status)
    parts = " + ".join(f"{k} {v:.1f}" for k, v in rec["phases_s"].items())
    share = "" if rec["overhead_share"] is None else f", overhead {rec['overhead_share']:.0%}"
    print(f"timing {rec['stage']}: {rec['wall_s']:.1f} s = {parts}{share}", file=sys.stderr, flush=True)
    try:
        folder = folder or Path(os.environ.get("SRLM_TIMING_DIR") or FOLDER)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{rec['stage'].replace('/', '_')}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(rec, indent=1) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        print(f"timing {rec['stage']}: not written ({e})", file=sys.stderr)
    return rec
