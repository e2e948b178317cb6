#!/usr/bin/env bash
# strong-original proxy on the CPU: a bge-small classifier made by gatecut on SET (0%, 3 epochs, the new-head
# defaults: adapters, decay), then the own-head defaults (flat rates) against --lr-decay, labelled and label-free,
# at 30%. usage: run2.sh SET (tweets ran as /tmp/sx/{teacher,labels,...}, this script's first form)
set -u
SET=$1; W=/tmp/sx/$SET; mkdir -p $W
cd /work/main
CP="/tmp/classes-cpu2:$(cat /tmp/cp-main.txt)"
S=/tmp/split-$SET
L=$(python3 -c "import json;print(','.join(json.load(open('$S/split.json'))['labels']))")
G="java -cp $CP dev.gatecut.cli.GatecutCli compress"
TOK=/tmp/bge/models/bge-small-en-v1.5-tokenizer.json
COMMON="--tokenizer $TOK --train $S/train.jsonl --eval $S/val.jsonl --test $S/test.jsonl --labels $L --batch 32 --max-len 128 --latency-runs 0 --no-baseline --no-progress --seed 1 --epochs 3"
[ -f $W/teacher/classifier.onnx ] || $G /tmp/bge/models/bge-small-en-v1.5.onnx $COMMON --target-sparsity 0 -o $W/teacher > $W/teacher.log 2>&1
echo "$SET teacher: $(grep 'test accuracy' $W/teacher.log)"
T=$W/teacher/classifier.onnx
for v in "labels:" "labels-dec:--lr-decay" "lf:--label-free" "lf-dec:--label-free --lr-decay"; do
  n=${v%%:*}; f=${v#*:}
  s0=$SECONDS
  $G $T $COMMON --target-sparsity 0.3 $f -o $W/$n > $W/$n.log 2>&1
  echo "$SET $n: $(grep 'test accuracy' $W/$n.log) ($((SECONDS - s0)) s)"
done
