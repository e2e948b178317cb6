#!/usr/bin/env bash
# self-training proxy: label-free at 0% from the weak teacher, then label-free at 30% from that student
set -u
cd /work/main
CP="/tmp/classes-cpu:$(cat /tmp/cp-main.txt)"
S=/tmp/split-sotu
L=$(python3 -c "import json;print(','.join(json.load(open('$S/split.json'))['labels']))")
G="java -cp $CP dev.gatecut.cli.GatecutCli compress"
COMMON="--train $S/train.jsonl --eval $S/val.jsonl --test $S/test.jsonl --labels $L --batch 32 --max-len 128 --latency-runs 0 --no-baseline --no-progress --seed 1"
TOK=/tmp/mini/models/all-minilm-l6-v2-tokenizer.json
$G /tmp/lfx/teacher/classifier.onnx --tokenizer $TOK $COMMON --target-sparsity 0 --epochs 3 --label-free -o /tmp/lfx/lfr1 > /tmp/lfx/lfr1.log 2>&1
echo "lfr1 (0%, label-free from the teacher): $(grep 'test accuracy' /tmp/lfx/lfr1.log)"
$G /tmp/lfx/lfr1/model.onnx --tokenizer $TOK $COMMON --target-sparsity 0.3 --epochs 3 --label-free -o /tmp/lfx/lfr2 > /tmp/lfx/lfr2.log 2>&1
echo "lfr2 (30%, label-free from lfr1): $(grep 'test accuracy' /tmp/lfx/lfr2.log)"
