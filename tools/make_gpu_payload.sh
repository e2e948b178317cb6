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
S=$(mktemp -d)
mkdir -p "$S/models" "$S/data"
cp target/models/all-minilm-l6-v2.onnx target/models/all-minilm-l6-v2-tokenizer.json "$S/models/"
cp data/fine-foods-train.jsonl data/fine-foods-test.jsonl "$S/data/"
cp target/gatecut-nonative.jar "$S/"
(cd "$S" && sha256sum models/* data/* gatecut-nonative.jar > SHA256SUMS && cat SHA256SUMS)
tar -C "$S" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$S.tar" .
rm -rf .gpu-carry && mkdir -p .gpu-carry
python3 - "$S.tar" <<'PY'
import os, sys
d = open(sys.argv[1], "rb").read()
sizes = [7_000_000, 7_000_000, 10_800_000, 49_000_000]
off = 0
for i in range(5):
    chunk = d[off:off + sizes[i]] if i < 4 else d[off:]
    os.makedirs(f".gpu-carry/p{i + 1}", exist_ok=True)
    open(f".gpu-carry/p{i + 1}/pay.{i + 1}", "wb").write(chunk)
    off += len(chunk)
    print(f"p{i + 1}: {len(chunk)} bytes")
assert off == len(d)
PY
echo "tar sha256: $(sha256sum "$S.tar" | cut -d' ' -f1)"
rm -rf "$S" "$S.tar"
