#!/usr/bin/env bash
# Kept as the record of bench/results/2026-11-22-decoder-path-h100.md. The study with seeds, the sparsity-0
# control and the recipe variants is tools/gpu_decoder_study.sh (jar from /opt/gatecut.jar, data tracked in
# datasets/lm/austen; no payload pieces).
# The decoder path in one device call: pretrain a small GPT-2 on Jane Austen, export it, measure the
# dense baselines (un-tuned, LoRA-tuned), then compress it with gatecut's LM loss at several
# sparsities and report perplexity on Persuasion's last chapters.
#
# Runs on the GPU machine from the repo root, after the GPU kit is unpacked (/opt/gpukit/env.sh) and
# the pieces of tools/make_decoder_payload.sh are in $PAY (austen-data.tar.xz, jar.xz.1..3); see
# bench/results/2026-11-22-decoder-path-h100.md for the calls that carried them.
#
# Steps (each logged; results under $RES, tarred by the caller):
#   1. unpack and check the payload (sha256 of the pieces, the jar and the data files);
#   2. python3 tools/pretrain_gpt.py: tokenizer, pretraining (PRETRAIN_S seconds), ONNX export,
#      dense baselines, LoRA (EPOCHS epochs) -> $WORK/model/{model.onnx,tokenizer.json,pretrain.json};
#   3. gatecut compress ... --task lm for each entry of RUNS ("tag sparsity mode [flags]"; ";" between),
#      while the time budget lasts (a run is skipped when less than 1.3x the longest run so far is left).
#      The first entry, "dense-check", runs at sparsity 0 with --lr 0: gates stay open, so gatecut's
#      own evaluator scores the dense model (a check of the evaluation protocol against step 2).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/payload.sh"

OUT=${OUT:-/tmp/dec-out}
RES=${RES:-/tmp/dec-res}
PAY=${PAY:-/opt/payload-dec}
DEST=${DEST:-/opt/dec}
WORK=${WORK:-/tmp/dec-work}
BUDGET_S=${BUDGET_S:-540}
PRETRAIN_S=${PRETRAIN_S:-120}
EPOCHS=${EPOCHS:-8}
BATCH=${BATCH:-32}
MAXLEN=${MAXLEN:-128}
DEVICE=${DEVICE:-cuda}
EXTRA_PY=${EXTRA_PY:-}
SKIP_PRETRAIN=${SKIP_PRETRAIN:-0}  # 1: reuse $WORK/model (a dry run of step 3)
# "tag sparsity mode [flags]" entries, separated by ';' (flags replace the default --lr / --epochs)
RUNS=${RUNS:-"dense-check 0 coupled --lr 0 --epochs 1 --latency-runs 0; coupled-0.3 0.3 coupled; coupled-0.2 0.2 coupled; coupled-0.4 0.4 coupled; coupled-0.5 0.5 coupled; independent-0.3 0.3 independent; independent-0.5 0.5 independent; coupled-0.6 0.6 coupled; independent-0.2 0.2 independent; independent-0.4 0.4 independent"}
GPUKIT_ENV=${GPUKIT_ENV:-/opt/gpukit/env.sh}
JAR_XZ_SHA=${JAR_XZ_SHA:-92820dbbf2af241107581b43fb4552f67088ef79e1e3573787f594984382daed}
STORED_JAR_SHA=${STORED_JAR_SHA:-d0fa375ef7491fc6f6b33a8a3c8b77ec91d41806c9a125c1c2c849e9760ab14e}
DATA_SHA=${DATA_SHA:-2cfb933a42174f658c8fa2fd3a7b3e3baa658cf98bc20f0c662e12fb9f349f04}
export PYTHONUNBUFFERED=1

T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
mkdir -p "$OUT" "$RES" "$WORK"
[ -f "$GPUKIT_ENV" ] || { echo "FAIL: $GPUKIT_ENV missing: fresh machine, redo the kit calls"; exit 2; }
source "$GPUKIT_ENV"

# --- 1. payload ----------------------------------------------------------------------------
JAR="$DEST/gatecut-nonative-stored.jar"
# the jar is not a tar: its pieces join into one xz stream, decompressed to the jar itself
if [ ! -f "$JAR" ]; then
  payload_join --xz "$JAR" "$JAR_XZ_SHA" jar.xz "$PAY"/jar.xz.{1..3} || exit 3
fi
jsha=$(payload_sha256 "$JAR")
[ "$jsha" = "$STORED_JAR_SHA" ] || { echo "FAIL: jar sha256 $jsha, expected $STORED_JAR_SHA"; exit 3; }
# the data tar is a single piece; its SHA256SUMS lists data/<file>, so it is checked from $DEST
if [ ! -f "$DEST/data/SHA256SUMS" ]; then
  payload_unpack --xz "$DEST" "$DATA_SHA" austen-data.tar.xz "$PAY/austen-data.tar.xz" || exit 3
fi
payload_sums "$DEST" data/SHA256SUMS || exit 3
echo "payload OK at $(elapsed)s: jar $jsha"

header() {
  echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
  echo "# host: $(nproc) cpus, $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "# java: $($JAVA -version 2>&1 | head -1)"
  echo "# jar sha256 (uncompressed repack of target/gatecut-nonative.jar): $jsha"
}
header | tee "$RES/machine.txt"

# --- 2. pretraining, export, dense baselines -----------------------------------------------
M="$WORK/model"
if [ "$SKIP_PRETRAIN" != 1 ]; then
echo "=== pretrain_gpt.py (budget ${PRETRAIN_S}s of training) at $(elapsed)s"
timeout -k 10 $((BUDGET_S - $(elapsed) - 60)) python3 tools/pretrain_gpt.py --data "$DEST/data" --out "$M" \
  --pretrain-seconds "$PRETRAIN_S" --lora-epochs "$EPOCHS" --lora-batch "$BATCH" --max-len "$MAXLEN" $EXTRA_PY \
  2>&1 | tee "$RES/pretrain.log"
rc=${PIPESTATUS[0]}
echo "=== pretrain_gpt.py exit $rc at $(elapsed)s"
fi
cp "$M/pretrain.json" "$M/curve.jsonl" "$M/tokenizer.json" "$RES/" 2>/dev/null
[ -f "$M/model.onnx" ] || { echo "FAIL: no model.onnx"; exit 4; }
sha256sum "$M/model.onnx" "$M/tokenizer.json" | tee "$RES/model.sha256"

# --- 3. gatecut -----------------------------------------------------------------------------
longest=0
IFS=';' read -r -a ENTRIES <<< "$RUNS"
for e in "${ENTRIES[@]}"; do
  read -r tag S mode flags <<< "$e"
  [ -n "${tag:-}" ] || continue
  left=$((BUDGET_S - $(elapsed)))
  need=$(( longest * 13 / 10 + 10 ))
  if [ "$left" -lt "$need" ] || [ "$left" -lt 30 ]; then echo "SKIP $tag: ${left}s left, about ${need}s needed"; continue; fi
  R="$RES/$tag"; W="$WORK/gc-$tag"; mkdir -p "$R"; rm -rf "$W"
  CMD=("$JAVA" $ORT_GPU_OPTS -jar "$JAR" compress "$M/model.onnx" --task lm --tokenizer "$M/tokenizer.json"
       --train "$DEST/data/austen-tune.jsonl" --eval "$DEST/data/austen-test.jsonl" --target-sparsity "$S"
       --gates-mode "$mode" --batch "$BATCH" --max-len "$MAXLEN" --device "$DEVICE" --no-progress)
  case " $flags " in *" --lr "*) ;; *) CMD+=(--lr 1e-2) ;; esac
  case " $flags " in *" --epochs "*|*" --steps "*) ;; *) CMD+=(--epochs "$EPOCHS") ;; esac
  # shellcheck disable=SC2206
  [ -n "$flags" ] && CMD+=($flags)
  CMD+=(-o "$W")
  { header; echo "# limit: ${left}s"; echo "# cmd: ${CMD[*]}"; } > "$R/compress.log"
  echo "=== $tag (S=$S, $mode${flags:+, $flags}) start at $(elapsed)s"
  s=$(date +%s.%N)
  timeout -k 10 "$left" "${CMD[@]}" >> "$R/compress.log" 2>&1
  rc=$?
  wall=$(python3 -c "print(f'{$(date +%s.%N) - $s:.1f}')")
  echo "# exit: $rc, wall ${wall}s" >> "$R/compress.log"
  w=${wall%.*}; [ "$w" -gt "$longest" ] && longest=$w
  cp "$W/summary.json" "$W/gates.json" "$W/report.md" "$R/" 2>/dev/null
  cp "$W/run/metrics.jsonl" "$R/" 2>/dev/null
  echo "=== $tag: exit $rc, wall ${wall}s"
  if [ "$rc" -ne 0 ]; then echo "--- last lines:"; tail -n 30 "$R/compress.log"; fi
  grep -E "^(step|targeted|model:|slim model|latency|train:|eval:|backend)" "$R/compress.log" | tail -n 14
done

# --- summary table --------------------------------------------------------------------------
python3 - "$RES" <<'PY'
import json, os, sys
res = sys.argv[1]
p = json.load(open(os.path.join(res, "pretrain.json")))
d = p["dense_untuned"]["test"]
print(f"dense un-tuned test ppl: torch {d['ppl_torch_fp32']:.3f}, onnx/ort {d['ppl_onnx_ort_cpu']:.3f}; "
      f"params {p['model']['parameters']}")
if "test_ppl_final" in p.get("lora", {}):
    print(f"LoRA r=8 test ppl: {p['lora']['test_ppl_final']:.3f} (per epoch: "
          f"{[round(c['test_ppl'], 3) for c in p['lora']['curve']]})")
print(f"{'run':18s} {'S':>4s} {'slim ppl':>9s} {'gated ppl':>9s} {'params after':>13s} {'targeted after':>15s} {'train s':>7s}")
for tag in sorted(os.listdir(res)):
    f = os.path.join(res, tag, "summary.json")
    if not os.path.isfile(f):
        continue
    s = json.load(open(f))
    print(f"{tag:18s} {s['target_sparsity']:4.2f} {s.get('slim_eval_perplexity', float('nan')):9.3f} "
          f"{s.get('gated_eval_perplexity', float('nan')):9.3f} {s['parameters_after']:>8d}/{s['parameters_before']} "
          f"{s['targeted_after']:>8d}/{s['targeted_before']} {s['train_seconds']:7.1f}")
PY
echo "total script time: $(elapsed)s"
