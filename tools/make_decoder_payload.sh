#!/usr/bin/env bash
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
tar -C "$S" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - data | xz -9 -c > "$S/austen-data.tar.xz"
rm -rf data/carry && mkdir -p data/carry/d0 data/carry/p1 data/carry/p2 data/carry/p3
cp "$S/austen-data.tar.xz" data/carry/d0/
python3 - "$S/jar.xz" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
sizes = [6_000_000, 7_500_000]
off = 0
for i in range(3):
    chunk = d[off:off + sizes[i]] if i < 2 else d[off:]
    open(f"data/carry/p{i + 1}/jar.xz.{i + 1}", "wb").write(chunk)
    off += len(chunk)
    print(f"p{i + 1}: {len(chunk)} bytes")
assert off == len(d)
PY
echo "DATA_SHA=$(sha256sum "$S/austen-data.tar.xz" | cut -d' ' -f1)  ($(stat -c %s "$S/austen-data.tar.xz") bytes)"
echo "JAR_XZ_SHA=$(sha256sum "$S/jar.xz" | cut -d' ' -f1)  ($(stat -c %s "$S/jar.xz") bytes)"
echo "STORED_JAR_SHA=$(sha256sum "$S/gatecut-nonative-stored.jar" | cut -d' ' -f1)"
