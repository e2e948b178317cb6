#!/usr/bin/env bash
# sotu at 40% on this CPU with the own-head defaults (decaying rates since 2026-12-02): labels, label-free and (MiniLM)
# --distill-layers 1. usage: run.sh minilm|bge. The original is made here by gatecut (0%, 3 epochs, new-head defaults,
# seed 1); for bge the same command made 2026-12-02-own-head-strong-original-cpu's sotu teacher, which this run used.
# Knobs: EPOCHS (3, as session 21 ran; EPOCHS= leaves gatecut's default, 5 for an own head from 40% since session 22),
# CLASSES (gatecut's compiled classes), TAG (appended to the work folder, e.g. e5).
#   session 22: EPOCHS= CLASSES=/tmp/classes-s22 TAG=e5 bash run.sh bge   (2026-12-02-own-head-40-e5-cpu.md)
set -u
EPOCHS=${EPOCHS-3}; CLASSES=${CLASSES:-/tmp/classes-s21}; TAG=${TAG:-}
case $1 in
  minilm) W=/tmp/m40$TAG; BASE=/tmp/mini/models/all-minilm-l6-v2; TD=/tmp/m40/teacher
          RUNS=("labels40:" "lf40:--label-free" "layers40:--distill-layers 1") ;;
  bge)    W=/tmp/b40$TAG; BASE=/tmp/bge/models/bge-small-en-v1.5; TD=/tmp/sx/sotu/teacher
          RUNS=("labels40:" "lf40:--label-free") ;;
esac
T=$TD/classifier.onnx
mkdir -p $W; cd /work/main
S=/tmp/split-sotu
L=$(python3 -c "import json;print(','.join(json.load(open('$S/split.json'))['labels']))")
GC=(java -cp "$CLASSES:$(cat /tmp/cp-main.txt)" dev.gatecut.cli.GatecutCli compress)
ARGS=(--tokenizer $BASE-tokenizer.json --train $S/train.jsonl --eval $S/val.jsonl --test $S/test.jsonl --labels "$L"
      --batch 32 --max-len 128 --latency-runs 0 --no-baseline --no-progress --seed 1)
[ -f "$T" ] || "${GC[@]}" $BASE.onnx "${ARGS[@]}" --epochs 3 --target-sparsity 0 -o $TD > $TD.log 2>&1
for v in "${RUNS[@]}"; do
  n=${v%%:*}; s0=$SECONDS
  # shellcheck disable=SC2086
  "${GC[@]}" "$T" "${ARGS[@]}" ${EPOCHS:+--epochs $EPOCHS} --target-sparsity 0.4 ${v#*:} -o $W/$n > $W/$n.log 2>&1
  echo "$n: $(grep 'test accuracy' $W/$n.log) ($((SECONDS - s0)) s)"
done
