#!/usr/bin/env bash
# Fewer device calls per GPU session: a call carries at most 64 MiB, the tracked working tree included, and
# onnx-models/ is 28 of its 37 MB — the GPU scripts never read it (they export their models there). So for the
# GPU calls, take onnx-models/ out of the working tree (git sparse-checkout: the files stay in git, nothing is
# committed), carry the kit in 50 MB chunks (3 calls instead of 5) and payload pieces of 52 MB; then put it back.
#
#   bash tools/gpu_slim_tree.sh on     # before the first device call: onnx-models/ leaves the working tree,
#                                      # .gpu-kit3/k1..k3 (50 MB chunks of the kit in .gpu-kit) are made if missing
#   bash tools/gpu_slim_tree.sh off    # after the last device call (tests need onnx-models/ again)
#   bash tools/gpu_slim_tree.sh size   # what a call would carry besides its carried paths
# Kit calls then: carry [".gpu-kit3/kI"], command `bash .gpu-kit3/kI/unpack.sh` (I = 1, 2, 3; the third may also
# carry target/gatecut-nonative.jar and .gpu-carry/bound). Suite payload: PIECE_MB=52 bash tools/make_suite_payload.sh "".
# Used on 2026-11-30 (evening): tree 10.3 MB, kit in 3 calls of ~7 s each on a warm machine.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  on)
    # bench/results/ (5 MB of tables and returned json by 2026-12-01) leaves too: no GPU script reads it.
    git sparse-checkout set --no-cone '/*' '!/onnx-models/' '!/bench/results/'
    if [ ! -d .gpu-kit3 ]; then
      [ -d .gpu-kit ] || { echo "no .gpu-kit: build the kit first (bash ../shared/gpu/make-kit.sh)" >&2; exit 2; }
      grep -qx "/.gpu-kit3/" .git/info/exclude || echo "/.gpu-kit3/" >> .git/info/exclude
      work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
      cat .gpu-kit/k*/part.* > "$work/kit.tar.xz"
      mkdir -p .gpu-kit3 && (cd "$work" && split -b 50M -d -a 2 kit.tar.xz part.)
      n=$(ls "$work"/part.* | wc -l); i=1
      for p in "$work"/part.*; do
        mkdir -p ".gpu-kit3/k$i"; mv "$p" ".gpu-kit3/k$i/"; echo "$n" > ".gpu-kit3/k$i/count"
        cp .gpu-kit/k1/unpack.sh ".gpu-kit3/k$i/"; i=$((i + 1))
      done
    fi
    "$0" size ;;
  off)
    git sparse-checkout disable
    echo "onnx-models/ is back" ;;
  size)
    git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | awk '{printf "working tree that travels: %.1f MiB\n", $1 / 1048576}'
    du -sb .gpu-kit3/k* 2>/dev/null | awk '{printf "%s: %.1f MiB\n", $2, $1 / 1048576}' ;;
  *)
    sed -n '2,14p' "$0"; exit 2 ;;
esac
