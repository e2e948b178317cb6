#!/usr/bin/env bash
# usage: runmini.sh SET SEED NAME [flags...]
set=$1; seed=$2; name=$3; shift 3
out=/tmp/cpuexp/${TAG:-minilm}/$set/$name-seed$seed
mkdir -p $out
labels=$(python3 -c "import json;print(','.join(json.load(open('/tmp/split-$set/split.json'))['labels']))")
cd /work/main
/usr/bin/time -f "%e s" java -cp target/classes:$(cat /tmp/cp-main.txt) dev.gatecut.cli.GatecutCli compress ${MODEL:-/tmp/mini/models/all-minilm-l6-v2.onnx} --tokenizer ${TOKENIZER:-/tmp/mini/models/all-minilm-l6-v2-tokenizer.json} --train /tmp/split-$set/train.jsonl --eval /tmp/split-$set/val.jsonl --target-sparsity 0.3 --gates-mode coupled --seed $seed --batch 32 --max-len 128 --epochs 3 --latency-runs 0 --no-baseline --no-progress -o $out/out --labels $labels --test /tmp/split-$set/test.jsonl "$@" > $out/compress.log 2>&1
grep -E "^step|selected|test accuracy" $out/compress.log | sed "s|^|${TAG:-minilm} $set $name s$seed: |"
tail -1 $out/compress.log
