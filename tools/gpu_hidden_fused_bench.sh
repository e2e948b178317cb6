#!/usr/bin/env bash
# Issue 15: is the speed that 50% with hidden gates leaves on the table the residual-stream work that an
# unfused export keeps (decomposed fp32 RMSNorms, casts, rotary), and how much of the budget should the
# hidden width take? One device call, about 6-8 minutes (the fused export, ~4 min on the CPU, runs beside the
# first model's prunes and benches; BUDGET cuts what does not fit):
#   - builds llama-0.5b-fp16 (TorchScript export of the model in fp16) and llama-0.5b-fused-fp16 (the fp32
#     export fused by onnxruntime.transformers.optimizer, model_type gpt2: SimplifiedLayerNormalization,
#     SkipSimplifiedLayerNormalization, RotaryEmbedding; then convert_float_to_float16(keep_io_types=True));
#     the fused one in the background while the first is pruned;
#   - prunes each at SPARSITY with random coupled gates, --hidden-gates, --hidden-fraction F for F in
#     FRACTIONS (F of the hidden channels closed, the rest of the budget from FFN channels and heads),
#     --align ALIGN, checked against the gated model on CUDA;
#   - benches dense and slim files of each model in one `gatecut bench` call per shape (interleaved rounds):
#     b32 x 128, b64 x 256, b1 x 128 with --cuda-graph; ideal = dense / slim matrix-product FLOPs
#     (tools/flops.py, on the CPU meanwhile);
#   - the GEMM ceiling (tools/gemm_ceiling.py; GEMM_CEILING=0 skips it): the products alone, timed in torch;
#   - kernel traces (tools/ktrace, CUPTI) of KTRACE_MODEL dense and its slim file at the largest fraction at
#     b32 x 128, summarised by tools/ktrace_summary.py per kernel kind (GEMM / attention softmax / norm /
#     element-wise / data movement), to say where the time that does not shrink goes.
#
#   source /opt/gpukit/env.sh && bash tools/ktrace/build.sh && bash tools/gpu_hidden_fused_bench.sh
#
# Settings: SHAPES (see below), MODELS ("llama-0.5b-fp16 llama-0.5b-fused-fp16"; the first is pruned and timed
# while the others export), FRACTIONS ("0.25 0.5"; 0 keeps the whole hidden width), SPARSITY (0.5), ALIGN (64), KTRACE_MODEL (llama-0.5b-fused-fp16; "" = no
# trace), DEVICE (cuda; cpu for a dry run on prepared files), DIR (/tmp/hidden-fused), BUDGET (570 s: later steps are skipped when the time runs out),
# GATECUT (command). Writes $OUT/hf-*.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/hidden-fused-out}; DIR=${DIR:-/tmp/hidden-fused}; S=${SPARSITY:-0.5}; ALIGN=${ALIGN:-64}
MODELS=${MODELS:-"llama-0.5b-fp16 llama-0.5b-fused-fp16"}; FRACTIONS=${FRACTIONS:-"0.25 0.5"}
KTRACE_MODEL=${KTRACE_MODEL-llama-0.5b-fused-fp16}; BUDGET=${BUDGET:-570}
# batch x seq : timed runs : warm-up runs : interleaved rounds (batch 1 gets --cuda-graph on CUDA)
SHAPES=${SHAPES:-"32x128:30:5:6 64x256:12:3:4 1x128:150:20:30"}
KTRACE_LIB=${KTRACE_LIB:-$PWD/tools/ktrace/libktrace.so}; DEVICE=${DEVICE:-cuda}   # cpu: a dry run
# IO_BINDING=1 (default): every bench also times the device-resident path (`bench --io-binding`: inputs
# uploaded once, outputs left on the device; plain bound and CUDA-graph bound), where the host copy of the
# output and the Java call no longer count
IO_BINDING=${IO_BINDING:-1}
mkdir -p "$OUT" "$DIR"
exec > >(tee -a "$OUT/hf-bench.log") 2>&1
START=$SECONDS
say() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }
left() { echo $((BUDGET - (SECONDS - START))); }
if [ -z "${GATECUT:-}" ]; then
  [ -n "${JAVA:-}" ] || source /opt/gpukit/env.sh
  BOUND=${BOUND:-/opt/gpukit/bound}   # bytedeco's JNI library for --io-binding (tools/make_bound_carry.sh)
  if [ -f .gpu-carry/bound/libjnionnxruntime.so.xz ]; then
    mkdir -p "$BOUND" && xz -dc .gpu-carry/bound/libjnionnxruntime.so.xz > "$BOUND/libjnionnxruntime.so.tmp" \
      && mv "$BOUND/libjnionnxruntime.so.tmp" "$BOUND/libjnionnxruntime.so"
  fi
  [ -f "$BOUND/libjnionnxruntime.so" ] || { [ "$IO_BINDING" = 1 ] && echo "no $BOUND/libjnionnxruntime.so: --io-binding off (carry .gpu-carry/bound)"; IO_BINDING=0; }
  GATECUT="$JAVA ${ORT_GPU_OPTS:-} -Dgatecut.bound.native.path=$BOUND -jar target/gatecut-nonative.jar"
fi
read -r -a GC <<< "$GATECUT"
slim() { echo "$DIR/$1-h$2-s$S.onnx"; }

export_model() {   # NAME: export unless already there; log in $OUT/hf-export-NAME.log
  [ -f "$DIR/$1.onnx" ] && return 0
  python3 tools/export_bench_models.py --out "$DIR" --models "$1" $([ "$1" = llama-0.5b-fp16 ] && echo --no-check) \
    > "$OUT/hf-export-$1.log" 2>&1
}
prune_all() {      # NAME: one prune per fraction, in parallel (each verifies on CUDA)
  local m=$1 pids=() f
  for f in $FRACTIONS; do
    say "prune $m --random-sparsity $S --hidden-gates --hidden-fraction $f --align $ALIGN"
    timeout $(( $(left) > 60 ? $(left) - 30 : 30 )) "${GC[@]}" prune "$DIR/$m.onnx" --random-sparsity "$S" --seed 1 \
      --gates-mode coupled --hidden-gates --hidden-fraction "$f" --align "$ALIGN" --verify-device "$DEVICE" \
      -o "$(slim "$m" "$f")" > "$OUT/hf-prune-$m-h$f.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || say "prune $m FAILED (see $OUT/hf-prune-$m-*.log)"; done
  for f in $FRACTIONS; do
    echo "  $m hidden fraction $f:"; grep -E '^hidden|targeted|verify|error' "$OUT/hf-prune-$m-h$f.log" | sed 's/^/    /' | tail -n 4
  done
}

bench_model() {    # NAME: dense and slim files in one bench call per shape (interleaved rounds)
  local m=$1 files shape bs runs warm rounds b q extra f
  files=("$DIR/$m.onnx"); for f in $FRACTIONS; do [ -f "$(slim "$m" "$f")" ] && files+=("$(slim "$m" "$f")"); done
  for shape in $SHAPES; do
    IFS=: read -r bs runs warm rounds <<< "$shape"; b=${bs%x*}; q=${bs#*x}
    if [ "$(left)" -lt 40 ]; then say "bench $m b$b x $q SKIPPED (time budget)"; continue; fi
    extra=(); [ "$b" = 1 ] && [ "$DEVICE" = cuda ] && extra=(--cuda-graph)
    [ "$IO_BINDING" = 1 ] && extra+=(--io-binding)
    say "bench $m b$b x $q (${#files[@]} files)${2:+ $2}"
    timeout $(( $(left) > 100 ? 90 : $(left) - 10 )) "${GC[@]}" bench "${files[@]}" --device "$DEVICE" --batch "$b" --seq "$q" \
      --runs "$runs" --warmup "$warm" --rounds "$rounds" "${extra[@]}" --json > "$OUT/hf-bench-$m-b$b.json" \
      || say "bench $m b$b FAILED"
  done
}

read -r -a MS <<< "$MODELS"
say "export ${MS[0]}"
export_model "${MS[0]}" || say "export ${MS[0]} FAILED: $(tail -n 3 "$OUT/hf-export-${MS[0]}.log")"
bg=()
for m in "${MS[@]:1}"; do say "export $m (background)"; export_model "$m" & bg+=($!); done
# The first model is pruned and timed while the others export on the CPU (dense and slim files share each
# bench call's interleaved rounds, so a busy CPU weighs on both alike).
if [ -f "$DIR/${MS[0]}.onnx" ]; then
  prune_all "${MS[0]}"
  bench_model "${MS[0]}" "$([ ${#bg[@]} -gt 0 ] && echo '(exports running on the CPU meanwhile)')"
fi
for i in "${!bg[@]}"; do
  m=${MS[$((i + 1))]}
  wait "${bg[$i]}" || say "export $m FAILED: $(tail -n 5 "$OUT/hf-export-$m.log")"
  [ -f "$OUT/hf-export-$m.log" ] && grep -E 'fused|check|vs torch|saved|done' "$OUT/hf-export-$m.log" | sed 's/^/  /'
  [ -f "$DIR/$m.onnx" ] && prune_all "$m" && bench_model "$m"
done

all=()
for m in "${MS[@]}"; do
  [ -f "$DIR/$m.onnx" ] || continue
  all+=("$DIR/$m.onnx"); for f in $FRACTIONS; do [ -f "$(slim "$m" "$f")" ] && all+=("$(slim "$m" "$f")"); done
done
FLOP_SHAPES=$(for sh in $SHAPES; do printf '%s,' "${sh%%:*}"; done); FLOP_SHAPES=${FLOP_SHAPES%,}
python3 tools/flops.py "${all[@]}" --shapes "$FLOP_SHAPES" --json > "$OUT/hf-flops.json" 2> "$OUT/hf-flops.err" &
fl=$!

# Kernel traces: dense and the slim file at the largest fraction, b32 x 128, each alone in its own bench, for
# each model of KTRACE_MODEL (a list).
traces=()
last=$(echo $FRACTIONS | awk '{print $NF}')
for km in $KTRACE_MODEL; do
  [ -f "$DIR/$km.onnx" ] || continue
  if [ ! -f "$KTRACE_LIB" ]; then
    say "ktrace: $KTRACE_LIB is missing (bash tools/ktrace/build.sh first); skipped"; break
  fi
  for f in "$DIR/$km.onnx" "$(slim "$km" "$last")"; do
    [ -f "$f" ] || continue
    if [ "$(left)" -lt 30 ]; then say "ktrace $(basename "$f") SKIPPED (time budget)"; continue; fi
    n=$(basename "$f" .onnx)
    say "ktrace $n b32 x 128"
    CUDA_INJECTION64_PATH="$KTRACE_LIB" KTRACE_OUT="$DIR/kt-$n.tsv" timeout 60 "${GC[@]}" bench "$f" --device "$DEVICE" \
      --batch 32 --seq 128 --runs 10 --warmup 5 > /dev/null && traces+=("$n=$DIR/kt-$n.tsv") || say "ktrace $n FAILED"
  done
done
[ ${#traces[@]} -gt 0 ] && python3 tools/ktrace_summary.py --runs 15 "${traces[@]}" --json "$OUT/hf-ktrace.json" \
  > "$OUT/hf-ktrace.md" && grep -v "^     " "$OUT/hf-ktrace.md"
wait $fl || say "flops FAILED: $(tail -n 3 "$OUT/hf-flops.err")"

# GEMM ceiling (tools/gemm_ceiling.py): each model's matrix products alone, in fp16, replayed as one CUDA
# graph in torch: the speedup a runtime whose only cost were the products would reach, beside the FLOP ideal.
if [ "$DEVICE" = cuda ] && [ "${GEMM_CEILING:-1}" = 1 ]; then
  for m in "${MS[@]}"; do
    [ -f "$DIR/$m.onnx" ] || continue
    if [ "$(left)" -lt 25 ]; then say "GEMM ceiling $m SKIPPED (time budget)"; continue; fi
    files=("$DIR/$m.onnx"); for f in $FRACTIONS; do [ -f "$(slim "$m" "$f")" ] && files+=("$(slim "$m" "$f")"); done
    say "GEMM ceiling $m"
    timeout $(( $(left) - 10 )) python3 tools/gemm_ceiling.py "${files[@]}" --shapes "$FLOP_SHAPES" \
      --json "$OUT/hf-gemm-$m.json" > "$OUT/hf-gemm-$m.md" 2>&1 || say "GEMM ceiling $m FAILED"
    cat "$OUT/hf-gemm-$m.md"
  done
fi

python3 - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
try:
    fl = {(os.path.basename(r["model"]), r["batch"], r["sequence"]): r["total"]
          for r in json.load(open(os.path.join(out, "hf-flops.json")))}
except Exception as e:  # noqa: BLE001
    fl = {}; print("no FLOPs:", e)
print("\n| model | shape | file | params | median ms | speedup | ideal | of ideal | CUDA graph ms | graph speedup |"
      " bound ms | bound speedup | bound of ideal | graph-bound ms | graph-bound speedup | graph-bound of ideal |")
print("|---" * 16 + "|")
for p in sorted(glob.glob(os.path.join(out, "hf-bench-*.json"))):
    r = json.load(open(p))
    b, s = r["batch"], r["sequence"]
    dense = os.path.basename(r["models"][0]["file"])
    graphs = r.get("cudaGraph") or [None] * len(r["models"])
    bound = r.get("ioBinding") or [None] * len(r["models"])
    def cell(t, ideal):
        if not t or t.get("medianMs") is None:
            return [(t or {}).get("status", "-") if t else "-", "-", "-"]
        sp = t.get("speedup") or 1.0
        return [f"{t['medianMs']:.3f}", f"{sp:.2f}", f"{sp / ideal:.2f}" if ideal == ideal else "-"]
    for m, g, bd in zip(r["models"], graphs, bound):
        f = os.path.basename(m["file"])
        ideal = fl.get((dense, b, s), 0) / fl[(f, b, s)] if fl.get((f, b, s)) else float("nan")
        gms = f"{g['medianMs']:.3f}" if g and "medianMs" in g else "-"
        gsp = f"{g.get('speedup') or 1:.2f}" if g and "medianMs" in g else "-"
        print(f"| {dense.replace('.onnx', '')} | b{b} x {s} | {f} | {m['parameters']:,} | {m['medianMs']:.3f} | "
              f"{m['speedup']:.2f} | {ideal:.2f} | {m['speedup'] / ideal if ideal == ideal else float('nan'):.2f} | {gms} | {gsp} | "
              + " | ".join(cell((bd or {}).get("bound"), ideal) + cell((bd or {}).get("graph"), ideal)) + " |")
PY
# the device tool brings back a handful of files: everything in one archive too
tar -C "$OUT" -czf "$OUT/hf-all.tgz" --exclude=hf-all.tgz . 2>/dev/null
say done
