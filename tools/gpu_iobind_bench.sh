#!/usr/bin/env bash
# Batch 1 and decode with device-resident I/O (issue 15 part 2, issue 14 part 4), on the GPU machine, in one
# call: `gatecut bench --io-binding` (bytedeco's binding of ONNX Runtime's C++ API on the kit's libonnxruntime).
#
# Here, once:  mvn -B -o package -DskipTests && bash tools/make_bound_carry.sh
# There (kit unpacked, shared/gpu/README.md), carry [".gpu-carry/bound", "target/gatecut-nonative.jar"]:
#   bash tools/gpu_iobind_bench.sh
# Each part skips what an earlier call on the same warm machine already left in $BENCH_DIR / $MODEL_DIR,
# so if a call ends at the 10-minute limit, the same call again continues where it stopped.
#
# Parts (PARTS, default "preflight single decode"):
#   preflight  the zoo's tiny fp16 KV decoder on CUDA: bound single runs (plain and CUDA graph) and
#              bound decode, tokens checked against the Java API path (seconds).
#   single     LLaMA-shaped 0.52B fp16 (tools/export_bench_models.py llama-0.5b-fp16, no KV cache), pruned
#              at SPARSITIES (random coupled gates, --align ALIGN): dense vs slim at batch 1 x SEQ, plain
#              (Java API), --cuda-graph (host-pinned, for comparison), bound and graph-bound, interleaved.
#   decode     the same shape with its LM head and KV cache (tools/export_decoder_kv.py --shape llama-0.5b),
#              pruned likewise: greedy decode at BATCHES with the cache on the host (Java API) and on the
#              device (bound), tokens compared.
# Writes into $OUT: iobind.log, single-llama-0.5b-fp16.json, decode-b1.json, decode-b16.json (bench --json).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/iobind-out}
BENCH_DIR=${BENCH_DIR:-/tmp/bench}
MODEL_DIR=${MODEL_DIR:-/opt/models}
PARTS=${PARTS:-"preflight single decode"}
SPARSITIES=${SPARSITIES:-"0.3 0.5"}
ALIGN=${ALIGN:-32}
SEQ=${SEQ:-128}
SINGLE_RUNS=${SINGLE_RUNS:-400}
PREFILL=${PREFILL:-128}
DECODE=${DECODE:-64}
BATCHES=${BATCHES:-"1 16"}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-2}
DEVICE=${DEVICE:-cuda}   # cpu: a dry run of the script's plumbing (no CUDA graphs there)
START=$SECONDS
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$BENCH_DIR" "$MODEL_DIR"
exec > >(tee -a "$OUT/iobind.log") 2>&1
say() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }

if [ -z "${JAVA:-}" ] && [ -f /opt/gpukit/env.sh ]; then
  # shellcheck disable=SC1091
  source /opt/gpukit/env.sh
fi
: "${JAVA:?JAVA is not set: unpack the GPU kit first (shared/gpu/README.md), or JAVA=java for a CPU dry run}"
JAR=${JAR:-target/gatecut-nonative.jar}
[ -f "$JAR" ] || [ ! -f /opt/gatecut.jar ] || JAR=/opt/gatecut.jar
[ -f "$JAR" ] || { echo "$JAR is missing: build it (mvn package) and carry it (or copy it to /opt/gatecut.jar)"; exit 2; }
BOUND=${BOUND:-/opt/gpukit/bound}
if [ -f .gpu-carry/bound/libjnionnxruntime.so.xz ]; then
  mkdir -p "$BOUND" && xz -dc .gpu-carry/bound/libjnionnxruntime.so.xz > "$BOUND/libjnionnxruntime.so.tmp" \
    && mv "$BOUND/libjnionnxruntime.so.tmp" "$BOUND/libjnionnxruntime.so"
fi
[ -f "$BOUND/libjnionnxruntime.so" ] || { echo "$BOUND/libjnionnxruntime.so is missing: run tools/make_bound_carry.sh here and carry .gpu-carry/bound"; exit 2; }
GC=("$JAVA" ${ORT_GPU_OPTS:-} "-Dgatecut.bound.native.path=$BOUND" -jar "$JAR")
say "start $(date -u +%FT%TZ), $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1), parts: $PARTS"

prune_all() { # base.onnx -> base-sS.onnx for each sparsity (skips those present)
  local base=$1 s out
  for s in $SPARSITIES; do
    out="${base%.onnx}-s$s.onnx"
    [ -f "$out" ] && continue
    say "prune $(basename "$base") --random-sparsity $s --gates-mode coupled --align $ALIGN"
    if ! timeout 300 "${GC[@]}" prune "$base" --random-sparsity "$s" --seed 1 --gates-mode coupled --align "$ALIGN" \
        --verify-device "$DEVICE" -o "$out" > "$OUT/prune-$(basename "${out%.onnx}").log" 2>&1; then
      tail -n 4 "$OUT/prune-$(basename "${out%.onnx}").log"
      say "prune with verification FAILED; again with --no-verify (the compiled model is then UNVERIFIED)"
      timeout 300 "${GC[@]}" prune "$base" --random-sparsity "$s" --seed 1 --gates-mode coupled --align "$ALIGN" \
        --no-verify -o "$out" >> "$OUT/prune-$(basename "${out%.onnx}").log" 2>&1 || say "prune s=$s FAILED"
    fi
    tail -n 3 "$OUT/prune-$(basename "${out%.onnx}").log"
  done
}

for part in $PARTS; do
case "$part" in
preflight)
  tiny=onnx-models/deploy/llama-kv-ts17-eager-fp16.onnx
  say "preflight: $tiny, bound single runs (b1 x 16) and bound decode (b2, 8 + 8)"
  timeout 120 "${GC[@]}" bench "$tiny" --device "$DEVICE" --batch 1 --seq 16 --runs 20 --warmup 3 --io-binding \
    || { say "preflight single FAILED"; exit 1; }
  timeout 120 "${GC[@]}" bench "$tiny" --device "$DEVICE" --generate --batch 2 --prefill 8 --decode 8 --runs 2 --warmup 1 \
    --io-binding || { say "preflight decode FAILED"; exit 1; }
  ;;
single)
  m=llama-0.5b-fp16
  if [ ! -f "$BENCH_DIR/$m.onnx" ]; then
    say "export $m (tools/export_bench_models.py)"
    python3 tools/export_bench_models.py --out "$BENCH_DIR" --models "$m" --no-check || { say "export $m FAILED"; continue; }
  fi
  prune_all "$BENCH_DIR/$m.onnx"
  files=("$BENCH_DIR/$m.onnx")
  for s in $SPARSITIES; do [ -f "$BENCH_DIR/$m-s$s.onnx" ] && files+=("$BENCH_DIR/$m-s$s.onnx"); done
  say "single: $m, batch 1 x $SEQ, $SINGLE_RUNS runs in 100 rounds: plain, --cuda-graph, --io-binding (bound, graph-bound)"
  timeout 400 "${GC[@]}" bench "${files[@]}" --device "$DEVICE" --batch 1 --seq "$SEQ" --runs "$SINGLE_RUNS" --warmup 20 \
    --rounds 100 --cuda-graph --io-binding --json -v > "$OUT/single-$m.json" || { say "single $m FAILED (exit $?)"; continue; }
  python3 - "$OUT/single-$m.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
def ms(t):
    return f"{t['medianMs']:.3f}" if "medianMs" in t else "-"
def x(t):
    return f"{t['speedup']:.2f}" if t.get("speedup") else "-"
print(f"batch {r['batch']} x {r['sequence']}, {r['runs']} runs in {r['rounds']} rounds")
print("| model | plain ms | plain x | host-pinned graph ms | graph x | bound ms | bound x | graph-bound ms | graph-bound x | status |")
print("|---|---|---|---|---|---|---|---|---|---|")
for p, g, b in zip(r["models"], r["cudaGraph"], r["ioBinding"]):
    status = "; ".join(s for s in (g["status"], b["bound"]["status"], b["graph"]["status"]) if s != "ok") or "ok"
    print(f"| {p['file'].split('/')[-1]} | {p['medianMs']:.3f} | {p['speedup']:.2f} | {ms(g)} | {x(g)} | "
          f"{ms(b['bound'])} | {x(b['bound'])} | {ms(b['graph'])} | {x(b['graph'])} | {status} |")
PY
  ;;
decode)
  name=llama-0.5b-kv-fp16
  if [ ! -f "$MODEL_DIR/$name.onnx" ]; then
    say "export $name (tools/export_decoder_kv.py --shape llama-0.5b --dtype fp16)"
    python3 tools/export_decoder_kv.py --shape llama-0.5b --dtype fp16 --out "$MODEL_DIR" || { say "export $name FAILED"; continue; }
  fi
  prune_all "$MODEL_DIR/$name.onnx"
  files=("$MODEL_DIR/$name.onnx")
  for s in $SPARSITIES; do [ -f "$MODEL_DIR/$name-s$s.onnx" ] && files+=("$MODEL_DIR/$name-s$s.onnx"); done
  for b in $BATCHES; do
    say "decode: batch $b, prefill $PREFILL, $DECODE steps, $RUNS runs in $RUNS rounds; cache on the host, then on the device"
    timeout 400 "${GC[@]}" bench "${files[@]}" --generate --device "$DEVICE" --batch "$b" --prefill "$PREFILL" \
      --decode "$DECODE" --runs "$RUNS" --warmup "$WARMUP" --rounds "$RUNS" --io-binding --json -v > "$OUT/decode-b$b.json" \
      || { say "decode batch $b FAILED (exit $?)"; continue; }
    python3 - "$OUT/decode-b$b.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"batch {r['batch']}, prefill {r['prefill']}, {r['decode']} decode steps")
print("| model | ideal decode x | host cache ms/token | x | device cache ms/token | tokens/s | x | of ideal | argmax ms | vs host | prefill ms (device) | prefill x | ideal | same tokens |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for p, b in zip(r["models"], r["ioBinding"]["models"]):
    ideal = b["idealDecode"]
    of = (b["decodeSpeedup"] - 1) / (ideal - 1) if ideal != 1 else float("nan")
    print(f"| {p['file'].split('/')[-1]} | {ideal:.2f} | {p['stepMedianMs']:.3f} | {p['decodeSpeedup']:.2f} | "
          f"{b['stepMedianMs']:.3f} | {b['tokensPerSecond']:.1f} | {b['decodeSpeedup']:.2f} | {of:.2f} | "
          f"{b['argmaxMedianMs']:.3f} | {b['vsPlain']:.2f} | {b['prefillMedianMs']:.2f} | {b['prefillSpeedup']:.2f} | "
          f"{b['idealPrefill']:.2f} | {b['rowsWithPlainTokens']}/{r['batch']} |")
PY
  done
  ;;
*)
  echo "PARTS: preflight, single, decode; not '$part'"; exit 2 ;;
esac
done
say "done"
