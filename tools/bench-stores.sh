#!/usr/bin/env bash
# The stores on the broadcast path: nebula-bench S3 and S4 with no store,
# store-aof and store-sqlite (and store-aof compacting all along), a fresh
# server and an empty data folder per run, the configurations alternating
# round by round so that the machine's drift hits all alike; during S4,
# tools/echo-probe.mjs times the sender's own echo (with fsync = "always",
# the durable acknowledgment). docs/PERFORMANCE.md ("Stores") has results.
#
#   [FSYNC=everysec|always|no] [ROUNDS=3] [PORT=9300] [BUILD=build] [LINGER=ms]
#   [CONFIGS="none store-aof store-sqlite store-aof-compacting"]
#   tools/bench-stores.sh OUT_DIR
#
# Each run: S3 --processes 2 --rates 500 --duration 5 (1M deliveries/s),
# then S4 --rates 0.5 --duration 10 (19,000 connections) with the probe.
# store-aof-compacting keeps 20 messages per room and compacts from 1 MiB,
# so that S4 compacts every few seconds (its log, at level info, shows
# them: OUT_DIR/store-aof-compacting.log). LINGER sets [server]
# store_linger_ms (unset: the default). At the end a table per run and
# the medians per configuration (jq) go to stdout and OUT_DIR/summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: tools/bench-stores.sh OUT_DIR (see the comment at the top)}
rounds=${ROUNDS:-3}
fsync=${FSYNC:-everysec}
port=${PORT:-9300}
build=${BUILD:-build}
configs=${CONFIGS:-none store-aof store-sqlite store-aof-compacting}
bench=$build/tools/nebula-bench/nebula-bench
for need in "$build/nebula" "$bench" jq node; do
  command -v "$need" >/dev/null || [ -x "$need" ] || { echo "bench-stores: $need is missing (make build; apt-get install jq nodejs)" >&2; exit 2; }
done
mkdir -p "$out"
plugins=$(cd "$build/plugins" && pwd)

conf_for() { # config data_dir -> config path
  local c=$1 data=$2 f="$out/$1.conf" store=none section="" level=warn
  case $c in
  none) ;;
  store-aof) store=store-aof section="[store-aof]
path = \"$data/nebula.aof\"
fsync = \"$fsync\"" ;;
  store-sqlite) store=store-sqlite section="[store-sqlite]
path = \"$data/nebula.db\"
fsync = \"$fsync\"" ;;
  store-aof-compacting) store=store-aof level=info section="[store-aof]
path = \"$data/nebula.aof\"
fsync = \"$fsync\"
retention_messages = 20
compact_min_bytes = 1048576" ;;
  *) echo "bench-stores: unknown configuration $c" >&2; exit 2 ;;
  esac
  cat >"$f" <<CONF
[server]
listen = "127.0.0.1:$port"
web_root = ""
log_level = "$level"
${LINGER:+store_linger_ms = $LINGER}
[plugins]
dir = "$plugins"
store = "$store"
[limits]
messages_per_second = 0
max_queued_bytes = 67108864
$section
CONF
  echo "$f"
}

start() { # config -> pid (echoed)
  local data="$out/data-$1"
  rm -rf "$data"
  mkdir -p "$data"
  "$build/nebula" -c "$(conf_for "$1" "$data")" >>"$out/$1.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.1
  done
  echo $pid
}

stop() {
  kill "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  sleep 2
}

for r in $(seq "$rounds"); do
  for c in $configs; do
    echo "== round $r: $c (fsync $fsync)" >&2
    pid=$(start "$c")
    timeout 600 "$bench" S3 --port "$port" --server-pid "$pid" --processes 2 --rates 500 \
      --duration 5 >"$out/S3-$c-$r.json" 2>"$out/S3-$c-$r.err"
    stop "$pid"
    pid=$(start "$c")
    # the probe starts once S4's 19,000 connections are in (2,000/s) and
    # its warm-up has passed, and runs through the measured 10 s
    (sleep 13 && node tools/echo-probe.mjs --port "$port" --duration 9 \
      >"$out/echo-$c-$r.json" 2>"$out/echo-$c-$r.err") &
    probe=$!
    timeout 600 "$bench" S4 --port "$port" --server-pid "$pid" --rates 0.5 --duration 10 \
      >"$out/S4-$c-$r.json" 2>"$out/S4-$c-$r.err"
    wait "$probe"
    stop "$pid"
  done
done

summary() {
  printf '%-22s %5s | %-34s | %-34s | %s\n' config round "S3 delivered/s, lost, p50/p99 ms" \
    "S4 delivered/s, lost, p50/p99 ms" "echo p50/p99/max ms (errors)"
  for c in $configs; do
    for r in $(seq "$rounds"); do
      s3=$(jq -r '.steps[0] | "\(.delivered_per_s|floor), \(.lost), \(.latency_ms.p50)/\(.latency_ms.p99)"' "$out/S3-$c-$r.json" 2>/dev/null)
      s4=$(jq -r '.steps[0] | "\(.delivered_per_s|floor), \(.lost), \(.latency_ms.p50)/\(.latency_ms.p99)"' "$out/S4-$c-$r.json" 2>/dev/null)
      e=$(jq -r '"\(.p50)/\(.p99)/\(.max) (\(.errors))"' "$out/echo-$c-$r.json" 2>/dev/null)
      printf '%-22s %5s | %-34s | %-34s | %s\n' "$c" "$r" "${s3:-failed}" "${s4:-failed}" "${e:-failed}"
    done
  done
  echo
  echo "medians over $rounds rounds (fsync $fsync):"
  for c in $configs; do
    med() { # file-glob jq-expr
      # shellcheck disable=SC2086
      jq -s "[.[] | $2] | sort | .[(length - 1) / 2 | floor]" $1 2>/dev/null
    }
    printf '%-22s S3 %s/s p99 %s | S4 %s/s p99 %s | echo p99 %s\n' "$c" \
      "$(med "$out/S3-$c-[0-9]*.json" '.steps[0].delivered_per_s | floor')" \
      "$(med "$out/S3-$c-[0-9]*.json" '.steps[0].latency_ms.p99')" \
      "$(med "$out/S4-$c-[0-9]*.json" '.steps[0].delivered_per_s | floor')" \
      "$(med "$out/S4-$c-[0-9]*.json" '.steps[0].latency_ms.p99')" \
      "$(med "$out/echo-$c-[0-9]*.json" '.p99')"
  done
}
summary | tee "$out/summary.txt"
