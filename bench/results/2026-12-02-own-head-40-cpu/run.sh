#!/usr/bin/env bash
# sotu at 40% on this CPU with the own-head defaults (decaying rates since 2026-12-02): labels, label-free and (MiniLM)
# --distill-layers 1. usage: run.sh minilm|bge. The original is made here by gatecut (0%, 3 epochs, new-head defaults,
# seed 1); for bge the same command made 2026-12-02-own-head-strong-original-cpu's sotu teacher, which this run used.
set -u
case $1 in
  minilm) W=/tmp/m40; BASE=/tmp/mini/models/all-minilm-l6-v2; T=$W/teacher/classifier.onnx
          RUNS=("labels40:" "lf40:--label-free" "layers40:--distill-layers 1") ;;
  bge)    W=/tmp/b40; BASE=/tmp/bge/models/bge-small-en-v1.5; T=$W/teacher/classifier.onnx
          RUNS=("labels40:" "lf40:--label-free") ;;
esac
mkdir -p $W; cd /work/main
S=/tmp/split-sotu
L=$(python3 -c "import json;print(','.join(json.load(open('$S/split.json'))['labels']))")
GC=(java -cp "/tmp/classes-s21:$(cat /tmp/cp-main.txt)" dev.gatecut.cli.GatecutCli compress)
ARGS=(--tokenizer $BASE-tokenizer.json --train $S/train.jsonl --eval $S/val.jsonl --test $S/test.jsonl --labels "$L"
      --batch 32 --max-len 128 --latency-runs 0 --no-baseline --no-progress --seed 1 --epochs 3)
[ -f "$T" ] || "${GC[@]}" $BASE.onnx "${ARGS[@]}" --target-sparsity 0 -o $W/teacher > $W/teacher.log 2>&1
for v in "${RUNS[@]}"; do
  n=${v%%:*}; s0=$SECONDS
  # shellcheck disable=SC2086
  "${GC[@]}" "$T" "${ARGS[@]}" --target-sparsity 0.4 ${v#*:} -o $W/$n > $W/$n.log 2>&1
  echo "$n: $(grep 'test accuracy' $W/$n.log) ($((SECONDS - s0)) s)"
done
