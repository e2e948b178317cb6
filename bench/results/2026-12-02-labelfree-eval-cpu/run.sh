#!/usr/bin/env bash
# Label-free compression choosing its epoch on labelled validation rows (--eval val.jsonl, the suite's way) against
# unlabelled ones (--eval val-text.jsonl: gatecut labels them with the model, selection by agreement with the
# original) — MiniLM on this CPU, one seed, 30%. usage: run.sh SET (a folder of datasets/suite). The original is made
# here by gatecut (0%, 3 epochs, new-head defaults, seed 1), as the 2026-12-02 CPU proxies made theirs.
# Knobs: CLASSES (gatecut's compiled classes; default target/classes), CP (the dependency classpath file).
set -u
SET=$1; CLASSES=${CLASSES:-target/classes}; CP=${CP:-/tmp/cp-main.txt}
cd "$(dirname "$0")/../../.."
W=/tmp/lfe-$SET; S=$W/split; BASE=target/models/all-minilm-l6-v2; TD=$W/teacher
mkdir -p "$W"
[ -f "$S/split.json" ] || python3 tools/eval_suite.py split "datasets/suite/$SET" "$S" > /dev/null
for part in train val; do   # the rows without labels, as tools/gpu_eval_suite.sh writes them
  python3 -c "import json,sys
with open(sys.argv[2], 'w') as o:
    for l in open(sys.argv[1]): o.write(json.dumps({'text': json.loads(l)['text']}) + '\n')" "$S/$part.jsonl" "$S/$part-text.jsonl"
done
L=$(python3 -c "import json;print(','.join(json.load(open('$S/split.json'))['labels']))")
GC=(java -cp "$CLASSES:$(cat "$CP")" dev.gatecut.cli.GatecutCli compress)
ARGS=(--tokenizer $BASE-tokenizer.json --test $S/test.jsonl --labels "$L" --batch 32 --max-len 128 --latency-runs 0
      --no-baseline --no-progress --seed 1)
s0=$SECONDS
[ -f "$TD/classifier.onnx" ] || "${GC[@]}" $BASE.onnx "${ARGS[@]}" --train $S/train.jsonl --eval $S/val.jsonl --epochs 3 \
  --target-sparsity 0 -o "$TD" > "$TD.log" 2>&1
echo "original: $(grep 'test accuracy' "$TD.log") ($((SECONDS - s0)) s)"
for ev in val val-text; do
  s0=$SECONDS
  "${GC[@]}" "$TD/classifier.onnx" "${ARGS[@]}" --train $S/train-text.jsonl --eval $S/$ev.jsonl --label-free \
    --target-sparsity 0.3 -o "$W/lf-$ev" > "$W/lf-$ev.log" 2>&1
  echo "label-free, --eval $ev: $(grep 'test accuracy' "$W/lf-$ev.log") ($((SECONDS - s0)) s)"
  grep -E "^eval:|step [0-9]+: eval" "$W/lf-$ev.log" | sed 's/^/    /'
done
