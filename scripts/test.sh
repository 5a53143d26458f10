#!/usr/bin/env bash
# The test command (README, CI): installs what is missing, then builds and runs the whole
# suite normally, soaks the demo server for 30 s, runs the suite again under ASan+UBSan in
# the shake-out mode, the threaded tests under TSan, one suite with Networking TS executors as Asio's default, fuzzes the
# operation sequences for a minute (libFuzzer, clang-14), and checks that
# the library builds alone with BUILD_TESTING=OFF and that an outside project can consume
# it by find_package(), add_subdirectory(), pkg-config and an unpacked .deb; builds the
# API reference (Doxygen, no undocumented public entity).
# Build trees go to ${COOP_BUILD_ROOT:-build}/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=$(realpath -m "${COOP_BUILD_ROOT:-$root/build}")  # absolute: steps cd elsewhere
jobs=${COOP_JOBS:-$(nproc)}
# clang-14 and its runtime (libclang-rt-14-dev) for the libFuzzer step; GCC has no libFuzzer.
# pkgconf: the pkg-config consumer of the packaging step; doxygen: the API reference;
# prometheus: promtool, which checks the demo server's /metrics.
# wrk and python3: the demo server's soak.
scripts/setup.sh libboost-json1.81-dev libboost-program-options1.81-dev libssl-dev clang-14 libclang-rt-14-dev pkgconf doxygen \
  prometheus wrk python3

step() { printf '\n=== %s\n' "$*"; }

step "normal build and tests"
# The suites built again on a cooperator pool run in the ASan build below, where a task's
# move between threads that touched freed memory would be caught; not here (build time).
cmake -S . -B "$out/normal" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOOP_BUILD_DEMO=ON -DCOOP_TEST_ON_POOL=OFF >/dev/null
cmake --build "$out/normal" -j"$jobs"
ctest --test-dir "$out/normal" --output-on-failure -j"$jobs"

step "soak: the demo server under wrk and a random job client, ${COOP_SOAK_SECONDS:-30} s"
COOP_SOAK_BUILD="$out/normal" COOP_SOAK_SKIP_BUILD=1 examples/server/soak.sh "${COOP_SOAK_SECONDS:-30}"

step "ASan+UBSan build and tests, in the shake-out mode (every tick ends after one unit)"
# Every test, the demo server's and the examples that check themselves too; not the other
# examples and programs (build time).
# Shake-out (COOP_SHAKE_OUT) here: bugs that depend on slice length show under ASan.
# Line tables only (-g1): reports keep file:line, the build takes less time than with -g.
cmake -S . -B "$out/asan" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 -DCOOP_SANITIZE=address,undefined \
  -DCOOP_SHAKE_OUT=ON -DCOOP_BUILD_DEMO=ON >/dev/null
# (test_fork only without ASan: see tests/CMakeLists.txt)
mapfile -t suites < <(cd tests && ls test_*.cpp | sed 's/\.cpp$//' | grep -vx test_fork)
# ... and the suites built a second time on a cooperator pool (tests/CMakeLists.txt).
suites+=(test_task_control_on_pool test_when_done_on_pool test_steps_on_pool)
# The checksum, shares, stats and pool examples check their own results and are tests of
# the suite.
cmake --build "$out/asan" -j"$jobs" --target "${suites[@]}" coop_header_check coop_example_checksum \
  coop_example_shares coop_example_stats coop_example_pool
# Not the compile-failure and README tests again: they run a compiler and a script, not
# coop's code, and the normal build ran them.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$out/asan" --output-on-failure -j"$jobs" -LE '^(mistakes|docs)$'

step "TSan build and threaded tests"
cmake -S . -B "$out/tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOOP_SANITIZE=thread \
  -DCOOP_BUILD_EXAMPLES=OFF >/dev/null
mapfile -t threaded < <(cd tests && ls test_threads*.cpp | sed 's/\.cpp$//')
cmake --build "$out/tsan" -j"$jobs" --target "${threaded[@]}"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --test-dir "$out/tsan" --output-on-failure -L threads

step "Networking TS executors as Asio's default (BOOST_ASIO_USE_TS_EXECUTOR_AS_DEFAULT)"
# The library and its TS-executor suite, built where any_io_executor is asio::executor.
cmake -S . -B "$out/ts" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS=-DBOOST_ASIO_USE_TS_EXECUTOR_AS_DEFAULT \
  -DCOOP_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$out/ts" -j"$jobs" --target test_ts_executors
ctest --test-dir "$out/ts" --output-on-failure -R '^test_ts_executors$'

step "fuzzing: libFuzzer over operation sequences, ${COOP_FUZZ_SECONDS:-60} s (ASan+UBSan)"
fuzz/run.sh "${COOP_FUZZ_SECONDS:-60}" "$out/fuzz"

step "packaging: the library alone, find_package, add_subdirectory, pkg-config, a .deb"
# BUILD_TESTING=OFF (what distributions pass) builds the library and nothing else, and
# needs no Boost.Test.
rm -rf "$out/library-only"
cmake -S . -B "$out/library-only" --no-warn-unused-cli -DBUILD_TESTING=OFF \
  -DCMAKE_DISABLE_FIND_PACKAGE_boost_unit_test_framework=ON >/dev/null
cmake --build "$out/library-only" -j"$jobs"
built=$(find "$out/library-only" -type f \( -name '*.a' -o -name '*.so*' -o -perm -u+x \) \
  -newer "$out/library-only/CMakeCache.txt" ! -path '*/CMakeFiles/*' -printf '%f\n' | sort | tr '\n' ' ')
[ "$built" = "libcoop.a " ] || { echo "BUILD_TESTING=OFF built more than the library: $built" >&2; exit 1; }

rm -rf "$out/prefix"
cmake --install "$out/normal" --prefix "$out/prefix" >/dev/null
cmake -S tests/consumer -B "$out/consumer-installed" -DCMAKE_PREFIX_PATH="$out/prefix" >/dev/null
cmake --build "$out/consumer-installed" -j"$jobs"
"$out/consumer-installed/consumer"
cmake -S tests/consumer -B "$out/consumer-subdir" -DCOOP_SOURCE_DIR="$root" >/dev/null
cmake --build "$out/consumer-subdir" -j"$jobs"
"$out/consumer-subdir/consumer"

# pkg-config, as a build that is not CMake's would use it.
pc_dir=$(dirname "$(find "$out/prefix" -name coop.pc)")
# shellcheck disable=SC2046
g++ -Wall -Wextra tests/consumer/main.cpp -o "$out/consumer-pkg-config" \
  $(PKG_CONFIG_PATH="$pc_dir" pkg-config --cflags --libs coop)
"$out/consumer-pkg-config"

# The .deb: unpacked (no root needed) and consumed by find_package.
rm -rf "$out/deb" "$out/deb-root"
(cd "$out/normal" && cpack -G DEB -B "$out/deb" >/dev/null)
deb=$(find "$out/deb" -maxdepth 1 -name '*.deb')
dpkg-deb -x "$deb" "$out/deb-root"
cmake -S tests/consumer -B "$out/consumer-deb" -DCMAKE_PREFIX_PATH="$out/deb-root/usr" >/dev/null
cmake --build "$out/consumer-deb" -j"$jobs"
"$out/consumer-deb/consumer"
echo "packaging: $(basename "$deb"): $(dpkg-deb -c "$deb" | wc -l) entries"

step "API reference: Doxygen over the public headers, a warning is an error"
scripts/api-docs.sh "$out/api-docs"

step "all tests passed"
