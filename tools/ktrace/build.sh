#!/usr/bin/env bash
# Builds tools/ktrace/libktrace.so against the CUDA 13 CUPTI headers (here or on the GPU machine).
set -euo pipefail
cd "$(dirname "$0")"
CUDA=${CUDA_HOME:-$(ls -d /usr/local/cuda-13* /usr/local/cuda 2>/dev/null | head -1)}
gcc -O2 -shared -fPIC -o libktrace.so ktrace.c -I"$CUDA/include" -L"$CUDA/lib64" -L"$CUDA/lib" -lcupti \
    -Wl,-rpath,/usr/local/cuda-13/lib64:/usr/local/cuda-13.0/lib64:/usr/local/cuda/lib64
echo "built $(pwd)/libktrace.so"
