#!/usr/bin/env bash
# The judge grid on the GPU machine (benchmarks/judge_grid.py; BENCHMARKS.md "Judge: length"). From the repo root,
# with the carried wheels on PYTHONPATH and ../shared/data present (oasst2_en, oasst1_en_validation):
#   benchmarks/judge_grid.sh OUT [--variants a,b] [--budget-s 480]
# Progress lines, then the results table; everything else in OUT/judge_grid.log. Stops itself before a 600 s call ends.
OUT=$1; shift; mkdir -p "$OUT"
TQDM_DISABLE=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 timeout "${GRID_TIMEOUT:-575}" "${PYTHON:-python3}" benchmarks/judge_grid.py \
  --work "${SRLM_GPU_WORK:-/tmp/srlm-grid}" --out "$OUT" "$@" >"$OUT/judge_grid.log" 2>&1; rc=$?
grep -E '^\[|Error|error:' "$OUT/judge_grid.log" | tail -60; cat "$OUT/judge_grid.md" 2>/dev/null; exit $rc
