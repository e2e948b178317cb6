#!/usr/bin/env bash
# One device call: export the benchmark models, prune them at random sparsities, and time dense vs
# compiled on ONNX Runtime CUDA next to the ideal (FLOPs) speedup.
#
# On the GPU machine, from the repository root, once the GPU kit is unpacked (shared/gpu/README.md)
# and target/gatecut-nonative.jar is carried:
#
#   source /opt/gpukit/env.sh && bash tools/gpu_bench_prune.sh
#
# Writes (at most 3 files, within the device tool's limits on what comes back):
#   $OUT/bench-prune.md       the table: model, sparsity, batch, seq, dense ms, compiled ms, speedup,
#                             ideal, speedup/ideal (+ p90s and parameter counts)
#   $OUT/bench-prune.log      everything printed (progress, prune and bench stderr)
#   $OUT/bench-raw.tar.gz     raw files: bench-*.json (gatecut bench --json), flops-*.json,
#                             prune-*.log, the export's NAME.json
# Work files go to $BENCH_DIR (/tmp/bench); exported models there are reused when present, so a second
# call on a still-warm machine skips the export.
#
# Settings (environment): MODELS ("bert-base llama-0.5b"), PRECISIONS ("fp32 fp16": each model in each
# precision, side by side; bf16 too with PRECISIONS="fp32 fp16 bf16" — ONNX Runtime's CUDA provider runs
# the bf16 zoo, see bench/results/2026-11-30-half-precision-h200.md; export_bench_models.py NAME-fp16 etc.),
# SPARSITIES ("0.3 0.5"),
# SHAPES ("BATCHxSEQ:RUNS:WARMUP[:ROUNDS] ..."), ROUNDS (4, for shapes that name none), PRUNE_EXTRA (""),
# BUDGET_S (total seconds, 530),
# BENCH_EXTRA ("", e.g. "--threads 4", or "--cuda-graph" to time CUDA-graph replays too), KTRACE_SHAPES ("" = none; e.g. "1x128:50:10 32x128:20:5": per-kernel GPU time of each file, tools/ktrace),
# REUSE_PRUNED (0; 1 keeps compiled models and FLOPs counts already in $BENCH_DIR from an earlier call
# on the same warm machine, so only the benchmark runs again),
# GATECUT (the command; default $JAVA $ORT_GPU_OPTS -jar target/gatecut-nonative.jar).
# The FLOPs counts (CPU work) finish before the GPU benchmark starts, so that they cannot compete with
# the host-bound batch-1 timings for the CPU.
# Total runtime is kept under BUDGET_S: a step that would start too late is skipped and reported.
set -euo pipefail

cd "$(dirname "$0")/.."
START=$SECONDS
BUDGET_S=${BUDGET_S:-530}
OUT=${OUT:-$PWD/bench-out}
BENCH_DIR=${BENCH_DIR:-/tmp/bench}
RAW=$BENCH_DIR/raw
MODELS=${MODELS:-"bert-base llama-0.5b"}
PRECISIONS=${PRECISIONS:-"fp32 fp16"}
# Every model in every precision: NAME (fp32), NAME-fp16, NAME-bf16.
MODELS=$(for m in $MODELS; do for p in $PRECISIONS; do
  if [ "$p" = fp32 ]; then printf '%s ' "$m"; else printf '%s ' "$m-$p"; fi; done; done)
MODELS=${MODELS% }
SPARSITIES=${SPARSITIES:-"0.3 0.5"}
# batch x seq : timed runs : warm-up runs (run counts sized so llama-0.5b at 64x256 takes ~10 s a model)
# Batch 1 is host-bound and drifts by up to +-30% within seconds (2026-11-22, H100): 4 rounds of 25 runs
# gave compiled/dense ratios from 0.87x to 1.33x on the same files; 100 rounds of 4 runs agree with an
# A/A control (dense against itself) within ~3%.
SHAPES=${SHAPES:-"1x128:400:20:100 32x128:40:5 64x256:20:3"}
# timed runs are split into this many interleaved rounds over dense and compiled models (gatecut bench --rounds)
ROUNDS=${ROUNDS:-4}
# extra flags for every gatecut prune call, e.g. PRUNE_EXTRA="--align 32" or "--no-verify"
PRUNE_EXTRA=${PRUNE_EXTRA:-}
# extra flags for every timing gatecut bench call, e.g. BENCH_EXTRA="--threads 4"
BENCH_EXTRA=${BENCH_EXTRA:-}
REUSE_PRUNED=${REUSE_PRUNED:-0}
# GPU kernel traces after the benchmark (empty: none), "BATCHxSEQ:RUNS:WARMUP ..."; needs tools/ktrace/libktrace.so
KTRACE_SHAPES=${KTRACE_SHAPES:-}
export PYTHONUNBUFFERED=1

mkdir -p "$OUT" "$RAW"
exec > >(tee -a "$OUT/bench-prune.log") 2>&1
TEE_PID=$!

# files=(): model $1's dense file, then each of its compiled files that exists (one per sparsity).
model_files() {
  files=("$BENCH_DIR/$1.onnx")
  local s
  for s in $SPARSITIES; do
    if [ -f "$BENCH_DIR/$1-s$s.onnx" ]; then files+=("$BENCH_DIR/$1-s$s.onnx"); fi
  done
}
say() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }
left() { echo $((BUDGET_S - (SECONDS - START))); }

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

say "gatecut bench-prune: models [$MODELS] (precisions $PRECISIONS), sparsities [$SPARSITIES], shapes [$SHAPES], rounds $ROUNDS, prune extra [$PRUNE_EXTRA], bench extra [$BENCH_EXTRA], budget ${BUDGET_S}s"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c 'import torch, transformers, onnx, onnxruntime; print("torch", torch.__version__, "transformers", transformers.__version__, "onnx", onnx.__version__, "onnxruntime(py)", onnxruntime.__version__)'
"${GC[@]}" --version

# 1. Export (reused when already there).
todo=()
for m in $MODELS; do
  if [ -f "$BENCH_DIR/$m.onnx" ] && [ -f "$BENCH_DIR/$m.json" ]; then say "export: $m already in $BENCH_DIR, reused"; else todo+=("$m"); fi
done
if [ ${#todo[@]} -gt 0 ]; then
  say "export: ${todo[*]}"
  python3 tools/export_bench_models.py --out "$BENCH_DIR" --models "$(IFS=,; echo "${todo[*]}")"
fi
for m in $MODELS; do cp -f "$BENCH_DIR/$m.json" "$RAW/export-$m.json" 2>/dev/null || true; done

# 2. Prune.
for m in $MODELS; do
  for s in $SPARSITIES; do
    out="$BENCH_DIR/$m-s$s.onnx"
    log="$RAW/prune-$m-s$s.log"
    if [ "$REUSE_PRUNED" = 1 ] && [ -f "$out" ] && [ -f "$log" ] && [ ! -f "$log.failed" ]; then
      say "prune: $m s=$s already in $BENCH_DIR, reused (REUSE_PRUNED=1)"; continue
    fi
    rm -f "$out" "$out.data" "$log.failed"
    t=$(( $(left) - 200 ))
    if [ "$t" -lt 30 ]; then say "prune: $m s=$s SKIPPED (time budget)"; touch "$log.failed"; continue; fi
    [ "$t" -gt 300 ] && t=300
    say "prune: $m --random-sparsity $s -> $out"
    # shellcheck disable=SC2086  # PRUNE_EXTRA is a list of flags
    if timeout "$t" "${GC[@]}" prune "$BENCH_DIR/$m.onnx" --random-sparsity "$s" --seed 1 --gates-mode coupled \
        -o "$out" $PRUNE_EXTRA > "$log" 2>&1; then
      tail -n 5 "$log"
      say "prune: $m s=$s done ($(du -ch "$out" "$out".data 2>/dev/null | tail -n 1 | cut -f1))"
    else
      rc=$?
      touch "$log.failed"
      tail -n 20 "$log"
      say "prune: $m s=$s FAILED (exit $rc); continuing without it"
      rm -f "$out" "$out.data"
    fi
  done
done

# 3. FLOPs of every file at every shape (ONNX Runtime CPU probes at tiny sizes, 4 threads each, the
#    models in parallel), finished before the benchmark so that they do not compete with it for the host.
shape_list=$(for sh in $SHAPES; do printf '%s,' "${sh%%:*}"; done); shape_list=${shape_list%,}
flops_pids=()
for m in $MODELS; do
  model_files "$m"
  if [ "$REUSE_PRUNED" = 1 ] && python3 - "$RAW/flops-$m.json" "$shape_list" "${files[@]}" <<'PY' 2>/dev/null
import json, os, sys
rows = json.load(open(sys.argv[1]))
have = {(os.path.basename(r["model"]), r["batch"], r["sequence"]) for r in rows}
shapes = [tuple(int(x) for x in s.split("x")) for s in sys.argv[2].split(",")]
sys.exit(0 if all((os.path.basename(f), b, q) in have for f in sys.argv[3:] for b, q in shapes) else 1)
PY
  then say "flops: $m already counted, reused (REUSE_PRUNED=1)"; continue; fi
  say "flops: ${files[*]} at $shape_list"
  python3 tools/flops.py "${files[@]}" --shapes "$shape_list" --json > "$RAW/flops-$m.json" 2> "$RAW/flops-$m.err" &
  flops_pids+=($!)
done
for p in "${flops_pids[@]}"; do wait "$p" || say "flops: a FLOPs count failed (see flops-*.err)"; done
for m in $MODELS; do [ -s "$RAW/flops-$m.err" ] && tail -n 5 "$RAW/flops-$m.err"; done
say "flops: done"

# 4. Benchmark: one gatecut bench per model and shape, dense first, then every compiled model.
for m in $MODELS; do
  model_files "$m"
  for sh in $SHAPES; do
    IFS=: read -r bs runs warm rounds <<< "$sh"
    rounds=${rounds:-$ROUNDS}
    b=${bs%x*}; q=${bs#*x}
    json="$RAW/bench-$m-b$b-s$q.json"
    t=$(( $(left) - 15 ))
    if [ "$t" -lt 30 ]; then say "bench: $m ${b}x$q SKIPPED (time budget)"; continue; fi
    [ "$t" -gt 240 ] && t=240
    say "bench: $m batch $b seq $q, $runs runs in $rounds rounds after $warm warm-up, ${#files[@]} models"
    # shellcheck disable=SC2086  # BENCH_EXTRA is a list of flags
    if timeout "$t" "${GC[@]}" bench "${files[@]}" --device cuda --batch "$b" --seq "$q" --runs "$runs" \
        --warmup "$warm" --rounds "$rounds" --json -v $BENCH_EXTRA > "$json"; then
      python3 - "$json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for m in r["models"]:
    print(f"    {m['file']}: median {m['medianMs']:.3f} ms, p90 {m['p90Ms']:.3f} ms, speedup {m['speedup']:.2f}x")
for g in r.get("cudaGraph", []):   # BENCH_EXTRA="--cuda-graph"
    print(f"    CUDA graph {g['file']}: " + (f"median {g['medianMs']:.3f} ms, speedup {g['speedup'] or float('nan'):.2f}x"
                                            if "medianMs" in g else g["status"]))
PY
    else
      say "bench: $m ${b}x$q FAILED (exit $?)"
      mv -f "$json" "$json.failed" 2>/dev/null || true
    fi
  done
done

# 5. Optional GPU kernel trace (KTRACE_SHAPES, e.g. "32x128:20:5"): each file alone in its own gatecut
#    bench under tools/ktrace (CUPTI), summarised per kernel category by tools/ktrace_summary.py.
KTRACE_LIB=${KTRACE_LIB:-$PWD/tools/ktrace/libktrace.so}
if [ -n "$KTRACE_SHAPES" ]; then
  if [ ! -f "$KTRACE_LIB" ]; then
    say "ktrace: $KTRACE_LIB is missing (bash tools/ktrace/build.sh here, then carry it); skipped"
  else
    for m in $MODELS; do
      model_files "$m"
      for sh in $KTRACE_SHAPES; do
        IFS=: read -r bs runs warm _ <<< "$sh"
        b=${bs%x*}; q=${bs#*x}
        traces=()
        for f in "${files[@]}"; do
          t=$(( $(left) - 15 ))
          if [ "$t" -lt 30 ]; then say "ktrace: $f ${b}x$q SKIPPED (time budget)"; continue; fi
          [ "$t" -gt 120 ] && t=120
          name=$(basename "$f" .onnx)
          tsv="$BENCH_DIR/ktrace-$name-b$b-s$q.tsv"
          say "ktrace: $name batch $b seq $q, $runs runs after $warm warm-up"
          if CUDA_INJECTION64_PATH="$KTRACE_LIB" KTRACE_OUT="$tsv" timeout "$t" "${GC[@]}" bench "$f" --device cuda \
              --batch "$b" --seq "$q" --runs "$runs" --warmup "$warm" --json > "$RAW/ktrace-bench-$name-b$b-s$q.json"; then
            traces+=("$name=$tsv")
          else
            say "ktrace: $name ${b}x$q FAILED (exit $?)"
          fi
        done
        if [ ${#traces[@]} -gt 0 ]; then
          python3 tools/ktrace_summary.py --runs $((runs + warm)) "${traces[@]}" \
              --json "$RAW/ktrace-$m-b$b-s$q.json" | tee "$RAW/ktrace-$m-b$b-s$q.md"
        fi
      done
    done
  fi
fi

# 6. Report.
python3 tools/bench_prune_report.py "$RAW" > "$OUT/bench-prune.md"
tar -C "$BENCH_DIR" -czf "$OUT/bench-raw.tar.gz" raw
say "done; report in $OUT/bench-prune.md"
cat "$OUT/bench-prune.md"
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null || true
