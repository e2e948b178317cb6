#!/usr/bin/env bash
# Decode speed of slim LLMs (issue 14 part 4) and batch 1 through CUDA graphs (issue 15 part 2), on the
# GPU machine, in steps that each fit one device call (≤ 10 min). Models are made there and stay there
# ($MODEL_DIR, default /opt/models): a machine keeps its disk only while warm (about 30 s after a call),
# so run the steps back to back. Each step skips what an earlier call already left in $MODEL_DIR.
#
# From the repository root, GPU kit unpacked (shared/gpu/README.md), target/gatecut-nonative.jar carried:
#
#   source /opt/gpukit/env.sh && STEP=export bash tools/gpu_decode_bench.sh   # ~3-5 min: tiny preflight, Qwen2.5-1.5B-shaped fp16
#   source /opt/gpukit/env.sh && STEP=prune  bash tools/gpu_decode_bench.sh   # compile 30% / 50% (random coupled gates, --align 32)
#   source /opt/gpukit/env.sh && STEP=decode bash tools/gpu_decode_bench.sh   # greedy generation, dense vs slim, batch 1 and 16
#   source /opt/gpukit/env.sh && STEP=trace  bash tools/gpu_decode_bench.sh   # kernels of one static-cache decode step (tools/ktrace), dense and slim
#   source /opt/gpukit/env.sh && STEP=graph  bash tools/gpu_decode_bench.sh   # batch 1 with and without CUDA graphs, BERT-base / LLaMA-0.5B fp16
#   source /opt/gpukit/env.sh && GENAI=1 STEP=all bash tools/gpu_decode_bench.sh   # export, prune, decode in one call (1.5B: ~5 min)
#
# Writes into $OUT: decode-STEP.log (everything printed), and per step its JSON (decode-b1.json,
# decode-b16.json: `gatecut bench --generate --json`; graph-NAME.json: `gatecut bench --cuda-graph --json`).
# GENAI=1: the models come from ONNX Runtime GenAI's model builder (tools/export_genai_models.py, builder source carried
# as .gpu-carry/genai-builder): GroupQueryAttention, and the static-cache step updates the cache in place.
# Settings (environment): SHAPE (qwen2.5-1.5b), DTYPE (fp16), SPARSITIES ("0.3 0.5"), ALIGN (32),
# BENCH_TIMEOUT (280 s per STEP=decode batch), VERIFY (1; 0 compiles with --no-verify: the same files were verified in an earlier session and device time is short),
# PREFILL (128), DECODE (64), BATCHES ("1 16"), RUNS (5), WARMUP (2), GRAPH_MODELS ("bert-base-fp16 llama-0.5b-fp16"),
# GRAPH_RUNS (400), GATECUT (command; default $JAVA $ORT_GPU_OPTS -jar target/gatecut-nonative.jar),
# TAG (suffix of STEP=decode's JSON names), DECODE_ARGS (more `bench --generate` options for STEP=decode, e.g. "--io-binding --cuda-graph": the KV cache on the
# device, and the static-cache decode step replayed as a CUDA graph; both need .gpu-carry/bound carried).
set -uo pipefail
cd "$(dirname "$0")/.."
STEP=${STEP:?STEP=export, prune, decode, trace, graph or all (export, prune and decode in one call)}
if [ "$STEP" = all ]; then
  for step in export prune decode; do
    STEP=$step bash "$0" || exit $?
  done
  exit 0
fi
OUT=${OUT:-$PWD/decode-out}
MODEL_DIR=${MODEL_DIR:-/opt/models}
BENCH_DIR=${BENCH_DIR:-/tmp/bench}
SHAPE=${SHAPE:-qwen2.5-1.5b}
DTYPE=${DTYPE:-fp16}
SPARSITIES=${SPARSITIES:-"0.3 0.5"}
ALIGN=${ALIGN:-32}
VERIFY=${VERIFY:-1}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-280}   # seconds for one STEP=decode batch (the 7B with five files needs more)
PREFILL=${PREFILL:-128}
DECODE=${DECODE:-64}
BATCHES=${BATCHES:-"1 16"}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-2}
GRAPH_MODELS=${GRAPH_MODELS:-"bert-base-fp16 llama-0.5b-fp16"}
GRAPH_RUNS=${GRAPH_RUNS:-400}
GENAI=${GENAI:-0}
if [ "$GENAI" = 1 ]; then
  # ONNX Runtime GenAI's model builder (GroupQueryAttention; the static-cache step then shares each layer's past and
  # present buffer, as onnxruntime-genai runs it); the builder's source is carried in $GENAI_BUILDER.
  GENAI_BUILDER=${GENAI_BUILDER:-.gpu-carry/genai-builder}
  NAME=$SHAPE-genai-$DTYPE
  DENSE=$MODEL_DIR/$NAME/model.onnx
else
  NAME=$SHAPE-kv-$DTYPE
  DENSE=$MODEL_DIR/$NAME.onnx
fi
START=$SECONDS
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$MODEL_DIR" "$BENCH_DIR"
exec > >(tee -a "$OUT/decode-$STEP.log") 2>&1
say() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }

if [ -z "${GATECUT:-}" ]; then
  if [ -z "${JAVA:-}" ] && [ -f /opt/gpukit/env.sh ]; then
    # shellcheck disable=SC1091
    source /opt/gpukit/env.sh
  fi
  : "${JAVA:?JAVA is not set: source /opt/gpukit/env.sh first (shared/gpu/README.md)}"
  [ -f target/gatecut-nonative.jar ] || { echo "target/gatecut-nonative.jar is missing: build it (mvn package) and carry it"; exit 2; }
  GATECUT="$JAVA ${ORT_GPU_OPTS:-} -jar target/gatecut-nonative.jar"
fi
read -r -a GC <<< "$GATECUT"
say "step $STEP: $(date -u +%FT%TZ), $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)"

# A slim file's name says its alignment where it is not the default 32 (ALIGN=128 sits beside the 32 ones).
slim() { if [ "$ALIGN" = 32 ]; then echo "$MODEL_DIR/$NAME-s$1.onnx"; else echo "$MODEL_DIR/$NAME-s$1-a$ALIGN.onnx"; fi; }

case "$STEP" in
export)
  if [ "$GENAI" = 1 ]; then
    # The tiny builder zoo first (seconds): the builder runs here, and gatecut's static-cache decode of a
    # GroupQueryAttention model on CUDA (shared buffers, CUDA graph) gives the plain path's tokens.
    python3 tools/export_genai_models.py --zoo "$MODEL_DIR/genai-zoo" --builder "$GENAI_BUILDER" > "$OUT/genai-zoo.log" 2>&1 \
      || { tail -5 "$OUT/genai-zoo.log"; say "tiny builder zoo FAILED"; exit 1; }
    # shellcheck source=tools/gpu_bound_native.sh
    source tools/gpu_bound_native.sh
    bound_native "--cuda-graph" || { say "bytedeco's CUDA JNI library is missing"; exit 2; }
    "${GC[@]}" bench "$MODEL_DIR/genai-zoo/qwen2-genai-fp16.onnx" --generate --device cuda --batch 2 --prefill 8 --decode 8 \
      --runs 1 --warmup 0 --io-binding --cuda-graph 2>&1 | tail -12 || { say "tiny decode bench FAILED"; exit 1; }
    if [ -f "$DENSE" ] && [ -f "$MODEL_DIR/$NAME.json" ]; then
      say "export: $NAME already in $MODEL_DIR"
    else
      python3 tools/export_genai_models.py --shape "$SHAPE" --precision "$DTYPE" --out "$MODEL_DIR" --tmp "$MODEL_DIR" \
        --builder "$GENAI_BUILDER" 2>&1 | grep -v "it/s\]" | tail -15 || { say "export FAILED"; exit 1; }
    fi
    cp -f "$MODEL_DIR/$NAME.json" "$OUT/" 2>/dev/null
    "${GC[@]}" inspect "$DENSE" 2>&1 | head -20
    df -h "$MODEL_DIR" | tail -1
    say "step $STEP done"
    exit 0
  fi
  # A tiny model of the same family first: the wrapper, exporter and gatecut's generation in seconds.
  python3 tools/export_decoder_kv.py --shape tiny --dtype "$DTYPE" --out "$MODEL_DIR" || { say "tiny export FAILED"; exit 1; }
  "${GC[@]}" bench "$MODEL_DIR/tiny-kv-$DTYPE.onnx" --generate --device cuda --prefill 8 --decode 4 --runs 1 --warmup 0 \
    || { say "tiny decode bench FAILED"; exit 1; }
  if [ -f "$DENSE" ] && [ -f "$MODEL_DIR/$NAME.json" ]; then
    say "export: $NAME already in $MODEL_DIR"
  else
    python3 tools/export_decoder_kv.py --shape "$SHAPE" --dtype "$DTYPE" --out "$MODEL_DIR" || { say "export FAILED"; exit 1; }
  fi
  cp -f "$MODEL_DIR/$NAME.json" "$OUT/" 2>/dev/null
  "${GC[@]}" inspect "$DENSE" 2>&1 | head -20
  df -h "$MODEL_DIR" | tail -1
  ;;
prune)
  [ -f "$DENSE" ] || { say "$MODEL_DIR/$NAME.onnx is missing: run STEP=export first (on this warm machine)"; exit 2; }
  for s in $SPARSITIES; do
    if [ -f "$(slim "$s")" ]; then say "prune: s=$s already there"; continue; fi
    if [ "$VERIFY" = 0 ]; then
      say "prune: $NAME --random-sparsity $s --gates-mode coupled --align $ALIGN --no-verify (VERIFY=0)"
      "${GC[@]}" prune "$DENSE" --random-sparsity "$s" --seed 1 --gates-mode coupled --align "$ALIGN" \
        --no-verify -o "$(slim "$s")" > "$OUT/prune-s$s.log" 2>&1 || say "prune s=$s FAILED"
    else
      say "prune: $NAME --random-sparsity $s --gates-mode coupled --align $ALIGN --verify-device cuda"
      if ! "${GC[@]}" prune "$DENSE" --random-sparsity "$s" --seed 1 --gates-mode coupled --align "$ALIGN" \
          --verify-device cuda -o "$(slim "$s")" > "$OUT/prune-s$s.log" 2>&1; then
        tail -n 5 "$OUT/prune-s$s.log"
        # The in-memory check of a model over 2 GB may not fit a protobuf; the speed figures do not need it.
        say "prune s=$s with verification FAILED; again with --no-verify (the compiled model is then UNVERIFIED)"
        "${GC[@]}" prune "$DENSE" --random-sparsity "$s" --seed 1 --gates-mode coupled --align "$ALIGN" \
          --no-verify -o "$(slim "$s")" >> "$OUT/prune-s$s.log" 2>&1 || say "prune s=$s FAILED"
      fi
    fi
    tail -n 8 "$OUT/prune-s$s.log"
    ls -la "$(slim "$s")"* 2>/dev/null
  done
  ;;
decode)
  DECODE_ARGS=${DECODE_ARGS:-}
  TAG=${TAG:-}   # suffix of the JSON files (decode-b1$TAG.json): several decode calls side by side
  # shellcheck source=tools/gpu_bound_native.sh
  source tools/gpu_bound_native.sh
  bound_native "$DECODE_ARGS" || { say "bytedeco's CUDA JNI library is missing"; exit 2; }
  files=("$DENSE")
  for s in $SPARSITIES; do [ -f "$(slim "$s")" ] && files+=("$(slim "$s")"); done
  for f in "$MODEL_DIR/$NAME"-s*-a*.onnx; do   # other alignments' files (STEP=prune ALIGN=128) time beside them
    [ -f "$f" ] && [[ " ${files[*]} " != *" $f "* ]] && files+=("$f")
  done
  [ ${#files[@]} -gt 1 ] || say "no compiled models in $MODEL_DIR: timing the dense model only"
  for b in $BATCHES; do
    say "decode: batch $b, prefill $PREFILL, $DECODE steps, $RUNS runs in $RUNS interleaved rounds after $WARMUP warm-up"
    timeout "$BENCH_TIMEOUT" "${GC[@]}" bench "${files[@]}" --generate --device cuda --batch "$b" --prefill "$PREFILL" \
      --decode "$DECODE" --runs "$RUNS" --warmup "$WARMUP" --rounds "$RUNS" --json -v $DECODE_ARGS > "$OUT/decode-b$b$TAG.json" \
      || { say "decode batch $b FAILED (exit $?)"; continue; }
    python3 - "$OUT/decode-b$b$TAG.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"batch {r['batch']}, prefill {r['prefill']}, {r['decode']} decode steps")
print("| model | weight GB/token | prefill ms | prefill x | ideal | ms/token | tokens/s | decode x | ideal | of ideal | present copy ms | past MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for m in r["models"]:
    of = (m["decodeSpeedup"] - 1) / (m["idealDecode"] - 1) if m["idealDecode"] != 1 else float("nan")
    print(f"| {m['file'].split('/')[-1]} | {m['weightBytesPerToken'] / 1e9:.3f} | {m['prefillMedianMs']:.2f} | "
          f"{m['prefillSpeedup']:.2f} | {m['idealPrefill']:.2f} | {m['stepMedianMs']:.2f} | {m['tokensPerSecond']:.1f} | "
          f"{m['decodeSpeedup']:.2f} | {m['idealDecode']:.2f} | {of:.2f} | {m['presentCopyMs']:.2f} | {m['pastBytes'] / 1e6:.1f} |")
for key, title in (("ioBinding", "KV cache on the device (I/O binding)"),
                   ("staticCache", "static KV cache, one decode step replayed as a CUDA graph")):
    if key not in r:
        continue
    print(f"\n{title}:\n| model | ms/token | tokens/s | decode x | ideal | x / ideal | of ideal gain | same tokens |"
          " queued ms/token | queued x | queued x / ideal |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for m in r[key]["models"]:
        of = (m["decodeSpeedup"] - 1) / (m["idealDecode"] - 1) if m["idealDecode"] != 1 else float("nan")
        q = m.get("queuedMedianMs", float("nan"))
        qx = m.get("queuedSpeedup", float("nan"))
        same = "" if m.get("queuedSameTokens", True) else " (other tokens!)"
        print(f"| {m['file'].split('/')[-1]} | {m['stepMedianMs']:.3f} | {m['tokensPerSecond']:.1f} | "
              f"{m['decodeSpeedup']:.2f} | {m['idealDecode']:.2f} | {m['decodeSpeedup'] / m['idealDecode']:.2f} | "
              f"{of:.2f} | {m['rowsWithPlainTokens']} rows | {q:.3f}{same} | {qx:.2f} | {qx / m['idealDecode']:.2f} |")
PY
  done
  ;;
trace)
  # Where a static-cache decode step's time goes at batch 1: each model alone under the kernel tracer, the window
  # of its last timed static-cache generation split by the step time bench measured (kernels per step, top kernels).
  # shellcheck source=tools/gpu_bound_native.sh
  source tools/gpu_bound_native.sh
  bound_native "--cuda-graph" || { say "bytedeco's CUDA JNI library is missing"; exit 2; }
  KTRACE_LIB=${KTRACE_LIB:-$PWD/tools/ktrace/libktrace.so}
  [ -f "$KTRACE_LIB" ] || bash tools/ktrace/build.sh > /dev/null 2>&1 || { say "no $KTRACE_LIB"; exit 2; }
  # First, whether the static-cache path gives the plain path's tokens on CUDA: the tiny model in fp32 (same tokens
  # expected) and fp16 (random weights: near-tied logits may flip in half precision).
  [ -f "$MODEL_DIR/tiny-kv-fp32.onnx" ] || python3 tools/export_decoder_kv.py --shape tiny --dtype fp32 --out "$MODEL_DIR" > /dev/null
  "${GC[@]}" bench "$MODEL_DIR/tiny-kv-fp32.onnx" "$MODEL_DIR/tiny-kv-fp16.onnx" --generate --device cuda --batch 4 \
    --prefill 16 --decode 16 --runs 1 --warmup 0 --cuda-graph 2>&1 | grep -A4 "same tokens" | head -12
  for f in "$DENSE" $(for s in $SPARSITIES; do slim "$s"; done); do
    [ -f "$f" ] || continue
    tag=$(basename "$f" .onnx)
    CUDA_INJECTION64_PATH="$KTRACE_LIB" KTRACE_OUT="$BENCH_DIR/kt-$tag.tsv" timeout 200 "${GC[@]}" bench "$f" --generate \
      --device cuda --batch 1 --prefill "$PREFILL" --decode "$DECODE" --runs 2 --warmup 1 --cuda-graph --json \
      > "$OUT/trace-$tag.json" || { say "trace $tag FAILED"; continue; }
    # the last 60% of the last generation: static-cache steps only (the plain path ran before it)
    ms=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['staticCache']['models'][0]['stepMedianMs'])" "$OUT/trace-$tag.json")
    window=$(python3 -c "print(round($ms * $DECODE * 0.6, 2))")
    steps=$(python3 -c "print(max(1, round($DECODE * 0.6)))")
    say "trace $tag: static-cache step $ms ms; the last $window ms = ~$steps steps"
    python3 tools/ktrace_gaps.py "$BENCH_DIR/kt-$tag.tsv" --last-ms "$window" --steps "$steps" --kernels --top 25 \
      --json "$OUT/trace-$tag-gaps.json" | grep -v "^  .*ms  after"
  done
  ;;
graph)
  # Export (fp16, same weights as the fp32 bench models) and compile unless gpu_bench_prune.sh left them.
  todo=()
  for m in $GRAPH_MODELS; do [ -f "$BENCH_DIR/$m.onnx" ] || todo+=("$m"); done
  if [ ${#todo[@]} -gt 0 ]; then
    python3 tools/export_bench_models.py --out "$BENCH_DIR" --models "$(IFS=,; echo "${todo[*]}")" --no-check \
      || say "export of ${todo[*]} FAILED"
  fi
  for m in $GRAPH_MODELS; do
    [ -f "$BENCH_DIR/$m.onnx" ] || continue
    files=("$BENCH_DIR/$m.onnx")
    for s in $SPARSITIES; do
      out="$BENCH_DIR/$m-s$s.onnx"
      [ -f "$out" ] || "${GC[@]}" prune "$BENCH_DIR/$m.onnx" --random-sparsity "$s" --seed 1 --gates-mode coupled \
        --align "$ALIGN" --verify-device cuda -o "$out" 2>&1 | tail -n 3
      [ -f "$out" ] && files+=("$out")
    done
    say "graph: $m, batch 1 x 128, $GRAPH_RUNS runs in 100 rounds, then the same through CUDA graphs"
    timeout 240 "${GC[@]}" bench "${files[@]}" --device cuda --batch 1 --seq 128 --runs "$GRAPH_RUNS" --warmup 20 \
      --rounds 100 --cuda-graph --json -v > "$OUT/graph-$m.json" || { say "graph $m FAILED (exit $?)"; continue; }
    python3 - "$OUT/graph-$m.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("| model | plain median ms | plain x | CUDA graph median ms | graph x | graph vs plain | status |")
print("|---|---|---|---|---|---|---|")
for p, g in zip(r["models"], r["cudaGraph"]):
    if "medianMs" in g:
        print(f"| {p['file'].split('/')[-1]} | {p['medianMs']:.3f} | {p['speedup']:.2f} | {g['medianMs']:.3f} | "
              f"{g['speedup'] or float('nan'):.2f} | {p['medianMs'] / g['medianMs']:.2f} | ok |")
    else:
        print(f"| {p['file'].split('/')[-1]} | {p['medianMs']:.3f} | {p['speedup']:.2f} | - | - | - | {g['status']} |")
PY
  done
  ;;
*)
  echo "STEP must be export, prune, decode, trace or graph, not '$STEP'"; exit 2 ;;
esac
say "step $STEP done"
