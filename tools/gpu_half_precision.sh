#!/usr/bin/env bash
# One device call: the zoo's float16/bfloat16 models on ONNX Runtime CUDA through the GPU kit
# (../shared/gpu/README.md), where half precision runs on real half-precision kernels (on the CPU,
# ONNX Runtime computes many float16 ops in float32 and has no bfloat16 kernels at all).
#
#   bash tools/gpu_half_precision.sh        # on the GPU machine, kit unpacked, JAR=/opt/gatecut.jar
#
# For each model: `prune --random-sparsity 0.4 --verify-device cuda` in both gate modes (the compiled
# and gated models compared on the GPU, against gatecut's float16/bfloat16 bound), then one epoch of
# gate training on the GPU (`train --device cuda`, 64 random sequences; classifier: 3 labels).
# Writes $OUT/half-precision.log. MODELS="a b" limits the models, ONLY=train skips the compile checks.
set -uo pipefail
source /opt/gpukit/env.sh
JAR=${JAR:-/opt/gatecut.jar}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
log="$OUT/half-precision.log"
work=$(mktemp -d)
gatecut() { $JAVA $ORT_GPU_OPTS -jar "$JAR" "$@"; }

python3 - "$work" <<'PY'
import json, random, sys
random.seed(7)
with open(sys.argv[1] + "/lm.jsonl", "w") as f:
    for _ in range(64):
        f.write(json.dumps({"input_ids": [random.randrange(3, 256) for _ in range(32)]}) + "\n")
with open(sys.argv[1] + "/cls.jsonl", "w") as f:
    for i in range(64):
        f.write(json.dumps({"input_ids": [random.randrange(3, 256) for _ in range(24)], "label": str(i % 3)}) + "\n")
PY

{
  echo "# $(date -u +%F) $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); gatecut $(gatecut --version)"
  for m in ${MODELS:-llama-ts17-fp16 qwen2-ts17-fp16 llama-kv-ts17-eager-fp16 qwen2-kv-ts17-eager-fp16 \
           llama-kv-ts17-eager-ortopt-fp16 bert-cls-ortfused-fp16 \
           llama-ts17-bf16 qwen2-ts17-bf16 llama-kv-ts17-eager-bf16 qwen2-kv-ts17-eager-bf16}; do
    for mode in coupled independent; do
      [[ ${ONLY:-} == train ]] && break
      echo "## $m $mode: prune"
      gatecut prune "onnx-models/deploy/$m.onnx" --random-sparsity 0.4 --gates-mode "$mode" --align 1 \
        --verify-device cuda -o "$work/$m-$mode.onnx" 2>&1 | grep -E "^(verify|targeted|gatecut)" 
    done
    echo "## $m: train 1 epoch on cuda"
    if [[ $m == *-cls-* ]]; then
      args=(--train "$work/cls.jsonl" --labels 0,1,2)
    else
      args=(--task lm --train "$work/lm.jsonl")
    fi
    gatecut train "onnx-models/deploy/$m.onnx" "${args[@]}" --target-sparsity 0.3 --device cuda --epochs 1 --batch 8 --lr 0.01 \
      --no-progress --log-every 2 -o "$work/run-$m" 2>&1 | tail -4
    grep -h '"step"' "$work/run-$m/metrics.jsonl" 2>/dev/null | head -1
    grep -h '"step"' "$work/run-$m/metrics.jsonl" 2>/dev/null | tail -1
  done
} 2>&1 | tee "$log"
