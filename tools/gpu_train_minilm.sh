#!/usr/bin/env bash
# Gate training of the pretrained all-MiniLM-L6-v2 on the full fine-foods set (4000 train /
# 1000 test) on the lent GPU, ONNX Runtime CUDA through the GPU kit (shared/gpu/README.md).
#
# Runs on the GPU machine, from the repo root, after the GPU kit is unpacked (/opt/gpukit/env.sh)
# and the five payload pieces are in $PAY (/opt/payload/pay.1 .. pay.5). The pieces are byte
# slices of one tar holding models/all-minilm-l6-v2.onnx, models/all-minilm-l6-v2-tokenizer.json,
# data/fine-foods-{train,test}.jsonl, gatecut-nonative.jar and SHA256SUMS. They travel spread
# over the device calls because a call carries at most 64 MiB (tree included) and the model
# (86 MiB), the jar (28 MiB) and the kit (3 x ~46 MiB) do not fit otherwise.
# How the pieces were made and carried: bench/results/2026-11-22-train-minilm-h100.md.
#
# Per gates mode (MODES, default "coupled independent"; the second only if time is left) it runs
#   compress --device cuda --batch 32 --max-len 128 --epochs 2 --target-sparsity 0.3 --lr 1e-2
# while nvidia-smi samples memory.used every 200 ms, and writes to $OUT/<mode>/:
#   compress.log (header + the command's output), gpumem.log, summary.json, metrics.jsonl.
# BACKENDS (default empty: no --backend flag, as before) lists training back-ends to run per mode,
# each as `--backend B` into $OUT/<mode>-<B>/; a back-end named again is run again, into
# $OUT/<mode>-<B>-2/ and so on (e.g. BACKENDS="fused ort-training fused ort-training").
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/payload.sh"
source "$(dirname "${BASH_SOURCE[0]}")/gpu_run.sh"

OUT=${OUT:-/tmp/train-out}
PAY=${PAY:-/opt/payload}
DEST=${DEST:-/opt/models}
BUDGET_S=${BUDGET_S:-540}          # whole script, seconds (the device call allows 600)
MAIN_MAX_S=${MAIN_MAX_S:-480}      # first run at most 8 minutes
MODES=${MODES:-"coupled independent"}
BACKENDS=${BACKENDS:-}
EPOCHS=${EPOCHS:-2}
BATCH=${BATCH:-32}
MAXLEN=${MAXLEN:-128}
DEVICE=${DEVICE:-cuda}             # cpu only for a dry run of the script
EXTRA_ARGS=${EXTRA_ARGS:-}         # e.g. "--steps 3" for a dry run
GPUKIT_ENV=${GPUKIT_ENV:-/opt/gpukit/env.sh}
TAR_SHA=${TAR_SHA:-898be78d975972168b900c813108134e4a88922212867408eafd4524b5f727c3}  # the tar of the 2026-11-22 run; tools/make_gpu_payload.sh prints a new one
MODEL_SHA=759c3cd2b7fe7e93933ad23c4c9181b7396442a2ed746ec7c1d46192c469c46e

T0=$(date +%s)
mkdir -p "$OUT"
if [ ! -f "$GPUKIT_ENV" ]; then
  echo "FAIL: $GPUKIT_ENV missing: fresh machine, redo the kit calls"; exit 2
fi
source "$GPUKIT_ENV"

# --- reassemble and check ------------------------------------------------------------------
# a warm machine that has unpacked it before skips straight to the checks
if [ ! -f "$DEST/SHA256SUMS" ]; then
  payload_unpack "$DEST" "$TAR_SHA" "payload tar" "$PAY"/pay.{1..5} || exit 3
fi
payload_sums "$DEST" SHA256SUMS || exit 3
msha=$(sha256sum "$DEST/models/all-minilm-l6-v2.onnx" | cut -d' ' -f1)
if [ "$msha" != "$MODEL_SHA" ]; then echo "FAIL: model sha256 $msha, expected $MODEL_SHA"; exit 3; fi
echo "model sha256 OK: $msha"

JAR="$DEST/gatecut-nonative.jar"
MODEL="$DEST/models/all-minilm-l6-v2.onnx"
TOK="$DEST/models/all-minilm-l6-v2-tokenizer.json"
TRAIN=${TRAIN:-$DEST/data/fine-foods-train.jsonl}
EVAL=${EVAL:-$DEST/data/fine-foods-test.jsonl}

header() {
  echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,pstate --format=csv,noheader)"
  echo "# host: $(nproc) cpus, $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "# java: $($JAVA -version 2>&1 | head -1)"
  echo "# jar sha256: $(sha256sum "$JAR" | cut -d' ' -f1)"
  echo "# model sha256: $msha"
  echo "# data: train $(wc -l < "$TRAIN") rows, eval $(wc -l < "$EVAL") rows"
}
header

summarise() {  # $1 = result folder
  python3 - "$1" <<'PY'
import json, statistics, sys, os
d = sys.argv[1]
rows = []
try:
    rows = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl")) if l.strip()]
except OSError as e:
    print("  metrics:", e)
steps = [r for r in rows if not r.get("eval")]
evals = [r for r in rows if r.get("eval")]
if len(steps) > 1:
    rates = [r["samples_per_s"] for r in steps[1:]]
    print(f"  samples/s over {len(rates)} logged rows after the first: median {statistics.median(rates):.1f}"
          f" (min {min(rates):.1f}, max {max(rates):.1f}); first row {steps[0]['samples_per_s']:.1f}")
for e in evals:
    print(f"  eval epoch {e['epoch']} step {e['step']}: accuracy {e.get('accuracy')} loss {e.get('task_loss')}"
          f" compiled sparsity {e.get('sparsity')}")
mem = []
try:
    mem = [int(l.strip()) for l in open(os.path.join(d, "gpumem.log")) if l.strip().isdigit()]
except OSError as e:
    print("  gpumem:", e)
if mem:
    print(f"  GPU memory.used: first sample {mem[0]} MiB, peak {max(mem)} MiB, {len(mem)} samples")
try:
    print("  summary.json:", json.dumps(json.load(open(os.path.join(d, "summary.json")))))
except OSError as e:
    print("  summary:", e)
PY
}

first_wall=0
RUNS=()
for mode in $MODES; do
  if [ -z "$BACKENDS" ]; then RUNS+=("$mode:"); continue; fi
  for b in $BACKENDS; do RUNS+=("$mode:$b"); done
done
declare -A SEEN=()
for run in "${RUNS[@]}"; do
  mode=${run%%:*}; backend=${run#*:}
  if [ -n "$backend" ]; then
    SEEN[$mode-$backend]=$(( ${SEEN[$mode-$backend]:-0} + 1 ))
    tag=$mode-$backend; [ "${SEEN[$mode-$backend]}" -gt 1 ] && tag=$tag-${SEEN[$mode-$backend]}
    BACKEND_ARGS=(--backend "$backend")
  else
    tag=$mode; BACKEND_ARGS=()
  fi
  now=$(date +%s); left=$((BUDGET_S - (now - T0)))
  if [ "$first_wall" -gt 0 ]; then
    need=$((first_wall * 13 / 10 + 20))
    if [ "$left" -lt "$need" ]; then
      echo "SKIP $tag: $left s left, about $need s needed"; continue
    fi
    limit=$left
  else
    limit=$(( left < MAIN_MAX_S ? left : MAIN_MAX_S ))
  fi
  R="$OUT/$tag"; W=/tmp/train-$tag
  mkdir -p "$R"; rm -rf "$W"
  CMD=("$JAVA" $ORT_GPU_OPTS -jar "$JAR" compress "$MODEL" --tokenizer "$TOK" --train "$TRAIN" --eval "$EVAL"
       --target-sparsity 0.3 --lr 1e-2 --batch "$BATCH" --max-len "$MAXLEN" --epochs "$EPOCHS"
       --gates-mode "$mode" "${BACKEND_ARGS[@]}" --device "$DEVICE" --no-progress $EXTRA_ARGS -o "$W")
  { header; echo "# limit: ${limit}s"; echo "# cmd: ${CMD[*]}"; } > "$R/compress.log"
  echo "=== $tag: start (limit ${limit}s)"
  gpu_run_sampled "$R/compress.log" "$R/gpumem.log" "$limit" "${CMD[@]}"
  rc=$GPU_RUN_RC
  echo "=== $tag: exit $rc, wall ${GPU_RUN_WALL}s"
  [ "$first_wall" -gt 0 ] || first_wall=$(python3 -c "import math; print(math.ceil($GPU_RUN_END - $GPU_RUN_START))")
  cp "$W/summary.json" "$R/" 2>/dev/null || echo "  (no summary.json)"
  cp "$W/run/metrics.jsonl" "$R/" 2>/dev/null || echo "  (no metrics.jsonl)"
  if [ "$rc" -ne 0 ]; then echo "--- last lines of compress.log:"; tail -n 40 "$R/compress.log"; fi
  grep -v '^#' "$R/compress.log" | tail -n 25
  summarise "$R"
done
echo "total script time: $(( $(date +%s) - T0 ))s"
