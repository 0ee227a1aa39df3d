#!/usr/bin/env bash
# `make run ARGS="--listen 127.0.0.1:PORT"`: the options reach the server
# (it answers /healthz on that port), and after SIGTERM to the server
# `make run` itself ends with status 0.
# Usage: tests/make_run.sh BUILD_DIR   (meson passes it; suite "deploy")
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: tests/make_run.sh BUILD_DIR}
for tool in make curl; do
  command -v "$tool" >/dev/null || { echo "FAIL: no '$tool' command"; exit 1; }
done
port=$((30000 + RANDOM % 10000))
log=$(mktemp)
make --no-print-directory run BUILD="$build" ARGS="--listen 127.0.0.1:$port" >"$log" 2>&1 &
make_pid=$!
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  kill "$make_pid" 2>/dev/null
  rm -f "$log"
}
trap cleanup EXIT
for _ in $(seq 300); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break
  kill -0 "$make_pid" 2>/dev/null || break
  sleep 0.1
done
if ! curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; then
  cat "$log"
  echo "FAIL: no /healthz on 127.0.0.1:$port: ARGS did not reach the server"
  exit 1
fi
server_pid=$(pgrep -P "$make_pid" -x nebula)
[ -n "$server_pid" ] || { echo "FAIL: no nebula process started by make"; exit 1; }
kill -TERM "$server_pid"
wait "$make_pid"
rc=$?
server_pid=
[ $rc -eq 0 ] || { cat "$log"; echo "FAIL: make run ended with status $rc after SIGTERM"; exit 1; }
grep -F -- "--listen 127.0.0.1:$port" "$log"
echo "make run: ARGS reached the server on port $port; it stopped with status 0"
