#!/usr/bin/env bash
# Data-parallel gate training on two GPUs (issue 14 part 5), one device call on kind nvidia-h200-x2:
# the same causal-LM run (same model, token rows, seed, global batch and steps) on one GPU (the fused
# step, `--backend fused --devices 0`) and on two (`--devices 0,1`: one ONNX Runtime session per GPU,
# each batch split into row shards, gradients averaged on the host). Prints samples/s of each (median
# of the steps after the first eight, or two in runs under 12 steps, from metrics.jsonl), the scaling efficiency
# (samples/s on 2) / (2 × samples/s on 1), and how far the two runs' trained parameters and per-step
# losses are apart (max abs difference of θ, biases; max relative difference of the losses).
#
#   source /opt/gpukit/env.sh && bash tools/gpu_data_parallel.sh
# Measured on 2026-11-30 (bench/results/2026-11-30-data-parallel-cuda-graph-h200x2.md), one call per global batch:
#   PREFLIGHT=0 TRAIN_ARGS=--cuda-graph STEPS=16 BATCH=8 (16, 32) bash tools/gpu_data_parallel.sh
# Weak scaling (the same batch per GPU) is 2-GPU at BATCH=2B against 1-GPU at BATCH=B across two calls.
#
# The model is the Qwen2.5-1.5B-shaped fp16 decoder of `STEP=export bash tools/gpu_decode_bench.sh`
# ($MODEL_DIR/$SHAPE-kv-$DTYPE.onnx); it is exported here first when missing (about 1 min: 43.5 s export +
# 7 s save on an H200). Settings (environment): SHAPE (qwen2.5-1.5b), DTYPE (fp16), BATCH (global batch, 8),
# SEQ (512), STEPS (20), DEVICES (0,1), MODEL (a model file instead of the export), MODEL_DIR (/opt/models),
# VOCAB (token ids drawn below it; 32000), LIMIT (seconds per training run, 240), TRAIN_ARGS (more `train` options for
# both runs, e.g. "--cuda-graph": the one-device run then replays its step as a CUDA graph and each replica its
# shard step, one packed tensor up and one down per step), GATECUT (command; default
# $JAVA $ORT_GPU_OPTS -jar target/gatecut-nonative.jar). Writes $OUT/dp.log, dp-{1,N}gpu.log, dp-*-metrics.jsonl,
# dp-*.mem (nvidia-smi samples), dp-summary.json. First (PREFLIGHT=1, the default on a GPU) a 3-step run of the zoo's
# tiny decoder on the GPUs, so a failure shows in seconds.
#
# Without nvidia-smi (a CPU dry run) the GPU-only parts are skipped: no export, no memory sampling, and
# both runs use the CPU (`--device cpu`; two CPU sessions for the "2" run), by default on the zoo's tiny
# GQA decoder: MODEL=onnx-models/deploy/qwen2-kv-ts17-eager.onnx VOCAB=250 SEQ=16 BATCH=5.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/dp-out}
WORK=${WORK:-/tmp/dp-train}
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/dp.log") 2>&1
START=$SECONDS
say() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }

if command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi -L > /dev/null 2>&1; then
  GPU=1
  DEVICE=cuda
  SHAPE=${SHAPE:-qwen2.5-1.5b}
  DTYPE=${DTYPE:-fp16}
  MODEL_DIR=${MODEL_DIR:-/opt/models}
  MODEL=${MODEL:-$MODEL_DIR/$SHAPE-kv-$DTYPE.onnx}
  BATCH=${BATCH:-8}
  SEQ=${SEQ:-512}
  VOCAB=${VOCAB:-32000}
else
  GPU=0
  DEVICE=cpu
  MODEL=${MODEL:-onnx-models/deploy/qwen2-kv-ts17-eager.onnx}
  BATCH=${BATCH:-5}
  SEQ=${SEQ:-16}
  VOCAB=${VOCAB:-250}
fi
STEPS=${STEPS:-20}
DEVICES=${DEVICES:-0,1}
LIMIT=${LIMIT:-240}
IFS=, read -r -a DEVICE_LIST <<< "$DEVICES"
N=${#DEVICE_LIST[@]}
FIRST=${DEVICE_LIST[0]}

if [ -z "${GATECUT:-}" ]; then
  if [ -z "${JAVA:-}" ] && [ -f /opt/gpukit/env.sh ]; then
    # shellcheck disable=SC1091
    source /opt/gpukit/env.sh
  fi
  : "${JAVA:?JAVA is not set: source /opt/gpukit/env.sh first, or set GATECUT}"
  [ -f target/gatecut-nonative.jar ] || { say "target/gatecut-nonative.jar is missing: build it (mvn package) and carry it"; exit 2; }
  GATECUT="$JAVA ${ORT_GPU_OPTS:-} -jar target/gatecut-nonative.jar"
fi
read -r -a GC <<< "$GATECUT"
TRAIN_ARGS=${TRAIN_ARGS:-}
# shellcheck source=tools/gpu_bound_native.sh
source tools/gpu_bound_native.sh
bound_native || { say "bytedeco's CUDA JNI library is missing"; exit 2; }

if [ "$GPU" = 1 ]; then
  say "$(date -u +%FT%TZ); $(nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader | tr '\n' ';')"
  GPUS=$(nvidia-smi -L | wc -l)
  [ "$GPUS" -ge "$N" ] || { say "--devices $DEVICES needs $N GPUs, this machine has $GPUS: run on kind nvidia-h200-x2"; exit 2; }
  if [ ! -f "$MODEL" ]; then
    say "$MODEL missing: exporting $SHAPE $DTYPE (tools/export_decoder_kv.py)"
    python3 tools/export_decoder_kv.py --shape "$SHAPE" --dtype "$DTYPE" --out "$MODEL_DIR" || { say "export FAILED"; exit 1; }
  fi
else
  say "$(date -u +%FT%TZ); no nvidia-smi: CPU dry run ($N CPU sessions for the data-parallel run), GPU parts skipped"
fi
[ -f "$MODEL" ] || { say "$MODEL missing"; exit 2; }

# Token rows: random ids (speed and the agreement of the two runs do not depend on the text).
python3 - "$WORK/tokens.jsonl" "$BATCH" "$SEQ" "$STEPS" "$VOCAB" <<'PY'
import json, random, sys
path, b, s, steps, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = random.Random(7)
with open(path, "w") as f:
    for _ in range(b * steps):
        f.write(json.dumps({"input_ids": [r.randrange(3, vocab) for _ in range(s)]}) + "\n")
PY

# run TAG DEVICES: one training run, GPU memory sampled on every GPU (GPU machine only)
run() {
  local tag=$1 devices=$2 mon=""
  rm -rf "$WORK/$tag"
  if [ "$GPU" = 1 ]; then
    nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/dp-$tag.mem" 2>&1 &
    mon=$!
  fi
  local t0=$SECONDS
  timeout -k 10 "$LIMIT" "${GC[@]}" train "$MODEL" --task lm --train "$WORK/tokens.jsonl" --target-sparsity 0.3 \
    --batch "$BATCH" --max-len "$SEQ" --steps "$STEPS" --seed 1 --device "$DEVICE" --backend fused \
    --devices "$devices" --log-every 1 --no-progress -o "$WORK/$tag" $TRAIN_ARGS > "$OUT/dp-$tag.log" 2>&1
  local rc=$?
  [ -n "$mon" ] && { kill "$mon" 2>/dev/null; wait "$mon" 2>/dev/null; }
  say "$tag (--devices $devices): exit $rc, $((SECONDS - t0)) s"
  tail -n 3 "$OUT/dp-$tag.log"
  cp "$WORK/$tag/metrics.jsonl" "$OUT/dp-$tag-metrics.jsonl" 2>/dev/null
  return $rc
}

if [ "${PREFLIGHT:-$GPU}" = 1 ]; then
  # Seconds on the zoo's tiny GQA decoder: the replicas open on every GPU and train before the big model loads.
  say "preflight: onnx-models/deploy/qwen2-kv-ts17-eager.onnx, --devices $DEVICES, 3 steps"
  python3 -c "
import json, random
r = random.Random(3)
with open('$WORK/tiny.jsonl', 'w') as f:
    for _ in range(24):
        f.write(json.dumps({'input_ids': [r.randrange(3, 250) for _ in range(16)]}) + '\\n')
"
  rm -rf "$WORK/preflight"
  timeout -k 10 120 "${GC[@]}" train onnx-models/deploy/qwen2-kv-ts17-eager.onnx --task lm --train "$WORK/tiny.jsonl" \
    --target-sparsity 0.3 --batch 5 --max-len 16 --steps 3 --device "$DEVICE" --devices "$DEVICES" --no-progress \
    -o "$WORK/preflight" $TRAIN_ARGS > "$OUT/dp-preflight.log" 2>&1 || { say "preflight FAILED:"; tail -n 5 "$OUT/dp-preflight.log"; exit 1; }
  tail -n 2 "$OUT/dp-preflight.log"
fi

say "model $MODEL: global batch $BATCH x $SEQ, $STEPS steps, $DEVICE"
run 1gpu "$FIRST" || { say "one-device run FAILED"; exit 1; }
run "${N}gpu" "$DEVICES" || { say "$N-device run FAILED"; exit 1; }

python3 - "$WORK" "$N" "$GPU" "$OUT" "$MODEL" "$BATCH" "$SEQ" "$STEPS" <<'PY'
import json, os, sys
work, n, gpu, out = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
model, batch, seq, steps = sys.argv[5], int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])

def rows(tag):
    return [json.loads(l) for l in open(os.path.join(work, tag, "metrics.jsonl")) if '"samples_per_s"' in l]

# Steps counted: those after the first 8 when there are 12 or more (a --cuda-graph run captures its two graphs within
# the first 7 runs, and the replicas run one at a time until then), else after the first 2.
SKIP = 8 if steps >= 12 else 2

def rate(rs):
    later = [r["samples_per_s"] for r in rs[SKIP:]] or [r["samples_per_s"] for r in rs]
    return sorted(later)[len(later) // 2]

def theta(tag):
    g = json.load(open(os.path.join(work, tag, "gates.raw.json")))["gates"]
    return {k: v["theta"] for k, v in g.items()}

def params(tag):
    return json.load(open(os.path.join(work, tag, "params.json")))["params"]

def max_abs(a, b, skip=lambda k: False):
    worst, where = 0.0, None
    for k in a:
        if skip(k):
            continue
        d = max((abs(x - y) for x, y in zip(a[k], b[k])), default=0.0)
        if d > worst:
            worst, where = d, k
    return worst, where

def peak_mib(tag):
    path = os.path.join(out, f"dp-{tag}.mem")
    if not gpu or not os.path.exists(path):
        return None
    peak = {}
    for line in open(path):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[1].isdigit():
            peak[parts[0]] = max(peak.get(parts[0], 0), int(parts[1]))
    return peak

one, many = rows("1gpu"), rows(f"{n}gpu")

def phases(rs):   # median ms per phase over the later steps (train_ms: the trainer's call; the rest: its parts)
    later = rs[SKIP:] or rs
    medians = {}
    for k in sorted({k for r in later for k in r if k.endswith("_ms")}):
        v = sorted(r[k] for r in later if k in r)
        medians[k] = round(v[len(v) // 2], 2)
    return medians

r1, rn = rate(one), rate(many)
eff = rn / (n * r1)
loss_rel = max(abs(a["loss"] - b["loss"]) / max(abs(a["loss"]), 1e-12) for a, b in zip(one, many))
t1, tn = theta("1gpu"), theta(f"{n}gpu")
dtheta, gate = max_abs(t1, tn)
p1, pn = params("1gpu"), params(f"{n}gpu")
# Key biases: zero gradient in exact arithmetic (softmax cancels them), AdamW moves them by float noise.
key = lambda k: "k_proj.bias" in k or "key.bias" in k
dparam, pname = max_abs(p1, pn, skip=key)
dkey, _ = max_abs(p1, pn, skip=lambda k: not key(k))
projected_equal = json.load(open(os.path.join(work, "1gpu", "gates.json"))) == json.load(open(os.path.join(work, f"{n}gpu", "gates.json")))
summary = {"model": model, "device": "cuda" if gpu else "cpu", "replicas": n, "global_batch": batch, "seq": seq,
           "steps": steps, "samples_per_s_1": r1, f"samples_per_s_{n}": rn, "scaling_efficiency": eff,
           "theta_max_abs_diff": dtheta, "theta_worst_gate": gate, "params_max_abs_diff": dparam,
           "params_worst": pname, "key_bias_max_abs_diff": dkey, "loss_max_rel_diff": loss_rel,
           "projected_gates_equal": projected_equal, "phases_ms_1": phases(one), f"phases_ms_{n}": phases(many), "peak_mib_1": peak_mib("1gpu"), f"peak_mib_{n}": peak_mib(f"{n}gpu")}
json.dump(summary, open(os.path.join(out, "dp-summary.json"), "w"), indent=1)
print(f"samples/s: 1 device {r1:.2f}, {n} devices {rn:.2f}; scaling efficiency {rn:.2f} / ({n} x {r1:.2f}) = {eff:.3f} (target >= 0.9)")
print(f"trained gates: max |theta_1 - theta_{n}| = {dtheta:.3e} ({gate}); projected gates.json equal: {projected_equal}")
print(f"step phases, median ms: 1 device {summary['phases_ms_1']}; {n} devices {summary[f'phases_ms_{n}']}")
print(f"biases/head: max abs diff {dparam:.3e} ({pname}); key biases {dkey:.3e}; per-step loss max rel diff {loss_rel:.3e}")
if gpu:
    print(f"peak GPU memory (nvidia-smi, MiB, by GPU): 1 device {summary['peak_mib_1']}, {n} devices {summary[f'peak_mib_{n}']}")
PY
say done
