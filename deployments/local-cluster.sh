#!/usr/bin/env bash
# A Nebula cluster as plain processes on loopback, for machines without
# Docker: redis-server, N nebula nodes, haproxy in front — the topology of
# deployments/docker-compose.yml. Every process runs in its own folder
# under RUN_DIR with its PID file and log; stop and status use those PID
# files and nothing else (docs/CLUSTER.md).
#
# Usage: deployments/local-cluster.sh start|stop|status|scale N|config
#   start      start Redis, NODES nodes and haproxy; wait until each answers
#   stop       SIGTERM each process by its PID file (haproxy first, Redis
#              last), SIGKILL what is still there after STOP_TIMEOUT s
#   status     one line per process; exit 0 when all run, 3 when one is down
#   scale N    start or stop nodes until N run, then reload haproxy
#              (consistent hashing: about 1/N of the rooms move)
#   config     write the configs under RUN_DIR and check them, start nothing
#
# Settings (environment, defaults in brackets):
#   RUN_DIR       [${TMPDIR:-/tmp}/nebula-cluster]
#   NODES         [3]     nebula nodes
#   LB_PORT       [8000]  haproxy's chat port: http://127.0.0.1:LB_PORT/
#   STATS_PORT    [8404]  haproxy's status page: /stats
#   NODE_PORT     [8101]  node i listens on NODE_PORT + i - 1
#   REDIS_PORT    [6390]
#   BROKER        [broker-redis when PLUGIN_DIR has it, else none]
#   NEBULA_BIN    [build/nebula]      PLUGIN_DIR [build/plugins]
#   BALANCE       [url_param room] haproxy's balance algorithm; e.g.
#                 roundrobin, to see what room affinity saves
#   IO_THREADS    [the node's default: one per core] I/O threads per node;
#                 several nodes on one small machine share its cores
#   EXTRA_CONF    a file appended to every node's config (e.g. a [limits]
#                 section); it must not repeat [server] or [plugins]
#   STOP_TIMEOUT  [10]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
RUN_DIR=${RUN_DIR:-${TMPDIR:-/tmp}/nebula-cluster}
NODES=${NODES:-3}
LB_PORT=${LB_PORT:-8000}
STATS_PORT=${STATS_PORT:-8404}
NODE_PORT=${NODE_PORT:-8101}
REDIS_PORT=${REDIS_PORT:-6390}
NEBULA_BIN=${NEBULA_BIN:-$repo/build/nebula}
PLUGIN_DIR=${PLUGIN_DIR:-$repo/build/plugins}
EXTRA_CONF=${EXTRA_CONF:-}
IO_THREADS=${IO_THREADS:-}
BALANCE=${BALANCE:-url_param room}
STOP_TIMEOUT=${STOP_TIMEOUT:-10}
if [ -z "${BROKER:-}" ]; then
  BROKER=none
  [ -f "$PLUGIN_DIR/broker-redis.so" ] && BROKER=broker-redis
fi

die() {
  echo "local-cluster: $*" >&2
  exit 1
}
need() {
  command -v "$1" >/dev/null || die "no '$1' command (Makefile APT_PACKAGES: $2)"
}
number() {
  [[ $2 =~ ^[0-9]+$ ]] || die "$1 must be a number, not '$2'"
}
number NODES "$NODES"
number LB_PORT "$LB_PORT"
number STATS_PORT "$STATS_PORT"
number NODE_PORT "$NODE_PORT"
number REDIS_PORT "$REDIS_PORT"
number STOP_TIMEOUT "$STOP_TIMEOUT"
[ -z "$IO_THREADS" ] || number IO_THREADS "$IO_THREADS"

node_port() { echo $((NODE_PORT + $1 - 1)); }

# A PID file's process, if it is still the one this cluster started: a
# recycled PID belongs to someone else and is never signalled. Ours name
# RUN_DIR in their command line (nebula, haproxy) or run inside it (Redis
# rewrites its command line but keeps its --dir as working directory).
owned_pid() {
  local file=$1 pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$RUN_DIR/" ||
    [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$RUN_DIR"/* ]]; then
    echo "$pid"
    return 0
  fi
  return 1
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Polls an HTTP URL until it answers 200, for at most $2 tenths of a second.
wait_http() {
  local url=$1 tries=$2
  for _ in $(seq "$tries"); do
    curl -sf -o /dev/null --max-time 1 "$url" && return 0
    sleep 0.1
  done
  return 1
}

# Whether a PID runs: an exited process that its parent has not reaped yet
# (a zombie, state Z) has finished.
running() {
  local state
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# SIGTERM, then SIGKILL after STOP_TIMEOUT; returns once the process is gone.
stop_pid() {
  local name=$1 pid=$2
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq $((STOP_TIMEOUT * 10))); do
    running "$pid" || {
      echo "stopped $name (pid $pid)"
      return 0
    }
    sleep 0.1
  done
  echo "$name (pid $pid) still runs after ${STOP_TIMEOUT}s: SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

write_node_config() {
  local i=$1
  local dir="$RUN_DIR/node$i"
  mkdir -p "$dir"
  {
    echo "# Written by deployments/local-cluster.sh; rewritten on every start."
    echo "[server]"
    echo "listen = \"127.0.0.1:$(node_port "$i")\""
    echo "node_id = \"node-$i\""
    echo "web_root = \"$repo/web\""
    echo "log_level = \"info\""
    [ -n "$IO_THREADS" ] && echo "io_threads = $IO_THREADS"
    echo
    echo "[plugins]"
    echo "dir = \"$PLUGIN_DIR\""
    echo "transport = \"transport-ws\""
    echo "codecs = [\"codec-json\", \"codec-protobuf\"]"
    echo "store = \"none\""
    echo "broker = \"$BROKER\""
    if [ "$BROKER" = broker-redis ]; then
      echo
      echo "[broker-redis]"
      echo "url = \"redis://127.0.0.1:$REDIS_PORT\""
    fi
    if [ -n "$EXTRA_CONF" ]; then
      echo
      cat "$EXTRA_CONF"
    fi
  } >"$dir/nebula.conf"
  local out
  out=$("$NEBULA_BIN" --check-config "$dir/nebula.conf" 2>&1) || {
    echo "$out" >&2
    die "node $i: $dir/nebula.conf does not check"
  }
}

# deployments/haproxy.cfg with this cluster's ports and one server line per
# running node (the block between the BEGIN/END markers).
write_haproxy_config() {
  local n=$1 servers="" i
  for i in $(seq "$n"); do
    servers+="    server node$i 127.0.0.1:$(node_port "$i") check"$'\n'
  done
  awk -v servers="$servers" -v lb="127.0.0.1:$LB_PORT" -v stats="127.0.0.1:$STATS_PORT" -v balance="$BALANCE" '
    /# BEGIN servers/ { print; printf "%s", servers; skip = 1; next }
    /# END servers/ { skip = 0 }
    skip { next }
    /^frontend chat/ { fe = "chat" }
    /^frontend stats/ { fe = "stats" }
    /^ *bind / && fe == "chat" { print "    bind " lb; next }
    /^ *bind / && fe == "stats" { print "    bind " stats; next }
    /^ *log stdout/ { print "    log stderr format raw local0 notice"; next }
    /^ *balance / { print "    balance " balance; next }
    { print }
  ' "$repo/deployments/haproxy.cfg" >"$RUN_DIR/haproxy/haproxy.cfg"
  haproxy -c -q -f "$RUN_DIR/haproxy/haproxy.cfg" || die "haproxy rejects $RUN_DIR/haproxy/haproxy.cfg"
}

start_redis() {
  local dir="$RUN_DIR/redis"
  mkdir -p "$dir"
  if owned_pid "$dir/redis.pid" >/dev/null; then
    echo "redis already runs (pid $(cat "$dir/redis.pid"))"
    return
  fi
  port_busy "$REDIS_PORT" && die "port $REDIS_PORT (REDIS_PORT) is taken"
  # No persistence: the cluster's history lives in Redis streams only for
  # as long as this Redis runs (docs/CLUSTER.md).
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --save '' --appendonly no
  for _ in $(seq 50); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG || die "redis did not answer on port $REDIS_PORT ($dir/redis.log)"
  echo "redis   pid $(cat "$dir/redis.pid")  127.0.0.1:$REDIS_PORT"
}

start_node() {
  local i=$1 port pid
  local dir="$RUN_DIR/node$i"
  port=$(node_port "$i")
  if owned_pid "$dir/nebula.pid" >/dev/null; then
    echo "node$i already runs (pid $(cat "$dir/nebula.pid"))"
    return
  fi
  port_busy "$port" && die "port $port (node $i) is taken"
  write_node_config "$i"
  (cd "$dir" && exec "$NEBULA_BIN" -c "$dir/nebula.conf") >"$dir/nebula.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/nebula.pid"
  wait_http "http://127.0.0.1:$port/readyz" 100 || {
    tail -5 "$dir/nebula.log" >&2
    die "node $i did not become ready on port $port ($dir/nebula.log)"
  }
  echo "node$i   pid $pid  127.0.0.1:$port  broker=$BROKER"
}

# Starts haproxy, or reloads it: the new process takes the ports and the
# old one (-sf) finishes its connections within hard-stop-after.
start_haproxy() {
  local n=$1 dir="$RUN_DIR/haproxy" old="" pid
  mkdir -p "$dir"
  write_haproxy_config "$n"
  if old=$(owned_pid "$dir/haproxy.pid"); then
    echo "$old" >>"$dir/haproxy.old.pids"
  else
    old=""
    port_busy "$LB_PORT" && die "port $LB_PORT (LB_PORT) is taken"
    port_busy "$STATS_PORT" && die "port $STATS_PORT (STATS_PORT) is taken"
  fi
  (cd "$dir" && exec haproxy -db -f "$dir/haproxy.cfg" ${old:+-sf "$old"}) >>"$dir/haproxy.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/haproxy.pid"
  wait_http "http://127.0.0.1:$LB_PORT/healthz" 100 || {
    tail -5 "$dir/haproxy.log" >&2
    die "haproxy did not pass requests on port $LB_PORT ($dir/haproxy.log)"
  }
  echo "haproxy pid $pid  127.0.0.1:$LB_PORT -> $n nodes  (status: http://127.0.0.1:$STATS_PORT/stats)"
}

running_nodes() {
  local n=0 d
  for d in "$RUN_DIR"/node*; do
    [ -d "$d" ] && owned_pid "$d/nebula.pid" >/dev/null && n=$((n + 1))
  done
  echo "$n"
}

cmd_config() {
  need haproxy haproxy
  [ -x "$NEBULA_BIN" ] || die "no nebula binary at $NEBULA_BIN (make build, or set NEBULA_BIN)"
  mkdir -p "$RUN_DIR/haproxy"
  for i in $(seq "$NODES"); do write_node_config "$i"; done
  write_haproxy_config "$NODES"
  echo "configs written under $RUN_DIR"
}

cmd_start() {
  need redis-server redis-server
  need redis-cli redis-tools
  need haproxy haproxy
  need curl curl
  [ "$NODES" -ge 1 ] || die "NODES must be at least 1"
  [ -x "$NEBULA_BIN" ] || die "no nebula binary at $NEBULA_BIN (make build, or set NEBULA_BIN)"
  [ "$BROKER" = none ] || [ -f "$PLUGIN_DIR/$BROKER.so" ] || die "no $PLUGIN_DIR/$BROKER.so (BROKER=$BROKER)"
  mkdir -p "$RUN_DIR"
  start_redis
  for i in $(seq "$NODES"); do start_node "$i"; done
  start_haproxy "$NODES"
  [ "$BROKER" = none ] && echo "broker = none: nodes do not share rooms; haproxy's room affinity keeps each room on one node"
  return 0
}

cmd_stop() {
  local pid d f
  [ -d "$RUN_DIR" ] || {
    echo "nothing runs under $RUN_DIR"
    return 0
  }
  if pid=$(owned_pid "$RUN_DIR/haproxy/haproxy.pid"); then stop_pid haproxy "$pid"; fi
  if [ -f "$RUN_DIR/haproxy/haproxy.old.pids" ]; then
    while read -r f; do
      echo "$f" >"$RUN_DIR/haproxy/old.pid"
      if pid=$(owned_pid "$RUN_DIR/haproxy/old.pid"); then stop_pid "haproxy (before reload)" "$pid"; fi
    done <"$RUN_DIR/haproxy/haproxy.old.pids"
    rm -f "$RUN_DIR/haproxy/haproxy.old.pids" "$RUN_DIR/haproxy/old.pid"
  fi
  rm -f "$RUN_DIR/haproxy/haproxy.pid"
  # Nodes together: each drains its clients (SIGTERM: close 1001) in parallel.
  local pids=() names=()
  for d in "$RUN_DIR"/node*; do
    [ -d "$d" ] || continue
    if pid=$(owned_pid "$d/nebula.pid"); then
      pids+=("$pid")
      names+=("$(basename "$d")")
    fi
    rm -f "$d/nebula.pid"
  done
  for i in "${!pids[@]}"; do stop_pid "${names[$i]}" "${pids[$i]}" & done
  wait
  if pid=$(owned_pid "$RUN_DIR/redis/redis.pid"); then stop_pid redis "$pid"; fi
  rm -f "$RUN_DIR/redis/redis.pid"
}

cmd_status() {
  local down=0 pid d port body
  if pid=$(owned_pid "$RUN_DIR/redis/redis.pid"); then
    printf '%-8s %-8s %-16s %s\n' redis "$pid" "127.0.0.1:$REDIS_PORT" \
      "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null || echo 'no answer')"
  else
    printf '%-8s %-8s\n' redis down
    down=1
  fi
  for d in "$RUN_DIR"/node*; do
    [ -d "$d" ] || continue
    port=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$d/nebula.conf")
    if pid=$(owned_pid "$d/nebula.pid"); then
      body=$(curl -s --max-time 1 "http://127.0.0.1:$port/readyz" | tr '\n' ' ')
      printf '%-8s %-8s %-16s %s\n' "$(basename "$d")" "$pid" "127.0.0.1:$port" "${body:-no answer}"
    elif [ -f "$d/nebula.pid" ]; then
      printf '%-8s %-8s %-16s\n' "$(basename "$d")" down "127.0.0.1:$port"
      down=1
    fi
  done
  if pid=$(owned_pid "$RUN_DIR/haproxy/haproxy.pid"); then
    printf '%-8s %-8s %-16s %s\n' haproxy "$pid" "127.0.0.1:$LB_PORT" "stats: http://127.0.0.1:$STATS_PORT/stats"
  else
    printf '%-8s %-8s\n' haproxy down
    down=1
  fi
  return $((down ? 3 : 0))
}

cmd_scale() {
  local want=$1 have i pid
  number "scale N" "$want"
  [ "$want" -ge 1 ] || die "scale: at least one node"
  owned_pid "$RUN_DIR/haproxy/haproxy.pid" >/dev/null || die "the cluster is not running (start it first)"
  have=$(running_nodes)
  for i in $(seq $((have + 1)) "$want"); do start_node "$i"; done
  start_haproxy "$want"
  for i in $(seq $((want + 1)) "$have"); do
    if pid=$(owned_pid "$RUN_DIR/node$i/nebula.pid"); then stop_pid "node$i" "$pid"; fi
    rm -rf "$RUN_DIR/node$i"
  done
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  scale) cmd_scale "${2:?usage: local-cluster.sh scale N}" ;;
  config) cmd_config ;;
  *)
    sed -n '/^# Usage/,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
