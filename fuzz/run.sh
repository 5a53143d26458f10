#!/bin/sh
# SPDX-License-Identifier: BSL-1.0
# Runs the fuzz target for N seconds (default 60), building it first if needed.
#   fuzz/run.sh [seconds] [build-dir]
# The corpus persists in <build-dir>/corpus (seeded with generated sequences), findings
# go to <build-dir>/findings. Exit status: 0 when nothing was found.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
seconds=${1:-60}
out=${2:-$root/build-fuzz}
if [ ! -x "$out/fuzz_ops" ] || [ -n "$(find "$root/src" "$root/include" "$root/tests/model" "$here/fuzz_ops.cpp" -newer "$out/fuzz_ops" 2>/dev/null | head -n 1)" ]; then
  "$here/build.sh" "$out"
fi
mkdir -p "$out/corpus" "$out/findings"
if [ -z "$(ls -A "$out/corpus")" ]; then
  COOP_FUZZ_WRITE_SEEDS="$out/corpus" "$out/fuzz_ops"
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
exec "$out/fuzz_ops" -max_total_time="$seconds" -max_len=1001 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$out/findings/" "$out/corpus"
