# SPDX-License-Identifier: BSL-1.0
# Sourced by run-demo.sh and soak.sh: starts the demo server on an ephemeral port of
# 127.0.0.1 and waits for it to say which.
#
# start_demo_server BINARY LOGFILE [OPTION ...]: sets server_pid and port, prints the
# server's first line; exits the calling script if the server does not start.
start_demo_server() {
  local bin=$1 log=$2
  shift 2
  "$bin" --port 0 "$@" >"$log" 2>&1 &
  server_pid=$!
  port=
  for _ in $(seq 1 100); do
    port=$(awk '/^port /{print $2; exit}' "$log")
    [[ -n $port ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  [[ -n $port ]] || { echo "$(basename "$0"): the server did not start" >&2; cat "$log" >&2; exit 1; }
  head -1 "$log"
}
