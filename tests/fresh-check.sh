#!/usr/bin/env bash
# `make fresh-check`: the README's commands, exactly as written, on a new
# minimal Debian 12 root, the way a first-time user meets the project.
#
#   1. debootstrap --variant=minbase bookworm, from this machine's apt
#      sources (/etc/apt/sources.list*), which are also copied in;
#   2. this machine's extra CA certificates copied in (npm must reach its
#      registry from inside), the working tree copied to /root/nebula
#      (without build folders, node_modules or .git: a fresh clone);
#   3. in a chroot with a clean environment: the README's first line,
#      `make run` until /healthz answers (then SIGTERM to its process
#      group), then `make test`; the last line printed is make test's.
#
# Needs root and debootstrap. Slow (it installs every package the project
# uses): about half an hour. FRESH_ROOT (default /var/tmp/nebula-fresh) is
# the root's folder, removed at the end unless FRESH_KEEP=1.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
root=${FRESH_ROOT:-/var/tmp/nebula-fresh}
port=8080
run_timeout=${FRESH_RUN_TIMEOUT:-3600}

say() { printf '\n== fresh-check: %s\n' "$*"; }
die() {
  printf 'fresh-check: %s\n' "$*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mounts)"
command -v debootstrap >/dev/null || die "no debootstrap (apt-get install debootstrap)"
command -v curl >/dev/null || die "no curl on this machine (it polls /healthz from outside)"
# A private mount namespace: nothing mounted for the root can propagate to
# this machine's /dev, and every mount ends with this script at the latest.
if [ -z "${NEBULA_FRESH_NS:-}" ]; then
  NEBULA_FRESH_NS=1 exec unshare --mount --propagation private "$0" "$@"
fi

# The commands run inside must be the README's own lines.
readme_cmds=('apt-get update && apt-get install -y make' 'make run' 'make test')
for c in "${readme_cmds[@]}"; do
  grep -qF -- "$c" "$src/README.md" || die "README.md no longer says '$c': update $0"
done

mounts_under_root() { awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts; }
run_pgid=
cleanup() {
  local rc=$?
  if [ -n "$run_pgid" ] && kill -0 -- "-$run_pgid" 2>/dev/null; then
    kill -TERM -- "-$run_pgid" 2>/dev/null || true
    sleep 2
    kill -KILL -- "-$run_pgid" 2>/dev/null || true
  fi
  # deepest first
  mounts_under_root | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  if [ -z "$(mounts_under_root)" ] && [ "${FRESH_KEEP:-0}" != 1 ]; then
    rm -rf --one-file-system "$root"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'echo "fresh-check: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

[ -z "$(mounts_under_root)" ] || die "something is still mounted under $root: unmount it first"
rm -rf --one-file-system "$root"
mkdir -p "$root"

# The first Debian mirror of this machine's sources (one-line or deb822).
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  if [ -f "$f" ]; then sources+=("$f"); fi
done
[ ${#sources[@]} -gt 0 ] || die "no /etc/apt/sources.list*"
mirror=$(awk '/^deb [^#]*bookworm/ && !/security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }
       /^URIs:/ && !/security/ { print $2; exit }' "${sources[@]}")
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*"

say "debootstrap --variant=minbase bookworm from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
  { tail -20 "$root.debootstrap.log"; die "debootstrap failed (log: $root.debootstrap.log)"; }

# apt sources (enabled files only) and the keyrings they name.
rm -f "$root/etc/apt/sources.list"
for f in "${sources[@]}"; do
  mkdir -p "$root$(dirname "$f")"
  cp "$f" "$root$f"
done
{ grep -ho 'signed-by=[^] ]*\|Signed-By: *[^ ]*' "${sources[@]}" || true; } |
  sed 's/^signed-by=//I; s/^Signed-By: *//' | sort -u | while read -r k; do
  if [ -f "$k" ] && [ ! -f "$root$k" ]; then install -D -m 644 "$k" "$root$k"; fi
done
cp /etc/resolv.conf "$root/etc/resolv.conf"

# Extra CA certificates: picked up by update-ca-certificates when the
# ca-certificates package is installed inside.
mkdir -p "$root/usr/local/share/ca-certificates"
if [ -d /usr/local/share/ca-certificates ]; then
  cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi

say "copying $src to /root/nebula (no build folders, node_modules, .git)"
mkdir -p "$root/root/nebula"
tar -C "$src" --exclude=./.git --exclude='./build*' --exclude=./tests/node_modules -cf - . |
  tar -C "$root/root/nebula" -xf -

mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
mount -t tmpfs -o mode=1777 shm "$root/dev/shm"

# A clean environment, as after a login; this machine's proxy and CA
# settings pass through (the registry is reached the same way).
envs=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  LANG=C.UTF-8 TERM=dumb)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY NODE_EXTRA_CA_CERTS; do
  if [ -n "${!v:-}" ]; then envs+=("$v=${!v}"); fi
done
inside() { chroot "$root" /usr/bin/env -i "${envs[@]}" /bin/bash -c "cd /root/nebula && $1"; }

say "${readme_cmds[0]}"
inside "${readme_cmds[0]}" >"$root.make-install.log" 2>&1 ||
  { tail -20 "$root.make-install.log"; die "'${readme_cmds[0]}' failed"; }

# `make run` serves on 8080; if this machine already has something there,
# the same command with another port (the README documents ARGS).
run_cmd=${readme_cmds[1]}
if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; then
  port=$(comm -23 <(seq 18080 18180) <(ss -Htln | awk '{ sub(/.*:/, "", $4); print $4 }' | sort -n) | head -1)
  run_cmd="make run ARGS=\"--listen 127.0.0.1:$port\""
  say "port 8080 is taken on this machine: $run_cmd"
fi
say "$run_cmd (until /healthz answers)"
run_log=$root.make-run.log
setsid chroot "$root" /usr/bin/env -i "${envs[@]}" /bin/bash -c "cd /root/nebula && exec $run_cmd" \
  >"$run_log" 2>&1 &
run_pgid=$!
start=$SECONDS
until curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz"; do
  if ! kill -0 "$run_pgid" 2>/dev/null; then
    tail -30 "$run_log"
    die "'$run_cmd' ended before /healthz answered (log: $run_log)"
  fi
  [ $((SECONDS - start)) -lt "$run_timeout" ] || { tail -30 "$run_log"; die "/healthz silent after ${run_timeout}s"; }
  sleep 5
done
say "/healthz answered after $((SECONDS - start)) s: $(curl -s "http://127.0.0.1:$port/healthz")"
kill -TERM -- "-$run_pgid"
wait "$run_pgid" || true
run_pgid=
tail -3 "$run_log"

say "${readme_cmds[2]}"
test_log=$root.make-test.log
start=$SECONDS
set +e
trap - ERR
inside "${readme_cmds[2]}" 2>&1 | tee "$test_log"
rc=${PIPESTATUS[0]}
set -e
say "make test took $((SECONDS - start)) s, exit status $rc (log: $test_log)"
# make's own "Error 1" (stderr) may follow the summary line on failure.
final=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$test_log" | tail -1 || true)
echo "fresh-check: make test on a fresh Debian 12 root: ${final:-$(tail -1 "$test_log")}"
exit "$rc"
