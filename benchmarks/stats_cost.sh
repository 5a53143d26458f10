#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# What keeping the stats costs a unit: coop_bench against coop_bench_nostats (the same
# library with the stats' per-unit bookkeeping compiled out), interleaved, the per-unit
# cost and control figures compared on medians.
#
#   bash benchmarks/stats_cost.sh BUILD_DIR [RUNS] [OUT_DIR]
#
# BUILD_DIR: a Release build with -DCOOP_BUILD_BENCHMARKS=ON and both targets built.
set -euo pipefail
build=${1:?usage: stats_cost.sh BUILD_DIR [RUNS] [OUT_DIR]}
runs=${2:-3}
out=${3:-$(mktemp -d)}
mkdir -p "$out"
for i in $(seq "$runs"); do
  "$build/benchmarks/coop_bench_nostats" --only throughput,control --repetitions 5 --json "$out/nostats$i.json" >/dev/null
  "$build/benchmarks/coop_bench" --only throughput,control --repetitions 5 --json "$out/stats$i.json" >/dev/null
done
echo "stats compiled out -> kept (runs in $out)"
python3 "$(dirname "$0")/compare_runs.py" "$out/nostats*.json" "$out/stats*.json"
