#!/usr/bin/env bash
# Every pass of `make test`, each under a heading and closed by a one-line
# summary: plain (unit, integration, e2e, deployments), ASan+UBSan (unit and
# integration), TSan (integration), valgrind (integration, every server
# under valgrind), fuzz (seed corpora and a short run of each target), lint.
# Then the tail of every failing test's log, and last one line
# "N passed, N failed".
# NEBULA_PASSES="asan tsan" runs only those passes (CI runs one a job);
# names: plain asan tsan valgrind fuzz lint.
set -uo pipefail
plain=${1:-build}
asan=${2:-build-asan}
tsan=${3:-build-tsan}
fuzz=${4:-build-fuzz}

# A missing tool must fail the run loudly, never shrink it.
for tool in meson jq valgrind; do
  command -v "$tool" >/dev/null || {
    echo "run-all: no '$tool' command: run 'make deps' (Makefile APT_PACKAGES)" >&2
    echo "0 passed, 1 failed"
    exit 1
  }
done

# Sanitizer builds: leak reports need the plugins still mapped at exit.
export NEBULA_NO_DLCLOSE=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=24
export TSAN_OPTIONS=halt_on_error=0:exitcode=25:second_deadlock_stack=1

# valgrind: a leak (definite or indirect) or a memory error makes nebula
# exit 99, and every integration test asserts that its server exits 0.
valgrind_cmd="valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
--errors-for-leak-kinds=definite,indirect --error-exitcode=99"

total_passed=0
total_failed=0
logs=()
status=0
passes=" ${NEBULA_PASSES:-plain asan tsan valgrind fuzz lint} "

count() { # STATUS... in one meson test log
  local log=$1 expr
  shift
  expr=$(printf '.result == "%s" or ' "$@")
  jq -s "[.[] | select(${expr% or })] | length" "$log"
}

# pass ID NAME BUILD_DIR LOGBASE [meson test options...]
pass() {
  local id=$1 name=$2 dir=$3 logbase=$4 log start ok bad
  shift 4
  [[ $passes == *" $id "* ]] || return 0
  log=$dir/meson-logs/$logbase.json
  rm -f "$log"
  printf '\n== %s\n' "$name"
  start=$SECONDS
  # One line a test; meson's closing block and ninja's chatter would only
  # repeat what the summary line below says.
  meson test -C "$dir" --logbase "$logbase" --num-processes 1 "$@" 2>&1 |
    grep -vE '^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout): |^ninja: |^INFO: |^Full log written|^$'
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  if [ -f "$log" ]; then
    ok=$(count "$log" OK)
    bad=$(count "$log" FAIL TIMEOUT ERROR SKIP UNEXPECTEDPASS)
    logs+=("$name|$log")
  else
    ok=0 bad=0
  fi
  if [ $((ok + bad)) -eq 0 ]; then
    echo "$name: no test ran (is $dir configured with what this pass needs?)"
    bad=1
  fi
  total_passed=$((total_passed + ok))
  total_failed=$((total_failed + bad))
  printf -- '-- %s: %d passed, %d failed (%d s)\n' "$name" "$ok" "$bad" $((SECONDS - start))
}

pass plain plain "$plain" run-all-plain --no-suite lint
pass asan "ASan+UBSan" "$asan" run-all-asan --no-suite e2e --no-suite lint --no-suite deploy
pass tsan TSan "$tsan" run-all-tsan --suite integration
NEBULA_WRAPPER=$valgrind_cmd pass valgrind valgrind "$plain" run-all-valgrind --suite integration
pass fuzz fuzz "$fuzz" run-all-fuzz --suite fuzz
pass lint lint "$plain" run-all-lint --suite lint

# The end of each failing test's log, after every summary (a skipped test
# counts as failed: nothing here may be skipped).
for entry in "${logs[@]}"; do
  name=${entry%%|*}
  log=${entry#*|}
  while IFS= read -r t; do
    printf '\n== failed in %s: %s (last 40 lines of its log)\n' "$name" "$t"
    jq -r --arg t "$t" 'select(.name == $t) | (.stdout // "") + (.stderr // "")' "$log" | tail -40
  done < <(jq -r 'select(.result != "OK") | .name' "$log")
done

echo
echo "$total_passed passed, $total_failed failed"
[ "$status" -eq 0 ] && [ "$total_failed" -eq 0 ]
