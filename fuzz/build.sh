#!/bin/sh
# SPDX-License-Identifier: BSL-1.0
# Builds the libFuzzer target fuzz_ops (coop's sources + the target, all instrumented)
# with clang++-14 and -fsanitize=fuzzer,address,undefined.
#   fuzz/build.sh [build-dir]        (default: <repo>/build-fuzz)
# Environment: CXX (default clang++-14), EXTRA_FLAGS.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=${1:-$root/build-fuzz}
cxx=${CXX:-clang++-14}
mkdir -p "$out"
if ! "$cxx" --version >/dev/null 2>&1; then
  echo "build.sh: $cxx not found" >&2
  exit 2
fi
# libFuzzer's runtime ships with clang (libclang_rt.fuzzer); say so plainly if it is missing.
if ! echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
     "$cxx" -x c++ -fsanitize=fuzzer - -o "$out/.probe" 2>/dev/null; then
  echo "build.sh: $cxx cannot link -fsanitize=fuzzer (libFuzzer runtime missing?)" >&2
  exit 2
fi
rm -f "$out/.probe"
# Without UBSan's "function" check: clang 14 cannot compile a coroutine with it and the
# fuzzer's coverage together ("Cannot represent a difference across sections"), and the
# sequences run coop::steps coroutines.
flags="-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=function -fno-sanitize-recover=undefined -Wall -Wextra ${EXTRA_FLAGS:-}"
includes="-I$root/include -I$root/tests"

# The target first. coop's when_done_op::cancel_handler is an aggregate that Asio builds
# with parentheses (C++20 P0960), which clang 14 does not implement: when that is what
# fails, build a copy of the headers with a one-line constructor added, and say so loudly.
# The copy is used only if the real headers do not compile.
# shellcheck disable=SC2086
if ! "$cxx" $flags $includes -c "$here/fuzz_ops.cpp" -o "$out/fuzz_ops.o" 2>"$out/fuzz_ops.log"; then
  if grep -q "cancel_handler" "$out/fuzz_ops.log"; then
    grep -m 1 "error:" "$out/fuzz_ops.log" >&2
    rm -rf "$out/include-patched"
    cp -r "$root/include" "$out/include-patched"
    op="$out/include-patched/coop/detail/when_done_op.hpp"
    sed -i '/struct cancel_handler {/,/when_done_op\* op;/ s/when_done_op\* op;/when_done_op* op;\n    explicit cancel_handler(when_done_op* o) noexcept : op(o) {}  \/\/ fuzz\/build.sh/' "$op"
    grep -q "fuzz/build.sh" "$op" || { echo "build.sh: could not patch $op" >&2; exit 1; }
    echo "build.sh: WARNING: coop's headers do not compile with $cxx (when_done_op::cancel_handler," >&2
    echo "build.sh: WARNING: parenthesized aggregate init); fuzzing a COPY with a constructor added:" >&2
    echo "build.sh: WARNING:   $op" >&2
    includes="-I$out/include-patched -I$root/tests"
    # shellcheck disable=SC2086
    "$cxx" $flags $includes -c "$here/fuzz_ops.cpp" -o "$out/fuzz_ops.o"
  else
    cat "$out/fuzz_ops.log" >&2
    exit 1
  fi
fi
objects="$out/fuzz_ops.o"
for source in "$root"/src/*.cpp "$root"/src/*/*.cpp; do
  object="$out/$(basename "$(dirname "$source")")-$(basename "$source" .cpp).o"
  # shellcheck disable=SC2086
  "$cxx" $flags $includes -c "$source" -o "$object"
  objects="$objects $object"
done
# shellcheck disable=SC2086
"$cxx" -fsanitize=fuzzer,address,undefined $objects -pthread -o "$out/fuzz_ops"
echo "build.sh: built $out/fuzz_ops"
