#!/usr/bin/env bash
# Run nebula-bench scenarios against nebula and the two reference servers
# (../shared/peers: go-gorilla, node-ws), back to back on this machine, one
# fresh server per scenario, and keep every JSON summary.
#
#   tools/bench-side-by-side.sh [OUT_DIR] [SCENARIO...]     (default: S1 S4 S3)
#   SERVERS="nebula" tools/bench-side-by-side.sh ...          (a subset)
#
# Needs: build/ (make build), the peers built (their build.sh; go-gorilla
# needs Debian's golang-go and golang-github-gorilla-websocket-dev).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-results}
shift || true
scenarios=("${@:-S1 S4 S3}")
read -r -a scenarios <<<"${scenarios[*]}"
bench=build/tools/nebula-bench/nebula-bench
peers=${PEERS:-../shared/peers}
port=9200
mkdir -p "$out"

conf=$(mktemp)
cat >"$conf" <<CONF
[server]
listen = "127.0.0.1:$port"
web_root = ""
log_level = "warn"
[plugins]
dir = "$PWD/build/plugins"
[limits]
messages_per_second = 0
max_queued_bytes = 67108864
CONF

start_server() { # name -> sets pid
  case $1 in
    nebula) build/nebula -c "$conf" 2>>"$out/nebula.log" & pid=$! ;;
    go-gorilla) PORT=$port "$peers/go-gorilla/run.sh" >>"$out/go-gorilla.log" 2>&1 & pid=$! ;;
    node-ws) PORT=$port "$peers/node-ws/run.sh" >>"$out/node-ws.log" 2>&1 & pid=$! ;;
  esac
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 did not start" >&2
  return 1
}

args_for() { # scenario -> extra args
  case $1 in
    S3) echo "--processes 2 --max-steps 14" ;;
    *) echo "" ;;
  esac
}

for s in "${scenarios[@]}"; do
  for server in ${SERVERS:-nebula go-gorilla node-ws}; do
    start_server "$server" || continue
    # The server process itself (run.sh execs it), for RSS.
    echo "== $s on $server (pid $pid)" >&2
    # shellcheck disable=SC2046
    timeout 600 "$bench" "$s" --port $port --server-pid "$pid" $(args_for "$s") \
      >"$out/$s-$server.json" 2>"$out/$s-$server.err"
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    sleep 2 # let TIME_WAIT and the kernel settle between servers
  done
done
rm -f "$conf"
echo "results in $out/" >&2
