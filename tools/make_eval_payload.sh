#!/usr/bin/env bash
# Packs what tools/gpu_eval_harness.sh needs on the GPU machine into one xz-compressed tar, cut into
# five byte pieces .gpu-carry/e1..e5/pay.N, each sized to ride along with one device call (a call
# carries at most 64 MiB, the ~10.3 MB tree included):
#   e1 7.0 MB with .gpu-kit/k1 (48.2 MB), e2 7.0 MB with k2, e3 10.8 MB with k3 (44.4 MB),
#   e4 55 MB alone, e5 the rest (~34 MB) with the first harness run.
# The tar holds models/all-minilm-l6-v2.onnx + its tokenizer.json, data/fine-foods-{train,test}.jsonl,
# data/spam-{train,test}.jsonl, gatecut-nonative.jar and SHA256SUMS (about 134 MB, 114 MB as xz).
# Run from the repo root after the jar is built and `python3 tools/make_datasets.py --out data ...`.
# .gpu-carry/ must be ignored (echo /.gpu-carry/ >> .git/info/exclude).
# Prints the sha256 of the compressed tar: pass it to the run as PAY_SHA=... .
# Usage: bash tools/make_eval_payload.sh [JAR]   (JAR defaults to target/gatecut-nonative.jar)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/payload.sh"
JAR=${1:-target/gatecut-nonative.jar}
S=$(mktemp -d)
mkdir -p "$S/models" "$S/data"
cp target/models/all-minilm-l6-v2.onnx target/models/all-minilm-l6-v2-tokenizer.json "$S/models/"
cp data/fine-foods-train.jsonl data/fine-foods-test.jsonl data/spam-train.jsonl data/spam-test.jsonl "$S/data/"
cp "$JAR" "$S/gatecut-nonative.jar"
(cd "$S" && sha256sum models/* data/* gatecut-nonative.jar > SHA256SUMS && cat SHA256SUMS)
payload_tar "$S" | xz -6 -T2 > "$S.tar.xz"
# replaces .gpu-carry/e1..e5 only: the p* pieces of make_gpu_payload.sh stay
payload_cut "$S.tar.xz" .gpu-carry/e pay 7000000 7000000 10800000 55000000
echo "payload sha256 (tar.xz): $(payload_sha256 "$S.tar.xz")"
rm -rf "$S" "$S.tar.xz"
