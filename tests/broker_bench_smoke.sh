#!/bin/sh
# tests/broker_bench_smoke.sh BROKER_BENCH PLUGIN.so: a short run of
# tools/broker-bench against the Redis of tests/with-redis.sh
# (NEBULA_TEST_REDIS_URL). It must exit 0 with every message delivered on
# node B and echoed on node A, in order, in fewer script calls than
# messages (publishes are batched). Under NEBULA_WRAPPER (the valgrind
# pass) the tool runs inside it: a leak or memory error fails the test.
set -eu
[ -n "${NEBULA_TEST_REDIS_URL:-}" ] || { echo "broker_bench_smoke.sh: run it under tests/with-redis.sh" >&2; exit 1; }
# shellcheck disable=SC2086 # the wrapper is a command with its options
out=$(${NEBULA_WRAPPER:-} "$1" "$2" "$NEBULA_TEST_REDIS_URL" -m 2000 -b 64 -r 5 -w 500) || {
    echo "broker-bench failed:" >&2; echo "$out" >&2; exit 1; }
echo "$out"
echo "$out" | grep -q "delivered on B 2000, echoed on A 2000, failed 0, out of order 0, seq mismatches 0" || {
    echo "broker_bench_smoke.sh: not every message went through in order" >&2; exit 1; }
calls=$(echo "$out" | sed -n 's/.*redis: \([0-9]*\) script calls.*/\1/p')
[ -n "$calls" ] && [ "$calls" -gt 0 ] && [ "$calls" -lt 2000 ] || {
    echo "broker_bench_smoke.sh: $calls script calls for 2000 messages: not batched" >&2; exit 1; }
