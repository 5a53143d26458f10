#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# The main job, end to end on loopback: builds the demo HTTP server and its load client,
# starts the server on an ephemeral port of 127.0.0.1, measures GET /ping while 8 SHA-256
# jobs run (on the cooperator, naively inside handlers, and with no jobs; with wrk too when
# it is installed), prints the table and shuts the server down with SIGINT. Then, on a
# server with --fairness time, the CPU split of three jobs with shares 100/200/400.
#
# Environment: COOP_DEMO_BUILD (build directory, default <repo>/build/demo-server),
# COOP_DEMO_DURATION (seconds per mode, default 4), COOP_DEMO_JOBS (default 8),
# COOP_DEMO_THREADS (server threads, default 2), COOP_DEMO_SKIP_BUILD=1 (use built binaries).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${COOP_DEMO_BUILD:-$root/build/demo-server}
duration=${COOP_DEMO_DURATION:-4}
jobs=${COOP_DEMO_JOBS:-8}
threads=${COOP_DEMO_THREADS:-2}

if [[ ${COOP_DEMO_SKIP_BUILD:-0} != 1 ]]; then
  echo "== building coop_demo_server and coop_demo_load (Release) in $build"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCOOP_BUILD_DEMO=ON -DCOOP_BUILD_EXAMPLES=ON \
    -DCOOP_BUILD_TESTS=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" --target coop_demo_server coop_demo_load >/dev/null
fi
find_program() {
  local p
  p=$(find "$build" -type f -name "$1" -perm -u+x -print -quit)
  [[ -n $p ]] || { echo "run-demo.sh: $1 not found under $build" >&2; exit 1; }
  echo "$p"
}
server_bin=$(find_program coop_demo_server)
load_bin=$(find_program coop_demo_load)

log=$(mktemp)
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -INT "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -f "$log"
}
trap cleanup EXIT

# Starts the server with the given options on an ephemeral port; sets server_pid and port.
source "$here/start-server.sh"
start_server() { start_demo_server "$server_bin" "$log" --threads "$threads" "$@"; }

# Graceful shutdown: SIGINT, then the server exits by itself.
stop_server() {
  kill -INT "$server_pid"
  wait "$server_pid"
  tail -n +2 "$log" | grep -v '^port ' || true
}

start_server
modes=none,coop,naive,offload
if command -v wrk >/dev/null 2>&1; then
  modes=$modes,wrk,wrk-idle
else
  echo "(wrk is not installed: apt-get install -y wrk adds the outside client's rows)"
fi
"$load_bin" --port "$port" --jobs "$jobs" --duration "$duration" --modes "$modes"
stop_server

# Shares and fairness by time: three jobs with 100/200/400 shares on one cooperator.
start_server --fairness time --cooperators 1
"$load_bin" --port "$port" --jobs 3 --duration "$duration" --modes shares
stop_server
