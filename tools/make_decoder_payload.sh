#!/usr/bin/env bash
# For tools/gpu_decoder_path.sh (the 2026-11-22 run) only: tools/gpu_decoder_study.sh reads the tracked
# datasets/lm/austen/*.jsonl.xz and the jar at /opt/gatecut.jar instead.
# Packs what tools/gpu_decoder_path.sh needs on the GPU machine besides the GPU kit, in pieces that
# ride along with the three kit calls (a device call carries at most 64 MiB, the ~10 MB tracked tree
# included; .gpu-kit/k1 and k2 are 48.2 MB each, k3 44.4 MB):
#   data/carry/d0/austen-data.tar.xz   the three Austen JSONL files + SHA256SUMS (~1.2 MB; call 1)
#   data/carry/p1/jar.xz.1             6.0 MB  (call 1, with k1)
#   data/carry/p2/jar.xz.2             7.5 MB  (call 2, with k2)
#   data/carry/p3/jar.xz.3             the rest, ~2.5 MB (call 3, with k3)
# The jar pieces are byte slices of xz(gatecut-nonative.jar re-zipped without compression): the same
# entries, byte for byte (checked here), but xz packs an uncompressed zip to 16 MB where the 29.6 MB
# jar itself does not fit the three calls' spare room. Java runs the uncompressed jar as it is.
# Run from the repo root after `python3 tools/make_austen.py --out data` (data/ is git-ignored).
# Prints the sha256 sums to pass to tools/gpu_decoder_path.sh (JAR_XZ_SHA, STORED_JAR_SHA, DATA_SHA).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/payload.sh"
JAR=${JAR:-target/gatecut-nonative.jar}
S=$(mktemp -d)
trap 'rm -rf "$S"' EXIT
python3 - "$JAR" "$S/gatecut-nonative-stored.jar" <<'PY'
import sys, zipfile
src, dst = zipfile.ZipFile(sys.argv[1]), sys.argv[2]
with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as out:
    for info in src.infolist():
        ni = zipfile.ZipInfo(info.filename, info.date_time)
        ni.external_attr = info.external_attr
        ni.compress_type = zipfile.ZIP_STORED
        out.writestr(ni, src.read(info))
a, b = src.infolist(), zipfile.ZipFile(dst).infolist()
assert [i.filename for i in a] == [i.filename for i in b]
assert all(x.CRC == y.CRC and x.file_size == y.file_size for x, y in zip(a, b))
print(f"stored jar: {len(a)} entries, same names, sizes and CRC-32 as {sys.argv[1]}")
PY
echo "original jar sha256: $(sha256sum "$JAR" | cut -d' ' -f1)  ($(stat -c %s "$JAR") bytes)"
xz -T2 -9e -c "$S/gatecut-nonative-stored.jar" > "$S/jar.xz"
mkdir -p "$S/data"
cp data/austen-pretrain.jsonl data/austen-tune.jsonl data/austen-test.jsonl "$S/data/"
(cd "$S" && sha256sum data/*.jsonl > data/SHA256SUMS)
# member "data" (not "."): the names in the tar, and so DATA_SHA, depend on it
payload_tar "$S" data | xz -9 -c > "$S/austen-data.tar.xz"
rm -rf data/carry && mkdir -p data/carry/d0
cp "$S/austen-data.tar.xz" data/carry/d0/
payload_cut "$S/jar.xz" data/carry/p jar.xz 6000000 7500000
echo "DATA_SHA=$(payload_sha256 "$S/austen-data.tar.xz")  ($(stat -c %s "$S/austen-data.tar.xz") bytes)"
echo "JAR_XZ_SHA=$(payload_sha256 "$S/jar.xz")  ($(stat -c %s "$S/jar.xz") bytes)"
echo "STORED_JAR_SHA=$(payload_sha256 "$S/gatecut-nonative-stored.jar")"
