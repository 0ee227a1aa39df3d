#!/usr/bin/env bash
# Run the libFuzzer targets of tests/fuzz/ (docs/FUZZING.md).
#
#   tests/fuzz/fuzz.sh [--smoke] BUILD_DIR SECONDS [TARGET...]
#
# BUILD_DIR is the fuzz build (build-fuzz, configured with CC=clang and
# -Dfuzz=true); with no TARGET, every target runs, one after the other, for
# SECONDS each. Each run starts from the seed corpus tests/fuzz/corpus/TARGET
# (read only) and keeps what it finds in BUILD_DIR/corpus/TARGET, so the next
# run goes on from there. --smoke (the meson test suite "fuzz") uses a fresh
# scratch corpus instead, so a test run does not depend on earlier ones.
# A crash, leak, sanitizer report or broken invariant saves the input as
# BUILD_DIR/crashes/TARGET/crash-* (or leak-*, timeout-*, oom-*) and makes
# the script exit 1; the full output is in BUILD_DIR/fuzz-logs/TARGET.log.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

smoke=0
if [ "${1:-}" = --smoke ]; then
  smoke=1
  shift
fi
if [ $# -lt 2 ]; then
  echo "usage: $0 [--smoke] BUILD_DIR SECONDS [TARGET...]" >&2
  exit 2
fi
build=$(cd "$1" && pwd) || exit 2
seconds=$2
shift 2

# Longest input per target: a few frames, a request head just over the
# default max_header_bytes (8192), a config file (past the reader's first
# 4 KiB buffer), a chat message.
declare -A max_len=(
  [fuzz-frame-scan]=8192
  [fuzz-ws-recv]=8192
  [fuzz-http-request]=9000
  [fuzz-config]=8192
  [fuzz-codec-json]=4096
  [fuzz-codec-protobuf]=4096
  [fuzz-aof-record]=4096
)
# Tokens of each input language, to get past the first checks sooner.
declare -A dict=(
  [fuzz-http-request]=http.dict
  [fuzz-config]=config.dict
  [fuzz-codec-json]=json.dict
  [fuzz-codec-protobuf]=proto.dict
)
# ASan keeps freed blocks in a 256 MB quarantine; the stream targets free
# thousands of small blocks per input, which keeps a process near 1 GB.
# 64 MB still catches a use after free within an input (nothing here keeps
# a pointer across inputs) and leaves room under libFuzzer's 2 GB limit.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=64"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz-frame-scan fuzz-ws-recv fuzz-http-request fuzz-config fuzz-codec-json fuzz-codec-protobuf fuzz-aof-record)

failed=()
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/$t
  if [ -z "${max_len[$t]:-}" ] || [ ! -x "$bin" ]; then
    echo "$t: unknown target or not built ($bin)" >&2
    failed+=("$t")
    continue
  fi
  if [ $smoke -eq 1 ]; then
    corpus=$build/fuzz-smoke/$t
    rm -rf "$corpus"
  else
    corpus=$build/corpus/$t
  fi
  crashes=$build/crashes/$t
  log=$build/fuzz-logs/$t.log
  mkdir -p "$corpus" "$crashes" "$(dirname "$log")"
  args=(-max_len="${max_len[$t]}" -max_total_time="$seconds" -timeout=10
    -artifact_prefix="$crashes/" -print_final_stats=1)
  [ -n "${dict[$t]:-}" ] && args+=(-dict="$here/${dict[$t]}")
  # The first folder receives new inputs; the seeds are only read.
  "$bin" "${args[@]}" "$corpus" "$here/corpus/$t" >"$log" 2>&1
  rc=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE ' "$log" | tail -1)
  execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    echo "$t: ok in ${seconds}s, ${execs:-?} exec/s, ${done_line:-no summary}"
  else
    echo "$t: FAILED (exit $rc); input saved in $crashes/, log in $log"
    grep -E 'ERROR: |SUMMARY: |invariant violated|Test unit written to' "$log" | head -20
    failed+=("$t")
  fi
  [ $smoke -eq 1 ] && rm -rf "$corpus"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
exit 0
