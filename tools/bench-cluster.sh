#!/usr/bin/env bash
# One nebula-bench run against a local cluster (deployments/local-cluster.sh):
# starts NODES nodes (and Redis, haproxy), points the bench at the nodes
# directly (--targets, or at haproxy with VIA_LB=1), samples every node's
# RSS and open descriptors once a second, stops the cluster, and writes
# OUT_DIR/bench.json (nebula-bench's summary) and OUT_DIR/nodes.json (per
# node: peak RSS, peak descriptors, connections at the peak).
#
# Usage: tools/bench-cluster.sh OUT_DIR SCENARIO [nebula-bench options...]
#   NODES [3], BROKER [none], RUN_DIR, NODE_PORT, ... as local-cluster.sh;
#   VIA_LB=1: one target, haproxy (at most ~9,000 connections: its maxconn);
#   BALANCE=roundrobin: haproxy without room affinity (local-cluster.sh)
# With BROKER=broker-redis it also keeps Redis's INFO before and after the
# run (redis-before.txt, redis-after.txt) and, once a second, how many room
# channels exist and how many node subscriptions they have (samples.txt,
# lines starting with "redis"): one subscription per node that has members.
# Example (docs/PERFORMANCE.md, Cluster):
#   NODES=6 tools/bench-cluster.sh /tmp/c100k S2 --connections 102000 \
#     --rate 0.05 --duration 10 --connect-rate 4000
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: tools/bench-cluster.sh OUT_DIR SCENARIO [nebula-bench options]}
shift
export NODES=${NODES:-3} BROKER=${BROKER:-none}
export RUN_DIR=${RUN_DIR:-${TMPDIR:-/tmp}/nebula-bench-cluster}
export NODE_PORT=${NODE_PORT:-19101} LB_PORT=${LB_PORT:-19100} STATS_PORT=${STATS_PORT:-19404}
export REDIS_PORT=${REDIS_PORT:-19379}
bench=${NEBULA_BENCH:-$repo/build/tools/nebula-bench/nebula-bench}
cluster=$repo/deployments/local-cluster.sh
mkdir -p "$out"

# Load tests run without the per-connection rate limit and with room for
# queued output, as docs/BENCH.md says.
limits="$out/limits.conf"
printf '[limits]\nmessages_per_second = 0\nmax_queued_bytes = 67108864\n' >"$limits"
[ -n "${EXTRA_CONF:-}" ] && cat "$EXTRA_CONF" >>"$limits"
export EXTRA_CONF=$limits

sampler=
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
  "$cluster" stop >/dev/null || true
}
trap cleanup EXIT
"$cluster" start >&2

pids=() targets=()
for i in $(seq "$NODES"); do
  pids+=("$(cat "$RUN_DIR/node$i/nebula.pid")")
  targets+=("127.0.0.1:$((NODE_PORT + i - 1))")
done
pid_list=$(
  IFS=,
  echo "${pids[*]}"
)
target_list=$(
  IFS=,
  echo "${targets[*]}"
)

redis_info() { redis-cli -p "$REDIS_PORT" info all >"$out/redis-$1.txt" 2>&1 || true; }
[ "$BROKER" = broker-redis ] && redis_info before

# node, time, RSS kB, open descriptors, one line per node per second;
# "redis", time, room channels, subscriptions (with the Redis broker)
(
  while :; do
    for i in "${!pids[@]}"; do
      rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/${pids[$i]}/status" 2>/dev/null || echo 0)
      fds=$(find "/proc/${pids[$i]}/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
      echo "$((i + 1)) $(date +%s) ${rss:-0} $fds"
    done
    if [ "$BROKER" = broker-redis ]; then
      mapfile -t channels < <(redis-cli -p "$REDIS_PORT" pubsub channels 'nebula:room:*' 2>/dev/null)
      subs=0
      if [ "${#channels[@]}" -gt 0 ]; then
        subs=$(redis-cli -p "$REDIS_PORT" pubsub numsub "${channels[@]}" | awk 'NR % 2 == 0 { s += $1 } END { print s + 0 }')
      fi
      echo "redis $(date +%s) ${#channels[@]} $subs"
    fi
    sleep 1
  done
) >"$out/samples.txt" &
sampler=$!

if [ "${VIA_LB:-0}" = 1 ]; then
  where=(--port "$LB_PORT")
else
  where=(--targets "$target_list")
fi
echo "nebula-bench $* ${where[*]} --server-pid $pid_list" >"$out/command.txt"
rc=0
"$bench" "$@" "${where[@]}" --server-pid "$pid_list" >"$out/bench.json" || rc=$?
kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null || true
sampler=
[ "$BROKER" = broker-redis ] && redis_info after

# Per node: the sample with the most descriptors (all connected), and the
# peak RSS over the run.
awk '
  $1 == "redis" { next }
  { n = $1; if ($4 > fds[n]) { fds[n] = $4; rss_at[n] = $3 } if ($3 > peak[n]) peak[n] = $3 }
  END {
    printf "["
    for (n = 1; n in fds; n++)
      printf "%s{\"node\": %d, \"peak_fds\": %d, \"rss_kb_at_peak_fds\": %d, \"peak_rss_kb\": %d}",
        (n > 1 ? ", " : ""), n, fds[n], rss_at[n], peak[n]
    printf "]\n"
  }' "$out/samples.txt" >"$out/nodes.json"
cat "$out/nodes.json" >&2
if [ "$BROKER" = broker-redis ]; then
  awk '$1 == "redis" && $4 >= s { c = $3; s = $4 } END { printf "{\"room_channels\": %d, \"subscriptions\": %d}\n", c, s }' \
    "$out/samples.txt" >"$out/redis.json"
  cat "$out/redis.json" >&2
fi
exit $rc
