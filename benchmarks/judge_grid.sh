#!/usr/bin/env bash
# The judge grid on the GPU machine (benchmarks/judge_grid.py; BENCHMARKS.md "Judge: length"). From the repo root,
# with the carried wheels on PYTHONPATH:
#   GRID_DEADLINE=$((T0 + 580)) benchmarks/judge_grid.sh OUT --data .carry/data/shared-data.tar.xz [--variants a,b]
# It stops itself at GRID_DEADLINE (epoch seconds; default 575 s from now) and starts no variant that would not
# finish 40 s before it. Prints the progress lines and the results tables; the full log is OUT/judge_grid.log.
OUT=$1; shift; mkdir -p "$OUT"
left=$(( ${GRID_DEADLINE:-$(( $(date +%s) + 575 ))} - $(date +%s) ))
TQDM_DISABLE=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 timeout "$left" "${PYTHON:-python3}" benchmarks/judge_grid.py \
  --work "${SRLM_GPU_WORK:-/tmp/srlm-grid}" --out "$OUT" --budget-s $(( left - 40 )) "$@" >"$OUT/judge_grid.log" 2>&1
rc=$?
grep -E '^\[|Error|error:' "$OUT/judge_grid.log" | tail -60; cat "$OUT/judge_grid.md" 2>/dev/null; exit $rc
