#!/usr/bin/env bash
# One whole self-rewarding iteration on the GPU, each stage the plain process that dvc would run,
# with the wall time of every stage (process start, model load and engine start included).
#
#   benchmarks/gpu_iteration.sh PARAMS WORKDIR RESULTS.jsonl LABEL [BASE_MODEL_DIR]
#
# seed -> sft (M0) -> prompts -> responses -> judge -> pairs -> validate -> dpo (M1). The base model
# folder is made once (stage `base`) and reused. Stage logs go to WORKDIR/logs; one JSON line per
# stage, then a summary line of the iteration's metrics, are appended to RESULTS.jsonl.
# dvc is not needed: `dvc repro` runs these same commands.
set -euo pipefail
PARAMS=$1 W=$2 OUT=$3 LABEL=$4 BASE=${5:-$2/../base}
PY=${PYTHON:-python3}
mkdir -p "$W/logs" "$W/metrics"
M="$W/metrics"

stage() {  # stage NAME python-module args...
  local name=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  if ! timeout "${STAGE_TIMEOUT:-420}" "$PY" -m "$@" --params "$PARAMS" >"$W/logs/$name.log" 2>&1; then
    echo "== stage $name failed; end of $W/logs/$name.log:"; tail -40 "$W/logs/$name.log"; exit 1
  fi
  t1=$(date +%s.%N)
  "$PY" -c "import json,sys; print(json.dumps({'label': sys.argv[1], 'stage': sys.argv[2], 'seconds': round(float(sys.argv[4]) - float(sys.argv[3]), 1)}))" \
    "$LABEL" "$name" "$t0" "$t1" | tee -a "$OUT"
  tail -1 "$W/logs/$name.log"
}

[[ -f $BASE/config.json ]] || stage base stages.base --out "$BASE" --metrics "$M/base.json"
stage seed stages.seed --ift "$W/ift.parquet" --eft "$W/eft.parquet" --metrics "$M/seed.json"
stage sft stages.sft --base "$BASE" --ift "$W/ift.parquet" --eft "$W/eft.parquet" --out "$W/M0" --metrics "$M/sft.json"
I=(--iteration 1)
stage prompts stages.prompts "${I[@]}" --model "$W/M0" --pool "$W/ift.parquet" --out "$W/prompts.parquet" --metrics "$M/prompts.json"
stage responses stages.responses "${I[@]}" --model "$W/M0" --prompts "$W/prompts.parquet" --out "$W/responses.parquet" --metrics "$M/responses.json"
stage judge stages.judge "${I[@]}" --model "$W/M0" --responses "$W/responses.parquet" --out "$W/judgments.parquet" --metrics "$M/judge.json"
stage pairs stages.pairs "${I[@]}" --responses "$W/responses.parquet" --judgments "$W/judgments.parquet" --out "$W/preferences.parquet" --metrics "$M/pairs.json"
stage validate stages.validate "${I[@]}" --prompts "$W/prompts.parquet" --responses "$W/responses.parquet" --judgments "$W/judgments.parquet" \
  --preferences "$W/preferences.parquet" --pool "$W/ift.parquet" --out "$M/validate.json" --report "$W/validation.html"
stage dpo stages.dpo "${I[@]}" --model "$W/M0" --preferences "$W/preferences.parquet" --validation "$M/validate.json" --out "$W/M1" --metrics "$M/dpo.json"

"$PY" - "$M" "$LABEL" >>"$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
m, label = Path(sys.argv[1]), sys.argv[2]
j = {p.stem: json.loads(p.read_text()) for p in m.glob("*.json")}
v = j.get("validate", {})
print(json.dumps({"label": label, "summary": {
    "sft": {k: j["sft"].get(k) for k in ("examples", "steps", "loss_first", "loss_last", "processes")},
    "prompts": {k: j["prompts"].get(k) for k in ("generated", "kept", "dropped")},
    "responses": {k: j["responses"].get(k) for k in ("prompts", "responses", "mean_tokens", "truncated", "duplicates")},
    "judge": {k: j["judge"].get(k) for k in ("mode", "grades", "parse_rate", "score_mean", "score_hist")},
    "pairs": j.get("pairs"),
    "validate": {"passed": v.get("passed"), "overridden": v.get("overridden"), "failures": v.get("failures")},
    "dpo": {k: j["dpo"].get(k) for k in ("pairs", "steps", "loss_first", "loss_last", "reward_accuracy_last", "processes")},
}}))
PYEOF
