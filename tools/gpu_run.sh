# shellcheck shell=bash
# One timed command on the GPU machine with its GPU memory sampled, sourced by tools/gpu_train_minilm.sh
# and tools/gpu_eval_harness.sh (the peak of the samples is the memory figure the records quote).
#
#   source "$(dirname "${BASH_SOURCE[0]}")/gpu_run.sh"
#   gpu_run_sampled LOG MEMLOG LIMIT CMD...
#       Runs CMD under `timeout -k 10 LIMIT`, appending its output to LOG, while nvidia-smi writes the
#       used GPU memory (MiB) every 200 ms to MEMLOG (a second of samples on either side, so the idle
#       level is visible). Appends "# exit: RC, wall Ws" to LOG. Sets GPU_RUN_RC (CMD's exit code),
#       GPU_RUN_START and GPU_RUN_END (date +%s.%N) and GPU_RUN_WALL (seconds, one decimal). Always
#       returns 0: callers under `set -e` read GPU_RUN_RC instead.

gpu_run_sampled() {
  local log=$1 memlog=$2 limit=$3 smi
  shift 3
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$memlog" 2>&1 &
  smi=$!
  sleep 1
  GPU_RUN_START=$(date +%s.%N)
  timeout -k 10 "$limit" "$@" >> "$log" 2>&1
  GPU_RUN_RC=$?
  GPU_RUN_END=$(date +%s.%N)
  sleep 1
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
  GPU_RUN_WALL=$(python3 -c "print(f'{$GPU_RUN_END - $GPU_RUN_START:.1f}')")
  echo "# exit: $GPU_RUN_RC, wall ${GPU_RUN_WALL}s" >> "$log"
  return 0
}
