#!/usr/bin/env bash
# label-free proxy: a weak MiniLM sotu classifier made by gatecut (0%, 1 epoch), then labelled vs label-free at 30%
set -u
cd /work/main
CP="/tmp/classes-cpu:$(cat /tmp/cp-main.txt)"
S=/tmp/split-sotu
L=$(python3 -c "import json;print(','.join(json.load(open('$S/split.json'))['labels']))")
G="java -cp $CP dev.gatecut.cli.GatecutCli compress"
COMMON="--train $S/train.jsonl --eval $S/val.jsonl --test $S/test.jsonl --labels $L --batch 32 --max-len 128 --latency-runs 0 --no-baseline --no-progress --seed 1"
[ -f /tmp/lfx/teacher/classifier.onnx ] || $G /tmp/mini/models/all-minilm-l6-v2.onnx --tokenizer /tmp/mini/models/all-minilm-l6-v2-tokenizer.json $COMMON --target-sparsity 0 --epochs 1 -o /tmp/lfx/teacher > /tmp/lfx/teacher.log 2>&1
grep "test accuracy" /tmp/lfx/teacher.log
T=/tmp/lfx/teacher/classifier.onnx
for v in "labels:" "lf:--label-free" "lf-d0:--label-free --distill 0" "lf-t1:--label-free --distill-temperature 1"; do
  n=${v%%:*}; f=${v#*:}
  $G $T --tokenizer /tmp/mini/models/all-minilm-l6-v2-tokenizer.json $COMMON --target-sparsity 0.3 --epochs 3 $f -o /tmp/lfx/$n > /tmp/lfx/$n.log 2>&1
  echo "$n: $(grep 'test accuracy' /tmp/lfx/$n.log)"
done
# then self-training: label-free at 0% from the weak teacher, then label-free at 30% from that student
TOK=/tmp/mini/models/all-minilm-l6-v2-tokenizer.json
$G /tmp/lfx/teacher/classifier.onnx --tokenizer $TOK $COMMON --target-sparsity 0 --epochs 3 --label-free -o /tmp/lfx/lfr1 > /tmp/lfx/lfr1.log 2>&1
echo "lfr1 (0%, label-free from the teacher): $(grep 'test accuracy' /tmp/lfx/lfr1.log)"
$G /tmp/lfx/lfr1/model.onnx --tokenizer $TOK $COMMON --target-sparsity 0.3 --epochs 3 --label-free -o /tmp/lfx/lfr2 > /tmp/lfx/lfr2.log 2>&1
echo "lfr2 (30%, label-free from lfr1): $(grep 'test accuracy' /tmp/lfx/lfr2.log)"
