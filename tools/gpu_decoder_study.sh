#!/usr/bin/env bash
# The decoder study of gatecut issue 11 (item 5) in one device call: pretrain a small GPT-2 on five Austen
# novels (tools/pretrain_gpt.py), export it, measure the dense baselines on Persuasion ch. 20-24 (as
# pretrained; PEFT LoRA r=8, one run per seed), then `gatecut compress --task lm` for every seed at
# SPARSITIES (0 = the control: the same recipe, nothing closed) with the default recipe, and the VARIANTS
# at VARIANT_S, PARALLEL jobs at a time on the one GPU. tools/decoder_study_report.py writes the table
# (test perplexity, mean ± 95% t-interval over seeds, against both dense baselines).
#
# On the GPU machine, from the repository root, with the GPU kit unpacked (/opt/gpukit/env.sh) and the jar
# at /opt/gatecut.jar (carried in an earlier call; shared/gpu/README.md):
#
#   OUT=$OUT bash tools/gpu_decoder_study.sh            # timeout_s 600; returns script.log, tables.md, raw.tgz
#
# The data is tracked: datasets/lm/austen/*.jsonl.xz (tools/make_austen.py's three files, xz -9e; the sha256
# of each unpacked file is checked against datasets/lm/austen/README.md). Every gatecut run is scored on the
# test rows (--eval) after each epoch and at the end, with --no-select-best: the test rows are watched, never
# used to choose anything (as the LoRA baseline reports its last epoch).
#
# Knobs (environment):
#   BUDGET_S 550 (the whole script; a job that would not end in time is skipped and listed), PARALLEL 6,
#   SEEDS "1 2 3", SPARSITIES "0 0.2 0.3 0.4", VARIANT_S 0.3,
#   VARIANTS "name=flags;..." (default below: distil, lora, no norms, the classification recipe's settings, and the
#     default recipe on the fused back-end, which every variant runs on, to tell a back-end difference apart),
#   GC_MODE coupled, EPOCHS 8, BATCH 32, MAXLEN 128, GC_ARGS (added to every run), GC_EXTRA (dry runs: --steps 3),
#   PRETRAIN_S 60 and PRETRAIN_STEPS 1500 (tools/pretrain_gpt.py --pretrain-seconds / --max-steps; the 2026-11-22
#     run kept step 1000 of 3000), LORA_EPOCHS (EPOCHS), PY_EXTRA (more pretrain_gpt.py flags, e.g. --smoke),
#   SKIP_PRETRAIN=1 with MODEL_DIR holding model.onnx + tokenizer.json (+ pretrain.json for the baselines): a
#     second call on the warm machine for what the first skipped (MODEL_DIR=/tmp/decstudy-work/model SEEDS=3 ...;
#     it starts $WORK/raw afresh, so unpack both raw.tgz into one folder here for one table), or a dry run,
#   LIMIT (use only the first N tune and test rows; 0 = all), DEVICE cuda, JAR /opt/gatecut.jar,
#   GC_CMD (instead of the kit's java -jar JAR: e.g. "java -cp target/classes:... dev.gatecut.cli.GatecutCli"),
#   JOB_EST_S 120 (a job's expected seconds until one has finished; then 1.25x the longest so far).
#
# CPU dry run (here; no torch): the zoo's random GPT-2 and its tokenizer stand in for the pretrained model
#   mkdir -p /tmp/dry/model && cp onnx-models/gpt2-ts17.onnx /tmp/dry/model/model.onnx \
#     && cp datasets/demo/zoo-tokenizer.json /tmp/dry/model/tokenizer.json
#   mvn -q -o compile dependency:build-classpath -Dmdep.outputFile=/tmp/cp.txt
#   SKIP_PRETRAIN=1 MODEL_DIR=/tmp/dry/model WORK=/tmp/dry/work OUT=/tmp/dry/out DEVICE=cpu PARALLEL=2 LIMIT=24 \
#     EPOCHS=2 BATCH=8 MAXLEN=64 GC_CMD="java -cp target/classes:$(cat /tmp/cp.txt) dev.gatecut.cli.GatecutCli" \
#     bash tools/gpu_decoder_study.sh                 # 27 jobs in about 2.5 min on 2 cores
set -uo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS

OUT=${OUT:-/tmp/decstudy-out}
WORK=${WORK:-/tmp/decstudy-work}
BUDGET_S=${BUDGET_S:-550}
PARALLEL=${PARALLEL:-6}
SEEDS=${SEEDS:-"1 2 3"}
SPARSITIES=${SPARSITIES:-"0 0.2 0.3 0.4"}
VARIANT_S=${VARIANT_S:-0.3}
# Logit distillation at weight 1 and temperature 1 (the plain recipe's): the loss is next-token CE + per-token
# KL to the dense model, as label-free classification distils at weight 1. "cls" is the classification default
# recipe's schedule (gates at 0.95, Taylor cut, 10% warm-up, 20% dense, ramp over 40%), without its best-epoch
# selection (no validation rows here) and adapters (the "lora" variant). Trained norms are the --task lm default
# since this study (2026-11-30: 65.9 vs 69.9): the default rows train them, "nonorms" is the plain recipe alone
# (the default rows of that run), and "distill", "cls" and "fused" are on top of the norms; "lora" has none.
VARIANTS=${VARIANTS-"distill=--distill 1;lora=--adapter lora;nonorms=--no-train-norms;cls=--gate-init 0.95 --importance taylor --warmup 0.1 --dense-fraction 0.2 --ramp-fraction 0.4;fused=--backend fused"}
GC_MODE=${GC_MODE:-coupled}
EPOCHS=${EPOCHS:-8}
BATCH=${BATCH:-32}
MAXLEN=${MAXLEN:-128}
GC_ARGS=${GC_ARGS:-}
GC_EXTRA=${GC_EXTRA:-}
PRETRAIN_S=${PRETRAIN_S:-60}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-1500}
LORA_EPOCHS=${LORA_EPOCHS:-$EPOCHS}
PY_EXTRA=${PY_EXTRA:-}
SKIP_PRETRAIN=${SKIP_PRETRAIN:-0}
MODEL_DIR=${MODEL_DIR:-$WORK/model}
LIMIT=${LIMIT:-0}
DEVICE=${DEVICE:-cuda}
JAR=${JAR:-/opt/gatecut.jar}
JOB_EST_S=${JOB_EST_S:-120}
PYTHON=${PYTHON:-python3}
GPUKIT_ENV=${GPUKIT_ENV:-/opt/gpukit/env.sh}
export PYTHONUNBUFFERED=1

RAW="$WORK/raw"
rm -rf "$RAW" && mkdir -p "$OUT" "$RAW" "$WORK/data"
exec > >(tee -a "$OUT/script.log") 2>&1
say() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }
DEADLINE=$((START + BUDGET_S))

# --- gatecut ---------------------------------------------------------------------------------------
if [ -n "${GC_CMD:-}" ]; then
  read -r -a GC <<< "$GC_CMD"
else
  [ -f "$GPUKIT_ENV" ] || { say "FAIL: $GPUKIT_ENV missing: fresh machine, redo the kit calls"; exit 2; }
  # shellcheck disable=SC1090
  source "$GPUKIT_ENV"
  [ -f "$JAR" ] || { say "FAIL: no gatecut jar at $JAR (carry it there first, or JAR=...)"; exit 2; }
  # shellcheck disable=SC2206
  GC=("$JAVA" ${ORT_GPU_OPTS:-} -jar "$JAR")
fi

# --- data: the tracked xz files, checked, optionally cut to LIMIT rows ------------------------------
DATA=$WORK/data
$PYTHON - datasets/lm/austen "$DATA" "$LIMIT" <<'PY' || { say "FAIL: data"; exit 3; }
import hashlib, lzma, os, re, sys
src, dst, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
want = dict(re.findall(r"`(austen-\w+\.jsonl)`[^\n]*?sha256 `([0-9a-f]{64})`", open(os.path.join(src, "README.md")).read()))
for name in ("austen-pretrain.jsonl", "austen-tune.jsonl", "austen-test.jsonl"):
    raw = lzma.open(os.path.join(src, name + ".xz")).read()
    got = hashlib.sha256(raw).hexdigest()
    if got != want.get(name):
        sys.exit(f"FAIL: {name}: sha256 {got}, datasets/lm/austen/README.md says {want.get(name)}")
    lines = raw.decode("utf-8").splitlines(keepends=True)
    if limit > 0 and name != "austen-pretrain.jsonl":
        lines = lines[:limit]
    open(os.path.join(dst, name), "w", encoding="utf-8").writelines(lines)
    print(f"data: {name} sha256 {got[:12]}..., {len(lines)} rows used")
PY

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
  echo "host: $(nproc) cpus, $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "gatecut: $("${GC[@]}" --version 2>&1 | tr '\n' ' ')"
  [ -f "$JAR" ] && [ -z "${GC_CMD:-}" ] && echo "jar: $JAR $(stat -c %s "$JAR") bytes, sha256 $(sha256sum "$JAR" | cut -d' ' -f1)"
  echo "git: $(git rev-parse HEAD 2>/dev/null) $(git status --porcelain 2>/dev/null | wc -l) changed files"
  echo "settings: SEEDS=[$SEEDS] SPARSITIES=[$SPARSITIES] VARIANT_S=$VARIANT_S VARIANTS=[$VARIANTS] GC_MODE=$GC_MODE EPOCHS=$EPOCHS BATCH=$BATCH MAXLEN=$MAXLEN GC_ARGS=[$GC_ARGS] GC_EXTRA=[$GC_EXTRA] PRETRAIN_S=$PRETRAIN_S PRETRAIN_STEPS=$PRETRAIN_STEPS LORA_EPOCHS=$LORA_EPOCHS SKIP_PRETRAIN=$SKIP_PRETRAIN LIMIT=$LIMIT PARALLEL=$PARALLEL BUDGET_S=$BUDGET_S DEVICE=$DEVICE"
} | tee "$RAW/env.txt"

# --- 1. pretraining, export, dense baselines --------------------------------------------------------
if [ "$SKIP_PRETRAIN" != 1 ]; then
  lora_seeds=$(tr ' ' ',' <<< "$SEEDS" | sed 's/,,*/,/g; s/^,//; s/,$//')
  say "=== pretrain_gpt.py: at most ${PRETRAIN_S}s / $PRETRAIN_STEPS steps of pretraining, LoRA seeds $lora_seeds"
  # shellcheck disable=SC2086
  timeout -k 10 $((DEADLINE - SECONDS - 120)) $PYTHON tools/pretrain_gpt.py --data "$DATA" --out "$MODEL_DIR" \
    --pretrain-seconds "$PRETRAIN_S" --max-steps "$PRETRAIN_STEPS" --lora-epochs "$LORA_EPOCHS" --lora-batch "$BATCH" \
    --lora-seeds "$lora_seeds" --max-len "$MAXLEN" $PY_EXTRA > "$RAW/pretrain.log" 2>&1
  rc=$?
  grep -E "^(pretrained|onnx|dense|  LoRA seed .* epoch $LORA_EPOCHS:|pretrain_gpt)|Error|error" "$RAW/pretrain.log" | cut -c1-400
  say "=== pretrain_gpt.py: exit $rc"
else
  say "=== pretraining skipped (SKIP_PRETRAIN=1): model from $MODEL_DIR (its pretrain.json, if any, gives the baselines)"
fi
# A later call on the warm machine (SKIP_PRETRAIN=1, MODEL_DIR=$WORK/model, e.g. SEEDS=3) keeps the baselines.
cp "$MODEL_DIR/pretrain.json" "$MODEL_DIR/curve.jsonl" "$MODEL_DIR/tokenizer.json" "$RAW/" 2>/dev/null
M="$MODEL_DIR/model.onnx"; TOK="$MODEL_DIR/tokenizer.json"
[ -f "$M" ] && [ -f "$TOK" ] || { say "FAIL: no $M or $TOK"; tar -C "$WORK" -czf "$OUT/raw.tgz" raw; exit 4; }
sha256sum "$M" "$TOK" | tee "$RAW/model.sha256"

# --- 2. gatecut jobs ------------------------------------------------------------------------------
variant_names() { local IFS=';'; for x in $VARIANTS; do [ -n "${x%%=*}" ] && printf '%s\n' "${x%%=*}"; done; }
variant_flags() { local IFS=';'; for x in $VARIANTS; do [ "${x%%=*}" = "$1" ] && { printf '%s' "${x#*=}"; return; }; done; }

# gc_job TAG VARIANT S SEED BASELINE(0/1): one compress, its files under $RAW/TAG, the model files dropped.
gc_job() {
  local tag=$1 v=$2 s=$3 seed=$4 baseline=$5 d="$RAW/$1" w="$WORK/gc-$1"
  mkdir -p "$d"; rm -rf "$w"
  local -a vflags=(); [ "$v" != default ] && read -r -a vflags <<< "$(variant_flags "$v")"
  local -a base=(--no-baseline); [ "$baseline" = 1 ] && base=()
  # shellcheck disable=SC2206
  local cmd=("${GC[@]}" compress "$M" --task lm --tokenizer "$TOK" --train "$DATA/austen-tune.jsonl"
             --eval "$DATA/austen-test.jsonl" --target-sparsity "$s" --gates-mode "$GC_MODE" --seed "$seed"
             --epochs "$EPOCHS" --batch "$BATCH" --max-len "$MAXLEN" --device "$DEVICE" --latency-runs 0
             --no-select-best --no-progress "${base[@]}" $GC_ARGS "${vflags[@]}" $GC_EXTRA -o "$w")
  echo "# cmd: ${cmd[*]}" > "$d/compress.log"
  local t0=$SECONDS
  timeout -k 10 $((DEADLINE - SECONDS)) "${cmd[@]}" >> "$d/compress.log" 2>&1
  local rc=$? wall=$((SECONDS - t0))
  echo "# exit: $rc, wall ${wall}s" >> "$d/compress.log"
  cp "$w/summary.json" "$w/report.md" "$d/" 2>/dev/null; cp "$w/run/metrics.jsonl" "$d/" 2>/dev/null
  $PYTHON -c 'import json, sys; json.dump(dict(tag=sys.argv[1], variant=sys.argv[2], flags=sys.argv[3], sparsity=float(sys.argv[4]), seed=int(sys.argv[5]), exit=int(sys.argv[6]), wall_seconds=int(sys.argv[7])), open(sys.argv[8], "w"), indent=1)' \
    "$tag" "$v" "$(variant_flags "$v") $GC_ARGS" "$s" "$seed" "$rc" "$wall" "$d/job.json"
  rm -rf "$w"
  if [ "$rc" -ne 0 ]; then say "$tag: exit $rc after ${wall}s"; tail -n 8 "$d/compress.log" | cut -c1-300; return; fi
  say "$tag: ${wall}s, $(grep -E '^eval perplexity' "$d/compress.log" | cut -c1-160)"
}

# The expected seconds of a job: JOB_EST_S until one has finished, then 1.25x the longest finished one
# (parallel jobs share the GPU, so the walls already include the sharing).
job_est() {
  local longest
  longest=$(cat "$RAW"/*/job.json 2>/dev/null | grep -o '"wall_seconds": [0-9]*' | awk '{print $2}' | sort -n | tail -1)
  if [ -n "$longest" ]; then echo $((longest * 5 / 4 + 5)); else echo "$JOB_EST_S"; fi
}

# Priority order: seed by seed, so a short budget loses whole seeds last; within a seed the sparsities,
# then the variants. The first job (first seed, S=0) also measures gatecut's dense baseline (--baseline).
jobs_list=""
first=1
for seed in $SEEDS; do
  for s in $SPARSITIES; do
    jobs_list+="default-s$s-seed$seed default $s $seed $first"$'\n'; first=0
  done
  while read -r v; do
    [ -n "$v" ] && jobs_list+="$v-s$VARIANT_S-seed$seed $v $VARIANT_S $seed 0"$'\n'
  done < <(variant_names)
done
say "=== gatecut: $(grep -c . <<< "$jobs_list") jobs, $PARALLEL at a time, $((DEADLINE - SECONDS))s left"

# Waits on its own job ids only: a bare `wait` would also wait for the tee of script.log.
pids=()
while read -r tag v s seed baseline; do
  [ -n "$tag" ] || continue
  while :; do
    alive=(); for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
    pids=("${alive[@]}")
    [ "${#pids[@]}" -lt "$PARALLEL" ] && break
    sleep 1
  done
  need=$(job_est)
  if [ $((SECONDS + need)) -gt "$DEADLINE" ]; then
    say "SKIP $tag: $((DEADLINE - SECONDS))s left, about ${need}s needed"
    mkdir -p "$RAW/$tag"
    echo "{\"tag\": \"$tag\", \"variant\": \"$v\", \"sparsity\": $s, \"seed\": $seed, \"skipped\": \"$((DEADLINE - SECONDS))s left, about ${need}s needed\"}" > "$RAW/$tag/job.json"
    continue
  fi
  say "start $tag (about ${need}s)"
  gc_job "$tag" "$v" "$s" "$seed" "$baseline" &
  pids+=($!)
done <<< "$jobs_list"
for p in "${pids[@]}"; do wait "$p"; done

# --- 3. report ------------------------------------------------------------------------------------
$PYTHON tools/decoder_study_report.py "$RAW" --md "$OUT/tables.md" || say "report failed"
tar -C "$WORK" -czf "$OUT/raw.tgz" raw
say "done: $(du -h "$OUT/raw.tgz" | cut -f1) of raw results; total $((SECONDS - START))s"
