#!/usr/bin/env bash
# Evaluation suite (gatecut issue 11), one device call per data set: MiniLM and bge-small, SEEDS seeds;
# frozen encoder + head, PEFT LoRA r=8 and full fine-tuning (tools/eval_suite.py train; learning rates
# chosen on a validation slice of train), and `gatecut compress` at SPARSITIES (0 = the same recipe with
# nothing closed). PART=posttrain instead fine-tunes a BertForSequenceClassification, exports it (fp32,
# fp16) and compresses that file with labels (and label-free: hook below).
#
# On the GPU machine, from the repository root, after the GPU kit is unpacked (/opt/gpukit/env.sh,
# shared/gpu/README.md) and the payload of tools/make_suite_payload.sh is in $PAY (pieces pay.1..N):
#
#   OUT=$OUT SETS=sentences bash tools/gpu_eval_suite.sh             # part 1, both models, 3 seeds
#   OUT=$OUT SETS=austen MODELS=bge SPARSITIES="0 0.3" bash tools/gpu_eval_suite.sh   # a subset
#   OUT=$OUT SETS=tweets PART=posttrain MODELS=minilm bash tools/gpu_eval_suite.sh   # part 3 (0.3, 0.4)
#   python3 tools/eval_suite.py estimate                                  # planned minutes per call
# tables.md covers every set run on this machine so far; across machines, unpack the raw.tgz files
# into one folder and run `python3 tools/eval_suite.py report FOLDER` here.
#
# Knobs (environment): SETS (folders of datasets/suite), MODELS ("minilm bge"), SEEDS ("1 2 3"),
# SPARSITIES ("0 0.2 0.3 0.4"; posttrain "0.3 0.4"; none: the baselines alone), PY_METHODS (dense,lora,full; none = gatecut only), PY_SCHEDULES (the baselines' and part 3's fine-tunes'
# learning-rate schedules, each tried with every rate and chosen on validation like it: part 1 constant,linear, part 3
# linear; see below), LRS (eval_suite.py --lrs), GC_MODE
# (coupled), GC_ARGS (recipe flags; default none: the default recipe), GC_VARIANTS (recipes side by side:
# "name=flags;name=flags", an empty name = GC_ARGS alone; report rows "gatecut 30% [name]"; a variant's own --target-sparsity
# replaces the row's), GC_SELECT (variant names,
# "default" for the unnamed one, comma-separated: a row of each seed's best of them on validation accuracy, as LoRA's
# rate is chosen), GC_SELECT_BY (accuracy, or loss: the lowest validation loss chooses gatecut's variant and the
# baselines' rates), EPOCHS (the torch runs': 3), GC_EPOCHS (gatecut's --epochs; default none: gatecut's own
# default, 3, or 5 compressing a fine-tuned model from 30% removed), BATCH 32, MAXLEN 128,
# PARALLEL (jobs at once on the one GPU, 6), SETS_AT_ONCE (1: the jobs of every set in one queue against the whole
# budget, the default for PART=posttrain; 0: set after set), BUDGET_S (the whole call, 560), DEVICE (cuda; cpu for a
# dry run with GC_CMD="java -cp ... dev.gatecut.cli.GatecutCli", PY_EXTRA="--limit 64 --max-steps 3",
# GC_EXTRA="--steps 3"), LABELFREE_ARGS (part 3 label-free flags, default --label-free; empty skips), LABELFREE_NAME (their row: "label-free [NAME]"), LABELFREE_EVAL (val; val-text: their --eval rows unlabelled too), PRECISIONS
# (part 3: "fp32 fp16"), LABELLED (part 3: 0 skips the labelled runs, label-free only), LABELFREE_SPARSITIES (part 3:
# the sparsities of the label-free runs, default SPARSITIES, "PREC:S" for one precision alone, e.g. "fp32:0.4 fp16:0.3";
# the issue's label-free target is at 30%),
# SUITE_TORCH_THREADS (the torch processes' CPU threads; default: torch's, every core each; part 3: the cores / PARALLEL), SUITE_ORT_DEVICE (auto: the Python scoring on CUDA where onnxruntime has it, use_tf32 off; cpu), GC_TEST (1: gatecut
# scores the test rows itself with --test, exact fp32 on CUDA, fp16 files too; 0: eval_suite.py predict scores the
# slim file on ONNX Runtime's CPU, and fp16 runs select on test), GC_WATCH (1: with GC_TEST=1 the test rows are scored
# after every epoch too, --watch, for the report's epoch-selection table; never chosen on), DEST (unpacked payload, /opt/suite),
# JAR (default: the payload's, else /opt/gatecut.jar), MINILM_DIR / BGE_DIR (models already there), BGE_PAY /
# BGE_PAY_SHA / BGE_DEST (a second payload, bge-small's, unpacked beside the first: both models in one call),
# KEEP_MODELS=1 (keep the slim and exported ONNX files in raw.tgz; large).
#
# Jobs run PARALLEL at a time in priority order (per seed: torch baselines, then gatecut at each
# sparsity); a job that would not finish before the budget (its estimate from eval_suite.py's EST_S,
# scaled by rows) is skipped and listed in the table; the same command again on the warm machine runs
# the skipped jobs and keeps the finished ones (FRESH=1 starts the data set over). Part 3 keeps each
# seed's export on the machine: a later call with other sparsities, variants or label-free flags (same
# fine-tuning settings and precisions) compresses the same files and keeps the runs finished with them. Returned under
# $OUT: script.log, tables.md, raw.tgz (per job: JSON results, logs, gatecut's summary.json and
# metrics.jsonl; no gate dumps, no file over RAW_MAX_KB).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/payload.sh"
cd "$(dirname "$0")/.."
START=$SECONDS

OUT=${OUT:-/tmp/suite-out}
PAY=${PAY:-/opt/suite-pay}
DEST=${DEST:-/opt/suite}
WORK=${WORK:-/tmp/suite-work}
PART=${PART:-suite}
SETS=${SETS:-sentences}
MODELS=${MODELS:-"minilm bge"}
SEEDS=${SEEDS:-"1 2 3"}
LABELLED=${LABELLED:-1}   # part 3: 0 runs the label-free compressions alone
GC_TEST=${GC_TEST:-1}     # gatecut scores the test rows itself (--test); 0: eval_suite.py predict on the CPU, as before
# with GC_TEST=1, the test rows also scored after every epoch (--watch: metrics.jsonl, never chosen on), so the
# report can compare epoch-selection rules on the same runs; 0: not
GC_WATCH=${GC_WATCH:-1}
if [ "$PART" = posttrain ]; then SPARSITIES=${SPARSITIES:-"0.3 0.4"}; else SPARSITIES=${SPARSITIES:-"0 0.2 0.3 0.4"}; fi
[ "$SPARSITIES" = none ] && SPARSITIES=""   # baselines only (PY_METHODS), no gatecut run
LABELFREE_SPARSITIES=${LABELFREE_SPARSITIES:-$SPARSITIES}   # part 3: e.g. "0.3" (label-free at 30% only)
PY_METHODS=${PY_METHODS-dense,lora,full}   # none (or empty): gatecut rows only (baselines from an earlier call)
LRS=${LRS:-}
GC_MODE=${GC_MODE:-coupled}
GC_ARGS=${GC_ARGS:-}
EPOCHS=${EPOCHS:-3}
GC_EPOCHS=${GC_EPOCHS:-}   # gatecut's --epochs; empty: its default (3; 5 for an own head from 30% removed)
BATCH=${BATCH:-32}
MAXLEN=${MAXLEN:-128}
PARALLEL=${PARALLEL:-6}
# part 3's exports share the cores: nine torch processes with every core each took bge-small's fp32 export 95 s,
# with two each 27 s (2026-12-02); part 1's torch work is on the GPU and keeps torch's default
if [ "$PART" = posttrain ]; then export SUITE_TORCH_THREADS=${SUITE_TORCH_THREADS:-$((($(nproc) + PARALLEL - 1) / PARALLEL))}; fi
BUDGET_S=${BUDGET_S:-560}
DEVICE=${DEVICE:-cuda}
PY_EXTRA=${PY_EXTRA:-}
# The baselines' (and part 3's fine-tunes') learning-rate schedules, each tried with every rate and chosen on
# validation with it: constant (AdamW as is: every table up to 2026-12-01) and/or linear (10% warm-up, then a linear
# decay: gatecut's --lr-decay, BERT's schedule). Part 1: both, as gatecut's new-head recipe decays (from 2026-12-02).
# Part 3: linear, the schedule of Hugging Face's Trainer that most fine-tuned models users deploy come from (the
# constant-rate originals up to 2026-12-01 were weaker: bge-small on sotu 75.3 against 78.7).
if [ "$PART" = posttrain ]; then PY_SCHEDULES=${PY_SCHEDULES:-linear}; else PY_SCHEDULES=${PY_SCHEDULES:-constant,linear}; fi
NSCHED=$(tr ',' ' ' <<< "$PY_SCHEDULES" | wc -w)
GC_EXTRA=${GC_EXTRA:-}
LABELFREE_ARGS=${LABELFREE_ARGS---label-free}   # LABELFREE_ARGS= (empty) skips the label-free runs
LABELFREE_EVAL=${LABELFREE_EVAL:-val}   # the label-free runs' --eval: val (labelled), or val-text (no labels: agreement with the original)
LABELFREE_NAME=${LABELFREE_NAME:-}   # a name for LABELFREE_ARGS's runs (folder, report row "label-free [NAME]"), so
                                     # another call's label-free recipe on the same exports sits beside them
# runs with another --eval get their own folders (a warm machine keeps finished runs by folder)
[ "$LABELFREE_EVAL" = val ] || LABELFREE_NAME=${LABELFREE_NAME:-$LABELFREE_EVAL}
PRECISIONS=${PRECISIONS:-"fp32 fp16"}           # posttrain: which exports of the fine-tuned model are compressed
PAY_SHA=${PAY_SHA:-}
PYTHON=${PYTHON:-python3}
PYTHON_TORCH=${PYTHON_TORCH:-$PYTHON}    # the one with torch (train, export); dry runs may differ
GPUKIT_ENV=${GPUKIT_ENV:-/opt/gpukit/env.sh}
export PYTHONUNBUFFERED=1

mkdir -p "$OUT" "$WORK/raw"
exec > >(tee -a "$OUT/script.log") 2>&1
say() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }
DEADLINE=$((START + BUDGET_S))

# --- gatecut, models ---------------------------------------------------------------------------
# Payloads (models, maybe the jar): joined, checked and unpacked on the first call of a machine.
PAYLOAD_SAY=say
if [ ! -f "$DEST/SHA256SUMS" ] && ls "$PAY"/pay.* > /dev/null 2>&1; then
  # shellcheck disable=SC2046
  payload_unpack --xz "$DEST" "$PAY_SHA" suite-payload $(ls "$PAY"/pay.* | sort -V) || exit 3
fi
[ ! -f "$DEST/SHA256SUMS" ] || payload_sums "$DEST" SHA256SUMS --quiet || exit 3
# A second payload (e.g. bge-small's beside MiniLM's): BGE_PAY pieces unpacked into BGE_DEST, BGE_DIR its models.
if [ -n "${BGE_PAY:-}" ]; then
  BGE_DEST=${BGE_DEST:-/opt/suite-bge}
  if [ ! -f "$BGE_DEST/SHA256SUMS" ] && ls "$BGE_PAY"/pay.* > /dev/null 2>&1; then
    # shellcheck disable=SC2046
    payload_unpack --xz "$BGE_DEST" "${BGE_PAY_SHA:-}" bge-payload $(ls "$BGE_PAY"/pay.* | sort -V) || exit 3
  fi
  [ ! -f "$BGE_DEST/SHA256SUMS" ] || payload_sums "$BGE_DEST" SHA256SUMS --quiet || exit 3
  BGE_DIR=${BGE_DIR:-$BGE_DEST/models}
fi
if [ -n "${GC_CMD:-}" ]; then
  read -r -a GC <<< "$GC_CMD"
else
  [ -f "$GPUKIT_ENV" ] || { say "FAIL: $GPUKIT_ENV missing: fresh machine, redo the kit calls"; exit 2; }
  # shellcheck disable=SC1090
  source "$GPUKIT_ENV"
  # shellcheck disable=SC2206
  # the jar: JAR, else the payload's, else /opt/gatecut.jar (README: carried in its own call)
  JAR=${JAR:-$DEST/gatecut-nonative.jar}; [ -f "$JAR" ] || JAR=/opt/gatecut.jar
  [ -f "$JAR" ] || { say "FAIL: no gatecut jar (JAR=..., $DEST/gatecut-nonative.jar or /opt/gatecut.jar)"; exit 2; }
  GC=("$JAVA" ${ORT_GPU_OPTS:-} -jar "$JAR")
fi
# MINILM_DIR / BGE_DIR: folders that already hold a model and its tokenizer.json (default: the payload)
declare -A ONNX=([minilm]="${MINILM_DIR:-$DEST/models}/all-minilm-l6-v2.onnx" [bge]="${BGE_DIR:-$DEST/models}/bge-small-en-v1.5.onnx")
declare -A TOK=([minilm]="${MINILM_DIR:-$DEST/models}/all-minilm-l6-v2-tokenizer.json" [bge]="${BGE_DIR:-$DEST/models}/bge-small-en-v1.5-tokenizer.json")
for m in $MODELS; do
  [ -f "${ONNX[$m]:-/nonexistent}" ] || { say "FAIL: model '$m': ${ONNX[$m]:-unknown name (minilm, bge)} missing"; exit 2; }
done

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
  echo "host: $(nproc) cpus"
  echo "gatecut: $("${GC[@]}" --version 2>&1 | tr '\n' ' ')"
  echo "git: $(git rev-parse HEAD 2>/dev/null) $(git status --porcelain 2>/dev/null | wc -l) changed files"
  [ -f "$DEST/SHA256SUMS" ] && echo "payload: $(tr '\n' ';' < "$DEST/SHA256SUMS")"
  $PYTHON -c 'import sys, torch, transformers, peft, onnxruntime; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__, "onnxruntime", onnxruntime.__version__)' 2>&1 | tail -1
  echo "settings: PART=$PART SETS=[$SETS] MODELS=[$MODELS] SEEDS=[$SEEDS] SPARSITIES=[$SPARSITIES] PY_METHODS=$PY_METHODS PY_SCHEDULES=$PY_SCHEDULES LRS=[$LRS] GC_MODE=$GC_MODE GC_ARGS=[$GC_ARGS] EPOCHS=$EPOCHS GC_EPOCHS=${GC_EPOCHS:-default} BATCH=$BATCH MAXLEN=$MAXLEN PARALLEL=$PARALLEL SUITE_TORCH_THREADS=${SUITE_TORCH_THREADS:-default} BUDGET_S=$BUDGET_S DEVICE=$DEVICE"
} | tee "$WORK/raw/env.txt"

# Estimated seconds of a job (eval_suite.py's table, scaled by the data set's train rows).
# EST_SCALE (default 1) scales every estimate: they are for six to nine jobs at once, and a call of three chains with
# a short budget (e.g. one set's label-free runs at the end of a session) needs less than they say.
est() { $PYTHON -c "import sys; sys.path.insert(0, 'tools'); import eval_suite as e; print(int(e.EST_S[('$1', '$2')] * $3 / 1800 * ${EST_SCALE:-1}) + 5)"; }

# --- one gatecut run: compress, then score the classifier on test ------------------------------
# A gatecut run that finished and was scored: its gc.json is one the report counts (eval_suite.py's `scored`).
run_finished() { $PYTHON -c "import json, sys; sys.path.insert(0, 'tools'); import eval_suite as e; sys.exit(0 if e.scored(json.load(open(sys.argv[1]))) else 1)" "$1/gc.json" 2>/dev/null; }
# gc_run MODEL_FILE TOKENIZER SPLITDIR TRAINFILE LABELS S SEED DIR JSONFIELDS EXTRA...
gc_run() {
  local model=$1 tok=$2 split=$3 train=$4 labels=$5 s=$6 seed=$7 d=$8 fields=$9
  shift 9
  local w="$d/out" limit=$((DEADLINE - SECONDS))
  # past the budget (a chain's earlier steps took it): say so instead of handing timeout a negative limit
  if [ "$limit" -le 5 ]; then mkdir -p "$(dirname "$d")"; echo "time: budget spent before this run" > "$d.skipped"; return; fi
  # shellcheck disable=SC2206
  local ev=${GC_EVAL:-val}   # gatecut's --eval (selection): val
  # a variant that names its own --target-sparsity (e.g. hidden gates at the same matrix-product budget) keeps it
  local -a target=(--target-sparsity "$s"); [[ " $* " == *" --target-sparsity "* ]] && target=()
  # gatecut's own default length unless GC_EPOCHS names one (its default depends on the head and the sparsity), and a
  # variant that names its own --epochs (e.g. LABELFREE_ARGS="--label-free --epochs 5") keeps those
  local -a epochs=(); [ -n "$GC_EPOCHS" ] && epochs=(--epochs "$GC_EPOCHS"); [[ " $* " == *" --epochs "* ]] && epochs=()
  local cmd=("${GC[@]}" compress "$model" --tokenizer "$tok" --train "$train" --eval "$split/$ev.jsonl"
             "${target[@]}" --gates-mode "$GC_MODE" --seed "$seed" --batch "$BATCH" --max-len "$MAXLEN"
             "${epochs[@]}" --device "$DEVICE" --latency-runs 0 --no-baseline --no-progress $GC_ARGS $GC_EXTRA "$@" -o "$w")
  [ -n "$labels" ] && cmd+=(--labels "$labels")
  # test accuracy and macro-F1 from gatecut itself (--test: exact fp32 on CUDA, fp16 files included; selects nothing)
  [ "$GC_TEST" = 1 ] && cmd+=(--test "$split/test.jsonl")
  [ "$GC_TEST" = 1 ] && [ "$GC_WATCH" = 1 ] && cmd+=(--watch "$split/test.jsonl")
  local cmd_line="# cmd: ${cmd[*]}"
  # A part-3 chain repeated on a warm machine with the same export (REUSED_EXPORT=1) keeps its runs finished with the
  # same command; any other repeated run starts over: a folder left by a run the budget cut would make gatecut
  # refuse (exit 2), and its old summary.json pass for this run's result.
  if [ "${REUSED_EXPORT:-0}" = 1 ] && run_finished "$d" && [ "$(head -n 1 "$d/compress.log")" = "$cmd_line" ]; then
    say "    kept $(basename "$d") (finished with this export and command)"; return
  fi
  rm -rf "$w" "$d/summary.json" "$d/metrics.jsonl" "$d/pred.json" "$d/gc.json" "$d.skipped"
  mkdir -p "$d"
  echo "$cmd_line" > "$d/compress.log"
  local t0=$SECONDS
  timeout -k 10 "$limit" "${cmd[@]}" >> "$d/compress.log" 2>&1
  local rc=$?
  cp "$w/summary.json" "$d/" 2>/dev/null; cp "$w/run/metrics.jsonl" "$d/" 2>/dev/null
  local cls="$w/classifier.onnx"; [ -f "$cls" ] || cls="$w/model.onnx"
  if [ "$rc" -eq 0 ] && [ -f "$cls" ] && [ "$GC_TEST" != 1 ]; then
    # a float16 file with fused ops may have no CPU kernels: rc 4, and the accuracy comes from gatecut (GC_EVAL=test)
    $PYTHON tools/eval_suite.py predict --onnx "$cls" --tokenizer "$tok" --data "$split/test.jsonl" \
      --labels "$(cat "$split/labels.txt")" --max-len "$MAXLEN" --out "$d/pred.json" > "$d/predict.log" 2>&1 || rc=4
  elif [ "$rc" -ne 0 ]; then
    tail -n 15 "$d/compress.log"
  fi
  $PYTHON - "$d" "$rc" "$((SECONDS - t0))" "$s" "$seed" "$fields" "$ev" <<'PY'
import json, os, sys
d, rc, wall, s, seed, fields, ev = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
g = dict(json.loads(fields), sparsity=s, seed=seed, exit=rc, wall_seconds=wall, gatecut_eval=ev)
for f, key in (("pred.json", None), ("summary.json", "summary")):
    try:
        v = json.load(open(os.path.join(d, f)))
        g.update(v) if key is None else g.__setitem__(key, v)
    except Exception as e:  # noqa: BLE001
        g.setdefault("missing", []).append(f"{f}: {type(e).__name__}")
s = g.get("summary", {})
if "accuracy" in g:
    where = {"CUDAExecutionProvider": "CUDA, no TF32"}.get(g.get("ort_provider"), "CPU")
    g["accuracy_from"] = f"eval_suite.py predict (ONNX Runtime {where}, test)"
elif isinstance(s.get("slim_test_accuracy"), (int, float)):
    g["accuracy"], g["macro_f1"] = s["slim_test_accuracy"], s["slim_test_macro_f1"]
    g["accuracy_from"] = "gatecut --test (ONNX Runtime, exact fp32 on CUDA)"
elif ev == "test" and isinstance(g.get("summary", {}).get("slim_eval_accuracy"), (int, float)):
    g["accuracy"] = g["summary"]["slim_eval_accuracy"]   # no macro-F1 from this source
    g["accuracy_from"] = "gatecut slim_eval_accuracy (ONNX Runtime CUDA, test)"
json.dump(g, open(os.path.join(d, "gc.json"), "w"), indent=1)
print(f"    gc {os.path.basename(d)}: exit {rc}, {wall}s, test accuracy {g.get('accuracy', float('nan')):.4f}, macro-F1 {g.get('macro_f1', float('nan')):.4f} ({g.get('accuracy_from', 'no accuracy')})")
PY
  # raw.tgz comes back through $OUT: no model files in it unless KEEP_MODELS=1
  rm -rf "$w"/run/train_step.onnx* "$w"/run/*.ckpt "$w"/run/*.data 2>/dev/null
  [ "${KEEP_MODELS:-0}" = 1 ] || rm -f "$w"/*.onnx "$w"/*.onnx.data
}

# --- jobs --------------------------------------------------------------------------------------
# Every job names its data set first: with SETS_AT_ONCE=1 jobs of several sets run side by side.
use_set() { ds=$1; SPLIT="$WORK/$1/split"; RAW="$WORK/raw/$1"; }

job_torch() {  # SET MODEL SEED
  local ds SPLIT RAW; use_set "$1"; shift
  local m=$1 seed=$2 r="$RAW/$1"
  mkdir -p "$r"
  # shellcheck disable=SC2086
  timeout -k 10 $((DEADLINE - SECONDS)) $PYTHON_TORCH tools/eval_suite.py train --model "$m" --onnx "${ONNX[$m]}" \
    --tokenizer "${TOK[$m]}" --work "$SPLIT" --seed "$seed" --methods "$PY_METHODS" --lrs "$LRS" --epochs "$EPOCHS" \
    --batch "$BATCH" --max-len "$MAXLEN" --device "$DEVICE" --schedules "$PY_SCHEDULES" \
    --out "$r/torch-seed$seed.json" $PY_EXTRA \
    > "$r/torch-seed$seed.log" 2>&1
  local rc=$?
  grep -E "===|val |FAILED|error" "$r/torch-seed$seed.log" | sed "s/^/    [$m seed $seed] /" | cut -c1-300
  say "$ds $m seed $seed torch: exit $rc"
}

job_gc() {  # SET MODEL S SEED [VARIANT]: VARIANT names flags in GC_VARIANTS, added after GC_ARGS
  local ds SPLIT RAW; use_set "$1"; shift
  local m=$1 s=$2 seed=$3 v=${4:-}
  local -a vflags=(); [ -n "$v" ] && read -r -a vflags <<< "$(variant_flags "$v")"
  gc_run "${ONNX[$m]}" "${TOK[$m]}" "$SPLIT" "$SPLIT/train.jsonl" "$(cat "$SPLIT/labels.txt")" "$s" "$seed" \
    "$RAW/$m/$(gc_dir "$s" "$seed" "$v")" "{\"dataset\": \"$ds\", \"model\": \"$m\", \"source\": \"pretrained\", \"variant\": \"$v\"}" \
    "${vflags[@]}"
  say "$ds $m gatecut${v:+ [$v]} $s seed $seed: done"
}
# GC_VARIANTS="name=flags;name=flags": recipes compared side by side (each job once per variant; an empty
# name or no GC_VARIANTS is the plain recipe of GC_ARGS). Example: GC_VARIANTS="=;lora=--adapter lora".
variant_names() { local IFS=';'; for x in ${GC_VARIANTS:-=}; do printf '%s\n' "${x%%=*}"; done; }
variant_flags() { local IFS=';'; for x in ${GC_VARIANTS:-=}; do [ "${x%%=*}" = "$1" ] && { printf '%s' "${x#*=}"; return; }; done; }
gc_dir() { echo "gc${3:+-$3}-s$1-seed$2"; }

# A part-3 run's folder under post-seedN/: PREC S [VARIANT] with labels (a variant whose flags say --label-free:
# label-free, as LABELFREE_ARGS's run), PREC S label-free (LABELFREE_NAME's).
labels_dir() { if variant_label_free "${3:-}"; then echo "$1-labelfree-$3-s$2"; else echo "$1-labels${3:+-$3}-s$2"; fi; }
variant_label_free() { [ -n "$1" ] && [[ " $(variant_flags "$1") " == *" --label-free "* ]]; }
# Whether part 3 runs label-free on PREC at S: LABELFREE_SPARSITIES names a sparsity for every precision ("0.3") or
# for one ("fp16:0.3"), so a call can leave out what an earlier one measured.
labelfree_at() { [[ " $LABELFREE_SPARSITIES " == *" $2 "* || " $LABELFREE_SPARSITIES " == *" $1:$2 "* ]]; }
labelfree_dir() { echo "$1-labelfree${LABELFREE_NAME:+-$LABELFREE_NAME}-s$2"; }

job_post() {  # SET MODEL SEED: fine-tune + export, then compress each precision with labels (and label-free)
  local ds SPLIT RAW; use_set "$1"; shift
  local m=$1 seed=$2 e="$WORK/$ds-$1-seed$2-export" r="$RAW/$1/post-seed$2"
  mkdir -p "$r"
  # The export stays on the machine (a few hundred MB per chain): a later call on the warm machine with the same
  # fine-tuning settings and precisions compresses the same files, skipping the fine-tune and export (about 200 s
  # for bge-small with 9 chains at once) and the runs already finished with them (gc_run, REUSED_EXPORT).
  local prec REUSED_EXPORT=0 unfinished=0
  export_reusable "$e" && REUSED_EXPORT=1
  if [ "$REUSED_EXPORT" = 1 ]; then
    say "$ds $m seed $seed export: reused (same fine-tuning settings, $PRECISIONS there)"
  else
    rm -rf "$e"
    # shellcheck disable=SC2086
    timeout -k 10 $((DEADLINE - SECONDS)) $PYTHON_TORCH tools/eval_suite.py export --model "$m" --onnx "${ONNX[$m]}" \
      --tokenizer "${TOK[$m]}" --work "$SPLIT" --seed "$seed" --lrs "$LRS" --epochs "$EPOCHS" --batch "$BATCH" \
      --max-len "$MAXLEN" --device "$DEVICE" --precisions "$PRECISIONS" --schedules "$PY_SCHEDULES" --out "$e" \
      $PY_EXTRA > "$r/export.log" 2>&1
    local rc=$?
    cp "$e/export.json" "$r/" 2>/dev/null
    say "$ds $m seed $seed export: exit $rc"
    [ "$rc" -eq 0 ] || { tail -n 20 "$r/export.log"; return; }
    echo "$EXPORT_KEY" > "$e/key"
  fi
  for prec in $PRECISIONS; do
    [ -f "$e/cls-$prec.onnx" ] || { echo "no cls-$prec.onnx" > "$r/$prec.skipped"; continue; }
    local GC_EVAL=val; [ "$prec" = fp16 ] && [ "$GC_TEST" != 1 ] && GC_EVAL=test   # fp16 without --test: see gc_run
    for s in $SPARSITIES; do
      [ "$LABELLED" = 1 ] && while read -r v; do
        local -a vflags=(); [ -n "$v" ] && read -r -a vflags <<< "$(variant_flags "$v")"
        # A label-free variant (GC_VARIANTS="=;drop=--label-free --adapter-dropout 0.1") reads the text alone and is
        # reported as "label-free [drop]", beside the plain label-free run, choosing on what it does (LABELFREE_EVAL)
        local train="$SPLIT/train.jsonl" mode=labels veval=$GC_EVAL
        if variant_label_free "$v"; then
          train="$SPLIT/train-text.jsonl"; mode=label-free; [ "$GC_EVAL" = val ] && veval=$LABELFREE_EVAL
        fi
        GC_EVAL=$veval gc_run "$e/cls-$prec.onnx" "${TOK[$m]}" "$SPLIT" "$train" "$(cat "$e/labels.txt")" "$s" "$seed" \
          "$r/$(labels_dir "$prec" "$s" "$v")" "{\"dataset\": \"$ds\", \"model\": \"$m\", \"source\": \"finetuned\", \"precision\": \"$prec\", \"labels_mode\": \"$mode\", \"variant\": \"$v\"}" \
          "${vflags[@]}"
        run_finished "$r/$(labels_dir "$prec" "$s" "$v")" || unfinished=$((unfinished + 1))
      done < <(variant_names)
      # Label-free: the train texts without labels; the model's own head labels them and training
      # distills from its logits (--label-free). --labels names the classes for the labelled --eval rows.
      if [ -n "$LABELFREE_ARGS" ] && labelfree_at "$prec" "$s"; then
        # LABELFREE_EVAL=val-text: the validation rows without labels too (gatecut labels them with the model)
        local lf_eval=$GC_EVAL; [ "$GC_EVAL" = val ] && lf_eval=$LABELFREE_EVAL
        # shellcheck disable=SC2086
        GC_EVAL=$lf_eval gc_run "$e/cls-$prec.onnx" "${TOK[$m]}" "$SPLIT" "$SPLIT/train-text.jsonl" "$(cat "$e/labels.txt")" "$s" "$seed" \
          "$r/$(labelfree_dir "$prec" "$s")" "{\"dataset\": \"$ds\", \"model\": \"$m\", \"source\": \"finetuned\", \"precision\": \"$prec\", \"labels_mode\": \"label-free\", \"variant\": \"$LABELFREE_NAME\"}" \
          $LABELFREE_ARGS
        run_finished "$r/$(labelfree_dir "$prec" "$s")" || unfinished=$((unfinished + 1))
      elif [ ! -f "$r/$(labelfree_dir "$prec" "$s")/gc.json" ]; then   # not when an earlier call ran it
        echo "label-free: skipped (LABELFREE_ARGS empty or $s not in LABELFREE_SPARSITIES)" > "$r/$(labelfree_dir "$prec" "$s").skipped"
      fi
    done
  done
  if [ "${KEEP_MODELS:-0}" = 1 ]; then cp "$e"/*.onnx "$r/" 2>/dev/null; fi
  # done (a repeated call skips the chain) only when every run of it finished: those the budget cut run next time
  if [ "$unfinished" = 0 ]; then chain_key >> "$r/done"; else say "$ds $m seed $seed: $unfinished runs of the chain not finished"; fi
}
# An export a chain can compress again: made with this call's fine-tuning settings, with a file for each precision.
EXPORT_KEY="$LRS|$EPOCHS|$BATCH|$MAXLEN|$PY_SCHEDULES|$PY_EXTRA"
export_reusable() {
  [ "$(cat "$1/key" 2>/dev/null)" = "$EXPORT_KEY" ] || return 1
  local prec; for prec in $PRECISIONS; do [ -f "$1/cls-$prec.onnx" ] || return 1; done
}
# The run folders of a part-3 chain under post-seedN/, one per line (job_post's order).
post_runs() {
  local prec s v
  for prec in $PRECISIONS; do for s in $SPARSITIES; do
    if [ "$LABELLED" = 1 ]; then while read -r v; do labels_dir "$prec" "$s" "$v"; done < <(variant_names); fi
    if [ -n "$LABELFREE_ARGS" ] && labelfree_at "$prec" "$s"; then labelfree_dir "$prec" "$s"; fi
  done; done
}
# The runs of a part-3 chain named on stdin, in runs of 3 epochs: from 30% removed an own head trains 5 (unless
# GC_EPOCHS sets them); eval_suite.py's post_run_weight, which its own estimate uses too.
run_weight() { $PYTHON tools/eval_suite.py run-weight ${GC_EPOCHS:+--fixed-epochs}; }
# What a part-3 chain ran: a repeated call on the warm machine skips a chain only if it ran these same settings
# (another call's LABELFREE_ARGS, variants or precisions on the same seed run again instead of being skipped).
chain_key() { printf '%s\n' "$PRECISIONS|$SPARSITIES|${GC_VARIANTS:-}|$LABELLED|$LABELFREE_ARGS|$LABELFREE_NAME|$LABELFREE_EVAL|$LABELFREE_SPARSITIES|$GC_ARGS|$GC_EXTRA|$GC_EPOCHS|$PY_SCHEDULES"; }
# A baselines file this call need not redo: finished, with the same schedules (a file from before they were recorded
# ran constant rates alone).
torch_done() { $PYTHON -c "import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if 'finished' in r and r.get('schedules', ['constant']) == sys.argv[2].split(',') else 1)" "$1" "$PY_SCHEDULES" 2>/dev/null; }

# Runs "NAME EST_SECONDS FUNCTION ARGS..." lines, PARALLEL at a time, skipping what cannot finish.
# Waits on its own job ids only: a bare `wait` would also wait for the tee of script.log.
run_jobs() {
  local line name need fn rest p alive
  local -a pids=()
  while read -r line; do
    [ -n "$line" ] || continue
    read -r name need fn rest <<< "$line"
    while :; do
      alive=(); for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
      pids=("${alive[@]}")
      [ "${#pids[@]}" -lt "$PARALLEL" ] && break
      sleep 1
    done
    if [ $((SECONDS + need)) -gt "$DEADLINE" ]; then
      say "SKIP $name: $((DEADLINE - SECONDS))s left, about ${need}s needed"
      echo "time: $((DEADLINE - SECONDS))s left, about ${need}s needed" > "$WORK/raw/$name.skipped"
      continue
    fi
    say "start $name (about ${need}s)"
    # shellcheck disable=SC2086
    $fn $rest &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}

report() {
  $PYTHON tools/eval_suite.py report "$WORK/raw" --md "$OUT/tables.md" ${GC_SELECT:+--select "$GC_SELECT"} \
    ${GC_SELECT_BY:+--select-by "$GC_SELECT_BY"} > /dev/null \
    2> "$OUT/report.err" || tail -n 5 "$OUT/report.err"
  [ -s "$OUT/report.err" ] || rm -f "$OUT/report.err"
}

# SETS_AT_ONCE=1 (the default for PART=posttrain, whose jobs are one per seed): one job list over every set, run
# PARALLEL at a time against the whole budget; 0: one set after another, each with its share of what is left.
SETS_AT_ONCE=${SETS_AT_ONCE:-$([ "$PART" = posttrain ] && echo 1 || echo 0)}
all_jobs=""
nsets=$(wc -w <<< "$SETS"); i_set=0
for ds in $SETS; do
  i_set=$((i_set + 1))
  if [ "$SETS_AT_ONCE" = 1 ]; then
    DEADLINE=$((START + BUDGET_S))
  else
    DEADLINE=$((SECONDS + (START + BUDGET_S - SECONDS) / (nsets - i_set + 1)))
  fi
  use_set "$ds"
  [ "${FRESH:-0}" = 1 ] && rm -rf "$RAW"
  mkdir -p "$RAW"
  $PYTHON tools/eval_suite.py split "datasets/suite/$ds" "$SPLIT" || { say "FAIL: split $ds"; continue; }
  cp "$SPLIT/split.json" "$RAW/"
  $PYTHON -c "import json,sys; print(','.join(json.load(open(sys.argv[1]))['labels']))" "$SPLIT/split.json" > "$SPLIT/labels.txt"
  # the label-free runs' text without labels: train-text (training), val-text (LABELFREE_EVAL=val-text)
  for part in train val; do
    $PYTHON -c "import json,sys
with open(sys.argv[2], 'w') as o:
    for l in open(sys.argv[1]): o.write(json.dumps({'text': json.loads(l)['text']}) + '\n')" "$SPLIT/$part.jsonl" "$SPLIT/$part-text.jsonl"
  done
  rows=$(wc -l < "$SPLIT/train.jsonl")
  rm -f "$RAW"/*.skipped   # a repeated call on the warm machine runs what was skipped, and keeps what is done
  say "=== $ds ($PART): $rows train rows, $((DEADLINE - SECONDS))s for it$([ "$SETS_AT_ONCE" = 1 ] && echo " (with the other sets)")"
  jobs_list=""
  for seed in $SEEDS; do
    for m in $MODELS; do
      if [ "$PART" = posttrain ]; then
        r="$RAW/$m/post-seed$seed"
        grep -qsxF "$(chain_key)" "$r/done" && continue
        # the time: the fine-tune and export (none where the machine kept them) and the compressions left to run
        if export_reusable "$WORK/$ds-$m-seed$seed-export"; then
          x=0; k=$(post_runs | while read -r n; do run_finished "$r/$n" || echo "$n"; done | run_weight)
        else
          x=$((NSCHED * $(est export "$m" "$rows"))); k=$(post_runs | run_weight)
          [[ " $PRECISIONS " == *" fp16 "* ]] && x=$((x + $(est export-fp16 "$m" "$rows")))
          [[ " $PRECISIONS " == *" fp32 "* ]] || x=$((x - $(est export-fp32 "$m" "$rows")))
        fi
        jobs_list+="$ds/$m-post-seed$seed $(( x + k * $(est post-gc "$m" "$rows") )) job_post $ds $m $seed"$'\n'
      else
        [ -z "$PY_METHODS" ] || [ "$PY_METHODS" = none ] || torch_done "$RAW/$m/torch-seed$seed.json" \
          || jobs_list+="$ds/$m-torch-seed$seed $(( NSCHED * $(est torch "$m" "$rows") )) job_torch $ds $m $seed"$'\n'
        for s in $SPARSITIES; do
          while read -r v; do
            run_finished "$RAW/$m/$(gc_dir "$s" "$seed" "$v")" && continue
            jobs_list+="$ds/$m-$(gc_dir "$s" "$seed" "$v") $(est gc "$m" "$rows") job_gc $ds $m $s $seed $v"$'\n'
          done < <(variant_names)
        done
      fi
    done
  done
  if [ "$SETS_AT_ONCE" = 1 ]; then
    all_jobs+="$jobs_list"
  else
    run_jobs <<< "$jobs_list"
    report
  fi
done
if [ "$SETS_AT_ONCE" = 1 ]; then
  run_jobs <<< "$all_jobs"
  report
fi

cat "$OUT/tables.md" 2>/dev/null
# A file back from the device may be at most 16 MiB: raw.tgz keeps the results and the logs, not the per-step gate
# dumps (gates.json, gates.raw.json: ~0.3 MB per run, 500 MB over a bge call) nor files over RAW_MAX_KB (2048) each,
# and only this call's SETS × MODELS: raw/ on a warm machine holds every earlier call's too (their own raw.tgz had
# them), and a bge call after a MiniLM one came to 24 MB with both.
raw_paths=(raw/env.txt)
for ds in $SETS; do
  [ -f "$WORK/raw/$ds/split.json" ] && raw_paths+=("raw/$ds/split.json")
  for m in $MODELS; do [ -d "$WORK/raw/$ds/$m" ] && raw_paths+=("raw/$ds/$m"); done
done
(cd "$WORK" && find "${raw_paths[@]}" -type f ! -name 'gates*.json' -size -"${RAW_MAX_KB:-2048}"k -print0 \
  | tar --null -czf "$OUT/raw.tgz" -T -)
say "done: $(du -h "$OUT/raw.tgz" | cut -f1) of raw results (of $(du -sh "$WORK/raw" | cut -f1)); total $((SECONDS - START))s"
