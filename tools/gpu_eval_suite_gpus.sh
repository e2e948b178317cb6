#!/usr/bin/env bash
# The evaluation suite (tools/gpu_eval_suite.sh) on every GPU of the machine at once (kind nvidia-h200-x2: two),
# one instance per GPU, the data sets dealt out in turn: SETS="a b c d" on two GPUs runs "a c" on GPU 0 and "b d"
# on GPU 1. The payload is unpacked once first (PAY pieces into DEST, checked against PAY_SHA), so the instances
# do not race on it. Every other setting passes through to each instance (MODELS, SPARSITIES, PY_METHODS, JAR,
# BUDGET_S, ...). Returns under $OUT: gpuN/script.log and gpuN/tables.md per GPU, and raw-small.tgz with what
# `python3 tools/eval_suite.py report` needs (the instances' raw.tgz, with every log, can exceed what a call returns).
#
#   SETS="sentences tweets austen fine-foods" MODELS=bge SPARSITIES="0 0.3" PY_METHODS=dense,lora \
#     PAY=/opt/bge-pay DEST=/opt/suite-bge PAY_SHA=... JAR=/opt/gatecut.jar bash tools/gpu_eval_suite_gpus.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/payload.sh
OUT=${OUT:-/tmp/suite-out}
PAY=${PAY:-/opt/suite-pay}
DEST=${DEST:-/opt/suite}
SETS=${SETS:?SETS: the data sets to deal out}
GPUS=${GPUS:-$(nvidia-smi -L | wc -l)}
mkdir -p "$OUT"
if [ ! -f "$DEST/SHA256SUMS" ]; then
  # shellcheck disable=SC2046
  payload_unpack --xz "$DEST" "${PAY_SHA:-}" suite-payload $(ls "$PAY"/pay.* | sort -V) || exit 3
fi
read -r -a all <<< "$SETS"
pids=()
for ((g = 0; g < GPUS; g++)); do
  mine=()
  for ((i = g; i < ${#all[@]}; i += GPUS)); do mine+=("${all[$i]}"); done
  [ ${#mine[@]} -gt 0 ] || continue
  CUDA_VISIBLE_DEVICES=$g OUT="$OUT/gpu$g" WORK="/tmp/suite-work-gpu$g" PAY="$PAY" DEST="$DEST" SETS="${mine[*]}" \
    bash tools/gpu_eval_suite.sh > /dev/null 2>&1 &
  pids+=($!)
  echo "GPU $g: ${mine[*]} (pid $!)"
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
rm -f "$OUT"/gpu*/raw.tgz
# the report's inputs only: results, summaries, splits, the commands' logs
(cd /tmp && find suite-work-gpu*/raw \( -name '*.json' -o -name metrics.jsonl -o -name compress.log -o -name env.txt \) -size -2M -print0 \
  | tar czf "$OUT/raw-small.tgz" --null -T -)
for ((g = 0; g < GPUS; g++)); do [ -f "$OUT/gpu$g/tables.md" ] && { echo "== GPU $g"; cat "$OUT/gpu$g/tables.md"; }; done
exit $rc
