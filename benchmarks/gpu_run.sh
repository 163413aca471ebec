#!/usr/bin/env bash
# The device-side steps behind BENCHMARKS.md "vLLM on the GPU" and "Past one GPU", run from the repo root
# on a machine with 2 GPUs, the packages of ../shared/tools/gpu-pack on PYTHONPATH and
# ../shared/data/oasst2_en/ift_oasst2_en_top1.jsonl present:
#
#   benchmarks/gpu_run.sh iter1 OUTDIR   # one iteration on GPU 0 (vLLM TP=1, 1-process SFT/DPO)
#   benchmarks/gpu_run.sh bench OUTDIR   # raw vLLM vs srlm vs transformers; judge modes x prefix caching (GPU 0)
#   benchmarks/gpu_run.sh iter2 OUTDIR   # the same iteration with 2-process SFT/DPO on 2 GPUs (see params.gpu-2proc.yaml)
#
# Work files (the base model, datasets, models) go to $SRLM_GPU_WORK (default /tmp/srlm); results and
# logs (one .jsonl and one .tar.gz per step) to OUTDIR.
set -uo pipefail
STEP=$1 OUT=$2 W=${SRLM_GPU_WORK:-/tmp/srlm}
PY=${PYTHON:-python3}
POOL=../shared/data/oasst2_en/ift_oasst2_en_top1.jsonl
mkdir -p "$W" "$OUT"
rc=0
case $STEP in
  iter1) CUDA_VISIBLE_DEVICES=0 bash benchmarks/gpu_iteration.sh benchmarks/params.gpu.yaml "$W/gpu1" "$OUT/iter1.jsonl" h100-x1 "$W/base" || rc=$?
         tar czf "$OUT/iter1_logs.tar.gz" -C "$W/gpu1" logs metrics ;;
  iter2) bash benchmarks/gpu_iteration.sh benchmarks/params.gpu-2proc.yaml "$W/gpu2" "$OUT/iter2.jsonl" h100-x2 "$W/base" || rc=$?
         tar czf "$OUT/iter2_logs.tar.gz" -C "$W/gpu2" logs metrics ;;
  bench)
    mkdir -p "$W/bench-logs"
    for part in vllm nocache hf; do
      CUDA_VISIBLE_DEVICES=0 timeout 400 "$PY" -m benchmarks.vllm_gpu --part $part --model "$W/base" --prompts "$POOL" \
        --work "$W/bench" --out "$OUT/bench.jsonl" >"$W/bench-logs/$part.log" 2>&1 || { rc=$?; echo "part $part failed ($rc)"; tail -30 "$W/bench-logs/$part.log"; }
    done
    tar czf "$OUT/bench_logs.tar.gz" -C "$W" bench-logs ;;
  *) echo "unknown step $STEP"; exit 2 ;;
esac
exit $rc
