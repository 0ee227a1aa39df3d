#!/usr/bin/env bash
# A/B two builds of nebula on the same load, alternating A and B so that the
# machine's drift hits both alike, and keep every JSON summary.
#
#   [PORT=N] tools/bench-ab.sh A_BUILD B_BUILD OUT_DIR [ROUNDS]
#
# Each round runs, on A then on B, with a fresh server each time:
#   S3 at 1M, 2M and 2.88M deliveries/s (500, 1000, 1442 msg/s in a room of
#   2,000), and S4 at 0.5 and 1 msg/s per connection (19,000 connections).
# EXTRA_CONF (text) goes into B's [plugins] section, e.g. a store:
#   B_STORE_FIXTURES=1 EXTRA_CONF='store = "store-memory"' tools/bench-ab.sh …
#   (B_STORE_FIXTURES=1: plugins from B's tests/fixtures folder, where the
#   contract fixtures are). Copy a build folder before measuring it if you
#   go on building meanwhile.
# The bench tool is B's (both speak the same protocol).
set -uo pipefail
cd "$(dirname "$0")/.."
a=${1:?A build folder}
b=${2:?B build folder}
out=${3:?output folder}
rounds=${4:-2}
bench=$b/tools/nebula-bench/nebula-bench
port=${PORT:-9300} # PORT=N: another port, when 9300 is taken
mkdir -p "$out"

conf_for() { # build label -> config path
  local root dir extra=""
  root=$(cd "$1" && pwd)
  dir=$root/plugins
  [ "$2" = B ] && extra=${EXTRA_CONF:-}
  [ "$2" = B ] && [ "${B_STORE_FIXTURES:-0}" = 1 ] && dir=$root/tests/fixtures
  local f="$out/$2.conf"
  cat >"$f" <<CONF
[server]
listen = "127.0.0.1:$port"
web_root = ""
log_level = "warn"
[plugins]
dir = "$dir"
${extra}
[limits]
messages_per_second = 0
max_queued_bytes = 67108864
CONF
  echo "$f"
}

run() { # label build scenario args...
  local label=$1 build=$2 s=$3
  shift 3
  local conf
  conf=$(conf_for "$build" "$label")
  "$build/nebula" -c "$conf" 2>>"$out/$label.log" &
  local pid=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.1
  done
  echo "== round $r: $s on $label ($build)" >&2
  timeout 900 "$bench" "$s" --port $port --server-pid "$pid" "$@" \
    >"$out/$s-$label-$r.json" 2>"$out/$s-$label-$r.err"
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  sleep 2
}

for r in $(seq "$rounds"); do
  for pair in "A $a" "B $b"; do
    read -r label build <<<"$pair"
    run "$label" "$build" S3 --processes 2 --rates 500,1000,1442 --duration 5
    run "$label" "$build" S4 --rates 0.5,1
  done
done
echo "results in $out/" >&2
