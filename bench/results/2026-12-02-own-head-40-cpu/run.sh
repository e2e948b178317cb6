#!/usr/bin/env bash
# MiniLM sotu proxy at 40%: a classifier made by gatecut (0%, 3 epochs, new-head defaults), then the own-head
# defaults (decaying rates since 2026-12-02) with labels, label-free, and labels + --distill-layers 1.
set -u
SET=sotu; W=/tmp/m40; cd /work/main
CP="/tmp/classes-s21:$(cat /tmp/cp-main.txt)"
S=/tmp/split-$SET
L=$(python3 -c "import json;print(','.join(json.load(open('$S/split.json'))['labels']))")
G="java -cp $CP dev.gatecut.cli.GatecutCli compress"
TOK=/tmp/mini/models/all-minilm-l6-v2-tokenizer.json
COMMON="--tokenizer $TOK --train $S/train.jsonl --eval $S/val.jsonl --test $S/test.jsonl --labels $L --batch 32 --max-len 128 --latency-runs 0 --no-baseline --no-progress --seed 1 --epochs 3"
s0=$SECONDS
[ -f $W/teacher/classifier.onnx ] || $G /tmp/mini/models/all-minilm-l6-v2.onnx $COMMON --target-sparsity 0 -o $W/teacher > $W/teacher.log 2>&1
echo "teacher: $(grep 'test accuracy' $W/teacher.log) ($((SECONDS - s0)) s)"
T=$W/teacher/classifier.onnx
for v in "labels40:--target-sparsity 0.4" "lf40:--target-sparsity 0.4 --label-free" "layers40:--target-sparsity 0.4 --distill-layers 1"; do
  n=${v%%:*}; f=${v#*:}
  s0=$SECONDS
  $G $T $COMMON $f -o $W/$n > $W/$n.log 2>&1
  echo "$n: $(grep 'test accuracy' $W/$n.log) ($((SECONDS - s0)) s)"
done
