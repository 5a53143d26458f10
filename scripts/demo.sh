#!/usr/bin/env bash
# The main job (README): installs what is missing, builds the demo HTTP server and its
# load client, runs them end to end on loopback and prints the /ping latency table
# (jobs on coop, jobs run naively inside handlers, no jobs; wrk as an outside client).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${COOP_BUILD_ROOT:-$(pwd)/build}
scripts/setup.sh libboost-json1.81-dev libboost-program-options1.81-dev libssl-dev wrk
COOP_DEMO_BUILD="$out/demo-server" bash examples/server/run-demo.sh
