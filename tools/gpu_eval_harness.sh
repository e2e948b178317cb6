#!/usr/bin/env bash
# Evaluation harness, one device call per data set: MiniLM (all-MiniLM-L6-v2) on fine-foods and
# SpamAssassin, gatecut against a dense frozen encoder + head, PEFT LoRA r=8 + head and a PyTorch
# FineGates reference, on the lent GPU.
#
# On the GPU machine, from the repository root, after the GPU kit is unpacked (/opt/gpukit/env.sh,
# shared/gpu/README.md) and the five payload pieces of tools/make_eval_payload.sh are in $PAY:
#
#   OUT=$OUT DATASETS=fine-foods PAY_SHA=<sha256 printed by make_eval_payload.sh> bash tools/gpu_eval_harness.sh
#
# Per data set (DATASETS, default "fine-foods spam"; files $DEST/data/<name>-{train,test}.jsonl):
#  1. tools/eval_harness.py: loads MiniLM's weights from the ONNX initializers into PyTorch, checks
#     last_hidden_state against ONNX Runtime (CPU), then trains each PY_RUNS spec (dense, lora,
#     fgref; see that file) with the same epochs / batch / max-len as gatecut.
#  2. gatecut compress for each GC_RUNS item SPARSITY:MODE (priority order; an item that would not
#     finish inside the budget is skipped and reported) with --epochs $EPOCHS --batch $BATCH
#     --max-len $MAXLEN --lr $GC_LR --backend auto --device cuda --latency-runs 0, nvidia-smi sampling
#     memory.used every 200 ms. A run that fails (not by timeout) is retried once with --backend fused.
#  3. tools/flops.py on the dense and every slim model (1x128, 32x128): the ideal speedup.
#  4. gatecut bench DENSE DENSE SLIM... --device cuda at each BENCH_SHAPES item (dense twice at batch 1
#     as an A/A control), interleaved rounds.
#  5. tools/eval_harness_report.py prints the table.
# Returned under $OUT (at most 4 files): script.log, raw.tgz (everything per data set below),
# tables.md. Work files go to $WORK (/tmp/eval-work); a second call on the same warm machine reuses
# the unpacked payload.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/payload.sh"   # before the cd: the path may be relative
source "$(dirname "${BASH_SOURCE[0]}")/gpu_run.sh"
cd "$(dirname "$0")/.."
START=$SECONDS

OUT=${OUT:-/tmp/eval-out}
PAY=${PAY:-/opt/payload}
DEST=${DEST:-/opt/models}
WORK=${WORK:-/tmp/eval-work}
BUDGET_S=${BUDGET_S:-550}                 # the whole call; the device allows 600
DATASETS=${DATASETS:-"fine-foods spam"}
EPOCHS=${EPOCHS:-3}
BATCH=${BATCH:-32}
MAXLEN=${MAXLEN:-128}
GC_LR=${GC_LR:-1e-2}
GC_RUNS=${GC_RUNS:-"0.3:coupled 0.3:independent 0.2:coupled 0.4:coupled 0.2:independent 0.4:independent"}
PY_RUNS=${PY_RUNS:-"dense:1e-3,lora:1e-3,fgref:1e-2:0.3,lora:3e-4,dense:1e-2,lora:3e-3,fgref:1e-3:0.3,fgref:1e-2:0.2,fgref:1e-2:0.4"}
PY_MAX_S=${PY_MAX_S:-170}                 # the PyTorch part of one data set at most
PY_EXTRA=${PY_EXTRA:-}                    # e.g. "--limit 64 --max-steps 4" for a dry run
GC_EXTRA=${GC_EXTRA:-}                    # e.g. "--steps 3" for a dry run
BENCH_SHAPES=${BENCH_SHAPES-"1x128:400:20:100 32x128:100:10:10"}   # BxS:runs:warmup:rounds; "" for none
RESERVE_S=${RESERVE_S:-110}               # kept per data set for FLOPs + bench after the training runs
EST_COUPLED_S=${EST_COUPLED_S:-45}        # first guesses of one compress run's wall time
EST_INDEPENDENT_S=${EST_INDEPENDENT_S:-75}
DEVICE=${DEVICE:-cuda}                    # cpu only for a dry run
PYTHON=${PYTHON:-python3}
GPUKIT_ENV=${GPUKIT_ENV:-/opt/gpukit/env.sh}
PAY_SHA=${PAY_SHA:-}
MODEL_SHA=759c3cd2b7fe7e93933ad23c4c9181b7396442a2ed746ec7c1d46192c469c46e
export PYTHONUNBUFFERED=1

mkdir -p "$OUT" "$WORK/raw"
exec > >(tee -a "$OUT/script.log") 2>&1
say() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }
left() { echo $((BUDGET_S - (SECONDS - START))); }

# --- kit, payload -----------------------------------------------------------------------------
if [ ! -f "$GPUKIT_ENV" ]; then say "FAIL: $GPUKIT_ENV missing: fresh machine, redo the kit calls"; exit 2; fi
# shellcheck disable=SC1090
source "$GPUKIT_ENV"
PAYLOAD_SAY=say   # the library's messages get the same timestamps as the rest of script.log
# PAY_SHA empty: no sha256 check of the pieces (SHA256SUMS still checks every file)
if [ ! -f "$DEST/SHA256SUMS" ]; then
  payload_unpack --xz "$DEST" "$PAY_SHA" payload "$PAY"/pay.{1..5} || exit 3
fi
payload_sums "$DEST" SHA256SUMS --quiet || exit 3
msha=$(sha256sum "$DEST/models/all-minilm-l6-v2.onnx" | cut -d' ' -f1)
[ "$msha" = "$MODEL_SHA" ] || { say "FAIL: model sha256 $msha, expected $MODEL_SHA"; exit 3; }
JAR="$DEST/gatecut-nonative.jar"
MODEL="$DEST/models/all-minilm-l6-v2.onnx"
TOK="$DEST/models/all-minilm-l6-v2-tokenizer.json"
# shellcheck disable=SC2206
GC=("$JAVA" ${ORT_GPU_OPTS:-} -jar "$JAR")

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,pstate --format=csv,noheader 2>&1)"
  echo "host: $(nproc) cpus, $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "java: $("$JAVA" -version 2>&1 | head -1)"
  echo "gatecut: $("${GC[@]}" --version 2>&1 | tr '\n' ' ')"
  echo "jar sha256: $(sha256sum "$JAR" | cut -d' ' -f1)"
  echo "model sha256: $msha"
  echo "payload: $(cd "$DEST" && tr '\n' ';' < SHA256SUMS)"
  $PYTHON -c 'import sys, torch, transformers, peft, onnx, onnxruntime, tokenizers; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__, "peft", peft.__version__, "onnx", onnx.__version__, "onnxruntime(py)", onnxruntime.__version__, "tokenizers", tokenizers.__version__)' 2>&1 | tail -1
  echo "settings: DATASETS=[$DATASETS] EPOCHS=$EPOCHS BATCH=$BATCH MAXLEN=$MAXLEN GC_LR=$GC_LR GC_RUNS=[$GC_RUNS] PY_RUNS=[$PY_RUNS] BENCH_SHAPES=[$BENCH_SHAPES] BUDGET_S=$BUDGET_S DEVICE=$DEVICE"
} | tee "$WORK/raw/env.txt"

ndatasets=$(wc -w <<< "$DATASETS")
i_ds=0
for ds in $DATASETS; do
  i_ds=$((i_ds + 1))
  R="$WORK/raw/$ds"; mkdir -p "$R"
  TRAIN="$DEST/data/$ds-train.jsonl"; EVAL="$DEST/data/$ds-test.jsonl"
  [ -f "$TRAIN" ] && [ -f "$EVAL" ] || { say "FAIL: $TRAIN or $EVAL missing"; continue; }
  # this data set's share of the time left
  share=$(( $(left) / (ndatasets - i_ds + 1) ))
  ds_end=$(( SECONDS + share ))
  say "=== $ds: $(wc -l < "$TRAIN") train / $(wc -l < "$EVAL") test rows, ${share}s for it"

  # 1. PyTorch baselines and the FineGates reference
  t=$(( PY_MAX_S < share - RESERVE_S - 60 ? PY_MAX_S : share - RESERVE_S - 60 ))
  if [ "$t" -gt 40 ]; then
    say "$ds: eval_harness.py ($PY_RUNS), at most ${t}s"
    # shellcheck disable=SC2086
    timeout -k 5 "$t" $PYTHON tools/eval_harness.py --onnx "$MODEL" --tokenizer "$TOK" --train "$TRAIN" --eval "$EVAL" \
      --dataset "$ds" --out "$R/py.json" --runs "$PY_RUNS" --epochs "$EPOCHS" --batch "$BATCH" --max-len "$MAXLEN" \
      --device "$DEVICE" --deadline "$(( $(date +%s) + t - 25 ))" $PY_EXTRA > "$R/py.log" 2>&1
    rc=$?
    grep -E "versions|config from|data:|torch vs|===|epoch|samples/s|FAIL|Error|error" "$R/py.log" | cut -c1-400
    say "$ds: eval_harness.py exit $rc"
  else
    say "$ds: eval_harness.py SKIPPED (time)"
  fi

  # 2. gatecut compress runs
  declare -A EST=([coupled]=$EST_COUPLED_S [independent]=$EST_INDEPENDENT_S)
  for item in $GC_RUNS; do
    s=${item%%:*}; mode=${item#*:}
    tag="gc-s$s-$mode"; D="$R/$tag"; W="$WORK/$ds-$tag"
    avail=$(( ds_end - SECONDS - RESERVE_S ))
    need=${EST[$mode]}
    if [ "$avail" -lt "$need" ]; then say "SKIP $ds $tag: ${avail}s left before the bench reserve, about ${need}s needed"; continue; fi
    backend=auto
    for attempt in 1 2; do
      mkdir -p "$D"; rm -rf "$W"
      limit=$(( ds_end - SECONDS - RESERVE_S + 20 ))
      CMD=("${GC[@]}" compress "$MODEL" --tokenizer "$TOK" --train "$TRAIN" --eval "$EVAL" --target-sparsity "$s"
           --lr "$GC_LR" --batch "$BATCH" --max-len "$MAXLEN" --epochs "$EPOCHS" --gates-mode "$mode" --backend "$backend"
           --device "$DEVICE" --latency-runs 0 --no-progress)
      # shellcheck disable=SC2206
      CMD+=($GC_EXTRA -o "$W")
      { echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "# limit: ${limit}s"; echo "# cmd: ${CMD[*]}"; } > "$D/compress.log"
      say "$ds $tag: compress --backend $backend (limit ${limit}s)"
      gpu_run_sampled "$D/compress.log" "$D/gpumem.log" "$limit" "${CMD[@]}"
      rc=$GPU_RUN_RC
      say "$ds $tag: exit $rc, wall ${GPU_RUN_WALL}s"
      EST[$mode]=$(python3 -c "import math; print(math.ceil($GPU_RUN_END - $GPU_RUN_START) * 115 // 100 + 5)")
      cp "$W/summary.json" "$D/" 2>/dev/null
      cp "$W/run/metrics.jsonl" "$D/" 2>/dev/null
      $PYTHON - "$W" "$D/trainable.json" <<'PY' 2>&1 | tail -2
import json, os, sys
w, out = sys.argv[1], sys.argv[2]
res = {}
for f, key in (("run/checkpoint.json", "params"), ("run/params.json", "params")):
    try:
        p = json.load(open(os.path.join(w, f)))[key]
        res[f] = {"tensors": len(p), "values": sum(len(v) for v in p.values())}
        res[f + ":names"] = sorted(p)[:6] + (["..."] if len(p) > 6 else [])
    except Exception as e:  # noqa: BLE001
        res[f] = f"{type(e).__name__}: {e}"
try:
    g = json.load(open(os.path.join(w, "run/gates.raw.json")))["gates"]
    res["run/gates.raw.json"] = {"vectors": len(g), "values": sum(len(v.get("theta", v.get("values", []))) for v in g.values())}
except Exception as e:  # noqa: BLE001
    res["run/gates.raw.json"] = f"{type(e).__name__}: {e}"
json.dump(res, open(out, "w"), indent=1)
PY
      if [ "$rc" -eq 0 ]; then
        grep -E "^(train|eval|backend|step|targeted|model|slim)" "$D/compress.log" | cut -c1-300
        [ -f "$W/model.onnx" ] && cp "$W/model.onnx" "$WORK/$ds-$tag.onnx"
        break
      fi
      tail -n 25 "$D/compress.log"
      if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] || [ "$attempt" -eq 2 ]; then break; fi
      avail=$(( ds_end - SECONDS - RESERVE_S ))
      if [ "$avail" -lt "${EST[$mode]}" ]; then break; fi
      mv "$D" "$D-failed-auto"; backend=fused
      say "$ds $tag: retrying with --backend fused"
    done
  done

  # 3. FLOPs (ideal speedup), before the benchmark so that it does not compete with it for the host
  slims=(); for f in "$WORK/$ds"-gc-*.onnx; do [ -f "$f" ] && slims+=("$f"); done
  if [ ${#slims[@]} -gt 0 ]; then
    say "$ds: flops.py on dense + ${#slims[@]} slim models"
    timeout 90 $PYTHON tools/flops.py "$MODEL" "${slims[@]}" --shapes 1x128,32x128 --json > "$R/flops.json" 2> "$R/flops.err" \
      || say "$ds: flops.py failed: $(tail -n 3 "$R/flops.err")"
    # 4. latency, ONNX Runtime CUDA, dense vs slim, interleaved
    for sh in $BENCH_SHAPES; do
      IFS=: read -r bs runs warm rounds <<< "$sh"
      b=${bs%x*}; q=${bs#*x}
      t=$(( ds_end - SECONDS - 5 ))
      if [ "$t" -lt 25 ]; then say "$ds: bench ${b}x$q SKIPPED (time)"; continue; fi
      [ "$t" -gt 150 ] && t=150
      models=("$MODEL"); [ "$b" = 1 ] && models+=("$MODEL")
      say "$ds: bench batch $b seq $q, $runs runs in $rounds rounds after $warm warm-up, $(( ${#models[@]} + ${#slims[@]} )) models"
      if timeout "$t" "${GC[@]}" bench "${models[@]}" "${slims[@]}" --device "$DEVICE" --batch "$b" --seq "$q" --runs "$runs" \
          --warmup "$warm" --rounds "$rounds" --json > "$R/bench-b$b-s$q.json" 2> "$R/bench-b$b-s$q.err"; then
        $PYTHON - "$R/bench-b$b-s$q.json" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
for m in r["models"]:
    print(f"    {os.path.basename(m['file'])}: median {m['medianMs']:.3f} ms, p90 {m['p90Ms']:.3f} ms, speedup {m['speedup']:.3f}x")
PY
      else
        say "$ds: bench ${b}x$q FAILED: $(tail -n 5 "$R/bench-b$b-s$q.err")"
      fi
    done
  else
    say "$ds: no slim model, no FLOPs or bench"
  fi
  $PYTHON tools/eval_harness_report.py "$WORK/raw" > "$OUT/tables.md" 2> "$OUT/report.err" || tail -n 5 "$OUT/report.err"
  [ -s "$OUT/report.err" ] || rm -f "$OUT/report.err"
done

cat "$OUT/tables.md" 2>/dev/null
tar -C "$WORK" -czf "$OUT/raw.tgz" raw
say "done: $(du -h "$OUT/raw.tgz" | cut -f1) of raw results; total $((SECONDS - START))s"
