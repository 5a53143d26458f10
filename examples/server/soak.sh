#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# The demo server under a mixed load for a while, on loopback: wrk on /ping and on /stream,
# and soak_client.py, which starts, pauses, resumes and stops jobs at random, drops
# /stream responses mid-body and probes /ping every 100 ms. Passes when the server
# answered throughout (no failed probe, no wrk error or non-2xx answer), every job is
# listed in a valid state, every finished job has the right digest, its RSS at the end is
# within 10% of its RSS after the warm-up, and it shuts down cleanly on SIGINT. The
# warm-up ends when the server's registry holds its 1,000 finished jobs (from then on it
# keeps a fixed number), half the run (at most 30 s) has passed and the RSS has moved less
# than 2% in the last second, or at three quarters of the run if it still grows then (a
# leak is judged from there); when the registry is not full by then, the RSS is reported
# but not judged (run longer: the jobs' rate depends on the machine).
#
# Usage: soak.sh [SECONDS]   (default 60; CI runs 30)
# Environment: COOP_SOAK_BUILD (build directory, default <repo>/build/demo-server),
# COOP_SOAK_SKIP_BUILD=1 (use the server built there), COOP_SOAK_THREADS (default 2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-60}
build=${COOP_SOAK_BUILD:-$root/build/demo-server}
threads=${COOP_SOAK_THREADS:-2}

if [[ ${COOP_SOAK_SKIP_BUILD:-0} != 1 ]]; then
  echo "== building coop_demo_server (Release) in $build"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCOOP_BUILD_DEMO=ON -DCOOP_BUILD_EXAMPLES=ON \
    -DCOOP_BUILD_TESTS=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" --target coop_demo_server >/dev/null
fi
server_bin=$(find "$build" -type f -name coop_demo_server -perm -u+x -print -quit)
[[ -n $server_bin ]] || { echo "soak.sh: coop_demo_server not found under $build" >&2; exit 1; }
command -v wrk >/dev/null || { echo "soak.sh: wrk is not installed (Debian: wrk)" >&2; exit 1; }

work=$(mktemp -d)
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

source "$here/start-server.sh"
start_demo_server "$server_bin" "$work/server.log" --threads "$threads" --stall-ms 0
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$server_pid/status"; }

echo "== ${seconds} s: wrk on /ping and /stream, and the random job client"
wrk -t1 -c4 -d"${seconds}s" --timeout 5s "http://127.0.0.1:$port/ping" >"$work/wrk-ping.txt" 2>&1 &
wrk_ping=$!
wrk -t1 -c2 -d"${seconds}s" --timeout 10s "http://127.0.0.1:$port/stream?size=262144" >"$work/wrk-stream.txt" 2>&1 &
wrk_stream=$!
COOP_SOAK_FULL_FILE="$work/registry-full" python3 "$here/soak_client.py" "$port" "$seconds" >"$work/client.txt" 2>&1 &
client=$!
# RSS every 5 s, printed at the end (how it grew, if it did).
( while kill -0 "$client" 2>/dev/null; do echo -n "$(rss_kib) " >>"$work/rss.txt"; sleep 5; done ) &
# Tenths of a second: the warm-up ends when the registry is full, half the run (at most
# 30 s) has passed and the server's other buffers have stopped growing (the RSS moved less
# than 2% in the last second: how long they grow depends on the machine's speed, 10 to 15 s
# of a 20 s run here); at three quarters of the run in any case.
least=$(( seconds * 10 / 2 < 300 ? seconds * 10 / 2 : 300 ))
waited=0
rss_before=0
while (( waited < seconds * 10 * 3 / 4 )); do
  if (( waited >= least )) && [[ -e $work/registry-full ]] && (( waited % 10 == 0 )); then
    rss_now=$(rss_kib)
    (( rss_before > 0 && rss_now * 100 <= rss_before * 102 && rss_now * 100 >= rss_before * 98 )) && break
    rss_before=$rss_now
  fi
  sleep 0.1
  waited=$(( waited + 1 ))
done
warm="$(( waited / 10 )).$(( waited % 10 ))"
judged=1
[[ -e $work/registry-full ]] || judged=0
rss_warm=$(rss_kib)
status=0
wait "$client" || status=1
wait "$wrk_ping" || status=1
wait "$wrk_stream" || status=1
rss_end=$(rss_kib)

cat "$work/client.txt"
for name in ping stream; do
  f="$work/wrk-$name.txt"
  echo "wrk /$name: $(awk '/Requests\/sec/{print $2 " req/s"}' "$f"), $(awk '/Latency/{print "latency avg " $2 ", max " $4; exit}' "$f")"
  if grep -q -e "Non-2xx" -e "Socket errors" "$f"; then
    echo "FINDING: wrk /$name saw errors:"; grep -e "Non-2xx" -e "Socket errors" "$f"; status=1
  fi
done
echo "server RSS: ${rss_warm} KiB after the ${warm} s warm-up, ${rss_end} KiB at the end (every 5 s: $(cat "$work/rss.txt")KiB)"
if (( !judged )); then
  echo "RSS not judged: the registry of finished jobs was not full after ${warm} s (a longer run judges it)"
elif (( rss_end * 100 > rss_warm * 110 || rss_end * 100 < rss_warm * 90 )); then
  echo "FINDING: RSS moved more than 10% after the warm-up"; status=1
fi

kill -INT "$server_pid"
for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$server_pid" 2>/dev/null; then
  echo "FINDING: the server did not shut down within 10 s of SIGINT"; status=1
else
  wait "$server_pid" || { echo "FINDING: the server exited with status $?"; status=1; }
fi
server_pid=
[[ $status == 0 ]] && echo "soak: passed" || { echo "soak: FAILED"; tail -20 "$work/server.log"; }
exit "$status"
