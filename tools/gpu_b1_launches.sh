#!/usr/bin/env bash
# One device call: does a compiled model lose at batch 1 because cuBLAS picks split-K (an extra
# reduce kernel per GEMM) for its narrower GEMMs, and does taking cuBLAS's workspace away change that?
# Runs after tools/gpu_bench_prune.sh has exported and pruned MODEL (default bert-base-fused) into
# $BENCH_DIR on the same warm machine. Needs tools/ktrace/libktrace.so (tools/ktrace/build.sh).
#
#   source /opt/gpukit/env.sh && MODEL=bert-base-fused SPARSITIES="0.3 0.5" bash tools/gpu_b1_launches.sh
#
# For each cuBLAS setting (none; CUBLASLT_WORKSPACE_SIZE=0; CUBLAS_WORKSPACE_CONFIG=:0:0): kernels per
# run and split-K reduce kernels per run (ktrace), then batch-1 latency of dense and compiled models,
# 400 runs in 100 interleaved rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${JAVA:?source /opt/gpukit/env.sh first}"
BENCH_DIR=${BENCH_DIR:-/tmp/bench}
MODEL=${MODEL:-bert-base-fused}
SPARSITIES=${SPARSITIES:-"0.3 0.5"}
GC=($JAVA ${ORT_GPU_OPTS:-} -jar target/gatecut-nonative.jar)
files=("$BENCH_DIR/$MODEL.onnx")
for s in $SPARSITIES; do files+=("$BENCH_DIR/$MODEL-s$s.onnx"); done
for setting in "" "CUBLASLT_WORKSPACE_SIZE=0" "CUBLAS_WORKSPACE_CONFIG=:0:0"; do
  echo "== cuBLAS setting: ${setting:-(none)}"
  traces=()
  for f in "${files[@]}"; do
    n=$(basename "$f" .onnx)
    env $setting CUDA_INJECTION64_PATH="$PWD/tools/ktrace/libktrace.so" KTRACE_OUT="/tmp/kt-$n.tsv" \
        "${GC[@]}" bench "$f" --device cuda --batch 1 --seq 128 --runs 40 --warmup 10 > /dev/null
    traces+=("$n=/tmp/kt-$n.tsv")
  done
  python3 tools/ktrace_summary.py --runs 50 "${traces[@]}" | grep -E "^## |splitK|^\| (gemm|all kernels|GPU busy) "
  env $setting "${GC[@]}" bench "${files[@]}" --device cuda --batch 1 --seq 128 --runs 400 --warmup 20 --rounds 100
done
