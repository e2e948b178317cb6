#!/usr/bin/env bash
# Gate training at LLM scale beside PEFT LoRA (issue 14 part 2), one device call, on the GPU machine:
# the decoder made by `STEP=export bash tools/gpu_decode_bench.sh` ($MODEL_DIR/$SHAPE-kv-$DTYPE.onnx,
# random weights from the transformers config class under a fixed seed), causal-LM training on the
# same token rows at batch B × S: gatecut `train --task lm` on CUDA (fp16 frozen weights, fp32 gates,
# biases and loss) and tools/lora_llm_bench.py (LoRA r=8 on q/v, the same architecture in the same
# precision, its own random weights). Peak GPU memory of each process is sampled with nvidia-smi (CUDA context included),
# plus torch's own peak for LoRA; samples/s from gatecut's metrics.jsonl and LoRA's timed steps.
#
#   source /opt/gpukit/env.sh && bash tools/gpu_llm_train.sh
# Settings: SHAPE (qwen2.5-1.5b), DTYPE (fp16), BATCH (8), SEQ (512), STEPS (12), MODEL_DIR (/opt/models),
# GATECUT (default $JAVA $ORT_GPU_OPTS -jar target/gatecut-nonative.jar). Writes $OUT/llm-train-*.
# Memory settings of gatecut's train step (exported to it; see bench-memory for the CPU profile):
#   GATECUT_LM_LOSS_CHUNKS (8): the LM loss in 8 sequence chunks with its head gradient written in the forward pass
#     (0: the plain, differentiated loss, which keeps [b, s, vocab] float32 tensors for the backward pass);
#   GATECUT_CUDA_ARENA (kSameAsRequested): how the training session's CUDA arena grows (kNextPowerOfTwo: ONNX
#     Runtime's default, which doubles each new region).
#   GATECUT_FUSED_KERNELS (unset: on for CUDA, whose kit has the gradient kernels): 1 / 0 builds the step with /
#     without ONNX Runtime's fused RMSNorm/SiLU kernels and their gradient kernels (passes.TrainingFusions).
#   GATECUT_ORT_LOG=verbose: ONNX Runtime's verbose session log (node placements per provider, among the rest). TRAIN_ARGS: extra `train` options, e.g. "--backend fused".
#   GATECUT_TRAIN_CUDA_GRAPH=1 adds --cuda-graph to TRAIN_ARGS (parameters on the device, the step replayed as a
#     CUDA graph), GATECUT_TRAIN_DEVICE_RESIDENT=1 adds --device-resident: one word each, so they fit in VARIANTS of
#     tools/gpu_train_profile.sh. Either flag needs bytedeco's CUDA JNI library: carried as
#     .gpu-carry/bound/libjnionnxruntime.so.xz (tools/make_bound_carry.sh), unpacked to $BOUND (/opt/gpukit/bound)
#     and passed as -Dgatecut.bound.native.path.
# KTRACE=1: afterwards, both runs again under the kernel tracer (tools/ktrace/libktrace.so, carried or built there
#   with tools/ktrace/build.sh; LoRA without warm-up steps so both traces hold STEPS steps), summarised side by side
#   per kernel category (tools/ktrace_summary.py, $OUT/kt-summary.md) and gatecut's idle gaps (kt-gaps.json).
# CPU dry run of the gatecut part (no nvidia-smi, no LoRA): MODEL=<small decoder> DEVICE=cpu VOCAB=<its vocabulary>
#   SKIP_LORA=1 GATECUT="java -cp ... dev.gatecut.cli.GatecutCli" BATCH=2 SEQ=16 STEPS=3 bash tools/gpu_llm_train.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/llm-out}
MODEL_DIR=${MODEL_DIR:-/opt/models}
SHAPE=${SHAPE:-qwen2.5-1.5b}
DTYPE=${DTYPE:-fp16}
BATCH=${BATCH:-8}
SEQ=${SEQ:-512}
STEPS=${STEPS:-12}
WORK=${WORK:-/tmp/llm-train}
NAME=$SHAPE-kv-$DTYPE
MODEL=${MODEL:-$MODEL_DIR/$NAME.onnx}
DEVICE=${DEVICE:-cuda}
VOCAB=${VOCAB:-32000}
export GATECUT_LM_LOSS_CHUNKS=${GATECUT_LM_LOSS_CHUNKS:-8}
export GATECUT_CUDA_ARENA=${GATECUT_CUDA_ARENA:-kSameAsRequested}
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/llm-train.log") 2>&1
START=$SECONDS
say() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }
[ -f "$MODEL" ] || { say "$MODEL missing: run STEP=export of gpu_decode_bench.sh first"; exit 2; }
if [ -z "${GATECUT:-}" ]; then
  [ -n "${JAVA:-}" ] || source /opt/gpukit/env.sh
  GATECUT="$JAVA ${ORT_GPU_OPTS:-} -jar target/gatecut-nonative.jar"
fi
read -r -a GC <<< "$GATECUT"
TRAIN_ARGS=${TRAIN_ARGS:-}
[ "${GATECUT_TRAIN_CUDA_GRAPH:-0}" = 1 ] && TRAIN_ARGS="$TRAIN_ARGS --cuda-graph"
[ "${GATECUT_TRAIN_DEVICE_RESIDENT:-0}" = 1 ] && TRAIN_ARGS="$TRAIN_ARGS --device-resident"
# shellcheck source=tools/gpu_bound_native.sh
source tools/gpu_bound_native.sh
bound_native || { say "bytedeco's CUDA JNI library is missing"; exit 2; }

# Token rows: the State of the Union corpus is not on this machine; the rows are random ids (3..vocab),
# which changes neither the memory nor the speed of a step.
python3 - "$WORK/tokens.jsonl" "$BATCH" "$SEQ" "$STEPS" "$VOCAB" <<'PY'
import json, random, sys
path, b, s, steps, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = random.Random(7)
with open(path, "w") as f:
    for _ in range(b * (steps + 2)):
        f.write(json.dumps({"input_ids": [r.randrange(3, vocab) for _ in range(s)]}) + "\n")
PY

# peak of this GPU's used memory while "$@" runs (MiB), minus what was used before
peak_run() {
  local tag=$1; shift
  local base=null mon=
  : > "$WORK/$tag.mem"
  if command -v nvidia-smi > /dev/null; then
    base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$WORK/$tag.mem" &
    mon=$!
  fi
  local t0=$SECONDS
  "$@" > "$OUT/llm-train-$tag.log" 2>&1
  local rc=$?
  [ -n "$mon" ] && { kill $mon 2>/dev/null; wait $mon 2>/dev/null; }
  local peak; peak=$(sort -n "$WORK/$tag.mem" | tail -1); peak=${peak:-null}
  say "$tag: exit $rc, $((SECONDS - t0)) s, nvidia-smi peak $peak MiB (before: $base MiB)"
  echo "{\"run\": \"$tag\", \"exit\": $rc, \"wall_s\": $((SECONDS - t0)), \"smi_peak_mib\": $peak, \"smi_base_mib\": $base}" >> "$OUT/llm-train.jsonl"
  tail -n 4 "$OUT/llm-train-$tag.log"
}

say "gatecut train --task lm $MODEL: batch $BATCH x $SEQ, $STEPS steps, $DEVICE (loss chunks $GATECUT_LM_LOSS_CHUNKS, arena $GATECUT_CUDA_ARENA, fused kernels ${GATECUT_FUSED_KERNELS:-default}) $TRAIN_ARGS"
# the gatecut run (its run folder as $1), and LoRA's (more options as arguments): timed, then again under the tracer
gatecut_train() {
  rm -rf "$1"
  # shellcheck disable=SC2086  # TRAIN_ARGS: extra train options, word-split on purpose
  "${GC[@]}" train "$MODEL" --task lm --train "$WORK/tokens.jsonl" --target-sparsity 0.3 --batch "$BATCH" \
    --max-len "$SEQ" --steps "$STEPS" --device "$DEVICE" --log-every 1 --no-progress -o "$1" $TRAIN_ARGS
}
lora_train() {
  python3 tools/lora_llm_bench.py --shape "$SHAPE" --dtype "$DTYPE" --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" \
    --tokens "$WORK/tokens.jsonl" "$@"
}
peak_run gatecut gatecut_train "$WORK/run"
cp "$WORK/run/metrics.jsonl" "$OUT/llm-train-gatecut-metrics.jsonl" 2>/dev/null
python3 - "$WORK/run/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"samples_per_s"' in l]
later = [r["samples_per_s"] for r in rows[2:]] or [r["samples_per_s"] for r in rows]
# a CUDA-graph run captures each of its two graphs after ONNX Runtime's warm-up runs: its second half is replay
half = [r["samples_per_s"] for r in rows[len(rows) // 2:]] or [0]
def median(key):   # per-step milliseconds over the later steps: the trainer's call and its session run within it
    v = sorted(r[key] for r in rows[2:] if key in r)
    return round(v[len(v) // 2], 2) if v else None
print(json.dumps({"method": "gatecut", "steps": len(rows), "samples_per_s_median": sorted(later)[len(later)//2],
                  "train_ms_median": median("train_ms"), "run_ms_median": median("run_ms"),
                  # device-resident steps: the trainer's host work before the run, and the run's copies and replay
                  **{k + "_median": median(k) for k in ("feed_ms", "upload_ms", "replay_ms", "download_ms")},
                  "samples_per_s_median_second_half": sorted(half)[len(half)//2],
                  "first_loss": rows[0].get("task_loss") if rows else None}))
PY
[ -n "${SKIP_LORA:-}" ] && { say "done (LoRA skipped)"; exit 0; }
for ck in "" "--checkpointing"; do
  [ -n "$ck" ] && [ -n "${SKIP_LORA_CKPT:-}" ] && continue   # SKIP_LORA_CKPT=1: LoRA without checkpointing only
  tag=lora${ck:+-ckpt}
  say "LoRA r=8 q/v ($DTYPE autocast) $ck"
  # shellcheck disable=SC2086  # no argument when $ck is empty
  peak_run "$tag" lora_train $ck
done
if [ "${KTRACE:-0}" = 1 ]; then
  KTRACE_LIB=${KTRACE_LIB:-$PWD/tools/ktrace/libktrace.so}
  [ -f "$KTRACE_LIB" ] || bash tools/ktrace/build.sh > /dev/null 2>&1 || true
  if [ ! -f "$KTRACE_LIB" ]; then
    say "ktrace: $KTRACE_LIB is missing and could not be built; skipped"
  else
    say "ktrace: gatecut and LoRA again under the kernel tracer, $STEPS steps each"
    CUDA_INJECTION64_PATH="$KTRACE_LIB" KTRACE_OUT="$WORK/kt-gatecut.tsv" gatecut_train "$WORK/run-kt" \
      > "$OUT/kt-gatecut.log" 2>&1 || say "ktrace: gatecut FAILED"
    cp "$WORK/run-kt/metrics.jsonl" "$OUT/kt-gatecut-metrics.jsonl" 2>/dev/null
    CUDA_INJECTION64_PATH="$KTRACE_LIB" KTRACE_OUT="$WORK/kt-lora.tsv" lora_train --warmup 0 \
      > "$OUT/kt-lora.log" 2>&1 || say "ktrace: LoRA FAILED"
    python3 tools/ktrace_summary.py --runs "$STEPS" gatecut="$WORK/kt-gatecut.tsv" lora="$WORK/kt-lora.tsv" \
      --json "$OUT/kt-summary.json" > "$OUT/kt-summary.md" 2>&1 || say "ktrace summary FAILED"
    python3 tools/ktrace_gaps.py "$WORK/kt-gatecut.tsv" --last-ms 3000 --json "$OUT/kt-gaps.json" | head -30
    head -c 6000 "$OUT/kt-summary.md"
  fi
fi
say done
