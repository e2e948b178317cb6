#!/usr/bin/env bash
# One device call: the streaming compile of a 7B-sized decoder on the GPU machine's CPUs (issue 14,
# part 3: target < 2 min wall time and < 2 GiB of Java heap). Runs `gatecut bench-compile` under
# -Xmx2g (a hard bound: an OutOfMemoryError would fail the run) and prints each step's wall time,
# the CPU time and the sampled peak heap.
#
#   bash tools/gpu_streaming_compile.sh                          # synthetic LLaMA-2-7B (writes 13.5 GB)
#   MODEL=/tmp/llama7b/model.onnx bash tools/gpu_streaming_compile.sh   # the torch export, kept on disk
#   VERIFY=cpu MODEL=... bash tools/gpu_streaming_compile.sh     # also the check in ONNX Runtime (CPU)
#
# Disk in $WORK: the model (13.5 GB, synthetic only), the shape probe's copy (13.5 GB, in
# java.io.tmpdir = $WORK), the scratch and saved slim weights (2 × ~9.5 GB) and, with VERIFY, the
# gated copy (13.5 GB): about 60 GB at most. Writes $OUT/streaming-compile.log.
set -uo pipefail
source /opt/gpukit/env.sh
JAR=${JAR:-/opt/gatecut.jar}
OUT=${OUT:-/tmp/out}
WORK=${WORK:-/tmp/bench-compile}
mkdir -p "$OUT" "$WORK"
gatecut() { $JAVA -Xmx2g -Djava.io.tmpdir="$WORK" -jar "$JAR" "$@"; }
verify=()
[[ -n ${VERIFY:-} ]] && verify=(--verify "$VERIFY")
{
  echo "# $(date -u +%F) $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB; gatecut $(gatecut --version)"
  df -h "$WORK" | tail -1
  if [[ -n ${MODEL:-} ]]; then
    gatecut bench-compile --model "$MODEL" --sparsity 0.3 --dir "$WORK/out" "${verify[@]}"
  else
    gatecut bench-compile --params 6.74e9 --sparsity 0.3 --dir "$WORK" "${verify[@]}"
  fi
} 2>&1 | tee "$OUT/streaming-compile.log"
