#!/usr/bin/env bash
# bge-small sotu proxy at 40%: the own-head defaults (decaying rates since 2026-12-02) with labels and label-free,
# compressing the bge-small classifier gatecut made for 2026-12-02-own-head-strong-original-cpu (test 0.794).
set -u
SET=sotu; W=/tmp/b40; cd /work/main
CP="/tmp/classes-s21:$(cat /tmp/cp-main.txt)"
S=/tmp/split-$SET
L=$(python3 -c "import json;print(','.join(json.load(open('$S/split.json'))['labels']))")
G="java -cp $CP dev.gatecut.cli.GatecutCli compress"
TOK=/tmp/bge/models/bge-small-en-v1.5-tokenizer.json
COMMON="--tokenizer $TOK --train $S/train.jsonl --eval $S/val.jsonl --test $S/test.jsonl --labels $L --batch 32 --max-len 128 --latency-runs 0 --no-baseline --no-progress --seed 1 --epochs 3"
s0=$SECONDS
: # the teacher: /tmp/sx/sotu/teacher (2026-12-02-own-head-strong-original-cpu, test 0.794)

T=/tmp/sx/sotu/teacher/classifier.onnx
for v in "labels40:--target-sparsity 0.4" "lf40:--target-sparsity 0.4 --label-free" ; do
  n=${v%%:*}; f=${v#*:}
  s0=$SECONDS
  $G $T $COMMON $f -o $W/$n > $W/$n.log 2>&1
  echo "$n: $(grep 'test accuracy' $W/$n.log) ($((SECONDS - s0)) s)"
done
