#!/usr/bin/env bash
# Issue 15, first GPU look at hidden-dimension gates: the LLaMA-shaped 0.52B in float16
# (export_bench_models.py llama-0.5b-fp16), random coupled gates projected onto 50% of the targeted
# parameters with the hidden width included (--hidden-gates, --align 64), checked on CUDA, then dense vs
# slim timed in one `gatecut bench` call per shape (interleaved rounds) beside the FLOP ratio
# (tools/flops.py, run on the CPU meanwhile). One device call, about 3 minutes.
#   source /opt/gpukit/env.sh && bash tools/gpu_hidden_bench.sh
# Settings: SPARSITY (0.5), ALIGN (64), DIR (/tmp/hidden-bench), GATECUT (command). Writes $OUT/hidden-*.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/hidden-out}; DIR=${DIR:-/tmp/hidden-bench}; S=${SPARSITY:-0.5}; ALIGN=${ALIGN:-64}
mkdir -p "$OUT" "$DIR"
exec > >(tee -a "$OUT/hidden-bench.log") 2>&1
START=$SECONDS
say() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }
if [ -z "${GATECUT:-}" ]; then
  [ -n "${JAVA:-}" ] || source /opt/gpukit/env.sh
  GATECUT="$JAVA ${ORT_GPU_OPTS:-} -jar target/gatecut-nonative.jar"
fi
read -r -a GC <<< "$GATECUT"
M=llama-0.5b-fp16
[ -f "$DIR/$M.onnx" ] || python3 tools/export_bench_models.py --out "$DIR" --models "$M" --no-check | tail -n 2
say "prune $M --random-sparsity $S --hidden-gates --align $ALIGN"
"${GC[@]}" prune "$DIR/$M.onnx" --random-sparsity "$S" --seed 1 --gates-mode coupled --hidden-gates --align "$ALIGN" \
  --verify-device cuda -o "$DIR/$M-hidden-s$S.onnx" > "$OUT/hidden-prune.log" 2>&1 || say "prune FAILED"
grep -E 'hidden|targeted|model:|verify' "$OUT/hidden-prune.log" | tail -n 6
files=("$DIR/$M.onnx"); [ -f "$DIR/$M-hidden-s$S.onnx" ] && files+=("$DIR/$M-hidden-s$S.onnx")
python3 tools/flops.py "${files[@]}" --shapes 1x128,32x128,64x256 --json > "$OUT/hidden-flops.json" 2> "$OUT/hidden-flops.err" &
fl=$!
for shape in 32x128:40:5:8 64x256:20:3:4 1x128:200:20:50; do
  IFS=: read -r bs runs warm rounds <<< "$shape"; b=${bs%x*}; s=${bs#*x}
  extra=(); [ "$b" = 1 ] && extra=(--cuda-graph)
  say "bench b$b x $s"
  timeout 120 "${GC[@]}" bench "${files[@]}" --device cuda --batch "$b" --seq "$s" --runs "$runs" --warmup "$warm" \
    --rounds "$rounds" "${extra[@]}" --json > "$OUT/hidden-b$b.json" || say "bench b$b FAILED"
done
wait $fl || say "flops FAILED"
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
try:
    fl = json.load(open(os.path.join(out, "hidden-flops.json")))
except Exception as e:
    fl = None; print("no FLOPs:", e)
for b in ("32", "64", "1"):
    p = os.path.join(out, f"hidden-b{b}.json")
    if not os.path.exists(p):
        continue
    r = json.load(open(p))
    print(f"\nbatch {r['batch']} x {r['sequence']}")
    for i, m in enumerate(r["models"]):
        g = (r.get("cudaGraph") or [None] * 9)[i]
        gs = f", CUDA graph {g['medianMs']:.3f} ms x{g.get('speedup') or 1:.2f}" if g and "medianMs" in g else ""
        print(f"  {os.path.basename(m['file'])}: {m['parameters']} params, median {m['medianMs']:.3f} ms (p90 {m.get('p90Ms', float('nan')):.3f}), x{m['speedup']:.2f}{gs}")
if fl:
    print("\nFLOPs:", json.dumps(fl)[:1500])
PY
say done
