#!/usr/bin/env bash
# The sotu CPU proxy at 40% of 2026-12-02-own-head-40-cpu again, with today's default length (no --epochs: 5 epochs
# for an own head from 40%). usage: run.sh bge|minilm. Same originals (gatecut-made, seed 1), splits and flags.
set -u
case $1 in
  minilm) W=/tmp/m40e5; BASE=/tmp/mini/models/all-minilm-l6-v2; T=/tmp/m40/teacher/classifier.onnx ;;
  bge)    W=/tmp/b40e5; BASE=/tmp/bge/models/bge-small-en-v1.5; T=/tmp/sx/sotu/teacher/classifier.onnx ;;
esac
mkdir -p $W; cd /work/main
S=/tmp/split-sotu
L=$(python3 -c "import json;print(','.join(json.load(open('$S/split.json'))['labels']))")
GC=(java -cp "/tmp/classes-s22:$(cat /tmp/cp-main.txt)" dev.gatecut.cli.GatecutCli compress)
ARGS=(--tokenizer $BASE-tokenizer.json --train $S/train.jsonl --eval $S/val.jsonl --test $S/test.jsonl --labels "$L"
      --batch 32 --max-len 128 --latency-runs 0 --no-baseline --no-progress --seed 1)
for v in "labels40:" "lf40:--label-free"; do
  n=${v%%:*}; s0=$SECONDS
  # shellcheck disable=SC2086
  "${GC[@]}" "$T" "${ARGS[@]}" --target-sparsity 0.4 ${v#*:} -o $W/$n > $W/$n.log 2>&1
  echo "$n: $(grep 'test accuracy' $W/$n.log) ($((SECONDS - s0)) s)"
done
