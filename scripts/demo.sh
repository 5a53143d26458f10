#!/usr/bin/env bash
# The main job (README): installs what is missing, builds, and runs the demo end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${COOP_BUILD_ROOT:-$(pwd)/build}
scripts/setup.sh
cmake -S . -B "$out/demo" -DCMAKE_BUILD_TYPE=Release -DCOOP_BUILD_TESTS=OFF >/dev/null
cmake --build "$out/demo" -j"$(nproc)" --target coop_example_checksum
"$out/demo/examples/coop_example_checksum"
