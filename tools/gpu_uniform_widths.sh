#!/usr/bin/env bash
# Issue 14 part 6, speed side: what keeping the same widths in every layer (--uniform-widths, the shape
# LLM serving stacks need) costs against per-layer widths at the same sparsity. One device call:
# the LLaMA-shaped 0.52B in float16 (tools/export_bench_models.py llama-0.5b-fp16; reused from
# $BENCH_DIR when there), random coupled gates (seed 1, --align 32) at 30% and 50%, compiled per layer
# and uniform, then one `gatecut bench` call over all five files (interleaved rounds, so they share the
# machine's drift) at batch 1 × 128 (with and without CUDA graphs) and batch 32 × 128.
#
#   source /opt/gpukit/env.sh && bash tools/gpu_uniform_widths.sh
# Settings: MODEL (llama-0.5b-fp16), SPARSITIES ("0.3 0.5"), ALIGN (32), BENCH_DIR (/tmp/bench).
# Writes $OUT/uniform-widths.log and $OUT/uniform-b*.json (gatecut bench --json).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/uniform-out}
BENCH_DIR=${BENCH_DIR:-/tmp/bench}
MODEL=${MODEL:-llama-0.5b-fp16}
SPARSITIES=${SPARSITIES:-"0.3 0.5"}
ALIGN=${ALIGN:-32}
mkdir -p "$OUT" "$BENCH_DIR"
exec > >(tee -a "$OUT/uniform-widths.log") 2>&1
START=$SECONDS
say() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }
if [ -z "${GATECUT:-}" ]; then
  [ -n "${JAVA:-}" ] || source /opt/gpukit/env.sh
  GATECUT="$JAVA ${ORT_GPU_OPTS:-} -jar target/gatecut-nonative.jar"
fi
read -r -a GC <<< "$GATECUT"
if [ ! -f "$BENCH_DIR/$MODEL.onnx" ]; then
  say "export $MODEL"
  python3 tools/export_bench_models.py --out "$BENCH_DIR" --models "$MODEL" --no-check || { say "export FAILED"; exit 1; }
fi
files=("$BENCH_DIR/$MODEL.onnx")
for s in $SPARSITIES; do
  for kind in perlayer uniform; do
    out="$BENCH_DIR/$MODEL-s$s-$kind.onnx"
    extra=(); [ "$kind" = uniform ] && extra=(--uniform-widths)
    if [ ! -f "$out" ]; then
      say "prune $MODEL s=$s $kind"
      "${GC[@]}" prune "$BENCH_DIR/$MODEL.onnx" --random-sparsity "$s" --seed 1 --gates-mode coupled --align "$ALIGN" \
        "${extra[@]}" --verify-device cuda -o "$out" > "$OUT/prune-s$s-$kind.log" 2>&1 || say "prune s=$s $kind FAILED"
      tail -n 6 "$OUT/prune-s$s-$kind.log"
    fi
    [ -f "$out" ] && files+=("$out")
  done
done
say "bench batch 1 x 128 (plain and CUDA graphs)"
timeout 200 "${GC[@]}" bench "${files[@]}" --device cuda --batch 1 --seq 128 --runs 400 --warmup 20 --rounds 100 \
  --cuda-graph --json > "$OUT/uniform-b1.json" || say "bench b1 FAILED"
say "bench batch 32 x 128"
timeout 200 "${GC[@]}" bench "${files[@]}" --device cuda --batch 32 --seq 128 --runs 40 --warmup 5 --rounds 4 \
  --json > "$OUT/uniform-b32.json" || say "bench b32 FAILED"
python3 - "$OUT" <<'PY'
import json, sys, os
for shape in ("b1", "b32"):
    p = os.path.join(sys.argv[1], f"uniform-{shape}.json")
    if not os.path.exists(p):
        continue
    r = json.load(open(p))
    graphs = r.get("cudaGraph") or [None] * len(r["models"])
    print(f"\n{shape} x 128")
    print("| file | params | median ms | x dense | CUDA graph ms | graph x |")
    print("|---|---|---|---|---|---|")
    for m, g in zip(r["models"], graphs):
        gm = f"{g['medianMs']:.3f}" if g and "medianMs" in g else "-"
        gx = f"{g['speedup']:.2f}" if g and g.get("speedup") else "-"
        print(f"| {m['file'].split('/')[-1]} | {m.get('parameters', '-')} | {m['medianMs']:.3f} | {m['speedup']:.2f} | {gm} | {gx} |")
PY
say "done"
