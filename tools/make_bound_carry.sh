#!/usr/bin/env bash
# Builds the small carry piece that `gatecut bench --io-binding` needs on the GPU machine:
# the CUDA build of bytedeco's JNI library for ONNX Runtime's C++ API (libjnionnxruntime.so, from
# org.bytedeco:onnxruntime:1.24.1-1.5.13:linux-x86_64-gpu, the same jar the GPU kit takes its
# libonnxruntime.so from), xz-compressed (~0.6 MB):
#
#   bash tools/make_bound_carry.sh        # run here, in the project root -> .gpu-carry/bound/ (git-ignored)
#
# On the GPU machine, carry [".gpu-carry/bound", "target/gatecut-nonative.jar"] (kit already unpacked)
# and run tools/gpu_iobind_bench.sh, which unpacks it into /opt/gpukit/bound and passes
# -Dgatecut.bound.native.path=/opt/gpukit/bound to java. By hand:
#   mkdir -p /opt/gpukit/bound && xz -dc .gpu-carry/bound/libjnionnxruntime.so.xz > /opt/gpukit/bound/libjnionnxruntime.so
#   $JAVA $ORT_GPU_OPTS -Dgatecut.bound.native.path=/opt/gpukit/bound -jar target/gatecut-nonative.jar bench --io-binding ...
# The library links to libonnxruntime.so.1 by soname; gatecut loads it after Microsoft's API has loaded
# the kit's libonnxruntime.so (soname libonnxruntime.so.1), so both bindings share that one library.
set -euo pipefail
VER=1.24.1-1.5.13
OUT=${1:-.gpu-carry/bound}
jar=$HOME/.m2/repository/org/bytedeco/onnxruntime/$VER/onnxruntime-$VER-linux-x86_64-gpu.jar
if [ ! -f "$jar" ]; then
  mvn -q -B dependency:get -Dartifact=org.bytedeco:onnxruntime:$VER:jar:linux-x86_64-gpu -Dtransitive=false
fi
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unzip -q -j -o "$jar" 'org/bytedeco/onnxruntime/linux-x86_64-gpu/libjnionnxruntime.so' -d "$work"
xz -T2 -6 -c "$work/libjnionnxruntime.so" > "$OUT/libjnionnxruntime.so.xz"
sha256sum "$work/libjnionnxruntime.so" | cut -d' ' -f1 > "$OUT/libjnionnxruntime.so.sha256"
ls -la "$OUT"
