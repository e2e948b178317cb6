# Sourced by the GPU scripts that run `train --cuda-graph` / `--device-resident` or `bench --io-binding` /
# `bench --generate --cuda-graph`: they need bytedeco's CUDA JNI library, carried as
# .gpu-carry/bound/libjnionnxruntime.so.xz (tools/make_bound_carry.sh). `bound_native [ARGS]` unpacks it to $BOUND
# (/opt/gpukit/bound) when ARGS (default: $TRAIN_ARGS) hold one of those flags and puts -Dgatecut.bound.native.path
# into the command array GC (before -jar or -cp: the command may start with `env VAR=...`). Returns 2 when the
# library is missing on a CUDA run.
bound_native() {
  local args=" ${1-${TRAIN_ARGS:-}} "
  [[ "$args" == *" --cuda-graph "* || "$args" == *" --device-resident "* || "$args" == *" --io-binding "* ]] \
    || return 0
  BOUND=${BOUND:-/opt/gpukit/bound}
  if [ -f .gpu-carry/bound/libjnionnxruntime.so.xz ] && [ ! -f "$BOUND/libjnionnxruntime.so" ]; then
    mkdir -p "$BOUND" && xz -dc .gpu-carry/bound/libjnionnxruntime.so.xz > "$BOUND/libjnionnxruntime.so.tmp" \
      && mv "$BOUND/libjnionnxruntime.so.tmp" "$BOUND/libjnionnxruntime.so"
  fi
  if [ -f "$BOUND/libjnionnxruntime.so" ]; then
    local i
    for i in "${!GC[@]}"; do
      if [ "${GC[$i]}" = -jar ] || [ "${GC[$i]}" = -cp ]; then
        GC=("${GC[@]:0:$i}" "-Dgatecut.bound.native.path=$BOUND" "${GC[@]:$i}")
        break
      fi
    done
  elif [ "${DEVICE:-cuda}" = cuda ]; then
    echo "$BOUND/libjnionnxruntime.so is missing: run tools/make_bound_carry.sh here and carry .gpu-carry/bound" >&2
    return 2
  fi
}
