#!/usr/bin/env bash
# Offline checks of deployments/, for operators' files that no other test
# runs:
#   nebula.service      systemd-analyze verify (the binary path pointed at
#                       this build's), the settings operators rely on, and
#                       systemd-analyze security's exposure score;
#                       its readiness command against a real node;
#   prometheus.yml      promtool check config;
#   /metrics            promtool check metrics on a running node's page;
#   grafana/nebula.json valid JSON with the parts an import needs, and every
#                       metric a panel queries is served by a running node;
#   haproxy.cfg         haproxy -c, and the settings the cluster relies on
#                       (room affinity, /readyz checks, WebSocket timeouts);
#                       the copy local-cluster.sh generates is valid too;
#   docker-compose.yml  docker-compose config (no engine needed), the
#                       image built from deployments/Dockerfile;
#   Dockerfile          the files it copies exist, a non-root USER and a
#                       HEALTHCHECK on /healthz;
#   nebula.docker.conf  nebula --check-config.
# local-cluster.sh itself runs in tests/integration/local_cluster.test.mjs.
# Usage: tests/deployments.sh NEBULA_BIN PLUGIN_DIR  (meson passes both; suite "deploy")
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: tests/deployments.sh NEBULA_BIN PLUGIN_DIR}
plugin_dir=${2:?usage: tests/deployments.sh NEBULA_BIN PLUGIN_DIR}
fail=0
bad() {
  echo "FAIL: $*"
  fail=1
}
for tool in systemd-analyze promtool jq curl haproxy docker-compose; do
  command -v "$tool" >/dev/null || {
    echo "FAIL: no '$tool' command (Makefile APT_PACKAGES: systemd, prometheus, jq, curl, haproxy, docker-compose)"
    exit 1
  }
done
tmp=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# A node on a free loopback port, for the readiness command and /metrics.
port=$((20000 + RANDOM % 10000))
sed "s#^dir = .*#dir = \"$plugin_dir\"#; s#^web_root = .*#web_root = \"$PWD/web\"#" nebula.conf >"$tmp/nebula.conf"
"$bin" -c "$tmp/nebula.conf" --listen "127.0.0.1:$port" >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" || {
  cat "$tmp/server.log"
  bad "the node did not answer /healthz on port $port"
  exit 1
}

echo "== nebula.service"
unit=deployments/nebula.service
sed "s#/usr/local/bin/nebula#$bin#g" "$unit" >"$tmp/nebula.service"
if ! out=$(systemd-analyze verify --man=no "$tmp/nebula.service" 2>&1) || [ -n "$out" ]; then
  echo "$out"
  bad "systemd-analyze verify $unit"
fi
key() { sed -n "s/^$1=//p" "$unit" | tail -1; }
[ "$(key KillSignal)" = SIGTERM ] || bad "KillSignal is not SIGTERM"
[ "$(key NoNewPrivileges)" = yes ] || bad "NoNewPrivileges is not yes"
[ "$(key ProtectSystem)" = strict ] || bad "ProtectSystem is not strict"
[ -n "$(key StateDirectory)" ] || bad "no StateDirectory"
case $(key Type) in
  notify) ;;
  simple) [ -n "$(key ExecStartPost)" ] || bad "Type=simple without a readiness check (ExecStartPost)" ;;
  *) bad "Type is neither notify nor simple" ;;
esac
# TimeoutStopSec must leave the node its whole shutdown_timeout_ms.
stop_s=$(key TimeoutStopSec | sed 's/s$//')
shutdown_ms=$(sed -n 's/^shutdown_timeout_ms *= *\([0-9]*\).*/\1/p' nebula.conf)
[ -n "$stop_s" ] && [ -n "$shutdown_ms" ] && [ $((stop_s * 1000)) -gt "$shutdown_ms" ] ||
  bad "TimeoutStopSec=${stop_s:-?}s is not above shutdown_timeout_ms=${shutdown_ms:-?}"
if ! systemd-analyze security --offline=yes --threshold=20 "$tmp/nebula.service" >"$tmp/security.txt" 2>&1; then
  tail -3 "$tmp/security.txt"
  bad "systemd-analyze security: exposure above 2.0"
fi
grep -o 'Overall exposure level.*' "$tmp/security.txt"
# The readiness command as systemd runs it: passes against the node,
# fails against a port nobody listens on.
# systemd's quoting undone: the outer single quotes, and $$ (a literal $).
ready_cmd=$(key ExecStartPost | sed "s|^/bin/sh -c '||; s|'$||; s|\\$\\$|\\$|g")
if ! NEBULA_READY_URL=http://127.0.0.1:$port/readyz /bin/sh -c "$ready_cmd"; then
  bad "ExecStartPost does not pass against a ready node"
fi
# A port nobody listens on (even port 1 may be taken on a shared machine).
closed_port=1
while (exec 3<>"/dev/tcp/127.0.0.1/$closed_port") 2>/dev/null; do closed_port=$((30000 + RANDOM % 30000)); done
if NEBULA_READY_URL=http://127.0.0.1:$closed_port/readyz /bin/sh -c "$ready_cmd" 2>/dev/null; then
  bad "ExecStartPost passes with no node listening"
fi

echo "== prometheus.yml"
promtool check config deployments/prometheus.yml || bad "promtool check config"

echo "== /metrics"
# promtool's lint of a running node's page (names, units, _total, HELP):
# exit 3 means lint problems, which count as a failure too.
curl -sf "http://127.0.0.1:$port/metrics" >"$tmp/metrics.txt" || bad "no /metrics from the node"
if ! promtool check metrics <"$tmp/metrics.txt"; then
  bad "promtool check metrics on the node's /metrics"
fi
echo "$(grep -c '^# TYPE' "$tmp/metrics.txt") metric families pass promtool check metrics"

echo "== grafana/nebula.json"
dash=deployments/grafana/nebula.json
jq -e '.title and .uid and .schemaVersion and (.panels | length > 0)
  and all(.panels[]; .gridPos and .type and .title and (.targets | length > 0)
                     and all(.targets[]; (.expr | length > 0) and .refId))' "$dash" >/dev/null ||
  bad "$dash: not JSON, or a panel lacks gridPos, type, title or a target with expr and refId"
# Metric names: every one a panel queries is served by the running node.
curl -sf "http://127.0.0.1:$port/metrics" | sed -n 's/^# TYPE \([^ ]*\) .*/\1/p' >"$tmp/known"
[ -s "$tmp/known" ] || bad "no '# TYPE' line in the node's /metrics"
used=$(jq -r '.panels[].targets[].expr' "$dash" | grep -o '\b\(nebula\|process\)_[a-z0-9_]*' | sort -u)
for m in $used; do
  grep -qx "$m" "$tmp/known" || grep -qx "$(sed 's/_\(bucket\|sum\|count\)$//' <<<"$m")" "$tmp/known" ||
    bad "$dash queries $m, which no node serves"
done
echo "$(wc -w <<<"$used") metric names in $(jq '.panels | length' "$dash") panels"

echo "== haproxy.cfg"
cfg=deployments/haproxy.cfg
haproxy -c -f "$cfg" || bad "haproxy -c -f $cfg"
# Room affinity is the point of this file: the room parameter, hashed
# consistently (balance uri would hash the username too).
for want in '^ *balance url_param room$' '^ *hash-type consistent$' '^ *option httpchk GET /readyz$' \
  '^ *timeout tunnel ' '^ *mode http$' '# BEGIN servers' '# END servers'; do
  grep -q "$want" "$cfg" || bad "$cfg has no line matching '$want'"
done
RUN_DIR="$tmp/cluster" NODES=2 NEBULA_BIN="$bin" PLUGIN_DIR="$plugin_dir" BROKER=none \
  deployments/local-cluster.sh config >/dev/null || bad "local-cluster.sh config"
[ "$(grep -c '^ *server node[0-9]* 127\.0\.0\.1:[0-9]* check$' "$tmp/cluster/haproxy/haproxy.cfg")" = 2 ] ||
  bad "local-cluster.sh's haproxy.cfg does not list its 2 nodes"

echo "== docker-compose.yml"
compose=deployments/docker-compose.yml
# One run (docker-compose starts slowly): the check and the resolved file.
docker-compose -f "$compose" config >"$tmp/compose.yml" || bad "docker-compose -f $compose config"
for service in redis nebula haproxy; do
  grep -q "^  $service:" "$tmp/compose.yml" || bad "$compose has no service $service"
done
grep -q 'dockerfile: deployments/Dockerfile' "$tmp/compose.yml" || bad "$compose does not build nebula from deployments/Dockerfile"

echo "== Dockerfile"
df=deployments/Dockerfile
# COPY sources in the build context (the repository root), not --from stages.
sed -n 's/^COPY \([^-][^ ]*\) .*/\1/p' "$df" | while read -r src; do
  [ -e "$src" ] || echo "$src"
done >"$tmp/missing"
[ -s "$tmp/missing" ] && bad "$df copies what the repository does not have: $(tr '\n' ' ' <"$tmp/missing")"
[ "$(grep -c '^FROM ' "$df")" -ge 2 ] || bad "$df is not multi-stage"
user=$(sed -n 's/^USER //p' "$df" | tail -1)
[ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ] || bad "$df runs as root"
grep -A1 '^HEALTHCHECK' "$df" | grep -q '/healthz' || bad "$df has no HEALTHCHECK on /healthz"

echo "== nebula.docker.conf"
# The image's paths do not exist here: this build's plugins and web root
# stand in; without the broker plugin built, broker "none" is checked.
dconf="$tmp/nebula.docker.conf"
sed "s#^web_root = .*#web_root = \"$PWD/web\"#; s#^\[plugins\]#[plugins]\ndir = \"$plugin_dir\"#" \
  deployments/nebula.docker.conf >"$dconf"
if [ ! -f "$plugin_dir/broker-redis.so" ]; then
  echo "(no broker-redis.so in $plugin_dir: checking with broker = \"none\")"
  sed -i 's/^broker = .*/broker = "none"/; /^\[broker-redis\]/,$d' "$dconf"
fi
"$bin" --check-config "$dconf" >"$tmp/check.txt" 2>&1 || {
  cat "$tmp/check.txt"
  bad "nebula --check-config deployments/nebula.docker.conf"
}

[ $fail -eq 0 ] && echo "deployments: all checks passed"
exit $fail
