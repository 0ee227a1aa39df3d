#!/bin/sh
# tests/with-redis.sh CMD...: run CMD with a fresh redis-server (loopback,
# a free port, no persistence, its own folder) and every test server on
# broker-redis through it (NEBULA_TEST_BROKER, NEBULA_TEST_BROKER_CONF;
# tests/lib/server.mjs; the URL alone in NEBULA_TEST_REDIS_URL), then stop
# that redis-server by its PID. CMD's exit status is the script's. Used for the broker-redis column of the
# integration matrix.
set -eu
if ! command -v redis-server >/dev/null 2>&1; then
    echo "with-redis.sh: redis-server is not installed (make deps installs it)" >&2
    exit 1
fi
[ "$#" -gt 0 ] || { echo "usage: tests/with-redis.sh CMD..." >&2; exit 2; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/nebula-with-redis.XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
# A free port: ask the kernel (bind 0) through node, which the tests need anyway,
# and retry if another process takes it first.
for attempt in 1 2 3 4 5; do
    port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});')
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
    for _ in $(seq 1 50); do
        [ -s "$dir/redis.pid" ] && redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && redis-cli -p "$port" ping >/dev/null 2>&1; then
        break
    fi
    pid=
done
if [ -z "$pid" ]; then
    echo "with-redis.sh: redis-server did not start; its log:" >&2
    cat "$dir/redis.log" >&2 || true
    exit 1
fi
export NEBULA_TEST_BROKER=broker-redis
NEBULA_TEST_REDIS_URL="redis://127.0.0.1:$port"
export NEBULA_TEST_REDIS_URL
NEBULA_TEST_BROKER_CONF=$(printf '[broker-redis]\nurl = "redis://127.0.0.1:%s"\n' "$port")
export NEBULA_TEST_BROKER_CONF
status=0
"$@" || status=$?
exit "$status"
