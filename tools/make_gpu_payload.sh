#!/usr/bin/env bash
# Packs what tools/gpu_train_minilm.sh needs on the GPU machine (the MiniLM model and tokenizer,
# the fine-foods JSONL files, target/gatecut-nonative.jar) into one tar, and cuts it into five
# byte pieces .gpu-carry/p1..p5/pay.N sized so that each rides along with one device call
# (a call carries at most 64 MiB, the ~10 MB tracked tree included):
#   p1 7.0 MB with .gpu-kit/k1 (48.2 MB), p2 7.0 MB with k2, p3 10.8 MB with k3 (44.4 MB),
#   p4 49 MB alone, p5 the rest (~49 MB) with the run itself.
# Run from the repo root after building the jar and `python3 tools/make_datasets.py --out data ...`.
# .gpu-carry/ must be ignored: echo /.gpu-carry/ >> .git/info/exclude
# Prints the tar's sha256: pass it to the run as TAR_SHA=... if it differs from the script's default.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/payload.sh"
S=$(mktemp -d)
mkdir -p "$S/models" "$S/data"
cp target/models/all-minilm-l6-v2.onnx target/models/all-minilm-l6-v2-tokenizer.json "$S/models/"
cp data/fine-foods-train.jsonl data/fine-foods-test.jsonl "$S/data/"
cp target/gatecut-nonative.jar "$S/"
(cd "$S" && sha256sum models/* data/* gatecut-nonative.jar > SHA256SUMS && cat SHA256SUMS)
payload_tar "$S" > "$S.tar"
rm -rf .gpu-carry && mkdir -p .gpu-carry
payload_cut "$S.tar" .gpu-carry/p pay 7000000 7000000 10800000 49000000
echo "tar sha256: $(payload_sha256 "$S.tar")"
rm -rf "$S" "$S.tar"
