#!/usr/bin/env bash
# Issue 14: where the time and memory of the LLM train step go, beside PEFT LoRA. One device call
# (about 4 minutes on a fresh machine with the kit unpacked):
#   1. the Qwen2.5-1.5B-shaped fp16 decoder (STEP=export of tools/gpu_decode_bench.sh) unless it is there;
#   2. gatecut `train --task lm` (tools/gpu_llm_train.sh, SKIP_LORA) under the kernel tracer
#      (tools/ktrace): GPU kernel time per step by category, nvidia-smi peak, samples/s;
#   3. the same with each memory setting in VARIANTS (environment assignments, e.g.
#      GATECUT_ORT_MEM_PATTERN=1 (the memory pattern, off by default), GATECUT_ORT_CONFIG='key=value', GATECUT_CUDA_OPTIONS='key=value');
#   4. LoRA r=8 on q/v (tools/lora_llm_bench.py, torch autocast fp16) under the tracer.
# Then one table of kernel time per step by category, gatecut against LoRA (tools/ktrace_summary.py).
#
#   source /opt/gpukit/env.sh && bash tools/gpu_train_profile.sh
# The device-resident, CUDA-graph-replayed step (train --cuda-graph) as a variant beside the traced plain step
# (carry .gpu-carry/bound from tools/make_bound_carry.sh; a failing variant leaves the plain timing standing):
#   TRAIN_ARGS="--backend fused" VARIANTS="GATECUT_TRAIN_CUDA_GRAPH=1" SKIP_LORA=1 STEPS=16 bash tools/gpu_train_profile.sh
# SKIP_LORA=1 traces gatecut only. Settings: SHAPE (qwen2.5-1.5b), BATCH (8), SEQ (512), STEPS (10), VARIANTS (see below), OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/profile-out}
SHAPE=${SHAPE:-qwen2.5-1.5b}
BATCH=${BATCH:-8}
SEQ=${SEQ:-512}
STEPS=${STEPS:-10}
MODEL_DIR=${MODEL_DIR:-/opt/models}
VOCAB=${VOCAB:-151936}
VARIANTS=${VARIANTS-"GATECUT_ORT_MEM_PATTERN=1"}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/profile.log") 2>&1
START=$SECONDS
say() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }
[ -n "${JAVA:-}" ] || source /opt/gpukit/env.sh
export SHAPE BATCH SEQ STEPS MODEL_DIR VOCAB

[ -f "$MODEL_DIR/$SHAPE-kv-fp16.onnx" ] || OUT=$OUT/export STEP=export bash tools/gpu_decode_bench.sh > /dev/null 2>&1 \
  || { say "export FAILED (see $OUT/export)"; exit 1; }
say "model: $(ls -la "$MODEL_DIR/$SHAPE-kv-fp16.onnx"*)"
bash tools/ktrace/build.sh > /dev/null || { say "ktrace build FAILED"; exit 1; }
KT=$PWD/tools/ktrace/libktrace.so

say "gatecut under ktrace"
KTG=$OUT/kt-gatecut.tsv
SKIP_LORA=1 OUT=$OUT/gatecut \
  GATECUT="env CUDA_INJECTION64_PATH=$KT KTRACE_OUT=$KTG $JAVA ${ORT_GPU_OPTS:-} -jar target/gatecut-nonative.jar" \
  bash tools/gpu_llm_train.sh | grep -E '^\[|samples_per_s'
i=0
for v in $VARIANTS; do
  i=$((i + 1))
  say "gatecut with $v"
  env "$v" SKIP_LORA=1 OUT=$OUT/variant$i bash tools/gpu_llm_train.sh | grep -E '^\[|samples_per_s'
done

say "LoRA r=8 q/v under ktrace"
[ -n "${SKIP_LORA:-}" ] || env CUDA_INJECTION64_PATH="$KT" KTRACE_OUT="$OUT/kt-lora.tsv" python3 tools/lora_llm_bench.py --shape "$SHAPE" \
  --dtype fp16 --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" --warmup 2 > "$OUT/lora.json" 2> "$OUT/lora.err" \
  || { say "LoRA FAILED"; tail -5 "$OUT/lora.err"; }
tail -n 2 "$OUT/lora.json"

# per step: gatecut's trace holds STEPS steps (plus session start-up), LoRA's STEPS + 2 warm-up steps
python3 tools/ktrace_summary.py --runs "$STEPS" "gatecut=$OUT/kt-gatecut.tsv" --json "$OUT/kt-gatecut.json" > "$OUT/kt-gatecut.md"
[ -f "$OUT/kt-lora.tsv" ] && python3 tools/ktrace_summary.py --runs $((STEPS + 2)) "lora=$OUT/kt-lora.tsv" --json "$OUT/kt-lora.json" > "$OUT/kt-lora.md"
cat "$OUT/kt-gatecut.md" "$OUT/kt-lora.md"
[ -f "$OUT/kt-lora.json" ] && python3 - "$OUT/kt-gatecut.json" "$OUT/kt-lora.json" <<'PY'
import json, sys
g, l = (json.load(open(p))[0] for p in sys.argv[1:3])
cats = list(dict.fromkeys(list(g["categories"]) + list(l["categories"])))
print("| category | gatecut ms/step | LoRA ms/step | gatecut kernels/step | LoRA kernels/step |")
print("|---|---|---|---|---|")
for c in cats:
    a, b = g["categories"].get(c, {}), l["categories"].get(c, {})
    print(f"| {c} | {a.get('msPerRun', 0):.2f} | {b.get('msPerRun', 0):.2f} | {a.get('perRun', 0):.0f} | {b.get('perRun', 0):.0f} |")
print(f"| all kernels | {g['kernelMsPerRun']:.2f} | {l['kernelMsPerRun']:.2f} | {g['kernelsPerRun']:.0f} | {l['kernelsPerRun']:.0f} |")
print(f"| GPU busy | {g['busyMsPerRun']:.2f} | {l['busyMsPerRun']:.2f} | | |")
PY
rm -f "$OUT"/kt-*.tsv "$OUT"/*/kt-*.tsv
# keep what comes back small: the logs of each run, not their metrics files
find "$OUT" -name "*metrics.jsonl" -delete
# the device tool brings back a handful of files: everything in one archive too
tar -C "$OUT" -czf /tmp/profile-all.tgz . 2>/dev/null && mv /tmp/profile-all.tgz "$OUT/profile-all.tgz"
say done
