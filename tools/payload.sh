# shellcheck shell=bash
# Payload pieces for the lent GPU machine, sourced by tools/make_*payload.sh (here) and
# tools/gpu_*.sh (there): a device call carries at most 64 MiB, so large files travel as one
# archive cut into byte pieces that ride along with several calls and are joined again on the
# GPU machine. Plain bash + coreutils (+ GNU tar, xz); no Python.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/payload.sh"
#
# Packing (here):
#   payload_tar DIR [MEMBER...]
#       Writes a tar of DIR's MEMBERs (default .) to stdout with deterministic flags (sorted
#       names, mtime 0, owner/group 0), so the same files always give the same bytes and the
#       recorded sha256 values stay valid. Pipe it through xz where the payload is compressed.
#   payload_cut FILE PREFIX NAME SIZE...
#       Cuts FILE into one piece per SIZE (bytes) plus a last piece with the rest: piece i is
#       PREFIXi/NAME.i (e.g. .gpu-carry/e3/pay.3). Each PREFIXi folder is made afresh, because a
#       folder is carried whole and anything stale in it would ride along. Prints one line per
#       piece, "<basename of PREFIX>i: N bytes" (e.g. "e3: 10800000 bytes"). Returns 1 if a
#       piece cannot be written or the pieces do not add up to FILE.
#   payload_sha256 FILE...
#       Prints the sha256 (hex only) of the FILEs' concatenation.
#
# Unpacking (GPU machine). These print "FAIL: ..." and return 3 on any failure, so a caller
# ends with `|| exit 3`. Messages go through ${PAYLOAD_SAY:-echo}; set PAYLOAD_SAY to a logging
# function of the caller (e.g. one that adds a timestamp) to route them there.
#   payload_check EXPECTED_SHA LABEL PIECE...
#       Checks that every PIECE exists and, when EXPECTED_SHA is non-empty, that the sha256 of
#       their concatenation is EXPECTED_SHA ("FAIL: LABEL sha256 GOT, expected EXPECTED_SHA").
#       Sets PAYLOAD_GOT_SHA to the sha256 it got.
#   payload_unpack [--xz] DEST EXPECTED_SHA LABEL PIECE...
#       payload_check, then extracts the tar the PIECEs make up (xz-compressed with --xz) into
#       DEST (created if missing) and prints "LABEL unpacked into DEST (sha256 GOT)".
#   payload_join [--xz] FILE EXPECTED_SHA LABEL PIECE...
#       payload_check, then writes the PIECEs' concatenation (decompressed with --xz) to FILE,
#       through FILE.tmp so that a FILE present is always a whole one.
#   payload_sums DIR SUMS [SHA256SUM_OPTION...]
#       Runs `sha256sum -c [OPTION...] SUMS` inside DIR (SUMS relative to DIR; e.g. --quiet).

payload_tar() {
  local dir=$1; shift
  [ $# -gt 0 ] || set -- .
  tar -C "$dir" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - "$@"
}

payload_cut() {
  local file=$1 prefix=$2 name=$3; shift 3
  [ -n "$prefix" ] || { echo "payload_cut: empty PREFIX" >&2; return 1; }
  local total off=0 i=0 size piece got
  total=$(stat -c %s "$file") || return 1
  # The sizes given, then "" for the last piece, which takes the rest.
  for size in "$@" ""; do
    i=$((i + 1))
    piece=$prefix$i/$name.$i
    rm -rf "$prefix$i" && mkdir -p "$prefix$i" || return 1
    # dd by byte offset and count: exact slices whatever the block size.
    dd if="$file" of="$piece" bs=1M iflag=skip_bytes,count_bytes skip="$off" \
      ${size:+count="$size"} status=none || return 1
    got=$(stat -c %s "$piece") || return 1
    off=$((off + got))
    echo "${prefix##*/}$i: $got bytes"
  done
  [ "$off" -eq "$total" ] || { echo "payload_cut: pieces hold $off bytes, $file $total" >&2; return 1; }
}

payload_sha256() {
  cat "$@" | sha256sum | cut -d' ' -f1
}

_payload_say() { "${PAYLOAD_SAY:-echo}" "$@"; }

payload_check() {
  local want=$1 label=$2; shift 2
  local p
  for p in "$@"; do
    [ -f "$p" ] || {
      _payload_say "FAIL: payload piece $p missing (present: $(ls "$(dirname "$p")" 2>/dev/null | tr '\n' ' '))"
      return 3
    }
  done
  PAYLOAD_GOT_SHA=$(payload_sha256 "$@")
  if [ -n "$want" ] && [ "$PAYLOAD_GOT_SHA" != "$want" ]; then
    _payload_say "FAIL: $label sha256 $PAYLOAD_GOT_SHA, expected $want"; return 3
  fi
}

payload_unpack() { _payload_out tar "$@"; }
payload_join() { _payload_out file "$@"; }

# The body of both: $1 is "tar" (extract into OUT) or "file" (write OUT), then
# [--xz] OUT EXPECTED_SHA LABEL PIECE... as documented above.
_payload_out() {
  local mode=$1; shift
  local -a dec=(cat)   # the pieces' stream goes through this: cat, or xz -dc with --xz
  if [ "${1:-}" = --xz ]; then dec=(xz -dc); shift; fi
  local out=$1 want=$2 label=$3; shift 3
  payload_check "$want" "$label" "$@" || return 3
  # subshells, so that pipefail (a failed cat or xz fails the whole) stays out of the caller
  if [ "$mode" = tar ]; then
    mkdir -p "$out" && (set -o pipefail; cat "$@" | "${dec[@]}" | tar -C "$out" -xf -) \
      || { _payload_say "FAIL: unpacking $label into $out"; return 3; }
    _payload_say "$label unpacked into $out (sha256 $PAYLOAD_GOT_SHA)"
  else
    mkdir -p "$(dirname "$out")" && (set -o pipefail; cat "$@" | "${dec[@]}" > "$out.tmp") && mv "$out.tmp" "$out" \
      || { rm -f "$out.tmp"; _payload_say "FAIL: joining $label into $out"; return 3; }
  fi
}

payload_sums() {
  local dir=$1 sums=$2; shift 2
  (cd "$dir" && sha256sum -c "$@" "$sums") || { _payload_say "FAIL: $sums"; return 3; }
}
