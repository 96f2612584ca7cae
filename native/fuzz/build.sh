#!/usr/bin/env bash
# Build the fuzz harnesses fuzz_packets and fuzz_pcap (libFuzzer + ASan +
# UBSan, warnings are errors) into OUTDIR (default native/build-fuzz).
# Exit 3 when clang cannot build a libFuzzer binary (clang or
# libclang-rt-14-dev missing: scripts/ensure-sysdeps.sh installs them).
# (gen_synflood.c needs no clang: cc -O2 gen_synflood.c -o gen_synflood.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
native=$(dirname "$here")
out=${1:-$native/build-fuzz}
CLANG=${CLANG:-clang}
mkdir -p "$out"
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' > "$probe/p.c"
if ! "$CLANG" -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" 2>"$probe/err"; then
  echo "build.sh: $CLANG cannot build libFuzzer binaries: $(head -c 300 "$probe/err")" >&2
  exit 3
fi
# every engine source, as the Makefile's asan build takes them, and the
# tracker's observer (Zeek's view), whose records the harnesses check
tracker="$native/../samples/tracker/native"
src=("$native"/*.c "$tracker"/*.c)
FLAGS=(-std=gnu11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Wshadow -Wno-unused-parameter -Werror
       -I"$native" -I"$tracker" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)
for h in fuzz_packets fuzz_pcap; do
  "$CLANG" "${FLAGS[@]}" "${src[@]}" "$here/$h.c" -o "$out/$h.tmp" -lpcap -lm
  mv -f "$out/$h.tmp" "$out/$h"
done
